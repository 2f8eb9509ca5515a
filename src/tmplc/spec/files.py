"""Spec sources: spec text, plain spec files and YAML spec files (the registry's format).

A YAML spec file is a mapping with ``spec`` (the two-repetition text; use a ``|`` block scalar,
``|-`` when the spec must not end with a newline) and optional metadata: ``name``,
``description``, ``aliases``, ``bos_token``, ``eos_token``, ``eot_token``, ``stop``,
``default_system`` and ``notes``; ``tools`` declares the format's tool rendering
(:mod:`tmplc.spec.tools`).  Errors in the spec are reported at their line and column
in the YAML file.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tmplc.errors import SpecError
from tmplc.ir import ChatFormat, Metadata, Structure

if TYPE_CHECKING:  # pragma: no cover
    import yaml

#: the largest spec file read (the registry's are under 2 KB)
MAX_SPEC_FILE_BYTES = 64 << 20
META_KEYS = ("name", "description", "aliases", "bos_token", "eos_token", "eot_token", "stop",
             "default_system", "notes")


def parse_structure(text: str) -> Structure:
    """Spec text -> layout (no metadata)."""
    from tmplc.spec.parse import parse_atoms  # the parser (Lark) only when a spec is parsed
    from tmplc.spec.structure import recover_structure

    return recover_structure(parse_atoms(text), text)


def parse_spec(text: str, *, name: str = "custom", **meta: Any) -> ChatFormat:
    """Parse two-repetition spec text into a ChatFormat.  ``meta`` may set any metadata field
    (``bos_token=``, ``eos_token=``, ``eot_token=``, ``stop=``, ``description=``, ...) and
    ``default_system=``.  Raises SpecError with line, column and caret."""
    st = parse_structure(text)
    default_system = meta.pop("default_system", None)
    st = _apply_default_system(st, default_system, None)
    for key in ("aliases", "stop"):
        if key in meta and meta[key] is not None:
            meta[key] = tuple(meta[key])
    return ChatFormat(st, Metadata(name=name, **{k: v for k, v in meta.items() if v is not None}))


def _apply_default_system(st: Structure, default: str | None, err_at) -> Structure:
    if default is None:
        return st
    if st.system is None:
        raise err_at("default_system is set but the spec has no {SYSTEM} placeholder") if err_at else \
            SpecError("default_system is set but the spec has no {SYSTEM} placeholder")
    if st.system.default is not None and st.system.default != default:
        msg = "the default system message is given twice ({SYSTEM=...} and default_system) and they differ"
        raise err_at(msg) if err_at else SpecError(msg)
    return replace(st, system=replace(st.system, default=default))


def _node_for(root: "yaml.Node", key: str) -> "tuple[yaml.Node, yaml.Node] | None":
    import yaml

    if isinstance(root, yaml.MappingNode):
        for k, v in root.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return k, v
    return None


def _duplicate_key(root: "yaml.Node") -> "tuple[yaml.Node, yaml.Node] | None":
    """The first key that a mapping of ``root`` (at any depth) repeats: (first, repeated) key nodes."""
    import yaml

    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in seen:
                        return seen[k.value], k
                    seen[k.value] = k
                stack.append(v)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return None


def load_spec_file(path: str | Path) -> ChatFormat:
    """Load a plain spec file or a YAML spec file (``.yaml``/``.yml``)."""
    from tmplc.fileio import read_text

    path = Path(path)
    raw = read_text(path, what="spec file", max_bytes=MAX_SPEC_FILE_BYTES)  # UTF-8 (BOM ok), else InputError
    filename = str(path)
    if path.suffix not in (".yaml", ".yml"):
        try:
            fmt = parse_spec(raw, name=path.stem)
        except SpecError as e:
            raise e.relocated(filename) from None
        return fmt.with_meta(source=filename)
    return load_yaml_spec(raw, filename)


def _compose_and_load(raw: str) -> "tuple[yaml.Node | None, Any]":
    """The YAML's node tree (for positions) and its data, from one parse with libyaml when PyYAML
    has it (a 10 MB spec file in a fraction of a second instead of two pure-Python parses of
    seconds each); invalid YAML is parsed again by PyYAML's own parser, whose errors say more."""
    import yaml

    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return _load_with(fast, raw)
        except yaml.YAMLError:
            pass
    return _load_with(yaml.SafeLoader, raw)


def _load_with(loader_class, raw: str):
    loader = loader_class(raw)
    try:
        root = loader.get_single_node()
        return root, (loader.construct_document(root) if root is not None else None)
    finally:
        loader.dispose()


def load_yaml_spec(raw: str, filename: str = "<yaml>") -> ChatFormat:
    """Parse a YAML spec file's text (see the module docstring for its keys)."""
    import yaml

    raw_lines = raw.split("\n")

    def err(msg: str, node: "yaml.Node | None") -> SpecError:
        line = node.start_mark.line + 1 if node is not None else 1
        col = node.start_mark.column + 1 if node is not None else 1
        src = raw_lines[line - 1] if line <= len(raw_lines) else None
        return SpecError(msg, line, col, src, filename)

    try:
        root, data = _compose_and_load(raw)
    except RecursionError:
        raise SpecError(f"the YAML nests deeper than the parser can follow; a spec file is a flat mapping "
                        f"of {', '.join(('spec',) + META_KEYS)}", 1, 1, raw_lines[0][:200], filename) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        src = raw_lines[line - 1] if line <= len(raw_lines) else None
        raise SpecError(f"invalid YAML: {getattr(e, 'problem', e)}", line, col, src, filename) from None
    if not isinstance(data, dict):
        raise err("a YAML spec file is a mapping with a 'spec' key and optional metadata", root)
    dup = _duplicate_key(root)
    if dup is not None:
        first, again = dup
        raise err(f"duplicate key {again.value!r} (first at line {first.start_mark.line + 1}): YAML would "
                  "silently keep only the last one; remove one of them", again)
    for k, _ in root.value:
        if k.value not in META_KEYS and k.value not in ("spec", "tools"):
            raise err(f"unknown key {k.value!r}; known keys: spec, " + ", ".join(META_KEYS), k)
    kv = _node_for(root, "spec")
    if kv is None or not isinstance(data.get("spec"), str):
        raise err("missing 'spec': the two-repetition spec text (use a '|' block scalar)", root)
    spec_node = kv[1]
    text = data["spec"]
    for key in ("name", "description", "bos_token", "eos_token", "eot_token", "notes", "default_system"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            raise err(f"{key!r} must be a string", _node_for(root, key)[1])
    for key in ("aliases", "stop"):
        if key in data and not (isinstance(data[key], list) and all(isinstance(x, str) for x in data[key])):
            raise err(f"{key!r} must be a list of strings", _node_for(root, key)[1])
    def in_scalar(e: SpecError, node: "yaml.Node", key: str) -> SpecError:
        """``e``, raised in the text of the YAML string ``node`` (under ``key``), at its place in the file."""
        if node.style == "|":
            first = node.start_mark.line + 1  # 0-based index of the first content line
            indent = 0
            for ln in raw_lines[first:]:
                if ln.strip():
                    indent = len(ln) - len(ln.lstrip(" "))
                    break
            line = first + e.line
            src = raw_lines[line - 1] if line <= len(raw_lines) else None
            return e.relocated(filename, line_offset=first, column_offset=indent, source_line=src)
        return SpecError(f"in {key!r} (line {e.line}, column {e.column} of its text): {e.message}",
                         node.start_mark.line + 1, node.start_mark.column + 1,
                         raw_lines[node.start_mark.line], filename)

    try:
        st = parse_structure(text)
    except SpecError as e:
        raise in_scalar(e, spec_node, "spec") from None
    st = _apply_default_system(st, data.get("default_system"),
                               lambda m: err(m, (_node_for(root, "default_system") or (None, root))[1]))
    if "tools" in data:  # the format's tool rendering (tmplc.spec.tools, docs/tools.md)
        from tmplc.spec.tools import apply_tools

        st = apply_tools(st, _node_for(root, "tools")[1], data["tools"], err, in_scalar)
    meta = Metadata(
        name=data.get("name") or Path(filename).stem,
        description=data.get("description") or "",
        aliases=tuple(data.get("aliases") or ()),
        bos_token=data.get("bos_token"),
        eos_token=data.get("eos_token"),
        eot_token=data.get("eot_token"),
        stop=tuple(data.get("stop") or ()),
        notes=data.get("notes") or "",
        source=filename,
    )
    if st.uses("BOS") and meta.bos_token is None:
        raise err("the spec uses {BOS} but bos_token is not set", kv[0])
    if st.uses("EOS") and meta.eos_token is None:
        raise err("the spec uses {EOS} but eos_token is not set", kv[0])
    return ChatFormat(st, meta)
