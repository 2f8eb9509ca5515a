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
