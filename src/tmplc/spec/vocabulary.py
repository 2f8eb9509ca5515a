"""The spec language's vocabulary: its placeholders, filters and what each placeholder takes, the
:class:`Atom` a parse yields, and :func:`placeholder`, the one constructor that checks a
placeholder against these tables.  The parser, the structure recovery, the spec writer, the
importers and the targets read them (no other module spells them); importing it imports no parser."""

from __future__ import annotations

import re
from operator import itemgetter
from typing import TYPE_CHECKING, NamedTuple

from tmplc.errors import SpecError
from tmplc.ir import TRIM_FILTER_OF, TRIM_FILTERS  # noqa: F401 - the trim filters' names are the IR's sides' keys

if TYPE_CHECKING:  # pragma: no cover
    from tmplc.ir import ContentRule

#: the placeholders of a ``tools:`` section's examples only (tmplc.spec.tools_example): a tool's
#: JSON, a call's name, id and arguments (or each argument's key and value), a tool result's content
TOOL_PLACEHOLDERS = ("TOOL", "TOOLS", "NAME", "ID", "INDEX", "ARGUMENTS", "KEY", "VALUE", "RESULT")
PLACEHOLDERS = ("INPUT", "OUTPUT", "SYSTEM", "BOS", "EOS", "SPLIT", "REPLY", "PROMPT", "DATE", "NOSYSTEM",
                "/NOSYSTEM", "THINK", "/THINK", "REASONING", "ELSE", "NONEMPTY", "/NONEMPTY", "END", "EMPTY",
                "/EMPTY") + TOOL_PLACEHOLDERS
#: the placeholders that take a default (``{SYSTEM=...}``, ``{PROMPT=...}``, ``{DATE=...}``)
DEFAULTS = ("SYSTEM", "PROMPT", "DATE")
TRIMS = tuple(TRIM_FILTERS)
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
#: the second {OUTPUT|...}: how an answer's explicit reasoning is read (Structure.given_reasoning)
GIVEN_REASONING = {"reasoning_verbatim": "verbatim", "reasoning_trim": "trim", "no_reasoning_field": "refused"}
GIVEN_REASONING_FILTER_OF = {v: k for k, v in GIVEN_REASONING.items()}
#: the second {OUTPUT|...}: an empty answer is refused (Structure.refuses_empty_answers)
NO_EMPTY_ANSWER = "no_empty_answer"
#: {SYSTEM|...}: when an empty system message counts as none, and what it renders then (SystemBlock)
SYSTEM_EMPTY = ("nonempty", "nonblank", "empty_omitted")
FILTERS = (TRIMS + SYSTEM_EMPTY + tuple(THINKS) + ("lstrip_nl", "trim_first", "always", "hidden", "raw")
           + tuple(AFTER_ANSWER)
           + tuple(FINAL_SCOPES) + tuple(GIVEN_REASONING) + (NO_EMPTY_ANSWER,))
# the filters each placeholder takes
TAKES = {"INPUT": TRIMS, "OUTPUT": TRIMS + tuple(THINKS) + ("lstrip_nl", "trim_first") + tuple(FINAL_SCOPES)
         + tuple(GIVEN_REASONING) + (NO_EMPTY_ANSWER,), "SYSTEM": TRIMS + SYSTEM_EMPTY,
          "THINK": ("always", "hidden"), "REASONING": ("trim",), "EMPTY": ("raw",),
          "PROMPT": tuple(AFTER_ANSWER)}
#: what a filter does, said where it is used on a placeholder that does not take it
FILTER_NOTES = {**{f: "it renders an answer from after its reasoning's </think>" for f in THINKS},
                "nonempty": "an empty system message counts as none",
                "nonblank": "a system message empty after the block's trim counts as none",
                "empty_omitted": "an empty system message renders nothing, not the default",
                "lstrip_nl": "it removes leading newlines from an answer",
                "always": "the reasoning block is rendered even when the reasoning is empty",
                "hidden": "the reasoning block never shows the reasoning (its text alone, for every answer)",
                "raw": "an answer is empty when its message content is \"\"",
                "skip_after_answer": "no generation prompt after an answer",
                "history_after_answer": "after an answer, the prompt follows it rendered as an earlier answer",
                "reasoning_verbatim": "an answer's reasoning_content renders as given (not newline-stripped)",
                "reasoning_trim": "an answer's reasoning_content renders whitespace-stripped",
                "no_reasoning_field": "the template never reads reasoning_content: a message carrying one is refused",
                NO_EMPTY_ANSWER: "an answer with empty content and no tool calls is refused"}


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

    def show(self) -> str:
        if self.kind == TEXT:
            return self.value
        inner = self.kind + "".join(f"|{f}" for f in self.filters)
        if self.default is not None:
            inner += "=" + self.default
        return "{" + inner + "}"


#: what identifies an atom when comparing repetitions (kind, value, filters, default: no position)
atom_key = itemgetter(0, 1, 4, 5)


def _names(items) -> str:
    """``{A}``, ``{A} and {B}``, ``{A}, {B} and {C}``."""
    items = list(items)
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else items[0]


def _filter_list() -> str:
    """Every filter and the placeholders that take it, grouped."""
    groups: dict[tuple, list[str]] = {}
    for f in FILTERS:
        groups.setdefault(tuple(k for k, v in TAKES.items() if f in v), []).append("|" + f)
    return ", ".join(f"{_names(fs)} (on {_names('{' + k + '}' for k in takers)})" for takers, fs in groups.items())


def placeholder(name: str, filters=(), default: str | None = None, line: int = 1, column: int = 1) -> Atom:
    """The placeholder atom ``{name|filter...=default}`` (at ``line``:``column``), its filters in
    canonical order; raises SpecError there when the vocabulary does not allow it."""
    def err(msg: str) -> SpecError:
        return SpecError(msg, line, column)

    filters = list(filters)
    if name not in PLACEHOLDERS:
        hint = f" (placeholders are upper case: {{{name.upper()}}})" if name.upper() in PLACEHOLDERS else ""
        raise err(f"unknown placeholder {{{name}}}{hint}; known: " + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                  + "; write {{ and }} for literal braces")
    for filt in filters:
        if filt not in FILTERS:
            raise err(f"unknown filter |{filt} on {{{name}}}; filters: {_filter_list()}")
        if filt not in TAKES.get(name, ()):
            note = FILTER_NOTES.get(filt)
            raise err(f"|{filt} applies only to " + _names(f"{{{k}}}" for k, v in TAKES.items() if filt in v)
                      + (f" ({note})" if note else ""))
    trims = "|" + ", |".join(TRIMS)
    if "trim_first" in filters and not any(f in TRIMS for f in filters):
        raise err(f"|trim_first on {{{name}}} needs a trim filter ({trims}): it trims the content before the "
                  "reasoning is split off")
    if len(set(filters)) != len(filters) or sum(f in TRIMS for f in filters) > 1 or \
            sum(f in THINKS for f in filters) > 1 or sum(f in FINAL_SCOPES for f in filters) > 1 or \
            sum(f in AFTER_ANSWER for f in filters) > 1:
        raise err(f"conflicting or repeated filters on {{{name}}}: at most one of {trims}, at most one of the "
                  "|drop_think filters, one of " + _names("|" + f for f in AFTER_ANSWER) + ", one of "
                  + _names("|" + f for f in FINAL_SCOPES) + ", and each filter once")
    if "nonempty" in filters and "nonblank" in filters:
        raise err(f"|nonempty and |nonblank on {{{name}}} contradict each other: |nonblank (blank after the trim "
                  "counts as none) includes |nonempty; keep one")
    if "nonblank" in filters and not any(f in TRIMS for f in filters):
        raise err(f"|nonblank on {{{name}}} tests the content as the block trims it: add a trim filter ({trims}), "
                  "or use |nonempty")
    if "empty_omitted" in filters and not ("nonempty" in filters or "nonblank" in filters):
        raise err(f"|empty_omitted on {{{name}}} says what an empty system message renders: it needs |nonempty or "
                  "|nonblank (when the message counts as none)")
    if default is not None and name not in DEFAULTS:
        raise err(f"only {_names('{' + k + '}' for k in DEFAULTS)} take a default (={default!r})")
    if name == "DATE":
        if not (default and "%" in default):
            raise err("{DATE=format} needs a strftime format, e.g. {DATE=%d %b %Y} (26 Jul 2024) or {DATE=%Y-%m-%d}")
        bad = [m.group(0) for m in re.finditer(r"%[-_0^#]?(.?)", default)
               if not m.group(1) or m.group(1) not in DATE_CONVERSIONS]
        if bad:
            raise err(f"{{DATE={default}}}: {', '.join(bad)} is not a date conversion (the format renders a day, "
                      "not a time: use %" + " %".join(DATE_CONVERSIONS[:-1]) + " and %%)")
    if name == "PROMPT" and not default and not filters:
        raise err("{PROMPT=text} needs its text: what the generation prompt adds after the assistant prefix "
                  "(e.g. {PROMPT=<think>} then a newline); "
                  + _names("{PROMPT|" + f + "}" for f in AFTER_ANSWER) + " need none")
    return Atom(name, "", line, column, tuple(sorted(filters, key=FILTERS.index)), default)


def content(name: str, rule: "ContentRule", *, default: str | None = None, skip_empty: bool = False,
            empty_after_trim: bool = False, empty_omitted: bool = False,
            scope: str = "last", given: str = "strip_nl", refuses_empty: bool = False) -> Atom:
    """The content placeholder (``INPUT``, ``OUTPUT``, ``SYSTEM``) whose filters say ``rule``
    (and, for the system block, ``skip_empty``; for the final answer, its ``scope`` and how
    explicit reasoning is read, ``given``; whether an empty answer is refused, ``refuses_empty``)."""
    filters = [f for f, on in ((TRIM_FILTER_OF[rule.trim_side], rule.trim),
                               ("nonempty", skip_empty and not empty_after_trim), ("nonblank", empty_after_trim),
                               ("empty_omitted", empty_omitted),
                               (THINK_FILTER_OF.get(rule.drop_think), rule.drop_think),
                               ("lstrip_nl", rule.lstrip_nl), ("trim_first", rule.trim_first),
                               (FINAL_SCOPE_FILTER_OF.get(scope), scope != "last"),
                               (GIVEN_REASONING_FILTER_OF.get(given), given != "strip_nl"),
                               (NO_EMPTY_ANSWER, refuses_empty)) if on]
    return placeholder(name, filters, default)
