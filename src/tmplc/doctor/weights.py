"""Reading embedding / lm_head rows in chunks, and the untrained-row indicators.

The rows are read with numpy straight from the memory-mapped file (safetensors: the tensor's
byte range after the JSON header; GGUF: see :mod:`tmplc.doctor.gguf_rows`), as raw bits, one
chunk of rows at a time (``CHUNK_BYTES``, small enough to stay in the CPU cache).  The pages of
a window are dropped from the mapping after use (``madvise(MADV_DONTNEED)``: the file stays in the
page cache, the process's RSS does not grow with the matrix).  No torch, no float copy of the
matrix: one pass computes each row's max |x| on the bits and keeps the bits of a few columns.

**Indicators** (a row is *untrained* when any holds):

* ``zero``: every value of the row has ``|x| <= ZERO_EPS`` (1e-8) — the rows a base model never
  updated because the token never occurred (Llama-3 base's ``<|eot_id|>``, ``<|start_header_id|>``
  and reserved tokens; Unsloth's ``indicator1``).
* ``tiny``: the row's max |x| is below ``TINY_RATIO`` (1e-3) x the median row max |x| of the
  matrix (rows that weight decay shrank towards zero but not to exactly zero).
* ``duplicate``: the row is byte-identical to another row of the same matrix — unless it equals
  the mean of the trained rows (within the dtype's rounding): that is what ``tmplc fix`` (and
  Unsloth) write into untrained rows, so those rows count as initialised (``RowScan.mean_rows``).
  Independently trained rows are never identical; identical rows are a shared initialisation
  nobody updated (Llama-3.1's lm_head rows for untrained tokens, which the ``zero`` test misses —
  the reason Unsloth added its rounded-duplicate ``indicator2``).  Exact bytes, not rounding, so
  distinct trained rows cannot collide.

How, cheaply: |x| on the raw bits (clear the sign bit: for IEEE floats the magnitude order is the
integer order, so the row max of the bits is the bits of the row max |x|).  Duplicates: rows with
equal bits in ``SAMPLE_COLS`` sampled columns and equal max |x| are candidates, confirmed byte for
byte.  Mean-initialised duplicates: the trained mean is first computed on the sampled columns only
(from the kept bits, float64); only a duplicate that matches it there is compared with the full
mean (a second pass, float64 sums — in practice only on a folder ``tmplc fix`` wrote).

**Where this fails** (and what nothing reading weights alone can see): rows initialised at
random (``resize_token_embeddings`` with random init, or a model whose reserved rows were
random-initialised) and never trained look exactly like trained rows; a row trained only a
little is not ~0; and a matrix whose rows are *all* tiny makes the median tiny too (a fully
untrained matrix is not flagged by ``tiny``, only by ``zero``/``duplicate``).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ZERO_EPS = 1e-8
TINY_RATIO = 1e-3
#: bytes of rows per chunk of the statistics (cache-sized: faster than large chunks)
CHUNK_BYTES = 1 << 20
#: bytes of the mapping processed before its pages are dropped (RSS stays ~ this)
WINDOW_BYTES = 64 << 20
#: bytes mapped ahead at once (``MADV_POPULATE_READ``: one call instead of a page fault per 64 KiB)
POPULATE_BYTES = 8 << 20
_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux >= 5.14
SAMPLE_COLS = 16
#: float kind -> (unsigned int dtype of its bits, sign mask, machine epsilon)
KINDS = {"BF16": ("<u2", 0x7FFF, 2.0 ** -7), "F16": ("<u2", 0x7FFF, 2.0 ** -10),
         "F32": ("<u4", 0x7FFFFFFF, 2.0 ** -23), "F64": ("<u8", 0x7FFFFFFFFFFFFFFF, 2.0 ** -52),
         "U8": ("u1", 0xFF, 0.0)}  # raw bytes (quantized GGUF blocks): mapped, never scanned as floats


@dataclass
class RowScan:
    """The indicators of one matrix: ``flags[id] = "zero" | "tiny" | "duplicate"`` for untrained rows."""

    name: str
    rows: int
    cols: int
    dtype: str
    flags: dict[int, str] = field(default_factory=dict)
    median_norm: float = 0.0
    #: rows set to the trained mean (by a fix): duplicates, but deliberately so
    mean_rows: set = field(default_factory=set)

    @property
    def untrained(self) -> set[int]:
        return set(self.flags)


def bits_to_float(bits, kind: str):
    """Raw bits (any shape) of ``kind`` as float64 values."""
    import numpy as np

    bits = np.asarray(bits)
    if kind == "BF16":  # numpy has no bfloat16: its bits are the top half of a float32's
        return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    if kind == "F16":
        return bits.view(np.float16).astype(np.float64)
    if kind == "F32":
        return bits.view(np.float32).astype(np.float64)
    return bits.view(np.float64)


def round_to(x64, kind: str):
    """float64 values rounded to ``kind`` (round to nearest even), back as float64."""
    import numpy as np

    x32 = np.asarray(x64, dtype=np.float64).astype(np.float32)
    if kind == "BF16":
        b = x32.view(np.uint32).astype(np.uint64)
        b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
        return bits_to_float(b.astype(np.uint16), "BF16")
    if kind == "F16":
        return x32.astype(np.float16).astype(np.float64)
    if kind == "F32":
        return x32.astype(np.float64)
    return np.asarray(x64, dtype=np.float64)


@dataclass
class RawRows:
    """A matrix as rows of raw float bits: ``chunk(a, b)`` returns rows ``a:b`` as an unsigned-int
    array ``(b - a, cols)`` of ``kind``'s bits (a view of the mapped file where possible);
    ``release(a, b)`` says rows below ``b`` are done (their pages may be dropped)."""

    name: str
    rows: int
    cols: int
    kind: str                    # BF16 | F16 | F32 | F64
    dtype: str                   # as stored (reported)
    chunk: Callable
    release: Callable = lambda a, b: None
    #: rows per chunk (default: CHUNK_BYTES of bits)
    step: int = 0
    #: the rows were dequantized (GGUF Q* types): a mean-initialised row matches the trained mean
    #: only within the quantization error, so "equals the mean" allows |row - mean| <= max|mean| / 2
    #: (an untouched shared initialisation is ~100x larger than the mean of trained rows)
    quantized: bool = False


class MappedMatrix:
    """A 2-D float tensor stored contiguously at ``offset`` of ``file``, memory-mapped read-only."""

    def __init__(self, file: Path, offset: int, rows: int, cols: int, kind: str) -> None:
        import numpy as np

        self._fh = open(file, "rb")
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        item = np.dtype(KINDS[kind][0]).itemsize
        if offset + rows * cols * item > len(self._mm):
            self.close()
            raise ValueError(f"the tensor's bytes run past the end of the file ({len(self._mm)} bytes)")
        self.offset, self.row_bytes = offset, cols * item
        self.bits = np.frombuffer(self._mm, dtype=KINDS[kind][0], count=rows * cols, offset=offset).reshape(rows, cols)
        self._dropped = offset - offset % mmap.PAGESIZE
        self._populated = self._dropped
        self._populate = hasattr(self._mm, "madvise")

    def chunk(self, a: int, b: int):
        end = self.offset + b * self.row_bytes
        if self._populate and end > self._populated:
            start = max(self._populated, self.offset + a * self.row_bytes)
            start -= start % mmap.PAGESIZE
            n = min(max(POPULATE_BYTES, end - start), len(self._mm) - start)
            try:
                self._mm.madvise(_MADV_POPULATE_READ, start, n)
            except OSError:  # an older kernel: page faults do it
                self._populate = False
            self._populated = start + n
        return self.bits[a:b]

    def release(self, a: int, b: int) -> None:
        """Drop the mapped pages below row ``b`` once a window of them is done (not the file's cache)."""
        end = self.offset + b * self.row_bytes
        end -= end % mmap.PAGESIZE
        if end - self._dropped >= WINDOW_BYTES and hasattr(mmap, "MADV_DONTNEED"):
            self._mm.madvise(mmap.MADV_DONTNEED, self._dropped, end - self._dropped)
            self._dropped = end

    def close(self) -> None:
        self.bits = None
        try:
            self._mm.close()
        except BufferError:  # a view still alive: the map goes with it
            pass
        self._fh.close()


def _steps(r: RawRows):
    import numpy as np

    step = r.step or max(1, CHUNK_BYTES // max(1, r.cols * np.dtype(KINDS[r.kind][0]).itemsize))
    for a in range(0, r.rows, step):
        yield a, min(r.rows, a + step)


def scan_matrix(r: RawRows) -> RowScan:
    """The untrained-row indicators of ``r`` (see the module docstring): one pass over the rows."""
    import numpy as np

    udt, mask, _eps = KINDS[r.kind]
    n, d = r.rows, r.cols
    maxbits = np.empty(n, dtype=udt)
    cols = np.unique(np.linspace(0, d - 1, min(d, SAMPLE_COLS)).round().astype(np.int64))
    sample = np.empty((n, len(cols)), dtype=udt)
    buf = None
    for a, b in _steps(r):
        x = r.chunk(a, b)
        if buf is None or buf.shape[0] < b - a:
            buf = np.empty((b - a, d), dtype=udt)
        mag = buf[:b - a]
        np.bitwise_and(x, mask, out=mag)
        np.max(mag, axis=1, out=maxbits[a:b])
        sample[a:b] = x[:, cols]
        r.release(a, b)
    del buf
    maxabs = bits_to_float(maxbits, r.kind)
    scan = RowScan(r.name, n, d, r.dtype)
    zero = maxabs <= ZERO_EPS
    med = float(np.median(maxabs)) if n else 0.0
    scan.median_norm = med
    tiny = (maxabs < TINY_RATIO * med) & ~zero
    for i in np.flatnonzero(zero):
        scan.flags[int(i)] = "zero"
    for i in np.flatnonzero(tiny):
        scan.flags[int(i)] = "tiny"
    for ids in _identical_groups(r, sample, maxbits, np.flatnonzero(~zero)):
        for i in ids:
            scan.flags.setdefault(i, "duplicate")
    if any(w == "duplicate" for w in scan.flags.values()):
        _mean_initialised(scan, r, cols, sample)
    return scan


def _identical_groups(r: RawRows, sample, maxbits, rest) -> list[list[int]]:
    """Groups (2+) of byte-identical rows among ``rest``: candidates by sampled bits + max |x|,
    confirmed on the full rows."""
    import numpy as np

    if len(rest) < 2:
        return []
    keys = np.concatenate([sample[rest], maxbits[rest, None]], axis=1)
    order = np.lexsort(keys.T[::-1])
    sk = keys[order]
    same = np.flatnonzero(np.all(sk[1:] == sk[:-1], axis=1))
    cand = sorted({int(rest[order[j]]) for j in same} | {int(rest[order[j + 1]]) for j in same})
    groups: dict[bytes, list[int]] = {}
    for i in cand:
        groups.setdefault(np.ascontiguousarray(r.chunk(i, i + 1)).tobytes(), []).append(i)
    return [ids for ids in groups.values() if len(ids) > 1]


def _mean_initialised(scan: RowScan, r: RawRows, cols, sample) -> None:
    """Duplicate rows equal to the mean of the other (trained) rows were set that way on purpose
    (``tmplc fix``, Unsloth's ``mean_of_trained_tokens``): not untrained any more.  They move from
    ``flags`` to ``mean_rows``.  Tested on the sampled columns first (no pass over the matrix);
    a row that matches there is compared with the full mean (one more pass)."""
    import numpy as np

    n = scan.rows
    dups = [i for i, w in scan.flags.items() if w == "duplicate"]
    if not dups or len(scan.flags) >= n:
        return
    trained = np.ones(n, dtype=bool)
    trained[sorted(scan.flags)] = False
    count = int(trained.sum())
    eps = KINDS[r.kind][2]

    def close(row64, mean64):
        mean = round_to(mean64, r.kind)
        if r.quantized:
            return bool(np.all(np.abs(row64 - mean64) <= 0.5 * float(np.abs(mean64).max(initial=0.0))))
        # the dtype's rounding, plus float64 summation-order noise (float64 checkpoints)
        tol = 4 * eps * np.abs(mean) + 1e-12 * float(np.abs(mean).max(initial=0.0))
        return bool(np.all(np.abs(row64 - mean) <= tol))

    sampled_mean = bits_to_float(sample[trained], r.kind).sum(axis=0) / count
    maybe = [i for i in dups if close(bits_to_float(sample[i], r.kind), sampled_mean)]
    if not maybe:
        return
    total = np.zeros(scan.cols, dtype=np.float64)
    for a, b in _steps(r):
        m = trained[a:b]
        if m.any():
            total += bits_to_float(r.chunk(a, b)[m], r.kind).sum(axis=0)
        r.release(a, b)
    mean64 = total / count
    for i in maybe:
        if close(bits_to_float(r.chunk(i, i + 1)[0], r.kind), mean64):
            del scan.flags[i]
            scan.mean_rows.add(i)


def _other_dtype(file: Path, name: str, dtype: str, rows: int, cols: int) -> RowScan:
    """A dtype numpy cannot read as floats (float8 ...): chunks converted to float32 by torch."""
    import numpy as np
    import torch
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as f:
        sl = f.get_slice(name)

        def chunk(a, b):
            return sl[a:b].to(torch.float32).numpy().view(np.uint32)

        return scan_matrix(RawRows(name, rows, cols, "F32", dtype, chunk))


def scan_rows(file: Path, name: str) -> RowScan:
    """The untrained-row indicators of tensor ``name`` in the safetensors file ``file``."""
    from tmplc.doctor.model import DoctorInputError, _header, _header_size

    meta = _header(Path(file)).get(name)
    if meta is None:
        raise DoctorInputError(f"{file}: no tensor {name!r}")
    shape, dtype = meta["shape"], meta["dtype"]
    if len(shape) != 2:
        raise DoctorInputError(f"{file}: tensor {name} has shape {shape}, expected 2-D rows x hidden")
    n, d = shape
    if dtype not in KINDS:
        return _other_dtype(Path(file), name, dtype, n, d)
    start = 8 + _header_size(Path(file)) + int(meta["data_offsets"][0])
    try:
        m = MappedMatrix(Path(file), start, n, d, dtype)
    except (OSError, ValueError) as e:
        raise DoctorInputError(f"{file}: cannot read tensor {name}: {e}") from None
    try:
        return scan_matrix(RawRows(name, n, d, dtype, dtype, m.chunk, m.release))
    finally:
        m.close()


def trained_mean(weight, untrained: set[int]):
    """The mean of the rows of ``weight`` (a torch tensor) not in ``untrained``, in float64, as a
    1-D float64 tensor (summed in chunks: no float64 copy of the whole matrix)."""
    import torch

    n, d = weight.shape
    mask = torch.ones(n, dtype=torch.bool)
    if untrained:
        mask[torch.tensor(sorted(untrained), dtype=torch.long)] = False
    total = torch.zeros(d, dtype=torch.float64)
    count = 0
    step = max(1, (64 << 20) // max(1, d * 8))
    for a in range(0, n, step):
        b = min(n, a + step)
        m = mask[a:b]
        if m.any():
            total += weight[a:b][m].to(torch.float64).sum(dim=0)
            count += int(m.sum())
    if count == 0:
        raise ValueError("every row is untrained: there is no trained mean")
    return total / count
