"""IR -> llama.cpp: GGUF ``tokenizer.chat_template``, verified built-in name, llama-server/llama-cli args.

What :func:`to_llamacpp` gives (a frozen :class:`LlamaCppTarget`):

* ``chat_template`` -- the Jinja text to embed as GGUF ``tokenizer.chat_template`` (or to pass
  with ``--chat-template-file``) for llama.cpp's own C++ Jinja engine (``--jinja``, the default of
  llama-server).  It is the HF target (``to_jinja(fmt, generation_tags=False)``), which stays in
  the subset that engine supports, with ONE llama.cpp-specific change, described below (trim).
* ``builtin_name`` -- the name of llama.cpp's built-in (non-Jinja) template that llama.cpp's
  detection (``llm_chat_detect_template``) picks for ``chat_template`` -- but only when that
  built-in, run by llama.cpp's own code, renders the probe conversations exactly like the reference
  (:data:`PROBE_CONVERSATIONS`).  Never a guess: when the engine is unavailable, or the detected
  built-in differs, it is ``None`` and ``requires_jinja`` is True.  ``detected_builtin`` is what
  llama.cpp would pick anyway (possibly a wrong one: said in ``notes``); ``builtin_by_name`` a
  built-in that matches when chosen explicitly with ``--no-jinja --chat-template NAME``.
* ``add_bos_token`` / ``gguf_metadata`` / ``stop`` / ``server_args`` / ``cli_args`` /
  :meth:`~LlamaCppTarget.report` / :meth:`~LlamaCppTarget.files`.

Conventions of llama.cpp that the equality claim is stated with (and tested by
tests/test_llamacpp_target.py with the real engine):

* **BOS.**  llama-server removes a leading ``bos_token`` string from the rendered prompt when the
  GGUF says ``tokenizer.ggml.add_bos_token`` and then tokenizes with ``add_special``, so the BOS
  token comes back exactly once.  ``add_bos_token`` is True iff every render of a conversation
  that starts with a system or user message begins with ``{BOS}`` (Llama-3: the preamble; Llama-2:
  the user prefix).  For such formats, a conversation that starts with an *assistant* message
  (possible in formats whose BOS sits in the user prefix) gets a BOS that the reference lacks.
  For every other format ``add_bos_token`` is False, and a ``{BOS}`` elsewhere in the template is
  kept as text (llama-server parses special tokens in the rendered prompt).  ``add_eos_token`` is
  always False: a chat prompt must not end with an added EOS.
* **System message.**  Formats without a system slot raise on a system message; llama.cpp's
  capability probe then says "no system role" and llama-server merges a leading system message
  into the next message as ``system + "\\n" + content`` (and drops it if it is alone).  So such a
  format renders, under llama-server, like the reference on that merged conversation.
* ``add_generation_prompt`` is only defined when true; the template tests it with ``if``.
  The generation prompt's ``{PROMPT=...}`` text (``prompt_only``) is a literal after the
  assistant prefix, and ``{SYSTEM|nonempty}`` is the HF target's ``messages[0]['content'] != ''``
  test: both render as in the reference, unchanged.  The built-in probes include empty and
  whitespace-only system messages, one-sided whitespace and ``</think>`` in answers, each with
  and without ``add_generation_prompt``, so a built-in is named for a format with these features
  only when it renders them too (Orion's skips an empty system message; bailing-think's prompt
  ends with ``<think>``).

**Trim.**  The IR's ``trim`` means Python's ``str.strip()``: it removes every Unicode whitespace
character (``str.isspace``).  llama.cpp's ``|trim`` (and ``.strip()``) is C ``isspace`` over
*bytes*: it only removes ``' \\t\\n\\v\\f\\r'``, and leaves the other 23 -- ``\\x1c``-``\\x1f``,
U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000
(:data:`NON_ASCII_SPACES`).  Refusing every format with trim (Llama-3, Gemma, Command-R, ...)
would be useless, and a claim that silently fails on an ideographic space would be wrong, so the
llama.cpp template replaces every ``x | trim`` by a call to a small macro, ``tmplc_strip(x)``,
that computes exactly ``str.strip()`` in both engines: ``|trim`` then, while the text starts
or ends with one of those 23 characters, remove it (matched as whole characters with
``s[:k] in list`` / ``s[-k:] in list`` for k = 1, 2, 3, which is exact whether slicing counts
bytes, as llama.cpp does, or characters, as Python does) and ``|trim`` again.  ``|lstrip`` /
``|rstrip`` contents (the HF target's ``(x).lstrip()`` / ``(x).rstrip()``, just as ASCII-only in
llama.cpp) get the one-sided variants ``tmplc_lstrip(x)`` / ``tmplc_rstrip(x)`` (Python's
``str.lstrip()`` / ``str.rstrip()``); a ``|drop_think`` split stays inside the call.  Only the
macros a format uses are emitted.  The macro costs
about one extra millisecond per trimmed message in llama.cpp, and only when such a character is
at an edge.  The same macro renders identically in jinja2, so the HF target could adopt it; as
long as it does not, an HF template converted by ``convert_hf_to_gguf.py`` (which copies it
verbatim) differs from the reference under ``llama-server --jinja`` exactly for those characters.
The built-ins (``llama3``, ``gemma``, ...) trim with C ``isspace`` as well; a built-in name whose
only difference is that is still claimed, with ``builtin_exact = False`` and the restriction in
``notes`` (the ``--jinja`` path stays exact).

**Date.**  ``{DATE=format}`` is the HF target's ``strftime_now(format)``, a global of llama.cpp's
engine too: C ``strftime`` of ``localtime(now)`` into a 100-byte buffer (``common/jinja/value.cpp``),
where the reference is Python's ``date.strftime``.  They agree on the date conversions of
:data:`DATE_DIRECTIVES` (with glibc's flags ``-_0^#``) in the "C" locale, which llama-server keeps
(it only sets ``LC_NUMERIC``).  A format with any other conversion is refused (:class:`TargetError`):
time-of-day ones (``%H``, ``%p``, ``%c``, ...) would render llama.cpp's current time where the
reference renders the date at 00:00, and time zones (``%z``, ``%Z``) are empty in the reference; so
is one whose text cannot fit the buffer (99 bytes), or renders nothing (llama.cpp then raises).
llama-cli sets the locale from the environment (``setlocale(LC_ALL, "")`` in
``common/console.cpp``): with a non-C ``LC_TIME``/``LANG``, day and month names (``%a %A %b %B
%h``) and ``%x`` are localised there (said in ``notes``).  No built-in renders a date: a built-in
is only named for a dated format when its rendering does not depend on the date at all.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import datetime as _dt

from tmplc.errors import TargetError, TmplcError
from tmplc.spec.vocabulary import DATE_CONVERSIONS
from tmplc.ir import DateToken, SpecialToken
from tmplc.targets.conventions import expected_llamacpp
from tmplc.targets.jinja import to_jinja

if TYPE_CHECKING:  # pragma: no cover
    from tmplc.ir import ChatFormat

__all__ = [
    "ASCII_SPACES",
    "DATE_DIRECTIVES",
    "NON_ASCII_SPACES",
    "PROBE_CONVERSATIONS",
    "LlamaCppTarget",
    "TargetError",
    "date_refusal",
    "escape_arg",
    "llamacpp_template",
    "to_llamacpp",
]

#: What llama.cpp's ``|trim`` removes (C ``isspace`` in the "C" locale).
ASCII_SPACES = " \t\n\v\f\r"
#: What Python's ``str.strip()`` removes besides :data:`ASCII_SPACES` (every other ``str.isspace`` character).
NON_ASCII_SPACES = ("\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
                    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")

#: strftime conversions that depend on the date only and that glibc's ``strftime`` in the "C" locale
#: (llama.cpp's ``strftime_now``) and Python's ``date.strftime`` render alike (``%n``/``%t``: newline, tab).
DATE_DIRECTIVES = DATE_CONVERSIONS  # the spec language admits exactly these
_DATE_FLAGS = "-_0^#"
#: conversions whose text depends on the locale (llama-cli localises them)
_LOCALE_DIRECTIVES = "aAbBhx"
#: llama.cpp's strftime_now buffer (``char buf[100]``): at most 99 bytes of output
_STRFTIME_MAX = 99




def _conversions(fmt: str) -> list[str] | None:
    """The conversion characters of a strftime format, or None when one is malformed (a
    trailing ``%``, a flag without a conversion)."""
    out: list[str] = []
    i = 0
    while i < len(fmt):
        if fmt[i] != "%":
            i += 1
            continue
        i += 1
        while i < len(fmt) and fmt[i] in _DATE_FLAGS:
            i += 1
        if i >= len(fmt):
            return None
        out.append(fmt[i])
        i += 1
    return out


def date_refusal(fmt_: str) -> str | None:
    """Why llama.cpp's ``strftime_now(fmt_)`` cannot render ``{DATE=fmt_}`` exactly, or None."""
    convs = _conversions(fmt_)
    if convs is None:
        return "it ends with an incomplete conversion ('%' without a letter)"
    if "\x00" in fmt_:
        return "it contains U+0000, which ends a C format string"
    bad = [c for c in dict.fromkeys(convs) if c not in DATE_DIRECTIVES]
    if bad:
        return ("llama.cpp's strftime_now is C strftime of the current time, and " + ", ".join(
            "%" + c for c in bad) + " is not a date conversion that it renders like Python's "
            "date.strftime (time of day, time zone, or platform-specific); use only %" +
            " %".join(DATE_DIRECTIVES[:-1]) + " and %%")
    # the longest text over a year (month and day names of every length), in UTF-8 bytes
    try:
        lengths = {len((_dt.date(2024, 1, 1) + _dt.timedelta(k)).strftime(fmt_).encode("utf-8"))
                   for k in range(366)}
    except (ValueError, UnicodeError) as e:  # the reference cannot render it either
        return f"Python's strftime cannot render it ({e})"
    if max(lengths) > _STRFTIME_MAX:
        return f"it renders up to {max(lengths)} bytes, and llama.cpp's strftime_now fails above {_STRFTIME_MAX}"
    if min(lengths) == 0:
        return "it renders an empty text, which llama.cpp's strftime_now treats as a failure"
    return None


def _date_tokens(fmt: "ChatFormat") -> list[DateToken]:
    return list(dict.fromkeys(p for f in fmt.structure.fragments() for p in f if isinstance(p, DateToken)))


TEMPLATE_FILE = "llama.cpp/chat_template.jinja"
ARGS_FILE = "llama.cpp/args.txt"
MODEL_PLACEHOLDER = "model.gguf"


#: The exact-strip macros: name -> (strip the left end, strip the right end, llama.cpp's ASCII-only
#: strip that each round starts from, written for a Jinja expression).
STRIP_MACROS: dict[str, tuple[bool, bool, str]] = {
    "tmplc_strip": (True, True, "{} | trim"),
    "tmplc_lstrip": (True, False, "({}).lstrip()"),
    "tmplc_rstrip": (False, True, "({}).rstrip()"),
}
#: Which macro replaces each trim side (``Turn.trim_side``/``SystemBlock.trim_side``).
_MACRO_OF_SIDE = {"both": "tmplc_strip", "left": "tmplc_lstrip", "right": "tmplc_rstrip"}


def _strip_macro(name: str = "tmplc_strip") -> str:
    """The macro ``name`` of :data:`STRIP_MACROS`: exactly Python's ``str.strip``/``lstrip``/``rstrip``."""
    left, right, ascii_strip = STRIP_MACROS[name]
    ws = "[" + ", ".join("'" + c + "'" for c in NON_ASCII_SPACES) + "]"
    s = "tmplc_ns.s"
    checks = []
    if left:
        checks += [f"{s}[:{k}] in tmplc_ws" for k in (1, 2, 3)]
    if right:
        checks += [f"{s}[-{k}:] in tmplc_ws" for k in (1, 2, 3)]
    edge = "(" + " or ".join(checks) + ")"
    step = ""
    if left:
        step += ("{%- if " + s + "[:tmplc_k] in tmplc_ws -%}{%- set " + s + " = " + s + "[tmplc_k:] -%}"
                 "{%- set tmplc_ns.go = true -%}{%- endif -%}")
    if right:
        step += ("{%- if " + s + "[-tmplc_k:] in tmplc_ws -%}{%- set " + s + " = " + s + "[:-tmplc_k] -%}"
                 "{%- set tmplc_ns.go = true -%}{%- endif -%}")
    python = {"tmplc_strip": "str.strip()", "tmplc_lstrip": "str.lstrip()", "tmplc_rstrip": "str.rstrip()"}[name]
    ascii_name = {"tmplc_strip": "|trim", "tmplc_lstrip": ".lstrip()", "tmplc_rstrip": ".rstrip()"}[name]
    return (
        "{%- macro " + name + "(text) -%}"
        "{#- Python " + python + ": " + ascii_name + " only removes ASCII whitespace in llama.cpp -#}"
        "{%- set tmplc_ws = " + ws + " -%}"
        "{%- set tmplc_ns = namespace(s=" + ascii_strip.format("text") + ", go=true) -%}"
        "{%- if " + edge + " -%}"
        "{%- for tmplc_i in range(" + s + " | length) -%}{%- if tmplc_ns.go -%}"
        "{%- set tmplc_ns.go = false -%}"
        "{%- for tmplc_k in [1, 2, 3] -%}" + step + "{%- endfor -%}"
        "{%- if tmplc_ns.go -%}{%- set " + s + " = " + ascii_strip.format(s) + " -%}{%- endif -%}"
        "{%- endif -%}{%- endfor -%}"
        "{%- endif -%}"
        "{{- " + s + " -}}"
        "{%- endmacro -%}"
    )


#: characters Python's ``repr`` of a string escapes (besides the quote, ``\\``, ``\n``, ``\r``, ``\t``)
#: that the ``tmplc_pyrepr`` macro escapes too: the non-printable ones up to U+00FF (U+0000 left
#: out: a NUL in the template text) and the Unicode spaces and format characters of common text
PYREPR_ESCAPED = tuple(c for c in map(chr, range(1, 0x100)) if not c.isprintable() and c not in "\t\n\r") + tuple(
    map(chr, [0x1680, *range(0x2000, 0x2010), 0x2028, 0x2029, *range(0x202A, 0x2030), *range(0x205F, 0x2065),
              0x3000, 0xFEFF]))


def _pyrepr_macros() -> str:
    """``tmplc_pystr(v)``: Python's ``str(v)`` for llama.cpp's engine, whose ``| string`` of a list
    or mapping writes the strings in it unescaped (a newline raw, ``\\`` single, no quote choice):
    ``tmplc_pyrepr`` writes Python's ``repr`` of strings, lists and mappings, recursively.  Other
    non-printable characters (unassigned code points, rarer spaces) stay raw, where Python escapes
    them (docs/tools.md)."""
    from tmplc.targets.jinja import jinja_string

    def esc(c: str) -> str:
        n = ord(c)
        return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"

    table = "[" + ", ".join("[" + jinja_string(c) + ", " + jinja_string(esc(c)) + "]" for c in PYREPR_ESCAPED) + "]"
    return (
        "{%- macro tmplc_pyrepr(v) -%}"
        "{%- if v is none -%}{{- 'None' -}}{%- elif v is true -%}{{- 'True' -}}{%- elif v is false -%}{{- 'False' -}}"
        "{%- elif v is string -%}"
        "{%- set tmplc_q = '\"' if ('\\'' in v and '\"' not in v) else '\\'' -%}"
        "{%- set tmplc_r = namespace(s=v.replace('\\\\', '\\\\\\\\')) -%}"
        "{%- if tmplc_q == '\\'' -%}{%- set tmplc_r.s = tmplc_r.s.replace('\\'', '\\\\\\'') -%}{%- endif -%}"
        "{%- set tmplc_r.s = tmplc_r.s.replace('\\n', '\\\\n').replace('\\r', '\\\\r').replace('\\t', '\\\\t') -%}"
        "{%- for tmplc_e in " + table + " -%}{%- set tmplc_r.s = tmplc_r.s.replace(tmplc_e[0], tmplc_e[1]) -%}"
        "{%- endfor -%}"
        "{{- tmplc_q ~ tmplc_r.s ~ tmplc_q -}}"
        "{%- elif v is mapping -%}{{- '{' -}}{%- for tmplc_k, tmplc_x in v | items -%}{%- if not loop.first -%}"
        "{{- ', ' -}}{%- endif -%}{{- tmplc_pyrepr(tmplc_k) ~ ': ' ~ tmplc_pyrepr(tmplc_x) -}}{%- endfor -%}"
        "{{- '}' -}}"
        "{%- elif v is iterable -%}{{- '[' -}}{%- for tmplc_x in v -%}{%- if not loop.first -%}{{- ', ' -}}"
        "{%- endif -%}{{- tmplc_pyrepr(tmplc_x) -}}{%- endfor -%}{{- ']' -}}"
        "{%- else -%}{{- v | string -}}{%- endif -%}"
        "{%- endmacro -%}\n"
        "{%- macro tmplc_pystr(v) -%}{%- if v is string -%}{{- v -}}{%- else -%}{{- tmplc_pyrepr(v) -}}{%- endif -%}"
        "{%- endmacro -%}")


def llamacpp_template(fmt: "ChatFormat") -> str:
    """The chat template for llama.cpp's Jinja engine: the HF target, with ``|trim``, ``.lstrip()``
    and ``.rstrip()`` of contents made exact (the ``tmplc_strip``/``tmplc_lstrip``/``tmplc_rstrip``
    macros)."""
    for tok in _date_tokens(fmt):
        why = date_refusal(tok.format)
        if why is not None:
            raise TargetError("llamacpp", f"format {fmt.name!r}: {{DATE={tok.format}}} cannot be rendered exactly by "
                              f"llama.cpp: {why}")
    used: list[str] = []

    def exact_strip(side: str, expr: str) -> str:
        name = _MACRO_OF_SIDE[side]
        if name not in used:
            used.append(name)
        return name + "(" + expr + ")"

    def exact_pystr(expr: str) -> str:
        if "tmplc_pystr" not in used:
            used.append("tmplc_pystr")
        return "tmplc_pystr(" + expr + ")"

    out = to_jinja(fmt, generation_tags=False, strip=exact_strip, pystr=exact_pystr)
    if used:
        first, _, rest = out.partition("\n")
        macros = [_strip_macro(n) for n in STRIP_MACROS if n in used]
        if "tmplc_pystr" in used:
            macros.append(_pyrepr_macros())
        out = first + "\n" + "\n".join(macros) + "\n" + rest
    return out


def escape_arg(s: str) -> str:
    """``s`` written for a llama.cpp argument that goes through ``string_process_escapes``
    (``-r``/``--reverse-prompt``, ``-p``, ...: escapes are processed by default, ``-e``)."""
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


#: Probe conversations for the built-in claim (contents exercise edges, empties, special text).
PROBE_CONVERSATIONS: tuple[tuple[dict, ...], ...] = tuple(tuple(m) for m in [
    [{"role": "user", "content": "Hello"}],
    [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"}],
    [{"role": "user", "content": "  two\nlines \n"}, {"role": "assistant", "content": "\tok  "},
     {"role": "user", "content": "again"}],
    [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}, {"role": "user", "content": "x"},
     {"role": "assistant", "content": "y"}],
    [{"role": "user", "content": "<|im_end|> {{ x }} [INST] </s>"}, {"role": "assistant", "content": "é 日本 🙂"}],
    [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Hi"}],
    [{"role": "system", "content": " Be brief.\n"}, {"role": "user", "content": "Q1"},
     {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"}],
    # an empty system message: a {SYSTEM|nonempty} block leaves it out (or shows its default)
    [{"role": "system", "content": ""}, {"role": "user", "content": "Hi"}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
     {"role": "user", "content": "Q2"}],
    # a whitespace-only one is not empty (built-ins that trim it first, e.g. gemma, skip it)
    [{"role": "system", "content": " \n"}, {"role": "user", "content": "Hi"}],
    # whitespace at one edge only: |lstrip / |rstrip differ from |trim here
    [{"role": "system", "content": "\nS "}, {"role": "user", "content": " left"},
     {"role": "assistant", "content": "right\n"}, {"role": "user", "content": "\tboth \n"}],
    # reasoning in an answer: |drop_think / |drop_think_first render only what follows </think>
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "<think>\nhm\n</think>\n\nA1</think>B"},
     {"role": "user", "content": "Q2"}],
    # ... and as the final answer (its own rule, a reasoning block), one with leading newlines
    # (|lstrip_nl), an empty final answer ({EMPTY})
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "<think>\nhm\n</think>\n\nA1</think>B"}],
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "\n\nA1"}, {"role": "user", "content": "Q2"},
     {"role": "assistant", "content": "\nA2"}],
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": ""}],
])
# Every probe is rendered with and without add_generation_prompt: the prompt's {PROMPT=...} text
# (e.g. "<think>\n") must be what the built-in's generation prompt adds, or no built-in is named.
#: Probes with non-ASCII whitespace at content edges: where C-isspace trimming differs from str.strip.
UNICODE_SPACE_PROBES: tuple[tuple[dict, ...], ...] = tuple(tuple(m) for m in [
    [{"role": "user", "content": "\u3000hi\xa0"}, {"role": "assistant", "content": "\u2003ok\x1c "}],
    [{"role": "system", "content": "\xa0sys\u3000"}, {"role": "user", "content": " \u205fq"}],
])


@dataclass(frozen=True)
class LlamaCppTarget:
    """What ``tmplc compile --to llamacpp`` produces (see the module docstring)."""

    name: str
    chat_template: str
    builtin_name: str | None
    requires_jinja: bool
    builtin_exact: bool
    detected_builtin: str | None
    builtin_by_name: str | None
    stop: tuple[str, ...]
    add_bos_token: bool
    bos_token: str | None
    server_args: tuple[str, ...]
    cli_args: tuple[str, ...]
    gguf_metadata: dict[str, Any] = field(hash=False)
    special_tokens: dict[str, str] = field(hash=False)
    notes: tuple[str, ...] = ()

    def args_text(self) -> str:
        lines = ["# llama-server (Jinja engine; the template file is this target's chat_template.jinja)",
                 shlex.join(self.server_args), "",
                 "# llama-cli (interactive chat)", shlex.join(self.cli_args)]
        name = self.builtin_name or self.builtin_by_name
        if name:
            lines += ["", "# without --jinja: llama.cpp's built-in template " + repr(name)
                      + ("" if self.builtin_exact else " (see notes: trimming differs)"),
                      shlex.join(["llama-server", "-m", MODEL_PLACEHOLDER, "--no-jinja", "--chat-template", name,
                                  *self._stop_args()])]
        return "\n".join(lines) + "\n"

    def _stop_args(self) -> list[str]:
        out: list[str] = []
        for s in self.stop:
            out += ["-r", escape_arg(s)]
        return out

    def files(self) -> dict[str, str]:
        """Suggested files for ``--to all``: the template (as GGUF/--chat-template-file text) and the args."""
        return {TEMPLATE_FILE: self.chat_template, ARGS_FILE: self.args_text()}

    def report(self) -> str:
        L = [f"llama.cpp target for {self.name!r}", ""]
        if self.builtin_name:
            exact = "identical on the probe conversations" if self.builtin_exact else \
                "identical except trimming of non-ASCII whitespace (see notes)"
            L.append(f"built-in template: {self.builtin_name} (llama.cpp detects it from the template; {exact})")
        else:
            L.append("built-in template: none -- requires --jinja (the default of llama-server)")
            if self.builtin_by_name:
                L.append(f"  (the built-in {self.builtin_by_name!r} matches when selected explicitly: "
                         f"--no-jinja --chat-template {self.builtin_by_name})")
        if self.detected_builtin and self.detected_builtin != self.builtin_name:
            L.append(f"  warning: without --jinja llama.cpp would pick the built-in {self.detected_builtin!r}, "
                     "which renders differently")
        L += ["", "llama-server:", "  " + shlex.join(self.server_args),
              "llama-cli:", "  " + shlex.join(self.cli_args), "",
              f"template file: {TEMPLATE_FILE} ({len(self.chat_template)} characters; written by --to all)",
              "", "GGUF metadata:"]
        for k, v in self.gguf_metadata.items():
            if k == "tokenizer.chat_template":
                L.append(f"  {k} = <the template file, {len(v)} characters>")
            else:
                L.append(f"  {k} = {v!r}" if not isinstance(v, bool) else f"  {k} = {str(v).lower()}")
        if self.special_tokens:
            L.append("  token ids to set from your tokenizer (these token strings):")
            for k, v in self.special_tokens.items():
                L.append(f"    {k} -> {v!r}")
        if self.stop:
            L += ["", "stop strings: " + ", ".join(repr(s) for s in self.stop)]
        if self.notes:
            L += ["", "notes:"] + ["  - " + n for n in self.notes]
        return "\n".join(L) + "\n"


def _leading_bos(fmt: "ChatFormat") -> bool:
    """True iff every render of a conversation starting with system/user begins with ``{BOS}``."""
    if not fmt.structure.uses("BOS"):
        return False
    sentinel = "\x00tmplc-bos\x00"
    probes: list[list[dict]] = [[{"role": "user", "content": "u"}],
                                [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]]
    if fmt.structure.system is not None:
        probes.append([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
    for p in probes:
        text = fmt.render(p, bos_token=sentinel, eos_token=fmt.meta.eos_token or "</s>")
        if not text.startswith(sentinel):
            return False
    return True


#: Days on which a dated format's probes are rendered for the built-in check: every date
#: conversion differs between them (day, month, year, century, weekday, week, ISO year), so a
#: built-in (which never renders a date) only matches a rendering that does not show the date.
_DATES = (_dt.date(1999, 1, 1), _dt.date(2012, 11, 28))


def _verify_builtins(fmt: "ChatFormat", template: str, add_bos_token: bool) -> tuple[
        str | None, str | None, bool, str | None, list[str]]:
    """(detected, verified name, exact, by-name alternative, notes) -- using llama.cpp's own code."""
    from tmplc.errors import MessageError

    notes: list[str] = []
    try:
        from tmplc.engines.llamacpp import builtin_names, detect_builtin, run_driver_jobs

        detected = detect_builtin(template)
        names = builtin_names()
    except Exception as exc:  # engine unavailable (no sdist/compiler) or failed: claim nothing
        return None, None, False, None, [f"built-in templates not checked (llama.cpp engine unavailable: "
                                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                                         "use --jinja"]

    dated = fmt.structure.dated

    def cases(convs):
        out = []
        for c in convs:
            if fmt.structure.system is None and c and c[0]["role"] == "system":
                continue  # outside the format's domain
            for agp in (False, True):
                try:
                    exp = expected_llamacpp(fmt, c, agp, add_bos_token, _DATES[0])
                    if dated and any(expected_llamacpp(fmt, c, agp, add_bos_token, d) != exp for d in _DATES[1:]):
                        exp = None  # the rendering shows the date, which no built-in renders
                except (MessageError, TmplcError):
                    continue
                if fmt.structure.uses("BOS") and not add_bos_token:
                    exp = None  # a built-in cannot emit this format's BOS: never identical
                out.append((list(c), agp, exp))
        return out

    exact_cases, uni_cases = cases(PROBE_CONVERSATIONS), cases(UNICODE_SPACE_PROBES)
    all_cases = exact_cases + uni_cases
    candidates = ([detected] if detected else []) + [n for n in names if n != detected]
    jobs = [{"builtin": n, "messages": [dict(m) for m in c], "add_generation_prompt": agp}
            for n in candidates for (c, agp, _) in all_cases]
    results = run_driver_jobs(jobs) if jobs and exact_cases else []
    verdict: dict[str, tuple[bool, bool]] = {}
    k = 0
    for n in candidates:
        ok = uni = bool(exact_cases)
        for i, (_, _, exp) in enumerate(all_cases):
            r = results[k] if k < len(results) else {}
            k += 1
            same = exp is not None and r.get("output") == exp
            if i < len(exact_cases):
                ok = ok and same
            else:
                uni = uni and same
        verdict[n] = (ok, ok and uni)
    name = detected if detected and verdict.get(detected, (False, False))[0] else None
    exact = bool(name) and verdict[name][1]
    by_name = None
    if name is None:
        exact_matches = [n for n in candidates if verdict[n][1]]
        matches = exact_matches or [n for n in candidates if verdict[n][0]]
        by_name = matches[0] if matches else None
    chosen = name or by_name
    if chosen and not verdict[chosen][1]:
        exact = False
        notes.append(f"the built-in {chosen!r} trims contents with C isspace: it keeps non-ASCII whitespace "
                     "(U+00A0, U+3000, U+2028, \\x1c, ...) at content edges that this format strips; "
                     "the --jinja template is exact")
    if chosen:
        notes.append(f"the built-in {chosen!r} reads contents as C strings: a content is cut at U+0000")
    if detected and detected != name:
        notes.append(f"without --jinja llama.cpp detects the built-in {detected!r} from this template, "
                     "which does not render this format: keep --jinja")
    return detected, name, exact, by_name, notes


def to_llamacpp(fmt: "ChatFormat", *, check_builtins: bool = True) -> LlamaCppTarget:
    """Compile ``fmt`` for llama.cpp (see the module docstring).  ``check_builtins=False`` skips the
    built-in verification (which runs llama.cpp's engine) and claims no built-in."""
    template = llamacpp_template(fmt)
    add_bos = _leading_bos(fmt)
    st = fmt.structure
    notes: list[str] = []
    if add_bos:
        notes.append("add_bos_token: llama-server drops the template's leading BOS text and the tokenizer "
                     "adds the BOS token, so it appears once")
        if not (st.preamble and isinstance(st.preamble[0], SpecialToken) and st.preamble[0].name == "BOS"):
            notes.append("this format's BOS is not a fixed preamble: a conversation that starts with an "
                         "assistant message gets a BOS token the reference does not render")
    elif st.uses("BOS"):
        notes.append("add_bos_token is false: the BOS text in the template is parsed as the BOS token "
                     "(keep tokenizer.ggml.add_bos_token false, or llama.cpp adds a second BOS)")
    if st.system is None:
        notes.append("no system slot: llama-server merges a system message into the next message as "
                     "system + '\\n' + content (the template itself raises on a system message)")
    if st.dated:
        notes.append("the date ({DATE=...}) is strftime_now: the local date where llama.cpp runs")
        if any(c in _LOCALE_DIRECTIVES for tok in _date_tokens(fmt) for c in _conversions(tok.format) or ()):
            notes.append("llama-cli sets the locale from the environment: run it with LC_ALL=C (LC_TIME=C), "
                         "or day and month names in the date are localised (llama-server keeps the C locale)")
    if template != to_jinja(fmt, generation_tags=False):
        notes.append("content trimming uses the tmplc_strip/tmplc_lstrip/tmplc_rstrip macros (exact "
                     "str.strip/lstrip/rstrip); llama.cpp's |trim, .lstrip() and .rstrip() only strip ASCII "
                     "whitespace")
    if check_builtins:
        detected, name, exact, by_name, bnotes = _verify_builtins(fmt, template, add_bos)
    else:
        detected, name, exact, by_name, bnotes = None, None, False, None, ["built-in templates not checked"]
    notes += bnotes

    stop = tuple(fmt.stop_strings)
    stop_args: list[str] = []
    for s in stop:
        stop_args += ["-r", escape_arg(s)]
    server_args = ("llama-server", "-m", MODEL_PLACEHOLDER, "--jinja", "--chat-template-file", TEMPLATE_FILE,
                   *stop_args)
    cli_args = ("llama-cli", "-m", MODEL_PLACEHOLDER, "--jinja", "--chat-template-file", TEMPLATE_FILE,
                *stop_args)
    if stop:
        notes.append("-r/--reverse-prompt strings are matched on the generated text: a stop string that is a "
                     "special token only shows up there with --special; llama.cpp also stops on its "
                     "end-of-generation tokens (set tokenizer.ggml.eos_token_id/eot_token_id)")

    metadata: dict[str, Any] = {
        "tokenizer.chat_template": template,
        "tokenizer.ggml.add_bos_token": add_bos,
        "tokenizer.ggml.add_eos_token": False,
    }
    special: dict[str, str] = {}
    if fmt.bos_token:
        special["tokenizer.ggml.bos_token_id"] = fmt.bos_token
    if fmt.eos_token:
        special["tokenizer.ggml.eos_token_id"] = fmt.eos_token
    if fmt.eot_token and fmt.eot_token != fmt.eos_token:
        special["tokenizer.ggml.eot_token_id"] = fmt.eot_token
    return LlamaCppTarget(
        name=fmt.name, chat_template=template, builtin_name=name, requires_jinja=name is None,
        builtin_exact=exact, detected_builtin=detected, builtin_by_name=by_name, stop=stop,
        add_bos_token=add_bos, bos_token=fmt.bos_token, server_args=server_args, cli_args=cli_args,
        gguf_metadata=metadata, special_tokens=special, notes=tuple(notes),
    )
