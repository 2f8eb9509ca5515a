"""``tmplc.load``: one entry point for registry names, files and spec text."""

from __future__ import annotations

from pathlib import Path

from tmplc.errors import RegistryError
from tmplc.ir import ChatFormat


def load(source: str | Path) -> ChatFormat:
    """Load a format from a registry name or alias, a spec/YAML file path, or spec text.

    Spec text is recognised by containing ``{INPUT}``; anything else that is neither a
    registry entry nor an existing file raises RegistryError.
    """
    from tmplc.registry import registry
    from tmplc.spec.files import load_spec_file, parse_spec

    if isinstance(source, Path):
        return load_spec_file(source)
    if "{INPUT" in source or "{OUTPUT" in source:
        return parse_spec(source)
    name = registry.resolve(source)
    if name is not None:
        return registry[name]
    if Path(source).is_file():
        return load_spec_file(source)
    return registry.get_format(source)  # raises RegistryError with suggestions


__all__ = ["load", "RegistryError"]
