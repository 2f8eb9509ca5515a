"""``fix(path, out, ...)``: repair the fixable findings into a new folder (never in place)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tmplc.doctor.findings import Report


def fix(path: str | Path, out: str | Path, template: Any = None, data: Any = None, *,
        max_seq_length: int | None = None, output_dir: str | Path | None = None, tokenizer: Any = None) -> Report:
    raise NotImplementedError("tmplc fix: in progress")
