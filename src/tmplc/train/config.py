"""The trainer's options: one dataclass; every field is a CLI flag and a YAML key.

``TrainConfig`` holds every option of ``tmplc train`` with the talk's defaults (LoRA r=16,
alpha=2r, all linear layers, lr 2e-4, batch 2 x accumulation 4, linear schedule with warm-up,
seed 3407, packing on).  ``load_yaml(path)`` reads a config file whose keys are the field
names (``max_steps`` or ``max-steps``); an unknown key is an error that names it.  The CLI
builds its flags from ``FIELDS`` (``--max-steps``, ``--packing/--no-packing``, ...), so a flag
and a key can never drift apart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmplc.errors import TmplcError


class TrainError(TmplcError):
    """Bad trainer input (a config key, a value, a missing file): exit code 2."""

    exit_code = 2


class TrainRefused(TmplcError):
    """The trainer refuses to start (doctor errors, disk space, 4-bit on CPU): exit code 3."""

    exit_code = 3


def _f(default: Any, help: str, **kw: Any) -> Any:
    meta = {"help": help, **{k: kw.pop(k) for k in ("choices", "metavar") if k in kw}}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Every option of ``tmplc train`` / ``tmplc.train(...)`` (see the field help texts)."""

    # what to train, on what, where to
    model: str | None = _f(None, "HF model folder (config + safetensors + tokenizer)", metavar="DIR")
    data: Any = _f(None, "training data: JSONL/JSON/CSV/Parquet (any shape tmplc format reads)", metavar="FILE")
    template: str | None = _f(None, "chat format: registry name, spec or YAML file, or spec text (default: the "
                                    "model folder's own chat_template, where tmplc imports it exactly)", metavar="SPEC")
    out: str | None = _f(None, "output folder (adapter, tokenizer, tmplc.yaml, checkpoints, train-log.jsonl)",
                         metavar="DIR")
    tokenizer: str | None = _f(None, "tokenizer folder (default: the model folder)", metavar="DIR")
    # schedule
    max_steps: int = _f(-1, "optimizer steps (default -1: --epochs over the data)", metavar="N")
    epochs: int = _f(1, "passes over the data when --max-steps is not set", metavar="N")
    learning_rate: float = _f(2e-4, "peak learning rate of the LoRA weights", metavar="LR")
    lr_scheduler: str = _f("linear", "learning-rate schedule after warm-up",
                           choices=["linear", "cosine", "constant"])
    warmup_steps: int = _f(5, "linear warm-up steps", metavar="N")
    weight_decay: float = _f(0.01, "AdamW weight decay", metavar="W")
    max_grad_norm: float = _f(1.0, "gradient clipping (0: off)", metavar="X")
    batch_size: int = _f(2, "per-device batch: conversations per micro-batch (padded), or the token budget "
                            "per micro-batch is batch_size x max_seq_length (packed)", metavar="N")
    grad_accum: int = _f(4, "micro-batches accumulated per optimizer step (per process)", metavar="N")
    max_seq_length: int = _f(2048, "longest conversation in tokens (longer ones: --truncation)", metavar="N")
    pack_tokens: int | None = _f(None, "token budget of one packed micro-batch (default batch_size x "
                                       "max_seq_length)", metavar="N")
    packing: bool = _f(True, "pack whole conversations into rows without cross-document attention "
                             "(--no-packing: padded batches)")
    seed: int = _f(3407, "seed for LoRA init and data order", metavar="N")
    # LoRA
    lora_r: int = _f(16, "LoRA rank", metavar="R")
    lora_alpha: float | None = _f(None, "LoRA alpha (default 2 x r)", metavar="A")
    lora_dropout: float = _f(0.0, "LoRA dropout", metavar="P")
    use_rslora: bool = _f(False, "rank-stabilised LoRA (scale alpha/sqrt(r))")
    target_modules: list = _f(["all-linear"], "modules to adapt (default all linear layers: q,k,v,o,gate,up,down)",
                              metavar="NAME")
    train_embeddings: bool = _f(False, "also train embed_tokens and lm_head (own learning rate)")
    embedding_learning_rate: float | None = _f(None, "learning rate of embed_tokens/lm_head (default lr/10)",
                                               metavar="LR")
    load_in_4bit: bool = _f(False, "QLoRA: load the base in 4-bit (bitsandbytes; CUDA only)")
    gradient_checkpointing: bool = _f(False, "recompute activations in the backward pass (less memory)")
    # formatting
    policy: str = _f("assistant", "masking policy (see tmplc format --policy)", metavar="POLICY")
    truncation: str = _f("truncate", "conversations longer than --max-seq-length",
                         choices=["truncate", "drop", "error"])
    special_tokens: str = _f("text", "special-token text inside content", choices=["text", "control"])
    backend: str = _f("auto", "tokenizer engine", choices=["auto", "hf", "tiktoken"])
    source: str = _f("auto", "row shape", choices=["auto", "openai", "sharegpt", "alpaca", "prompt_completion",
                                                    "merged"])
    merged_prompt: str | None = _f(None, "build the user message from columns (see tmplc format)", metavar="T")
    output_column: str = _f("output", "with --merged-prompt: the assistant column", metavar="COL")
    default_system: str | None = _f(None, "system message for rows that have none", metavar="TEXT")
    num_proc: int | None = _f(None, "formatting worker processes (datasets.map)", metavar="N")
    ray: bool = _f(False, "format with Ray Data (map_batches) instead of datasets.map")
    cache_dir: str | None = _f(None, "tokenized-data cache (default ~/.cache/tmplc/train-data)", metavar="DIR")
    # engine
    device: str = _f("auto", "cuda, cpu or auto", metavar="DEV")
    dtype: str = _f("auto", "weights/compute dtype (auto: bf16 on a GPU that has it, else float32)",
                    choices=["auto", "bfloat16", "float16", "float32"])
    attention: str = _f("auto", "packed attention: flex (document BlockMask; CUDA), sdpa (dense block-diagonal "
                                "mask), or auto (flex on CUDA, sdpa otherwise; sdpa if flex fails)",
                        choices=["auto", "flex", "sdpa", "eager"])
    loss: str = _f("auto", "loss: chunked (fused lm_head + cross-entropy, no logits tensor) or hf (full logits)",
                   choices=["auto", "chunked", "hf"])
    compile: bool = _f(False, "torch.compile each decoder layer (CUDA; static packed shapes)")
    liger: bool = _f(False, "use liger-kernel's rope/rms_norm/swiglu (if installed)")
    # checkpoints, disk, logging
    save_steps: int = _f(500, "save a checkpoint every N steps (0: only the final save)", metavar="N")
    save_total_limit: int = _f(2, "keep at most N checkpoints", metavar="N")
    resume: bool = _f(False, "resume from the last checkpoint in --out")
    min_free_gb: float = _f(1.0, "refuse to start unless this much disk stays free after the estimated "
                                 "checkpoints and final save", metavar="GB")
    logging_steps: int = _f(10, "log every N steps to OUT/train-log.jsonl", metavar="N")
    report_to: list = _f([], "also log to: tensorboard, wandb", metavar="SINK")
    progress: bool = _f(True, "progress bar (loss, tokens/s, ETA)")
    merge: bool = _f(False, "also write merged weights (a full HF model) to OUT/merged")
    ignore: list = _f([], "doctor finding codes to go on despite (recorded in the output)", metavar="CODE")

    def __post_init__(self) -> None:
        if self.lora_alpha is None:
            self.lora_alpha = 2.0 * self.lora_r
        if self.embedding_learning_rate is None:
            self.embedding_learning_rate = self.learning_rate / 10.0
        for name in ("batch_size", "grad_accum", "max_seq_length", "lora_r", "epochs", "logging_steps"):
            if int(getattr(self, name)) < 1:
                raise TrainError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.save_total_limit < 1:
            raise TrainError("save_total_limit must be at least 1")
        for s in self.report_to:
            if s not in ("tensorboard", "wandb"):
                raise TrainError(f"report_to: unknown sink {s!r} (tensorboard, wandb)")

    @property
    def budget(self) -> int:
        """Tokens per packed micro-batch."""
        return int(self.pack_tokens or self.batch_size * self.max_seq_length)

    def missing(self) -> list[str]:
        return [k for k in ("model", "data", "out") if getattr(self, k) in (None, "")]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if not isinstance(d["data"], (str, type(None))):
            d["data"] = f"<{len(d['data'])} rows>"
        return d


FIELDS = [f for f in dataclasses.fields(TrainConfig)]
NAMES = {f.name for f in FIELDS}


def _key(k: str) -> str:
    return k.replace("-", "_")


def load_yaml(path: str | Path) -> dict:
    """The options in a YAML config file (keys: field names, '-' or '_'); errors name file and key."""
    import yaml

    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise TrainError(f"{path}: cannot read the config: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise TrainError(f"{where}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise TrainError(f"{path}: a train config is a mapping of option: value")
    out = {}
    for k, v in raw.items():
        name = _key(str(k))
        if name not in NAMES:
            raise TrainError(f"{path}: unknown option {k!r} (known: {', '.join(sorted(NAMES))})")
        out[name] = v
    base = p.parent
    for k in ("model", "data", "out", "tokenizer", "cache_dir"):  # relative paths: relative to the file
        if isinstance(out.get(k), str) and out[k] and not Path(out[k]).is_absolute() and (base / out[k]).exists():
            out[k] = str(base / out[k])
    return out


def make_config(values: dict | None = None, **overrides: Any) -> TrainConfig:
    """A checked TrainConfig from a dict (YAML values) and keyword overrides (None = not given)."""
    merged = dict(values or {})
    merged.update({_key(k): v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(merged) - NAMES)
    if unknown:
        raise TrainError(f"unknown option(s): {', '.join(unknown)}")
    for name in ("target_modules", "report_to", "ignore"):
        v = merged.get(name)
        if isinstance(v, str):
            merged[name] = [x for x in v.replace(",", " ").split() if x]
    try:
        return TrainConfig(**merged)
    except TypeError as e:
        raise TrainError(str(e)) from None
