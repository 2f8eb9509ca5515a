"""Caveats of a format: exact renderings that still make fine-tunes go wrong.

A converted template is reproduced byte for byte, including its inconsistencies; this module
names them so that they are seen before training, not after.  Each caveat has a stable ``code``
(for tests and filters) and a message that says what happens and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tmplc.ir import Text

if TYPE_CHECKING:  # pragma: no cover
    from tmplc.ir import ChatFormat


@dataclass(frozen=True)
class Caveat:
    """One finding: ``code`` (stable identifier) and ``message`` (what and what to do)."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def _blank(frag) -> bool:
    """No token and no visible text: nothing that could end a turn."""
    return all(isinstance(p, Text) and not p.value.strip() for p in frag)


def caveats(fmt: "ChatFormat") -> list[Caveat]:
    """The caveats of ``fmt``, most serious first (empty for a consistent format)."""
    st = fmt.structure
    a = st.assistant
    out: list[Caveat] = []
    if _blank(a.suffix):
        out.append(Caveat(
            "no-end-of-turn",
            f"assistant turns end with {''.join(p.value for p in a.suffix if isinstance(p, Text))!r}: no "
            "end-of-turn token is trained, so the model does not learn to stop; add one ({EOS} or the "
            "format's end-of-turn token) after {OUTPUT}"))
    final = a.final_suffix
    if final is not None and _blank(final) and a.suffix:
        out.append(Caveat(
            "last-turn-open",
            f"the last answer of a conversation ends with {''.join(p.value for p in final if isinstance(p, Text))!r}"
            " instead of the turn's ending: trained on such renders, the model does not learn to stop after "
            "a final answer. Templates that do this often have a training variant (a variable such as "
            "training_prompt or is_training: convert with --var training_prompt=true)"))
    if a.prompt_only:
        out.append(Caveat(
            "prompt-not-in-training",
            f"the generation prompt adds {a.prompt_only!r} after the assistant prefix, which rendered "
            "(training) turns never contain: a model fine-tuned on these renders is prompted at inference "
            "with text it never saw before an answer (the original template does the same; tmplc keeps "
            "it exactly). Train on answers that start with it (e.g. reasoning in <think>...</think>) with "
            "a format whose turns contain it, or drop {PROMPT=...} for inference"))
    if a.drop_think:
        which = "first" if a.drop_think.startswith("first") else "last"
        fin = a.final
        if fin is not None and (not fin.drop_think or fin.think is not None):
            out.append(Caveat(
                "reasoning-dropped",
                f"earlier answers are rendered from after their {which} '</think>', and only the final answer "
                "(the conversation's last message) keeps its reasoning: in a multi-turn training row, the "
                "reasoning of every answer but the last is dropped (not trained); to train each answer's "
                "reasoning, make one row per answer (the conversation up to it)"))
        else:
            out.append(Caveat(
                "reasoning-dropped",
                f"answers are rendered from after their {which} '</think>': reasoning in the training data is "
                "dropped from every assistant turn (no reasoning is trained); to train reasoning, use a format "
                "without |drop_think"))
    elif a.final is not None and a.final.drop_think and a.final.think is None:
        which = "first" if a.final.drop_think.startswith("first") else "last"
        out.append(Caveat(
            "reasoning-dropped",
            f"the final answer (the conversation's last message) is rendered from after its {which} '</think>', "
            "while earlier answers keep their reasoning: a training row ending with an answer does not train "
            "that answer's reasoning (a one-exchange row trains none); train reasoning with rows that go on "
            "after the answer (a following user message), or use a format whose final answer keeps it"))
    if st.final_scope == "last_answer":
        out.append(Caveat(
            "not-append-only",
            "the last answer renders by the final answer's rule even when a user message follows it, and as an "
            "earlier answer once another answer does: a conversation's render is not the start of its "
            "continuation's (an inference prompt differs from the training rows that continue it, and a "
            "server's prompt cache is invalidated at every turn)"))
    double = _double_bos(fmt)
    if double:
        out.insert(0, Caveat(
            "double-bos",
            f"{double}: every tokenized conversation has two BOS tokens in a row, which tmplc format refuses "
            "(a model sees one BOS at inference); write BOS once: {BOS} alone, its string comes from bos_token"))
    if st.dated:
        out.append(Caveat(
            "renders-today",
            "the format renders today's date ({DATE=...}): renders change with the day they are made; "
            "fix the date for training data with ChatFormat.with_date(date)"))
    return out


#: BOS strings of common tokenizers, for a spec that declares no bos_token
KNOWN_BOS = ("<|begin_of_text|>", "<s>", "<bos>", "<｜begin▁of▁sentence｜>", "<|startoftext|>")


def _double_bos(fmt: "ChatFormat") -> str | None:
    """Where a format renders BOS twice in a row (``{BOS}<|begin_of_text|>``, ``{BOS}{BOS}``, or
    the BOS text twice), or None.  The BOS string is the declared ``bos_token``; without one, a
    ``{BOS}`` next to a well-known BOS text counts."""
    from tmplc.ir import SpecialToken

    bos = fmt.meta.bos_token
    for frag in fmt.structure.fragments():
        pieces = list(frag)
        for k, p in enumerate(pieces):
            if not (isinstance(p, SpecialToken) and p.name == "BOS"):
                continue
            nxt = pieces[k + 1] if k + 1 < len(pieces) else None
            prev = pieces[k - 1] if k else None
            if isinstance(nxt, SpecialToken) and nxt.name == "BOS":
                return "{BOS}{BOS}"
            for tok in ((bos,) if bos else KNOWN_BOS):
                if isinstance(nxt, Text) and nxt.value.startswith(tok):
                    return f"{{BOS}}{tok} ({{BOS}} renders {tok!r} already)" if bos else \
                        f"{{BOS}}{tok} ({tok!r} is a BOS text; {{BOS}} renders the tokenizer's BOS)"
                if isinstance(prev, Text) and prev.value.endswith(tok):
                    return f"{tok}{{BOS}}"
        if bos:
            text = "".join(p.value for p in pieces if isinstance(p, Text))
            if bos + bos in text:
                return f"{bos}{bos}"
    return None
