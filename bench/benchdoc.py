"""Replace a bench's table in BENCHMARKS.md: the text between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->``, or a new section at the end (``heading`` and ``intro``) when it has none."""

from __future__ import annotations

import re
from pathlib import Path


def write_block(path: str | Path, name: str, text: str, heading: str, intro: str = "") -> None:
    path = Path(path)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text}\n{end}"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if start in old and end in old:
        new = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda m: block, old, flags=re.S)
    else:
        new = (old.rstrip() + "\n\n" if old else "# Benchmarks\n\n") + f"## {heading}\n\n{intro}" + block + "\n"
    path.write_text(new, encoding="utf-8")
    print(f"wrote {path}")
