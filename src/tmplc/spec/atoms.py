"""Sequences of spec atoms: made from layout fragments, written as spec text, and compared,
searched and cut as strings (:class:`Codes`), so that structure recovery and the importers work on
runs of text at C speed whatever the spec's size."""

from __future__ import annotations

import re
from typing import Sequence

from tmplc.ir import DateToken, Fragment, SpecialToken, Text, fragment
from tmplc.spec.vocabulary import TEXT, Atom, atom_key, escape


def fragment_atoms(frag: Fragment) -> list[Atom]:
    """A layout fragment as atoms (no source positions): text runs, ``{BOS}``/``{EOS}``, ``{DATE=...}``."""
    out = []
    for p in frag:
        if isinstance(p, Text):
            out.append(Atom(TEXT, p.value))
        elif isinstance(p, DateToken):
            out.append(Atom("DATE", "", default=p.format))
        else:
            out.append(Atom(p.name, ""))
    return out


def write(atoms: Sequence[Atom]) -> str:
    """Atoms as spec text (text escaped, placeholders with their filters and default)."""
    return "".join(escape(a.value) if a.kind == TEXT else a.show() for a in atoms)


def length(atoms: Sequence[Atom]) -> int:
    """How many characters the atoms are when each placeholder counts as one (see :class:`Codes`)."""
    return sum(len(a.value) if a.kind == TEXT else 1 for a in atoms)


def direct(a: Atom, k: int) -> tuple[int, int]:
    """The line and column of character ``k`` of the run ``a`` when its spec text has no escape
    before it."""
    v = a.value
    nl = v.count("\n", 0, k)
    return a.line + nl, (k - v.rfind("\n", 0, k) if nl else a.column + k)


def cut(atoms: Sequence[Atom], at: int, locate=direct) -> tuple[list[Atom], list[Atom]]:
    """The atoms before and after offset ``at`` (placeholders count as one character): a run of
    text that ``at`` falls inside is cut in two, the second part at its own line and column
    (``locate(run, k)``: where the run's character ``k`` is)."""
    pos = 0
    for i, a in enumerate(atoms):
        n = len(a.value) if a.kind == TEXT else 1
        if at < pos + n:
            k = at - pos
            if k == 0:
                return list(atoms[:i]), list(atoms[i:])
            line, column = locate(a, k)
            return (list(atoms[:i]) + [a._replace(value=a.value[:k])],
                    [Atom(TEXT, a.value[k:], line, column)] + list(atoms[i + 1:]))
        pos += n
    return list(atoms), []


def common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix of ``a`` and ``b`` (by halving: C-speed compares)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class Codes:
    """Atom sequences as strings, so that comparing, searching and cutting them are string
    operations at C speed: a run of text is its characters, a placeholder one character of the
    Unicode private use plane 15 that ``text`` (all the runs' text) does not contain, the same for
    placeholders that compare equal (same name, filters and default; positions aside)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._of: dict[tuple, str] = {}
        self._next = 0xF0000

    def __call__(self, atoms: Sequence[Atom]) -> str:
        return "".join(a.value if a.kind == TEXT else self.code(a) for a in atoms)

    def used(self) -> list[str]:
        """The characters that stand for placeholders so far."""
        return list(self._of.values())

    def decode(self, s: str) -> list[Atom]:
        """The atoms a string of this encoding stands for (no source positions)."""
        if not self._of:
            return [Atom(TEXT, s)] if s else []
        atom_of = {c: Atom(k[0], k[1], 1, 1, k[2], k[3]) for k, c in self._of.items()}
        parts = re.split("([" + "".join(atom_of) + "])", s)
        return [atom_of[p] if k % 2 else Atom(TEXT, p) for k, p in enumerate(parts) if p]

    def code(self, a: Atom) -> str:
        """The character that stands for placeholder ``a``."""
        key = atom_key(a)
        code = self._of.get(key)
        if code is None:
            code = chr(self._next)
            while code in self._text:
                code = chr(ord(code) + 1)
            self._next = ord(code) + 1
            self._of[key] = code
        return code


def to_fragment(atoms: Sequence[Atom]) -> Fragment:
    """Atoms of literal text, {BOS}, {EOS} and {DATE=...} as a layout fragment."""
    pieces = []
    for a in atoms:
        if a.kind == TEXT:
            pieces.append(a.value)
        elif a.kind in ("BOS", "EOS"):
            pieces.append(SpecialToken(a.kind))
        elif a.kind == "DATE":
            pieces.append(DateToken(a.default))
        else:  # pragma: no cover - excluded by recover()
            raise AssertionError(a)
    return fragment(pieces)
