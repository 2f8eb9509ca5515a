"""Refuse to start a run that would fill the disk.

Before training: estimated bytes = (checkpoints kept at once: ``save_total_limit`` + 1 while the
newest is written) x (adapter + optimizer state) + the final save (adapter + tokenizer; plus the
merged model with ``merge``).  If the free space of the output folder minus that estimate is below
``min_free_gb``, the run is refused with the numbers and what to change.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from tmplc.train.config import TrainConfig, TrainRefused

GB = 1e9


@dataclass
class DiskEstimate:
    checkpoint: int
    checkpoints_kept: int
    final: int
    merged: int

    @property
    def total(self) -> int:
        return self.checkpoint * self.checkpoints_kept + self.final + self.merged


def estimate(cfg: TrainConfig, model, tokenizer_dir: str | None) -> DiskEstimate:
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    ckpt = trainable + 2 * 4 * n_train + (1 << 16)            # weights + AdamW's two float32 moments
    tok = 0
    if tokenizer_dir and Path(tokenizer_dir).is_dir():
        tok = sum(f.stat().st_size for f in Path(tokenizer_dir).iterdir() if f.is_file() and f.name.startswith(
            ("tokenizer", "special_tokens", "vocab", "merges", "chat_template")))
    merged = 0
    if cfg.merge:
        merged = sum(p.numel() for p in model.parameters()) * 2 + tok   # 16-bit weights
    kept = (cfg.save_total_limit + 1) if cfg.save_steps > 0 else 0
    return DiskEstimate(ckpt, kept, trainable + tok + (1 << 16), merged)


def check(cfg: TrainConfig, out: Path, est: DiskEstimate) -> int:
    """Free bytes of ``out``'s disk; raises TrainRefused when the run would leave < min_free_gb."""
    probe = out if out.exists() else out.parent
    free = shutil.disk_usage(probe).free
    if free - est.total < cfg.min_free_gb * GB:
        raise TrainRefused(
            f"not enough disk space in {out}: {free / GB:.2f} GB free, the run writes about "
            f"{est.total / GB:.3f} GB ({est.checkpoints_kept} checkpoints of {est.checkpoint / 1e6:.1f} MB, final "
            f"save {est.final / 1e6:.1f} MB" + (f", merged model {est.merged / GB:.2f} GB" if est.merged else "")
            + f") and --min-free-gb {cfg.min_free_gb:g} must stay free. Free some space, lower "
            "--save-total-limit or --save-steps 0, or lower --min-free-gb.")
    return free
