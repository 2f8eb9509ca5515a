"""Output types: which GGML type each tensor gets, and the bytes for it.

F32, F16, BF16 and Q8_0 are produced here with gguf-py (numpy, CPU, deterministic).  1-D tensors
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


def encode(data: np.ndarray, ggml: str) -> np.ndarray:
    """The bytes (as gguf-py's arrays) of float32 ``data`` in type ``ggml``."""
    import gguf

    if ggml == "F32":
        return np.ascontiguousarray(data, dtype=np.float32)
    if ggml == "F16":
        with np.errstate(over="ignore"):  # overflow is reported per tensor by the f16_range check
            return data.astype(np.float16)
    return gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32),
                                getattr(gguf.GGMLQuantizationType, ggml))


def f16_overflow(data: np.ndarray) -> tuple[int, float]:
    """(how many finite values exceed F16's range, the largest magnitude) -- they would become inf."""
    a = np.abs(data[np.isfinite(data)])
    if a.size == 0:
        return 0, 0.0
    big = int(np.count_nonzero(a > F16_MAX))
    return big, float(a.max())


def kquantize(src: str, dst: str, outtype: str, nthread: int = 0) -> None:
    """Run llama.cpp's ``llama_model_quantize`` from GGUF ``src`` to ``dst`` (metadata preserved)."""
    import ctypes

    llama_cpp = llama_cpp_quantizer()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = KQUANTS[outtype]
    params.nthread = nthread
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        raise ExportRefused(f"llama.cpp's quantizer failed ({rc}) making {outtype} from {src}")
