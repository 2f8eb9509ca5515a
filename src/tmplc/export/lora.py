"""Merge a PEFT LoRA adapter into the weights while they stream past: for each base tensor that
the adapter targets, ``W + (B @ A) * scaling`` computed on CPU in float32 (torch, the same
product PEFT's ``merge_and_unload`` computes), then cast to each output type.

Supported: plain LoRA on linear layers (``lora_A``/``lora_B``), ``use_rslora``, ``rank_pattern``
and ``alpha_pattern``.  Refused with the reason: DoRA, ``fan_in_fan_out``, trained biases,
``modules_to_save``, embedding LoRA, any other PEFT type.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tmplc.export.errors import ExportInputError, ExportRefused
from tmplc.export.safetensors_reader import Checkpoint

_KEY = re.compile(r"^base_model\.model\.(.+)\.lora_([AB])(?:\.default)?\.weight$")


@dataclass
class LoraAdapter:
    """The pairs of one adapter, keyed by the base tensor name they change."""

    folder: Path
    pairs: dict[str, tuple[str, str, float]]  # base weight name -> (A key, B key, scaling)
    checkpoint: Checkpoint

    def delta(self, base_name: str, w: np.ndarray) -> np.ndarray:
        """``w`` (float32) with this adapter merged, or ``w`` itself when the tensor is not targeted."""
        pair = self.pairs.get(base_name)
        if pair is None:
            return w
        import torch

        a_key, b_key, scaling = pair
        a = torch.from_numpy(self.checkpoint.read(a_key))
        b = torch.from_numpy(self.checkpoint.read(b_key))
        d = (b @ a) * scaling
        if tuple(d.shape) != w.shape:
            raise ExportInputError(f"{self.folder}: the adapter's {base_name} delta has shape {tuple(d.shape)}, "
                                   f"the model's weight {w.shape}: the adapter is for another model")
        return (torch.from_numpy(w) + d).numpy()

    def targets(self, base_name: str) -> bool:
        """Whether the adapter changes this base weight."""
        return base_name in self.pairs

    def used(self) -> int:
        return len(self.pairs)


def _pattern_value(patterns: dict, module: str, default: float) -> float:
    for key, value in patterns.items():
        if re.search(rf"(^|\.){re.escape(key)}$", module) or re.fullmatch(key, module):
            return value
    return default


def load_adapter(folder: Path, base_names: set[str]) -> LoraAdapter:
    """Read ``adapter_config.json`` + ``adapter_model.safetensors`` from ``folder``."""
    cfg_path = folder / "adapter_config.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportInputError(f"{folder}: no adapter_config.json (not a PEFT adapter folder)") from None
    except (OSError, ValueError) as exc:
        raise ExportInputError(f"{cfg_path}: cannot read: {exc}") from exc
    if cfg.get("peft_type", "LORA") != "LORA":
        raise ExportRefused(f"{cfg_path}: peft_type {cfg.get('peft_type')!r}: only LoRA adapters are merged")
    for key, why in (("use_dora", "DoRA"), ("fan_in_fan_out", "fan_in_fan_out weights")):
        if cfg.get(key):
            raise ExportRefused(f"{cfg_path}: {why} is not supported by tmplc export's merge")
    if cfg.get("bias", "none") != "none":
        raise ExportRefused(f"{cfg_path}: bias={cfg['bias']!r}: adapters that train biases are not supported")
    if cfg.get("modules_to_save"):
        raise ExportRefused(f"{cfg_path}: modules_to_save={cfg['modules_to_save']!r}: adapters that save whole "
                            "modules are not supported (merge with PEFT and export the merged folder)")
    ck = Checkpoint.from_folder(folder, stem="adapter_model")
    r0, alpha0 = cfg.get("r", 8), cfg.get("lora_alpha", 8)
    rslora = bool(cfg.get("use_rslora"))
    keys: dict[str, dict[str, str]] = {}
    for k in ck.names():
        m = _KEY.match(k)
        if m is None:
            raise ExportRefused(f"{folder}: adapter tensor {k!r} is not a LoRA A/B matrix of a linear layer "
                                "(embedding LoRA and saved modules are not supported)")
        keys.setdefault(m.group(1), {})[m.group(2)] = k
    pairs: dict[str, tuple[str, str, float]] = {}
    for module, ab in keys.items():
        if set(ab) != {"A", "B"}:
            raise ExportInputError(f"{folder}: {module} has lora_{''.join(ab)} only")
        base = module + ".weight"
        if base not in base_names:
            raise ExportInputError(f"{folder}: the adapter targets {base!r}, which the model does not have "
                                   "(an adapter for another model?)")
        r = _pattern_value(cfg.get("rank_pattern") or {}, module, r0)
        alpha = _pattern_value(cfg.get("alpha_pattern") or {}, module, alpha0)
        scaling = alpha / math.sqrt(r) if rslora else alpha / r
        pairs[base] = (ab["A"], ab["B"], float(scaling))
    return LoraAdapter(folder, pairs, ck)
