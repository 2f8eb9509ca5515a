"""Tiny random models with the real fixture vocabularies (import the fixtures from here), built once per
test session and copied per test (each test plants its own fault in its own copy)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import tokenizer_dir

# fixture -> (architecture, config kwargs).  Rows = the tokenizer's size unless given.
ARCH = {
    "llama3": ("llama", dict(bos_token_id=128000, eos_token_id=[128001, 128009])),
    "llama2": ("llama", dict(bos_token_id=1, eos_token_id=2)),
    "qwen3": ("qwen3", dict(vocab_size=151936, eos_token_id=151645, pad_token_id=151643, bos_token_id=None)),
    "gemma3": ("gemma3", dict(bos_token_id=2, eos_token_id=[1, 106], pad_token_id=0)),
}


def _config(arch: str, vocab: int, tied: bool, extra: dict):
    common = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=tied, max_position_embeddings=512)
    common.update(extra)
    if arch == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        return LlamaConfig(**common), LlamaForCausalLM
    if arch == "qwen3":
        from transformers import Qwen3Config, Qwen3ForCausalLM

        return Qwen3Config(head_dim=16, **common), Qwen3ForCausalLM
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    return Gemma3TextConfig(head_dim=16, sliding_window=64, **common), Gemma3ForCausalLM


def build(name: str, out: Path, tied: bool) -> Path:
    import torch
    from transformers import AutoTokenizer

    src = tokenizer_dir(name)
    arch, extra = ARCH[name]
    extra = dict(extra)
    vocab = extra.pop("vocab_size", None) or len(AutoTokenizer.from_pretrained(str(src)))
    cfg, cls = _config(arch, vocab, tied, extra)
    torch.manual_seed(0)
    model = cls(cfg)
    model.save_pretrained(out)
    for f in src.iterdir():
        shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    cache: dict = {}

    def get(name: str, tied: bool = False) -> Path:
        key = (name, tied)
        if key not in cache:
            cache[key] = build(name, tmp_path_factory.mktemp(f"{name}-{'tied' if tied else 'untied'}"), tied)
        return cache[key]

    return get


@pytest.fixture
def model(built, tmp_path):
    """``model(name, tied=False)``: a fresh copy of the built model folder, for planting a fault."""
    def make(name: str, tied: bool = False) -> Path:
        dst = tmp_path / f"{name}-{'tied' if tied else 'untied'}"
        shutil.copytree(built(name, tied), dst)
        return dst

    return make


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    for k, v in changes.items():
        if v is None:
            data.pop(k, None)
        else:
            data[k] = v
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


def set_rows(folder: Path, tensor: str, rows: dict) -> None:
    """Overwrite rows of ``tensor`` in model.safetensors: ``{id: value or tensor}``."""
    import torch
    from safetensors.torch import load_file, save_file

    f = folder / "model.safetensors"
    sd = load_file(str(f))
    w = sd[tensor]
    for i, v in rows.items():
        w[i] = v if isinstance(v, torch.Tensor) else torch.full_like(w[i], float(v))
    save_file(sd, str(f), metadata={"format": "pt"})


EMBED = "model.embed_tokens.weight"
HEAD = "lm_head.weight"
