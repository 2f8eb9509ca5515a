"""The F16 and Q8_0 encoders of the one-pass writer (torch kernels and the numpy fallback) against
gguf-py's quantizers, which llama.cpp's converter uses (its Q8_0 is bit-exact with ggml-quants.c)."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tmplc.export.quantize import _HALF_DOWN, f16, q8_0

PATHS = [pytest.param(True, id="torch"), pytest.param(False, id="numpy")]


def ref_q8_0(x: np.ndarray) -> np.ndarray:
    return gguf.quants.quantize(x.reshape(-1, 32), gguf.GGMLQuantizationType.Q8_0).reshape(-1)


def planted_blocks() -> np.ndarray:
    """Blocks whose scaled values hit every tie k + 0.5 (|k| <= 126) exactly, zeros, one-value
    blocks, subnormals, and bf16-like weights at several scales."""
    rng = np.random.default_rng(1)
    ties = np.arange(-126.5, 127, 1.0, dtype=np.float32)  # with amax 127 in the block: scale 1, exact ties
    blocks = [np.concatenate([[127.0], ties[i:i + 31]]).astype(np.float32) for i in range(0, ties.size - 31, 7)]
    blocks += [np.zeros(32, np.float32), np.full(32, -3.25, np.float32), np.eye(1, 32, 5, dtype=np.float32)[0] * 1e-40]
    for scale in (1e-3, 0.02, 1.0, 300.0, 6e4):
        blocks.append(rng.standard_normal(32 * 64).astype(np.float32) * np.float32(scale))
    return np.concatenate(blocks).astype(np.float32)


@pytest.mark.parametrize("use_torch", PATHS)
def test_q8_0_equals_gguf_py_on_planted_blocks(use_torch):
    x = planted_blocks()
    assert np.array_equal(q8_0(x, use_torch=use_torch).reshape(-1), ref_q8_0(x))


@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False),
                min_size=32, max_size=96))
@example([0.5] + [127.0] + [0.0] * 30)
@example([-2.5, 127.0] + [1.5] * 30)
def test_q8_0_property(values):
    x = np.array(values[:len(values) // 32 * 32], dtype=np.float32)
    want = ref_q8_0(x)
    for use_torch in (True, False):
        assert np.array_equal(q8_0(x, use_torch=use_torch).reshape(-1), want)


def test_the_rounding_identity_near_every_tie_and_on_a_dense_range():
    """``trunc(y + 0.49999997...) == roundf(y)`` (gguf-py's ``np_roundf``) for every float32 in
    [0.25, 4) and for the 64 floats on each side of every tie k + 0.5, k < 128."""
    dense = np.arange(np.float32(0.25).view(np.uint32), np.float32(4.0).view(np.uint32), dtype=np.uint32)
    near = np.concatenate([np.arange(-64, 65, dtype=np.int64) + int(np.float32(k + 0.5).view(np.uint32))
                           for k in range(128)]).astype(np.uint32)
    for bits in (dense, near):
        y = bits.view(np.float32)
        assert np.array_equal(np.trunc(y + _HALF_DOWN), gguf.quants.np_roundf(y))


@pytest.mark.parametrize("use_torch", PATHS)
def test_f16_equals_gguf_py_and_counts_overflow(use_torch):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(4096) * 1e3).astype(np.float32)
    x[[3, 70]] = [7e4, -1e9]      # finite, beyond F16's range: become inf
    x[100] = 65519.0              # rounds to 65504, stays finite
    x[200] = np.inf               # already inf: not an overflow
    got, over = f16(x, use_torch=use_torch)
    want = gguf.quants.quantize(x, gguf.GGMLQuantizationType.F16)
    assert got.dtype == np.float16 and np.array_equal(got.view(np.uint16), want.view(np.uint16))
    assert over == 2
    assert f16(x[4:60], use_torch=use_torch)[1] == 0
