"""Tiny random models (built from configs) with the real fixture tokenizers, and small data sets."""

from __future__ import annotations

import json
import random
from pathlib import Path

from conftest import tokenizer_dir

SHAPES = {
    # llama3 fixture tokenizer + a Llama-shaped model; qwen3 fixture + a Qwen3-shaped one
    "llama3": ("LlamaConfig", "LlamaForCausalLM", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                       num_attention_heads=4, num_key_value_heads=2,
                                                       max_position_embeddings=1024, tie_word_embeddings=False)),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                      num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                                                      max_position_embeddings=1024, tie_word_embeddings=True)),
}


EOT = {"llama3": "<|eot_id|>", "qwen3": "<|im_end|>"}


def tiny_model(root: Path, name: str, seed: int = 0, stop_at_eot: bool = True) -> Path:
    """A saved tiny random model + the real tokenizer of fixture ``name``; cached under ``root``.

    ``stop_at_eot``: generation_config stops at the format's end-of-turn token (as an instruct
    model's does); without it the doctor reports ``eot-not-stop``."""
    import torch
    import transformers
    from transformers import AutoTokenizer

    d = root / f"tiny-{name}{'' if stop_at_eot else '-nostop'}"
    if (d / "config.json").is_file():
        return d
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir(name)))
    cfg_cls, model_cls, kw = SHAPES[name]
    cfg = getattr(transformers, cfg_cls)(vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                                         eos_token_id=tok.eos_token_id, **kw)
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(cfg)
    stops = [tok.eos_token_id]
    if stop_at_eot and tok.convert_tokens_to_ids(EOT[name]) not in stops:
        stops.append(tok.convert_tokens_to_ids(EOT[name]))
    model.generation_config.eos_token_id = stops
    model.save_pretrained(str(d))
    tok.save_pretrained(str(d))
    return d


def conversations(n: int = 40, seed: int = 0) -> list[dict]:
    """``n`` OpenAI-style rows with a learnable pattern (arithmetic answers), some with a system turn."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        msgs = []
        if i % 3 == 0:
            msgs.append({"role": "system", "content": "You add numbers."})
        for _ in range(1 + i % 2):
            a, b = rnd.randint(1, 9), rnd.randint(1, 9)
            msgs.append({"role": "user", "content": f"What is {a} plus {b}?"})
            msgs.append({"role": "assistant", "content": f"{a} plus {b} is {a + b}."})
        rows.append({"messages": msgs})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
