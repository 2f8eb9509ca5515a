"""Training data: rows -> conversations -> tmplc's formatter -> token arrays, cached on disk.

``prepare(cfg, fmt, tokenizer)`` returns ``Tokenized``: every kept conversation's ``input_ids``
and ``labels`` (tmplc's exact masks) as one flat int32 array each plus offsets, and the
formatter's summary (rows in = rows out + rows rejected, with reasons).

The cache key hashes the data (file bytes, or the rows given to the API), the format
(``fmt.to_yaml()``), the tokenizer (its tokenizer.json and special tokens) and every option that
changes the result (policy, max_seq_length, truncation, special-token mode, backend, row shape
options, tmplc's version), so a second run with the same inputs loads arrays instead of
re-tokenizing, and any change re-tokenizes.  Entries are written to a temporary folder and
renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tmplc.train.config import TrainConfig, TrainError

CACHE_VERSION = "2"  # 2: rows' tools column is read


@dataclass
class Tokenized:
    """Formatted conversations: ``ids[offsets[i]:offsets[i+1]]`` is conversation ``i``."""

    ids: np.ndarray
    labels: np.ndarray
    offsets: np.ndarray
    summary: dict = field(default_factory=dict)
    cache_hit: bool = False
    key: str = ""

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def doc(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.ids[a:b], self.labels[a:b]

    @classmethod
    def from_rows(cls, input_ids: list, labels: list, summary: dict | None = None) -> "Tokenized":
        lens = np.fromiter((len(x) for x in input_ids), dtype=np.int64, count=len(input_ids))
        offsets = np.zeros(len(input_ids) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        ids = np.fromiter((t for x in input_ids for t in x), dtype=np.int32, count=int(offsets[-1]))
        lab = np.fromiter((t for x in labels for t in x), dtype=np.int32, count=int(offsets[-1]))
        return cls(ids, lab, offsets, summary or {})


def _hash_data(data: Any) -> str:
    h = hashlib.sha256()
    if isinstance(data, (str, os.PathLike)):
        p = Path(data)
        if not p.is_file():
            raise TrainError(f"--data {data}: no such file")
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    else:
        h.update(json.dumps(list(data), sort_keys=True, ensure_ascii=False, default=str).encode())
    return h.hexdigest()


def cache_key(cfg: TrainConfig, fmt, tokenizer) -> str:
    """Hash of data + format + tokenizer + formatting options (see the module docstring)."""
    from tmplc import __version__
    from tmplc.formatter import tokenizer_info

    parts = tokenizer_info(tokenizer).parts()
    h = hashlib.sha256()
    for piece in (
        CACHE_VERSION, __version__, _hash_data(cfg.data), fmt.to_yaml(), json.dumps(parts, default=str),
        json.dumps({k: getattr(cfg, k) for k in ("policy", "max_seq_length", "truncation", "special_tokens",
                                                 "backend", "source", "merged_prompt", "output_column",
                                                 "default_system")}, sort_keys=True),
    ):
        h.update(piece.encode() if isinstance(piece, str) else piece)
        h.update(b"\0")
    return h.hexdigest()[:32]


def default_cache_dir() -> Path:
    return Path(os.environ.get("TMPLC_CACHE", Path.home() / ".cache" / "tmplc")) / "train-data"


def _load(d: Path) -> Tokenized | None:
    try:
        ids = np.load(d / "input_ids.npy")
        lab = np.load(d / "labels.npy")
        off = np.load(d / "offsets.npy")
        summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return Tokenized(ids, lab, off, summary, cache_hit=True, key=d.name)


def _store(root: Path, key: str, t: Tokenized) -> None:
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        np.save(tmp / "input_ids.npy", t.ids)
        np.save(tmp / "labels.npy", t.labels)
        np.save(tmp / "offsets.npy", t.offsets)
        (tmp / "summary.json").write_text(json.dumps(t.summary, indent=1, ensure_ascii=False), encoding="utf-8")
        try:
            os.rename(tmp, root / key)
        except OSError:  # another process stored it first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def conversations(cfg: TrainConfig) -> tuple[list, list, Any, list]:
    """(row numbers, conversations, normalize report, tools) from the data file or rows; ``tools``:
    per conversation, its row's tool definitions (the ``tools`` column, ``row_tools``) or None.  A
    row whose tools column is unusable is rejected in the report."""
    from tmplc.data import normalize_rows, read_rows, row_tools
    from tmplc.data.merged import RowProblem

    rows = read_rows(cfg.data, on_error="skip") if isinstance(cfg.data, (str, os.PathLike)) else list(cfg.data)
    convs, report = normalize_rows(rows, source=cfg.source, merged_prompt=cfg.merged_prompt,
                                   output_column=cfg.output_column, default_system=cfg.default_system,
                                   on_error="skip")
    numbers, kept, tools = [], [], []
    for n, m in convs:
        try:
            t = row_tools(rows[n])
        except RowProblem as e:
            report.reject(n, str(e))
            report.rows_out -= 1
            continue
        numbers.append(n)
        kept.append(m)
        tools.append(t)
    return numbers, kept, report, tools


def _with_tools(convs: list, tools: list) -> list:
    """The conversations as rows (``messages`` + ``tools``) when some have tools, else as they are."""
    if all(t is None for t in tools):
        return convs
    return [{"messages": m, "tools": t} for m, t in zip(convs, tools)]


def format_rows(cfg: TrainConfig, fmt, tokenizer) -> Tokenized:
    """Tokenize with tmplc's formatter (datasets.map with num_proc, or Ray Data with cfg.ray)."""
    from tmplc.formatter import FormatterWarning, format_dataset, get_policy

    rows, convs, nrep, tools = conversations(cfg)
    has_tools = any(t is not None for t in tools)
    policy = get_policy(cfg.policy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FormatterWarning)  # listed in the summary instead
        if cfg.ray:
            from tmplc.train.ray_data import format_with_ray

            out, summary = format_with_ray(fmt, convs, rows, tokenizer, cfg, tools=tools if has_tools else None)
        elif cfg.num_proc and cfg.num_proc > 1:
            import datasets

            cols = {"messages": convs, "tmplc_row": rows}
            if has_tools:  # as JSON text: rows' tool lists need not share one Arrow schema
                cols["tools"] = [json.dumps(t, ensure_ascii=False) if t is not None else None for t in tools]
            ds = datasets.Dataset.from_dict(cols)
            out, summary = format_dataset(fmt, ds, tokenizer, policy=policy, max_seq_length=cfg.max_seq_length,
                                          truncation=cfg.truncation, special_tokens=cfg.special_tokens,
                                          backend=cfg.backend, num_proc=cfg.num_proc, row_column="tmplc_row")
            out = [{"input_ids": a, "labels": b} for a, b in zip(out["input_ids"], out["labels"])]
        else:
            out, summary = format_dataset(fmt, _with_tools(convs, tools), tokenizer, policy=policy,
                                          max_seq_length=cfg.max_seq_length, truncation=cfg.truncation,
                                          special_tokens=cfg.special_tokens, backend=cfg.backend,
                                          row_column="tmplc_row")
    summary.rows_in += nrep.rows_rejected
    summary.invalid.update(nrep.rejected)
    summary.check()
    if not out:
        raise TrainError(f"--data: no usable conversation after formatting\n{summary}")
    return Tokenized.from_rows([r["input_ids"] for r in out], [r["labels"] for r in out], summary.as_dict())


def prepare(cfg: TrainConfig, fmt, tokenizer) -> Tokenized:
    """Formatted data from the cache, or formatted now and stored."""
    key = cache_key(cfg, fmt, tokenizer)
    root = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    hit = _load(root / key)
    if hit is not None:
        return hit
    t = format_rows(cfg, fmt, tokenizer)
    t.key = key
    _store(root, key, t)
    return t
