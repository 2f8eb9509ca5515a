"""Preference pairs (DPO, ORPO, SimPO...): one prompt, two completions, as separate token columns.

::

    out = fmt.tokenize_pair(prompt, chosen, rejected, tokenizer)   # = tokenize_pair(fmt, ...)
    out["prompt_input_ids"], out["chosen_input_ids"], out["rejected_input_ids"]
    out["chosen_labels"], out["rejected_labels"]

``prompt``: a list of messages (or a string: one user message).  ``chosen`` / ``rejected``: a
string (one assistant message), one message, or a list of messages continuing the prompt (an
assistant reply first; tool results and further turns may follow).

**The columns** follow TRL's convention (prompt and completions separate; the trainer scores
``prompt_input_ids + chosen_input_ids``):

* ``prompt_input_ids``: the prompt rendered with the generation prompt (the assistant header),
  tokenized as generation tokenizes it: the same ids for both completions, exactly one BOS.
* ``chosen_input_ids`` / ``rejected_input_ids``: the rest of the rendered conversation: the
  completion, its end-of-turn and whatever the format renders after it.  No BOS.
* ``chosen_labels`` / ``rejected_labels``: as long as the completion ids; the id where the masking
  policy trains (default: assistant content + end-of-turn, see ``tmplc.formatter.policies``),
  -100 elsewhere (a tool result inside a multi-message completion, text the format adds after
  the end-of-turn under a policy that does not train it, a token the policy leaves out).  The
  prompt has no labels: in a pair, the earlier assistant turns of the prompt are context.

TRL 1.x names the id columns ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` and trains every
completion token; :data:`TRL_COLUMNS` renames them (see docs/preference.md).

**Exact split.**  For each completion X, ``prompt_input_ids + X_input_ids`` is exactly the
formatter's tokenization of the conversation prompt + X (``ChatFormat.tokenize``: one tokenizer
pass, one BOS, the same special-token rule), and ``prompt_input_ids`` is exactly the tokenization
of the prompt alone with the generation prompt.  Both hold only when the rendered prompt is a
prefix of the rendered conversation and no token spans the prompt/completion boundary.  Where
either fails, the pair is **refused** (``PairError``; ``tmplc format --preference`` rejects the
row and names it), never split at a guess:

* "a token merges across the prompt/chosen boundary": BPE joined the end of the generation
  prompt with the start of the completion (e.g. Qwen's ``assistant\\n`` + a completion starting
  with ``\\n`` is one ``\\n\\n`` token).  TRL cuts such pairs at the common token prefix, so its
  prompt ends earlier than the prompt the model sees at generation time; tmplc refuses instead.
* "the format renders the prompt differently when a completion follows".

Rows are read from the common preference dataset shapes by :func:`pair_from_row` (see there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Sequence

from tmplc.errors import MessageError, TmplcError
from tmplc.formatter.core import IGNORE, Options, encode_prompts, encode_rows, make_options
from tmplc.formatter.summary import FormatSummary

PAIR_COLUMNS = ("prompt_input_ids", "chosen_input_ids", "rejected_input_ids", "chosen_labels", "rejected_labels")
#: tmplc's id columns -> TRL 1.x's (``DataCollatorForPreference`` reads ``prompt_ids``, ``chosen_ids``, ``rejected_ids``)
TRL_COLUMNS = {"prompt_input_ids": "prompt_ids", "chosen_input_ids": "chosen_ids", "rejected_input_ids": "rejected_ids"}
PARTS = ("chosen", "rejected")


class PairError(TmplcError):
    """A preference row that cannot be tokenized exactly.  ``kind``: invalid (cannot be read as a
    pair), error (cannot be rendered or split exactly), dropped (no trainable token, too long);
    ``reason``: why; ``row``: the 0-based data row, when known."""

    exit_code = 2

    def __init__(self, reason: str, kind: str = "error", row: int | None = None) -> None:
        self.reason = reason
        self.kind = kind
        self.row = row
        super().__init__((f"row {row}: " if row is not None else "") + reason)


@dataclass
class PairResult:
    """One pair's outcome: ``columns`` (the five columns) when ``status`` is ok or truncated."""

    columns: dict | None = None
    status: str = "ok"                 # ok | truncated | invalid | error | dropped
    reason: str = ""
    n_tokens: int = 0                  # prompt + chosen + rejected
    n_trained: int = 0                 # trained tokens of both completions
    special_in_content: bool = False


# ----------------------------------------------------------------------------------------------
# reading pairs

def as_messages(value: Any, part: str, role: str) -> list[dict]:
    """``value`` (a string: one ``role`` message; one message; or a list of messages) as normalised
    messages (role aliases, content checks as ``tmplc format`` reads them); PairError naming
    ``part`` and the message index."""
    from tmplc.data.merged import RowProblem
    from tmplc.data.normalize import _messages

    if isinstance(value, str):
        value = [{"role": role, "content": value}]
    elif isinstance(value, dict):
        value = [value]
    try:
        return _messages(value, part)
    except MessageError as e:
        raise PairError(f"{part} message {e.index}: {e.message}", "invalid") from None
    except RowProblem as e:
        raise PairError(f"{part}: {e}", "invalid") from None


def check_pair(prompt: list[dict], chosen: list[dict], rejected: list[dict]) -> None:
    """The shape every pair must have: a prompt not ending with an assistant message, and two
    completions that each start with an assistant message."""
    if prompt[-1]["role"] == "assistant":
        raise PairError(f"the prompt ends with an assistant message (message {len(prompt) - 1}); a completion "
                        "follows a user or system message", "invalid")
    for part, msgs in zip(PARTS, (chosen, rejected)):
        if msgs[0]["role"] != "assistant":
            raise PairError(f"{part} must start with an assistant message (the completion), got role "
                            f"{msgs[0]['role']!r}", "invalid")


def split_shared_prompt(chosen: list[dict], rejected: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """(prompt, chosen completion, rejected completion) from two whole conversations: the prompt is
    the longest run of leading messages they share that both continue with an assistant message
    (Anthropic HH / UltraFeedback style).  PairError when there is none."""
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    if n == len(chosen) == len(rejected):
        raise PairError("chosen and rejected are the same conversation", "invalid")
    if n == 0:
        raise PairError("chosen and rejected share no prompt: their first messages differ", "invalid")
    k = n
    while k > 0 and not (chosen[k - 1]["role"] != "assistant" and k < len(chosen) and k < len(rejected)
                         and chosen[k]["role"] == "assistant" == rejected[k]["role"]):
        k -= 1
    if k == 0:
        raise PairError(f"chosen and rejected share {n} leading message(s) but no prompt that an assistant "
                        "reply follows in both", "invalid")
    return chosen[:k], chosen[k:], rejected[k:]


_HH = re.compile(r"\n\n(Human|Assistant):[ ]?")


def _transcript(text: str, part: str) -> list[dict]:
    """An Anthropic HH transcript (``"\\n\\nHuman: ...\\n\\nAssistant: ..."``) as messages."""
    bits = _HH.split(text)
    if bits[0] != "" or len(bits) < 3:
        raise PairError(f"{part} is text without a prompt column, and not an HH transcript (\"\\n\\nHuman: ..."
                        "\\n\\nAssistant: ...\"): give a prompt column or message lists", "invalid")
    return as_messages([{"role": "user" if who == "Human" else "assistant", "content": content}
                        for who, content in zip(bits[1::2], bits[2::2])], part, "assistant")


def _ci(row: dict, name: str) -> tuple[bool, Any]:
    for k, v in row.items():
        if str(k).lower() == name:
            return True, v
    return False, None


def pair_tools(row: Any, column: str | None = "tools") -> list | None:
    """A preference row's (a parsed row: ``materialize``) tool definitions (its ``column``, as
    :func:`tmplc.data.normalize.row_tools` reads them: a list, or a JSON string of one), or None;
    PairError (kind invalid) when the
    column holds something else.  They go with the prompt: both conversations of the pair are
    rendered with them, as generation sees the prompt."""
    from tmplc.data.merged import RowProblem
    from tmplc.data.normalize import row_tools

    try:
        return row_tools(row, column)
    except RowProblem as e:
        raise PairError(str(e), "invalid") from None


def pair_from_row(row: Any) -> tuple[list[dict], list[dict], list[dict]]:
    """(prompt, chosen, rejected) messages from one data row (column names case-insensitive):

    * ``prompt``, ``chosen``, ``rejected`` as strings (a user message, two assistant messages);
    * ``prompt`` as messages and ``chosen`` / ``rejected`` as a message, a string or message lists
      continuing it (TRL's conversational preference shape);
    * ``chosen`` / ``rejected`` as whole conversations sharing their prompt (Anthropic HH,
      UltraFeedback): the shared prompt is extracted (:func:`split_shared_prompt`); with a
      ``prompt`` column too (UltraFeedback's), it must be that shared prompt, or the text of its
      last message;
    * ``chosen`` / ``rejected`` as Anthropic HH text transcripts (``\\n\\nHuman: ...``).

    Raises PairError (kind invalid) saying what is wrong."""
    from tmplc.data.readers import BadRow, _json_type, materialize

    row = materialize(row)
    if isinstance(row, BadRow):
        raise PairError(row.reason, "invalid")
    if not isinstance(row, dict):
        raise PairError(f"a row must be an object with columns, got {_json_type(row)}", "invalid")
    has_p, prompt = _ci(row, "prompt")
    values = {}
    for part in PARTS:
        has, v = _ci(row, part)
        if not has or v is None:
            raise PairError(f"no {part!r} column (a preference row needs chosen and rejected); columns: "
                            f"{sorted(map(str, row))}", "invalid")
        values[part] = v
    if has_p and prompt is None:
        has_p = False
    c, r = values["chosen"], values["rejected"]
    if not has_p and isinstance(c, str) and isinstance(r, str):
        return (*split_shared_prompt(_transcript(c, "chosen"), _transcript(r, "rejected")),)
    cm = as_messages(c, "chosen", "assistant")
    rm = as_messages(r, "rejected", "assistant")
    whole = cm[0]["role"] != "assistant" and rm[0]["role"] != "assistant"
    if not has_p:
        if not whole:
            raise PairError("no 'prompt' column, and chosen/rejected are completions (they start with an assistant "
                            "message): give a prompt column, or chosen/rejected as whole conversations", "invalid")
        p, cm, rm = split_shared_prompt(cm, rm)
    elif whole:
        p, cm, rm = split_shared_prompt(cm, rm)
        given = as_messages(prompt, "prompt", "user")
        if given != p and not (isinstance(prompt, str) and prompt == p[-1]["content"]):
            raise PairError("the prompt column is not the prompt that chosen and rejected share "
                            f"({len(p)} message(s) ending with {p[-1]['content'][:60]!r})", "invalid")
    else:
        p = as_messages(prompt, "prompt", "user")
    check_pair(p, cm, rm)
    return p, cm, rm


# ----------------------------------------------------------------------------------------------
# tokenizing pairs

def _where(e: MessageError, n_prompt: int, part: str) -> str:
    """A render error's message index, in the prompt or in the completion."""
    if e.index is None:
        return f"{part}: {e.message}"
    if e.index < n_prompt:
        return f"prompt message {e.index}: {e.message}"
    return f"{part} message {e.index - n_prompt}: {e.message}"


def _boundary_reason(fmt, info, prompt: list[dict], completion: list[dict], part: str,
                     prompt_ids: list[int], ids: list[int], tools=None) -> str:
    bos, eos = info.bos_token or "", info.eos_token or fmt.meta.eos_token
    alone = fmt.render(prompt, add_generation_prompt=True, bos_token=bos, eos_token=eos, tools=tools)
    full = fmt.render(prompt + completion, bos_token=bos, eos_token=eos, tools=tools)
    if not full.startswith(alone):
        i = next((j for j, (a, b) in enumerate(zip(alone, full)) if a != b), min(len(alone), len(full)))
        return (f"the format renders the prompt differently when {part} follows: at character {i} the prompt "
                f"alone has {alone[i:i + 24]!r}, the conversation {full[i:i + 24]!r}")
    j = next((j for j, (a, b) in enumerate(zip(prompt_ids, ids)) if a != b), min(len(prompt_ids), len(ids)))
    tok = info.rust.id_to_token
    return (f"a token merges across the prompt/{part} boundary: the prompt alone ends in "
            f"{[tok(t) for t in prompt_ids[j:]]}, the conversation has {[tok(t) for t in ids[j:len(prompt_ids) + 1]]} "
            f"there; start {part} differently (e.g. without leading whitespace) or use a format whose generation "
            "prompt ends on a token boundary")


def encode_pairs(fmt, pairs: Sequence[tuple[list[dict], list[dict], list[dict]]], tokenizer: Any, opts: Options,
                 row_numbers: Sequence[int] | None = None, tools: Sequence[Any] | None = None) -> list[PairResult]:
    """Tokenize many (prompt, chosen, rejected) message triples (already checked by
    :func:`check_pair`): both conversations of every pair in one ``encode_rows`` call, each prompt
    by one batched ``encode_prompts`` call.  ``tools``: per pair, its tool definitions or None
    (the prompt and both conversations are rendered with them).  Never raises for a bad pair: its
    result says why (status, reason)."""
    from tmplc.formatter.tokenizer_info import tokenizer_info

    info = tokenizer_info(tokenizer)
    whole = replace(opts, max_seq_length=None, truncation="truncate")  # length limits apply to the pair
    convs = [p + x for p, c, r in pairs for x in (c, r)]
    nums = None if row_numbers is None else [n for n in row_numbers for _ in PARTS]
    conv_tools = None if tools is None else [t for t in tools for _ in PARTS]
    fulls = encode_rows(fmt, convs, info, whole, row_numbers=nums, tools=conv_tools)
    prompts = encode_prompts(fmt, [p for p, _, _ in pairs], info, opts, tools=tools)
    out = []
    for k, (p, c, r) in enumerate(pairs):
        out.append(_one_pair(fmt, info, opts, p, (c, r), fulls[2 * k:2 * k + 2], prompts[k],
                             None if tools is None else tools[k]))
    return out


def _one_pair(fmt, info, opts: Options, prompt: list[dict], completions: tuple, fulls: list,
              prompt_ids: list[int] | MessageError, tools=None) -> PairResult:
    res = PairResult(special_in_content=any(f.special_in_content for f in fulls))
    if isinstance(prompt_ids, MessageError):
        res.status, res.reason = "error", _where(prompt_ids, len(prompt), "prompt")
        return res
    n = len(prompt_ids)
    cols: dict[str, list[int]] = {"prompt_input_ids": prompt_ids}
    for part, comp, full in zip(PARTS, completions, fulls):
        if full.status == "error":
            err = full.error
            res.status = "error"
            res.reason = _where(err, len(prompt), part) if isinstance(err, MessageError) else f"{part}: {full.reason}"
            return res
        if full.input_ids is None:  # dropped: no token of the conversation trains
            res.status, res.reason = "dropped", f"{part}: no trainable token in the completion"
            return res
        ids, labels = full.input_ids, full.labels
        if ids[:n] != prompt_ids:
            res.status, res.reason = "error", _boundary_reason(fmt, info, prompt, comp, part, prompt_ids, ids,
                                                               tools)
            return res
        lab = labels[n:]
        if all(x == IGNORE for x in lab):
            res.status, res.reason = "dropped", f"{part}: no trainable token in the completion"
            return res
        cols[f"{part}_input_ids"] = ids[n:]
        cols[f"{part}_labels"] = lab
    cols = {c: cols[c] for c in PAIR_COLUMNS}
    res.status = _limit(cols, opts, res)
    if res.status in ("ok", "truncated"):
        res.columns = cols
        res.n_tokens = sum(len(cols[c]) for c in PAIR_COLUMNS[:3])
        res.n_trained = sum(len(cols[c]) - cols[c].count(IGNORE) for c in PAIR_COLUMNS[3:])
    return res


def _limit(cols: dict, opts: Options, res: PairResult) -> str:
    """``max_seq_length`` for a pair: prompt + the longer completion; truncation keeps the start of
    each completion (as TRL's ``keep_start``)."""
    maxlen = opts.max_seq_length
    n = len(cols["prompt_input_ids"])
    longest = n + max(len(cols[f"{p}_input_ids"]) for p in PARTS)
    if maxlen is None or longest <= maxlen:
        return "ok"
    if opts.truncation == "error":
        res.reason = f"{longest} tokens > max_seq_length {maxlen}"
        return "error"
    if opts.truncation == "drop":
        res.reason = "longer than max_seq_length"
        return "dropped"
    if n >= maxlen:
        res.reason = "the prompt alone fills max_seq_length"
        return "dropped"
    for p in PARTS:
        cols[f"{p}_input_ids"] = cols[f"{p}_input_ids"][:maxlen - n]
        cols[f"{p}_labels"] = cols[f"{p}_labels"][:maxlen - n]
        if all(x == IGNORE for x in cols[f"{p}_labels"]):
            res.reason = f"{p}: no trainable token left after truncation"
            return "dropped"
    return "truncated"


def tokenize_pair(fmt, prompt: Any, chosen: Any, rejected: Any, tokenizer: Any, *, policy=None,
                  max_seq_length: int | None = None, truncation: str = "truncate", special_tokens: str = "text",
                  backend: str = "auto", tools: Sequence[dict] | None = None) -> dict:
    """The five columns (module docstring) for one preference pair.

    ``prompt``: messages or a string (one user message); ``chosen`` / ``rejected``: a string (one
    assistant message), a message, or messages continuing the prompt.  Options as in
    ``tokenize_messages``; ``max_seq_length`` bounds prompt + the longer completion
    (``truncation``: truncate keeps the start of each completion | drop | error).  ``tools``: the
    tool definitions beside the messages (a format with tool support, e.g. ``qwen3-tools``): the
    prompt and both conversations are rendered with them, so the completions may hold tool calls
    (trained as the policy says) and tool results (never trained).

    Raises PairError (``.kind`` invalid | error | dropped, ``.reason``) for a pair that cannot be
    read, rendered or split exactly, or that would be dropped."""
    p = as_messages(prompt, "prompt", "user")
    c = as_messages(chosen, "chosen", "assistant")
    r = as_messages(rejected, "rejected", "assistant")
    check_pair(p, c, r)
    opts = make_options(policy, max_seq_length, truncation, special_tokens, backend)
    res = encode_pairs(fmt, [(p, c, r)], tokenizer, opts, tools=None if tools is None else [list(tools)])[0]
    if res.columns is None:
        raise PairError(res.reason, res.status)
    return res.columns


def _encode_safely(fmt, pairs: list, tokenizer: Any, opts: Options, nums: list[int],
                   tools: list | None = None) -> list[PairResult]:
    """encode_pairs, or (when it raises something unexpected) pair by pair, the exception
    rejecting only its own pair: one hostile row never aborts a run."""
    if not pairs:
        return []
    try:
        return encode_pairs(fmt, pairs, tokenizer, opts, nums, tools)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception:
        pass
    out = []
    for k, (pair, n) in enumerate(zip(pairs, nums)):
        try:
            out.extend(encode_pairs(fmt, [pair], tokenizer, opts, [n], None if tools is None else [tools[k]]))
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as e:
            first = str(e).splitlines()[0][:200] if str(e) else ""
            out.append(PairResult(status="error", reason=f"cannot be tokenized: {type(e).__name__}: {first}"))
    return out


def process_pair_rows(fmt, tokenizer: Any, opts: Options, numbers: Sequence[int],
                      rows: Sequence[Any], tools_column: str | None = "tools") -> tuple[list[tuple[int, dict]],
                                                                                        FormatSummary]:
    """One batch of data rows -> ([(row number, columns)], summary): every row is output or
    rejected with its kind and reason (``rows_in == rows_out + rows_rejected``).  A row's
    ``tools_column`` holds its tool definitions (:func:`pair_tools`)."""
    summary = FormatSummary(rows_in=len(rows))
    pairs, nums, tools = [], [], []
    from tmplc.data.readers import materialize

    for n, row in zip(numbers, rows):
        row = materialize(row)  # parsed once, for its tools and its pair
        try:
            t = pair_tools(row, tools_column)
            pairs.append(pair_from_row(row))
            tools.append(t)
            nums.append(n)
        except PairError as e:
            summary.reject(n, "invalid", e.reason)
    out = []
    for n, res in zip(nums, _encode_safely(fmt, pairs, tokenizer, opts, nums,
                                           tools if any(t is not None for t in tools) else None)):
        if res.special_in_content:
            summary.special_token_rows += 1
        if res.columns is None:
            summary.reject(n, res.status, res.reason)
            continue
        summary.rows_out += 1
        summary.tokens += res.n_tokens
        summary.trained_tokens += res.n_trained
        summary.truncated += res.status == "truncated"
        out.append((n, res.columns))
    summary.rejected.sort(key=lambda e: e[0])
    summary.examples = summary.rejected[:len(summary.examples)]
    summary.check()
    return out, summary
