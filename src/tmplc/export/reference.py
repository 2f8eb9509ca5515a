"""The torch reference of the logits check: the HF model's float32 logits on a few tokens, with the
weights streamed from the checkpoint one block at a time (a decoder layer, the embedding, the final
norm, the output head), so the check costs about one block in float32 instead of the whole model
in float32 (a 1.5B model: ~1 GiB instead of ~6 GiB plus the loader's own copies).

The model is built with its parameters on the ``meta`` device (accelerate's ``init_empty_weights``;
buffers such as rotary frequencies stay real), and forward hooks put each block's weights in place
just before it runs and take them away after.  The arithmetic is the same as the whole model's;
tests/export/test_reference.py compares the two.  Where a parameter cannot be matched to a
checkpoint tensor, or accelerate is not installed, the whole model is loaded instead."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from tmplc.export.safetensors_reader import Checkpoint


class _NotStreamable(Exception):
    pass


def reference_logits(model_dir: Path, ids: list[int], adapter_dir: Path | None = None,
                     checkpoint: "Checkpoint | None" = None) -> "np.ndarray":
    """float32 logits of the model in ``model_dir`` on ``ids`` (one row per position); with an
    adapter, PEFT merges it into a whole float32 model (not streamed)."""
    if adapter_dir is None and checkpoint is not None:
        try:
            return streamed_logits(model_dir, ids, checkpoint)
        except _NotStreamable:
            pass
    return whole_model_logits(model_dir, ids, adapter_dir)


def whole_model_logits(model_dir: Path, ids: list[int], adapter_dir: Path | None = None) -> "np.ndarray":
    """The logits of the whole model loaded in float32 (the adapter merged by PEFT)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    with torch.no_grad():
        logits = model.eval()(torch.tensor([ids]), use_cache=False).logits[0].float().numpy().copy()
    del model
    gc.collect()
    return logits


def _blocks(model: "torch.nn.Module") -> list[tuple[str, "torch.nn.Module"]]:
    """The units weights are streamed by: each element of a ModuleList (the decoder layers), and
    every other module that owns parameters itself (embedding, final norm, output head)."""
    import torch

    lists = [name for name, m in model.named_modules() if isinstance(m, torch.nn.ModuleList)]
    units = [(f"{ln}.{i}" if ln else str(i), m) for ln in lists
             for i, m in enumerate(model.get_submodule(ln))]
    inside = tuple(name + "." for name, _ in units)
    for name, m in model.named_modules():
        if any(True for _ in m.parameters(recurse=False)) and not name.startswith(inside):
            units.append((name, m))
    return units


def streamed_logits(model_dir: Path, ids: list[int], ck: "Checkpoint") -> "np.ndarray":
    """The logits with the weights read block by block from ``ck`` (raises _NotStreamable when
    the model's parameters do not all map to checkpoint tensors)."""
    try:
        from accelerate import init_empty_weights
        from accelerate.utils import set_module_tensor_to_device
    except ImportError:
        raise _NotStreamable("accelerate is not installed") from None
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(model_dir))
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval()
    embed = model.get_input_embeddings()
    embed_name = next(n for n, m in model.named_modules() if m is embed) + ".weight"
    sources: dict[str, str] = {}
    for name, _ in model.named_parameters(remove_duplicate=False):
        if name in ck:
            sources[name] = name
        elif getattr(config, "tie_word_embeddings", False) and name.endswith("weight") and embed_name in ck \
                and model.get_output_embeddings() is model.get_submodule(name.rsplit(".", 1)[0]):
            sources[name] = embed_name  # the tied output head reads the embedding
        else:
            raise _NotStreamable(f"parameter {name!r} is not a checkpoint tensor")
    hooks = []

    def load(prefix: str):
        def hook(module, args, kwargs=None):
            for pname, _ in list(module.named_parameters()):
                full = f"{prefix}.{pname}" if prefix else pname
                value = torch.from_numpy(ck.read(sources[full]))
                set_module_tensor_to_device(model, full, "cpu", value=value)
        return hook

    def drop(prefix: str):
        def hook(module, args, output):
            for pname, _ in list(module.named_parameters()):
                set_module_tensor_to_device(model, f"{prefix}.{pname}" if prefix else pname, "meta")
        return hook

    for prefix, unit in _blocks(model):
        hooks.append(unit.register_forward_pre_hook(load(prefix)))
        hooks.append(unit.register_forward_hook(drop(prefix)))
    try:
        with torch.no_grad():
            logits = model(torch.tensor([ids]), use_cache=False).logits[0].float().numpy().copy()
    finally:
        for h in hooks:
            h.remove()
        del model
        gc.collect()
    return logits
