"""Independent brute-force references for the formatter tests (no code shared with tmplc.formatter).

* trainability per character comes from the core renderer's own ``Segment.trainable`` (the
  default policy) or from the small per-policy rule written out again here;
* token spans come from HF's ``return_offsets_mapping`` on ``tokenizer(text)``;
* a token trains iff every character of its span is trainable (and the span is non-empty).
"""

from __future__ import annotations

IGNORE = -100


def char_flags(segments, policy: str = "default") -> list[bool]:
    """Per character of the rendered text: trainable?  Written independently of tmplc.formatter."""
    last_asst = max((s.message_index for s in segments if s.role == "assistant" and s.message_index is not None),
                    default=None)
    flags: list[bool] = []
    for s in segments:
        if policy == "default":
            f = s.trainable
        # "lead" ({REPLY}) is text the model writes before the content: it trains with it
        elif policy == "assistant_no_eot":
            f = s.role == "assistant" and s.part in ("lead", "content")
        elif policy == "assistant_header":
            f = s.role == "assistant" and s.part in ("prefix", "lead", "content", "suffix")
        elif policy == "last_turn":
            f = s.role == "assistant" and s.part in ("lead", "content", "suffix") and s.message_index == last_asst
        elif policy == "all":
            f = s.part in ("prefix", "lead", "content", "suffix")
        else:
            raise ValueError(policy)
        flags.extend([f] * len(s.text))
    return flags


def inside_labels(ids, offsets, flags) -> list[int]:
    out = []
    for i, (a, b) in zip(ids, offsets):
        out.append(i if b > a and all(flags[a:b]) else IGNORE)
    return out


def overlap_mask(offsets, flags) -> list[int]:
    """HF's documented rule (return_assistant_tokens_mask): a token overlapping the span trains."""
    return [1 if b > a and any(flags[a:b]) else 0 for a, b in offsets]


def straddles(offsets, flags) -> bool:
    return any(b > a and any(flags[a:b]) and not all(flags[a:b]) for a, b in offsets)


def special_strings(tokenizer) -> list[str]:
    """Every added token flagged special (``all_special_tokens`` lists only the named ones)."""
    return [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]


def _split_encode(tokenizer, text):
    """``tokenizer(text, split_special_tokens=True)``, leaving the tokenizer as it was: transformers
    sets the shared Rust backend's ``encode_special_tokens`` for that call and does not restore it."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    saved = backend.encode_special_tokens if backend is not None else None
    try:
        return tokenizer(text, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True)
    finally:
        if backend is not None:
            backend.encode_special_tokens = saved


def pieces_encode(tokenizer, segments):
    """Tokenize with special tokens recognised only in template text (content special-token text
    becomes plain text): (ids, char offsets).  Independent, slow, obvious implementation."""
    specials = sorted(special_strings(tokenizer), key=len, reverse=True)
    runs = []  # (start, text) or (start, token string, True)
    buf, buf_start, pos = "", 0, 0
    for s in segments:
        if s.part == "content":
            buf += s.text
            pos += len(s.text)
            continue
        t = s.text
        k = 0
        while k < len(t):
            hit = next((sp for sp in specials if t.startswith(sp, k)), None)
            if hit:
                if buf:
                    runs.append((buf_start, buf))
                runs.append((pos + k, hit, True))
                buf, buf_start = "", pos + k + len(hit)
                k += len(hit)
            else:
                buf += t[k]
                k += 1
        pos += len(t)
    if buf:
        runs.append((buf_start, buf))
    ids, offs = [], []
    for r in runs:
        if len(r) == 3:
            ids.append(tokenizer.convert_tokens_to_ids(r[1]))
            offs.append((r[0], r[0] + len(r[1])))
        else:
            enc = _split_encode(tokenizer, r[1])
            ids.extend(enc["input_ids"])
            offs.extend((r[0] + a, r[0] + b) for a, b in enc["offset_mapping"])
    return ids, offs


def has_special_text(tokenizer, segments) -> bool:
    text = "".join(s.text for s in segments)
    specials = special_strings(tokenizer)
    tmpl = sum(s.text.count(sp) for s in segments if s.part != "content" for sp in specials)
    return any(sp in s.text for s in segments if s.part == "content" for sp in specials) or \
        sum(text.count(sp) for sp in specials) != tmpl


def reference(tokenizer, fmt, messages, policy="default"):
    """(ids, labels, offsets, flags) by brute force."""
    segs = fmt.segments(messages, bos_token=tokenizer.bos_token or "",
                        eos_token=tokenizer.eos_token or fmt.meta.eos_token)
    text = "".join(s.text for s in segs)
    flags = char_flags(segs, policy)
    if has_special_text(tokenizer, segs):
        ids, offs = pieces_encode(tokenizer, segs)
    else:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offs = list(enc["input_ids"]), list(enc["offset_mapping"])
    labels = inside_labels(ids, offs, flags)
    bos = tokenizer.bos_token_id
    if bos is not None and tokenizer("a")["input_ids"][:1] == [bos] and ids[:1] != [bos]:
        ids, labels, offs = [bos] + ids, [IGNORE] + labels, [(0, 0)] + offs
    return ids, labels, offs, flags, segs


def trained_runs(tok, out) -> list[str]:
    """The decoded runs of consecutive trained tokens of a tokenized row (labels equal the ids)."""
    runs, cur = [], []
    for i, lab in zip(out["input_ids"], out["labels"]):
        if lab != IGNORE:
            assert lab == i
            cur.append(i)
        elif cur:
            runs.append(tok.decode(cur))
            cur = []
    if cur:
        runs.append(tok.decode(cur))
    return runs
