"""The by-example form of a YAML spec file's ``tools:`` section: the format's tool rendering shown
the way the two-repetition spec shows text turns, as what the format renders, from which the
:class:`tmplc.ir.ToolFormat` is recovered deterministically (``docs/tools.md``).

.. code-block:: yaml

    tools:
      json: '{"name": "é", "values": [1, {"z": null, "a": true}]}'   # PROBE, as the format writes it
      list:        # the system block with two tools: with a system message, then without one
        - |
          <|im_start|>system
          {SYSTEM}

          # Tools ... <tools>
          {TOOL}
          {TOOL}
          </tools> ...<|im_end|>
        - |
          <|im_start|>system
          # Tools ... <tools>
          ...
      calls:       # an answer with content and two calls, then one with a call and no content
        - |-
          {OUTPUT}
          <tool_call>
          {{"name": "{NAME}", "arguments": {ARGUMENTS}}}
          </tool_call>
          <tool_call>
          {{"name": "{NAME}", "arguments": {ARGUMENTS}}}
          </tool_call>
        - |-
          <tool_call>
          {{"name": "{NAME}", "arguments": {ARGUMENTS}}}
          </tool_call>
      results: |   # a run of two tool results
        <|im_start|>user
        <tool_response>
        {RESULT}
        </tool_response>
        <tool_response>
        {RESULT}
        </tool_response><|im_end|>

Examples are spec text (the spec's parser reads them: ``{{``/``}}`` are literal braces). The
rules, each giving one field, so that any text the examples allow reads back one way:

* ``json``: :data:`PROBE` written as the format writes JSON; the one :class:`JsonStyle` whose
  ``dumps(PROBE)`` is that text exactly (indent, separators, key order, ``ensure_ascii``).
* ``list`` says where the list goes by what the examples hold.  In the system block
  (``placement: system``): each example is the whole system block (its prefix, or the declared
  ``system_prefix``, and its suffix as the spec shows them) with ``{TOOL}`` twice; the first also
  has ``{SYSTEM}``.  The text between ``{SYSTEM}`` and the list is ``system_sep``.  Without a
  second example the system block must have a default message (``{SYSTEM=...}``) that stays with
  tools (``keep_default_system``): the list then always follows a system message, and
  ``system_sep`` is empty (everything is ``list_prefix``).  In the first user turn (``placement: first_user``): one example, the whole first user turn (its
  prefix and suffix as the spec shows them) with ``{TOOL}`` twice, then ``{INPUT}``.
* ``calls``: the first example starts with ``{OUTPUT}`` (the answer's content) and shows two
  calls; the second shows one call and no content.  Its text before ``{NAME}`` is
  ``call_prefix``, between ``{NAME}`` and ``{ARGUMENTS}`` ``call_middle``, after ``{ARGUMENTS}``
  ``call_suffix``; the first example's remaining text gives ``content_sep`` and ``call_sep``.
* ``results``: ``{RESULT}`` twice, the whole run as it renders.
* A list (``{TOOL}``) and a run (``{RESULT}``) are ``open + (prefix + item + suffix)* + close``;
  the two items fix the text between items, and the split of it into suffix and prefix is the
  longest prefix that the opening text also ends with.  Every split that reads the example back
  renders every list alike, so the choice is only a canonical name.

* ``call_json`` (optional): the probe object as the format writes a call's arguments, when that
  differs from ``json``.

What no example can show is declared beside the examples with the field form's keys
(:data:`DECLARED_KEYS`: ``system_prefix``, ``empty_list``, ``keep_default_system``,
``empty_system_counts``, ``string_arguments``, ``max_calls``, ``calls_alone``,
``result_content``, ``final_scope``).  The keys the examples give (``call_prefix: ...``) cannot be
mixed with them.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Callable

from tmplc.errors import SpecError
from tmplc.ir import Fragment, JsonStyle, Structure, Text, ToolFormat
from tmplc.spec.vocabulary import TEXT, Atom

if TYPE_CHECKING:  # pragma: no cover
    import yaml

#: the object a ``json:`` example writes: key order (``z`` before ``a``), a non-ASCII character, nesting
PROBE = {"name": "é", "values": [1, {"z": None, "a": True}]}
#: the keys of the by-example form (``call_json`` optional)
EXAMPLE_KEYS = ("json", "list", "calls", "results")
OPTIONAL_EXAMPLE_KEYS = ("call_json",)
#: field-form keys declared beside the examples: what the format does, which no example shows
DECLARED_KEYS = ("final_scope", "string_arguments", "system_prefix", "empty_list", "keep_default_system",
                 "empty_system_counts", "max_calls", "calls_alone", "result_content")

Err = Callable[[str, "yaml.Node"], SpecError]
InScalar = Callable[[SpecError, "yaml.Node", str], SpecError]


def is_example_form(value: dict) -> bool:
    """Whether a ``tools:`` mapping is the by-example form (any example key; ``json`` as a string)."""
    return any(k in value for k in ("list", "calls", "results")) or isinstance(value.get("json"), str)


def json_style_of(text: str) -> JsonStyle | None:
    """The JSON style whose ``dumps(PROBE)`` is ``text``, or None."""
    for indent, item, key, sort_keys, ascii_ in itertools.product(
            (None,) + tuple(range(0, 9)), (",", ", "), (":", ": "), (False, True), (False, True)):
        style = JsonStyle(indent=indent, separators=(item, key), sort_keys=sort_keys, ensure_ascii=ascii_)
        if style.dumps(PROBE) == text:
            return style
    return None


class _Example:
    """One example: its atoms (text runs and placeholders), checked against what it may hold."""

    def __init__(self, text: str, node: "yaml.Node", key: str, in_scalar: InScalar, err: Err) -> None:
        from tmplc.spec.parse import parse_atoms

        self.node, self.key, self._in_scalar, self._err = node, key, in_scalar, err
        try:
            self.atoms = parse_atoms(text)
        except SpecError as e:
            raise in_scalar(e, node, key) from None

    def fail(self, msg: str, atom: Atom | None = None) -> SpecError:
        if atom is None:
            return self._err(f"tools.{self.key}: {msg}", self.node)
        return self._in_scalar(SpecError(f"tools.{self.key}: {msg}", atom.line, atom.column), self.node, self.key)

    def pieces(self, names: tuple[str, ...]) -> list[str]:
        """The texts around the placeholders, which must be ``names`` in that order (text only
        between them: ``len(names) + 1`` strings)."""
        found = [a for a in self.atoms if a.kind != TEXT]
        for a in found:
            if a.kind not in names:
                raise self.fail(f"{{{a.kind}}} does not belong in this example; it shows "
                                + ", ".join("{" + n + "}" for n in names) + " and literal text", a)
            if a.filters or a.default is not None:
                raise self.fail(f"{{{a.kind}}} takes no filter or default here", a)
        if tuple(a.kind for a in found) != names:
            raise self.fail("expected " + ", ".join("{" + n + "}" for n in names) + " in this order, found "
                            + (", ".join("{" + a.kind + "}" for a in found) or "none"),
                            found[0] if found else None)
        out, cur = [], ""
        for a in self.atoms:
            if a.kind == TEXT:
                cur += a.value
            else:
                out.append(cur)
                cur = ""
        return out + [cur]


def _literal(frag: Fragment, what: str, ex: _Example, where: str = "system block") -> str:
    if not all(isinstance(p, Text) for p in frag):
        raise ex.fail(f"the by-example form needs a {where} {what} of literal text only; "
                      "declare the ToolFormat fields instead (docs/tools.md)")
    return "".join(p.value for p in frag)


def _repeat_split(open_: str, between: str, close: str, ex: _Example) -> tuple[str, str, str, str]:
    """``open + (prefix + X + suffix)* + close`` from the text before, between and after two items:
    (open, prefix, suffix, close), the prefix the longest that both ``open_`` and ``between`` end with."""
    for n in range(min(len(open_), len(between)), -1, -1):
        prefix = between[len(between) - n:]
        suffix = between[:len(between) - n]
        if open_.endswith(prefix) and close.startswith(suffix):
            return open_[:len(open_) - n], prefix, suffix, close[len(suffix):]
    raise ex.fail(f"the text between the two items ({between!r}) is not an item's ending followed by the next "
                  f"one's beginning: the text before the first item must end with the beginning ({open_!r}) and "
                  f"the text after the last must start with the ending ({close!r})")


def _list_fields(st: Structure, examples: list[_Example], system_prefix: Fragment | None,
                 keep_default_system: bool) -> dict[str, Any]:
    """The list's fields and its placement: the system block (``{SYSTEM}``) or the first user turn
    (``{INPUT}``), as the examples show it."""
    ex = examples[0]
    if any(a.kind == "INPUT" for a in ex.atoms):
        return _first_user_fields(st, examples)
    sb = st.system
    if sb is None or sb.placement != "standalone":
        raise ex.fail("a tool list in the system block needs a standalone system block ({SYSTEM} before the "
                      "first user turn); a list in the first user turn is shown with {TOOL}, {TOOL}, {INPUT}")
    if system_prefix is not None:
        prefix = _literal(system_prefix, "prefix (the declared system_prefix)", ex)
    else:
        prefix = _literal(sb.prefix, "prefix", ex)
    suffix = _literal(sb.suffix, "suffix", ex)
    what = "the declared system_prefix" if system_prefix is not None else "the system block's prefix as the spec shows it"

    def block(e: _Example, names: tuple[str, ...]) -> list[str]:
        p = e.pieces(names)
        if not p[0].startswith(prefix):
            raise e.fail(f"the example must start with {what} ({prefix!r})")
        if not p[-1].endswith(suffix):
            raise e.fail(f"the example must end with the system block's suffix as the spec shows it ({suffix!r})")
        p[0] = p[0][len(prefix):]
        p[-1] = p[-1][:len(p[-1]) - len(suffix)] if suffix else p[-1]
        return p

    head, sep_and_open, between, close = block(ex, ("SYSTEM", "TOOL", "TOOL"))
    if head:
        raise ex.fail(f"text between the system block's prefix and {{SYSTEM}} ({head!r}) is not the spec's prefix")
    always_system = sb.default is not None and keep_default_system
    if len(examples) > 1:
        if always_system:
            raise examples[1].fail("the system block has a default message, so the list always follows a system "
                                   "message: show only the example with {SYSTEM}")
        open_, b2, c2 = block(examples[1], ("TOOL", "TOOL"))
        if (b2, c2) != (between, close):
            raise examples[1].fail("the list differs from the first example's (the text between and after the "
                                   "tools must be the same)")
        if not sep_and_open.endswith(open_):
            raise ex.fail(f"the text after {{SYSTEM}} ({sep_and_open!r}) must end with the list's opening as the "
                          f"second example shows it ({open_!r}): the text before it is what separates them")
        system_sep = sep_and_open[:len(sep_and_open) - len(open_)]
    elif not always_system:
        raise ex.fail("show the system block twice: with {SYSTEM} and without it (a list of two examples); the "
                      "second says where the text separating a system message from the list ends")
    else:
        system_sep, open_ = "", sep_and_open
    list_prefix, item_prefix, item_suffix, list_suffix = _repeat_split(open_, between, close, ex)
    return dict(system_sep=system_sep, list_prefix=list_prefix, item_prefix=item_prefix,
                item_suffix=item_suffix, list_suffix=list_suffix)


def _first_user_fields(st: Structure, examples: list[_Example]) -> dict[str, Any]:
    ex = examples[0]
    if len(examples) != 1:
        raise examples[1].fail("a list in the first user turn is shown once (the turn with {TOOL}, {TOOL}, {INPUT})")
    if st.system is not None and st.system.placement != "standalone":
        raise ex.fail("a list in the first user turn needs a standalone system block or none (this spec puts the "
                      "system message inside the first user turn): declare the ToolFormat fields instead")
    prefix, suffix = _literal(st.user.prefix, "prefix", ex, "user turn"), \
        _literal(st.user.suffix, "suffix", ex, "user turn")
    p = ex.pieces(("TOOL", "TOOL", "INPUT"))
    if not p[0].startswith(prefix):
        raise ex.fail(f"the example must start with the user turn's prefix as the spec shows it ({prefix!r})")
    if p[-1] != suffix:
        raise ex.fail(f"after {{INPUT}} comes the user turn's suffix as the spec shows it ({suffix!r}), "
                      f"not {p[-1]!r}")
    list_prefix, item_prefix, item_suffix, list_suffix = _repeat_split(p[0][len(prefix):], p[1], p[2], ex)
    return dict(placement="first_user", list_prefix=list_prefix, item_prefix=item_prefix,
                item_suffix=item_suffix, list_suffix=list_suffix)


def _call_fields(examples: list[_Example]) -> dict[str, str]:
    two, one = examples
    head, a, m1, b, m2, c = two.pieces(("OUTPUT", "NAME", "ARGUMENTS", "NAME", "ARGUMENTS"))
    if head:
        raise two.fail(f"the example starts with the answer's content: nothing before {{OUTPUT}} ({head!r})")
    call_prefix, middle, call_suffix = one.pieces(("NAME", "ARGUMENTS"))
    if not (m1 == m2 == middle):
        raise two.fail(f"the text between {{NAME}} and {{ARGUMENTS}} differs between the calls ({m1!r}, {m2!r}, "
                       f"{middle!r})")
    if c != call_suffix:
        raise two.fail(f"the calls end differently ({c!r} here, {call_suffix!r} in the one-call example)")
    if not a.endswith(call_prefix):
        raise two.fail(f"the text between {{OUTPUT}} and the first call ({a!r}) must end with the call's beginning "
                       f"({call_prefix!r}, as the one-call example shows it)")
    if not (b.startswith(call_suffix) and b.endswith(call_prefix) and len(b) >= len(call_suffix) + len(call_prefix)):
        raise two.fail(f"the text between the calls ({b!r}) must be a call's ending ({call_suffix!r}), then the "
                       f"separator, then a call's beginning ({call_prefix!r})")
    return dict(content_sep=a[:len(a) - len(call_prefix)], call_prefix=call_prefix, call_middle=middle,
                call_suffix=call_suffix, call_sep=b[len(call_suffix):len(b) - len(call_prefix)])


def _result_fields(ex: _Example) -> dict[str, Any]:
    open_, between, close = ex.pieces(("RESULT", "RESULT"))
    results_open, result_prefix, result_suffix, results_close = _repeat_split(open_, between, close, ex)
    return dict(results_open=results_open, result_prefix=result_prefix, result_suffix=result_suffix,
                results_close=results_close, grouped=True)


def tool_format_from_examples(st: Structure, node: "yaml.Node", value: dict, err: Err,
                              in_scalar: InScalar, system_prefix: Fragment | None = None,
                              keep_default_system: bool = True) -> dict[str, Any]:
    """The ToolFormat fields the examples of a ``tools:`` mapping show (``value``, read from the
    YAML mapping ``node``; ``system_prefix``: the declared one, which a system-block example starts with)."""
    import yaml

    at = {k.value: (k, v) for k, v in node.value}
    kw: dict[str, Any] = {}
    for key in EXAMPLE_KEYS:
        if key not in value:
            raise err(f"the by-example 'tools' section needs {', '.join(EXAMPLE_KEYS)}; {key!r} is missing "
                      "(docs/tools.md)", node)

    def examples(key: str, counts: tuple[int, ...]) -> list[_Example]:
        v, n = value[key], at[key][1]
        items = [(v, n)] if isinstance(v, str) else list(zip(v, n.value)) if isinstance(v, list) and \
            isinstance(n, yaml.SequenceNode) else None
        if items is None or len(items) not in counts or not all(isinstance(x, str) for x, _ in items):
            want = " or ".join(("one string" if c == 1 else f"a list of {c} strings") for c in counts)
            raise err(f"tools.{key} must be {want} (examples of spec text)", n)
        return [_Example(x, xn, key, in_scalar, err) for x, xn in items]

    for key in ("json",) + tuple(k for k in OPTIONAL_EXAMPLE_KEYS if k in value):
        jnode = at[key][1]
        if not isinstance(value[key], str):
            raise err(f"tools.{key} must be, in the by-example form, the probe object as the format writes it: "
                      + JsonStyle().dumps(PROBE), jnode)
        style = json_style_of(value[key])
        if style is None:
            raise err(f"tools.{key}: not the probe object " + JsonStyle().dumps(PROBE) + " as json.dumps writes it "
                      "with some indent, separators, key order and ensure_ascii (formats writing JSON another way, "
                      "e.g. Go's encoding/json escaping '<', cannot be modelled)", jnode)
        kw[key] = style
    kw.update(_list_fields(st, examples("list", (1, 2)), system_prefix, keep_default_system))
    kw.update(_call_fields(examples("calls", (2,))))
    kw.update(_result_fields(examples("results", (1,))[0]))
    return kw


def examples_of(st: Structure) -> dict[str, Any]:
    """The by-example ``tools:`` section of ``st`` (whose system block, or first user turn for a
    list there, is literal text): what the format renders for each example, written as spec text,
    and the declared keys.  Reading it back gives a ToolFormat that renders every conversation
    alike (the split of a list's repeated text is canonical)."""
    from tmplc.spec.tools import tools_data
    from tmplc.spec.vocabulary import escape

    tf, sb = st.tools, st.system
    if tf is None:
        raise ValueError("examples need a tool format")
    e = escape

    def literal(frag: Fragment, what: str) -> str:
        if not all(isinstance(p, Text) for p in frag):
            raise ValueError(f"examples need a {what} of literal text")
        return "".join(p.value for p in frag)

    def items(ph: str, before: str, after: str) -> str:
        return e(before) + ph + e(after)

    tools = e(tf.list_prefix) + items("{TOOL}", tf.item_prefix, tf.item_suffix) * 2 + e(tf.list_suffix)
    if tf.placement == "first_user":
        lists = [e(literal(st.user.prefix, "user turn prefix")) + tools + "{INPUT}"
                 + e(literal(st.user.suffix, "user turn suffix"))]
    else:
        if sb is None:
            raise ValueError("examples of a list in the system block need a system block")
        prefix = literal(sb.prefix if tf.system_prefix is None else tf.system_prefix, "system block prefix")
        suffix = literal(sb.suffix, "system block suffix")

        def block(with_system: bool) -> str:
            head = "{SYSTEM}" + e(tf.system_sep) if with_system else ""
            return e(prefix) + head + tools + e(suffix)

        lists = [block(True)] if sb.default is not None and tf.keep_default_system else [block(True), block(False)]
    call = items("{NAME}", tf.call_prefix, "") + e(tf.call_middle) + "{ARGUMENTS}" + e(tf.call_suffix)
    result = items("{RESULT}", tf.result_prefix, tf.result_suffix)
    run = (e(tf.results_open) + result * 2 + e(tf.results_close) if tf.grouped
           else (e(tf.results_open) + result + e(tf.results_close)) * 2)
    declared = {k: v for k, v in (tools_data(st) or {}).items() if k in DECLARED_KEYS}
    out: dict[str, Any] = {k: declared.pop(k) for k in ("final_scope", "system_prefix") if k in declared}
    out["json"] = tf.json.dumps(PROBE)
    if tf.call_json is not None:
        out["call_json"] = tf.call_json.dumps(PROBE)
    out["list"] = lists
    out["calls"] = ["{OUTPUT}" + e(tf.content_sep) + call + e(tf.call_sep) + call, call]
    out["results"] = run
    out.update(declared)
    return out
