"""Read HF safetensors checkpoints lazily: parse each file's header, memory-map it, and hand out
one tensor at a time as float32 (F32/F16/BF16 sources; bf16 is widened bit-exactly).

Nothing is loaded up front: :meth:`Checkpoint.read` maps the bytes of one tensor only, so a pass
over the weights holds one tensor (plus its float32 copy) at a time.
"""

from __future__ import annotations

import json
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
        if e.dtype not in _DTYPES:
            raise ExportRefused(f"{e.file}: tensor {name!r} has dtype {e.dtype}; tmplc exports F32, F16 and "
                                "BF16 checkpoints only")
        mm = self._maps.get(e.file)
        if mm is None:
            mm = self._maps[e.file] = np.memmap(e.file, dtype=np.uint8, mode="r")
        dt = np.dtype(_DTYPES[e.dtype]).newbyteorder("<")
        count = int(np.prod(e.shape, dtype=np.int64)) if e.shape else 1
        buf = mm[e.data_offset + e.start:e.data_offset + e.end]
        if buf.size != count * dt.itemsize:
            raise ExportInputError(f"{e.file}: tensor {name!r} has {buf.size} bytes for shape {list(e.shape)} "
                                   f"and dtype {e.dtype}: the file is truncated or corrupt")
        return buf.view(dt).reshape(e.shape)

    def read(self, name: str) -> np.ndarray:
        """The tensor as a new float32 array (bf16 widened exactly: its 16 bits are the top of an f32)."""
        e = self.entries[name]
        arr = self.raw(name)
        if e.dtype == "BF16":
            out = np.empty(arr.shape, dtype=np.float32)
            out.view(np.uint32)[...] = arr.astype(np.uint32) << 16
            return out
        return np.array(arr, dtype=np.float32)

    def close(self) -> None:
        self._maps.clear()
