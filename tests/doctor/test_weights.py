"""The untrained-row indicators, on raw bits, in every float dtype a checkpoint stores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tmplc.doctor.weights import scan_rows, trained_mean


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32, torch.float64])
def test_indicators(tmp_path, dtype):
    g = torch.Generator().manual_seed(1)
    w = (torch.randn(3000, 48, generator=g) * 0.02).to(dtype)
    w[5] = 0.0
    w[6] = -0.0
    w[7] = 1e-7 * torch.sign(torch.randn(48, generator=g)).to(dtype)   # decayed towards zero
    shared = (torch.randn(48, generator=g) * 0.02).to(dtype)
    w[10] = w[11] = w[2999] = shared                                      # identical: an untouched init
    w[20, 3] = -5.0                                                       # a large negative value: trained
    f = tmp_path / "m.safetensors"
    save_file({"e": w.contiguous()}, str(f))
    s = scan_rows(f, "e")
    assert s.flags == {5: "zero", 6: "zero", 7: "tiny", 10: "duplicate", 11: "duplicate", 2999: "duplicate"}
    maxabs = w.double().abs().amax(dim=1).numpy()
    assert s.median_norm == pytest.approx(float(np.median(maxabs)), rel=1e-3)
    # rows set to the trained mean are not untrained any more (what tmplc fix writes)
    w2 = w.clone()
    w2[[5, 6, 7, 10, 11, 2999]] = trained_mean(w, set(s.flags)).to(dtype)
    save_file({"e": w2}, str(f))
    s2 = scan_rows(f, "e")
    assert s2.flags == {} and s2.mean_rows == {5, 6, 7, 10, 11, 2999}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_identical_rows_off_the_mean_in_one_column_stay_duplicates(tmp_path, dtype):
    """Identical rows equal to the trained mean in every column but one are a shared initialisation, not a
    mean-initialised fix: still flagged (whichever columns the scan samples)."""
    g = torch.Generator().manual_seed(2)
    w = (torch.randn(2000, 48, generator=g) * 0.02).to(dtype)
    ids = [3, 400, 1999]
    mean = trained_mean(w, set(ids)).to(dtype)
    for col in (1, 47):
        row = mean.clone()
        row[col] = 0.5
        w[ids] = row
        f = tmp_path / "m.safetensors"
        save_file({"e": w.contiguous()}, str(f))
        s = scan_rows(f, "e")
        assert s.flags == {i: "duplicate" for i in ids} and s.mean_rows == set(), col


def test_many_chunks_and_windows(tmp_path, monkeypatch):
    """Chunks of a few rows, pages dropped and mapped ahead every few KiB: the same findings as planted."""
    import tmplc.doctor.weights as W

    monkeypatch.setattr(W, "CHUNK_BYTES", 7 * 96)      # 7 rows of 48 bf16 per chunk (rows straddle pages)
    monkeypatch.setattr(W, "WINDOW_BYTES", 8192)
    monkeypatch.setattr(W, "POPULATE_BYTES", 4096)
    g = torch.Generator().manual_seed(3)
    w = (torch.randn(5000, 48, generator=g) * 0.02).to(torch.bfloat16)
    w[[0, 4999, 2048]] = 0
    w[[7, 6, 3333]] = w[1234].clone()
    f = tmp_path / "m.safetensors"
    save_file({"pad": torch.zeros(3, 5), "e": w}, str(f))  # "e" does not start at the data's first byte
    s = scan_rows(f, "e")
    assert s.flags == {0: "zero", 4999: "zero", 2048: "zero", 7: "duplicate", 6: "duplicate", 3333: "duplicate",
                       1234: "duplicate"}
    assert s.median_norm == pytest.approx(float(w.float().abs().amax(dim=1).median()), rel=0.02)
