"""Parse spec text with the Lark grammar (grammars/chat_spec.lark) into a flat list of atoms.

An atom is one run of literal text or one placeholder, each with its source position; an
escaped brace is a run of its own, so a run's characters sit at consecutive columns and
structure recovery can point at the exact column where the two repetitions differ.
"""

from __future__ import annotations

import re
from functools import lru_cache

from lark import Lark, Token, Transformer, UnexpectedInput

from tmplc.errors import SpecError
from tmplc.resources import grammar_path
from tmplc.spec.vocabulary import (AFTER_ANSWER, AFTER_ANSWER_FILTER_OF, DATE_CONVERSIONS, FILTERS,  # noqa: F401
                                   FINAL_SCOPE_FILTER_OF, FINAL_SCOPES, PLACEHOLDERS, TAKES, THINK_FILTER_OF,
                                   TEXT, THINKS, TRIMS, Atom, unescape)

_LARK_OPTIONS = dict(parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=False)


@lru_cache(maxsize=1)
def _parser() -> Lark:
    """The spec parser, built once per grammar and Lark version and kept in tmplc's cache
    (``lark/`` under :func:`tmplc.resources.cache_dir`; Lark's own save/load of the analysed
    LALR tables): a cold start loads it instead of analysing the grammar again."""
    import hashlib
    import os
    import tempfile

    import lark

    from tmplc.resources import cache_dir

    grammar = grammar_path().read_text(encoding="utf-8")
    key = hashlib.sha256((lark.__version__ + repr(sorted(_LARK_OPTIONS.items())) + grammar).encode()).hexdigest()
    path = cache_dir() / "lark" / f"chat_spec-{key[:24]}.lark"
    try:
        with open(path, "rb") as f:
            return Lark.load(f)
    except Exception:  # not cached yet (or unreadable): build it
        pass
    parser = Lark(grammar, **_LARK_OPTIONS)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            parser.save(f)
        os.replace(tmp, path)
    except Exception:  # a read-only cache: build it each time
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return parser


class _ToAtoms(Transformer):
    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def _err(self, msg: str, tok: Token) -> SpecError:
        return SpecError(msg, tok.line, tok.column, _line(self._text.split("\n"), tok.line))

    def start(self, items):
        return [a for group in items for a in group]

    def text(self, items):
        tok = items[0]
        return [Atom(TEXT, unescape(tok), tok.line, tok.column)]

    def filter(self, items):
        return ("filter", items[0])

    def default(self, items):
        return ("default", str(items[0]) if items else "")

    def placeholder(self, items):
        open_tok, name_tok = items[0], items[1]
        name = str(name_tok)
        filts: list[str] = []
        default = None
        for it in items[2:-1]:
            if it[0] == "filter":
                filts.append(str(it[1]))
            else:
                default = it[1]
        if name not in PLACEHOLDERS:
            hint = ""
            if name.upper() in PLACEHOLDERS:
                hint = f" (placeholders are upper case: {{{name.upper()}}})"
            raise self._err(
                f"unknown placeholder {{{name}}}{hint}; known: "
                + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                + "; write {{ and }} for literal braces", open_tok)
        for filt in filts:
            if filt not in FILTERS:
                raise self._err(f"unknown filter |{filt} on {{{name}}}; filters: |trim, |lstrip, |rstrip "
                                "(content whitespace), |nonempty (on {SYSTEM}), |drop_think, "
                                "|drop_think_first, |drop_think_lstrip_nl, |drop_think_strip_nl, "
                                "|drop_think_trim, |drop_think_first_lstrip_nl, |lstrip_nl, |trim_first, "
                                "|final_last_answer and |final_after_user (on {OUTPUT}), |always (on {THINK}), |trim (on {REASONING}), |raw (on {EMPTY}), "
                                "|skip_after_answer and |history_after_answer (on {PROMPT})",
                                open_tok)
            if filt not in TAKES.get(name, ()):
                takers = [f"{{{k}}}" for k, v in TAKES.items() if filt in v]
                why = {"nonempty": " (an empty system message counts as none)",
                       "lstrip_nl": " (it removes leading newlines from an answer)",
                       "always": " (the reasoning block is rendered even when the reasoning is empty)",
                       "raw": " (an answer is empty when its message content is \"\")",
                       "skip_after_answer": " (no generation prompt after an answer)",
                       "history_after_answer": " (after an answer, the prompt follows it rendered as an "
                                               "earlier answer)"}
                raise self._err(f"|{filt} applies only to "
                                + (", ".join(takers[:-1]) + " and " if len(takers) > 1 else "") + takers[-1]
                                + (" (it renders an answer from after its reasoning's </think>)"
                                   if filt in THINKS else why.get(filt, "")), open_tok)
        if "trim_first" in filts and not any(f in TRIMS for f in filts):
            raise self._err(f"|trim_first on {{{name}}} needs a trim filter (|trim, |lstrip, |rstrip): it trims "
                            "the content before the reasoning is split off", open_tok)
        if len(set(filts)) != len(filts) or sum(f in TRIMS for f in filts) > 1 or \
                sum(f in THINKS for f in filts) > 1 or len(filts) > 1 and name == "PROMPT" or \
                sum(f in FINAL_SCOPES for f in filts) > 1:
            raise self._err(f"conflicting or repeated filters on {{{name}}}: at most one of |trim, |lstrip, "
                            "|rstrip, at most one of the |drop_think filters, one of |skip_after_answer and "
                            "|history_after_answer, one of |final_last_answer and |final_after_user, and each "
                            "filter once", open_tok)
        if default is not None and name not in ("SYSTEM", "PROMPT", "DATE"):
            raise self._err(f"only {{SYSTEM}}, {{PROMPT}} and {{DATE}} take a default (={default!r})", open_tok)
        if name == "DATE" and not (default and "%" in default):
            raise self._err("{DATE=format} needs a strftime format, e.g. {DATE=%d %b %Y} (26 Jul 2024) or "
                            "{DATE=%Y-%m-%d}", open_tok)
        if name == "DATE":
            bad = [m.group(0) for m in re.finditer(r"%[-_0^#]?(.?)", default) if m.group(1) not in DATE_CONVERSIONS
                   or not m.group(1)]
            if bad:
                raise self._err(f"{{DATE={default}}}: {', '.join(bad)} is not a date conversion (the format "
                                "renders a day, not a time: use %" + " %".join(DATE_CONVERSIONS[:-1])
                                + " and %%)", open_tok)
        if name == "PROMPT" and not default and not filts:
            raise self._err("{PROMPT=text} needs its text: what the generation prompt adds after the "
                            "assistant prefix (e.g. {PROMPT=<think>} then a newline); "
                            "{PROMPT|skip_after_answer} and {PROMPT|history_after_answer} need none", open_tok)
        filt = tuple(sorted(filts, key=FILTERS.index))
        return [Atom(name, "", open_tok.line, open_tok.column, filt, default)]


def _line(lines: list[str], n: int) -> str | None:
    return lines[n - 1] if 1 <= n <= len(lines) else None


def _offset(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    return sum(len(l) + 1 for l in lines[: line - 1]) + column - 1


def _line_col(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1


def _syntax_error(text: str, err: UnexpectedInput) -> SpecError:
    lines = text.split("\n")
    line, column = getattr(err, "line", 1) or 1, getattr(err, "column", 1) or 1
    if line < 1:
        line, column = _line_col(text, len(text))
    off = min(_offset(text, line, column), len(text))
    tok = getattr(err, "token", None)
    if tok is not None and tok.type == "PH_CLOSE" and text[off:off + 1] == "}":
        msg = "a lone '}': write '}}' for a literal brace"
    else:
        # find the unmatched "{" that opened the broken placeholder
        start = text.rfind("{", 0, off + 1)
        if start >= 0:
            line, column = _line_col(text, start)
        frag = text[start:start + 24].split("\n")[0]
        msg = (f"a '{{' that does not start a placeholder ({frag!r}): placeholders look like "
               "{INPUT}, {OUTPUT}, {SYSTEM}; write '{{' for a literal brace")
    return SpecError(msg, line, column, _line(lines, line))


def parse_atoms(text: str) -> list[Atom]:
    """Parse spec text into atoms; syntax errors raise SpecError with line, column and caret."""
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as err:
        raise _syntax_error(text, err) from None
    try:
        return _ToAtoms(text).transform(tree)
    except Exception as err:  # lark wraps transformer errors in VisitError
        orig = getattr(err, "orig_exc", None)
        if isinstance(orig, SpecError):
            raise orig from None
        raise
