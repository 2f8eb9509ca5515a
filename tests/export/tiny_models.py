"""Tiny random models built from configs, saved with the real fixture tokenizers (no hub)."""

from __future__ import annotations

import shutil
from pathlib import Path

ARCH = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", "llama3"),
    "mistral": ("MistralConfig", "MistralForCausalLM", "llama2"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", "qwen3"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", "qwen3"),
}


def make_tiny(kind: str, tokenizer_dir: Path, out: Path, *, dtype: str = "float32", seed: int = 0,
              tie: bool | None = None, template: str | None = None, **overrides) -> Path:
    """Save a tiny random ``kind`` model with the tokenizer of ``tokenizer_dir`` into ``out``.

    ``template``: a tmplc format whose HF Jinja becomes the saved tokenizer's chat_template and
    whose spec is recorded as ``tmplc.yaml`` (what the trainer saves); None keeps the fixture's files."""
    import torch
    import transformers
    from transformers import AutoTokenizer

    cfg_cls, model_cls, _ = ARCH[kind]
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    n_vocab = len(tok)
    if kind in ("qwen2", "qwen3"):
        n_vocab = ((n_vocab + 63) // 64) * 64 + 64  # holes up to the embedding rows, as Qwen ships
    kw = dict(vocab_size=n_vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6,
              tie_word_embeddings=bool(tie) if tie is not None else kind in ("qwen2", "qwen3"))
    if kind == "qwen3":
        kw["head_dim"] = 32
    kw.update(overrides)
    cfg = getattr(transformers, cfg_cls)(**kw)
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(cfg).to(getattr(torch, dtype))
    with torch.no_grad():  # make the random init less degenerate: larger, distinct weights
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.08)
    out.mkdir(parents=True, exist_ok=True)
    if template is not None:  # what a trainer saves: generation stops at the format's end of turn
        import tmplc

        fmt = tmplc.load(template)
        eot = tok.convert_tokens_to_ids(fmt.eot_token)
        gc = model.generation_config
        gc.eos_token_id = eot
        gc.bos_token_id = tok.bos_token_id
        gc.pad_token_id = tok.pad_token_id
        model.config.eos_token_id = eot
        model.config.bos_token_id = tok.bos_token_id
        model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(str(out), safe_serialization=True)
    if template is None:
        for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"):
            if (tokenizer_dir / f).is_file():
                shutil.copy(tokenizer_dir / f, out / f)
    else:
        import tmplc

        fmt = tmplc.load(template)
        tok.chat_template = fmt.to_jinja()
        tok.save_pretrained(str(out))
        (out / "tmplc.yaml").write_text(fmt.to_yaml(), encoding="utf-8")
    return out
