"""Checkpoints: ``OUT/checkpoint-STEP/`` (adapter, optimizer, scheduler, RNG, step), rotation, resume.

A checkpoint is written into a temporary folder and renamed when complete, so a crash never
leaves a half checkpoint that ``--resume`` would pick; then the oldest ones beyond
``save_total_limit`` are deleted.  Resuming restores the adapter weights, the optimizer and
scheduler state, the RNG state and the step; the data order is a function of (seed, epoch), so the
run continues with exactly the micro-batches it would have seen.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

PATTERN = re.compile(r"^checkpoint-(\d+)$")


def list_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``out``, oldest first."""
    if not out.is_dir():
        return []
    found = []
    for d in out.iterdir():
        m = PATTERN.match(d.name)
        if m and d.is_dir() and (d / "trainer_state.json").is_file():
            found.append((int(m.group(1)), d))
    return sorted(found)


def rotate(out: Path, limit: int) -> list[Path]:
    """Delete the oldest checkpoints beyond ``limit``; returns the deleted folders."""
    cps = list_checkpoints(out)
    gone = [d for _, d in cps[:max(0, len(cps) - limit)]]
    for d in gone:
        shutil.rmtree(d, ignore_errors=True)
    return gone


def save(out: Path, step: int, model, optimizer, scheduler, state: dict, limit: int) -> Path:
    import torch

    final = out / f"checkpoint-{step}"
    tmp = out / f".checkpoint-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, tmp / "rng.pt")
    (tmp / "trainer_state.json").write_text(json.dumps({**state, "step": step}, indent=1), encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    rotate(out, limit)
    return final


def load(d: Path, model, optimizer, scheduler) -> dict:
    """Restore a checkpoint into ``model`` (PEFT), ``optimizer`` and ``scheduler``; returns its state."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = d / "adapter_model.safetensors"
    sd = load_file(str(weights), device=str(next(model.parameters()).device))
    set_peft_model_state_dict(model, sd)
    optimizer.load_state_dict(torch.load(d / "optimizer.pt", map_location="cpu", weights_only=True))
    scheduler.load_state_dict(torch.load(d / "scheduler.pt", map_location="cpu", weights_only=True))
    rng = torch.load(d / "rng.pt", map_location="cpu", weights_only=False)
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads((d / "trainer_state.json").read_text(encoding="utf-8"))
