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
    a = st.assistant
    # the text before the answer's content (the last message: a final answer): without the earlier
    # answers' block and the text they render before a non-empty answer (a final answer has its own)
    bare = replace(st, final_scope="last", assistant=replace(a, final=replace(a.rule, think=None, before_nonempty="")))
    try:
        head = ChatFormat(bare).render(msgs, continue_final_message=True, **tokens)
    except MessageError:
        return []
    lead = _lead_text(st)
    out = []
    if not final and lead and REASON not in text:
        # earlier answers hide their reasoning (GLM-4.6: "\n<think></think>" whatever it is): the lead
        # is that block, or the block and then text before a non-empty answer ("\n" + content.strip())
        for k in range(len(lead), 0, -1):
            base = replace(st, assistant=replace(a, lead=(), rule=replace(a.rule, before_nonempty=lead[k:])))
            out.append((base, ThinkBlock(lead[:k], hidden=True)))
        return out
    cuts = [(0, "")]
    if lead is not None and not final:
        cuts += [(len(lead), "")] if lead else []
        # the block probe leaves the layout inside the prefix: the prefix's end (and the lead) is
        # what an answer without reasoning renders in the block's place, and the generation
        # prompt's own text (Laguna-XS: a prompt ending "</think>", answers "</think>\n" + content
        # or "<think>\n...\n</think>\n" + content)
        tail = a.prefix[-1].value if a.prefix and isinstance(a.prefix[-1], Text) else ""
        if not text.startswith(head[:len(head) - len(lead)]):
            ts = range(1, len(tail) + 1)
            # a cut where a tag or a line starts first (the prefix "<assistant>\n", not "<assistant>\n<")
            at_edge = [t for t in ts
                       if tail[len(tail) - t] in "<[" or tail[len(tail) - t - 1:len(tail) - t] in ("\n", ">")]
            cuts += [(len(lead) + t, tail[len(tail) - t:]) for t in at_edge + [t for t in ts if t not in at_edge]]
    before = a.rule.before_nonempty
    for cut, moved in cuts:
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
            if cut:  # the lead (and the prefix's end) becomes what renders without reasoning
                prefix = a.prefix
                if moved:
                    keep = prefix[-1].value[:len(prefix[-1].value) - len(moved)]
                    prefix = prefix[:-1] + ((Text(keep),) if keep else ())
                base = replace(st, assistant=replace(a, prefix=prefix, lead=(), prompt_only=moved + a.prompt_only))
                out += [(base, ThinkBlock(open_, close, False, trim, moved + lead)) for trim in (False, True)]
                continue
            closes = [close] + ([close[:-len(before)]] if before and close.endswith(before) else [])
            out += [(st, ThinkBlock(open_, c, always, trim)) for c in closes
                    for always, trim in product((False, True), repeat=2)]
            if final and a.rule.think is not None and a.rule.think.hidden:
                # without reasoning, the final answer renders what every earlier one does (GLM-4.7: "</think>")
                out += [(st, ThinkBlock(open_, c, False, trim, a.rule.think.open)) for c in closes
                        for trim in (False, True)]
    return out


def _earlier_rules(st: Structure, results: dict, tokens: dict, names: list[str], rules: list, empties: list,
                   upto: str | None):
    """``st`` with an earlier-answer rule (a block, the content rule, an empty turn) that renders the
    probes ``names`` (up to ``upto`` only, when given), for each block that has one, simplest first."""
    jobs = probe_jobs()
    blocks = [(st, None)] + _blocks(st, results, tokens, final=False)
    # a text after non-empty answers is tried before an empty-answer turn: both can tell an empty
    # answer apart, and the first is the simpler description (and keeps tool calls after the content)
    combos = [("", [(None, False)])] + [(w, [(None, False)]) for w in _afters(st)[1:]] \
        + [("", [e for e in empties if e[0] is not None])]
    for after, emp in combos:
        for base, block in blocks:
            b = base.assistant
            suffix = _cut_head(b.suffix, after)
            for (d, l, f), (e, raw) in product([(b.drop_think, b.lstrip_nl, b.trim_first)] + rules, emp):
                try:
                    cand = replace(base, assistant=replace(
                        b, suffix=suffix, final=None, empty=e, empty_raw=raw,
                        rule=replace(b.rule, drop_think=d, lstrip_nl=l, trim_first=f, think=block,
                                     after_nonempty=after)))
                except ValueError:  # an empty turn decided on the rendered answer with a block
                    continue
                if _matches(cand, results, names, jobs, tokens, upto):
                    yield cand
                    break  # one reading per block: the others differ only where the probes do not look


#: how many readings of the earlier answers the final answer's rule is sought for (the probes
#: may not tell a lead from a block that hides the reasoning: only the final answer shows which)
_EARLIER_READINGS = 6


def _afters(st: Structure) -> list[str]:
    """What an answer may render after its content only when it is not empty (``after_nonempty``):
    nothing, or a head of the whitespace the assistant suffix starts with (Laguna-XS ends a
    non-blank answer with ``\\n``; the layout, read off non-empty answers, has it in the suffix)."""
    s = st.assistant.suffix
    text = s[0].value if s and isinstance(s[0], Text) else ""
    ws = text[:len(text) - len(text.lstrip())]
    return [""] + [ws[:k] for k in range(1, len(ws) + 1)]


def _cut_head(fragment, head: str):
    """``fragment`` without its first ``head`` characters (all in its first Text part)."""
    if not head:
        return fragment
    rest = fragment[0].value[len(head):]
    return ((Text(rest),) if rest else ()) + tuple(fragment[1:])


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
        first = None
        for k, found in enumerate(_earlier_rules(st, results, tokens, hist, rules, empties, upto)):
            got = _final_rule(found, results, tokens, scope, final, final_trim)
            if got is not None:
                return got
            first = first or found
            if k + 1 >= _EARLIER_READINGS:
                break
        if first is not None:
            return first  # no final rule: verification says where the template differs
    return st


def _final_rule(st: Structure, results: dict, tokens: dict, scope: str, final: list[str],
                final_trim: bool | str | None) -> Structure | None:
    """``st`` (its earlier answers' rule found) with the final answer's rule that renders the final
    probes, or None."""
    jobs = probe_jobs()
    if scope == "last_answer":
        final = final + [n for n in jobs if n.startswith("answer:hist:")]  # their last answer is final too
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
                                                                        trim_side=fside, think=block, trim_first=f,
                                                                        before_nonempty=b.rule.before_nonempty,
                                                                        after_nonempty=b.rule.after_nonempty)),
                           final_scope=scope)
        except ValueError:
            continue
        if _matches(cand, results, final, jobs, tokens):
            return cand
    return None
