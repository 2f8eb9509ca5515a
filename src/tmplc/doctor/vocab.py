"""Pad and vocabulary-range findings: ``pad-missing``, ``pad-is-eos``, ``pad-is-eot``,
``pad-out-of-range``, ``vocab-out-of-range``.

The pad token is taken from the tokenizer (tokenizer_config.json ``pad_token``) and, as a second
opinion, from config.json's ``pad_token_id`` (a trainer may use either)."""

from __future__ import annotations

from tmplc.doctor.findings import Finding

WHAT_BREAKS = ("a collator that masks labels by pad id (transformers' DataCollatorForLanguageModeling, "
               "the usual labels[labels == pad_id] = -100) erases every {what} label, so the model never "
               "learns to stop")


def pad_findings(folder, facts, eot: str | None, eot_id: int | None, rows: int | None) -> list[Finding]:
    out: list[Finding] = []
    pads: dict[int, str] = {}
    if facts.pad_id is not None:
        pads[facts.pad_id] = "tokenizer_config.json pad_token"
    cfg_pad = (folder.text_config() or {}).get("pad_token_id") if folder.config else None
    if isinstance(cfg_pad, int) and cfg_pad not in pads:
        pads[cfg_pad] = "config.json pad_token_id"
    if not pads:
        out.append(Finding(
            "pad-missing", "warning",
            "no pad token (tokenizer_config.json has no pad_token, config.json no pad_token_id): trainers then "
            "set pad = EOS (TRL, many notebooks), and " + WHAT_BREAKS.format(what="EOS/end-of-turn"),
            "tmplc fix sets a pad token that is none of BOS/EOS/end-of-turn (a reserved token, or a new one)",
            {}))
        return out
    for pid, where in pads.items():
        ptxt = facts.text(pid)
        if rows is not None and pid >= rows:
            out.append(Finding(
                "pad-out-of-range", "error",
                f"the pad token {facts.show(pid)} ({where}) is >= the embedding's {rows} rows: an index error "
                "(or a silent out-of-bounds read) at the first padded batch",
                "tmplc fix picks an in-range pad token", {"pad_id": pid, "rows": rows, "source": where}))
        if eot_id is not None and pid == eot_id:
            out.append(Finding(
                "pad-is-eot", "error",
                f"the pad token {facts.show(pid)} ({where}) is the format's end-of-turn token {eot!r}: "
                + WHAT_BREAKS.format(what="end-of-turn"),
                "tmplc fix sets a distinct pad token; or use tmplc.formatter.DataCollatorForTmplc (pads labels by "
                "position)", {"pad_id": pid, "eot_id": eot_id, "source": where}))
        elif facts.eos_id is not None and (pid == facts.eos_id or (ptxt is not None and ptxt == facts.eos)):
            eos_ends_turns = eot_id is None or eot_id == facts.eos_id
            out.append(Finding(
                "pad-is-eos", "error" if eos_ends_turns else "warning",
                f"the pad token {facts.show(pid)} ({where}) is the EOS token: "
                + (WHAT_BREAKS.format(what="EOS") if eos_ends_turns else
                   "the format's end-of-turn is a different token, so its labels survive a collator masking by "
                   "pad id, but every EOS label (e.g. of plain-text rows) is erased"),
                "tmplc fix sets a distinct pad token", {"pad_id": pid, "eos_id": facts.eos_id, "source": where}))
    return out


def vocab_findings(folder, facts, rows: int | None) -> list[Finding]:
    if rows is None:
        return []
    bad = sorted((i, t) for t, i in facts.added.items() if i >= rows)
    if not bad:
        return []
    shown = ", ".join(f"id {i} {t!r}" for i, t in bad[:12]) + (" ..." if len(bad) > 12 else "")
    return [Finding(
        "vocab-out-of-range", "error",
        f"{len(bad)} added token(s) have ids >= the embedding's {rows} rows: {shown}. Any row containing one "
        "indexes past the embedding (an index error, or garbage on GPU)",
        "resize the embeddings to cover them (model.resize_token_embeddings(len(tokenizer)), new rows set to the "
        "trained mean: tmplc fix does), or remove the tokens from the tokenizer",
        {"ids": [i for i, _ in bad], "tokens": [t for _, t in bad], "rows": rows})]
