"""Ollama Modelfile TEMPLATE -> ChatFormat through the Go harness: probe, recover, verify, or refuse.

The template is rendered by the real Go ``text/template`` engine driven as Ollama drives it
(:mod:`tmplc.engines.ollama`), with the same sentinel probes as the Jinja importer, and the
result is verified on the same conversations.  Ollama's conventions (the ones the Ollama target
documents) define what "renders the same" means:

* Ollama has no ``add_generation_prompt``: a conversation ending with a user message is
  compared with the reference rendering with ``add_generation_prompt=True``.
* A conversation ending with an assistant message: if the template leaves out the end of the
  last answer (prefill, as Ollama-library templates and tmplc's Ollama target do), it is compared
  with ``continue_final_message=True``; if it writes the whole turn, with the plain rendering.
* BOS: Ollama's runtime adds it; an Ollama template has none.  Pass ``bos_token=`` to get a
  format whose preamble starts with ``{BOS}`` (what the model sees).
* ``system``: the Modelfile ``SYSTEM`` (sent as the first message when a conversation has none)
  becomes the format's default system message.

Where only Ollama's conventions make a choice invisible, tmplc fixes it (these choices never
change what Ollama renders):

* prefill templates never show an answer's end on its own: the text between an answer and the
  next question is split so that the user prefix is the longest common ending of that text and of
  the text before the first question (the rest is the assistant suffix);
* the user/assistant boundary: the spec language's default rules; where they cannot decide,
  the whole text between a question and its answer is the user suffix (empty assistant prefix).
  When the prompt (a conversation ending with a question) stops before the whole of that text
  (``ASSISTANT:`` where the history has ``ASSISTANT: answer``), the rest is the assistant lead
  (``{REPLY}``), and the undecidable boundary is the end of the prompt (empty assistant prefix).
  When the prompt instead goes on past that text (``<｜Assistant｜><think>\n`` where the history
  has ``<｜Assistant｜>answer``), the extra text is ``{PROMPT=...}``.
* ``{SYSTEM|nonempty}``: when a system message with content ``""`` renders exactly like a
  conversation without one (``{{ if .System }}``; with the Modelfile ``SYSTEM``, which Ollama
  sends only when the first message is not a system message), and the recovered block would
  show it.
"""

from __future__ import annotations

from dataclasses import replace

from tmplc.convert.common import (
    SENT,
    Case,
    diagnose,
    probe_messages,
    recover_default,
    structure_from_render,
    verification_cases,
    with_default,
)
from tmplc.convert.errors import ConversionRefused
from tmplc.errors import MessageError
from tmplc.ir import ChatFormat, Metadata, SpecialToken, fragment

DATES = ("2026-01-01", "1999-12-31")


def untrusted_limits():
    """The bounds of the Go harness on an untrusted TEMPLATE: :class:`HarnessLimits`' defaults
    (20 s, 2 GiB of address space, 1 MiB per render, 64 MiB of results), the time limit
    overridable with ``TMPLC_UNTRUSTED_TIMEOUT`` (seconds)."""
    import os

    from tmplc.engines.ollama import HarnessLimits

    try:
        timeout = float(os.environ.get("TMPLC_UNTRUSTED_TIMEOUT", "") or 20.0)
    except ValueError:
        timeout = 20.0
    return HarnessLimits(timeout=timeout)


def _run(jobs: list[dict]):
    """Render with the Go harness under :func:`untrusted_limits`; a passed limit is a refusal."""
    from tmplc.convert.errors import SandboxError
    from tmplc.engines.ollama import HarnessLimitError, render_ollama

    try:
        return render_ollama(jobs, untrusted_limits())
    except HarnessLimitError as e:
        raise SandboxError(f"sandbox ({e.limit} limit): {e.reason}") from None


def _same(a, b) -> bool:
    if _ok(a) or _ok(b):
        return a == b
    return a.message == b.message


def _ok(r) -> bool:
    return isinstance(r, str)


def from_ollama(template: str, system: str | None = None, *, bos_token: str | None = None,
                eos_token: str | None = None, format_name: str = "imported", n_random: int = 150,
                seed: int = 0) -> ChatFormat:
    """Convert an Ollama Modelfile TEMPLATE (and its SYSTEM) into a ChatFormat that Ollama renders
    identically, or raise ConversionRefused.  Needs Go (see :mod:`tmplc.engines.ollama`)."""
    if not isinstance(template, str):
        raise ConversionRefused(f"the template must be a string, got {type(template).__name__}", "syntax")
    P = probe_messages
    names = ["nosys", "sys", "q", "nosys@2", "sys@2", "sys:empty"]
    msgs = [P(False), P(True), P(False, end_with_assistant=False), P(False), P(True),
            [{"role": "system", "content": ""}] + P(False)]
    jobs = [{"template": template, "messages": m, "date": DATES[1 if n.endswith("@2") else 0]}
            for n, m in zip(names, msgs)]
    if system:  # what a conversation without a system message renders with the Modelfile SYSTEM
        names.append("nosys:SYSTEM")
        jobs.append({"template": template, "messages": P(False), "system": system, "date": DATES[0]})
    res = dict(zip(names, _run(jobs)))
    nosys = res["nosys"]
    if not _ok(nosys):
        msg = nosys.message
        if "unexpected" in msg or "function" in msg and "not defined" in msg or "unclosed" in msg:
            raise ConversionRefused(f"the template does not parse: {msg}", "syntax")
        raise ConversionRefused(f"fails on a plain user/assistant conversation: {msg}", "raises")
    if not _same(res["nosys"], res["nosys@2"]) or not _same(res["sys"], res["sys@2"]):
        raise ConversionRefused("injects today's date (currentDate): the render changes with the date", "date")
    if not _ok(res["q"]):
        raise ConversionRefused(f"fails on a conversation ending with a user message: {res['q'].message}",
                                "raises")
    has_system = _ok(res["sys"]) and SENT["system"] in res["sys"]
    if _ok(res["sys"]) and not has_system:
        raise ConversionRefused("ignores the system message (its content does not appear in the render)",
                                "system")
    full = res["sys"] if has_system else nosys

    after = nosys[nosys.index(SENT["assistant2"]) + len(SENT["assistant2"]):]
    prefill = after == ""
    no_trim = {"system": False, "user": False, "assistant": False}
    if prefill:
        suffix = _assistant_suffix(nosys)
        full = full + suffix
        nosys_full = nosys + suffix
    else:
        nosys_full = nosys
    mid = _mid(full)
    prompt_end = res["q"][res["q"].index(SENT["user2"]) + len(SENT["user2"]):] if SENT["user2"] in res["q"] else None
    # where the prompt leaves the history: a lead ({REPLY}: the prompt stops early) and/or text
    # only the prompt has ({PROMPT=...}: DeepSeek-R1's "<think>\n")
    reply_at = prompt_end if prompt_end is not None and prompt_end != mid else None
    tokens = dict(bos_token=SENT["bos"], eos_token=SENT["eos"])
    # the user/assistant boundary: the spec rules, else (invisible in Ollama) where the prompt
    # leaves the history (empty assistant prefix), else before all of it (empty user suffix); the
    # first layout whose generation prompt ends like the template's
    st = None
    errors: list[ConversionRefused] = []
    for k, user_end in enumerate([None] + ([mid] if reply_at is None else [_boundary(mid, reply_at), ""])):
        try:
            cand = structure_from_render(full, system=has_system, trim=no_trim, user_end=user_end,
                                         reply_at=reply_at)
        except ConversionRefused as e:
            if k == 0 and "ambiguous structure: cannot tell where the user turn ends" not in e.reason:
                raise
            errors.append(e)
            continue
        st = st or cand
        if prompt_end is None or _prompt_ends(cand, prompt_end, tokens):
            st = cand
            break
    if st is None:
        raise errors[-1]
    if has_system:
        st = recover_default(st, nosys_full, tokens)
    if system:  # the Modelfile SYSTEM is the default system message
        if st.system is None:
            raise ConversionRefused("the Modelfile sets SYSTEM but the template has no place for a system "
                                    "message", "system")
        st = with_default(st, system)
    if has_system:
        st = _recover_skip_empty(st, res["sys:empty"], res["nosys:SYSTEM"] if system else nosys, prefill, tokens)
    if bos_token is not None:
        st = replace(st, preamble=fragment((SpecialToken("BOS"),) + st.preamble))
    fmt = ChatFormat(st, Metadata(name=format_name, bos_token=bos_token, eos_token=eos_token,
                                  notes="converted from an Ollama TEMPLATE"
                                        + ("; the last answer is a prefill (no end of turn)" if prefill else "")))

    cases = verification_cases(system=has_system, n_random=n_random, seed=seed, generation_prompt=False)
    vjobs = [{"template": template, "messages": c.msgs, **({"system": system} if system else {}),
              "date": DATES[0]} for c in cases]
    verify_ollama(fmt, cases, _run(vjobs), prefill=prefill, bos=bos_token is not None)
    return fmt


def expected_ollama(fmt: ChatFormat, case: Case, *, prefill: bool, bos: bool) -> str:
    """What Ollama renders for ``case`` under the conventions above (``bos``: the format's leading
    ``{BOS}`` is the runtime's, not the template's)."""
    msgs = case.msgs
    last_user = bool(msgs) and msgs[-1]["role"] != "assistant"
    text = fmt.render(msgs, add_generation_prompt=last_user,
                      continue_final_message=(not last_user) and prefill)
    if bos and fmt.meta.bos_token and text.startswith(fmt.meta.bos_token):
        text = text[len(fmt.meta.bos_token):]
    return text


def verify_ollama(fmt: ChatFormat, cases: list[Case], results, *, prefill: bool, bos: bool) -> None:
    for case, r in zip(cases, results):
        if not _ok(r):
            raise ConversionRefused(f"fails on a conversation ({case.label}): {r.message}", "raises")
        try:
            mine = expected_ollama(fmt, case, prefill=prefill, bos=bos)
        except MessageError as e:
            raise ConversionRefused(f"the recovered format cannot render a conversation the template "
                                    f"renders ({case.label}): {e}", "turns") from None
        if mine != r:
            raise diagnose(fmt, case, r, mine, what="Ollama",
                           render=lambda c: expected_ollama(fmt, c, prefill=prefill, bos=bos))


def _assistant_suffix(nosys: str) -> str:
    head = nosys[:nosys.index(SENT["user1"])]
    gap = nosys[nosys.index(SENT["assistant1"]) + len(SENT["assistant1"]):nosys.index(SENT["user2"])]
    k = 0
    while k < min(len(head), len(gap)) and head[len(head) - 1 - k] == gap[len(gap) - 1 - k]:
        k += 1
    return gap[:len(gap) - k]


def _boundary(mid: str, prompt: str) -> str:
    """The undecidable user/assistant boundary (empty assistant prefix) where the prompt leaves
    the history: the whole prompt when it stops early (the rest of ``mid`` is the lead), the whole
    of ``mid`` when the prompt only adds text, else their common start cut after markup."""
    if mid.startswith(prompt):
        return prompt
    if prompt.startswith(mid):
        return mid
    c = 0
    while c < min(len(mid), len(prompt)) and mid[c] == prompt[c]:
        c += 1
    while c > 0 and mid[c - 1] not in ">]\n ":
        c -= 1
    return mid[:c] if c else mid


def _prompt_ends(st, prompt_end: str, tokens: dict) -> bool:
    """Whether ``st``'s generation prompt after the probe's last question is ``prompt_end``."""
    msgs = probe_messages(False, end_with_assistant=False)
    try:
        text = ChatFormat(replace(st, system=None)).render(msgs, add_generation_prompt=True, **tokens)
    except MessageError:
        return False
    return text.endswith(SENT["user2"] + prompt_end)


def _recover_skip_empty(st, empty, nosys, prefill: bool, tokens: dict):
    """``{SYSTEM|nonempty}`` when a system message with content "" renders exactly like no system
    message (``{{ if .System }}``-style templates; with the Modelfile SYSTEM, if any, which Ollama
    sends only when the first message is not a system one) and the block as recovered would show
    it."""
    if not _ok(empty) or not _ok(nosys) or empty != nosys:
        return st
    msgs = [{"role": "system", "content": ""}] + probe_messages(False)
    kw = {"continue_final_message": True} if prefill else {}
    try:
        if ChatFormat(st).render(msgs, **kw, **tokens) == empty:
            return st
    except MessageError:
        return st
    return replace(st, system=replace(st.system, skip_empty=True))


def _mid(full: str) -> str:
    """The whole text between the second question and its answer: used as the user suffix when
    the boundary is invisible in Ollama (empty assistant prefix)."""
    return full[full.index(SENT["user2"]) + len(SENT["user2"]):full.index(SENT["assistant2"])]
