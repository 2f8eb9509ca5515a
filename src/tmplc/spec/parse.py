"""Parse spec text with the Lark grammar (grammars/chat_spec.lark) into a flat list of atoms.

The grammar says what text, a placeholder, a filter and a default are; this module's Transformer
builds the atoms: one per run of literal text (its escapes undone; the run keeps the position
where its spec text starts) and one per placeholder, made and checked by
:func:`tmplc.spec.vocabulary.placeholder`.
"""

from __future__ import annotations

from functools import lru_cache

from lark import Lark, Token, Transformer, UnexpectedInput

from tmplc.errors import SpecError
from tmplc.resources import grammar_path
from tmplc.spec.vocabulary import TEXT, Atom, placeholder, unescape

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
        try:
            return [placeholder(name, filts, default, open_tok.line, open_tok.column)]
        except SpecError as e:
            raise self._err(e.message, open_tok) from None


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
