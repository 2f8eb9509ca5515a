"""The logits check's torch reference streams the weights block by block
(tmplc.export.reference): its logits are the whole float32 model's, for every architecture the
exporter takes, tied and untied output heads, float32 and bf16 checkpoints; a model whose
parameters do not map to checkpoint tensors falls back to the whole model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import require_module

from export.tiny_models import ARCH

require_module("accelerate")


@pytest.mark.parametrize("kind, dtype, tie", [("llama", "float32", False), ("llama", "bfloat16", True),
                                              ("mistral", "float32", False), ("qwen2", "bfloat16", None),
                                              ("qwen3", "float32", None), ("qwen3", "bfloat16", False)])
def test_streamed_logits_equal_the_whole_model(tiny, kind, dtype, tie):
    from tmplc.export.reference import streamed_logits, whole_model_logits
    from tmplc.export.safetensors_reader import Checkpoint

    folder = tiny(f"ref-{kind}-{dtype}-{tie}", kind, ARCH[kind][2], dtype=dtype, tie=tie)
    ids = list(range(3, 40, 3))
    ck = Checkpoint.from_folder(folder)
    try:
        got = streamed_logits(folder, ids, ck)
    finally:
        ck.close()
    want = whole_model_logits(folder, ids)
    assert got.shape == want.shape == (len(ids), json.loads((folder / "config.json").read_text())["vocab_size"])
    assert np.array_equal(got, want), float(np.abs(got - want).max())


def test_a_parameter_missing_from_the_checkpoint_falls_back_to_the_whole_model(tiny, tmp_path):
    """A checkpoint whose tensor names the model does not use (here: renamed) cannot be streamed;
    the reference then loads the whole model, which is what transformers does with it."""
    import shutil

    from safetensors.numpy import load_file, save_file

    from tmplc.export import reference
    from tmplc.export.safetensors_reader import Checkpoint

    src = tiny("ref-llama-fallback", "llama", "llama3")
    folder = tmp_path / "m"
    shutil.copytree(src, folder)
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["model.norm.weight_renamed"] = tensors.pop("model.norm.weight")
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    ck = Checkpoint.from_folder(folder)
    try:
        with pytest.raises(reference._NotStreamable, match="model.norm.weight"):
            reference.streamed_logits(folder, [1, 2, 3], ck)
    finally:
        ck.close()
    ck = Checkpoint.from_folder(folder)
    try:
        got = reference.reference_logits(folder, [1, 2, 3], None, ck)
    finally:
        ck.close()
    assert np.array_equal(got, reference.whole_model_logits(folder, [1, 2, 3]))
