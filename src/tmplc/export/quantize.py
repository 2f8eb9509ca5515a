"""Output types: which GGML type each tensor gets, and the bytes for it.

F32, F16, BF16 and Q8_0 are produced here on the CPU, deterministically: F16 and Q8_0 with torch's
kernels when torch is importable, else numpy (same bytes; Q8_0 bit-identical to ggml's reference
quantizer), BF16 by gguf-py.  1-D tensors
(norms, biases) and rope factors stay F32; a matrix whose row length is not a multiple of Q8_0's
block (32) falls back to F16, as llama.cpp's converter does (said in the report).  The k-quants
(Q4_K_M, Q5_K_M, Q6_K) are made from the F16 (or F32) GGUF by llama.cpp's own quantizer,
``llama_model_quantize`` from llama-cpp-python; without it they are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tmplc.export.errors import ExportInputError, ExportRefused

NATIVE = ("F32", "F16", "BF16", "Q8_0")
KQUANTS = {"Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18}  # llama_ftype values
FILE_TYPES = {"F32": 0, "F16": 1, "Q8_0": 7, "BF16": 32}
F16_MAX = 65504.0


def parse_outtypes(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"f16,q8_0"`` -> ``["F16", "Q8_0"]`` (ordered, unique); unknown names are bad input."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for raw in items:
        t = raw.strip().upper()
        if not t:
            continue
        if t not in NATIVE and t not in KQUANTS:
            raise ExportInputError(f"unknown output type {raw.strip()!r} (choose from "
                                   f"{', '.join(n.lower() for n in (*NATIVE, *KQUANTS))})")
        if t not in out:
            out.append(t)
    if not out:
        raise ExportInputError("no output type given (e.g. --outtype f16,q8_0)")
    return out


def llama_cpp_quantizer():
    """``llama_cpp`` if llama-cpp-python is importable, else :class:`ExportRefused` for k-quants."""
    try:
        import llama_cpp
    except Exception as exc:  # ImportError, or OSError from a broken libllama
        raise ExportRefused(
            "the k-quants (Q4_K_M, Q5_K_M, Q6_K) are made by llama.cpp's own quantizer, which needs "
            f"llama-cpp-python (not importable here: {exc}); install it (scripts/setup.sh builds it from "
            "the pinned sdist) or choose f32/f16/bf16/q8_0") from exc
    return llama_cpp


@dataclass(frozen=True)
class TensorType:
    """The GGML type of one tensor in one output file, and its bytes' shape and size."""

    ggml: str
    shape: tuple[int, ...]  # numpy order (logical)
    nbytes: int
    fallback: bool = False


def tensor_type(outtype: str, shape: tuple[int, ...], keep_f32: bool) -> TensorType:
    import gguf

    n = int(np.prod(shape, dtype=np.int64))
    if keep_f32 or len(shape) < 2 or outtype == "F32":
        return TensorType("F32", shape, n * 4)
    if outtype == "Q8_0" and shape[-1] % 32 != 0:
        return TensorType("F16", shape, n * 2, fallback=True)
    q = getattr(gguf.GGMLQuantizationType, outtype)
    block, size = gguf.GGML_QUANT_SIZES[q]
    return TensorType(outtype, shape, n // block * size)


_SUB = 1 << 16  # elements per step of the numpy Q8_0 encoder: its temporaries stay in the CPU cache
_HALF_DOWN = np.float32(0.5) - np.float32(2.0 ** -25)  # the float32 just below 0.5


def _torch():
    """torch when importable (its CPU kernels encode F16/Q8_0 several times faster than numpy), else None.
    Both paths produce the same bytes (tests/export/test_encoders.py)."""
    try:
        import torch
    except Exception:  # ImportError, or a broken install
        return None
    return torch


def _q8_0_scales(amax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scale d = amax / 127, its inverse or 0), in float32 exactly as ggml computes them."""
    d = amax / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    return d, inv


@np.errstate(over="ignore", invalid="ignore")  # huge or subnormal blocks: the same bytes as ggml, quietly
def q8_0(data: np.ndarray, use_torch: bool = True) -> np.ndarray:
    """Q8_0 blocks (f16 scale + 32 int8) of float32 ``data`` (size a multiple of 32), as uint8.

    Bit-identical to ggml's reference ``quantize_row_q8_0_ref`` (and gguf-py): scale = amax / 127,
    values rounded half away from zero (C ``roundf``).  ``roundf(y)`` for ``|y| <= 127`` is computed
    as ``trunc(y + copysign(0.49999997, y))``: adding the float just below one half rounds exactly
    the ties up and nothing else (tested over every float32 in [0, 128)); the cast to int8 truncates."""
    flat = np.ascontiguousarray(data, dtype=np.float32).reshape(-1)
    nb = flat.size // 32
    out = np.empty((nb, 34), dtype=np.uint8)
    torch = _torch() if use_torch else None
    if torch is not None:
        x = torch.from_numpy(flat).view(nb, 32)
        d, inv = _q8_0_scales(x.abs().amax(dim=1).numpy())
        y = x * torch.from_numpy(inv)[:, None]
        y += torch.copysign(torch.tensor(_HALF_DOWN), y)
        torch.from_numpy(out)[:, 2:].view(torch.int8).copy_(y)
        out[:, :2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
        return out
    qs = out.view(np.int8)[:, 2:]
    step = _SUB // 32
    for b0 in range(0, nb, step):
        b1 = min(nb, b0 + step)
        blocks = flat[b0 * 32:b1 * 32].reshape(-1, 32)
        d, inv = _q8_0_scales(np.abs(blocks).max(axis=1))
        y = blocks * inv[:, None]
        y += np.copysign(_HALF_DOWN, y)
        np.copyto(qs[b0:b1], y, casting="unsafe")
        out[b0:b1, :2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    return out


def f16(data: np.ndarray, use_torch: bool = True) -> tuple[np.ndarray, int]:
    """``data`` as float16 (round to nearest even) and how many finite values became inf (F16's
    range is +-65504)."""
    torch = _torch() if use_torch else None
    if torch is not None:
        x = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
        out = x.to(torch.float16).numpy()
        lo, hi = (float(v) for v in torch.aminmax(x)) if x.numel() else (0.0, 0.0)
    else:
        with np.errstate(over="ignore"):  # overflow is reported per tensor by the f16_range check
            out = data.astype(np.float16)
        lo, hi = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    if -F16_MAX <= lo and hi <= F16_MAX:  # the common case (NaN compares false: counted below)
        return out, 0
    return out, int(np.count_nonzero(np.isinf(out) & np.isfinite(data)))


def encode(data: np.ndarray, ggml: str) -> np.ndarray:
    """The bytes (a numpy array) of float32 ``data`` in type ``ggml`` (F32, F16, BF16, Q8_0)."""
    if ggml == "F32":
        return np.ascontiguousarray(data, dtype=np.float32)
    if ggml == "F16":
        return f16(data)[0]
    if ggml == "Q8_0":
        return q8_0(data)
    import gguf

    return gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32),
                                getattr(gguf.GGMLQuantizationType, ggml))


def f16_overflow(data: np.ndarray) -> tuple[int, float]:
    """(how many finite values exceed F16's range and become inf, the largest finite magnitude)."""
    n = f16(data)[1]
    if not n:
        return 0, 0.0
    a = np.abs(data[np.isfinite(data)])
    return n, float(a.max())


def kquantize(src: str, dst: str, outtype: str, nthread: int = 0) -> None:
    """Run llama.cpp's ``llama_model_quantize`` from GGUF ``src`` to ``dst`` (metadata preserved)."""
    import ctypes

    llama_cpp = llama_cpp_quantizer()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = KQUANTS[outtype]
    params.nthread = nthread
    from tmplc.export.validate import quiet_stderr

    with quiet_stderr():  # a line per tensor on fd 2
        rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        raise ExportRefused(f"llama.cpp's quantizer failed ({rc}) making {outtype} from {src}")
