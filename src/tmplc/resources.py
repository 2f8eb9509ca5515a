"""Locate the data that ships with tmplc: grammars/ and templates/.

In a built wheel they live inside the package (``tmplc/grammars``, ``tmplc/templates``);
in a source checkout (editable install, or ``PYTHONPATH=src``) they are at the repository root.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

_PKG = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def data_dir(name: str) -> Path:
    """The directory ``grammars`` or ``templates``, from the installed package or the checkout."""
    for candidate in (_PKG / name, _PKG.parent.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"tmplc data directory {name!r} not found next to {_PKG}")


def grammar_path() -> Path:
    return data_dir("grammars") / "chat_spec.lark"


def templates_dir() -> Path:
    return data_dir("templates")


def cache_dir() -> Path:
    """tmplc's cache (built engines, fetched sources): ``$TMPLC_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/tmplc`` or ``~/.cache/tmplc``."""
    configured = os.environ.get("TMPLC_CACHE_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "tmplc"
