"""Reading embedding / lm_head rows in chunks, and the untrained-row indicators.

Rows are read through ``safetensors.safe_open(...).get_slice(name)[a:b]``: one chunk of rows at
a time (``CHUNK_BYTES``), converted to float32 for the statistics, so checking an 8B model never
holds more than one chunk in memory.

**Indicators** (a row is *untrained* when any holds):

* ``zero``: every value of the row has ``|x| <= ZERO_EPS`` (1e-8) — the rows a base model never
  updated because the token never occurred (Llama-3 base's ``<|eot_id|>``, ``<|start_header_id|>``
  and reserved tokens; Unsloth's ``indicator1``).
* ``tiny``: the row's max |x| is below ``TINY_RATIO`` (1e-3) x the median row max |x| of the
  matrix (rows that weight decay shrank towards zero but not to exactly zero).
* ``duplicate``: the row is byte-identical to another row of the same matrix — unless it equals
  the mean of the trained rows (within the dtype's rounding): that is what ``tmplc fix`` (and
  Unsloth) write into untrained rows, so those rows count as initialised (``RowScan.mean_rows``).  Independently
  trained rows are never identical; identical rows are a shared initialisation nobody updated
  (Llama-3.1's lm_head rows for untrained tokens, which the ``zero`` test misses — the reason
  Unsloth added its rounded-duplicate ``indicator2``).  Exact bytes, not rounding, so distinct
  trained rows cannot collide.

**Where this fails** (and what nothing reading weights alone can see): rows initialised at
random (``resize_token_embeddings`` with random init, or a model whose reserved rows were
random-initialised) and never trained look exactly like trained rows; a row trained only a
little is not ~0; and a matrix whose rows are *all* tiny makes the median tiny too (a fully
untrained matrix is not flagged by ``tiny``, only by ``zero``/``duplicate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ZERO_EPS = 1e-8
TINY_RATIO = 1e-3
CHUNK_BYTES = 64 << 20
#: safetensors dtype -> (torch int view, sign mask, numpy float of the same width)
_BITS: dict = {}


def _bits_table() -> None:
    import numpy as np
    import torch

    _BITS["F16"] = (torch.int16, np.int16(0x7FFF), lambda m: m.view(np.float16).astype(np.float32))
    _BITS["F32"] = (torch.int32, np.int32(0x7FFFFFFF), lambda m: m.view(np.float32))
    # numpy has no bfloat16: its bits are the top half of a float32's
    _BITS["BF16"] = (torch.int16, np.int16(0x7FFF), lambda m: (m.astype(np.int32) << 16).view(np.float32))


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


def _chunks(n_rows: int, n_cols: int, itemsize: int):
    step = max(1, CHUNK_BYTES // max(1, n_cols * itemsize))
    for a in range(0, n_rows, step):
        yield a, min(n_rows, a + step)


def scan_rows(file: Path, name: str) -> RowScan:
    """The untrained-row indicators of tensor ``name`` in ``file`` (see the module docstring).

    One pass over the rows in chunks (max |x| computed on the raw bits for bf16/f16/f32 — no float
    conversion —, and the raw bits of 16 columns as a fingerprint for finding identical rows); identical candidates are confirmed byte for byte; a second
    pass (float64 sum) runs only when there are identical rows, to tell mean-initialised ones apart."""
    import numpy as np
    import torch
    from safetensors import safe_open

    if not _BITS:
        _bits_table()
    with safe_open(str(file), framework="pt") as f:
        sl = f.get_slice(name)
        shape = sl.get_shape()
        dtype = sl.get_dtype()
        if len(shape) != 2:
            from tmplc.doctor.model import DoctorInputError

            raise DoctorInputError(f"{file}: tensor {name} has shape {shape}, expected 2-D rows x hidden")
        n, d = shape
        maxabs = np.empty(n, dtype=np.float32)
        cols = np.unique(np.linspace(0, d - 1, min(d, 16)).round().astype(np.int64))
        fp = np.empty((n, len(cols)), dtype=np.int64)
        bits = _BITS.get(dtype)
        for a, b in _chunks(n, d, 2 if bits else 4):
            x = sl[a:b]
            if bits is not None:
                # |x| on the raw bits: clear the sign bit; for IEEE floats the magnitude order is the
                # integer order, so the row max of the bits is the bits of the row max |x|
                ib, mask, to_f32 = bits
                raw = x.view(ib).numpy()
                mag = np.bitwise_and(raw, mask)
                maxabs[a:b] = to_f32(mag.max(axis=1))
                fp[a:b] = raw[:, cols]
                del raw, mag
            else:
                xf = x.to(torch.float32)
                maxabs[a:b] = xf.abs().amax(dim=1).numpy()
                fp[a:b] = xf[:, cols].numpy().view(np.int32)
                del xf
            del x
        norms = maxabs
        scan = RowScan(name, n, d, dtype)
        zero = maxabs <= ZERO_EPS
        med = float(np.median(norms)) if n else 0.0
        scan.median_norm = med
        tiny = (norms < TINY_RATIO * med) & ~zero
        for i in np.flatnonzero(zero):
            scan.flags[int(i)] = "zero"
        for i in np.flatnonzero(tiny):
            scan.flags[int(i)] = "tiny"
        # duplicates: rows with equal fingerprints (and max |x|), confirmed byte for byte
        rest = np.flatnonzero(~zero)
        if len(rest) > 1:
            keys = np.concatenate([fp[rest], norms[rest, None].view(np.int32).astype(np.int64)], axis=1)
            order = np.lexsort(keys.T[::-1])
            sk = keys[order]
            same = np.all(sk[1:] == sk[:-1], axis=1)
            cand = set()
            for j in np.flatnonzero(same):
                cand.add(int(rest[order[j]]))
                cand.add(int(rest[order[j + 1]]))
            groups: dict[bytes, list[int]] = {}
            for i in sorted(cand):
                raw = sl[i:i + 1].contiguous().view(torch.uint8).numpy().tobytes()
                groups.setdefault(raw, []).append(i)
            for ids in groups.values():
                if len(ids) > 1:
                    for i in ids:
                        scan.flags.setdefault(i, "duplicate")
        if any(w == "duplicate" for w in scan.flags.values()):
            total = torch.zeros(d, dtype=torch.float64)
            for a, b in _chunks(n, d, 4):
                total += sl[a:b].sum(dim=0, dtype=torch.float64)
            _mean_initialised(scan, sl, total, n)
    return scan


def _mean_initialised(scan: RowScan, sl, total, n: int) -> None:
    """Duplicate rows equal to the mean of the other (trained) rows were set that way on purpose
    (``tmplc fix``, Unsloth's ``mean_of_trained_tokens``): not untrained any more.  They move from
    ``flags`` to ``mean_rows``."""
    import torch

    dups = [i for i, w in scan.flags.items() if w == "duplicate"]
    if not dups or len(scan.flags) >= n:
        return
    flagged = sorted(scan.flags)
    s = total.clone()
    for i in flagged:
        s -= sl[i:i + 1].to(torch.float64)[0]
    mean64 = s / (n - len(flagged))
    dtype = sl[dups[0]:dups[0] + 1].dtype
    mean = mean64.to(dtype).to(torch.float64)
    # the dtype's rounding, plus float64 summation-order noise (float64 checkpoints)
    tol = 4 * torch.finfo(dtype).eps * mean.abs() + 1e-12 * float(mean.abs().max())
    for i in dups:
        row = sl[i:i + 1].to(torch.float64)[0]
        if bool(((row - mean).abs() <= tol).all()):
            del scan.flags[i]
            scan.mean_rows.add(i)


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
    step = max(1, CHUNK_BYTES // max(1, d * 8))
    for a in range(0, n, step):
        b = min(n, a + step)
        m = mask[a:b]
        if m.any():
            total += weight[a:b][m].to(torch.float64).sum(dim=0)
            count += int(m.sum())
    if count == 0:
        raise ValueError("every row is untrained: there is no trained mean")
    return total / count
