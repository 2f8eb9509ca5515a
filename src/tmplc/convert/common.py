"""What the Jinja and Ollama importers share: sentinels, probe texts -> spec text -> Structure,
the verification conversations, and the diagnosis of a difference.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from typing import Sequence

from tmplc.convert.errors import ConversionRefused
from tmplc.errors import MessageError, SpecError
from tmplc.ir import ChatFormat, DateToken, SpecialToken, Structure, Text, fragment

# Unique sentinels: letters and digits only (no whitespace to trim, no markup), mixed case so that
# a case transformation shows up as a difference.
SENT = {
    "system": "Sy5tqZmXa",
    "user1": "Us1qZmXb",
    "assistant1": "As1qZmXc",
    "user2": "Us2qZmXd",
    "assistant2": "As2qZmXe",
    "user3": "Us3qZmXf",
    "bos": "BoSqZmXg",
    "eos": "EoSqZmXh",
}
DATE_SENT = "DaTeqZmXk"  # where a probe render shows the date ({DATE=...})


class DateSentinel:
    """Passed as ``date=`` to ``ChatFormat.render``: a ``{DATE=...}`` renders as DATE_SENT, as in
    probe renders where the date was found."""

    def strftime(self, _format: str) -> str:
        return DATE_SENT


PAD = " \n "  # padding put around a sentinel to see whether the template strips content

PLAIN_SYSTEM = "You are a helpful assistant."


def probe_messages(system: bool, exchanges: int = 2, end_with_assistant: bool = True,
                   pad: str | None = None) -> list[dict]:
    """The probe conversation; ``pad`` = a role whose contents get PAD around the sentinel."""
    def c(key: str, role: str) -> str:
        s = SENT[key]
        return PAD + s + PAD if pad == role else s

    msgs = [{"role": "system", "content": c("system", "system")}] if system else []
    for i in range(1, exchanges + 1):
        msgs.append({"role": "user", "content": c(f"user{i}", "user")})
        msgs.append({"role": "assistant", "content": c(f"assistant{i}", "assistant")})
    if not end_with_assistant:
        msgs.pop()
    return msgs


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


_ROLE_OF = {"system": "system", "user1": "user", "user2": "user", "assistant1": "assistant",
            "assistant2": "assistant"}


def spec_from_render(text: str, *, system: bool, trim: dict, date_format: str | None = None) -> str:
    """Turn a probe render into spec text: sentinels become placeholders, braces are escaped.
    ``trim``: role -> False/None, True (``|trim``) or a trim filter name (``lstrip``, ``rstrip``)."""
    keys = ["user1", "assistant1", "user2", "assistant2"] + (["system"] if system else [])
    for key in keys:
        n = text.count(SENT[key])
        role = _ROLE_OF[key]
        which = {"user1": "first user", "user2": "second user", "assistant1": "first assistant",
                 "assistant2": "second assistant", "system": "system"}[key]
        if n == 0:
            if role == "system":
                raise ConversionRefused("ignores the system message (its content does not appear in "
                                        "the render)", "system")
            raise ConversionRefused(f"does not render the {which} message's content "
                                    "(drops or rewrites message content)", "content")
        if n > 1:
            raise ConversionRefused(f"renders the {which} message's content {n} times", "content")
    names = {SENT["bos"]: "{BOS}", SENT["eos"]: "{EOS}"}
    if date_format:
        names[DATE_SENT] = "{DATE=" + date_format + "}"
    for key in keys:
        role = _ROLE_OF[key]
        ph = {"system": "SYSTEM", "user": "INPUT", "assistant": "OUTPUT"}[role]
        t = trim.get(role)
        names[SENT[key]] = "{" + ph + (f"|{'trim' if t is True else t}" if t else "") + "}"
    pattern = re.compile("|".join(re.escape(s) for s in names))
    out, pos = [], 0
    for m in pattern.finditer(text):
        out.append(_escape(text[pos:m.start()]))
        out.append(names[m.group(0)])
        pos = m.end()
    out.append(_escape(text[pos:]))
    return "".join(out)


def structure_from_render(text: str, *, system: bool, trim: dict,
                          user_end: str | None = None, reply_at: str | None = None,
                          date_format: str | None = None, first_turn: str | None = None,
                          mark_end: bool = True, check=None) -> Structure:
    """Recover the layout from a probe render with the spec language's own structure rules.

    ``user_end``: the observed user suffix (what a conversation ending with a user message
    ends with, without generation prompt).  When it is a prefix of the text between a user
    message and the answer, a ``{SPLIT}`` is put there: the boundary is observed, not inferred.

    ``reply_at``: the observed end of a prompt (what follows the last user message with the
    generation prompt; ``user_end`` again when the template has none).  When it is a *proper*
    prefix of the text between a user message and the answer (and starts with ``user_end``
    where that is placed), a ``{REPLY}`` is put there: the rest is the assistant lead, text the
    model writes before its content (Vicuna's ``ASSISTANT:`` prompt + `` answer``, Mistral's
    ``[/INST]`` + `` answer``).
    """
    from tmplc.spec.files import parse_structure

    spec = spec_from_render(text, system=system, trim=trim, date_format=date_format)
    _check_repetition(text, system)
    spec = _insert_marks(spec, None if user_end is None else _as_spec(user_end, date_format),
                         None if reply_at is None else _as_spec(reply_at, date_format))
    found = None
    for st in structure_candidates(spec, None if first_turn is None else _as_spec(first_turn, date_format),
                                   mark_end, None if user_end is None else _as_spec(user_end, date_format)):
        if check is None:
            return st
        try:
            return check(st)
        except ConversionRefused as e:  # this reading does not explain the other probes: the next one
            found = found or e
    if found is not None:
        raise found
    try:
        return parse_structure(spec)
    except SpecError as e:
        raise ConversionRefused("the probe conversation does not render as two repetitions of one "
                                f"exchange: {e.message} (probe render as a spec: {spec!r})", "structure") from None


def structure_candidates(spec: str, first_turn: str | None, mark_end: bool = True, turn_end: str | None = None):
    """The layouts a probe spec parses to: as written, then with the first assistant turn's end
    marked (:func:`_turn_end_marks`), each that parses, once."""
    from tmplc.spec.files import parse_structure

    seen = []
    specs = [spec] + (list(_turn_end_marks(spec, first_turn, turn_end)) if mark_end else [])
    for s in specs:
        try:
            st = parse_structure(s)
        except SpecError:
            continue
        if st not in seen:
            seen.append(st)
            yield st


def _as_spec(raw: str, date_format: str | None = None) -> str:
    """Raw probe text (no message sentinels) as spec text: braces escaped, BOS/EOS (and the date)
    named."""
    out = (_escape(raw.replace(SENT["bos"], "\x00B").replace(SENT["eos"], "\x00E"))
           .replace("\x00B", "{BOS}").replace("\x00E", "{EOS}"))
    return out.replace(DATE_SENT, "{DATE=" + date_format + "}") if date_format else out


def _reply_point(mid: str, prompt: str, floor: int = 0) -> tuple[int, str] | None:
    """Where the model's reply starts in ``mid`` (spec text between ``{INPUT}`` and
    ``{OUTPUT}``) given the prompt's end ``prompt`` (spec text from the last ``{INPUT}``), and the
    text the prompt adds there that the history does not have: ``(k, extra)``, or None.

    * ``prompt`` a proper prefix of ``mid``: the rest of ``mid`` is the lead (``{REPLY}``).
    * ``mid`` a prefix of ``prompt``: the prompt adds ``extra`` (``{PROMPT=...}``) before the
      answer (DeepSeek-R1: ``<｜Assistant｜>`` + ``<think>\n``).
    * otherwise they share a prefix (cut back, not below ``floor`` (the user turn's end), so that it
      ends outside any ``<...>``/``[...]`` tag),
      after which the history has a lead and the prompt has extra text (GLM-4.7: prompt
      ``<|assistant|><think>``, history ``<|assistant|></think>answer``)."""
    if len(prompt) < len(mid) and mid.startswith(prompt):
        return len(prompt), ""
    if prompt.startswith(mid):
        return len(mid), prompt[len(mid):]
    c = 0
    while c < min(len(mid), len(prompt)) and mid[c] == prompt[c]:
        c += 1
    for open_, close in ("<>", "[]"):  # never inside a tag: <think> vs </think> share "<"
        j, k = mid.rfind(open_, 0, c), mid.rfind(close, 0, c)
        end = mid.find(close, c)
        if j > k and j >= floor and end >= 0 and open_ not in mid[c:end]:  # c is inside mid[j:end+1]
            c = j
    return (c, prompt[c:]) if c > 0 else None


def _insert_marks(spec: str, user_end: str | None, reply_at: str | None) -> str:
    """Put ``{SPLIT}`` after ``user_end`` right after each ``{INPUT...}`` when both exchanges
    continue with it before ``{OUTPUT...}`` (an empty assistant prefix puts it right before
    ``{OUTPUT}``), and ``{REPLY}``/``{PROMPT=...}`` where the prompt ``reply_at`` leaves the
    history (:func:`_reply_point`; ``{SPLIT}{REPLY}`` when the two coincide)."""
    parts = re.split(r"(\{INPUT(?:\|[a-z]+)*\})", spec)
    if len(parts) != 5:
        return spec
    mids = []
    for k in (2, 4):
        pos = 0
        for m in re.finditer(r"\{\{|\}\}|\{[A-Za-z|]+\}|.", parts[k], re.S):
            if m.group(0).startswith("{OUTPUT"):
                break
            pos = m.end()
        else:
            return spec
        mids.append(parts[k][:pos])
    split = user_end is not None and all(mid.startswith(user_end) for mid in mids)
    point = None
    if reply_at is not None and mids[0] == mids[1]:
        point = _reply_point(mids[0], reply_at, len(user_end) if split else 0)
        if point is not None:
            k, extra = point
            diverges = k < len(mids[0]) and extra  # both a lead and prompt-only text
            if ("{" in extra or "}" in extra or (split and k < len(user_end))
                    or (diverges and k <= (len(user_end) if split else 0))
                    or (k == len(mids[0]) and not extra)):
                point = None
    for k in (2, 4):
        p = parts[k]
        if point is not None:
            at, extra = point
            mark = ("{REPLY}" if at < len(mids[0]) else "") + ("{PROMPT=" + extra + "}" if extra else "")
            p = p[:at] + mark + p[at:]
        if split:
            p = p[:len(user_end)] + "{SPLIT}" + p[len(user_end):]
        parts[k] = p
    return "".join(parts)


def _turn_end_marks(spec: str, first_turn: str | None = None, turn_end: str | None = None):
    """When the last answer ends differently from the first (gpt-oss's ``<|return|>``, an open last
    turn), the specs with ``{SPLIT}`` where the first assistant turn may end, most likely first:
    the user prefix is the longest text that both the first turn's start (``first_turn``: what a
    conversation without a system message renders before the first user content; else ``HEAD``)
    and the text after the first answer end with, never cut inside a ``<...>`` tag; then every
    other cut, the longest user prefix first.  A cut after the user turn's own ending
    (``turn_end``: turns that all end alike, gpt-oss's ``<|end|>``) comes before all of them."""
    ph = list(re.finditer(r"\{(?:INPUT|OUTPUT)(?:\|[a-z_]+)*\}", spec))
    if len(ph) != 4:
        return
    head = first_turn if first_turn is not None else spec[:ph[0].start()]
    gap = spec[ph[1].end():ph[2].start()]
    cuts = [0] + [m.end() for m in re.finditer(r"\{\{|\}\}|\{[^{}]*\}|.", gap, re.S)]  # atom boundaries
    n = 0
    while n < min(len(head), len(gap)) and head[-1 - n] == gap[-1 - n]:
        n += 1
    c = len(gap) - n
    if 0 < c < len(gap) and gap.rfind("<", 0, c) > gap.rfind(">", 0, c):  # inside a tag: after it
        nxt = gap.find("<", c)
        c = nxt if nxt >= 0 else len(gap)
    order = ([c] if c in cuts else []) + [k for k in cuts if k != c]
    if turn_end and gap.startswith(turn_end) and len(turn_end) in cuts:
        order = [len(turn_end)] + [k for k in order if k != len(turn_end)]
    for k in order:
        yield spec[:ph[1].end()] + gap[:k] + "{SPLIT}" + gap[k:] + spec[ph[2].start():]


def _check_repetition(text: str, system: bool) -> None:
    """Precise reasons for the common ways a render is not two equal exchanges."""
    try:
        i1, o1 = text.index(SENT["user1"]), text.index(SENT["assistant1"])
        i2, o2 = text.index(SENT["user2"]), text.index(SENT["assistant2"])
    except ValueError:  # pragma: no cover - spec_from_render checked
        return
    if system and text.index(SENT["system"]) > i1:
        raise ConversionRefused("places the system message after the first user message (e.g. inside "
                                "the last user turn), which a chat format cannot express", "structure")
    if not i1 < o1 < i2 < o2:
        raise ConversionRefused("renders the messages out of order", "structure")
    mid1 = text[i1 + len(SENT["user1"]):o1]
    mid2 = text[i2 + len(SENT["user2"]):o2]
    if mid1 != mid2:
        raise ConversionRefused(
            "different text on the last assistant turn: between the user message and the answer "
            f"it renders {_show(mid2)} in the last exchange but {_show(mid1)} in the first one "
            "(e.g. a reasoning block added to the final answer only)", "turns")


def _show(s: str, limit: int = 80) -> str:
    s = s.replace(SENT["bos"], "<BOS>").replace(SENT["eos"], "<EOS>")
    return repr(s if len(s) <= limit else s[:limit] + "...")


# ---------------------------------------------------------------------------------------------
# verification conversations

EDGE_CONTENTS = [
    "", " ", "  padded  ", "\nnewlines\n", "\n\nleading", "trailing\n\n", "\t tab \t", "a\n\nb",
    "{{ x }}", "{% if x %}", "{# c #}", "}} {", "<|im_end|>", "</s>", "<s>", "[INST]", "<think>t</think>a",
    "</think>", "<think>t</think>\n\n a \n", "<think>t</think>a</think>b", "x</think> y", "<think>\nt\n</think>\n\na", " r</think> a ", "é 日本 🙂", "'\"\\", "<|eot_id|>", "<end_of_turn>", "###", "User:", "\r\n",
]
NASTY = ["{{ x }}", "{% if %}", "{#", "<|eot_id|>", "<|im_end|>", "</s>", "<s>", "[INST]",
         "<start_of_turn>", "\\", "'", '"', "\n", "\n\n", " ", "\t", "}}", "{", "é", "日本", "🙂",
         "<think>", "</think>", "<|", "|>"]


@dataclass(frozen=True)
class Case:
    """One verification conversation."""

    label: str
    messages: tuple
    add_generation_prompt: bool = False

    @property
    def msgs(self) -> list[dict]:
        return [dict(m) for m in self.messages]


def _conv(system: str | None, pairs: Sequence[tuple[str, str]], end_with_assistant: bool) -> tuple:
    msgs = [{"role": "system", "content": system}] if system is not None else []
    for u, a in pairs:
        msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    if not end_with_assistant:
        msgs.pop()
    return tuple(msgs)


def _random_text(rng: random.Random) -> str:
    k = rng.random()
    if k < 0.1:
        return ""
    if k < 0.55:
        alphabet = "abc XYZ\n\t .,:;!?-_()[]<>|/é日本🙂\u00a0"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
    return "".join(rng.choice(NASTY) if rng.random() < 0.6 else rng.choice(["hi", "x", "ok", " ", "42"])
                   for _ in range(rng.randint(1, 6)))


def verification_cases(*, system: bool, n_random: int = 150, seed: int = 0,
                       generation_prompt: bool = True) -> list[Case]:
    """The fixed set (with/without system, 1-6 exchanges, generation prompt on/off, edge
    contents) plus ``n_random`` seeded random conversations.  Every conversation is
    ``[system] user assistant user assistant ...`` (ending with either role; the generation
    prompt after either)."""
    cases: list[Case] = []
    systems: list[str | None] = [None, PLAIN_SYSTEM] if system else [None]
    for sys_ in systems:
        for n in range(1, 7):
            pairs = [(f"Question {i}?", f"Answer {i}.") for i in range(1, n + 1)]
            tag = f"{'with' if sys_ is not None else 'no'} system, {n} exchange{'s' * (n > 1)}"
            cases.append(Case(f"{tag}, ending with the answer", _conv(sys_, pairs, True)))
            cases.append(Case(f"{tag}, ending with the question", _conv(sys_, pairs, False)))
            if generation_prompt:
                cases.append(Case(f"{tag}, ending with the question, add_generation_prompt",
                                  _conv(sys_, pairs, False), True))
                cases.append(Case(f"{tag}, ending with the answer, add_generation_prompt",
                                  _conv(sys_, pairs, True), True))
    for c in EDGE_CONTENTS:
        r = repr(c)
        cases.append(Case(f"user content {r}", _conv(None, [(c, "ok"), ("q", "a")], True)))
        cases.append(Case(f"assistant content {r}", _conv(None, [("q", c), ("q2", c)], True)))
        if system:
            cases.append(Case(f"system content {r}", _conv(c, [("q", "a")], True)))
        if generation_prompt:
            cases.append(Case(f"user content {r}, add_generation_prompt", _conv(None, [("q", "a"), ("u", c)], False),
                              True))
    rng = random.Random(seed)
    for k in range(n_random):
        has_sys = system and rng.random() < 0.5
        n = rng.randint(1, 6)
        pairs = [(_random_text(rng), _random_text(rng)) for _ in range(n)]
        end = rng.random() < 0.5
        gen = generation_prompt and rng.random() < (0.2 if end else 0.7)
        cases.append(Case(f"random conversation #{k}", _conv(_random_text(rng) if has_sys else None, pairs, end),
                          gen))
    return cases


def diagnose(fmt: ChatFormat, case: Case, original: str, recovered: str, *, what: str = "the template",
             render=None, **render_kw) -> ConversionRefused:
    """A precise reason for ``original != recovered`` on ``case``.  ``render(case)`` is how the
    format's side was rendered (default: ``fmt.render``)."""
    msgs = case.msgs
    if render is None:
        def render(c):
            return fmt.render(c.msgs, c.add_generation_prompt, **render_kw)
    if msgs and msgs[0]["role"] == "system":
        try:
            without = render(replace(case, messages=case.messages[1:]))
        except MessageError:
            without = None
        if without == original:
            return ConversionRefused(f"treats a system message with content {msgs[0]['content']!r} as no "
                                     f"system message ({case.label})", "system")
    p = 0
    while p < min(len(original), len(recovered)) and original[p] == recovered[p]:
        p += 1
    where = "at the end"
    category = "turns"
    try:
        segs = fmt.segments(case.msgs, case.add_generation_prompt, **render_kw)
    except MessageError:
        segs = []
    off = 0
    for s in segs:
        if off <= p < off + len(s.text) or (p == off + len(s.text) and s is segs[-1]):
            if s.role is None:
                where = "in the preamble"
            elif s.part == "generation_prompt":
                where = "in the generation prompt"
            else:
                n_role = sum(1 for m in case.messages[: (s.message_index or 0) + 1] if m["role"] == s.role)
                ordinal = {1: "1st", 2: "2nd", 3: "3rd"}.get(n_role, f"{n_role}th")
                where = f"on message {s.message_index} (the {ordinal} {s.role} turn, its {s.part})"
                if s.part == "content":
                    category = "content"
            break
        off += len(s.text)
    lo = max(0, p - 20)
    reason = (f"different text {where} of a conversation ({case.label}): {what} renders "
              f"{_show(original[lo:p + 40])} where the recovered format renders {_show(recovered[lo:p + 40])}")
    if category == "content":
        reason = "transforms message content in a way the IR cannot carry: " + reason
    return ConversionRefused(reason, category)


def with_default(st: Structure, default: str | None) -> Structure:
    return replace(st, system=replace(st.system, default=default))


# ---------------------------------------------------------------------------------------------
# the system block of a conversation without a system message

_MARK = "\x00tmplc-default\x00"


def _fragment_splits(frag):
    """Every way to cut a fragment in two (``head + tail == frag``), shortest head first."""
    yield (), tuple(frag)
    for i, p in enumerate(frag):
        if isinstance(p, Text):
            for j in range(1, len(p.value)):
                yield (fragment(frag[:i] + (Text(p.value[:j]),)),
                       fragment((Text(p.value[j:]),) + frag[i + 1:]))
        yield fragment(frag[:i + 1]), fragment(frag[i + 1:])


def recover_default(st, nosys_text: str, tokens: dict, date_format: str | None = None):
    """The layout of a conversation without a system message, from its probe render.

    The system block recovered from the render *with* a system message is omitted (or shows a
    default system message) without one.  For a standalone block the start of its prefix may
    instead be fixed text rendered in every conversation (GLM's ``[gMASK]<sop>``, a fixed first
    system turn): that part moves into the preamble (a ``{SPLIT}`` before the block in the
    spec).  Candidates, in order: the block as recovered, then the shortest such move; without
    then with a default.  Every candidate renders the probe with a system message identically,
    and the one chosen renders the probe without one exactly; verification checks the rest."""
    def render(s, default):
        f = ChatFormat(with_default(s, default))
        return f.render(probe_messages(False), **tokens)

    candidates = [st]
    if st.system.placement == "standalone":
        for head, tail in _fragment_splits(st.system.prefix):
            if head:
                candidates.append(replace(st, preamble=st.preamble + head,
                                          system=replace(st.system, prefix=tail)))
    refusal = None
    try:
        for cand in candidates:
            try:
                found = _default_for(cand, nosys_text, render)
            except ConversionRefused as e:  # e.g. the date in a default message: {NOSYSTEM} may hold it
                refusal = refusal or e
                continue
            if found is not None:
                return found
        without = render(st, None)
        if st.system.placement == "standalone":
            absent = _absent_for(st, nosys_text, render, tokens, date_format)
            if absent is not None:
                return replace(st, system=replace(st.system, absent=absent))
    except MessageError as e:  # pragma: no cover - probe conversations are well formed
        raise ConversionRefused(f"the recovered format cannot render the probe: {e}", "structure") from None
    if refusal is not None:
        raise refusal
    raise ConversionRefused(
        "renders a conversation without a system message differently from the recovered layout "
        f"(neither without a system block, nor with a default system message, nor with fixed "
        f"text before the system block): it renders {_show(nosys_text[:120])}, the layout without "
        f"a system block renders {_show(without[:120])}",
        "system")


def _absent_for(st, nosys_text: str, render, tokens: dict, date_format: str | None):
    """The text a template renders in place of the system block without a system message
    (``{NOSYSTEM}...{/NOSYSTEM}``), or None: what stands between the preamble and the first turn
    of ``nosys_text`` where the layout without a block has nothing."""
    without = render(st, None)
    bare = ChatFormat(replace(st, system=None)).render([], **tokens)
    rest = without[len(bare):]
    if not (without.startswith(bare) and nosys_text.startswith(bare) and nosys_text.endswith(rest)):
        return None
    text = nosys_text[len(bare):len(nosys_text) - len(rest)]
    if not text or any(s in text for k, s in SENT.items() if k not in ("bos", "eos")):
        return None
    if DATE_SENT in text and not date_format:  # pragma: no cover - the sentinel only comes with a format
        return None
    return probe_fragment(text, date_format)


def probe_fragment(text: str, date_format: str | None = None):
    """Literal probe-render text as a layout fragment: the BOS/EOS sentinels become ``{BOS}``/
    ``{EOS}``, the date sentinel ``{DATE=date_format}``."""
    pieces: list = []
    names = {SENT["bos"]: SpecialToken("BOS"), SENT["eos"]: SpecialToken("EOS")}
    if date_format:
        names[DATE_SENT] = DateToken(date_format)
    pos = 0
    for m in re.finditer("|".join(re.escape(k) for k in names), text):
        pieces += [text[pos:m.start()], names[m.group(0)]]
        pos = m.end()
    pieces.append(text[pos:])
    return fragment(pieces)


def _default_for(st, nosys_text: str, render):
    """``st`` with the default system message that renders ``nosys_text`` (None if no default is
    needed), or None when no default makes it render so."""
    if render(st, None) == nosys_text:
        return st
    preamble = "".join(SENT[p.name.lower()] if isinstance(p, SpecialToken) else
                       DATE_SENT if isinstance(p, DateToken) else p.value for p in st.preamble)
    if DATE_SENT in preamble and DATE_SENT not in nosys_text:  # pragma: no cover - dates found in every probe
        return None
    if not nosys_text.startswith(preamble):
        return None  # the preamble itself differs: no default can help
    marked = render(st, _MARK)
    pre, post = marked.split(_MARK)
    if nosys_text.startswith(pre) and nosys_text.endswith(post) and len(nosys_text) >= len(pre) + len(post):
        default = nosys_text[len(pre):len(nosys_text) - len(post)]
        if DATE_SENT in default:
            raise ConversionRefused("renders today's date inside its default system message: a default "
                                    "system message is fixed text in tmplc (the date can be part of the "
                                    "layout, {DATE=...}, not of the default message)", "date")
        if not any(s in default for s in SENT.values()) and render(st, default) == nosys_text:
            if st.system.trim and default != st.system.content(default):
                raise ConversionRefused("renders a default system message with surrounding whitespace "
                                        "although it trims system content", "system")
            return with_default(st, default)
    return None
