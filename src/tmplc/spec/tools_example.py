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
  ``system_sep`` is empty (everything is ``list_prefix``).  The list before ``{SYSTEM}`` (``{TOOL}``,
  ``{TOOL}``, then ``{SYSTEM}``) is ``list_first``: the text between the list and ``{SYSTEM}`` is
  ``system_sep``, where the second example ends the list.  With ``system_sep_if: content``
  declared, both examples are shown (the second: the list after an empty system message).  In the first user turn (``placement: first_user``): one example, the whole first user turn (its
  prefix and suffix as the spec shows them) with ``{TOOL}`` twice, then ``{INPUT}``.  Before the
  last user turn (declared ``placement: last_user``): one example, the list, then the whole turn.
  After the system block (declared ``placement: after_system``) or at the very start of the text
  (``placement: start``): one example, the list alone.
  Text between the two ``{TOOL}`` that no item prefix/suffix split reads back separates items
  (``item_sep``: a JSON array's ``", "``).
* ``calls``: the first example starts with ``{OUTPUT}`` (the answer's content) and shows two
  calls; the second shows one call and no content.  Its text before ``{NAME}`` is
  ``call_prefix``, between ``{NAME}`` and ``{ARGUMENTS}`` ``call_middle``, after ``{ARGUMENTS}``
  ``call_suffix``; the first example's remaining text gives ``content_sep`` and ``call_sep``.
  Text around all of an answer's calls (``calls_open``/``calls_close``: Hunyuan's
  ``<tool_calls>...</tool_calls>``) is what the text between the two calls does not repeat:
  between them, a call's ending, ``call_sep`` and a call's beginning where that reads the example
  back, else the calls split like list items (below).
* Arguments key by key (Qwen3-Coder's ``<parameter=k>v</parameter>``): ``{KEY}{VALUE}`` twice
  per call in place of ``{ARGUMENTS}`` (the text between ``{KEY}`` and ``{VALUE}`` is
  ``arg_middle``), and the one-call example shows a call without arguments, which fixes the
  split into ``call_middle + (arg_prefix + key + arg_middle + value + arg_suffix)* + call_suffix``
  (the shortest ``arg_prefix`` that renders that call too).  ``arg_values: python`` is declared
  where values other than strings render as Python writes them, and ``arg_middle_other`` where
  the text before such a value differs from the examples' (DeepSeek V3.2's ``string="false">``).
* ``results``: ``{RESULT}`` twice, the whole run as it renders.
* ``{ID}``: a call's id right after each ``{NAME}`` (``call_id_prefix`` between them), or right
  after each ``{ARGUMENTS}`` (``call_id_after``; declared ``call_id_suffix``: the head of the text
  after it that a call without its id leaves out, with ``last_call_ids: false``), and a result's
  ``tool_call_id`` right before each ``{RESULT}`` (``result_id_suffix`` between them).
* ``{TOOLS}`` in place of ``{TOOL}, {TOOL}``: the list as one JSON array in the ``json`` style
  (``list_json``: Granite 3.3's ``tools | tojson(indent=4)``, each tool nested a level deeper).
* ``{INDEX}``: a call's 0-based position in its answer, after its ``{NAME}`` (and ``{ID}``), in
  both call examples (``call_index_prefix`` before it).
* A list (``{TOOL}``) and a run (``{RESULT}``) are ``open + (prefix + item + suffix)* + close``,
  items separated by ``item_sep`` (``result_sep``) where the text between them holds more;
  the two items fix the text between items, and the split of it into suffix and prefix is the
  longest prefix that the opening text also ends with.  Every split that reads the example back
  renders every list alike, so the choice is only a canonical name.

* ``call_json`` (optional): the probe object as the format writes a call's arguments, when that
  differs from ``json``.

What no example can show is declared beside the examples with the field form's keys
(:data:`DECLARED_KEYS`: ``placement``, ``system_prefix``, ``empty_list``, ``keep_default_system``,
``empty_system_counts``, ``string_arguments``, ``max_calls``, ``calls_alone``,
``result_content``, ``final_scope``, ``arg_values``, ``content_sep_if``, ``system_sep_if``,
``renders_calls``/``renders_list`` (false: no ``calls``/``list`` example), ``calls_end_turn``,
``absent`` (the text in place of the system block with tools and no system message, where it
differs from the spec's ``{NOSYSTEM}`` text), ``arg_middle_other``, ``user_prefix_after_results``,
``assistant_prefix_after_results``, ``user_after_user``, ``results_answer_calls``, ``tool_object``: each
``{TOOL}`` is the tool's ``function`` object alone with ``tool_object: function``; ``tool_layout: xml``:
each ``{TOOL}`` is Qwen3-Coder's ``<function>`` element; ``default_system``: the system text with
tools and no system message, so only the example with ``{SYSTEM}`` is shown; ``call_answers``;
``answers_after_results``;
``arg_cdata``: the examples' string values hold none of ``<``, ``&``, a newline;
``list_block_suffix``: the example without a system message ends with it instead of the block's
suffix; ``last_call_ids``, ``call_id_suffix``: see ``{ID}``).  The keys the
examples give (``call_prefix: ...``) cannot be mixed with them.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Callable

from tmplc.errors import SpecError
from tmplc.ir import (Fragment, JsonStyle, Structure, Text, ToolFormat, split_between_items, split_calls,
                      split_per_argument)
from tmplc.spec.vocabulary import TEXT, Atom

if TYPE_CHECKING:  # pragma: no cover
    import yaml

#: the object a ``json:`` example writes: key order (``z`` before ``a``), a non-ASCII character, nesting
PROBE = {"name": "é", "values": [1, {"z": None, "a": True}]}
#: the keys of the by-example form (``call_json`` optional)
EXAMPLE_KEYS = ("json", "list", "calls", "results")
OPTIONAL_EXAMPLE_KEYS = ("call_json",)
#: field-form keys declared beside the examples: what the format does, which no example shows
DECLARED_KEYS = ("final_scope", "placement", "string_arguments", "system_prefix", "empty_list", "keep_default_system",
                 "empty_system_counts", "max_calls", "calls_alone", "result_content", "arg_values", "content_sep_if",
                 "tool_object", "system_sep_if", "renders_calls", "renders_list", "calls_end_turn", "absent",
                 "arg_middle_other", "user_prefix_after_results", "assistant_prefix_after_results",
                 "user_after_user", "results_answer_calls", "tool_layout", "default_system", "call_answers",
                 "answers_after_results", "arg_cdata", "last_call_ids", "call_id_suffix", "list_block_suffix")

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


def _pieces(ex: _Example, names: tuple[str, ...]) -> list:
    """``ex.pieces(names)``, where a list shown as one JSON array (``{TOOLS}``: ``list_json``) stands
    for the two items ``{TOOL}, {TOOL}`` of ``names``; the text between those is then None."""
    if "TOOL" in names and _has(ex, "TOOLS"):
        k = names.index("TOOL")
        p = ex.pieces(names[:k] + ("TOOLS",) + names[k + 2:])
        return p[:k + 1] + [None] + p[k + 1:]
    return ex.pieces(names)


def _list_split(open_: str, between: str | None, close: str) -> dict[str, Any]:
    """A list's fields from the text before, between and after its two items
    (:func:`tmplc.ir.split_between_items`: a separator where no prefix/suffix split reads it);
    ``between`` None: the list is one JSON array (``{TOOLS}``)."""
    if between is None:
        return dict(list_prefix=open_, list_suffix=close, list_json=True)
    item_suffix, item_sep, item_prefix = split_between_items(open_, between, close)
    return dict(list_prefix=open_[:len(open_) - len(item_prefix)], item_prefix=item_prefix, item_suffix=item_suffix,
                item_sep=item_sep, list_suffix=close[len(item_suffix):])


def _list_fields(st: Structure, examples: list[_Example], system_prefix: Fragment | None,
                 keep_default_system: bool, placement: str | None, system_sep_if: str = "message",
                 default_system: bool = False, list_block_suffix: Fragment | None = None) -> dict[str, Any]:
    """The list's fields and its placement: the system block (``{SYSTEM}``), the first user turn
    (``{INPUT}``) or, where ``placement: last_user`` is declared, before the last user turn."""
    ex = examples[0]
    if placement == "last_user" or (placement is None and any(a.kind == "INPUT" for a in ex.atoms)):
        return _user_turn_fields(st, examples, placement or "first_user")
    if placement in ("after_system", "start"):  # the list alone, as it renders there
        if len(examples) != 1:
            raise examples[1].fail(f"a list with placement {placement} is shown once (with {{TOOL}}, {{TOOL}})")
        return dict(placement=placement, **_list_split(*_pieces(ex, ("TOOL", "TOOL"))))
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
    # the declared list_block_suffix: the block without a system message ends with it (the list's own block)
    own = None if list_block_suffix is None else _literal(list_block_suffix, "list_block_suffix", ex)

    def block(e: _Example, names: tuple[str, ...], end: str = suffix) -> list[str]:
        p = _pieces(e, names)
        if not p[0].startswith(prefix):
            raise e.fail(f"the example must start with {what} ({prefix!r})")
        if not p[-1].endswith(end):
            ending = "the system block's suffix as the spec shows it" if end == suffix and own is None else \
                "the declared list_block_suffix"
            raise e.fail(f"the example must end with {ending} ({end!r})")
        p[0] = p[0][len(prefix):]
        p[-1] = p[-1][:len(p[-1]) - len(end)] if end else p[-1]
        return p

    # a default message that stays with tools (or a declared default_system, the text tools bring):
    # the list always comes with a system message, and (system_sep_if: message) the separator with
    # it; an empty one still shows without it otherwise
    always_system = (default_system or sb.default is not None and keep_default_system) and system_sep_if == "message" \
        and own is None
    kinds = [a.kind for a in ex.atoms if a.kind != TEXT]
    if kinds and kinds[0] in ("TOOL", "TOOLS"):  # the list before the system message (list_first)
        return _list_first_fields(examples, block, always=always_system)
    head, sep_and_open, between, close = block(ex, ("SYSTEM", "TOOL", "TOOL"))
    if head:
        raise ex.fail(f"text between the system block's prefix and {{SYSTEM}} ({head!r}) is not the spec's prefix")
    if len(examples) > 1:
        if always_system:
            raise examples[1].fail("the system block has a default message (or default_system is declared), so the list always follows a system "
                                   "message: show only the example with {SYSTEM}")
        open_, b2, c2 = block(examples[1], ("TOOL", "TOOL"), suffix if own is None else own)
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
    return dict(system_sep=system_sep, **_list_split(open_, between, close))


def _list_first_fields(examples: list[_Example], block, always: bool) -> dict[str, Any]:
    """A list before the system message in its block: ``{TOOL}``, ``{TOOL}``, the separator, then
    ``{SYSTEM}``; the second example (the block without a system message) ends the list."""
    ex = examples[0]
    open_, between, close_and_sep, tail = block(ex, ("TOOL", "TOOL", "SYSTEM"))
    if tail:
        raise ex.fail(f"text between {{SYSTEM}} and the system block's suffix ({tail!r}) is not the spec's suffix")
    if len(examples) > 1:
        if always:
            raise examples[1].fail("the system block has a default message (or default_system is declared), so the list always comes with a system "
                                   "message: show only the example with {SYSTEM}")
        o2, b2, close = block(examples[1], ("TOOL", "TOOL"))
        if (o2, b2) != (open_, between):
            raise examples[1].fail("the list differs from the first example's (the text before and between the "
                                   "tools must be the same)")
        if not close_and_sep.startswith(close):
            raise ex.fail(f"the text before {{SYSTEM}} ({close_and_sep!r}) must start with the list's ending as the "
                          f"second example shows it ({close!r}): the text after it is what separates them")
        system_sep = close_and_sep[len(close):]
    elif not always:
        raise ex.fail("show the system block twice: with {SYSTEM} and without it (a list of two examples); the "
                      "second says where the list ends and the text separating it from a system message begins")
    else:
        system_sep, close = "", close_and_sep
    return dict(system_sep=system_sep, list_first=True, **_list_split(open_, between, close))


def _user_turn_fields(st: Structure, examples: list[_Example], placement: str) -> dict[str, Any]:
    """A list in the first user turn (the turn's prefix, the list, ``{INPUT}``, its suffix) or
    before the last one (the list, then the turn)."""
    ex = examples[0]
    where = "in the first user turn" if placement == "first_user" else "before the last user turn"
    if len(examples) != 1:
        raise examples[1].fail(f"a list {where} is shown once (with {{TOOL}}, {{TOOL}}, {{INPUT}})")
    if st.system is not None and st.system.placement != "standalone":
        raise ex.fail(f"a list {where} needs a standalone system block or none (this spec puts the "
                      "system message inside the first user turn): declare the ToolFormat fields instead")
    prefix, suffix = _literal(st.user.prefix, "prefix", ex, "user turn"), \
        _literal(st.user.suffix, "suffix", ex, "user turn")
    open_, between, close, after = _pieces(ex, ("TOOL", "TOOL", "INPUT"))
    if placement == "last_user" and not close.endswith(prefix):
        raise ex.fail(f"a list {where}: the text before {{INPUT}} must end with the user turn's prefix as the "
                      f"spec shows it ({prefix!r})")
    if placement == "first_user" and not open_.startswith(prefix):
        raise ex.fail(f"the example must start with the user turn's prefix as the spec shows it ({prefix!r})")
    if after != suffix:
        raise ex.fail(f"after {{INPUT}} comes the user turn's suffix as the spec shows it ({suffix!r}), not {after!r}")
    if placement == "last_user":
        fields = _list_split(open_, between, close[:len(close) - len(prefix)])
    else:
        fields = _list_split(open_[len(prefix):], between, close)
    return dict(placement=placement, **fields)


def _has(ex: _Example, kind: str) -> bool:
    return any(a.kind == kind for a in ex.atoms)


def _call_fields(examples: list[_Example]) -> dict[str, Any]:
    """The call layout; with ``{ID}`` after each ``{NAME}``, the call's id (``call_id_prefix``);
    with ``{KEY}``/``{VALUE}`` in place of ``{ARGUMENTS}``, arguments key by key (the one-call
    example then shows a call without arguments)."""
    two, one = examples
    ids, per = _has(one, "ID"), _has(two, "KEY")
    kinds = [a.kind for a in one.atoms if a.kind in ("ID", "ARGUMENTS")]
    id_after = kinds == ["ARGUMENTS", "ID"]  # Apriel's {"name": ..., "arguments": ..., "id": ...}
    if id_after and _has(one, "INDEX"):
        raise one.fail("{INDEX} follows {NAME} (and an {ID} there): an {ID} after {ARGUMENTS} takes no {INDEX}")
    idn = ("ID",) * (ids and not id_after) + ("INDEX",) * _has(one, "INDEX")
    args = ("KEY", "VALUE", "KEY", "VALUE") if per else ("ARGUMENTS",) + ("ID",) * id_after
    call = ("NAME",) + idn + args
    p = two.pieces(("OUTPUT",) + call + call)
    q = one.pieces(("NAME",) + idn + (() if per else args))
    if id_after:  # the text between {ARGUMENTS} and {ID}, in both calls and the one-call example
        if not (p[3] == p[6] == q[2]):
            raise two.fail(f"the text between {{ARGUMENTS}} and {{ID}} differs between the calls ({p[3]!r}, {p[6]!r}, "
                           f"{q[2]!r})")
        p, q, id_prefix = p[:3] + p[4:6] + p[7:], q[:2] + q[3:], q[2]
    head, a = p[0], p[1]
    n = len(call) - id_after  # the pieces after each call's name: [id prefix], then one per argument placeholder
    first, second, c = p[2:2 + n - 1], p[2 + n:2 + 2 * n - 1], p[-1]
    b = p[2 + n - 1]
    if head:
        raise two.fail(f"the example starts with the answer's content: nothing before {{OUTPUT}} ({head!r})")
    heads: dict[str, str] = {}  # {ID}, {INDEX}: the text before each
    for k, kind in enumerate(idn):
        heads[kind] = q[1 + k]
        if not (first[0] == second[0] == heads[kind]):
            before = "{" + (("NAME",) + idn)[k] + "}"
            raise two.fail(f"the text between {before} and {{{kind}}} differs between the calls ({first[0]!r}, "
                           f"{second[0]!r}, {heads[kind]!r})")
        first, second = first[1:], second[1:]
    if not id_after:
        id_prefix = heads.get("ID")
    opening = q[0]
    after = "{" + (("NAME",) + idn)[-1] + "}"
    per_arg: dict[str, Any] = {}
    if per:
        if first != second:
            raise two.fail("the two calls differ in the text around their arguments (" + ", ".join(
                repr(x) for x in first) + " against " + ", ".join(repr(x) for x in second) + ")")
        lead, m1, between, m2 = first
        if m1 != m2:
            raise two.fail(f"the text between {{KEY}} and {{VALUE}} differs between the arguments ({m1!r}, {m2!r})")
        split = split_per_argument(lead, between, c, q[-1], b)
        if split is None:
            raise one.fail(f"the call without arguments ({q[-1]!r} after {after}) is not the text around the "
                           f"arguments of the two-call example (before the first {{KEY}}: {lead!r}, between "
                           f"arguments: {between!r}, after the last {{VALUE}}: {c!r})")
        middle, ap, asuf, _, none, sep = split
        if not b.startswith(asuf):
            raise two.fail(f"the text between the calls ({b!r}) must start with an argument's ending ({asuf!r})")
        b, c = b[len(asuf):], c[len(asuf):]
        per_arg = dict(arg_prefix=ap, arg_middle=m1, arg_suffix=asuf, no_arguments=none, arg_sep=sep)
    else:
        middle = q[-2]
        if not (first[0] == second[0] == middle):
            raise two.fail(f"the text between {after} and {{ARGUMENTS}} differs between the calls ({first[0]!r}, "
                           f"{second[0]!r}, {middle!r})")
        if c != q[-1]:
            raise two.fail(f"the calls end differently ({c!r} here, {q[-1]!r} in the one-call example)")
    if not a.endswith(opening):
        raise two.fail(f"the text between {{OUTPUT}} and the first call ({a!r}) must end with the call's beginning "
                       f"({opening!r}, as the one-call example shows it)")
    calls_open, call_prefix, call_sep, call_suffix, calls_close = split_calls(opening, b, c)
    return dict(content_sep=a[:len(a) - len(opening)], calls_open=calls_open, call_prefix=call_prefix,
                call_id_prefix=id_prefix, call_id_after=id_after, call_index_prefix=heads.get("INDEX"),
                call_middle=middle, call_suffix=call_suffix, call_sep=call_sep, calls_close=calls_close, **per_arg)


def _result_fields(ex: _Example) -> dict[str, Any]:
    """A run of two results; with ``{ID}`` before each ``{RESULT}``, the id of the call it answers
    (``result_id_suffix``: the text between them)."""
    if _has(ex, "ID"):
        open_, s1, between, s2, close = ex.pieces(("ID", "RESULT", "ID", "RESULT"))
        if s1 != s2:
            raise ex.fail(f"the text between {{ID}} and {{RESULT}} differs between the results ({s1!r}, {s2!r})")
        id_suffix: str | None = s1
    else:
        open_, between, close = ex.pieces(("RESULT", "RESULT"))
        id_suffix = None
    result_suffix, sep, result_prefix = split_between_items(open_, between, close)
    results_open, results_close = open_[:len(open_) - len(result_prefix)], close[len(result_suffix):]
    return dict(results_open=results_open, result_prefix=result_prefix, result_id_suffix=id_suffix,
                result_suffix=result_suffix, result_sep=sep, results_close=results_close, grouped=True)


def tool_format_from_examples(st: Structure, node: "yaml.Node", value: dict, err: Err,
                              in_scalar: InScalar, system_prefix: Fragment | None = None,
                              keep_default_system: bool = True, placement: str | None = None,
                              system_sep_if: str = "message", default_system: bool = False,
                              list_block_suffix: Fragment | None = None) -> dict[str, Any]:
    """The ToolFormat fields the examples of a ``tools:`` mapping show (``value``, read from the
    YAML mapping ``node``; ``system_prefix``: the declared one, which a system-block example starts with)."""
    import yaml

    at = {k.value: (k, v) for k, v in node.value}
    kw: dict[str, Any] = {}
    no_calls, no_list = value.get("renders_calls") is False, value.get("renders_list") is False
    for key in EXAMPLE_KEYS:
        if (key, True) in (("calls", no_calls), ("list", no_list)):
            if key in value:
                raise err(f"tools.{key} shows how the {'calls' if key == 'calls' else 'tool list'} render, but "
                          f"renders_{key}: false says the format renders none: remove one of them", at[key][0])
            continue
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
    if not no_list:
        kw.update(_list_fields(st, examples("list", (1, 2)), system_prefix, keep_default_system, placement,
                               system_sep_if, default_system, list_block_suffix))
    if not no_calls:
        kw.update(_call_fields(examples("calls", (2,))))
        id_suffix = value.get("call_id_suffix")
        if isinstance(id_suffix, str) and id_suffix:  # the head of the text the examples show after {ID}
            if not kw["call_id_after"] or not kw["call_suffix"].startswith(id_suffix):
                raise err(f"tools.call_id_suffix ({id_suffix!r}) is the head of the text after an {{ID}} that "
                          f"follows {{ARGUMENTS}} in the calls examples (there: {kw['call_suffix']!r})",
                          at["call_id_suffix"][1])
            kw["call_suffix"] = kw["call_suffix"][len(id_suffix):]
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
    if tf.call_id_after and (tf.per_argument or tf.call_index_prefix is not None):
        raise ValueError("examples show an {ID} after {ARGUMENTS} only for arguments as one JSON object and calls "
                         "without an {INDEX}: this format is written in the field form")
    e = escape

    def literal(frag: Fragment, what: str) -> str:
        if not all(isinstance(p, Text) for p in frag):
            raise ValueError(f"examples need a {what} of literal text")
        return "".join(p.value for p in frag)

    def items(ph: str, before: str, after: str) -> str:
        return e(before) + ph + e(after)

    item = items("{TOOL}", tf.item_prefix, tf.item_suffix)
    tools = e(tf.list_prefix) + ("{TOOLS}" if tf.list_json else item + e(tf.item_sep) + item) + e(tf.list_suffix)
    lists: list[str] = []
    if tf.placement in ("first_user", "last_user"):
        if sb is not None and sb.placement != "standalone":
            raise ValueError("examples of a list in a user turn need a standalone system block or none")
        user = e(literal(st.user.prefix, "user turn prefix"))
        end = "{INPUT}" + e(literal(st.user.suffix, "user turn suffix"))
        lists = [user + tools + end if tf.placement == "first_user" else tools + user + end]
    elif tf.placement in ("after_system", "start"):
        lists = [tools]
    elif tf.renders_list:
        if sb is None:
            raise ValueError("examples of a list in the system block need a system block")
        prefix = literal(sb.prefix if tf.system_prefix is None else tf.system_prefix, "system block prefix")
        suffix = literal(sb.suffix, "system block suffix")

        own = None if tf.list_block_suffix is None else literal(tf.list_block_suffix, "list_block_suffix")

        def block(with_system: bool) -> str:
            if tf.list_first:
                return e(prefix) + tools + (e(tf.system_sep) + "{SYSTEM}" if with_system else "") + e(suffix)
            head = "{SYSTEM}" + e(tf.system_sep) if with_system else ""
            return e(prefix) + head + tools + e(suffix if with_system or own is None else own)

        always = (tf.default_system is not None or sb.default is not None and tf.keep_default_system) and own is None
        lists = [block(True)] if always and tf.system_sep_if == "message" else [block(True), block(False)]
    the_id = "" if tf.call_id_prefix is None else e(tf.call_id_prefix) + "{ID}"
    after_args = the_id + e(tf.call_id_suffix) if tf.call_id_after else ""
    cid = ("" if tf.call_id_after else the_id) + (
        "" if tf.call_index_prefix is None else e(tf.call_index_prefix) + "{INDEX}")
    if tf.per_argument:
        arg = e(tf.arg_prefix) + "{KEY}" + e(tf.arg_middle) + "{VALUE}" + e(tf.arg_suffix)
        call = (items("{NAME}", tf.call_prefix, "") + cid + e(tf.call_middle) + arg + e(tf.arg_sep) + arg
                + e(tf.call_suffix))
        one = items("{NAME}", tf.call_prefix, "") + cid + e(tf.call_middle) + e(tf.no_arguments) + e(tf.call_suffix)
    else:
        call = one = (items("{NAME}", tf.call_prefix, "") + cid + e(tf.call_middle) + "{ARGUMENTS}" + after_args
                      + e(tf.call_suffix))
    rid = "" if tf.result_id_suffix is None else "{ID}" + e(tf.result_id_suffix)
    result = e(tf.result_prefix) + rid + "{RESULT}" + e(tf.result_suffix)
    run = (e(tf.results_open) + result + e(tf.result_sep) + result + e(tf.results_close) if tf.grouped
           else (e(tf.results_open) + result + e(tf.results_close)) * 2)
    declared = {k: v for k, v in (tools_data(st) or {}).items() if k in DECLARED_KEYS}
    if declared.get("placement") == "first_user":  # {INPUT} in the list example shows it
        del declared["placement"]
    out: dict[str, Any] = {k: declared.pop(k) for k in ("final_scope", "placement", "system_prefix") if k in declared}
    out["json"] = tf.json.dumps(PROBE)
    if tf.call_json is not None:
        out["call_json"] = tf.call_json.dumps(PROBE)
    if tf.renders_list:
        out["list"] = lists
    if tf.renders_calls:
        out["calls"] = ["{OUTPUT}" + e(tf.content_sep) + e(tf.calls_open) + call + e(tf.call_sep) + call
                        + e(tf.calls_close), e(tf.calls_open) + one + e(tf.calls_close)]
    out["results"] = run
    out.update(declared)
    return out
