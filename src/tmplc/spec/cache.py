"""A cache of compiled spec files: a YAML spec file's ChatFormat as the lossless JSON IR.

Compiling a registry entry (YAML, then the Lark parse and the structure recovery) costs more than
everything else ``tmplc compile`` does; the result is a pure function of the file's bytes, its
path and the compiler's own sources, so it is cached under :func:`tmplc.resources.cache_dir`
(``spec-cache/``), keyed by a hash of all of them.  A cache that cannot be read or written is
ignored (it is a cache: the file is compiled instead).  Every write goes to a temp name in the
same folder and is renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from tmplc.ir import ChatFormat

_HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def _compiler_digest() -> bytes:
    """A hash of what compiles a spec file: the grammar and the spec, IR and serialisation code."""
    from tmplc.resources import grammar_path

    h = hashlib.sha256()
    for p in [grammar_path(), *sorted(_HERE.glob("*.py")), _HERE.parent / "ir.py",
              _HERE.parent / "targets" / "json_ir.py"]:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.digest()


def _entry(path: Path, data: bytes) -> Path:
    from tmplc.resources import cache_dir

    h = hashlib.sha256(_compiler_digest() + str(path).encode("utf-8", "surrogateescape") + b"\0" + data)
    return cache_dir() / "spec-cache" / (h.hexdigest()[:32] + ".json")


def load_cached(path: str | Path) -> ChatFormat:
    """``tmplc.spec.files.load_spec_file(path)``, from the cache when it holds this file's result."""
    from tmplc.targets.json_ir import from_dict

    path = Path(path)
    try:
        data = path.read_bytes()
        entry = _entry(path, data)
        return from_dict(json.loads(entry.read_text(encoding="utf-8")))
    except Exception:  # no entry yet, or an unreadable one: compile
        pass
    from tmplc.spec.files import load_spec_file
    from tmplc.targets.json_ir import to_dict

    fmt = load_spec_file(path)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(to_dict(fmt), f, ensure_ascii=False)
        os.replace(tmp, entry)
    except Exception:  # a read-only or missing cache folder: nothing cached
        try:
            os.unlink(tmp)
        except Exception:
            pass
    return fmt
