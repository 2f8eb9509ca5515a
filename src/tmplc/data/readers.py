"""Readers: JSONL, JSON, CSV, Parquet files, and ``datasets.Dataset`` objects -> list of row dicts.

* JSONL: one JSON object per non-blank line (blank lines are skipped and are not rows).  A line
  that is not valid JSON raises (``on_error="raise"``) or becomes a rejected row (``"skip"``):
  rows are returned as dicts, and a bad line as ``BadRow(reason)``.
* JSON: a list of objects, or an object holding one such list (``{"data": [...]}``, any key).
* CSV: the header names the columns; every value is a string ("" for an empty cell).
* Parquet: through pyarrow (``pip install pyarrow``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tmplc.errors import MessageError, TmplcError


@dataclass(frozen=True)
class BadRow:
    """A row that could not even be read (kept in place so that row numbers stay true)."""

    reason: str


def read_rows(source: Any, *, fmt: str | None = None, on_error: str = "skip") -> list:
    """Rows as dicts (or BadRow) from a path or a ``datasets.Dataset`` / list of dicts."""
    if isinstance(source, list):
        return source
    if hasattr(source, "column_names") and hasattr(source, "to_list"):  # datasets.Dataset
        return source.to_list()
    path = Path(source)
    if not path.is_file():
        raise TmplcError(f"{path}: no such file")
    kind = (fmt or path.suffix.lstrip(".")).lower()
    if kind in ("jsonl", "ndjson"):
        return _jsonl(path, on_error)
    if kind == "json":
        return _json(path)
    if kind in ("csv", "tsv"):
        with path.open(newline="", encoding="utf-8") as f:
            return [dict(r) for r in csv.DictReader(f, delimiter="\t" if kind == "tsv" else ",")]
    if kind in ("parquet", "pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:  # pragma: no cover
            raise TmplcError("reading Parquet needs pyarrow: pip install pyarrow") from None
        return pq.read_table(path).to_pylist()
    raise TmplcError(f"{path}: unknown data format {kind!r} (jsonl, json, csv, parquet)")


def _jsonl(path: Path, on_error: str) -> list:
    rows: list = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                reason = f"{path}:{n}:{e.colno}: invalid JSON: {e.msg}"
                if on_error == "raise":
                    raise MessageError(None, reason, row=len(rows)) from None
                rows.append(BadRow(reason))
                continue
            rows.append(item)
    return rows


def _json(path: Path) -> list:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TmplcError(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise TmplcError(f"{path}: a JSON file must hold a list of rows, or an object with one list")
        data = lists[0]
    if not isinstance(data, list):
        raise TmplcError(f"{path}: a JSON file must hold a list of rows")
    return data
