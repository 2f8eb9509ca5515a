"""What the Jinja and Ollama importers share: the sentinels and probe conversations; a probe
render -> spec atoms -> Structure (:class:`_Probe`: the sentinels become the vocabulary's
placeholders, the layout comes from the spec's own structure recovery, no spec text in between);
the verification conversations; the diagnosis of a difference; and the system block of a
conversation without a system message (:func:`recover_default`).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from typing import Sequence

from tmplc.convert.errors import ConversionRefused
from tmplc.errors import MessageError, SpecError
from tmplc.ir import ChatFormat, DateToken, SpecialToken, Structure, Text, fragment
from tmplc.spec.atoms import Codes, write
from tmplc.spec.structure import recover_structure
from tmplc.spec.vocabulary import Atom, placeholder

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


_ROLE_OF = {"system": "system", "user1": "user", "user2": "user", "assistant1": "assistant",
            "assistant2": "assistant"}
_CONTENT = {"system": "SYSTEM", "user": "INPUT", "assistant": "OUTPUT"}


class _Probe:
    """A probe render read as spec atoms: the sentinels become placeholders (built and checked by
    the vocabulary, as the parser builds them), and the text between them runs of literal text.
    The atoms are handled as one string (:class:`tmplc.spec.atoms.Codes`: a placeholder is one
    character), so that marking ``{SPLIT}``, ``{REPLY}`` and ``{PROMPT=...}`` are string
    operations; :meth:`structure` reads the atoms with the spec's own structure recovery."""

    def __init__(self, texts: str, *, system: bool, trim: dict, date_format: str | None) -> None:
        self.codes = Codes(texts)
        self.names = {SENT["bos"]: placeholder("BOS"), SENT["eos"]: placeholder("EOS")}
        if date_format:
            self.names[DATE_SENT] = placeholder("DATE", default=date_format)
        self.plain = re.compile("|".join(re.escape(s) for s in self.names))  # raw text: no message content
        for key in ["user1", "assistant1", "user2", "assistant2"] + (["system"] if system else []):
            role = _ROLE_OF[key]
            t = trim.get(role)
            self.names[SENT[key]] = placeholder(_CONTENT[role], ["trim" if t is True else t] if t else [])
        self.pattern = re.compile("|".join(re.escape(s) for s in self.names))
        self.input, self.output = (self.code(self.names[SENT[k]]) for k in ("user1", "assistant1"))

    def code(self, atom: Atom) -> str:
        return self.codes.code(atom)

    def encode(self, text: str) -> str:
        """A probe render as this encoding."""
        return self.pattern.sub(lambda m: self.code(self.names[m.group(0)]), text)

    def encode_plain(self, raw: str | None) -> str | None:
        """Raw probe text without message content (only BOS/EOS and the date) as this encoding."""
        return None if raw is None else self.plain.sub(lambda m: self.code(self.names[m.group(0)]), raw)

    def is_text(self, s: str) -> bool:
        """Whether ``s`` is literal text only, with no brace (a ``{PROMPT=...}`` can hold it)."""
        return "{" not in s and "}" not in s and not any(c in s for c in self.codes.used())

    def atoms(self, enc: str) -> list[Atom]:
        return self.codes.decode(enc)

    def structure(self, enc: str) -> Structure:
        """The layout the spec's structure recovery reads from the encoded atoms (SpecError if none)."""
        return recover_structure(self.atoms(enc), None)


def probe_atoms(text: str, *, system: bool, trim: dict, date_format: str | None = None) -> list[Atom]:
    """A probe render as spec atoms: sentinels become placeholders.  Refuses (ConversionRefused)
    a render that drops or repeats a message's content.  ``trim``: role -> False/None, True
    (``|trim``) or a trim filter name (``lstrip``, ``rstrip``)."""
    probe = _probe(text, system=system, trim=trim, date_format=date_format)
    return probe.atoms(probe.encode(text))


def _probe(text: str, *, system: bool, trim: dict, date_format: str | None, others: str = "") -> _Probe:
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
    try:
        return _Probe(text + others, system=system, trim=trim, date_format=date_format)
    except SpecError as e:  # pragma: no cover - the probe's date formats are the vocabulary's
        raise ConversionRefused(f"the probe render cannot be read as a spec: {e.message}", "structure") from None


def refused_alike(fmt: ChatFormat, kind: str, msgs: Sequence[dict]) -> bool:
    """Whether a verification conversation the template raised on (``kind``) is one the format
    refuses for the same declared reason (an empty answer: ``Structure.refuses_empty_answers``)."""
    from tmplc.render import refused_empty_answer

    return kind == "raise" and any(refused_empty_answer(fmt.structure, m) for m in msgs)


def fragment_cuts(frag) -> list[tuple[tuple, tuple]]:
    """Every ``(head, tail)`` with ``head + tail == frag`` cut inside or between its literal
    texts (never inside a token or a date), shortest head first."""
    cuts = [((), tuple(frag))]
    for i, p in enumerate(frag):
        rest = tuple(frag[i + 1:])
        if isinstance(p, Text):
            for k in range(1, len(p.value) + 1):
                tail = ((Text(p.value[k:]),) if k < len(p.value) else ()) + rest
                cuts.append((tuple(frag[:i]) + (Text(p.value[:k]),), tail))
        else:
            cuts.append((tuple(frag[:i + 1]), rest))
    return cuts


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
    probe = _probe(text, system=system, trim=trim, date_format=date_format,
                   others="".join(t for t in (user_end, reply_at, first_turn) if t))
    _check_repetition(text, system)
    enc = _insert_marks(probe, probe.encode(text), probe.encode_plain(user_end), probe.encode_plain(reply_at))
    found = None
    for st in structure_candidates(probe, enc, probe.encode_plain(first_turn), mark_end,
                                   probe.encode_plain(user_end)):
        if check is None:
            return st
        try:
            return check(st)
        except ConversionRefused as e:  # this reading does not explain the other probes: the next one
            found = found or e
    if found is not None:
        raise found
    try:
        return probe.structure(enc)
    except SpecError as e:
        raise ConversionRefused("the probe conversation does not render as two repetitions of one "
                                f"exchange: {e.message} (probe render as a spec: {write(probe.atoms(enc))!r})",
                                "structure") from None


def structure_candidates(probe: _Probe, enc: str, first_turn: str | None, mark_end: bool = True,
                         turn_end: str | None = None):
    """The layouts a probe (encoded, :class:`_Probe`) reads as: as it is, then with the first
    assistant turn's end marked (:func:`_turn_end_marks`), each that reads, once."""
    seen = []
    for s in [enc] + (list(_turn_end_marks(probe, enc, first_turn, turn_end)) if mark_end else []):
        try:
            st = probe.structure(s)
        except SpecError:
            continue
        if st not in seen:
            seen.append(st)
            yield st


def _reply_point(mid: str, prompt: str, floor: int = 0) -> tuple[int, str] | None:
    """Where the model's reply starts in ``mid`` (the encoded probe between ``{INPUT}`` and
    ``{OUTPUT}``) given the prompt's end ``prompt`` (encoded, from the last ``{INPUT}``), and the
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


def _insert_marks(probe: _Probe, spec: str, user_end: str | None, reply_at: str | None) -> str:
    """Put ``{SPLIT}`` after ``user_end`` right after each ``{INPUT...}`` when both exchanges
    continue with it before ``{OUTPUT...}`` (an empty assistant prefix puts it right before
    ``{OUTPUT}``), and ``{REPLY}``/``{PROMPT=...}`` where the prompt ``reply_at`` leaves the
    history (:func:`_reply_point`; ``{SPLIT}{REPLY}`` when the two coincide).  All encoded."""
    parts = spec.split(probe.input)
    if len(parts) != 3:
        return spec
    ends = [p.find(probe.output) for p in parts[1:]]
    if min(ends) < 0:
        return spec
    mids = [p[:e] for p, e in zip(parts[1:], ends)]
    split = user_end is not None and all(mid.startswith(user_end) for mid in mids)
    point = None
    if reply_at is not None and mids[0] == mids[1]:
        point = _reply_point(mids[0], reply_at, len(user_end) if split else 0)
        if point is not None:
            k, extra = point
            diverges = k < len(mids[0]) and extra  # both a lead and prompt-only text
            if (not probe.is_text(extra) or (split and k < len(user_end))
                    or (diverges and k <= (len(user_end) if split else 0))
                    or (k == len(mids[0]) and not extra)):
                point = None
    for k in (1, 2):
        p = parts[k]
        if point is not None:
            at, extra = point
            mark = ((probe.code(placeholder("REPLY")) if at < len(mids[0]) else "")
                    + (probe.code(placeholder("PROMPT", default=extra)) if extra else ""))
            p = p[:at] + mark + p[at:]
        if split:
            p = p[:len(user_end)] + probe.code(placeholder("SPLIT")) + p[len(user_end):]
        parts[k] = p
    return probe.input.join(parts)


def _turn_end_marks(probe: _Probe, spec: str, first_turn: str | None = None, turn_end: str | None = None):
    """When the last answer ends differently from the first (gpt-oss's ``<|return|>``, an open last
    turn), the encoded probes with ``{SPLIT}`` where the first assistant turn may end, most likely
    first: the user prefix is the longest text that both the first turn's start (``first_turn``:
    what a conversation without a system message renders before the first user content; else
    ``HEAD``) and the text after the first answer end with, never cut inside a ``<...>`` tag; then
    every other cut, the longest user prefix first.  A cut after the user turn's own ending
    (``turn_end``: turns that all end alike, gpt-oss's ``<|end|>``) comes before all of them."""
    ph = [i for i, ch in enumerate(spec) if ch == probe.input or ch == probe.output]
    if len(ph) != 4:
        return
    head = first_turn if first_turn is not None else spec[:ph[0]]
    gap = spec[ph[1] + 1:ph[2]]
    n = 0
    while n < min(len(head), len(gap)) and head[-1 - n] == gap[-1 - n]:
        n += 1
    c = len(gap) - n
    if 0 < c < len(gap) and gap.rfind("<", 0, c) > gap.rfind(">", 0, c):  # inside a tag: after it
        nxt = gap.find("<", c)
        c = nxt if nxt >= 0 else len(gap)
    order = [c] + [k for k in range(len(gap) + 1) if k != c]  # every offset is between two atoms
    if turn_end and gap.startswith(turn_end):
        order = [len(turn_end)] + [k for k in order if k != len(turn_end)]
    mark = probe.code(placeholder("SPLIT"))
    for k in order:
        yield spec[:ph[1] + 1] + gap[:k] + mark + gap[k:] + spec[ph[2]:]


def _check_repetition(text: str, system: bool) -> None:
    """Precise reasons for the common ways a render is not two equal exchanges."""
    try:
        i1, o1 = text.index(SENT["user1"]), text.index(SENT["assistant1"])
        i2, o2 = text.index(SENT["user2"]), text.index(SENT["assistant2"])
    except ValueError:  # pragma: no cover - probe_atoms checked
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
