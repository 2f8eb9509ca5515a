"""Reading embedding / lm_head rows in chunks, and the untrained-row indicators.

Rows are read through ``safetensors.safe_open(...).get_slice(name)[a:b]``: one chunk of rows at
a time (``CHUNK_BYTES``), converted to float32 for the statistics, so checking an 8B model never
holds more than one chunk in memory.

**Indicators** (a row is *untrained* when any holds):

* ``zero``: every value of the row has ``|x| <= ZERO_EPS`` (1e-8) — the rows a base model never
  updated because the token never occurred (Llama-3 base's ``<|eot_id|>``, ``<|start_header_id|>``
  and reserved tokens; Unsloth's ``indicator1``).
* ``tiny``: the row's L2 norm is below ``TINY_RATIO`` (1e-3) x the median row norm of the matrix
  (rows that weight decay shrank towards zero but not to exactly zero).
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
    """The untrained-row indicators of tensor ``name`` in ``file`` (see the module docstring)."""
    import numpy as np
    import torch
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as f:
        sl = f.get_slice(name)
        shape = sl.get_shape()
        dtype = sl.get_dtype()
        if len(shape) != 2:
            from tmplc.doctor.model import DoctorInputError

            raise DoctorInputError(f"{file}: tensor {name} has shape {shape}, expected 2-D rows x hidden")
        n, d = shape
        norms = np.empty(n, dtype=np.float64)
        maxabs = np.empty(n, dtype=np.float32)
        fp = np.empty((n, 3), dtype=np.float64)
        total = torch.zeros(d, dtype=torch.float64)
        for a, b in _chunks(n, d, 4):
            t = sl[a:b]
            x = t.to(torch.float32)
            ax = x.abs()
            maxabs[a:b] = ax.amax(dim=1).numpy()
            x64 = x.to(torch.float64)
            norms[a:b] = torch.linalg.vector_norm(x64, dim=1).numpy()
            # a fingerprint: identical rows give identical values (same computation on the same data)
            fp[a:b, 0] = x64.sum(dim=1).numpy()
            fp[a:b, 1] = x64[:, 0].numpy()
            fp[a:b, 2] = (x64 * torch.arange(1, d + 1, dtype=torch.float64)).sum(dim=1).numpy()
            total += x64.sum(dim=0)
            del t, x, ax, x64
        scan = RowScan(name, n, d, dtype)
        zero = maxabs <= ZERO_EPS
        med = float(np.median(norms)) if n else 0.0
        scan.median_norm = med
        tiny = (norms < TINY_RATIO * med) & ~zero
        for i in np.flatnonzero(zero):
            scan.flags[int(i)] = "zero"
        for i in np.flatnonzero(tiny):
            scan.flags[int(i)] = "tiny"
        # duplicates: rows with equal fingerprints, confirmed byte for byte
        rest = np.flatnonzero(~zero)
        if len(rest) > 1:
            keys = fp[rest]
            order = np.lexsort(keys.T[::-1])
            sk = keys[order]
            same = np.all(sk[1:] == sk[:-1], axis=1)
            cand = set()
            for j in np.flatnonzero(same):
                cand.add(int(rest[order[j]]))
                cand.add(int(rest[order[j + 1]]))
            if cand:
                groups: dict[bytes, list[int]] = {}
                for i in sorted(cand):
                    raw = sl[i:i + 1].contiguous().view(torch.uint8).numpy().tobytes()
                    groups.setdefault(raw, []).append(i)
                for ids in groups.values():
                    if len(ids) > 1:
                        for i in ids:
                            scan.flags.setdefault(i, "duplicate")
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
    tol = 4 * torch.finfo(dtype).eps * mean.abs().clamp_min(1e-30)
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
