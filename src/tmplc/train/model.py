"""Loading the base model and tokenizer, and attaching LoRA adapters (PEFT).

Defaults from the talk: r=16, alpha=2r (or rsLoRA), every linear layer of the decoder (PEFT's
``all-linear``: q, k, v, o, gate, up, down; never the lm_head), dropout 0.  ``embed_tokens`` and
``lm_head`` train only with ``train_embeddings`` (PEFT ``modules_to_save``), and then with their
own learning rate.  ``load_in_4bit`` needs bitsandbytes and CUDA and is refused elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from tmplc.train.config import TrainConfig, TrainError, TrainRefused


def pick_device(cfg: TrainConfig):
    import torch

    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(cfg.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainRefused("--device cuda: no CUDA GPU is visible on this machine")
    return dev


def pick_dtype(cfg: TrainConfig, device):
    import torch

    if cfg.dtype != "auto":
        return getattr(torch, cfg.dtype)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_tokenizer(cfg: TrainConfig):
    from transformers import AutoTokenizer

    path = cfg.tokenizer or cfg.model
    if not (Path(path) / "tokenizer.json").is_file() and not (Path(path) / "tokenizer_config.json").is_file():
        raise TrainError(f"{path}: no tokenizer (tokenizer.json / tokenizer_config.json); pass --tokenizer DIR")
    return AutoTokenizer.from_pretrained(path)


def load_base(cfg: TrainConfig, device, dtype):
    """The base causal LM on ``device`` in ``dtype`` (4-bit with ``load_in_4bit``)."""
    from transformers import AutoModelForCausalLM

    if not (Path(cfg.model) / "config.json").is_file():
        raise TrainError(f"--model {cfg.model}: not an HF model folder (no config.json)")
    kw = {"dtype": dtype}
    if cfg.load_in_4bit:
        if device.type != "cuda":
            raise TrainRefused("--load-in-4bit needs a CUDA GPU and bitsandbytes; this run is on "
                               f"{device.type}: drop --load-in-4bit (LoRA in {str(dtype).split('.')[-1]})")
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError:
            raise TrainRefused("--load-in-4bit needs bitsandbytes: pip install bitsandbytes") from None
        kw["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                       bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
        kw["device_map"] = {"": device.index or 0}
    model = AutoModelForCausalLM.from_pretrained(cfg.model, **kw)
    if not cfg.load_in_4bit:
        model.to(device)
    return model


def lora_config(cfg: TrainConfig):
    from peft import LoraConfig

    targets = cfg.target_modules
    target = "all-linear" if targets == ["all-linear"] else list(targets)
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      use_rslora=cfg.use_rslora, target_modules=target, bias="none", task_type="CAUSAL_LM",
                      modules_to_save=["embed_tokens", "lm_head"] if cfg.train_embeddings else None)


def attach_lora(cfg: TrainConfig, model):
    """A PEFT model with fresh adapters (seeded by cfg.seed)."""
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training

    if cfg.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    elif cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    torch.manual_seed(cfg.seed)
    return get_peft_model(model, lora_config(cfg))


def param_groups(cfg: TrainConfig, model) -> list[dict]:
    """LoRA weights at the learning rate; embed_tokens/lm_head copies at their own."""
    main, emb = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (emb if ("embed_tokens" in name or "lm_head" in name) and "lora_" not in name else main).append(p)
    groups = [{"params": main, "lr": cfg.learning_rate, "weight_decay": cfg.weight_decay}]
    if emb:
        groups.append({"params": emb, "lr": cfg.embedding_learning_rate, "weight_decay": 0.0})
    return groups
