"""``disk-space``: will the checkpoints fit in ``--output-dir``?

Estimate: one checkpoint = the model's weights as stored (the safetensors files' size: a full
fine-tune saves that much per checkpoint, plus optimizer state when it is saved: AdamW keeps two
fp32 moments, 4x a bf16 model — counted with ``optimizer=True``); LoRA adapters are far smaller,
so this is an upper bound for them.  ``keep`` checkpoints (the trainer's ``save_total_limit``;
default 2) must fit in the free space of the output folder (or its nearest existing parent)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tmplc.doctor.findings import Finding


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def disk_findings(output_dir, weights_bytes: int, keep: int = 2, optimizer: bool = False) -> list[Finding]:
    if output_dir is None or weights_bytes <= 0:
        return []
    p = Path(output_dir).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    free = shutil.disk_usage(p).free
    per = weights_bytes * (5 if optimizer else 1)
    need = per * keep
    details = {"output_dir": str(output_dir), "free_bytes": free, "checkpoint_bytes": per, "keep": keep,
               "needed_bytes": need}
    if free < per:
        return [Finding("disk-space", "error",
                        f"one checkpoint (~{_gib(per)}) does not fit in {output_dir} ({_gib(free)} free): the first "
                        "save fails, after hours of training",
                        "free space, or point --output-dir elsewhere", details)]
    if free < need:
        return [Finding("disk-space", "warning",
                        f"{keep} checkpoints (~{_gib(per)} each, {_gib(need)}) do not fit in {output_dir} "
                        f"({_gib(free)} free): a later save fails",
                        "lower save_total_limit, free space, or point --output-dir elsewhere", details)]
    return []
