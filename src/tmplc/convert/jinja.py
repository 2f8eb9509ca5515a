"""HF Jinja chat template -> ChatFormat: probe, recover, verify — or refuse.

1. The template is rendered (only in the limited sandbox, :mod:`tmplc.convert.sandbox`) with
   probe conversations whose contents are unique sentinels, with and without a system
   message, with contents padded by whitespace, with ``add_generation_prompt`` on and off, and
   with two different dates for ``strftime_now``.
2. The two-exchange probe render becomes two-repetition spec text (sentinels -> ``{INPUT}``,
   ``{OUTPUT}``, ``{SYSTEM}``, ``{BOS}``, ``{EOS}``; braces escaped) and is parsed by the spec
   language's own parser and structure rules.  A render without a system message gives the
   default system message (or none).  Whitespace probes give ``trim`` per role.  What follows
   the last user message without the generation prompt places the user/assistant boundary
   (``{SPLIT}``); what follows it with the prompt ends the assistant prefix: when that is a
   proper prefix of the text before an answer in the history, the rest is the assistant
   *lead* (``{REPLY}``), written by the model (Vicuna's ``ASSISTANT:`` prompt + `` answer``;
   Mistral/Llama-2, which have no generation prompt: ``[/INST]`` + `` answer``).  A prompt that
   goes on where the history does not (``<think>\n`` in the prompt only) adds prompt-only text
   (``{PROMPT=...}``); see below.
3. The recovered format is verified: the original and ``fmt.render`` must produce the same bytes
   on every verification conversation (:func:`tmplc.convert.common.verification_cases`).

Anything else is a :class:`ConversionRefused` with a precise reason.

:func:`convert_jinja` then adds the tool part of a template that uses tools (:mod:`tmplc.convert.tools`:
recovered and verified on random tool conversations, or refused with the reason, the text format kept).

Conventions (where the issue is silent):

* The template is rendered with HF's variables: ``messages``, ``add_generation_prompt``,
  ``tools=None``, ``documents=None``, ``bos_token``/``eos_token`` when given, and ``**vars``.
  ``vars`` are baked into the result (e.g. ``date_string="26 Jul 2024"`` or
  ``enable_thinking=False``); they are not variables of the format.
* The date: a template whose output changes with ``strftime_now`` is refused ("injects
  today's date"); a date passed explicitly through ``vars`` is fixed text of the format.
* Equivalence is checked on the conversations a ChatFormat describes: an optional system
  message, then alternating user/assistant messages starting with the user.  Where the original
  raises on other shapes (consecutive users, a leading assistant), the format renders them.
  Two answers in a row and two user messages in a row are rendered through both: where the
  template renders them otherwise than the format (each message its own turn), the format's
  notes say so (:func:`renders_otherwise`); they are not refused.
* A template that raises on a system message converts to a format without a system slot (the
  format then refuses system messages too); one that silently drops it is refused.
* Content transformations the IR carries: ``trim``/``lstrip``/``rstrip`` (Python's, Unicode
  whitespace) per role, and for answers ``drop_think`` (the text after the last ``</think>``,
  as reasoning templates render earlier turns).  Jinja and llama.cpp carry them exactly; Ollama
  templates cannot (no string functions): its target refuses them unless told to render
  contents as sent.  Any other (``strip('\\n')``, reformatting a ``<think>`` block, escaping) is
  refused.
* ``reasoning_content``: for a format whose answers render reasoning, how the template reads it
  is probed (:func:`read_given_reasoning`): newline-stripped, as given, or not at all; a template
  that reads it otherwise converts to a format that refuses it (with a note), never to one that
  renders it differently.
* Empty system message: a template that renders a system message with content ``""`` exactly
  like no system message gets ``{SYSTEM|nonempty}``.
* Generation prompt: where the prompt leaves the text that precedes an answer in the history,
  the rest of the history's text is the lead (``{REPLY}``, written by the model) and the rest of
  the prompt is prompt-only text (``{PROMPT=...}``; e.g. ``<think>\\n`` of DeepSeek-R1), which
  :func:`tmplc.lint.caveats` reports: a model trained on the renders never sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from dataclasses import replace as _replace
from itertools import product
from typing import Any

from tmplc.convert import answers

from tmplc.convert.common import (
    probe_fragment,
    fragment_cuts,
    refused_alike,
    DATE_SENT,
    PAD,
    DateSentinel,
    SENT,
    Case,
    diagnose,
    probe_messages,
    recover_default,
    probe_atoms,
    structure_from_render,
    verification_cases,
    _show,
)
from tmplc.convert.dates import DATE_1, DATE_1_AFTERNOON, DATE_2, DATE_3, DATE_FORMATS, find_date_format
from tmplc.convert.errors import ConversionRefused, SandboxError
from tmplc.convert.sandbox import DEFAULT_LIMITS, Limits, render_batch
from tmplc.errors import MessageError
from tmplc.ir import ChatFormat, Metadata

_RESERVED = ("messages", "add_generation_prompt", "__today__")


def _failure(kind: str, msg: str, what: str) -> ConversionRefused:
    if kind in ("security", "memory"):
        return SandboxError(msg if msg.startswith("sandbox") else f"sandbox: {msg}")
    if kind == "raise":  # the template's own raise_exception: its message says why
        return ConversionRefused(f"raises on {what}: {msg}", "raises")
    low = msg.lower()
    if "tool" in low or "function" in low and "undefined" in low:
        return ConversionRefused(f"depends on tools: {what}: {msg}", "tools")
    return ConversionRefused(f"fails on {what}: {msg}", "raises")


def _time_of_day(at_midnight: str, later: str, where: str = "") -> ConversionRefused:
    """The refusal for a template that renders the time of day (``strftime_now('%H:%M')``)."""
    k = 0
    while k < min(len(at_midnight), len(later)) and at_midnight[k] == later[k]:
        k += 1
    return ConversionRefused(
        f"renders the time of day (strftime_now with a time conversion such as %H, %M, %S, %I or %p){where}: "
        f"at 00:00 it renders {_show(at_midnight[max(0, k - 20):k + 20])}, at 15:47:23 "
        f"{_show(later[max(0, k - 20):k + 20])}; tmplc's {{DATE=...}} is a day, not a time, and a converted "
        "format would freeze one time, so the template is refused (pass the time explicitly as a variable "
        "if the template reads it from one)", "date")


class _Probe:
    def __init__(self, template: str, base: dict, limits: Limits) -> None:
        self.template, self.base, self.limits = template, base, limits

    def job(self, messages, gen=False, today=DATE_1, **over) -> dict:
        j = dict(self.base)
        j.update(over)
        j.update(messages=messages, add_generation_prompt=gen, __today__=today)
        return j

    def run(self, jobs: list[dict]) -> list[tuple[str, str]]:
        return render_batch(self.template, jobs, self.limits)


@dataclass
class Probes:
    """What the template rendered for the probe conversations (:func:`probe`), read once: the raw
    results by probe name (``res``: name -> (kind, text)), and the texts and facts the later
    stages read off them."""

    res: dict[str, tuple[str, str]]
    nosys: str  # the two-exchange probe without a system message
    sys_text: str  # ... with one (or the error text when the template refuses a system message)
    has_system: bool
    q_text: str  # a conversation ending with a user message, without the generation prompt
    gen_text: str  # ... with it
    date_format: str | None = None
    trim: dict[str, bool | str] = field(default_factory=dict)  # per role: the content trim
    final_trim: bool | str | None = None  # the final answer's, where it differs

    @property
    def gen_ignored(self) -> bool:
        return self.q_text == self.gen_text


def from_jinja(template: str, *, bos_token: str | None = None, eos_token: str | None = None,
               format_name: str = "imported", limits: Limits | None = None, n_random: int = 150,
               seed: int = 0, _tool_state: dict | None = None, **vars: Any) -> ChatFormat:
    """Convert an HF chat template into a ChatFormat that renders exactly like it, or raise
    ConversionRefused (``.reason``).  See the module docstring for the method and conventions.
    The text part only (``tools`` unset); :func:`convert_jinja` adds the tool part.

    ``bos_token``/``eos_token``: the tokenizer's token strings (required when the template
    renders them).  ``vars``: extra template variables, baked into the result.

    Stages: :func:`probe` -> :func:`read_trims` -> :func:`read_layout` (which reads the answer
    rules, :func:`read_answer_rules`, of each reading) -> :func:`verify_conversion` ->
    :func:`read_given_reasoning`.
    """
    for k in _RESERVED:
        if k in vars:
            from tmplc.errors import UsageError

            raise UsageError(f"from_jinja: {k!r} is set by the converter itself and cannot be passed as a "
                             "template variable")
    limits = limits or DEFAULT_LIMITS
    base = {"tools": None, "documents": None, "bos_token": SENT["bos"], "eos_token": SENT["eos"], **vars}
    probes = probe(_Probe(template, base, limits))
    read_trims(probes)
    st, full = read_layout(probes)
    # an empty answer raised on (Ministral 3; the answer rules' own probe): the format refuses it
    if probes.res["answer:empty"][0] == "raise" and st.assistant.empty is None:
        st = _replace(st, refuses_empty_answers=True)  # verification: the template raises wherever the format refuses
    if st.uses("BOS") and bos_token is None:
        raise ConversionRefused("the template renders bos_token but no bos_token was given "
                                "(pass bos_token=, or use load_template_source)", "tokens")
    if st.uses("EOS") and eos_token is None:
        raise ConversionRefused("the template renders eos_token but no eos_token was given "
                                "(pass eos_token=, or use load_template_source)", "tokens")
    fmt = ChatFormat(st, Metadata(name=format_name, bos_token=bos_token, eos_token=eos_token))
    _check_generation_prompt(fmt, full, probes.q_text + _closing_of(probes), probes.gen_text, _TOKENS())
    real = {k: v for k, v in base.items() if k not in ("bos_token", "eos_token")}
    if bos_token is not None:
        real["bos_token"] = bos_token
    if eos_token is not None:
        real["eos_token"] = eos_token
    vprobe = _Probe(template, real, limits)
    verify_conversion(fmt, vprobe, has_system=probes.has_system, n_random=n_random, seed=seed)
    fmt, reasoning_note = read_given_reasoning(fmt, vprobe)
    notes = partial(_conversion_notes, None if probes.has_system else probes.sys_text, reasoning_note, vars)
    shapes = renders_otherwise(fmt, vprobe, has_system=probes.has_system)
    if _tool_state is not None:  # convert_jinja: the tool part, on the verified text format
        _tool_state.update(fmt=fmt, real=real, has_system=probes.has_system, vprobe=vprobe, notes=notes,
                           shapes=shapes)
    return fmt.with_meta(notes=notes(shapes))


def _conversion_notes(system_refused: str | None, reasoning_note: str, vars: dict, shapes: list[str]) -> str:
    notes = "converted from an HF chat template"
    if system_refused is not None:
        notes += f"; the template raises on a system message ({system_refused})"
    if reasoning_note:
        notes += "; " + reasoning_note
    if shapes:
        notes += (f"; not verified beyond alternating turns: the template renders {' and '.join(shapes)} otherwise "
                  "than this format (each message its own turn), so rows with them train a text the template "
                  "does not show")
    if vars:
        notes += "; template variables baked in: " + ", ".join(f"{k}={v!r}" for k, v in vars.items())
    return notes


@dataclass(frozen=True)
class JinjaConversion:
    """What :func:`convert_jinja` returns: ``format`` (with ``structure.tools`` when ``tools ==
    "exact"``), the verified ``text_format`` (no tool part), and the tool part's status ``tools``:
    ``"exact"`` (recovered and verified byte-exact on tool conversations), ``"refused"``
    (``tools_reason``: why; ``format`` is then the text format) or ``"none"`` (the template does
    not use tools: it reads neither ``tools`` nor ``tool_calls`` and has no ``tool`` role)."""

    format: ChatFormat
    text_format: ChatFormat
    tools: str
    tools_reason: str = ""
    #: what an exact tool part leaves unverified (e.g. the template raises on string arguments)
    tools_notes: tuple[str, ...] = ()
    #: the shapes beyond alternating turns the template renders otherwise than ``format``
    #: (:func:`renders_otherwise`), e.g. ``("two answers in a row",)``
    renders_otherwise: tuple[str, ...] = ()

    @property
    def tools_status(self) -> str:
        """``"exact"``, ``"none"`` or ``"refused: <reason>"``."""
        return f"refused: {self.tools_reason}" if self.tools == "refused" else self.tools


def convert_jinja(template: str, *, bos_token: str | None = None, eos_token: str | None = None,
                  format_name: str = "imported", limits: Limits | None = None, n_random: int = 150,
                  seed: int = 0, n_random_tools: int = 80, **vars: Any) -> JinjaConversion:
    """:func:`from_jinja` (the text format; its refusal raises ConversionRefused as there), then the
    tool part (:mod:`tmplc.convert.tools`): recovered and verified on random tool conversations,
    or refused with the reason while the text format is kept.  ``vars`` as for :func:`from_jinja`."""
    from tmplc.convert.tools import recover_tools, uses_tools

    state: dict = {}
    text = from_jinja(template, bos_token=bos_token, eos_token=eos_token, format_name=format_name, limits=limits,
                      n_random=n_random, seed=seed, _tool_state=state, **vars)
    text_shapes = tuple(state["shapes"])
    if not uses_tools(template):
        return JinjaConversion(text, text, "none", renders_otherwise=text_shapes)
    has_system = state["has_system"]

    def reverify(f: ChatFormat) -> None:
        verify_conversion(f, state["vprobe"], has_system=has_system, n_random=n_random, seed=seed)

    try:
        fmt, notes = recover_tools(template, text, state["real"], limits or DEFAULT_LIMITS,
                                   n_random=n_random_tools, seed=seed, reverify=reverify)
    except ConversionRefused as e:  # a sandbox limit on the tool probes included: the text part stands
        return JinjaConversion(text, text, "refused", e.reason, renders_otherwise=text_shapes)
    note = "; tools, tool calls and tool results recovered and verified on tool conversations"
    note += "".join(f" ({n})" for n in notes)
    # the shapes again: the tool part may render them otherwise than the text format (Apriel 1.6)
    shapes = renders_otherwise(fmt, state["vprobe"], has_system=has_system)
    return JinjaConversion(fmt.with_meta(notes=state["notes"](shapes) + note), text, "exact", "", tuple(notes),
                           tuple(shapes))


def _TOKENS() -> dict:
    """The token sentinels the recovered layouts are rendered with while reading the probes."""
    return dict(bos_token=SENT["bos"], eos_token=SENT["eos"], date=DateSentinel())


def probe(probe_: "_Probe") -> Probes:
    """Stage 1: render every probe conversation in the sandbox (one batch); refuse a template that
    fails on plain conversations, reads the time of day, or shows a date in an unknown form (a known
    one is replaced by its sentinel everywhere)."""
    P = probe_messages
    jobs = {
        "sys": probe_.job(P(True)),
        "nosys": probe_.job(P(False)),
        "nosys+tools": probe_.job(P(False), tools=[]),
        "sys@2": probe_.job(P(True), today=DATE_2),
        "nosys@2": probe_.job(P(False), today=DATE_2),
        "sys@3": probe_.job(P(True), today=DATE_3),
        "nosys@3": probe_.job(P(False), today=DATE_3),
        "sys@t": probe_.job(P(True), today=DATE_1_AFTERNOON),
        "nosys@t": probe_.job(P(False), today=DATE_1_AFTERNOON),
        "q": probe_.job(P(False, end_with_assistant=False)),
        "q+gen": probe_.job(P(False, end_with_assistant=False), True),
        "nosys+gen": probe_.job(P(False), True),
        "pad:system": probe_.job(P(True, pad="system")),
        "pad:user": probe_.job(P(False, pad="user")),
        "pad:assistant": probe_.job(P(False, pad="assistant")),
        "sys:empty": probe_.job([{"role": "system", "content": ""}] + P(False)),
        "sys:blank": probe_.job([{"role": "system", "content": " "}] + P(False)),
        "hist": probe_.job(P(False) + [{"role": "user", "content": SENT["user3"]}]),
        "sys:hist": probe_.job(P(True) + [{"role": "user", "content": SENT["user3"]}]),
        **{n: probe_.job(m) for n, m in answers.probe_jobs().items()},
        **{n: probe_.job(m, True) for n, m in answers.gen_probe_jobs().items()},
    }
    names = list(jobs)
    res = dict(zip(names, probe_.run([jobs[n] for n in names])))

    kind, nosys = res["nosys"]
    if kind != "ok":
        if kind not in ("security", "memory") and res["nosys+tools"][0] == "ok":
            raise ConversionRefused("depends on tools: fails on a plain user/assistant conversation without "
                                    f"tools (tools=None, as transformers passes it): {nosys}", "tools")
        raise _failure(kind, nosys, "a plain user/assistant conversation")
    sys_kind, sys_text = res["sys"]
    if sys_kind in ("security", "memory"):
        raise _failure(sys_kind, sys_text, "a conversation with a system message")
    for k in ("nosys", "sys"):
        if res[k] != res[k + "@t"]:
            raise _time_of_day(res[k][1], res[k + "@t"][1])
    date_format = None
    if any(res[k] != res[k + d] for k in ("sys", "nosys") for d in ("@2", "@3")):
        found = {find_date_format([(res[k][1], DATE_1), (res[k + "@2"][1], DATE_2), (res[k + "@3"][1], DATE_3)])
                 for k in ("nosys", "sys") if res[k][0] == "ok"
                 and (res[k] != res[k + "@2"] or res[k] != res[k + "@3"])}
        date_format = found.pop() if len(found) == 1 else None
        if date_format is None:
            raise ConversionRefused("injects today's date (strftime_now) in a form tmplc does not recognise "
                                    f"(the {len(DATE_FORMATS)} day formats tried are tmplc.convert.dates.DATE_FORMATS, such as "
                                    f"{', '.join(DATE_FORMATS[:3])}); pass the date explicitly if "
                                    "the template reads it from a variable (e.g. date_string=...)", "date")
        stamp = DATE_1.strftime(date_format)
        res = {k: (kind_, text_.replace(stamp, DATE_SENT)) for k, (kind_, text_) in res.items()}
        nosys, sys_text = res["nosys"][1], res["sys"][1]
    for n in ("q", "q+gen"):
        if res[n][0] != "ok":
            raise _failure(res[n][0], res[n][1], "a conversation ending with a user message")
    has_system = sys_kind == "ok"
    probe_atoms(sys_text if has_system else nosys, system=has_system, trim={})  # every content once
    return Probes(res, nosys, sys_text, has_system, res["q"][1], res["q+gen"][1], date_format)


def read_trims(p: Probes) -> None:
    """Stage 2: each role's content trim (``p.trim``; the final answer's own, ``p.final_trim``) from
    the probes whose contents are padded with whitespace."""
    for role in ("system", "user", "assistant") if p.has_system else ("user", "assistant"):
        plain = p.sys_text if role == "system" else p.nosys
        pk, padded = p.res[f"pad:{role}"]
        if pk != "ok":
            raise _failure(pk, padded, f"{role} content with surrounding whitespace")
        keys = [k for k in SENT if k.startswith(role)]

        def padded_as(before: str, after: str) -> str:
            out = plain
            for k in keys:
                out = out.replace(SENT[k], before + SENT[k] + after)
            return out

        ways = ((False, PAD, PAD), (True, "", ""), ("lstrip", "", PAD), ("rstrip", PAD, ""))
        found = [t for t, b, a in ways if padded == padded_as(b, a)]
        if not found and role == "assistant":  # the final answer (the probe's last message) trims its own way
            a1, a2 = SENT["assistant1"], SENT["assistant2"]
            for (t1, b1, e1), (t2, b2, e2) in product(ways, ways):
                if padded == plain.replace(a1, b1 + a1 + e1).replace(a2, b2 + a2 + e2):
                    found, p.final_trim = [t1], t2
                    break
        if found:
            p.trim[role] = found[0]
        else:
            key = keys[0]
            i = padded.find(SENT[key])
            shown = padded[max(0, i - 6):i + len(SENT[key]) + 6] if i >= 0 else padded[:80]
            raise ConversionRefused(
                f"trims {role} message content in a way the IR cannot carry (str.strip, lstrip and "
                f"rstrip are supported): content {PAD + 'X' + PAD!r} renders as "
                f"{shown.replace(SENT[key], 'X')!r}", "content")


def _closing_of(p: Probes) -> str:
    """Text that ends a conversation rendered without the generation prompt (Phi-3.5's EOS)."""
    return _closing(p.q_text, p.gen_text, p.nosys, p.res["hist"]) if not p.gen_ignored else ""


def read_layout(p: Probes):
    """Stage 3: the layout, read off the renders whose last answer is rendered as an earlier one
    (a final answer may differ), the closing text taken off first; each reading the spec rules
    allow is completed (default system message, ``skip_empty``) and given its answer rules
    (:func:`read_answer_rules`).  Returns (layout, the render it was read from)."""
    closing = _closing_of(p)
    nosys, q_text, sys_text = p.nosys, p.q_text, p.sys_text
    hist, sys_hist = p.res["hist"], p.res["sys:hist"]
    if closing:
        n = len(closing)
        nosys, q_text = nosys[:-n], q_text[:-n]
        sys_text = sys_text[:-n] if p.has_system and sys_text.endswith(closing) else sys_text
        hist = (hist[0], hist[1][:-n]) if hist[1].endswith(closing) else hist
        sys_hist = (sys_hist[0], sys_hist[1][:-n]) if sys_hist[1].endswith(closing) else sys_hist
    nosys = _as_history(nosys, hist)
    if p.has_system:
        sys_text = _as_history(sys_text, sys_hist)
    full = sys_text if p.has_system else nosys
    if p.gen_ignored and not _parses(nosys, p.trim, q_text):
        # the same text with and without add_generation_prompt, and the conversation does not
        # parse as plain repetitions: an assistant header appended to every conversation
        tail = q_text[q_text.rfind(SENT["user2"]) + len(SENT["user2"]):]
        raise ConversionRefused(
            "ignores add_generation_prompt: it renders the same text with and without it, "
            f"always ending a conversation with {_show(tail)}", "generation_prompt")
    tokens = _TOKENS()

    def complete(st):
        """The rest of the layout from the other probes (raises when this reading cannot)."""
        if p.has_system:
            st = recover_default(st, nosys, tokens, p.date_format)
            st = _recover_skip_empty(st, p.res["sys:empty"], p.res["nosys"][1], tokens, p.res["sys:blank"])
        elif ChatFormat(st).render(probe_messages(False), **tokens) != nosys:
            raise ConversionRefused("the recovered layout does not render the probe", "structure")
        return st

    unprompted: list = []  # readings whose generation prompt after an answer is none of the IR's

    def answered(st):
        st = complete(st)
        if closing:
            st = _replace(st, closing=probe_fragment(closing, p.date_format))
        ruled, found = read_answer_rules(st, p, tokens)
        if found is None:
            unprompted.append(ruled)
            raise ConversionRefused("no reading renders the generation prompt after an answer", "generation_prompt")
        return found

    try:
        st = structure_from_render(full, system=p.has_system, trim=p.trim, user_end=_user_end(q_text),
                                   reply_at=_user_end(p.gen_text) if p.gen_text.startswith(q_text) else None,
                                   date_format=p.date_format,
                                   first_turn=nosys[:nosys.find(SENT["user1"])] if SENT["user1"] in nosys else None,
                                   check=answered)
    except ConversionRefused:
        if not unprompted:
            raise
        st = unprompted[0]  # verification says where it differs
    return st, full


def read_answer_rules(st, p: Probes, tokens: dict):
    """Stage 3b, for one reading of the layout: (the reading with its answer rules
    (:func:`tmplc.convert.answers.infer`), that with what the generation prompt does after an answer,
    or None when no choice of the IR renders it: among readings the probe cannot tell apart, that
    may show which is right)."""
    st = answers.infer(st, p.res, tokens, p.date_format, final_trim=p.final_trim)
    return st, (_prompt_after_answer(st, p.res, tokens) if not p.gen_ignored else st)


def verify_conversion(fmt: ChatFormat, vprobe: "_Probe", *, has_system: bool, n_random: int, seed: int) -> None:
    """Stage 4: the original (with the real token strings) and ``fmt.render`` give the same bytes on
    every verification conversation, on the probe day and on others (a time of day anywhere is
    refused, never frozen; a date where the recovered ``{DATE=...}`` puts it)."""
    cases = verification_cases(system=has_system, n_random=n_random, seed=seed)
    vjobs = [vprobe.job(c.msgs, c.add_generation_prompt) for c in cases]
    fixed = [i for i, c in enumerate(cases) if not c.label.startswith("random")]
    other_days = (DATE_2, DATE_3, DATE_1_AFTERNOON)
    for day in other_days:
        vjobs += [vprobe.job(cases[i].msgs, cases[i].add_generation_prompt, today=day) for i in fixed]
    out = vprobe.run(vjobs)
    for i, r in zip(fixed, out[len(cases) + 2 * len(fixed):]):  # a time of day anywhere: refused, never frozen
        if r != out[i] and r[0] == out[i][0] == "ok":
            raise _time_of_day(out[i][1], r[1], f" ({cases[i].label})")
    verify(fmt, cases, out[:len(cases)], date=DATE_1)
    for k, day in enumerate(other_days):
        got = out[len(cases) + k * len(fixed):len(cases) + (k + 1) * len(fixed)]
        if day is DATE_1_AFTERNOON:
            verify(fmt, [cases[i] for i in fixed], got, date=day)
        elif fmt.structure.dated:  # the date where the recovered {DATE=...} puts it, on the other days too
            verify(fmt, [cases[i] for i in fixed], got, date=day)
        else:
            for i, r in zip(fixed, got):
                if r != out[i]:
                    raise ConversionRefused(f"injects today's date (strftime_now) in a conversation "
                                            f"({cases[i].label})", "date")


#: conversations outside the alternating ones the verification covers (module docstring)
_OTHER_SHAPES = {"two answers in a row": ("user", "assistant", "assistant"),
                 "two user messages in a row": ("user", "user", "assistant")}


def renders_otherwise(fmt: ChatFormat, vprobe: "_Probe", *, has_system: bool) -> list[str]:
    """The shapes of :data:`_OTHER_SHAPES` (with and without a system message) that the template
    renders, and otherwise than ``fmt`` does: what a conversion note names.  A shape the template
    raises on, or the format refuses, is not one of them."""
    cases = []
    for what, roles in _OTHER_SHAPES.items():
        msgs = [{"role": r, "content": f"{r} message {i}"} for i, r in enumerate(roles)]
        cases.append((what, msgs))
        if has_system:
            cases.append((what, [{"role": "system", "content": "system message"}] + msgs))
    out = vprobe.run([vprobe.job(msgs, False) for _, msgs in cases])
    differ: list[str] = []
    for (what, msgs), (kind, text) in zip(cases, out):
        if kind != "ok" or what in differ:
            continue
        try:
            mine = fmt.render(msgs, False, date=DATE_1)
        except MessageError:
            continue
        if mine != text:
            differ.append(what)
    return differ


def _given_reasoning_cases() -> list[tuple[list[dict], bool]]:
    """Conversations whose answers carry ``reasoning_content``: with newlines around it, empty,
    beside a content that holds a ``<think>`` block, in an earlier and a final answer."""
    def a(content: str, reasoning: str) -> dict:
        return {"role": "assistant", "content": content, "reasoning_content": reasoning}

    u1, u2 = {"role": "user", "content": "q1"}, {"role": "user", "content": "q2"}
    return [([u1, a("a1", "\nr1\n")], False), ([u1, a("a1", " r1 \n")], False),
            ([u1, a("<think>\nt1\n</think>\n\na1", "\nr1 \n"), u2, a("<think>t2</think>a2", "r2")], False),
            ([u1, a("<think>t1</think>\na1", ""), u2], True),
            ([u1, a("a1", "r1"), u2, a("\na2", "\n\nr2")], True)]


def read_given_reasoning(fmt: ChatFormat, vprobe: "_Probe") -> tuple[ChatFormat, str]:
    """Stage 5, for a format whose answers render reasoning: how the template reads an answer's
    ``reasoning_content`` (``Structure.given_reasoning``), tried in order on conversations that
    carry it: stripped of newlines, as given or whitespace-stripped (the content then not split at
    ``</think>``), or
    not at all (the template renders as without it: ``"refused"``).  A template that reads it
    otherwise gets ``"refused"`` too, with a note: the format then refuses messages carrying
    it instead of rendering them differently.  Returns the format and the note (or ``""``)."""
    st = fmt.structure
    if not any(r is not None and r.renders_reasoning for r in (st.assistant.rule, st.assistant.final)):
        return fmt, ""
    cases = _given_reasoning_cases()
    out = vprobe.run([vprobe.job(m, gen) for m, gen in cases])
    failed = next((text for kind, text in out if kind != "ok"), None)
    if failed is not None:
        return (ChatFormat(_replace(st, given_reasoning="refused"), fmt.meta),
                "reasoning_content refused: the template fails on an answer carrying it (" + failed[:120] + ")")
    plain = [([{k: v for k, v in m.items() if k != "reasoning_content"} for m in msgs], gen) for msgs, gen in cases]
    for mode in ("strip_nl", "verbatim", "trim", "refused"):
        f = ChatFormat(_replace(st, given_reasoning=mode), fmt.meta)
        if f.structure.given_reasoning != mode:
            continue
        try:
            got = [f.render(m, gen, date=DATE_1) for m, gen in (plain if mode == "refused" else cases)]
        except MessageError:
            continue
        if got == [text for _, text in out]:
            return f, ""
    return (ChatFormat(_replace(st, given_reasoning="refused"), fmt.meta),
            "reasoning_content refused: the template reads it in a way the format cannot carry (neither "
            "newline-stripped, nor as given, nor ignored); put reasoning in the content as <think>...</think>")


def _prompt_after_answer(st, res: dict, tokens: dict):
    """What the generation prompt does after an answer: ``st`` with the first of the IR's choices
    (the prompt after the final answer; nothing; the prompt after the answer rendered as an
    earlier one) that renders the probes ending with an answer (the plain one and the answer
    probes) with the prompt; None when none does.  Verification checks the rest."""
    from tmplc.ir import PROMPT_AFTER_ANSWER

    probes = {"nosys+gen": probe_messages(False), **answers.gen_probe_jobs()}
    if any(res[n][0] != "ok" for n in probes):
        return st
    for mode in PROMPT_AFTER_ANSWER:
        fmt = ChatFormat(_replace(st, prompt_after_answer=mode))
        try:
            if all(fmt.render(m, True, **tokens) == res[n][1] for n, m in probes.items()):
                return fmt.structure
        except MessageError:
            continue
    return None


def _closing(q_text: str, gen_text: str, nosys: str, hist: tuple[str, str]) -> str:
    """Text a template renders at the end of a conversation only without the generation prompt
    (Phi-3.5: ``{% else %}{{ eos_token }}``): where the prompt and that text go separate ways at
    the end of the same conversation, and it also ends the other probes; ``""`` if none."""
    k = 0
    while k < min(len(q_text), len(gen_text)) and q_text[k] == gen_text[k]:
        k += 1
    if k == len(q_text):  # the prompt only adds text
        return ""
    if q_text.rfind("<", 0, k) > q_text.rfind(">", 0, k):  # not inside a <...> tag
        k = q_text.rfind("<", 0, k)
    tail = q_text[k:]
    if SENT["user2"] in tail or not nosys.endswith(tail) or hist[0] != "ok" or not hist[1].endswith(tail):
        return ""
    return tail


def _as_history(final_text: str, hist: tuple[str, str]) -> str:
    """``final_text`` (a probe ending with the second answer) with that answer and what precedes
    it as the ``hist`` probe (the conversation going on with a user message) renders them; its
    ending is kept (a last answer may end differently: ``final_suffix``)."""
    kind, hist_text = hist
    k = SENT["assistant2"]
    i, j = hist_text.find(k), final_text.find(k)
    if kind != "ok" or i < 0 or j < 0:
        return final_text
    return hist_text[:i + len(k)] + final_text[j + len(k):]


def _recover_skip_empty(st, empty_res: tuple[str, str], nosys: str, tokens: dict,
                        blank_res: tuple[str, str] = ("error", "")):
    """``{SYSTEM|nonempty}`` when a system message with content "" renders exactly like no system
    message (``{% if system_message %}``) and the block as recovered would render it; with
    ``|empty_omitted`` when it renders like none *without* the default (MiniMax-M1 renders its
    default only without a system message); ``|nonblank`` when a blank one (``blank_res``) renders
    like the empty one and the block trims it (``{% set s = content|trim %}{% if s %}``).  Compared
    as differences from the conversation without a system message: the layout has no answer rules
    yet."""
    from dataclasses import replace

    kind, text = empty_res
    if kind != "ok":
        return st
    plain = probe_messages(False)
    msgs = [{"role": "system", "content": ""}] + plain

    def cut(without: str, empty: str) -> tuple[int, str]:
        """Where ``empty`` leaves out text of ``without``, and that text ("": nothing left out)."""
        p = 0
        while p < min(len(without), len(empty)) and without[p] == empty[p]:
            p += 1
        q = 0
        while q < min(len(without), len(empty)) - p and without[-1 - q] == empty[-1 - q]:
            q += 1
        if empty != without[:p] + without[len(without) - q:]:
            return -1, ""
        return (p, without[p:len(without) - q]) if p + q < len(without) else (0, "")

    def renders_empty(layout, with_msgs: list, want: str) -> bool:
        """Whether ``layout`` renders ``with_msgs`` as differing from no system message as ``want`` does."""
        f = ChatFormat(layout)
        return cut(f.render(plain, **tokens), f.render(with_msgs, **tokens)) == cut(nosys, want)

    if text != nosys and cut(nosys, text)[0] < 0:
        return st
    if renders_empty(st, msgs, text):
        return st
    # the block as read, or with a head of its prefix moved to the preamble (where no system message
    # renders the default, nothing but an empty one shows where the block starts)
    found = None
    for head, tail in [((), st.system.prefix)] + fragment_cuts(st.system.prefix)[::-1][1:]:
        base = replace(st, preamble=st.preamble + head, system=replace(st.system, prefix=tail))
        for cand in (replace(base.system, skip_empty=True), replace(base.system, skip_empty=True, empty_omitted=True)):
            if renders_empty(replace(base, system=cand), msgs, text):
                found = base, cand
                break
        if found or base.system.default is None:  # only a default hides where the block starts
            break
    if found is None:
        return st  # verification says where the template differs
    st, cand = found
    blank_kind, blank = blank_res
    if cand.trim and blank_kind == "ok" and blank == text:
        with_blank = [{"role": "system", "content": " "}] + plain
        trimmed = replace(cand, empty_after_trim=True)
        if not renders_empty(replace(st, system=cand), with_blank, blank) and \
                renders_empty(replace(st, system=trimmed), with_blank, blank):
            cand = trimmed
    return replace(st, system=cand)


def _parses(nosys: str, trim: dict, q_text: str) -> bool:
    try:
        structure_from_render(nosys, system=False, trim=trim, user_end=_user_end(q_text), mark_end=False)
        return True
    except ConversionRefused:
        return False


def _check_generation_prompt(fmt: ChatFormat, full: str, q_text: str, gen_text: str, tokens: dict) -> None:
    """A precise refusal when the generation prompt is not how an assistant turn starts in the
    history (``prefix`` alone, the ``lead`` left to the model): checked on the probe."""
    q = probe_messages(False, end_with_assistant=False)
    try:
        if fmt.render(q, False, **tokens) != q_text or fmt.render(q, True, **tokens) == gen_text:
            return  # matches, or differs elsewhere: verification says where
    except MessageError:  # pragma: no cover - probe conversations are well formed
        return
    after, user_end = _user_end(gen_text) or "", _user_end(q_text) or ""
    i = full.find(SENT["user2"])
    history = full[i + len(SENT["user2"]):full.find(SENT["assistant2"])] if i >= 0 else ""
    where = "after the last user message"
    if gen_text.startswith(q_text) and user_end and history.startswith(user_end):
        after, history, where = after[len(user_end):], history[len(user_end):], f"after the user turn's end {_show(user_end)}"
    raise ConversionRefused(
        f"renders a generation prompt that is not the start of an assistant turn in the history: {where} "
        f"the prompt is {_show(after)}, but in the history the answer follows {_show(history)} (the prompt "
        "must be a prefix of that text; e.g. a reasoning block added to the prompt only)", "generation_prompt")


def _user_end(q_text: str) -> str | None:
    """What follows the last user message when the conversation ends there (no generation
    prompt): the user suffix, observed — it places the user/assistant boundary."""
    i = q_text.rfind(SENT["user2"])
    return q_text[i + len(SENT["user2"]):] if i >= 0 else None


def verify(fmt: ChatFormat, cases: list[Case], results: list[tuple[str, str]], *, what: str = "the template",
           transform=None, date=None) -> None:
    """Require byte equality between the original's results and ``fmt.render`` on every case."""
    for case, (kind, text) in zip(cases, results):
        if refused_alike(fmt, kind, case.msgs):
            continue  # the format refuses it too (a MessageError)
        if kind != "ok":
            raise _failure(kind, text, f"a conversation ({case.label})")
        try:
            mine = fmt.render(case.msgs, case.add_generation_prompt, date=date)
        except MessageError as e:
            raise ConversionRefused(f"the recovered format cannot render a conversation the template "
                                    f"renders ({case.label}): {e}", "turns") from None
        if transform is not None:
            mine = transform(case, mine)
        if mine != text:
            raise diagnose(fmt, case, text, mine, what=what, date=date)
