"""Run logging: ``OUT/train-log.jsonl`` (one object per logging step), a progress bar, and
TensorBoard / Weights & Biases only when asked (``report_to``).

Each JSONL line has ``step``, ``epoch``, ``loss`` (mean over the steps since the last line),
``learning_rate``, ``tokens_per_second`` (real, non-pad tokens of all processes),
``trained_tokens`` and ``elapsed_s``.  Lines are appended and flushed, so a resumed run continues
the same file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tmplc.train.config import TrainError


class RunLog:
    def __init__(self, out: Path, *, report_to: list, enabled: bool, progress: bool, total: int,
                 initial: int) -> None:
        self.enabled = enabled
        self.path = out / "train-log.jsonl"
        self._f = self.path.open("a", encoding="utf-8") if enabled else None
        self._tb = self._wandb = None
        if enabled and "tensorboard" in report_to:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise TrainError("--report-to tensorboard needs tensorboard: pip install tensorboard") from None
            self._tb = SummaryWriter(str(out / "runs"))
        if enabled and "wandb" in report_to:
            try:
                import wandb
            except ImportError:
                raise TrainError("--report-to wandb needs wandb: pip install wandb") from None
            self._wandb = wandb.init(dir=str(out), config={})
        self._bar = None
        if enabled and progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc="tmplc train", unit="step", file=sys.stderr,
                             dynamic_ncols=True)

    def event(self, record: dict) -> None:
        """A non-metric line (fallbacks, resume, notes)."""
        if self._f:
            self._f.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._f.flush()

    def step(self, n: int = 1) -> None:
        if self._bar:
            self._bar.update(n)

    def metrics(self, record: dict) -> None:
        if not self.enabled:
            return
        self.event(record)
        if self._bar:
            self._bar.set_postfix(loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_second']:,.0f}",
                                  refresh=False)
        if self._tb:
            for k in ("loss", "learning_rate", "tokens_per_second"):
                self._tb.add_scalar(f"train/{k}", record[k], record["step"])
        if self._wandb:
            self._wandb.log({f"train/{k}": v for k, v in record.items() if isinstance(v, (int, float))},
                            step=record["step"])

    def close(self) -> None:
        if self._bar:
            self._bar.close()
        if self._f:
            self._f.close()
        if self._tb:
            self._tb.close()
        if self._wandb:
            self._wandb.finish()
