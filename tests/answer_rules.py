"""The answer rules of reasoning templates, written out for the tests from their documented
meaning (the ``content.split('</think>')...`` of real templates), independently of
``tmplc.ir.drop_reasoning``/``reasoning_of``/``answer_content``.

* ``drop_think``: ``"last"``/``"first"``: the text after the last/first ``</think>``; the
  ``_lstrip_nl``/``_strip_nl``/``_trim`` variants then ``.lstrip('\\n')``/``.strip('\\n')``/``.strip()``
  that answer; content without ``</think>`` is kept as it is.
* then ``lstrip_nl``: ``.lstrip('\\n')``; then the whitespace trim (``str.strip``/``lstrip``/``rstrip``),
  unless ``trim_first``: then the trim comes first of all.
* the final answer (the conversation's last message): its own rule (``Turn.final``), and before it
  the reasoning block ``open + reasoning + close`` (reasoning: ``content.split('</think>')[0].rstrip('\\n')
  .split('<think>')[-1].lstrip('\\n')``, ``''`` without ``</think>``; ``.strip()``-ed when the block
  says ``trim``), rendered when the reasoning is not empty or the block is ``always``; without
  reasoning, a block's ``absent`` text instead when it has one; a ``hidden`` block renders
  ``open + close`` for every answer, whatever its reasoning.
* a non-empty answer (by the steps above) gets the rule's ``before_nonempty`` text before it and
  its ``after_nonempty`` text after it.
"""

from __future__ import annotations

END, START = "</think>", "<think>"


def drop(text: str, mode: str) -> str:
    if not mode or END not in text:
        return text
    answer = text.split(END, 1)[1] if mode.startswith("first") else text.split(END)[-1]
    clean = {"last": str, "first": str, "last_lstrip_nl": lambda s: s.lstrip("\n"),
             "first_lstrip_nl": lambda s: s.lstrip("\n"), "last_strip_nl": lambda s: s.strip("\n"),
             "last_trim": str.strip}[mode]
    return clean(answer)


def strip(text: str, rule) -> str:
    if not rule.trim:
        return text
    return {"both": str.strip, "left": str.lstrip, "right": str.rstrip}[rule.trim_side](text)


def apply(text: str, rule) -> str:
    """``text`` through a content rule (a Turn or a FinalAnswer), reasoning block not included."""
    first = getattr(rule, "trim_first", False)
    if first:
        text = strip(text, rule)
    text = drop(text, getattr(rule, "drop_think", ""))
    if getattr(rule, "lstrip_nl", False):
        text = text.lstrip("\n")
    text = text if first else strip(text, rule)
    own = getattr(rule, "rule", rule)  # a Turn's own content rule
    return getattr(own, "before_nonempty", "") + text + getattr(own, "after_nonempty", "") if text else text


def reasoning(text: str) -> str:
    if END not in text:
        return ""
    return text.split(END)[0].rstrip("\n").split(START)[-1].lstrip("\n")


def block(rule, text: str) -> str:
    """The reasoning block of a rule (``think``: a FinalAnswer's, or a Turn's own), or ``''``."""
    think = getattr(rule, "think", None)
    if think is None:
        return ""
    if think.hidden:
        return think.open + think.close
    r = reasoning(strip(text, rule) if getattr(rule, "trim_first", False) else text)
    if not r:
        if think.absent is not None:
            return think.absent
        return think.open + think.close if think.always else ""
    return think.open + (r.strip() if think.trim else r) + think.close


def answer(turn, text: str, final: bool) -> str:
    """The assistant ``turn``'s content as rendered: ``final``: as the conversation's last message
    (the turn's ``final`` rule when it has one)."""
    rule = turn.final if final and turn.final is not None else turn
    return block(rule, text) + apply(text, rule)
