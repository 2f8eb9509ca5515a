"""Read HF safetensors checkpoints lazily: parse each file's header, memory-map it, and hand out
one tensor at a time as float32 (F32/F16/BF16 sources; bf16 is widened bit-exactly).

Nothing is loaded up front.  :meth:`Checkpoint.read_rows` reads a slice of rows with ``pread``
into a fresh buffer (no mapping stays resident, so the page cache is not counted in the
process's RSS), which lets a pass over the weights hold a few row chunks instead of whole
tensors; :meth:`Checkpoint.raw` memory-maps (for the few rows the doctor samples).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tmplc.export.errors import ExportInputError, ExportRefused

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives: file, dtype (safetensors name), shape, byte range in the data block."""

    name: str
    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int
    data_offset: int  # where the file's data block starts


def _header(path: Path) -> tuple[dict, int]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                raise ExportInputError(f"{path}: not a safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", raw)
            if n > 100 * 1024 * 1024:
                raise ExportInputError(f"{path}: not a safetensors file (header length {n})")
            header = json.loads(fh.read(n))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ExportInputError(f"{path}: cannot read the safetensors header: {exc}") from exc
    return header, 8 + n


class Checkpoint:
    """All tensors of a model folder (``model.safetensors`` or a sharded index), read lazily."""

    def __init__(self, files: list[Path]) -> None:
        self.entries: dict[str, TensorEntry] = {}
        self._maps: dict[Path, np.memmap] = {}
        self._fds: dict[Path, int] = {}
        for f in files:
            header, data_offset = _header(f)
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                if name in self.entries:
                    raise ExportInputError(f"{f}: tensor {name!r} is also in {self.entries[name].file}")
                start, end = info["data_offsets"]
                self.entries[name] = TensorEntry(name, f, info["dtype"], tuple(info["shape"]), start, end,
                                                 data_offset)

    @classmethod
    def from_folder(cls, folder: Path, stem: str = "model") -> "Checkpoint":
        """``<stem>.safetensors``, or the shards listed by ``<stem>.safetensors.index.json``."""
        single = folder / f"{stem}.safetensors"
        index = folder / f"{stem}.safetensors.index.json"
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (OSError, ValueError, KeyError) as exc:
                raise ExportInputError(f"{index}: cannot read the shard index: {exc}") from exc
            files = sorted({folder / v for v in weight_map.values()})
        elif single.is_file():
            files = [single]
        else:
            found = sorted(p.name for p in folder.glob("*.safetensors"))
            if found and stem == "model":
                files = [folder / n for n in found]
            else:
                bins = sorted(p.name for p in folder.glob("*.bin"))
                hint = (" (found PyTorch .bin files: save the model with safe_serialization=True)" if bins else "")
                raise ExportInputError(f"{folder}: no {stem}.safetensors or {stem}.safetensors.index.json{hint}")
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ExportInputError(f"{index}: lists shard files that do not exist: {', '.join(missing)}")
        return cls(files)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        return list(self.entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name].shape

    def dtype(self, name: str) -> str:
        return self.entries[name].dtype

    def raw(self, name: str) -> np.ndarray:
        """The tensor in its stored dtype (bf16 as uint16 bit patterns), memory-mapped."""
        e = self.entries[name]
        dt = self._check(e)
        mm = self._maps.get(e.file)
        if mm is None:
            mm = self._maps[e.file] = np.memmap(e.file, dtype=np.uint8, mode="r")
        buf = mm[e.data_offset + e.start:e.data_offset + e.end]
        if buf.size != e.end - e.start:
            raise ExportInputError(f"{e.file}: tensor {name!r} ends early: the file is truncated or corrupt")
        return buf.view(dt).reshape(e.shape)

    def _check(self, e: TensorEntry) -> np.dtype:
        if e.dtype not in _DTYPES:
            raise ExportRefused(f"{e.file}: tensor {e.name!r} has dtype {e.dtype}; tmplc exports F32, F16 and "
                                "BF16 checkpoints only")
        dt = np.dtype(_DTYPES[e.dtype]).newbyteorder("<")
        count = int(np.prod(e.shape, dtype=np.int64)) if e.shape else 1
        if e.end - e.start != count * dt.itemsize:
            raise ExportInputError(f"{e.file}: tensor {e.name!r} has {e.end - e.start} bytes for shape "
                                   f"{list(e.shape)} and dtype {e.dtype}: the file is truncated or corrupt")
        return dt

    def read_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` of the first axis (a 0-/1-D tensor is one row of shape
        ``(1, n)``), in the stored dtype (bf16 as uint16 bit patterns), read into a new array."""
        e = self.entries[name]
        dt = self._check(e)
        shape = e.shape if len(e.shape) >= 2 else (1, int(np.prod(e.shape, dtype=np.int64)))
        row = int(np.prod(shape[1:], dtype=np.int64)) * dt.itemsize
        out = np.empty((stop - start, *shape[1:]), dtype=dt)
        fd = self._fds.get(e.file)
        if fd is None:
            fd = self._fds[e.file] = os.open(e.file, os.O_RDONLY)
        view, pos, done = memoryview(out.reshape(-1).view(np.uint8)), e.data_offset + e.start + start * row, 0
        while done < len(view):
            n = os.preadv(fd, [view[done:]], pos + done)
            if n <= 0:
                raise ExportInputError(f"{e.file}: tensor {name!r} ends early: the file is truncated or corrupt")
            done += n
        return out

    def read(self, name: str) -> np.ndarray:
        """The tensor as a new float32 array (bf16 widened exactly: its 16 bits are the top of an f32)."""
        e = self.entries[name]
        rows = e.shape[0] if len(e.shape) >= 2 else 1
        return widen(self.read_rows(name, 0, rows), e.dtype).reshape(e.shape)

    def close(self) -> None:
        self._maps.clear()
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)


def widen(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Stored values (``dtype``: the safetensors name) as a new float32 array; bf16 exactly."""
    if dtype == "BF16":
        out = np.empty(raw.shape, dtype=np.float32)
        bits = out.view(np.uint32)
        bits[...] = raw
        bits <<= 16
        return out
    return np.array(raw, dtype=np.float32)
