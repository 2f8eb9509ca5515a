'''IR -> Ollama Modelfile (``FROM``, ``TEMPLATE``, ``SYSTEM``, ``PARAMETER stop``).

The TEMPLATE is a Go ``text/template`` in Ollama's *messages mode* (``range $i, $_ :=
.Messages`` with ``$last := eq (len (slice $.Messages $i)) 1``; no ``loop.last``).  Run by
Ollama, it renders every conversation exactly like the reference renderer
(:mod:`tmplc.render`), under Ollama's conventions, which are documented here:

* **What the template sees.**  Ollama merges consecutive messages of the same role with
  ``"\\n\\n"`` before rendering, and prepends the Modelfile ``SYSTEM`` as a system message when
  the first message is not a system one.  So the Ollama rendering of ``messages`` equals the
  reference rendering of the *merged* list (with the default system message applied by the
  format, which is what ``SYSTEM`` does).
* **Generation prompt.**  Ollama has no ``add_generation_prompt`` flag.  The template appends the
  assistant prefix, then the assistant's ``prompt_only`` text (``{PROMPT=...}``), when the last
  message is not an assistant message (= the reference with ``add_generation_prompt=True``), and
  treats a trailing assistant message as a prefill: its suffix (the end-of-turn) is left out so
  the model continues it (= ``continue_final_message=True``; no ``prompt_only``, as in the
  reference).  ``prompt_after_answer`` changes nothing here: Ollama never prompts after an
  answer.
* **BOS.**  Ollama's runtime adds BOS when it tokenizes, so the BOS that would *start* the
  rendering is never written: a ``{BOS}`` at the start of the preamble is dropped, and so is one
  at the start of whatever comes first when the preamble is empty (the standalone system prefix,
  or the prefix of the first turn).  Any other ``{BOS}`` (Llama-2's per-turn ``<s>``) is written as
  the literal ``bos_token`` string; Ollama tokenizes the prompt with special-token parsing, so it
  becomes the BOS token again.  A format whose leading BOS depends on whether some message
  content is empty is refused (:class:`TargetError`).  ``{EOS}`` is the literal ``eos_token``.
* **Trim.**  Ollama's template functions cannot strip a string, so a format with ``|trim``,
  ``|lstrip`` or ``|rstrip`` (Llama-3, Gemma, ...) cannot be reproduced for contents with
  whitespace at their (stripped) edges.  :func:`to_ollama` refuses such formats unless
  ``allow_untrimmed=True``; then contents are rendered as sent (exact whenever they have no
  whitespace at the stripped edges; clients should strip them), the Modelfile says so in a
  comment, and a stripped *default* system message is stripped (on its side) at compile time
  (exact).  ``{OUTPUT|drop_think}``/``|drop_think_first`` (an answer rendered from after its
  last/first ``</think>``) is refused: Ollama's template functions cannot search a string either.
* **Errors.**  Go templates have no ``raise_exception``; what the reference refuses (a system
  message that is not first, a system message for a format without a system slot, an unknown
  role, a system message that must go inside the first user turn when that turn is missing, an
  empty answer for ``{OUTPUT|no_empty_answer}``)
  makes the template execute ``{{ template "tmplc: <reason>" . }}``, so Ollama fails the request
  with ``template "tmplc: <reason>" not defined``.
* **No system message** (``{NOSYSTEM}...{/NOSYSTEM}``, ``absent``): the template renders that text
  where the standalone block would be, for conversations whose first message is not a system
  message (or, with ``{SYSTEM|nonempty}``, is an empty one).
* **Default system message.**  Written as ``SYSTEM``.  When ``SYSTEM`` cannot carry it (an empty
  default, which Ollama ignores, or text the Modelfile parser cannot hold: non-printable
  characters), it is built into the TEMPLATE instead, for conversations whose first message is
  not a system message.
* **Empty system message** (``{SYSTEM|nonempty}``, ``skip_empty``).  A first system message
  with content ``""`` counts as none: the template omits the block, or renders the default
  system message, which it then holds itself (Ollama sends ``SYSTEM`` only when the first
  message is not a system message, so it is not there).
* **Date** (``{DATE=format}``).  Ollama's template functions have one date, ``currentDate``: it
  ignores its arguments and returns the server's local date as ``YYYY-MM-DD`` (``time.Now()``,
  Go layout ``2006-01-02``).  So ``{DATE=%Y-%m-%d}`` (or ``%F``, with any literal text and ``%%``
  around it) is written as ``{{ currentDate }}`` and renders like the reference for that day;
  any other format (``%d %b %Y``, ``%A``, ...) is refused (:class:`TargetError`, naming the format).
* **Stop strings.**  One ``PARAMETER stop`` per ``fmt.stop_strings``.  No sampling parameters.

Modelfile quoting (from Ollama's ``parser/parser.go``, ported as :func:`parse_modelfile`): a value
is read to the end of its line and whitespace-trimmed; ``"..."`` / ``"""..."""`` values may span
lines and end at the first newline where the whitespace-trimmed text read so far ends with the
closing quote(s); there are no escape sequences, and characters that Go's ``strconv.IsPrint``
rejects (other than space, tab, CR, LF) are silently dropped.  So the TEMPLATE is written as
``"""<template>"""`` and any literal text that could be damaged (edge whitespace, quotes, ``{{``,
non-printable characters, CR) is emitted through a Go string literal ``{{ "..." }}`` (whose
escapes are plain ASCII); the rest stays readable.  ``SYSTEM`` and stop values are written bare,
``"""..."""`` or ``"..."``, whichever reads back exactly; every value (and the whole file) is
verified by reading it back with :func:`parse_modelfile`, and one that cannot be written is a
:class:`TargetError`.

Caveat (Ollama >= 0.30): if the GGUF also carries a ``tokenizer.chat_template`` advertising more
capabilities (tools, thinking), Ollama may prefer it over this TEMPLATE; start the server with
``OLLAMA_GO_TEMPLATE=1`` to force the TEMPLATE.
'''

from __future__ import annotations

import unicodedata
from dataclasses import replace
from typing import TYPE_CHECKING, Iterable, Sequence

from tmplc.errors import ModelfileSyntaxError, TargetError
from tmplc.render import Event, walk
from tmplc.targets.conventions import ollama_prompt_mode
from tmplc.spec.vocabulary import FINAL_SCOPES, THINK_FILTER_OF
from tmplc.ir import TRIM_FILTER_OF, DateToken, Fragment, SpecialToken

if TYPE_CHECKING:  # pragma: no cover
    from tmplc.ir import ChatFormat

__all__ = ["TargetError", "to_ollama", "untrimmed_caveat", "parse_modelfile", "modelfile_fields", "go_string",
           "FROM_PLACEHOLDER"]

FROM_PLACEHOLDER = "<path-to-model.gguf>"


def _refuse(reason: str) -> TargetError:
    return TargetError("ollama", reason)


def _syntax(reason: str) -> ModelfileSyntaxError:
    return ModelfileSyntaxError("ollama", reason)


# --------------------------------------------------------------------------------------------
# Ollama's Modelfile parser (parser/parser.go ParseFile), ported rune for rune

_NIL, _NAME, _VALUE, _PARAMETER, _MESSAGE, _COMMENT = range(6)
_COMMANDS = ("from", "license", "template", "system", "adapter", "draft", "renderer", "parser",
             "parameter", "message", "requires")
_WS = " \t\r\n"  # the only whitespace that can reach the buffer (everything else is non-printable)


def go_isprint(c: str) -> bool:
    """Go's ``strconv.IsPrint``: categories L, M, N, P, S and the ASCII space."""
    return c == " " or unicodedata.category(c)[0] in "LMNPS"


def _unquote(s: str) -> tuple[str, bool]:
    if s[:3] == '"""':
        if len(s) >= 6 and s[-3:] == '"""':
            return s[3:-3], True
        return "", False
    if s[:1] == '"':
        if len(s) >= 2 and s[-1] == '"':
            return s[1:-1], True
        return "", False
    return s, True


def _unquote_buffer(buf: list[str]) -> tuple[str, bool]:
    """``unquote(strings.TrimSpace(buffer))`` without joining the buffer unless it is needed
    (the buffer holds single characters; only " \t\r\n" among them are white space)."""
    i, j = 0, len(buf)
    while i < j and buf[i] in _WS:
        i += 1
    while j > i and buf[j - 1] in _WS:
        j -= 1
    if i < j and buf[i] == '"':
        head = "".join(buf[i:i + 3])
        tail = "".join(buf[max(i, j - 3):j])
        if head == '"""':
            if not (j - i >= 6 and tail == '"""'):
                return "", False
        elif not (j - i >= 2 and tail[-1] == '"'):
            return "", False
    return _unquote("".join(buf[i:j]))


def _is_alpha(c: str) -> bool:
    return "a" <= c <= "z" or "A" <= c <= "Z"


def _next_state(c: str, cs: int) -> tuple[int, str]:
    """parseRuneForState; "" stands for Go's rune 0 (written nowhere)."""
    if cs == _NIL:
        if c == "#":
            return _COMMENT, ""
        if c in _WS:
            return _NIL, ""
        return _NAME, c
    if cs == _NAME:
        if _is_alpha(c):
            return _NAME, c
        if c in " \t":
            return _VALUE, ""
        raise _syntax("Modelfile: " + 'command must be one of "from", "license", ...')
    if cs == _VALUE:
        if c in _WS:
            return _NIL, c
        return _VALUE, c
    if cs in (_PARAMETER, _MESSAGE):
        if _is_alpha(c) or (cs == _PARAMETER and (c.isdigit() and c.isascii() or c == "_")):
            return cs, c
        if c in " \t":
            return _VALUE, ""
        raise _syntax("Modelfile: unexpected EOF")
    # comment
    if c in "\r\n":
        return _NIL, ""
    return _COMMENT, ""


def parse_modelfile(text: str) -> list[tuple[str, str]]:
    """Read a Modelfile exactly as Ollama's ``parser.ParseFile`` does.

    Returns the commands as ``(name, args)``: ``("model", FROM value)``, ``("template", ...)``,
    ``("system", ...)``, ``(parameter name, value)``, ``("message", "role: text")``...
    Raises TargetError where Ollama reports an error.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    cmds: list[tuple[str, str]] = []
    name = ""
    role = ""
    curr = _NIL
    buf: list[str] = []
    for c in text:
        nxt, r = _next_state(c, curr)
        if nxt != curr:
            if curr == _NAME:
                word = "".join(buf)
                if word.lower() not in _COMMANDS:
                    raise _syntax(f"Modelfile: unknown command {word!r}")
                low = word.lower()
                if low == "from":
                    name = "model"
                elif low == "parameter":
                    nxt = _PARAMETER
                elif low == "message":
                    nxt = _MESSAGE
                    name = low
                else:
                    name = low
            elif curr == _PARAMETER:
                name = "".join(buf)
            elif curr == _MESSAGE:
                role = "".join(buf)
                if role not in ("system", "user", "assistant"):
                    raise _syntax(f"Modelfile: invalid message role {role!r}")
            elif curr == _VALUE:
                s, ok = _unquote_buffer(buf)
                if not ok or r in " \t":
                    buf.append(r)
                    continue
                if role:
                    s, role = role + ": " + s, ""
                cmds.append((name, s))
            buf = []
            curr = nxt
        if r and go_isprint(r):
            buf.append(r)
    if curr == _VALUE:
        s, ok = _unquote("".join(buf).strip(_WS))
        if not ok:
            raise _syntax("Modelfile: unexpected EOF (an unterminated quoted value)")
        if role:
            s = role + ": " + s
        cmds.append((name, s))
    elif curr not in (_NIL, _COMMENT):
        raise _syntax("Modelfile: unexpected EOF")
    if not any(n == "model" for n, _ in cmds):
        raise _syntax("Modelfile: no FROM line")
    return cmds


def modelfile_fields(text: str) -> dict:
    """What ``ollama create`` takes from a Modelfile: ``from``, ``template``, ``system`` (last one
    wins, None when absent) and ``stop`` (every ``PARAMETER stop``, in order)."""
    out: dict = {"from": None, "template": None, "system": None, "stop": []}
    for name, args in parse_modelfile(text):
        if name == "model":
            out["from"] = args
        elif name in ("template", "system"):
            out[name] = args
        elif name == "stop":
            out["stop"].append(args)
    return out


def _value_reads_back(command: str, value: str, written: str) -> bool:
    try:
        cmds = parse_modelfile(f"FROM x\n{command} {written}\n")
    except TargetError:
        return False
    want = {"FROM": "model"}.get(command, command.split()[-1].lower())
    return cmds[1:] == [(want, value)]


def _quote(command: str, value: str, what: str) -> str:
    """The shortest of bare, ``\"\"\"...\"\"\"`` and ``\"...\"`` that Ollama reads back as ``value``."""
    for written in (value, '"""' + value + '"""', '"' + value + '"'):
        if _value_reads_back(command, value, written):
            return written
    bad = sorted({c for c in value if not (go_isprint(c) or c in _WS)})
    if bad:
        why = ("it contains characters that Ollama's Modelfile parser silently drops (not "
               "strconv.IsPrint): " + ", ".join(f"U+{ord(c):04X}" for c in bad))
    else:
        why = ('no quoting reads it back exactly (Modelfile values have no escapes; a line of it '
               'ends with a quote)')
    raise _refuse(f"cannot write {what} {value!r} in a Modelfile: {why}")


# --------------------------------------------------------------------------------------------
# Go template text

_GO_ESC = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def go_string(s: str) -> str:
    """A Go interpreted string literal for ``s`` that survives the Modelfile parser: printable
    characters stay, the rest become escapes."""
    out = []
    for c in s:
        if c in _GO_ESC:
            out.append(_GO_ESC[c])
        elif go_isprint(c):
            out.append(c)
        elif ord(c) <= 0xFFFF:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return '"' + "".join(out) + '"'


def _emit(s: str) -> str:
    return "{{ " + go_string(s) + " }}" if s else ""


def _raw_ok(core: str) -> bool:
    return ("{{" not in core and not core.endswith("{") and '"""' not in core
            and all(go_isprint(c) or c in "\n\t" for c in core))


def literal(text: str) -> str:
    """Template source that outputs ``text``: readable raw text where that is safe whatever
    actions surround it (``{{-``/``-}}`` trim only template text, never action output), Go string
    literals for edge whitespace and anything else."""
    if not text:
        return ""
    core = text.strip(_WS)
    if core and _raw_ok(core):
        lead = text[: len(text) - len(text.lstrip(_WS))]
        trail = text[len(text.rstrip(_WS)):]
        return _emit(lead) + core + _emit(trail)
    return _emit(text)


# --------------------------------------------------------------------------------------------
# {DATE=...}: Ollama's only date is currentDate (YYYY-MM-DD)

CURRENT_DATE = "{{ currentDate }}"
_ISO_RUNS = ("%Y-%m-%d", "%F")  # what currentDate renders, as strftime formats (glibc's %F = %Y-%m-%d)


def date_pieces(fmt: str) -> list[str | None] | None:
    """``fmt`` (a strftime format) as literal texts and ``None`` for "the date as YYYY-MM-DD"
    (Ollama's ``currentDate``), or None when it has any other directive."""
    out: list[str | None] = []
    text = ""
    i = 0
    while i < len(fmt):
        run = next((r for r in _ISO_RUNS if fmt.startswith(r, i)), None)
        if run is not None:
            if text:
                out.append(text)
            out.append(None)
            text, i = "", i + len(run)
        elif fmt.startswith("%%", i):
            text, i = text + "%", i + 2
        elif fmt[i] == "%":
            return None
        else:
            text, i = text + fmt[i], i + 1
    if text:
        out.append(text)
    return out


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _error(reason: str) -> str:
    return "{{ template " + go_string("tmplc: " + reason) + " . }}"


def _bos_probes(fmt: "ChatFormat") -> list[tuple["ChatFormat", list[dict]]]:
    """One conversation per layout whose leading BOS the template must place, as Ollama sends them
    (merged roles, ending with a user message: the generation prompt follows, as
    :func:`~tmplc.targets.conventions.ollama_prompt_mode` says), with the format to
    walk it with.  A standalone block's default comes as a system message (Ollama's ``SYSTEM``), so
    only a format without one sees conversations without a system message; the turns of a block
    inside the first user turn are read as they are without the block (its default is placed by
    the ``system, user`` conversation)."""
    def msgs(*roles: str) -> list[dict]:
        return [{"role": r, "content": "x"} for r in roles]

    turns = (("user", "assistant", "user"), ("assistant", "user"))
    st, sb = fmt.structure, fmt.structure.system
    if sb is None:
        return [(fmt, msgs(*t)) for t in turns]
    if sb.placement == "standalone":
        return [(fmt, msgs("system", *t)) for t in turns] + (
            [(fmt, msgs(*t)) for t in turns] if sb.default is None else [])
    bare = replace(fmt, structure=replace(st, system=None))
    return [(fmt, msgs("system", "user"))] + [(bare, msgs(*t)) for t in turns]


def _pieces(events: Iterable[Event]) -> list[Fragment | None]:
    """The walk's pieces after the preamble: a template fragment, or None for a piece whose text
    may be empty (a message content, a default system message); an assistant turn's prefix and
    lead are one piece (the template writes them together)."""
    out: list[Fragment | None] = []
    for e in events:
        if e.part == "preamble":
            continue
        if e.fragment is None:
            out.append(None)
        elif e.part == "lead" and out and out[-1] is not None:
            out[-1] = out[-1] + e.fragment
        else:
            out.append(e.fragment)
    return out


# --------------------------------------------------------------------------------------------
# the generator


class _Gen:
    def __init__(self, fmt: "ChatFormat", allow_untrimmed: bool) -> None:
        self.fmt = fmt
        self.st = fmt.structure
        st = self.st
        if st.tools is not None:
            writes = {"json": f"writes JSON with separators {st.tools.json.separators!r} in the caller's key order",
                      "xml": "writes each tool as XML with values as Python's str() writes them (['string', "
                             "'null'], True, None), which Go's templates cannot",
                      "python_def": "writes each tool as a Python signature with a docstring, which Go's templates "
                                    "cannot",
                      "typescript": "writes each tool as a TypeScript type, which Go's templates cannot",
                      "python_str": "writes each tool as Python's str() writes it, which Go's templates cannot"}[
                          st.tools.tool_layout]
            raise _refuse(
                f"format {fmt.name!r} renders tools, tool calls and tool results, which an Ollama template "
                "cannot reproduce exactly: Ollama serialises .Tools and tool-call arguments with Go's "
                "encoding/json (compact ',' and ':' separators, '<', '>' and '&' escaped, its own key order), "
                f"and this format {writes}; use the text-only entry of this format for Ollama")
        think = st.assistant.rule.drop_think
        if think:
            which = "first" if think.startswith("first") else "last"
            raise _refuse(
                f"format {fmt.name!r} renders answers from after their {which} '</think>' "
                f"({{OUTPUT|{THINK_FILTER_OF[think]}}}), which an Ollama template cannot do (Ollama's template "
                "functions cannot search or split a string)")
        a = st.assistant
        refusals = (  # (the format has it, what it does, why an Ollama template cannot)
            (a.rule.lstrip_nl, "removes leading newlines from answers ({OUTPUT|lstrip_nl})",
             " (no string functions)"),
            (bool(st.closing), "ends a conversation rendered without the generation prompt with "
             "closing text ({END})", ": Ollama renders every prompt for generation (it has no "
             "add_generation_prompt=False)"),
            (a.empty is not None, "renders an empty answer as a turn of its own ({EMPTY})",
             ": Ollama merges and continues messages, so an empty last answer is continued, not rendered"),
            (a.rule.wraps_nonempty, "renders text around an answer only when the answer is not empty "
             "({NONEMPTY}...{/NONEMPTY})", ": Ollama continues a trailing answer, and its template functions "
             "cannot strip a string"),
            (a.rule.think is not None, "renders every answer's reasoning in a block "
             "({THINK}...{/THINK})", ": Ollama's template functions cannot search or split a string"),
            (a.final is not None, "renders the final answer's content by its own rule (the "
             "second {OUTPUT}'s filters or a {THINK} block: reasoning kept or re-wrapped)",
             ": Ollama's template functions cannot search, split or strip a string"),
            (st.final_scope != "last", "ends answers other than the conversation's last "
             "message with the last answer's own ending ("
             + " / ".join("|" + f for f in FINAL_SCOPES) + ")",
             ": Ollama continues a trailing answer and cannot tell an earlier answer's position"),
        )
        for has, what, why in refusals:
            if has:
                raise _refuse(f"format {fmt.name!r} {what}, which an Ollama template cannot do{why}")
        self.dated = False
        for where, frag in self.fragments():
            for p in frag:
                if isinstance(p, DateToken):
                    self.dated = True
                    if date_pieces(p.format) is None:
                        raise _refuse(
                            f"format {fmt.name!r} renders the date as {{DATE={p.format}}} in the {where}, "
                            "which an Ollama template cannot do: Ollama's only date function, currentDate, "
                            f"always gives YYYY-MM-DD; {p.format!r} is not that (use {{DATE=%Y-%m-%d}}, "
                            "optionally with literal text around it)")
        trims = _trimmed(fmt)
        filters = "/".join(dict.fromkeys("|" + f for _, f in trims))
        trims = [f"the {n} content (|{f})" for n, f in trims]
        if trims and not allow_untrimmed:
            raise _refuse(
                f"format {fmt.name!r} strips {_and(trims)}, which an Ollama template cannot do "
                "(Ollama's template functions cannot strip a string). Pass allow_untrimmed=True "
                "(the CLI's default; --strict refuses) to emit a template that renders contents as sent (identical "
                f"whenever contents have no whitespace where {filters} strips it), or remove {filters} "
                "from the spec.")
        self.untrimmed = trims

    def fragments(self) -> list[tuple[str, Fragment]]:
        st = self.st
        out = [("preamble", st.preamble)]
        if st.system is not None:
            out += [("system prefix", st.system.prefix), ("system suffix", st.system.suffix)]
            if st.system.absent:
                out.append(("{NOSYSTEM} text", st.system.absent))
        return out + [("user prefix", st.user.prefix), ("user suffix", st.user.suffix),
                      ("assistant prefix", st.assistant.prefix), ("assistant lead", st.assistant.lead),
                      ("assistant suffix", st.assistant.suffix)]

    # -- pieces -----------------------------------------------------------------------------
    def token(self, p: SpecialToken, where: str) -> str:
        tok = self.fmt.meta.bos_token if p.name == "BOS" else self.fmt.meta.eos_token
        if tok is None:
            raise _refuse(f"format {self.fmt.name!r} uses {{{p.name}}} in the {where}, but declares "
                              f"no {p.name.lower()}_token, and Ollama needs it written as text there")
        return tok

    def out(self, frag: Fragment, where: str, drop_leading_bos: bool = False) -> str:
        """Template source that outputs ``frag``: literal text (BOS/EOS written as their token
        strings), ``{{ currentDate }}`` for the date."""
        out: list[str] = []
        text = ""
        for k, p in enumerate(frag):
            if isinstance(p, SpecialToken):
                if k == 0 and drop_leading_bos and p.name == "BOS":
                    continue
                text += self.token(p, where)
            elif isinstance(p, DateToken):
                for piece in date_pieces(p.format) or ():  # refused in __init__ when None
                    if piece is None:
                        out.append(literal(text) + CURRENT_DATE)
                        text = ""
                    else:
                        text += piece
            else:
                text += p.value
        return "".join(out) + literal(text)

    def prefix_out(self, frag: Fragment, where: str, lead_cond: str | None) -> str:
        """A turn prefix whose leading BOS is dropped when the Go condition ``lead_cond`` holds."""
        if lead_cond is None or not (frag and frag[0] == SpecialToken("BOS")):
            return self.out(frag, where)
        bos = self.token(frag[0], where)
        return "{{ if not " + lead_cond + " }}" + literal(bos) + "{{ end }}" + self.out(frag[1:], where)

    # -- BOS analysis -----------------------------------------------------------------------
    @property
    def absent(self) -> Fragment:
        """The text a standalone block renders instead of itself without a system message
        (``{NOSYSTEM}...{/NOSYSTEM}``), or ``()``."""
        sb = self.st.system
        return (sb.absent or ()) if sb is not None and sb.placement == "standalone" else ()

    def bos_plan(self) -> tuple[bool, bool, bool]:
        """(drop the preamble's first BOS, drop the standalone system prefix's first BOS (and the
        {NOSYSTEM} text's), drop the first turn prefix's first BOS).

        Without a preamble, the leading BOS is read off the reference walk (:func:`tmplc.render.walk`)
        of one conversation per layout Ollama sends (:func:`_bos_probes`): the template can drop it
        only where it is the first piece; a BOS reached after pieces that may all be empty (message
        contents, or empty template pieces) would be leading or not depending on the contents."""
        st = self.st
        if st.preamble:
            return st.preamble[0] == SpecialToken("BOS"), False, False
        if not st.uses("BOS"):
            return False, False, False
        for fmt, messages in _bos_probes(self.fmt):
            pieces = _pieces(walk(fmt, messages, **ollama_prompt_mode(messages)))
            state = "nothing"  # "maybe": only pieces that may be empty rendered so far
            for k, frag in enumerate(pieces):
                if frag is None:
                    state = "maybe" if state == "nothing" else state
                    continue
                if not frag:
                    continue
                if frag[0] == SpecialToken("BOS") and state != "something" and (state == "maybe" or k > 0):
                    raise _refuse(
                        f"format {self.fmt.name!r}: whether its rendering starts with {{BOS}} depends "
                        "on the layout in a way the Ollama target cannot reproduce (Ollama adds the "
                        "leading BOS itself); start the spec with {BOS} or a fixed text")
                state = "something"
        sb = st.system
        first_is_sys = sb is not None and sb.placement == "standalone"
        return (False, first_is_sys and bool(sb.prefix) and sb.prefix[0] == SpecialToken("BOS"), True)

    # -- the template -----------------------------------------------------------------------
    def template(self, default: str | None, default_in_template: bool) -> str:
        """The TEMPLATE.  ``default``: the default system message as rendered (stripped at compile
        time); ``default_in_template``: SYSTEM cannot carry it, so the template renders it for
        conversations whose first message is not a system message."""
        st, sb, name = self.st, self.st.system, self.fmt.name
        drop_pre, drop_sys, drop_turn = self.bos_plan()
        # the {NOSYSTEM} text comes first when there is no preamble: its leading BOS is Ollama's
        drop_absent = drop_turn and bool(self.absent) and self.absent[0] == SpecialToken("BOS")
        L: list[str] = []
        pre = self.out(st.preamble, "preamble", drop_pre)
        sys0 = "(eq (index $.Messages 0).Role \"system\")"
        after_sys = "(and (eq $i 1) " + sys0 + ")"
        skip = sb is not None and sb.skip_empty
        # a first system message with content "" that counts as no system message ({SYSTEM|nonempty})
        empty0 = "(eq (index $.Messages 0).Content \"\")"
        after_shown = "(and (eq $i 1) " + sys0 + " (ne (index $.Messages 0).Content \"\"))" if skip else after_sys
        # the Go condition under which a turn prefix is the very first thing rendered
        lead_cond = gen_cond = None
        absent = self.absent
        if drop_turn:
            if sb is not None and sb.placement == "standalone":
                if sb.default is None and not absent:
                    lead_cond = ("(or (eq $i 0) (and (eq $i 1) " + sys0 + " " + empty0 + "))") if skip else "(eq $i 0)"
                    if skip:  # a lone empty system message: the generation prompt comes first
                        gen_cond = "(and (eq $i 0) (eq .Role \"system\") (eq .Content \"\"))"
                elif skip and sb.empty_omitted:  # an empty system message renders nothing, not the default
                    lead_cond = "(and (eq $i 1) " + sys0 + " " + empty0 + ")"
                    gen_cond = "(and (eq $i 0) (eq .Role \"system\") (eq .Content \"\"))"
            elif sb is not None:
                lead_cond = "(or (eq $i 0) " + after_sys + ")"
                if skip:  # a lone empty system message (a non-empty one is an error)
                    gen_cond = "(and (eq $i 0) (eq .Role \"system\"))"
            else:
                lead_cond = "(eq $i 0)"

        def sys_block(content_expr: str | None, text: str | None = None) -> str:
            body = self.out(sb.prefix, "system prefix", drop_sys and sb.placement == "standalone")
            body += ("{{ " + content_expr + " }}") if content_expr else literal(text or "")
            return body + self.out(sb.suffix, "system suffix")

        L.append("{{- range $i, $_ := .Messages }}" if not pre else pre + "\n{{- range $i, $_ := .Messages }}")
        L.append("{{- $last := eq (len (slice $.Messages $i)) 1 }}")
        no_sys = None  # what is rendered instead of the block without a system message
        if sb is not None and sb.placement == "standalone" and default_in_template:
            no_sys = sys_block(None, default)
        elif absent:  # {NOSYSTEM} (excludes a default)
            no_sys = self.out(absent, "{NOSYSTEM} text", drop_absent)
        if no_sys is not None:
            L.append("{{- if and (eq $i 0) (ne .Role \"system\") }}" + no_sys + "{{- end }}")
        # system
        L.append("{{- if eq .Role \"system\" }}")
        if sb is None:
            L.append(_error(f"format {name} has no system message slot ({{SYSTEM}} is not in its spec)"))
        else:
            L.append("{{- if ne $i 0 }}" + _error("a system message is only allowed as the first message")
                     + "{{- end }}")
            if sb.placement == "standalone":
                if not skip:
                    L[-1] += sys_block(".Content")
                else:
                    other = "" if sb.empty_omitted else sys_block(None, default) if default is not None else (
                        self.out(absent, "{NOSYSTEM} text", drop_absent) if absent else "")
                    L.append("{{- if ne .Content \"\" }}" + sys_block(".Content")
                             + ("{{- else }}" + other if other else "") + "{{- end }}")
            else:
                L.append("{{- if " + ("and $last (ne .Content \"\")" if skip else "$last") + " }}" + _error(
                    f"format {name} places the system message inside the first user turn, but the "
                    "conversation has no user message") + "{{- end }}")
        # user
        L.append("{{- else if eq .Role \"user\" }}" + self.prefix_out(st.user.prefix, "user prefix", lead_cond))
        if sb is not None and sb.placement == "first_user":
            L.append("{{- if " + after_shown + " }}" + sys_block("(index $.Messages 0).Content"))
            # where the default goes: no system message (only when SYSTEM cannot carry it: else
            # Ollama sends it as message 0), or an empty one that counts as none
            where = (["(eq $i 0)"] if default_in_template else []) + \
                ([after_sys] if skip and default is not None and not sb.empty_omitted else [])
            if where:
                cond = where[0] if len(where) == 1 else "(or " + " ".join(where) + ")"
                L.append("{{- else if " + cond + " }}" + sys_block(None, default))
            L.append("{{- end }}{{ .Content }}" + self.out(st.user.suffix, "user suffix"))
        else:
            L[-1] += "{{ .Content }}" + self.out(st.user.suffix, "user suffix")
        # assistant
        L.append("{{- else if eq .Role \"assistant\" }}")
        if st.refuses_empty_answers:
            L.append("{{- if eq .Content \"\" }}" + _error(f"format {name} refuses an empty answer (its template "
                                                             "raises on one)") + "{{- end }}")
        if sb is not None and sb.placement == "first_user":
            # the system block (a message, or the default) is pending but the turn is an assistant one
            pending = after_shown if default is None or sb.empty_omitted else after_sys
            cond = pending if not default_in_template else "(or (eq $i 0) " + pending + ")"
            L.append("{{- if " + cond + " }}" + _error(
                f"format {name} places the system message inside the first user turn, but the first "
                "turn after it is an assistant message") + "{{- end }}")
        L[-1] += (self.prefix_out(st.assistant.prefix + st.assistant.lead, "assistant prefix", lead_cond)
                  + "{{ .Content }}")
        suffix = self.out(st.assistant.suffix, "assistant suffix")
        if suffix:
            L[-1] += "{{ if not $last }}" + suffix + "{{ end }}"
        L.append("{{- else }}" + _error("unknown role: this format supports system, user and assistant"))
        L.append("{{- end }}")
        gen = (self.prefix_out(st.assistant.prefix, "assistant prefix", gen_cond)
               + literal(st.assistant.prompt_only))
        if gen:
            L.append("{{- if and $last (ne .Role \"assistant\") }}" + gen + "{{ end }}")
        L.append("{{- end }}")
        return "\n".join(L)


def _trimmed(fmt: "ChatFormat") -> list[tuple[str, str]]:
    """The roles whose contents the format strips, with their trim filter's name."""
    st = fmt.structure
    return [(n, TRIM_FILTER_OF[p.trim_side]) for n, p in
            (("user", st.user), ("assistant", st.assistant), ("system", st.system)) if p is not None and p.trim]


def _comment(text: str) -> str:
    return "\n".join("# " + line if line else "#" for line in text.replace("\r", "").split("\n"))


def untrimmed_caveat(fmt: "ChatFormat") -> str | None:
    """What a Modelfile written with ``allow_untrimmed=True`` leaves to the client, or None when the
    format strips nothing (one text for the CLI, the bundle manifest and export reports)."""
    parts = _trimmed(fmt)
    if not parts:
        return None
    trims = _and([f"the {n} content (|{f})" for n, f in parts])
    return (f"format {fmt.name!r} strips {trims} and Ollama templates cannot: the Modelfile renders "
            "contents as sent, so strip them before sending (as Ollama's own templates for these models "
            "do not strip either); --strict refuses instead")


def to_ollama(fmt: "ChatFormat", from_: str | None = None, *, allow_untrimmed: bool = False) -> str:
    """A complete Modelfile for ``fmt`` (see the module docstring for the conventions).

    Args:
        from_: the ``FROM`` value (GGUF path, safetensors directory or Ollama model name);
            default: the placeholder :data:`FROM_PLACEHOLDER`, which ``ollama create`` rejects.
        allow_untrimmed: emit a template for a format with ``|trim`` that renders contents as
            sent (a documented difference) instead of raising.

    Raises:
        TargetError: the format cannot be reproduced by an Ollama TEMPLATE, or a value cannot be
            written in a Modelfile.
    """
    gen = _Gen(fmt, allow_untrimmed)
    sb = fmt.structure.system
    default = None
    if sb is not None and sb.default is not None:
        default = sb.content(sb.default)  # stripped (by its side) at compile time: exact
    system_value: str | None = None
    default_in_template = False
    if default is not None:
        try:
            if default == "":
                raise _refuse("empty")
            system_value = _quote("SYSTEM", default, "the default system message")
        except TargetError:
            default_in_template = True
    template = gen.template(default, default_in_template)

    lines = [_comment(f"Modelfile generated by tmplc from the chat format {fmt.name!r}.")]
    lines.append(_comment("The TEMPLATE renders exactly like `tmplc render`, with Ollama's conventions: "
                          "no BOS (Ollama adds it),\ngeneration prompt unless the last message is an "
                          "assistant one (then it is continued),\nconsecutive same-role messages merged "
                          "by Ollama."))
    if gen.untrimmed:
        lines.append(_comment(f"NOTE: this format strips {_and(gen.untrimmed)};\nOllama templates "
                              "cannot, so contents are rendered as sent: strip them before sending."))
    if default_in_template:
        lines.append(_comment("The default system message is built into the TEMPLATE (a SYSTEM line "
                              "cannot hold it)."))
    if gen.dated:
        lines.append(_comment("The date is Ollama's {{ currentDate }}: the server's local date, YYYY-MM-DD."))
    if from_ is None:
        lines.append(_comment("Replace the placeholder below (or use `tmplc compile --from PATH`) with a "
                              "GGUF file,\na safetensors directory or an Ollama model name."))
        from_value = FROM_PLACEHOLDER
    else:
        from_value = _quote("FROM", from_, "the FROM value")
    lines.append("FROM " + from_value)
    if not _value_reads_back("TEMPLATE", template, '"""' + template + '"""'):
        raise _refuse(f"internal error: the TEMPLATE for {fmt.name!r} does not read back from the "
                          "Modelfile; please report it")
    lines.append('TEMPLATE """' + template + '"""')
    if system_value is not None:
        lines.append("SYSTEM " + system_value)
    stops: Sequence[str] = fmt.stop_strings
    for s in stops:
        if s == "":
            continue
        lines.append("PARAMETER stop " + _quote("PARAMETER stop", s, "the stop string"))
    text = "\n".join(lines) + "\n"
    # the whole file must read back as intended
    fields = modelfile_fields(text)
    want = {"from": from_value if from_ is None else from_, "template": template,
            "system": default if system_value is not None else None,
            "stop": [s for s in stops if s]}
    if fields != want:
        raise _refuse(f"internal error: the Modelfile for {fmt.name!r} does not read back as "
                          f"written ({fields} != {want}); please report it")
    return text
