"""The spec language's vocabulary: its placeholders, filters and what each placeholder takes, and
the :class:`Atom` a parse yields.  The parser, the structure recovery, the spec writer and the
targets read these tables (no other module spells them); importing it imports no parser."""

from __future__ import annotations

from operator import itemgetter
from typing import NamedTuple

PLACEHOLDERS = ("INPUT", "OUTPUT", "SYSTEM", "BOS", "EOS", "SPLIT", "REPLY", "PROMPT", "DATE", "NOSYSTEM",
                "/NOSYSTEM", "THINK", "/THINK", "REASONING", "END", "EMPTY", "/EMPTY")
TRIMS = ("trim", "lstrip", "rstrip")
# strftime conversions of a *date* that Python, HF's strftime_now and llama.cpp render alike
DATE_CONVERSIONS = "aAbBCdDeFgGhjmnuUVwWxyYt%"
THINKS = {"drop_think": "last", "drop_think_first": "first", "drop_think_lstrip_nl": "last_lstrip_nl",
          "drop_think_strip_nl": "last_strip_nl", "drop_think_trim": "last_trim",
          "drop_think_first_lstrip_nl": "first_lstrip_nl"}
THINK_FILTER_OF = {v: k for k, v in THINKS.items()}
#: {PROMPT|...}: what the generation prompt does after an answer (Structure.prompt_after_answer)
AFTER_ANSWER = {"skip_after_answer": "skip", "history_after_answer": "history"}
AFTER_ANSWER_FILTER_OF = {v: k for k, v in AFTER_ANSWER.items()}
#: the second {OUTPUT|...}: which answers are final (Structure.final_scope)
FINAL_SCOPES = {"final_last_answer": "last_answer", "final_after_user": "after_user"}
FINAL_SCOPE_FILTER_OF = {v: k for k, v in FINAL_SCOPES.items()}
FILTERS = (TRIMS + ("nonempty",) + tuple(THINKS) + ("lstrip_nl", "trim_first", "always", "raw") + tuple(AFTER_ANSWER)
           + tuple(FINAL_SCOPES))
# the filters each placeholder takes
TAKES = {"INPUT": TRIMS, "OUTPUT": TRIMS + tuple(THINKS) + ("lstrip_nl", "trim_first") + tuple(FINAL_SCOPES), "SYSTEM": TRIMS + ("nonempty",),
          "THINK": ("always",), "REASONING": ("trim",), "EMPTY": ("raw",),
          "PROMPT": tuple(AFTER_ANSWER)}


#: the kind of an atom of literal text
TEXT = "text"


def escape(text: str) -> str:
    """Literal text as spec text: ``{`` -> ``{{``, ``}`` -> ``}}``."""
    return text.replace("{", "{{").replace("}", "}}")


def unescape(text: str) -> str:
    """Spec text of a run of literal text (its braces doubled) as the text it stands for."""
    return text.replace("{{", "{").replace("}}", "}") if "{" in text or "}" in text else text


class Atom(NamedTuple):
    """A run of literal text (``kind == TEXT``: its characters, unescaped, whose spec text starts
    at ``line``:``column``) or one placeholder (``kind`` = its name, with its filters and
    default).  A spec is a few atoms whatever its size."""

    kind: str
    value: str
    line: int = 1
    column: int = 1
    filters: tuple[str, ...] = ()
    default: str | None = None

    @property
    def trim(self) -> str | None:
        """The trim filter (``trim``, ``lstrip``, ``rstrip``), or None."""
        return next((f for f in self.filters if f in TRIMS), None)

    @property
    def key(self) -> tuple:
        """What identifies the atom when comparing repetitions (position excluded)."""
        return atom_key(self)

    def show(self) -> str:
        if self.kind == TEXT:
            return self.value
        inner = self.kind + "".join(f"|{f}" for f in self.filters)
        if self.default is not None:
            inner += "=" + self.default
        return "{" + inner + "}"


#: ``atom.key`` as a C-level function (kind, value, filters, default): ``map(atom_key, atoms)``
atom_key = itemgetter(0, 1, 4, 5)
