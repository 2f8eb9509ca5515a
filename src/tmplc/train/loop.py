"""The training run: doctor -> data -> model + LoRA -> disk guard -> steps -> checkpoints -> save.

One optimizer step = ``grad_accum`` micro-batches on each of ``world`` processes (torchrun /
``accelerate launch`` set ``WORLD_SIZE``/``RANK``; gloo on CPU, NCCL on CUDA).  Micro-batch ``k``
of the global order goes to process ``k % world``, so one process with accumulation ``2 x A`` and
two with ``A`` see the same global batch; the summed loss is divided by the target-token count of
the whole global step (known from the plan, no collective), so they also compute the same
gradient.  The loss is read back from the device only at logging steps.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tmplc.train import attention as attn
from tmplc.train import checkpoints, diskguard
from tmplc.train.config import TrainConfig, TrainError, TrainRefused
from tmplc.train.packing import Batch, collate_packed, collate_padded, plan_epoch


@dataclass
class TrainResult:
    out: Path
    steps: int
    loss: float | None
    attention: str
    loss_mode: str
    cache_hit: bool
    log: Path
    fallback: str | None = None
    doctor: dict = field(default_factory=dict)
    merged: Path | None = None


@dataclass
class Dist:
    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Dist":
        return cls(int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as td

            td.barrier()


class Plan:
    """The global order of micro-batches over epochs (a pure function of lengths, seed, epoch)."""

    def __init__(self, data, cfg: TrainConfig, world: int) -> None:
        self.data, self.cfg, self.world = data, cfg, world
        self.per_step = cfg.grad_accum * world
        self.lengths = data.lengths
        self._epochs: list[list[np.ndarray]] = []
        self._starts: list[int] = [0]
        targets = (data.labels != -100).astype(np.int64)
        first = data.offsets[:-1]
        csum = np.concatenate([[0], np.cumsum(targets)])
        # targets of a conversation = its labels after the first token
        self.doc_targets = csum[data.offsets[1:]] - csum[first + 1]
        if cfg.max_steps > 0:
            self.total_steps = cfg.max_steps
        else:
            for e in range(cfg.epochs):
                self._epoch(e)
            n = self._starts[-1]
            self.total_steps = math.ceil(n / self.per_step) if world == 1 else n // self.per_step
            if self.total_steps < 1:
                raise TrainError(f"the data makes {n} micro-batches, fewer than one global step "
                                 f"({self.per_step}); lower --grad-accum or the number of processes")
        self.unused = 0 if cfg.max_steps > 0 or world == 1 else self._starts[-1] - self.total_steps * self.per_step

    def _epoch(self, e: int) -> list[np.ndarray]:
        while len(self._epochs) <= e:
            k = len(self._epochs)
            mb = plan_epoch(self.lengths, seed=self.cfg.seed, epoch=k, packing=self.cfg.packing,
                            budget=self.cfg.budget, batch_size=self.cfg.batch_size)
            self._epochs.append(mb)
            self._starts.append(self._starts[-1] + len(mb))
        return self._epochs[e]

    def micro(self, k: int) -> tuple[int, np.ndarray] | None:
        """(epoch, conversation indices) of global micro-batch ``k``."""
        e = 0
        while True:
            if self.cfg.max_steps <= 0 and e >= self.cfg.epochs:
                return None
            mb = self._epoch(e)
            if k < self._starts[e + 1]:
                return e, mb[k - self._starts[e]]
            e += 1

    def step(self, s: int) -> list[tuple[int, np.ndarray]]:
        """All global micro-batches of step ``s`` (index order)."""
        out = []
        for j in range(self.per_step):
            m = self.micro(s * self.per_step + j)
            if m is not None:
                out.append(m)
        return out


def _forward_args(batch: Batch, impl: str, dtype, device) -> dict:
    import torch

    b = batch.to(device)
    kw = {"input_ids": b.input_ids, "targets": b.targets}
    idx = (batch.targets.flatten() != -100).nonzero()[:, 0]   # on the CPU: no device sync
    kw["target_index"] = idx.to(device, non_blocking=True)
    if batch.packed:
        kw["position_ids"] = b.position_ids
        kw["attention_mask"] = attn.packed_mask(impl, batch.seq_lens, dtype, device)
    else:
        kw["attention_mask"] = b.attention_mask
    return kw


def model_format(cfg: TrainConfig, *, quiet: bool = False):
    """The training format when ``--template`` is not given: the model folder's own chat_template,
    imported exactly (:func:`tmplc.doctor.template.folder_format`).  TrainError where the folder has
    none or the import is refused: the trainer never guesses a format."""
    from tmplc.doctor.template import folder_format

    fmt, why = folder_format(cfg.model, cfg.tokenizer)
    if fmt is None:
        raise TrainError(f"no --template given, and the model folder's own format cannot be used: {why}; pass the "
                         "format you train with (--template NAME|SPEC|FILE), or write it into the folder first "
                         "(tmplc fix MODEL --template NAME --out DIR)")
    if not quiet:
        print(f"tmplc train: format: the model folder's chat_template ({fmt.name})", file=sys.stderr)
    return fmt


class Trainer:
    """Holds a run's state; ``run()`` trains and saves (see the module docstring)."""

    def __init__(self, cfg: TrainConfig) -> None:
        missing = cfg.missing()
        if missing:
            raise TrainError("missing option(s): " + ", ".join("--" + m.replace("_", "-") for m in missing))
        self.cfg = cfg
        self.dist = Dist.from_env()
        self.out = Path(cfg.out).resolve()

    # -- setup -----------------------------------------------------------------------------
    def setup(self) -> None:
        import torch

        from tmplc.api import load
        from tmplc.formatter.tokenizer_info import with_end_of_turn
        from tmplc.train import model as mdl
        from tmplc.train.data import prepare
        from tmplc.train.doctor_gate import run_doctor

        cfg, dist = self.cfg, self.dist
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.resume and not checkpoints.list_checkpoints(self.out):
            raise TrainError(f"--resume: no checkpoint in {self.out}")
        self.device = mdl.pick_device(cfg)
        if self.device.type == "cuda" and dist.world > 1:
            self.device = torch.device("cuda", dist.local_rank)
            torch.cuda.set_device(self.device)
        if dist.world > 1:
            import torch.distributed as td

            if not td.is_initialized():
                td.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
        if cfg.load_in_4bit and self.device.type != "cuda":
            raise TrainRefused("--load-in-4bit needs a CUDA GPU and bitsandbytes; this machine has none: "
                               "drop --load-in-4bit")
        self.dtype = mdl.pick_dtype(cfg, self.device)
        self.fmt = load(cfg.template) if cfg.template else model_format(cfg, quiet=not dist.main)
        self.tokenizer = mdl.load_tokenizer(cfg)
        # recorded in tmplc.yaml: the export then stops on the token that ends a turn, not the EOS
        self.fmt = with_end_of_turn(self.fmt, self.tokenizer)
        self.doctor = run_doctor(cfg, self.fmt, quiet=not dist.main)
        if dist.main:
            self.data = prepare(cfg, self.fmt, self.tokenizer)
        dist.barrier()
        if not dist.main:
            self.data = prepare(cfg, self.fmt, self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        longest = int(self.data.lengths.max())
        if cfg.packing and longest > cfg.budget:
            raise TrainError(f"a conversation has {longest} tokens, more than the packing budget {cfg.budget}: "
                             "raise --pack-tokens or lower --max-seq-length")
        self.plan = Plan(self.data, cfg, dist.world)
        base = mdl.load_base(cfg, self.device, self.dtype)
        if cfg.liger:
            self._apply_liger(base)
        self.model = mdl.attach_lora(cfg, base)
        if dist.main:
            est = diskguard.estimate(cfg, self.model, cfg.tokenizer or cfg.model)
            diskguard.check(cfg, self.out, est)
        self._setup_attention()
        self._setup_optimizer()

    def _apply_liger(self, base) -> None:
        try:
            from liger_kernel.transformers import _apply_liger_kernel_to_instance
        except ImportError:
            raise TrainError("--liger needs liger-kernel: pip install liger-kernel") from None
        _apply_liger_kernel_to_instance(model=base, rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                        fused_linear_cross_entropy=False)

    def _setup_attention(self) -> None:
        from tmplc.train.loss import LossModule, chunked_supported

        cfg = self.cfg
        self.impl = attn.default_impl(cfg.attention, self.device.type) if cfg.packing else (
            "sdpa" if cfg.attention in ("auto", "flex") else cfg.attention)
        attn.set_impl(self.model, self.impl)
        mode = cfg.loss
        if mode == "auto":
            mode = "chunked" if chunked_supported(self.model.get_base_model()) else "hf"
        elif mode == "chunked" and not chunked_supported(self.model.get_base_model()):
            raise TrainError("--loss chunked: this model's logits are not a plain lm_head projection; use --loss hf")
        self.loss_mode = mode
        self.lm = LossModule(self.model, mode)
        if cfg.compile:
            for layer in self.model.get_base_model().model.layers:
                layer.compile(dynamic=False)
        self.fallback: str | None = None

    def _setup_optimizer(self) -> None:
        import torch
        from transformers import get_scheduler

        from tmplc.train.model import param_groups

        groups = param_groups(self.cfg, self.model)
        fused = {"fused": True} if self.device.type == "cuda" and not self.cfg.load_in_4bit else {}
        self.optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8, **fused)
        name = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[self.cfg.lr_scheduler]
        self.scheduler = get_scheduler(name, self.optimizer, num_warmup_steps=self.cfg.warmup_steps,
                                       num_training_steps=self.plan.total_steps)
        self.ddp = self.lm
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.ddp = DDP(self.lm, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    # -- steps -----------------------------------------------------------------------------
    def batch(self, docs) -> Batch:
        pad_to = self.cfg.budget if (self.cfg.compile and self.cfg.packing) else None
        if self.cfg.packing:
            return collate_packed(self.data, docs, pad_id=self.pad_id, pad_to=pad_to)
        return collate_padded(self.data, docs, pad_id=self.pad_id)

    def probe_attention(self, docs) -> None:
        """One forward+backward under flex; on failure switch to the dense-mask path (recorded)."""
        if self.impl != "flex":
            return
        try:
            kw = _forward_args(self.batch(docs), "flex", self.dtype, self.device)
            self.lm(**kw).backward()
        except Exception as e:  # inductor/triton/CPU-backward failures: fall back, never leak
            reason = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            self.fallback = f"flex_attention failed ({reason}); using sdpa with a dense block-diagonal mask"
            if self.dist.main:
                print(f"tmplc train: warning: {self.fallback}", file=sys.stderr)
            self.impl = "sdpa"
            attn.set_impl(self.model, "sdpa")
        finally:
            self.optimizer.zero_grad(set_to_none=True)

    def train_step(self, micro: list, n_global_targets: int) -> "object":
        """Forward/backward of this process's micro-batches of one step; returns the loss share."""
        import contextlib

        import torch

        scale = self.dist.world / max(1, n_global_targets)
        acc = torch.zeros((), dtype=torch.float32, device=self.device)
        for j, docs in enumerate(micro):
            last = j == len(micro) - 1
            ctx = self.ddp.no_sync() if (self.dist.world > 1 and not last) else contextlib.nullcontext()
            with ctx:
                loss = self.ddp(**_forward_args(self.batch(docs), self.impl, self.dtype, self.device))
                (loss * scale).backward()
            acc += loss.detach()
        if self.cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                           self.cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return acc / max(1, n_global_targets)

    def run(self) -> TrainResult:
        import torch

        from tmplc.train.log import RunLog

        self.setup()
        cfg, dist, plan = self.cfg, self.dist, self.plan
        start = 0
        if cfg.resume:
            step_dir = checkpoints.list_checkpoints(self.out)[-1][1]
            state = checkpoints.load(step_dir, self.model, self.optimizer, self.scheduler)
            start = int(state["step"])
        first = plan.step(start)
        if not first:
            raise TrainError(f"nothing to train: step {start} is past the end of the plan")
        mine = [d for k, (_, d) in enumerate(first) if k % dist.world == dist.rank]
        self.probe_attention(mine[0] if mine else first[0][1])
        log = RunLog(self.out, report_to=cfg.report_to, enabled=dist.main, progress=cfg.progress,
                     total=plan.total_steps, initial=start)
        log.event({"event": "resume" if cfg.resume else "start", "step": start, "total_steps": plan.total_steps,
                   "attention": self.impl, "loss_mode": self.loss_mode, "fallback": self.fallback,
                   "world_size": dist.world, "conversations": len(self.data), "cache_hit": self.data.cache_hit,
                   "unused_micro_batches": plan.unused})
        window = torch.zeros((), dtype=torch.float32, device=self.device)
        n_window, real_window, trained_window, t0 = 0, 0, 0, time.perf_counter()
        last_loss = None
        t_start = time.perf_counter()
        for s in range(start, plan.total_steps):
            micro = plan.step(s)
            n_targets = int(sum(int(plan.doc_targets[d].sum()) for _, d in micro))
            mine = [d for k, (_, d) in enumerate(micro) if k % dist.world == dist.rank]
            window += self.train_step(mine, n_targets)
            n_window += 1
            real_window += int(sum(int(plan.lengths[d].sum()) for _, d in micro))
            trained_window += n_targets
            log.step()
            step = s + 1
            if step % cfg.logging_steps == 0 or step == plan.total_steps:
                if dist.world > 1:
                    import torch.distributed as td

                    td.all_reduce(window)
                last_loss = float(window.item()) / n_window
                dt = time.perf_counter() - t0
                log.metrics({"step": step, "epoch": micro[-1][0], "loss": round(last_loss, 6),
                             "learning_rate": self.scheduler.get_last_lr()[0],
                             "tokens_per_second": round(real_window / dt, 2) if dt > 0 else 0.0,
                             "trained_tokens": trained_window, "elapsed_s": round(time.perf_counter() - t_start, 3)})
                window.zero_()
                n_window, real_window, trained_window, t0 = 0, 0, 0, time.perf_counter()
            if cfg.save_steps > 0 and step % cfg.save_steps == 0 and step < plan.total_steps:
                if dist.main:
                    checkpoints.save(self.out, step, self.model, self.optimizer, self.scheduler,
                                     {"epoch": micro[-1][0], "total_steps": plan.total_steps}, cfg.save_total_limit)
                dist.barrier()
        log.close()
        merged = None
        if dist.main:
            merged = self.save(plan.total_steps, last_loss)
        dist.barrier()
        return TrainResult(self.out, plan.total_steps, last_loss, self.impl, self.loss_mode, self.data.cache_hit,
                           self.out / "train-log.jsonl", self.fallback, self.doctor, merged)

    def save(self, steps: int, loss: float | None) -> Path | None:
        import platform

        import peft
        import torch
        import transformers

        from tmplc import __version__
        from tmplc.train import save as sv

        if self.cfg.save_steps > 0:  # the last step is a checkpoint too, so --resume after the end is a no-op
            checkpoints.save(self.out, steps, self.model, self.optimizer, self.scheduler,
                             {"total_steps": steps}, self.cfg.save_total_limit)
        record = {
            "tmplc": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "python": platform.python_version(), "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""), "attention": self.impl, "attention_fallback": self.fallback,
            "loss_mode": self.loss_mode, "steps": steps, "final_loss": loss, "world_size": self.dist.world,
            "doctor": self.doctor, "data": {"cache_key": self.data.key, "conversations": len(self.data),
                                            "summary": self.data.summary},
            "config": self.cfg.to_dict(), "template": self.fmt.name,
        }
        sv.save_adapter(self.out, self.model, self.fmt, self.tokenizer, record)
        if self.cfg.merge:
            if self.cfg.load_in_4bit:
                raise TrainRefused("--merge with --load-in-4bit: merging into 4-bit weights loses precision; "
                                   "the adapter is saved: merge it with tmplc export --adapter")
            return sv.save_merged(self.out, self.model, self.fmt, self.tokenizer)
        return None


def train(cfg: TrainConfig) -> TrainResult:
    return Trainer(cfg).run()
