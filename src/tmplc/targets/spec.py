"""IR -> canonical spec text (and YAML spec files).  Parsing the output gives back the IR.

The writer builds the spec's atoms (:func:`spec_atoms`, with the vocabulary's constructors) and
writes them as text (:func:`tmplc.spec.atoms.write`); whether they read back as the layout is
decided on the atoms themselves by the structure recovery, without parsing text."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from tmplc.errors import SpecError
from tmplc.ir import DateToken, Fragment, Structure
from tmplc.spec.atoms import fragment_atoms, write
from tmplc.spec.vocabulary import AFTER_ANSWER_FILTER_OF, TEXT, Atom, content, escape, placeholder

if TYPE_CHECKING:  # pragma: no cover
    from tmplc.ir import ChatFormat

__all__ = ["escape", "literal_block", "spec_atoms", "to_spec", "to_yaml"]


def _frag(f: Fragment) -> list[Atom]:
    for p in f:
        if isinstance(p, DateToken) and ("{" in p.format or "}" in p.format):
            raise SpecError(f"a date format with braces cannot be written as {{DATE=...}}: {p.format!r}")
    return fragment_atoms(f)


def _mark(name: str, filters=(), default: str | None = None) -> list[Atom]:
    return [placeholder(name, filters, default)]


def _block(tb) -> list[Atom]:
    if tb is None:
        return []
    absent = _mark("ELSE") + [Atom(TEXT, tb.absent)] if tb.absent is not None else []
    marks = ("hidden",) if tb.hidden else ("always",) if tb.always else ()
    return (_mark("THINK", marks) + [Atom(TEXT, tb.open)]
            + _mark("REASONING", ("trim",) if tb.trim else ()) + [Atom(TEXT, tb.close)] + absent + _mark("/THINK"))


def _output(a, final: bool = False, scope: str = "last", given: str = "strip_nl", refuses_empty: bool = False
            ) -> list[Atom]:
    """An ``{OUTPUT}`` with its reasoning block; ``final``: the second one (the final answer's
    own rule and block, when it has its own; its filters also say ``scope`` and ``given``)."""
    rule = a.final if final and a.final is not None else a.rule
    def nonempty(text: str) -> list[Atom]:
        return _mark("NONEMPTY") + [Atom(TEXT, text)] + _mark("/NONEMPTY") if text else []

    before, after = nonempty(rule.before_nonempty), nonempty(rule.after_nonempty)
    return _block(rule.think) + before + [content("OUTPUT", rule, scope=scope if final else "last",
                                         given=given if final else "strip_nl",
                                         refuses_empty=refuses_empty and final)] + after


def _reads(atoms: list[Atom]) -> Structure | None:
    from tmplc.spec.structure import recover_structure

    try:
        return recover_structure(atoms, None)
    except SpecError:
        return None


def spec_atoms(st: Structure) -> list[Atom]:
    """The atoms of the canonical spec of a layout.  Raises SpecError if the layout has no spec
    that reads back as it.  ``{SPLIT}`` is written only where the default rules would read the
    spec differently: between user and assistant turn, and before a standalone system block
    whose preamble is more than leading ``{BOS}``s (e.g. ``[gMASK]<sop>{SPLIT}<|system|>...``)."""
    from tmplc.spec.structure import default_split
    from tmplc.spec.tools import text_layout

    st = text_layout(st)  # the tool rendering is the YAML's 'tools:' section, not spec text
    sb = st.system
    system: list[Atom] = []
    if sb is not None:
        if sb.default is not None and ("{" in sb.default or "}" in sb.default):
            raise SpecError("the default system message contains braces, which {SYSTEM=...} cannot "
                            "hold; write it as default_system in a YAML spec (ChatFormat.to_yaml())")
        system = (_frag(sb.prefix) + [content("SYSTEM", sb.rule, default=sb.default, skip_empty=sb.skip_empty,
                                                 empty_after_trim=sb.empty_after_trim, empty_omitted=sb.empty_omitted)]
                  + _frag(sb.suffix))
    mid = st.user.suffix + st.assistant.prefix
    split = _mark("SPLIT") if default_split(mid, st.assistant.suffix) != (st.user.suffix, st.assistant.prefix) else []
    after = () if st.prompt_after_answer == "final" else (AFTER_ANSWER_FILTER_OF[st.prompt_after_answer],)
    prompt: list[Atom] = []
    if st.assistant.prompt_only:
        po = st.assistant.prompt_only
        if "{" in po or "}" in po:
            raise SpecError("the generation prompt's extra text contains braces, which {PROMPT=...} "
                            f"cannot hold: {po!r}")
        prompt = _mark("PROMPT", after, po)
    elif after:
        prompt = _mark("PROMPT", after)
    reply = _mark("REPLY") + prompt + _frag(st.assistant.lead) if st.assistant.lead else prompt
    exchange = ([content("INPUT", st.user.rule)] + _frag(st.user.suffix) + split
                + _frag(st.assistant.prefix) + reply)
    final = st.assistant.final_suffix
    # the first exchange and what follows it up to the second user content; then the second exchange
    middle = (exchange + _output(st.assistant) + _frag(st.assistant.suffix)
              + (_mark("SPLIT") if final is not None else []) + _frag(st.user.prefix))
    last = (exchange + _output(st.assistant, final=True, scope=st.final_scope, given=st.given_reasoning,
                               refuses_empty=st.refuses_empty_answers)
            + _frag(st.assistant.suffix if final is None else final))
    if st.assistant.empty is not None:
        last += (_mark("EMPTY", ("raw",) if st.assistant.empty_raw else ()) + _frag(st.assistant.empty)
                 + _mark("/EMPTY"))
    if st.closing:
        last += _mark("END") + _frag(st.closing)
    head = _frag(st.preamble)
    if sb is not None and sb.absent is not None:  # {NOSYSTEM} marks where the block starts
        head += _mark("NOSYSTEM") + _frag(sb.absent) + _mark("/NOSYSTEM") + system + _frag(st.user.prefix)
    elif sb is not None and sb.placement == "standalone":
        head += system + _frag(st.user.prefix)
    elif sb is not None:
        head += _frag(st.user.prefix) + system
    else:
        head += _frag(st.user.prefix)
    atoms = head + middle + last
    back = _reads(atoms)
    if back != st and sb is not None and sb.placement == "standalone" and sb.absent is None:
        # the preamble is more than the leading {BOS}s (or the placement is ambiguous):
        # mark where the preamble ends and the system block begins
        atoms = _frag(st.preamble) + _mark("SPLIT") + system + _frag(st.user.prefix) + middle + last
        back = _reads(atoms)
    if back is None:  # the spec's own error, at its line and column in the spec text
        from tmplc.spec.files import parse_structure

        parse_structure(write(atoms))
    if back != st:
        raise SpecError("this layout cannot be written as a two-repetition spec that parses back "
                        f"to it (the spec {write(atoms)!r} reads differently)")
    return atoms


def to_spec(st: Structure) -> str:
    """Canonical spec text for a layout (see :func:`spec_atoms`)."""
    return write(spec_atoms(st))


def to_yaml(fmt: "ChatFormat") -> str:
    """A YAML spec file (the registry's format) holding the canonical spec and the metadata."""
    import yaml

    m = fmt.meta
    data: dict = {"name": m.name}
    if m.description:
        data["description"] = m.description
    if m.aliases:
        data["aliases"] = list(m.aliases)
    for key in ("bos_token", "eos_token", "eot_token"):
        if getattr(m, key) is not None:
            data[key] = getattr(m, key)
    if m.stop:
        data["stop"] = list(m.stop)
    st = fmt.structure
    default = st.system.default if st.system else None
    if default is not None and ("{" in default or "}" in default):
        from dataclasses import replace

        st = replace(st, system=replace(st.system, default=None))
        data["default_system"] = default
    spec = to_spec(st)
    from tmplc.spec.tools import tools_data

    tools = tools_data(st)
    if tools is not None:
        data["tools"] = tools
    head = yaml.dump(data, Dumper=_indented_dumper(), sort_keys=False, allow_unicode=True, width=100)
    tail = ""
    if m.notes:
        tail = (literal_block("notes", m.notes) if "\n" in m.notes else None) or \
            yaml.safe_dump({"notes": m.notes}, allow_unicode=True, width=100)
    block = literal_block("spec", spec)
    if block is not None:
        out = head + block + tail
        back = yaml.safe_load(out)
        if back.get("spec") == spec and back.get("notes", "") == m.notes:  # reads back exactly, or is not used
            return out
    data["spec"] = spec
    if m.notes:
        data["notes"] = m.notes
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


@lru_cache(maxsize=1)
def _indented_dumper() -> type:
    """SafeDumper that indents list items under their key, as the registry files are written
    (made on first use: yaml is imported only when YAML is written)."""
    import yaml

    class _IndentedDumper(yaml.SafeDumper):
        def increase_indent(self, flow: bool = False, indentless: bool = False):  # noqa: D102
            return super().increase_indent(flow, False)

    return _IndentedDumper


_NOT_IN_BLOCK = __import__("re").compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff]")


def literal_block(key: str, text: str) -> str | None:
    """``key: |-`` and ``text`` as a YAML literal block scalar, the registry's style (editable:
    every line as it is), with the chomping indicator that keeps its final newlines exactly
    (``|-`` none, ``|`` one, ``|+`` more) and an indentation indicator when the first line
    starts with a space; None when a literal block cannot hold the text (control characters)."""
    if not text or _NOT_IN_BLOCK.search(text) or "\r" in text:
        return None
    body = text.rstrip("\n")
    trailing = len(text) - len(body)
    chomp = "-" if trailing == 0 else "" if trailing == 1 else "+"
    lines = body.split("\n")
    first = next((ln for ln in lines if ln.strip(" ")), "")
    indicator = "2" if first.startswith(" ") or not first else ""
    out = [f"{key}: |{indicator}{chomp}"]
    out += [("  " + ln) if ln else "" for ln in lines]
    out += [""] * (trailing - 1) if trailing > 1 else []
    return "\n".join(out) + "\n"
