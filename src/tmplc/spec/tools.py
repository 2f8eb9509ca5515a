"""The ``tools:`` section of a YAML spec file: how a format renders tools, tool calls, tool
results, and which answers are final in tool conversations (``docs/tools.md``).

The two-repetition spec text shows text turns only; a format's tool rendering is declared beside
it, field by field (the fields of :class:`tmplc.ir.ToolFormat`), and validated here: every error
names the file, line and column of the offending key or value.

.. code-block:: yaml

    tools:
      final_scope: after_user_reasoning   # optional: Structure.final_scope for this format
      json: {indent: null, separators: [", ", ": "], sort_keys: false, ensure_ascii: false}
      system_sep: "\n\n"
      list_prefix: "# Tools\n..."
      item_prefix: "\n"
      ...
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, Callable

from tmplc.ir import FINAL_SCOPES, JsonStyle, Structure, ToolFormat

if TYPE_CHECKING:  # pragma: no cover
    import yaml

    from tmplc.errors import SpecError

#: the string fields of ToolFormat (each a YAML string)
TEXT_FIELDS = tuple(f.name for f in fields(ToolFormat) if f.type in ("str", str) and f.name != "placement")
#: string fields that may be absent (None: not set)
OPTIONAL_TEXT_FIELDS = tuple(f.name for f in fields(ToolFormat) if f.type in ("str | None", "Optional[str]"))
#: fragment fields (spec text in YAML: ``{DATE=...}``, ``{BOS}``, ``{EOS}``; ``{{``/``}}`` for braces)
FRAGMENT_FIELDS = tuple(f.name for f in fields(ToolFormat) if f.type in ("Fragment | None", "Optional[Fragment]"))
BOOL_FIELDS = tuple(f.name for f in fields(ToolFormat) if f.type in ("bool", bool))
INT_FIELDS = ("max_calls",)
JSON_FIELDS = ("json", "call_json")
KEYS = ("final_scope", "placement") + JSON_FIELDS + TEXT_FIELDS + OPTIONAL_TEXT_FIELDS + FRAGMENT_FIELDS + BOOL_FIELDS \
    + INT_FIELDS
JSON_KEYS = ("indent", "separators", "sort_keys", "ensure_ascii")


def _pairs(node: "yaml.Node") -> dict[str, tuple["yaml.Node", "yaml.Node"]]:
    return {k.value: (k, v) for k, v in node.value}


def apply_tools(st: Structure, node: "yaml.Node", value: Any,
                err: Callable[[str, "yaml.Node"], "SpecError"],
                in_scalar: Callable[["SpecError", "yaml.Node", str], "SpecError"] | None = None) -> Structure:
    """``st`` with the ``tools:`` section (``value``, read from YAML ``node``) applied: ToolFormat
    fields, or examples (:mod:`tmplc.spec.tools_example`).  ``err(msg, node)`` makes the SpecError
    at a node's line and column; ``in_scalar(e, node, key)`` moves an error in a YAML string's text
    to its place in the file."""
    import yaml

    from tmplc.spec import tools_example

    if not isinstance(value, dict) or not isinstance(node, yaml.MappingNode):
        raise err("'tools' must be a mapping of ToolFormat fields or examples (see docs/tools.md)", node)
    at = _pairs(node)
    by_example = tools_example.is_example_form(value)
    known = (tools_example.EXAMPLE_KEYS + tools_example.OPTIONAL_EXAMPLE_KEYS + tools_example.DECLARED_KEYS
             if by_example else KEYS)
    for key, (knode, _) in at.items():
        if key not in known:
            form = ("the by-example form: the examples show the other ToolFormat fields, which cannot be declared "
                    "beside them" if by_example else "the field form")
            raise err(f"unknown key {key!r} in 'tools' ({form}); known keys: {', '.join(known)}", knode)
    kw: dict[str, Any] = {}
    for key in FRAGMENT_FIELDS:
        if key in value:
            if not isinstance(value[key], str):
                raise err(f"tools.{key} must be a string (spec text: {{{{ and }}}} for braces, {{DATE=...}}, "
                          "{BOS}, {EOS})", at[key][1])
            kw[key] = _fragment(value[key], at[key][1], key, err, in_scalar)
    if by_example:
        kw.update(tools_example.tool_format_from_examples(
            st, node, value, err, in_scalar or (lambda e, n, k: err(f"in tools.{k}: {e.message}", n)),
            kw.get("system_prefix"), value.get("keep_default_system", True) is not False,
            value.get("placement") if isinstance(value.get("placement"), str) else None,
            value.get("system_sep_if") if isinstance(value.get("system_sep_if"), str) else "message",
            isinstance(value.get("default_system"), str), kw.get("list_block_suffix")))
        value = {k: v for k, v in value.items() if k in tools_example.DECLARED_KEYS}
    for key in TEXT_FIELDS + OPTIONAL_TEXT_FIELDS + ("placement",):
        if key in value:
            if not isinstance(value[key], str):
                raise err(f"tools.{key} must be a string", at[key][1])
            kw[key] = value[key]
    for key in BOOL_FIELDS:
        if key in value:
            if not isinstance(value[key], bool):
                raise err(f"tools.{key} must be true or false", at[key][1])
            kw[key] = value[key]
    for key in INT_FIELDS:
        if key in value:
            v = value[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise err(f"tools.{key} must be a non-negative integer", at[key][1])
            kw[key] = v
    for key in JSON_FIELDS:
        if key in value:
            kw[key] = _json_style(value[key], at[key][1], err, key)
    try:
        tf = ToolFormat(**kw)
    except ValueError as e:  # at the value of the key the message names first (else the section)
        named = sorted((str(e).find(k), k) for k in at if k in str(e))
        raise err(f"tools: {e}", at[named[0][1]][1] if named else node) from None
    scope = value.get("final_scope", st.final_scope)
    if scope not in FINAL_SCOPES:
        raise err(f"tools.final_scope must be one of {', '.join(FINAL_SCOPES)}, got {scope!r}",
                  at["final_scope"][1])
    try:
        return replace(st, tools=tf, final_scope=scope)
    except ValueError as e:
        raise err(f"tools: {e}", node) from None


def _json_style(value: Any, node: "yaml.Node", err, name: str = "json") -> JsonStyle:
    import yaml

    if not isinstance(value, dict) or not isinstance(node, yaml.MappingNode):
        raise err(f"tools.{name} must be a mapping of " + ", ".join(JSON_KEYS), node)
    at = _pairs(node)
    for key, (knode, _) in at.items():
        if key not in JSON_KEYS:
            raise err(f"unknown key {key!r} in tools.{name}; known keys: {', '.join(JSON_KEYS)}", knode)
    indent = value.get("indent")
    if indent is not None and (isinstance(indent, bool) or not isinstance(indent, int) or indent < 0):
        raise err(f"tools.{name}.indent must be null or a non-negative integer", at["indent"][1])
    seps = value.get("separators")
    if seps is not None and not (isinstance(seps, list) and len(seps) == 2 and all(isinstance(x, str) for x in seps)):
        raise err(f"tools.{name}.separators must be a list of two strings (item, key)", at["separators"][1])
    for key in ("sort_keys", "ensure_ascii"):
        if key in value and not isinstance(value[key], bool):
            raise err(f"tools.{name}.{key} must be true or false", at[key][1])
    return JsonStyle(indent=indent, separators=tuple(seps or ()), sort_keys=bool(value.get("sort_keys", False)),
                     ensure_ascii=bool(value.get("ensure_ascii", False)))


def _fragment(text: str, node: "yaml.Node", key: str, err, in_scalar) -> "Fragment":
    """A fragment field's spec text (literal text, ``{BOS}``, ``{EOS}``, ``{DATE=...}``)."""
    from tmplc.errors import SpecError
    from tmplc.spec.atoms import to_fragment
    from tmplc.spec.parse import parse_atoms
    from tmplc.spec.vocabulary import TEXT

    try:
        atoms = parse_atoms(text)
    except SpecError as e:
        raise (in_scalar(e, node, key) if in_scalar else err(f"in tools.{key}: {e.message}", node)) from None
    for a in atoms:
        if a.kind not in (TEXT, "BOS", "EOS", "DATE") or a.filters or (a.kind != "DATE" and a.default is not None):
            raise err(f"tools.{key} is literal text with {{BOS}}, {{EOS}} or {{DATE=...}}; {{{a.kind}}} does "
                      "not belong here", node)
    return to_fragment(atoms)


def tools_data(st: Structure) -> dict | None:
    """The ``tools:`` section that :func:`apply_tools` reads back to ``st``'s tools, or None."""
    tf = st.tools
    if tf is None:
        return None
    base = ToolFormat()
    out: dict[str, Any] = {}
    if st.final_scope == "after_user_reasoning":
        out["final_scope"] = st.final_scope
    for f in fields(ToolFormat):
        v = getattr(tf, f.name)
        if v == getattr(base, f.name):
            continue
        if f.name in FRAGMENT_FIELDS:
            from tmplc.spec.atoms import fragment_atoms, write

            out[f.name] = write(fragment_atoms(v))
            continue
        out[f.name] = v if not isinstance(v, JsonStyle) else {
            "indent": v.indent, "separators": list(v.separators), "sort_keys": v.sort_keys,
            "ensure_ascii": v.ensure_ascii}
    return out


def text_layout(st: Structure) -> Structure:
    """``st`` without what the ``tools:`` section declares (what the spec text itself shows)."""
    if st.tools is None:
        return st
    return replace(st, tools=None, final_scope="after_user" if st.final_scope == "after_user_reasoning"
                   else st.final_scope)
