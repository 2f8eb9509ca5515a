"""How a template renders answer contents: the assistant turn's content rule and the final answer's.

Reasoning templates transform answers: earlier answers lose their reasoning (``split('</think>')``,
often with ``.lstrip('\\n')``), and the final answer (the last message) keeps it, as sent or
re-wrapped in a ``<think>`` block.  The IR carries a closed set of such rules
(:data:`tmplc.ir.DROP_THINK`, ``lstrip_nl``, :class:`tmplc.ir.ContentRule`,
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

from tmplc.convert.common import SENT, probe_fragment
from tmplc.errors import MessageError
from tmplc.ir import DROP_THINK, TRIM_FILTERS, ChatFormat, ContentRule, Structure, Text, ThinkBlock

REASON = "R3asonqZmXm"
ANSWER = "Answ3rqZmXn"
#: Answer contents the rules are inferred from (verification uses other ones as well).
ANSWER_PROBES = (
    "<think>t</think>a", "\n\n<think>\n t \n</think>\n\n a \n", "x</think>\n y", "<think>t</think>a</think>\nb",
    "\na\n", "</think>", "", "<think> </think>a", " \n<think>\n\nr\n\n</think>\n\n\n", "<think>r</think>",
    "<think>\n" + REASON + "\n</think>\n\n" + ANSWER, " ", " r</think> a ",
)
BLOCK_PROBE = "<think>" + REASON + "</think>" + ANSWER


def conversation(content: str, final: bool) -> list[dict]:
    """Two exchanges whose answers are ``content``; the second answer is final or followed by a user."""
    msgs = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": content},
            {"role": "user", "content": "q2"}, {"role": "assistant", "content": content}]
    return msgs if final else msgs + [{"role": "user", "content": "q3"}]


def probe_jobs() -> dict[str, list[dict]]:
    """The answer probes, named ``answer:<final|hist>:<i>``, plus the block probes
    ``answer:block:<final|hist>``."""
    jobs = {f"answer:{'final' if final else 'hist'}:{i}": conversation(c, final)
            for i, c in enumerate(ANSWER_PROBES) for final in (False, True)}
    for final in (False, True):
        jobs[f"answer:block:{'final' if final else 'hist'}"] = conversation(BLOCK_PROBE, final)
    jobs["answer:empty"] = conversation("", False)[:3]
    return jobs


def gen_probe_jobs() -> dict[str, list[dict]]:
    """Conversations ending with an answer, rendered *with* the generation prompt: they show what
    the prompt does after an answer (``answer:gen:<i>``, answers as in :data:`ANSWER_PROBES`)."""
    return {f"answer:gen:{i}": conversation(c, True) for i, c in enumerate(ANSWER_PROBES)}


def _empty_turn(st: Structure, results: dict, tokens: dict, date_format: str | None):
    """The whole turn an empty answer renders (``{EMPTY}``), when it is not the layout's own empty
    answer: read off the ``answer:empty`` probe (a user message, an empty answer, a user message)."""
    kind, text = results.get("answer:empty", ("error", ""))
    if kind != "ok":
        return None
    bare = ChatFormat(replace(st, closing=()))
    u1, u2 = {"role": "user", "content": "q1"}, {"role": "user", "content": "q2"}
    try:
        t1 = bare.render([u1], **tokens)
        closing = ChatFormat(st).render([u1], **tokens)[len(t1):]
        with_x = bare.render([u1, {"role": "assistant", "content": "x"}], **tokens)
        rest = bare.render([u1, {"role": "assistant", "content": "x"}, u2], **tokens)[len(with_x):]
        # the layout's own empty answer as an earlier one (a final answer may end differently)
        own = bare.render([u1, {"role": "assistant", "content": ""}, u2], **tokens)[len(t1):]
    except MessageError:
        return None
    own = own[:len(own) - len(rest)] if own.endswith(rest) else own
    end = rest + closing
    if not (text.startswith(t1) and text.endswith(end)) or len(text) < len(t1) + len(end):
        return None
    found = text[len(t1):len(text) - len(end)]
    if found == own or any(SENT[k] in found for k in SENT if k not in ("bos", "eos")):
        return None
    return probe_fragment(found, date_format)


def _matches(st: Structure, results: dict, names: list[str], contents: dict, tokens: dict,
             upto: str | None = None) -> bool:
    fmt = ChatFormat(st)
    for n in names:
        kind, text = results[n]
        try:
            mine = fmt.render(contents[n], **tokens) if kind == "ok" else None
        except MessageError:
            return False
        if upto is not None and mine is not None:  # only the text before ``upto`` (the first answer's turn)
            k = text.find(upto)
            mine, text = (mine[:k], text[:k]) if k >= 0 else (None, text)
        if mine != text:
            return False
    return True


def _lead_text(st: Structure) -> str | None:
    lead = st.assistant.lead
    return "".join(p.value for p in lead) if all(isinstance(p, Text) for p in lead) else None


def _blocks(st: Structure, results: dict, tokens: dict, final: bool) -> list[tuple[Structure, ThinkBlock]]:
    """Reasoning blocks an answer (the first one; ``final``: the final one) may render, with
    ``open``/``close`` read off the block probe.  Every answer's block may also be the lead: a
    template whose answers all start with ``<think></think>`` (the empty block) has it as the lead
    of the layout until the block probe shows the reasoning in it."""
    kind, text = results.get(f"answer:block:{'final' if final else 'hist'}", ("error", ""))
    if kind != "ok":
        return []
    msgs = conversation(BLOCK_PROBE, True) if final else conversation(BLOCK_PROBE, True)[:2]
    msgs[-1] = dict(msgs[-1], content="")
    try:
        head = ChatFormat(st).render(msgs, continue_final_message=True, **tokens)
    except MessageError:
        return []
    lead = _lead_text(st)
    out = []
    for cut in ([0] + ([len(lead)] if lead and not final else [])):
        h = head[:len(head) - cut]
        if not text.startswith(h):
            continue
        rest = text[len(h):]
        i = rest.find(REASON)
        # the block ends where the answer starts: its text after the reasoning, or the whole
        # content when the answer keeps its reasoning
        ends = {rest.find(ANSWER, i + len(REASON)), rest.find(BLOCK_PROBE, i + len(REASON))} - {-1}
        for j in sorted(ends) if i >= 0 else ():
            open_, close = rest[:i], rest[i + len(REASON):j]
            if cut:  # the lead becomes the empty block: only an always-rendered block is the same text
                if open_ + close == lead:
                    base = replace(st, assistant=replace(st.assistant, lead=()))
                    out += [(base, ThinkBlock(open_, close, True, trim)) for trim in (False, True)]
                continue
            out += [(st, ThinkBlock(open_, close, always, trim)) for always, trim in product((False, True), repeat=2)]
    return out


def _earlier_rule(st: Structure, results: dict, tokens: dict, names: list[str], rules: list, empties: list,
                  upto: str | None) -> Structure | None:
    """``st`` with the first earlier-answer rule (a block, the content rule, an empty turn) that
    renders the probes ``names`` (up to ``upto`` only, when given), or None."""
    jobs = probe_jobs()
    for base, block in [(st, None)] + _blocks(st, results, tokens, final=False):
        b = base.assistant
        for (d, l, f), (e, raw) in product([(b.drop_think, b.lstrip_nl, b.trim_first)] + rules, empties):
            try:
                cand = replace(base, assistant=replace(b, rule=replace(b.rule, drop_think=d, lstrip_nl=l, trim_first=f,
                                                                            think=block),
                                                       final=None, empty=e, empty_raw=raw))
            except ValueError:  # an empty turn decided on the rendered answer with a block
                continue
            if _matches(cand, results, names, jobs, tokens, upto):
                return cand
    return None


def infer(st: Structure, results: dict, tokens: dict, date_format: str | None = None,
          final_trim: bool | str | None = None) -> Structure:
    """``st`` with the answer rules that reproduce the template's renders of the answer probes
    (``results``: name -> (kind, text) for :func:`probe_jobs`); ``st`` unchanged where no
    candidate does (verification then says where the template differs).  ``final_trim``: how the
    final answer is trimmed when the pad probe showed it differs from the earlier answers (True,
    ``"lstrip"``, ``"rstrip"`` or False, as the converter's pad probe reports it)."""
    jobs = probe_jobs()
    hist = [n for n in jobs if n.startswith("answer:hist:")]
    final = [n for n in jobs if n.startswith("answer:final:")]
    a = st.assistant
    firsts = (False, True) if a.trim else (False,)
    rules = [(d, l, f) for f, l, d in product(firsts, (False, True), DROP_THINK)]
    empty = _empty_turn(st, results, tokens, date_format)
    empties = [(None, False)] if empty is None else [(empty, False), (empty, True)]
    # the earlier answers' rule off every answer followed by a user message; else off the first
    # answer only: the last answer may be final before a user message too (|final_last_answer)
    for upto, scope in ((None, "last"), ("q2", "last_answer")):
        found = _earlier_rule(st, results, tokens, hist, rules, empties, upto)
        if found is not None:
            break
    if found is None:
        return st
    st = found
    if scope == "last_answer":
        final = final + hist  # the hist probes' last answer is final too
    elif final_trim is None and _matches(st, results, final, jobs, tokens):
        return st
    if final_trim is None:
        ftrim, fside = st.assistant.trim, st.assistant.trim_side
    else:
        ftrim, fside = bool(final_trim), TRIM_FILTERS[final_trim if isinstance(final_trim, str) else "trim"]
    for (base, block), f, l, d in product([(st, None)] + _blocks(st, results, tokens, final=True),
                                          (False, True) if ftrim else (False,), (False, True), DROP_THINK):
        b = base.assistant
        try:
            cand = replace(base, assistant=replace(b, final=ContentRule(drop_think=d, lstrip_nl=l, trim=ftrim,
                                                                        trim_side=fside, think=block, trim_first=f)),
                           final_scope=scope)
        except ValueError:
            continue
        if _matches(cand, results, final, jobs, tokens):
            return cand
    return st
