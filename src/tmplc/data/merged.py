"""``merged_prompt``: build one user message from several columns.

Syntax::

    "{instruction}[[\\n\\nInput:\\n{input}]][[\\n\\nContext: {context} ({source})]]"

* ``{column}`` is replaced by the row's value as text, by one rule whichever reader produced it
  (``cell_text``): strings as they are; integers in digits; a float that is a whole number
  without ".0" (``22.0`` -> ``22``, as a CSV cell "22" reads), other floats in Python's shortest
  form (``0.5``); bytes decoded as UTF-8 (else the row is rejected); lists and objects as
  compact JSON; ``0`` and ``False`` are text (``0``, ``False``).
* ``[[ ... ]]`` is an optional block: it renders only when **every** column it names is present
  in the row and non-empty (not None, not NaN, not "" or whitespace only); otherwise the whole
  block vanishes.  (Unsloth's ``to_sharegpt`` checks only the block's first column, so a block
  can print "None" or an empty label; here no column inside a vanished block renders.)
* A block must name at least one column; blocks do not nest.
* ``{{`` and ``}}`` are literal braces; ``[[``/``]]`` always delimit blocks.
* A column used outside a block is required: a row where it is missing or None is rejected
  (reported with its row number); an empty string renders as empty.
* A column the dataset does not have at all is an error before any row is processed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from tmplc.errors import TmplcError

_TOKEN = re.compile(r"\{\{|\}\}|\[\[|\]\]|\{([^{}\[\]]*)\}|\{|\}")


class RowProblem(ValueError):
    """A row that cannot be normalized (the message is the reason)."""


def checked_text(s: str, what: str) -> str:
    """``s`` unchanged, or ``RowProblem`` when it holds a lone surrogate (a ``\\ud800`` JSON escape
    without its pair): such text has no UTF-8 form and cannot be tokenized."""
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError as e:
            raise RowProblem(f"{what} holds a lone surrogate U+{ord(s[e.start]):04X} at character {e.start} "
                             "(an unpaired \\u escape); it has no UTF-8 form and cannot be tokenized") from None
    return s


def cell_text(v: Any, what: str) -> str:
    """A column value as training text (the one rule for numbers, bytes, lists; see above)."""
    if isinstance(v, str):
        return checked_text(v, what)
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 2 ** 53:
            return str(int(v))
        return repr(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        try:
            return checked_text(bytes(v).decode("utf-8"), what)
        except UnicodeDecodeError as e:
            raise RowProblem(f"{what} holds bytes that are not UTF-8 text (byte {e.start}); tmplc trains "
                             "text, not bytes") from None
    if isinstance(v, (list, tuple, dict)):
        import json

        try:
            return checked_text(json.dumps(v, ensure_ascii=False, separators=(",", ":")), what)
        except (TypeError, ValueError, RecursionError):
            raise RowProblem(f"{what} holds a {type(v).__name__} that is not JSON text") from None
    return checked_text(str(v), what)


def _empty(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    if isinstance(v, (bytes, bytearray)):
        return not bytes(v).strip()
    return isinstance(v, str) and not v.strip()


@dataclass(frozen=True)
class MergedPrompt:
    """A parsed merged_prompt template (see the module docstring)."""

    text: str
    parts: tuple  # ("text", s) | ("col", name) | ("opt", parts, columns)

    @classmethod
    def parse(cls, text: str) -> "MergedPrompt":
        top: list = []
        cur = top
        block_cols: list[str] | None = None
        pos = 0
        for m in _TOKEN.finditer(text):
            if m.start() > pos:
                cur.append(("text", text[pos:m.start()]))
            tok = m.group(0)
            pos = m.end()
            if tok == "{{":
                cur.append(("text", "{"))
            elif tok == "}}":
                cur.append(("text", "}"))
            elif tok == "[[":
                if block_cols is not None:
                    raise TmplcError(f"merged_prompt: optional blocks cannot nest (column {m.start() + 1})")
                block_cols, cur = [], []
            elif tok == "]]":
                if block_cols is None:
                    raise TmplcError(f"merged_prompt: ']]' without '[[' (column {m.start() + 1})")
                if not block_cols:
                    raise TmplcError("merged_prompt: an optional [[...]] block must contain at least one {column}")
                top.append(("opt", tuple(cur), tuple(block_cols)))
                block_cols, cur = None, top
            elif m.group(1) is not None and m.group(1).strip():
                name = m.group(1).strip()
                cur.append(("col", name))
                if block_cols is not None:
                    block_cols.append(name)
            else:
                raise TmplcError(f"merged_prompt: stray {tok!r} at column {m.start() + 1} "
                                 "(write {{ or }} for a literal brace, {column} for a column)")
        if block_cols is not None:
            raise TmplcError("merged_prompt: '[[' is never closed")
        if pos < len(text):
            top.append(("text", text[pos:]))
        return cls(text, tuple(top))

    @property
    def required(self) -> list[str]:
        return [p[1] for p in self.parts if p[0] == "col"]

    @property
    def columns(self) -> list[str]:
        out = []
        for p in self.parts:
            if p[0] == "col":
                out.append(p[1])
            elif p[0] == "opt":
                out.extend(p[2])
        return list(dict.fromkeys(out))

    def check_columns(self, available: list[str]) -> None:
        missing = [c for c in self.columns if c not in available]
        if missing:
            raise TmplcError(f"merged_prompt uses column(s) {missing} that the data does not have; "
                             f"columns: {sorted(available)}")

    def render(self, row: dict) -> str:
        out = []
        for p in self.parts:
            if p[0] == "text":
                out.append(p[1])
            elif p[0] == "col":
                v = row.get(p[1])
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    raise RowProblem(f"column {p[1]!r} is missing or null")
                out.append(cell_text(v, f"column {p[1]!r}"))
            else:
                _, sub, cols = p
                if any(_empty(row.get(c)) for c in cols):
                    continue
                for q in sub:
                    out.append(q[1] if q[0] == "text" else cell_text(row.get(q[1]), f"column {q[1]!r}"))
        return "".join(out)
