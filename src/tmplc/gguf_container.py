"""The GGUF container: one reader (header, key/values, tensor infos, data offset) for every part
of tmplc that reads GGUF files (the doctor, ``tmplc gguf``, the exporter's checks), and a
key/value rewriter.

gguf-py's ``GGUFReader`` builds numpy views for every array element, which takes tens of seconds
on a 128k-token vocabulary; this reads the same structure sequentially in well under a second
(the test suite checks it returns what ``GGUFReader(...).fields[k].contents()`` returns).  The
format as gguf-py and llama.cpp write it: ``GGUF`` magic, version >= 2, little-endian; values
typed 0-12, arrays of any of them.

:func:`rewrite_kv` writes a copy of a GGUF with some keys changed or removed: the other
key/values and the tensor-info block are copied byte for byte, and the tensor data is copied
unchanged (same alignment, same relative offsets), so every tensor stays byte-identical.

A file that is not a readable GGUF raises :class:`GGUFError` (bad input: the CLI exits 2).
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection

from tmplc.errors import TmplcError


class GGUFError(TmplcError, ValueError):
    """Not a readable GGUF file (missing, bad magic, unsupported version, truncated, unknown value
    type).  The message names the file.  CLI exit 2 (bad input)."""

    exit_code = 2


UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
_SCALAR = {UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i", FLOAT32: "<f",
           BOOL: "<?", UINT64: "<Q", INT64: "<q", FLOAT64: "<d"}


@dataclass
class KV:
    key: str
    type: int
    value: Any
    raw: bytes  # the whole key/value record as stored


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order
    ggml_type: int
    offset: int  # relative to the data start


@dataclass
class GGUFFile:
    path: Path
    version: int
    kvs: dict[str, KV]
    tensors: list[TensorInfo]
    ti_raw: bytes
    alignment: int
    data_start: int

    def get(self, key: str, default: Any = None) -> Any:
        kv = self.kvs.get(key)
        return kv.value if kv is not None else default

    def values(self) -> dict[str, Any]:
        """key -> value of every key/value."""
        return {k: kv.value for k, kv in self.kvs.items()}

    def tensor(self, name: str) -> "TensorInfo | None":
        for t in self.tensors:
            if t.name == name:
                return t
        return None


class _Reader:
    """Sequential parsing over the file's bytes (memory-mapped)."""

    def __init__(self, buf, name: str) -> None:
        self.buf = buf
        self.pos = 0
        self.name = name

    def read(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise GGUFError(f"{self.name}: truncated GGUF file")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt: str) -> Any:
        try:
            v = struct.unpack_from(fmt, self.buf, self.pos)[0]
        except struct.error:
            raise GGUFError(f"{self.name}: truncated GGUF file") from None
        self.pos += struct.calcsize(fmt)
        return v

    def string(self) -> str:
        n = self.unpack("<Q")
        return self.read(n).decode("utf-8", "surrogateescape")

    def skip(self, t: int) -> None:
        """Move past a value without decoding it."""
        if t == ARRAY:
            it = self.unpack("<I")
            n = self.unpack("<Q")
            if it in _SCALAR:
                self.read(struct.calcsize(_SCALAR[it]) * n)
                return
            if it == STRING:
                buf, pos, unpack = self.buf, self.pos, struct.unpack_from
                for _ in range(n):
                    pos += 8 + unpack("<Q", buf, pos)[0]
                if pos > len(buf):
                    raise GGUFError(f"{self.name}: truncated GGUF file")
                self.pos = pos
                return
            for _ in range(n):
                self.skip(it)
            return
        self.value(t)

    def value(self, t: int) -> Any:
        if t in _SCALAR:
            return self.unpack(_SCALAR[t])
        if t == STRING:
            return self.string()
        if t == ARRAY:
            it = self.unpack("<I")
            n = self.unpack("<Q")
            if it in _SCALAR:
                size = struct.calcsize(_SCALAR[it])
                data = self.read(size * n)
                return list(struct.unpack(f"<{n}{_SCALAR[it][1]}", data))
            if it == STRING:
                buf, pos, out = self.buf, self.pos, []
                unpack = struct.unpack_from
                for _ in range(n):
                    (k,) = unpack("<Q", buf, pos)
                    out.append(buf[pos + 8:pos + 8 + k].decode("utf-8", "surrogateescape"))
                    pos += 8 + k
                if pos > len(buf):
                    raise GGUFError(f"{self.name}: truncated GGUF file")
                self.pos = pos
                return out
            return [self.value(it) for _ in range(n)]
        raise GGUFError(f"{self.name}: unknown GGUF value type {t}")


def read_gguf(path: str | Path, skip: Collection[str] = ()) -> GGUFFile:
    """Parse the header of a GGUF file (not the tensor data).  The values of the keys in ``skip``
    are not decoded (their ``KV.value`` is None; ``raw`` is kept): a GGUF's merges are ~10^5 strings."""
    import mmap

    p = Path(path)
    try:
        fh = open(p, "rb")
    except OSError as exc:
        raise GGUFError(f"{p}: cannot open: {exc}") from exc
    with fh:
        try:
            buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:
            raise GGUFError(f"{p}: not a GGUF file (empty)") from None
        with buf:
            r = _Reader(buf, str(p))
            if r.read(4) != b"GGUF":
                raise GGUFError(f"{p}: not a GGUF file (bad magic)")
            version = r.unpack("<I")
            if version < 2:
                raise GGUFError(f"{p}: GGUF version {version} is not supported")
            n_tensors = r.unpack("<Q")
            n_kv = r.unpack("<Q")
            kvs: dict[str, KV] = {}
            for _ in range(n_kv):
                start = r.pos
                key = r.string()
                t = r.unpack("<I")
                if key in skip:
                    r.skip(t)
                    value = None
                else:
                    value = r.value(t)
                kvs[key] = KV(key, t, value, bytes(buf[start:r.pos]))
            ti_start = r.pos
            tensors = []
            for _ in range(n_tensors):
                name = r.string()
                nd = r.unpack("<I")
                shape = tuple(r.unpack("<Q") for _ in range(nd))
                tt = r.unpack("<I")
                off = r.unpack("<Q")
                tensors.append(TensorInfo(name, shape, tt, off))
            ti_raw = bytes(buf[ti_start:r.pos])
            ti_end = r.pos
    align_kv = kvs.get("general.alignment")
    alignment = int(align_kv.value) if align_kv is not None else 32
    data_start = (ti_end + alignment - 1) // alignment * alignment
    return GGUFFile(p, version, kvs, tensors, ti_raw, alignment, data_start)


def _pack_string(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def pack_kv(key: str, value: Any, t: int | None = None) -> bytes:
    """One key/value record (str, bool, int as u32 unless ``t`` says otherwise, float as f32)."""
    if t is None:
        t = STRING if isinstance(value, str) else BOOL if isinstance(value, bool) else \
            UINT32 if isinstance(value, int) else FLOAT32
    out = _pack_string(key) + struct.pack("<I", t)
    if t == STRING:
        return out + _pack_string(value)
    return out + struct.pack(_SCALAR[t], value)


def rewrite_kv(src: GGUFFile, dst: str | Path, changes: dict[str, Any], remove: set[str] = frozenset()) -> None:
    """Write ``dst`` (atomically: temp file + rename) = ``src`` with ``changes`` set (new keys
    appended, existing ones replaced in place) and ``remove`` dropped; tensors copied unchanged."""
    dst = Path(dst)
    records: list[bytes] = []
    done = set()
    for key, kv in src.kvs.items():
        if key in remove:
            continue
        if key in changes:
            records.append(pack_kv(key, changes[key], kv.type if kv.type != ARRAY else None))
            done.add(key)
        else:
            records.append(kv.raw)
    for key, value in changes.items():
        if key not in done and key not in remove:
            records.append(pack_kv(key, value))
    header = b"GGUF" + struct.pack("<IQQ", src.version, len(src.tensors), len(records))
    body = header + b"".join(records) + src.ti_raw
    pad = (-len(body)) % src.alignment
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".partial", dir=dst.parent)
    os.chmod(tmp, os.stat(src.path).st_mode & 0o777)
    try:
        with os.fdopen(fd, "wb") as out, open(src.path, "rb") as inp:
            out.write(body + b"\0" * pad)
            inp.seek(src.data_start)
            shutil.copyfileobj(inp, out, 1 << 24)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def tensor_bytes(f: GGUFFile) -> dict[str, tuple[int, int]]:
    """name -> (absolute start, end) of each tensor's data (end = next tensor's start or EOF, minus padding
    is not removed: compare like with like)."""
    size = f.path.stat().st_size
    starts = sorted((t.offset, t.name) for t in f.tensors)
    out = {}
    for k, (off, name) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else size - f.data_start
        out[name] = (f.data_start + off, f.data_start + end)
    return out
