"""Structure recovery: from the two repetitions of a spec to the layout, deterministically.

Naming the spec ``HEAD {INPUT} MID1 {OUTPUT} GAP {INPUT} MID2 {OUTPUT} TAIL``:

1. ``TAIL`` is the assistant suffix.  ``GAP`` must start with it; the rest of ``GAP`` is the
   user prefix.  (The second exchange shows where the first one ends: this is what places
   every newline.)
2. ``MID1`` must equal ``MID2``; it is ``user suffix + assistant prefix``, split by the first
   rule that applies:
     a. an explicit ``{SPLIT}``;
     b. if ``MID`` starts with the (non-empty) assistant suffix, the user turn ends the same way
        (``<|eot_id|>``, ``<|im_end|>\\n``, ``<end_of_turn>\\n``);
     c. the first run of line breaks that has more text after it ends the user turn
        (``\\n\\n### Response:\\n`` -> ``\\n\\n`` | ``### Response:\\n``);
     d. an empty ``MID`` splits into two empty pieces;
     otherwise the spec is ambiguous and must use ``{SPLIT}``.
3. ``HEAD`` without ``{SYSTEM}`` must end with the user prefix; what is before it is the
   preamble (always rendered: a BOS, a fixed Alpaca preamble).
4. ``HEAD`` with ``{SYSTEM}``: if it ends with the user prefix after the system block, the block
   is standalone (the preamble is the leading ``{BOS}``s, the rest up to the user prefix is the
   system block, omitted when there is no system message and no default).  Otherwise, if it
   contains the user prefix before ``{SYSTEM}``, the block sits inside the first user turn
   (Llama-2 ``<<SYS>>``); the preamble is what comes before that user prefix.  When the user
   prefix is empty both readings render the same text and standalone is chosen; when it is not
   empty and both readings fit, the spec is ambiguous (a ``{SPLIT}`` in ``HEAD`` decides it).
5. ``{SPLIT}`` in ``HEAD`` (at most one, before ``{SYSTEM}``) marks where the always-rendered
   preamble ends and a standalone system block begins: ``[gMASK]<sop>{SPLIT}<|system|>\n{SYSTEM}
   <|user|>...`` renders ``[gMASK]<sop>`` in every conversation and ``<|system|>\n...`` only with a
   system message (or a default).  It makes the block standalone; it is an error when ``HEAD``
   does not end with the user prefix after ``{SYSTEM}`` (the block would be inside the first user
   turn, whose preamble rule 4 already places) or when there is no ``{SYSTEM}``.  It is needed
   only when the preamble is more than the leading ``{BOS}``s (or to decide rule 4's ambiguity);
   the canonical spec (``ChatFormat.to_spec``) writes it only then.
"""

from __future__ import annotations

from typing import Sequence

from tmplc.errors import SpecError
from tmplc.ir import Fragment, SpecialToken, Structure, SystemBlock, Text, Turn, fragment
from tmplc.spec.parse import Atom

_ORDER = ("INPUT", "OUTPUT", "INPUT", "OUTPUT")


def _show(atoms: Sequence[Atom]) -> str:
    return repr("".join(a.show() for a in atoms))


def _keys(atoms: Sequence[Atom]) -> list[tuple]:
    return [a.key for a in atoms]


def _to_fragment(atoms: Sequence[Atom]) -> Fragment:
    pieces = []
    for a in atoms:
        if a.kind == "char":
            pieces.append(a.value)
        elif a.kind in ("BOS", "EOS"):
            pieces.append(SpecialToken(a.kind))
        else:  # pragma: no cover - excluded by recover()
            raise AssertionError(a)
    return fragment(pieces)


def _first_diff(a: Sequence[Atom], b: Sequence[Atom]) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x.key != y.key:
            return i
    return min(len(a), len(b))


class _Recovery:
    def __init__(self, atoms: list[Atom], text: str) -> None:
        self.atoms = atoms
        self.text = text
        self.lines = text.split("\n")

    def error(self, message: str, at: Atom | None = None) -> SpecError:
        if at is None:
            lines = self.lines
            line, column = len(lines), len(lines[-1]) + 1
        else:
            line, column = at.line, at.column
        src = self.lines[line - 1] if 1 <= line <= len(self.lines) else None
        return SpecError(message, line, column, src)

    def _at(self, seq: Sequence[Atom], i: int, fallback: Atom) -> Atom:
        return seq[i] if i < len(seq) else fallback

    # ------------------------------------------------------------------------------
    def run(self) -> Structure:
        atoms = self.atoms
        if not atoms:
            raise self.error("empty spec: write one conversation with two exchanges, e.g. "
                             "'User: {INPUT}\\nBot: {OUTPUT}\\n' twice", None if self.text else None)
        io = [(i, a) for i, a in enumerate(atoms) if a.kind in ("INPUT", "OUTPUT")]
        for n, (_, a) in enumerate(io):
            if n >= 4:
                kind = a.kind
                count = sum(1 for _, b in io if b.kind == kind)
                raise self.error(f"{count} {{{kind}}} placeholders: a spec shows exactly two "
                                 "user->assistant exchanges; delete the third and later ones", a)
            if a.kind != _ORDER[n]:
                if a.kind == "OUTPUT":
                    raise self.error("{OUTPUT} before {INPUT}: every exchange is the user's "
                                     "{INPUT} followed by the assistant's {OUTPUT}", a)
                raise self.error("{INPUT} again before the {OUTPUT} of the previous exchange: "
                                 "every exchange is {INPUT} followed by {OUTPUT}", a)
        if not io:
            raise self.error("no {INPUT} or {OUTPUT}: a spec shows two exchanges, each "
                             "{INPUT} (user content) then {OUTPUT} (assistant content)", atoms[0])
        if len(io) < 4:
            last = io[-1][1]
            if len(io) == 2:
                msg = ("only one exchange: a spec shows two user->assistant exchanges so that "
                       "the end of a turn and the start of the next (every newline) are known; "
                       "repeat the exchange")
            else:
                msg = f"the second exchange has no {{{_ORDER[len(io)]}}}: a spec shows two complete exchanges"
            raise self.error(msg, last)

        (i1, a_i1), (o1, a_o1), (i2, a_i2), (o2, a_o2) = io
        systems = [a for a in atoms if a.kind == "SYSTEM"]
        if len(systems) > 1:
            raise self.error("{SYSTEM} appears twice: the system block is shown once, before "
                             "or inside the first user turn", systems[1])
        for a in systems:
            if atoms.index(a) > i1:
                raise self.error("{SYSTEM} after the first {INPUT}: the system block comes "
                                 "before the first user content", a)
        splits = [i for i, a in enumerate(atoms) if a.kind == "SPLIT"]
        head_splits = [i for i in splits if i < i1]
        for i in splits:
            if i < i1:
                continue
            if not (i1 < i < o1 or i2 < i < o2):
                raise self.error("{SPLIT} marks where the user turn ends and the assistant "
                                 "turn begins (between {INPUT} and {OUTPUT}), or where the "
                                 "preamble ends and the system block begins (before {SYSTEM}); "
                                 "it cannot go here", atoms[i])
        if len(head_splits) > 1:
            raise self.error("{SPLIT} appears twice before the first {INPUT}: one {SPLIT} marks "
                             "where the preamble ends and the system block begins",
                             atoms[head_splits[1]])
        for i in head_splits:
            if not systems:
                raise self.error("{SPLIT} before the first {INPUT} marks where the preamble ends "
                                 "and the system block begins, but the spec has no {SYSTEM}: "
                                 "without a system block everything before the user prefix is "
                                 "the preamble; remove the {SPLIT}", atoms[i])
            if atoms.index(systems[0]) < i:
                raise self.error("{SPLIT} after {SYSTEM}: before the first {INPUT}, {SPLIT} marks "
                                 "where the preamble ends and the system block begins, so it goes "
                                 "before {SYSTEM} (before the system block's prefix)", atoms[i])
        splits = [i for i in splits if i > i1]

        if a_i1.filter != a_i2.filter:
            raise self.error(f"the repetitions differ: {a_i1.show()} in the first exchange, "
                             f"{a_i2.show()} in the second", a_i2)
        if a_o1.filter != a_o2.filter:
            raise self.error(f"the repetitions differ: {a_o1.show()} in the first exchange, "
                             f"{a_o2.show()} in the second", a_o2)

        head, mid1, gap = atoms[:i1], atoms[i1 + 1:o1], atoms[o1 + 1:i2]
        mid2, tail = atoms[i2 + 1:o2], atoms[o2 + 1:]

        if _keys(mid1) != _keys(mid2):
            k = _first_diff(mid1, mid2)
            raise self.error(
                "the repetitions differ between {INPUT} and {OUTPUT}: first exchange "
                f"{_show(mid1)}, second exchange {_show(mid2)}", self._at(mid2, k, a_o2))
        if len(splits) not in (0, 2):  # pragma: no cover - equal mids make this impossible
            raise self.error("{SPLIT} must appear in both exchanges", atoms[splits[0]])

        if _keys(gap[:len(tail)]) != _keys(tail):
            k = _first_diff(gap, tail)
            hint = ""
            if tail and tail[-1].value == "\n" and _keys(gap[:len(tail) - 1]) == _keys(tail[:-1]):
                hint = " (is the last newline only the end of the file? remove it)"
            raise self.error(
                "the repetitions differ after {OUTPUT}: the second assistant turn ends with "
                f"{_show(tail)}, but the first is followed by {_show(gap)}, which must start "
                f"with the same text{hint}", self._at(tail, k, a_o2))
        user_prefix = gap[len(tail):]
        assistant_suffix = tail

        user_suffix, assistant_prefix = self._split(mid2, assistant_suffix, a_i2)
        user_suffix = [a for a in user_suffix if a.kind != "SPLIT"]
        assistant_prefix = [a for a in assistant_prefix if a.kind != "SPLIT"]

        preamble, system = self._head(head, user_prefix, a_i1)

        user = Turn(_to_fragment(user_prefix), _to_fragment(user_suffix), a_i1.filter == "trim")
        assistant = Turn(_to_fragment(assistant_prefix), _to_fragment(assistant_suffix),
                         a_o1.filter == "trim")
        if (user.prefix, user.suffix) == (assistant.prefix, assistant.suffix):
            raise self.error(
                "ambiguous structure: the user and assistant turns are written identically "
                f"({_show(user_prefix)} ... {_show(user_suffix)}), so a model could not tell who "
                "is speaking; give each role its own marker", a_i2)
        return Structure(_to_fragment(preamble), system, user, assistant)

    def _split(self, mid: list[Atom], assistant_suffix: list[Atom], at: Atom):
        marks = [i for i, a in enumerate(mid) if a.kind == "SPLIT"]
        if marks:
            return mid[:marks[0]], mid[marks[0] + 1:]
        n = len(assistant_suffix)
        if n and _keys(mid[:n]) == _keys(assistant_suffix):
            return mid[:n], mid[n:]
        for i, a in enumerate(mid):
            if a.kind == "char" and a.value in "\r\n":
                j = i
                while j < len(mid) and mid[j].kind == "char" and mid[j].value in "\r\n":
                    j += 1
                if j < len(mid):
                    return mid[:j], mid[j:]
                break
        if not mid:
            return [], []
        raise self.error(
            f"ambiguous structure: cannot tell where the user turn ends and the assistant turn "
            f"begins in {_show(mid)} (no line break with text after it, and it does not start "
            "with the assistant turn's ending); mark the boundary with {SPLIT} in both "
            "exchanges, e.g. ' [/INST]{SPLIT}'", mid[0] if mid else at)

    def _head(self, head: list[Atom], user_prefix: list[Atom], first_input: Atom):
        up = _keys(user_prefix)
        n = len(up)
        sys_at = [i for i, a in enumerate(head) if a.kind == "SYSTEM"]
        if not sys_at:
            if _keys(head[len(head) - n:]) != up or len(head) < n:
                raise self.error(
                    "the repetitions differ before {INPUT}: the second user turn starts with "
                    f"{_show(user_prefix)}, so the text before the first {{INPUT}} "
                    f"({_show(head)}) must end with it", first_input)
            return head[:len(head) - n], None
        s = sys_at[0]
        sys_atom = head[s]
        standalone = len(head) >= n and _keys(head[len(head) - n:]) == up and s < len(head) - n
        split_at = next((i for i, a in enumerate(head) if a.kind == "SPLIT"), None)
        if split_at is not None:
            if not standalone:
                raise self.error(
                    "{SPLIT} before {SYSTEM} marks where the preamble ends and a system block "
                    "before the first turn begins, but the text before the first {INPUT} does not "
                    f"end with the user prefix {_show(user_prefix)} after {{SYSTEM}} (it is "
                    f"{_show(head)}); a system block inside the first user turn needs no {{SPLIT}}",
                    head[split_at])
            block = head[split_at + 1:len(head) - n]
            j = next(i for i, a in enumerate(block) if a.kind == "SYSTEM")
            system = SystemBlock("standalone", _to_fragment(block[:j]), _to_fragment(block[j + 1:]),
                                 sys_atom.filter == "trim", sys_atom.default)
            return head[:split_at], system
        inline_at = None
        for p in range(0, s - n + 1):
            if _keys(head[p:p + n]) == up:
                inline_at = p
                break
        if standalone and inline_at is not None and n:
            raise self.error(
                f"ambiguous structure: the user prefix {_show(user_prefix)} appears both before "
                "and after {SYSTEM}, so the system block could be before the first turn or "
                "inside it; reword the spec so the user prefix appears once before {INPUT}, or "
                "put {SPLIT} where the preamble ends and a system block before the first turn "
                "begins", sys_atom)
        if standalone:
            k = 0
            while k < s and head[k].kind == "BOS":
                k += 1
            block = head[k:len(head) - n]
            placement = "standalone"
            preamble = head[:k]
        elif inline_at is not None:
            block = head[inline_at + n:]
            placement = "first_user"
            preamble = head[:inline_at]
        else:
            raise self.error(
                "cannot place the system block: the second user turn starts with "
                f"{_show(user_prefix)}, so the text before the first {{INPUT}} must be either "
                "[preamble] + system block + that prefix (system before the first turn) or "
                "[preamble] + that prefix + system block (system inside the first user turn); "
                f"it is {_show(head)}", sys_atom)
        j = next(i for i, a in enumerate(block) if a.kind == "SYSTEM")
        system = SystemBlock(placement, _to_fragment(block[:j]), _to_fragment(block[j + 1:]),
                             sys_atom.filter == "trim", sys_atom.default)
        return preamble, system


def recover_structure(atoms: list[Atom], text: str) -> Structure:
    """Derive the layout from a parsed spec (see the module docstring for the rules)."""
    return _Recovery(atoms, text).run()


def default_split(mid: Fragment, assistant_suffix: Fragment) -> tuple[Fragment, Fragment] | None:
    """The split the default rules give for ``mid``, or None when they cannot decide."""
    from tmplc.spec.parse import Atom as _A

    def atoms_of(frag: Fragment) -> list[Atom]:
        out = []
        for p in frag:
            if isinstance(p, Text):
                out += [_A("char", ch, 1, 1) for ch in p.value]
            else:
                out.append(_A(p.name, "", 1, 1))
        return out

    r = _Recovery([], "")
    try:
        u, a = r._split(atoms_of(mid), atoms_of(assistant_suffix), _A("INPUT", "", 1, 1))
    except SpecError:
        return None
    return _to_fragment(u), _to_fragment(a)
