"""Data-parallel training: two CPU processes (torchrun, gloo) with accumulation 1 give the same
losses and adapter as one process with accumulation 2 (the same global batch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_module

torch = require_module("torch")
require_module("peft")

from train_fixtures import conversations, tiny_model, write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def _args(model, data, out, cache, accum):
    return ["train", "--model", str(model), "--data", str(data), "--template", "llama3", "--out", str(out),
            "--cache-dir", str(cache), "--max-steps", "3", "--grad-accum", str(accum), "--batch-size", "2",
            "--max-seq-length", "128", "--logging-steps", "1", "--save-steps", "0", "--no-progress",
            "--learning-rate", "1e-2", "--warmup-steps", "1"]


def _losses(out: Path) -> list[float]:
    return [json.loads(l)["loss"] for l in (out / "train-log.jsonl").read_text().splitlines() if '"loss"' in l]


def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    from safetensors.torch import load_file

    model = tiny_model(tmp_path, "llama3")
    data = write_jsonl(tmp_path / "d.jsonl", conversations(24))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    one = subprocess.run([sys.executable, "-m", "tmplc.cli", *_args(model, data, tmp_path / "one", tmp_path / "c", 2)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "tmplc.cli", *_args(model, data, tmp_path / "two", tmp_path / "c", 1)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    log2 = [json.loads(l) for l in (tmp_path / "two" / "train-log.jsonl").read_text().splitlines()]
    assert log2[0]["world_size"] == 2
    l1, l2 = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(l1) == len(l2) == 3
    assert l2 == pytest.approx(l1, rel=1e-5)
    a = load_file(str(tmp_path / "one" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "two" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
