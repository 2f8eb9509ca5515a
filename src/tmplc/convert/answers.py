"""How a template renders answer contents: the assistant turn's content rule and the final answer's.

Reasoning templates transform answers: earlier answers lose their reasoning (``split('</think>')``,
often with ``.lstrip('\\n')``), and the final answer (the last message) keeps it, as sent or
re-wrapped in a ``<think>`` block.  The IR carries a closed set of such rules
(:data:`tmplc.ir.DROP_THINK`, ``lstrip_nl``, :class:`tmplc.ir.FinalAnswer`,
:class:`tmplc.ir.ThinkBlock`).  Which one a template applies is found by rendering answer
probes (contents with reasoning, newlines and several ``</think>``) in two positions, earlier
answers (the conversation goes on with a user message) and final answers, and keeping the first
candidate rule whose renders are byte-identical to the template's.  Candidates are tried
simplest first (no transformation), so a template that does not touch answers keeps none.  No
candidate is a guess: the full verification afterwards checks the result on every
verification conversation.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import product

from tmplc.errors import MessageError
from tmplc.ir import DROP_THINK, ChatFormat, FinalAnswer, Structure, ThinkBlock

REASON = "R3asonqZmXm"
ANSWER = "Answ3rqZmXn"
#: Answer contents the rules are inferred from (verification uses other ones as well).
ANSWER_PROBES = (
    "<think>t</think>a", "\n\n<think>\n t \n</think>\n\n a \n", "x</think>\n y", "<think>t</think>a</think>\nb",
    "\na\n", "</think>", "", "<think> </think>a", " \n<think>\n\nr\n\n</think>\n\n\n", "<think>r</think>",
    "<think>\n" + REASON + "\n</think>\n\n" + ANSWER,
)
BLOCK_PROBE = "<think>" + REASON + "</think>" + ANSWER


def conversation(content: str, final: bool) -> list[dict]:
    """Two exchanges whose answers are ``content``; the second answer is final or followed by a user."""
    msgs = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": content},
            {"role": "user", "content": "q2"}, {"role": "assistant", "content": content}]
    return msgs if final else msgs + [{"role": "user", "content": "q3"}]


def probe_jobs() -> dict[str, list[dict]]:
    """The answer probes, named ``answer:<final|hist>:<i>``, plus ``answer:block``."""
    jobs = {f"answer:{'final' if final else 'hist'}:{i}": conversation(c, final)
            for i, c in enumerate(ANSWER_PROBES) for final in (False, True)}
    jobs["answer:block"] = conversation(BLOCK_PROBE, True)
    return jobs


def _matches(st: Structure, results: dict, names: list[str], contents: dict, tokens: dict) -> bool:
    fmt = ChatFormat(st)
    for n in names:
        kind, text = results[n]
        try:
            if kind != "ok" or fmt.render(contents[n], **tokens) != text:
                return False
        except MessageError:
            return False
    return True


def _block_candidates(st: Structure, results: dict, tokens: dict) -> list[ThinkBlock]:
    """Reasoning blocks the final answer may render: ``open``/``close`` read off the block probe."""
    kind, text = results.get("answer:block", ("error", ""))
    if kind != "ok":
        return []
    msgs = conversation(BLOCK_PROBE, True)
    msgs[-1] = dict(msgs[-1], content="")
    try:
        head = ChatFormat(st).render(msgs, continue_final_message=True, **tokens)
    except MessageError:
        return []
    if not text.startswith(head):
        return []
    rest = text[len(head):]
    i = rest.find(REASON)
    j = rest.find(ANSWER, i + len(REASON))
    if i < 0 or j < 0:
        return []
    open_, close = rest[:i], rest[i + len(REASON):j]
    return [ThinkBlock(open_, close, always, trim) for always, trim in product((False, True), repeat=2)]


def infer(st: Structure, results: dict, tokens: dict) -> Structure:
    """``st`` with the answer rules that reproduce the template's renders of the answer probes
    (``results``: name -> (kind, text) for :func:`probe_jobs`); ``st`` unchanged where no
    candidate does (verification then says where the template differs)."""
    jobs = probe_jobs()
    hist = [n for n in jobs if n.startswith("answer:hist:")]
    final = [n for n in jobs if n.startswith("answer:final:")]
    a = st.assistant
    firsts = (False, True) if a.trim else (False,)
    rules = [(d, l, f) for f, l, d in product(firsts, (False, True), DROP_THINK)]
    for d, l, f in [(a.drop_think, a.lstrip_nl, a.trim_first)] + rules:
        cand = replace(st, assistant=replace(a, drop_think=d, lstrip_nl=l, trim_first=f, final=None))
        if _matches(cand, results, hist, jobs, tokens):
            st = cand
            break
    else:
        return st
    if _matches(st, results, final, jobs, tokens):
        return st
    a = st.assistant
    blocks: list[ThinkBlock | None] = [None] + _block_candidates(st, results, tokens)
    for block, f, l, d in product(blocks, firsts, (False, True), DROP_THINK):
        cand = replace(st, assistant=replace(a, final=FinalAnswer(d, l, a.trim, a.trim_side, block, f)))
        if _matches(cand, results, final, jobs, tokens):
            return cand
    return st
