"""The template registry: templates/*.yaml, looked up by name or alias (case-insensitive)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from tmplc.errors import RegistryError
from tmplc.ir import ChatFormat
from tmplc.resources import templates_dir


class Registry(Mapping[str, ChatFormat]):
    """Read-only mapping ``name -> ChatFormat`` over templates/; iterating gives the names.

    ``registry.get_format(name_or_alias)`` also resolves aliases (model ids and families).
    """

    def _paths(self) -> dict[str, Path]:
        return _paths()

    def __getitem__(self, name: str) -> ChatFormat:
        p = self._paths().get(name)
        if p is None:
            raise KeyError(name)
        return _load(p)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._paths()))

    def __len__(self) -> int:
        return len(self._paths())

    def names(self) -> list[str]:
        return list(self)

    def resolve(self, name_or_alias: str) -> str | None:
        """The entry name for a name or alias, or None."""
        key = name_or_alias.strip().lower()
        if key in self._paths():
            return key
        return _aliases().get(key)

    def get_format(self, name_or_alias: str) -> ChatFormat:
        """Look up by name or alias; RegistryError lists close names when nothing matches."""
        name = self.resolve(name_or_alias)
        if name is None:
            import difflib

            close = difflib.get_close_matches(name_or_alias.lower(), list(self) + list(_aliases()), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise RegistryError(f"no registry entry or alias {name_or_alias!r}{hint}; `tmplc list` shows them")
        return self[name]


@lru_cache(maxsize=1)
def _paths() -> dict[str, Path]:
    return {p.stem: p for p in sorted(templates_dir().glob("*.yaml"))}


@lru_cache(maxsize=None)
def _load(path: Path) -> ChatFormat:
    from tmplc.spec.cache import load_cached

    return load_cached(path)


@lru_cache(maxsize=1)
def _aliases() -> dict[str, str]:
    out: dict[str, str] = {}
    for name, path in _paths().items():
        for alias in _load(path).meta.aliases:
            out.setdefault(alias.lower(), name)
    return out


registry = Registry()
