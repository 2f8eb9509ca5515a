"""Token-exact loss masks: one render, one tokenizer pass, labels from character spans.

For each conversation:

1. The reference renderer (``ChatFormat.segments``) gives the text as pieces; the policy marks
   each piece trainable or not; adjacent trainable pieces merge into *trainable spans*.
2. The whole rendered text is tokenized **once**, with ``add_special_tokens=False`` (the BOS,
   if any, is the one the format renders), exactly as inference tokenizes a rendered prompt, so
   turn seams tokenize as they will at inference.
3. Each token's span of the original text is computed (from per-id byte lengths where the
   vocabulary allows it, else from the tokenizer's own character offsets), and

   **a token trains iff its whole span lies inside one trainable span.**

   A token that *straddles* a trainable/masked boundary (BPE merged characters of both sides,
   e.g. Llama 3's header ``"\\n\\n"`` with an assistant message that starts with ``"\\n"`` becomes
   one ``"\\n\\n\\n"`` token) is **masked**: it is context, not target.  The model is never
   trained to produce text the format put there, and the trainable text it misses is only the
   merged edge.  (transformers' ``return_assistant_tokens_mask`` trains every token that
   overlaps the span instead, so it trains header text; tmplc documents this as an HF edge case.)
   Tokens with an empty span (a BOS the formatter prepends) never train.

BOS: exactly one.  The text is tokenized without special tokens, so the only BOS is the one the
format renders; when the format renders none and the tokenizer would add one
(``tokenizer("a")`` starts with BOS, whatever ``add_bos_token`` says), one BOS is prepended.
A row with more than one BOS is an error.  Tokenizers without a BOS get none.

Special-token text inside message content (``<|eot_id|>``, ``<|im_end|>``, ``</s>``...) is
tokenized as plain text by default (``special_tokens="text"``): the row is tokenized as pieces
split at the format's own special tokens, with special-token recognition off inside them.  Such
rows are counted.  ``special_tokens="control"`` tokenizes the text exactly as inference would,
turning that text into control tokens (the old behaviour, and a prompt-injection hazard).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Sequence

from tmplc.errors import MessageError, TmplcError
from tmplc.render import DATA_PARTS

#: the parts of an assistant tool call (counted in ``RowResult.n_tool_call_trained``)
CALL_PARTS = ("call", "call_content")
from tmplc.formatter.plan import get_plan
from tmplc.formatter.policies import Policy, get_policy
from tmplc.formatter.tokenizer_info import TokenizerInfo, tokenizer_info, warn_hazards

TRUNCATION = ("truncate", "drop", "error")
SPECIAL_MODES = ("text", "control")
BACKENDS = ("auto", "hf", "tiktoken")
IGNORE = -100
DOUBLE_BOS = "the rendered text starts with two BOS tokens (double BOS)"


class RowDropped(TmplcError):
    """A single conversation that the formatter would drop (``.reason``)."""

    def __init__(self, reason: str, row: int | None = None) -> None:
        self.reason = reason
        self.row = row
        super().__init__((f"row {row}: " if row is not None else "") + f"dropped: {reason}")


@dataclass(frozen=True)
class Options:
    policy: Policy = field(default_factory=lambda: get_policy(None))
    max_seq_length: int | None = None
    truncation: str = "truncate"
    special_tokens: str = "text"
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.truncation not in TRUNCATION:
            raise TmplcError(f"truncation must be one of {TRUNCATION}, got {self.truncation!r}")
        if self.special_tokens not in SPECIAL_MODES:
            raise TmplcError(f"special_tokens must be one of {SPECIAL_MODES}, got {self.special_tokens!r}")
        if self.backend not in BACKENDS:
            raise TmplcError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.max_seq_length is not None and int(self.max_seq_length) < 1:
            raise TmplcError("max_seq_length must be a positive integer")


def make_options(policy=None, max_seq_length=None, truncation="truncate", special_tokens="text",
                 backend="auto") -> Options:
    return Options(get_policy(policy), max_seq_length, truncation, special_tokens, backend)


@dataclass
class RowResult:
    """One conversation's outcome.  ``status``: ok | truncated | dropped | error."""

    input_ids: list[int] | None = None
    labels: list[int] | None = None
    status: str = "ok"
    reason: str = ""
    special_in_content: bool = False
    n_tokens: int = 0
    n_trained: int = 0
    error: Exception | None = None
    #: trained tokens inside assistant tool calls (None: the row has no tool call)
    n_tool_call_trained: int | None = None
    full_tokens: int = 0          # tokens before truncation (0: the row was not encoded)
    full_trained: int = 0         # trained tokens before truncation
    cut_trained: int = 0          # trained tokens past max_seq_length (cut, or lost with the row)


@dataclass
class _Row:
    text: str
    segs: list
    spans: list[tuple[int, int]]          # trainable spans, character offsets, merged
    bounds: list[int]                     # character offsets of segment boundaries (len(segs)+1)
    content_mask: list[bool]              # per segment: is message content
    pieces: bool = False                  # tokenize as pieces (special-token text in content)
    ids: list[int] | None = None
    result: RowResult | None = None
    call_spans: list[tuple[int, int]] | None = None  # trainable tool-call text, character offsets


# ----------------------------------------------------------------------------------------------
# rendering

_TEMPLATE_COUNTS: dict[tuple[str, str], int] = {}


def _render(fmt, messages, info: TokenizerInfo, opts: Options, *, add_generation_prompt: bool = False,
            tools=None) -> _Row:
    bos = info.bos_token or ""  # no BOS in the tokenizer: {BOS} renders nothing (as in HF Jinja)
    eos = info.eos_token or fmt.meta.eos_token
    segs = fmt.segments(messages, add_generation_prompt, bos_token=bos, eos_token=eos, tools=tools)
    flags = opts.policy.trainable(segs)
    bounds = [0]
    spans: list[tuple[int, int]] = []
    pos = 0
    content_mask = []
    calls: list[tuple[int, int]] | None = None
    for s, f in zip(segs, flags):
        end = pos + len(s.text)
        if f:
            if spans and spans[-1][1] == pos:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((pos, end))
        if s.part in CALL_PARTS:
            calls = calls if calls is not None else []
            if f:
                if calls and calls[-1][1] == pos:
                    calls[-1] = (calls[-1][0], end)
                else:
                    calls.append((pos, end))
        bounds.append(end)
        content_mask.append(s.part in DATA_PARTS)
        pos = end
    text = "".join(s.text for s in segs)
    row = _Row(text, segs, spans, bounds, content_mask, call_spans=calls)
    rx = info.special_re
    if rx is not None:
        inj = False
        tmpl = 0
        for s, c in zip(segs, content_mask):
            if c:
                if rx.search(s.text):
                    inj = True
                    break
            else:
                key = (rx.pattern, s.text)  # per tokenizer: another one's specials count differently
                n = _TEMPLATE_COUNTS.get(key)
                if n is None:
                    n = len(rx.findall(s.text))
                    if len(_TEMPLATE_COUNTS) < 4096:
                        _TEMPLATE_COUNTS[key] = n
                tmpl += n
        if not inj and tmpl and len(rx.findall(text)) != tmpl:
            inj = True  # a special token formed across a content/template seam
        if inj:
            row.pieces = opts.special_tokens == "text"
            row.result = RowResult(special_in_content=True)
    return row


def _runs(row: _Row, info: TokenizerInfo) -> list[tuple[int, str | int]]:
    """Pieces mode: (char_start, text | special id) with special tokens only from template text."""
    rx = info.special_re
    out: list[tuple[int, str | int]] = []
    buf_start = 0
    buf: list[str] = []
    for s, c, start in zip(row.segs, row.content_mask, row.bounds):
        if c:
            buf.append(s.text)
            continue
        last = 0
        for m in rx.finditer(s.text):
            buf.append(s.text[last:m.start()])
            t = "".join(buf)
            if t:
                out.append((buf_start, t))
            out.append((start + m.start(), info.special[m.group(0)]))
            buf = []
            buf_start = start + m.end()
            last = m.end()
        buf.append(s.text[last:])
    t = "".join(buf)
    if t:
        out.append((buf_start, t))
    return out


# ----------------------------------------------------------------------------------------------
# tokenization and labels

def _byte_positions(row: _Row, positions: list[int]) -> list[int]:
    """Character offsets (segment boundaries only) -> UTF-8 byte offsets."""
    if row.text.isascii():
        return positions
    cb = {}
    b = 0
    cb[0] = 0
    for s, end in zip(row.segs, row.bounds[1:]):
        b += len(s.text.encode("utf-8"))
        cb[end] = b
    return [cb[p] for p in positions]


def _labels_np(np, ids, starts, ends, spans):
    """Reference-free vector rule: token trains iff [start, end) inside one span and non-empty."""
    if not spans:
        return np.full(len(ids), IGNORE, dtype=np.int64)
    S = np.fromiter((a for a, _ in spans), np.int64, len(spans))
    E = np.fromiter((b for _, b in spans), np.int64, len(spans))
    j = np.searchsorted(S, starts, side="right") - 1
    jc = np.clip(j, 0, None)
    ok = (j >= 0) & (ends > starts) & (ends <= E[jc])
    return np.where(ok, ids, IGNORE)


def _offsets_path(row: _Row, info: TokenizerInfo, np):
    """ids and labels from the tokenizer's own character offsets (no length table)."""
    if row.pieces:
        ids: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        for start, item in _runs(row, info):
            if isinstance(item, int):
                ids.append(item)
                n = info.special_len[item]
                starts.append(start)
                ends.append(start + n)
            else:
                enc = info.rust_split.encode(item, add_special_tokens=False)
                ids.extend(enc.ids)
                for a, b in enc.offsets:
                    starts.append(start + a)
                    ends.append(start + b)
    else:
        enc = info.rust.encode(row.text, add_special_tokens=False)
        ids = enc.ids
        starts = [a for a, _ in enc.offsets]
        ends = [b for _, b in enc.offsets]
    ia = np.asarray(ids, dtype=np.int64)
    labels = _labels_np(np, ia, np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64),
                        row.spans)
    return list(ids), labels.tolist()


def _pieces_ids(row: _Row, info: TokenizerInfo) -> list[int]:
    runs = _runs(row, info)
    texts = [t for _, t in runs if isinstance(t, str)]
    encs = iter(info.rust_split.encode_batch_fast(texts, add_special_tokens=False)) if texts else iter(())
    ids: list[int] = []
    for _, item in runs:
        if isinstance(item, int):
            ids.append(item)
        else:
            ids.extend(next(encs).ids)
    return ids


def encode_rows(fmt, conversations: Sequence[Any], tokenizer: Any, opts: Options,
                row_numbers: Sequence[int] | None = None, tools: Sequence[Any] | None = None) -> list[RowResult]:
    """Tokenize and label many conversations (the engine behind every public entry point).
    ``tools``: per conversation, its tool definitions or None (formats with tool support)."""
    import numpy as np

    info = tokenizer_info(tokenizer)
    warn_hazards(fmt, info)
    enc = None
    if opts.backend != "hf":
        enc = info.tiktoken()
        if enc is None and opts.backend == "tiktoken":
            raise TmplcError("backend='tiktoken' is not available for this tokenizer (needs the tiktoken "
                             "package and a byte-level BPE vocabulary that verifies identical ids)")
    # fast path (tiktoken backend): a compiled per-format plan gives ids and labels directly for the
    # rows it provably handles exactly; every other row takes the generic path below
    plan = get_plan(fmt, info, opts.policy, enc) if enc is not None else None
    fast: dict[int, tuple] = {}
    rows: list[_Row | None] = []
    results: list[RowResult] = []
    for k, msgs in enumerate(conversations):
        row_tools = tools[k] if tools is not None else None
        if plan is not None and not row_tools:
            out = plan.encode(msgs)
            if out is not None:
                fast[k] = out
                rows.append(None)
                results.append(RowResult())
                continue
        try:
            r = _render(fmt, msgs, info, opts, tools=row_tools)
            rows.append(r)
            results.append(r.result or RowResult())
        except MessageError as e:
            rn = row_numbers[k] if row_numbers is not None else None
            err = MessageError(e.index, e.message, row=rn) if rn is not None else e
            rows.append(None)
            results.append(RowResult(status="error", reason=e.message if e.index is None
                                     else f"message {e.index}: {e.message}", error=err))

    # -- ids: one pass per row (one batch call) ------------------------------------------------
    table = info.surface
    fast_idx = [k for k, r in enumerate(rows) if r is not None and not r.pieces and info.row_table_ok(r.text)]
    slow_idx = [k for k, r in enumerate(rows) if r is not None and (r.pieces or not info.row_table_ok(r.text))]
    if fast_idx:
        texts = [rows[k].text for k in fast_idx]
        if enc is not None:
            id_lists = enc.encode_batch(texts)
        else:
            id_lists = [e.ids for e in info.rust.encode_batch_fast(texts, add_special_tokens=False)]
        for k, ids in zip(fast_idx, id_lists):
            rows[k].ids = ids
    for k in slow_idx:
        r = rows[k]
        if r.pieces and info.row_table_ok(r.text):
            r.ids = _pieces_ids(r, info)
            fast_idx.append(k)

    # -- labels from the length table, vectorised over the batch ------------------------------
    labels_of: dict[int, list[int]] = {}
    redo: list[int] = []
    if fast_idx and table is not None:
        fast_idx.sort()
        counts = np.fromiter((len(rows[k].ids) for k in fast_idx), np.int64, len(fast_idx))
        total = int(counts.sum())
        flat = np.fromiter(chain.from_iterable(rows[k].ids for k in fast_idx), np.int64, total)
        lens = table[flat] if total else np.zeros(0, np.int64)
        cum = np.cumsum(lens)
        row_first = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        cum0 = np.concatenate(([0], cum))
        before = cum0[row_first]  # sum of lengths before each row's first token
        row_of = np.repeat(np.arange(len(fast_idx)), counts)
        local_end = cum - before[row_of]
        nbytes = []
        all_S: list[int] = []
        all_E: list[int] = []
        base = 0
        bases = []
        for k in fast_idx:
            r = rows[k]
            nb = len(r.text) if r.text.isascii() else len(r.text.encode("utf-8"))
            nbytes.append(nb)
            bases.append(base)
            if r.spans:
                flatpos = [p for sp in r.spans for p in sp]
                bp = _byte_positions(r, flatpos)
                for q in range(0, len(bp), 2):
                    all_S.append(base + bp[q])
                    all_E.append(base + bp[q + 1])
            base += nb + 1  # +1: a gap so that spans of consecutive rows never touch
        bases_a = np.asarray(bases, dtype=np.int64)
        ends_g = local_end + bases_a[row_of]
        starts_g = ends_g - lens
        if all_S:
            S = np.asarray(all_S, dtype=np.int64)
            E = np.asarray(all_E, dtype=np.int64)
            j = np.searchsorted(S, starts_g, side="right") - 1
            ok = (j >= 0) & (lens > 0) & (ends_g <= E[np.clip(j, 0, None)])
            lab = np.where(ok, flat, IGNORE)
        else:
            lab = np.full(total, IGNORE, dtype=np.int64)
        # per-row exactness check: the lengths must sum to the row's byte length, none negative
        row_sum = np.zeros(len(fast_idx), np.int64)
        row_min = np.zeros(len(fast_idx), np.int64)
        if total:
            np.add.at(row_sum, row_of, lens)
            row_min[:] = 0
            neg = row_of[lens < 0]
            row_min[np.unique(neg)] = -1
        lab_list = lab.tolist()
        pos = 0
        for q, k in enumerate(fast_idx):
            c = int(counts[q])
            if row_sum[q] != nbytes[q] or row_min[q] < 0:
                redo.append(k)
            else:
                labels_of[k] = lab_list[pos:pos + c]
            pos += c
    elif fast_idx:
        redo.extend(fast_idx)
    for k in sorted(set(slow_idx) - set(labels_of) | set(redo)):
        if k in labels_of:
            continue
        r = rows[k]
        r.ids, labels_of[k] = _offsets_path(r, info, np)

    # -- BOS, checks, truncation ----------------------------------------------------------------
    for k, r in enumerate(rows):
        if r is None:
            f = fast.get(k)
            if f is not None:
                _finish(results[k], f[0], f[1], f[2], f[3], info, opts, row_numbers, k)
            continue
        _finish(results[k], list(r.ids), labels_of[k], None, None, info, opts, row_numbers, k)
        if r.call_spans is not None and results[k].labels is not None:
            results[k].n_tool_call_trained = _call_tokens(r, results[k], info, np)
    return results


def _needs_bos(ids: list[int], info: TokenizerInfo) -> bool:
    """Whether the formatter prepends a BOS to these ids (the format rendered none, the tokenizer adds one)."""
    return info.bos_id is not None and info.adds_bos and (not ids or ids[0] != info.bos_id)


def encode_prompts(fmt, prompts: Sequence[Any], tokenizer: Any, opts: Options,
                   tools: Sequence[Any] | None = None) -> list:
    """Token ids of each prompt rendered with the generation prompt, by the rules of
    :func:`encode_rows` (one tokenizer pass without added special tokens, special-token text in
    content per ``opts.special_tokens``, one BOS): the prompt as generation sees it.  Nothing is
    labelled.  ``tools``: per prompt, its tool definitions or None.  Per prompt: its ids, or the
    MessageError of messages the format cannot render."""
    info = tokenizer_info(tokenizer)
    out: list = []
    plain: list[tuple[int, str]] = []
    for k, msgs in enumerate(prompts):
        try:
            row = _render(fmt, msgs, info, opts, add_generation_prompt=True,
                          tools=None if tools is None else tools[k])
        except MessageError as e:
            out.append(e)
            continue
        if row.pieces:
            out.append(_pieces_ids(row, info))
        else:
            out.append(None)
            plain.append((k, row.text))
    if plain:
        encs = info.rust.encode_batch_fast([t for _, t in plain], add_special_tokens=False)
        for (k, _), enc in zip(plain, encs):
            out[k] = list(enc.ids)
    for ids in out:
        if isinstance(ids, list) and _needs_bos(ids, info):
            ids.insert(0, info.bos_id)
    return out


def _call_tokens(row: _Row, res: RowResult, info: TokenizerInfo, np) -> int:
    """The trained tokens of ``res`` that lie inside the row's tool calls (by the same
    inside-a-span rule as the labels)."""
    if not row.call_spans:
        return 0
    from dataclasses import replace

    ids, in_call = _offsets_path(replace(row, spans=row.call_spans), info, np)
    raw = row.ids or []
    shift = 1 if _needs_bos(raw, info) else 0
    return sum(1 for j, lab in enumerate(res.labels)
               if lab != IGNORE and 0 <= j - shift < len(in_call) and in_call[j - shift] != IGNORE)


def _finish(res: RowResult, ids: list[int], labels: list[int], nb: int | None, n_trained: int | None,
            info: TokenizerInfo, opts: Options, row_numbers, k: int) -> None:
    """BOS, the one-BOS check, dropping and truncation for one row.  ``nb`` (BOS count in ``ids``)
    and ``n_trained`` are counted here when not given."""
    bos = info.bos_id
    maxlen = opts.max_seq_length
    if bos is not None:
        if _needs_bos(ids, info):
            ids.insert(0, bos)
            labels.insert(0, IGNORE)
            if nb is not None:
                nb += 1
        if nb is None:
            nb = ids.count(bos)
        # Exactly one BOS at the start.  A BOS further in can only come from the template itself
        # (content's special-token text is plain text unless special_tokens="control"): it is the
        # format's own per-turn BOS (Llama-2's "<s>[INST]" on every turn), not a double BOS.
        if len(ids) > 1 and ids[0] == bos and ids[1] == bos \
                and not (res.special_in_content and opts.special_tokens == "control"):
            rn = row_numbers[k] if row_numbers is not None else None
            res.status, res.reason = "error", DOUBLE_BOS
            res.error = TmplcError((f"row {rn}: " if rn is not None else "") + res.reason)
            return
    if n_trained is None:
        n_trained = len(labels) - labels.count(IGNORE)
    res.n_tokens = res.full_tokens = len(ids)
    res.full_trained = n_trained
    if n_trained == 0:
        res.status, res.reason = "dropped", "no trainable tokens"
        res.n_trained = 0
        return
    if maxlen is not None and len(ids) > maxlen:
        tail = labels[maxlen:]
        res.cut_trained = len(tail) - tail.count(IGNORE)
        if opts.truncation == "error":
            rn = row_numbers[k] if row_numbers is not None else None
            res.status = "error"
            res.reason = f"{len(ids)} tokens > max_seq_length {maxlen}"
            res.error = TmplcError((f"row {rn}: " if rn is not None else "") + res.reason +
                                   " (truncation='error')")
            return
        if opts.truncation == "drop":
            res.status, res.reason = "dropped", "longer than max_seq_length"
            return
        ids = ids[:maxlen]
        labels = labels[:maxlen]
        n_trained = len(labels) - labels.count(IGNORE)
        res.n_tokens = maxlen
        if n_trained == 0:
            res.status, res.reason = "dropped", "no trainable tokens left after truncation"
            return
        res.status = "truncated"
    res.input_ids = ids
    res.labels = labels
    res.n_trained = n_trained


def result_dict(res: RowResult, assistant_masks: bool = True) -> dict:
    out = {
        "input_ids": res.input_ids,
        "labels": res.labels,
        "attention_mask": [1] * len(res.input_ids),
    }
    if assistant_masks:
        out["assistant_masks"] = [0 if x == IGNORE else 1 for x in res.labels]
    if res.n_tool_call_trained is not None:
        out["n_tool_call_tokens"] = res.n_tool_call_trained
    return out


def tokenize_messages(fmt, messages, tokenizer, *, policy=None, max_seq_length: int | None = None,
                      truncation: str = "truncate", special_tokens: str = "text", backend: str = "auto",
                      assistant_masks: bool = True, tools=None) -> dict:
    """``{"input_ids", "labels", "attention_mask", "assistant_masks"}`` for one conversation, and
    ``"n_tool_call_tokens"`` (trained tokens inside assistant tool calls) when it has tool calls.
    ``tools``: the tool definitions (a format with tool support, see ``docs/tools.md``).

    ``policy``: a Policy or a name (see ``tmplc.formatter.policies``; default: assistant content +
    end-of-turn).  ``max_seq_length`` with ``truncation`` = truncate (keep the start) | drop | error.
    ``special_tokens``: "text" (default: special-token text in content is plain text) or "control".
    ``backend``: auto (tiktoken where verified exact, else HF) | hf | tiktoken.

    Raises MessageError for a conversation the format cannot render, and RowDropped when the
    conversation would be dropped from a dataset (no trainable token, too long under "drop").
    """
    opts = make_options(policy, max_seq_length, truncation, special_tokens, backend)
    res = encode_rows(fmt, [messages], tokenizer, opts, tools=None if tools is None else [tools])[0]
    if res.status == "error":
        raise res.error
    if res.status == "dropped":
        raise RowDropped(res.reason)
    return result_dict(res, assistant_masks)
