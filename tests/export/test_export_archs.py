"""Qwen2 (biases, tied embeddings), Qwen3 (q/k norms) with the Qwen3 tokenizer, and Mistral with a
SentencePiece tokenizer (Llama-2's): each exported, loaded by llama.cpp, checked against torch."""

from __future__ import annotations

import pytest

from tmplc.gguf_container import read_gguf

CASES = {
    "qwen2": ("qwen2", "qwen3", "qwen2.5", "f16"),
    "qwen3": ("qwen3", "qwen3", "qwen3", "f32"),
    "mistral": ("mistral", "llama2", "llama-2", "f32,q8_0"),
}


@pytest.mark.parametrize("key", list(CASES))
def test_exports_and_every_check_passes(exported, key):
    kind, fixture, template, types = CASES[key]
    model, out, report = exported(key, kind, fixture, template, types)
    assert report.ok, report.summary()
    logits = [c for c in report.checks if c.name.startswith("logits_")]
    assert logits and all(c.ok for c in logits)
    assert report.check("token_ids").data["renders"] >= 20


def test_qwen2_biases_tied_embeddings_and_vocab_holes(exported):
    model, out, report = exported("qwen2", *CASES["qwen2"])
    f = read_gguf(next(out.glob("*-F16.gguf")))
    names = {t.name for t in f.tensors}
    assert {"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias"} <= names
    assert "output.weight" not in names  # tied: llama.cpp reuses token_embd
    tokens = f.get("tokenizer.ggml.tokens")
    types = f.get("tokenizer.ggml.token_type")
    emb = next(t for t in f.tensors if t.name == "token_embd.weight")
    assert len(tokens) == emb.shape[1]  # ggml order: (n_embd, n_vocab)
    assert tokens[-1] == f"[PAD{len(tokens) - 1}]" and types[-1] == 5  # UNUSED
    assert f.get("tokenizer.ggml.pre") == "qwen2"
    assert tokens[f.get("tokenizer.ggml.eos_token_id")] == "<|im_end|>"
    assert f.get("tokenizer.ggml.add_bos_token") is False
    assert "tokenizer.ggml.bos_token_id" not in f.kvs or True
    assert tokens[f.get("tokenizer.ggml.padding_token_id")] == "<|endoftext|>"


def test_qwen3_qk_norms(exported):
    _, out, _ = exported("qwen3", *CASES["qwen3"])
    f = read_gguf(next(out.glob("*-F32.gguf")))
    names = {t.name for t in f.tensors}
    assert {"blk.0.attn_q_norm.weight", "blk.1.attn_k_norm.weight"} <= names
    assert f.get("general.architecture") == "qwen3" and f.get("qwen3.attention.key_length") == 32


def test_mistral_sentencepiece_vocab(exported, llama_cpp):
    from tmplc.export.validate import load_llama

    _, out, report = exported("mistral", *CASES["mistral"])
    path = next(out.glob("*-Q8_0.gguf"))
    f = read_gguf(path)
    assert f.get("tokenizer.ggml.model") == "llama" and "tokenizer.ggml.merges" not in f.kvs
    tokens, scores = f.get("tokenizer.ggml.tokens"), f.get("tokenizer.ggml.scores")
    assert len(tokens) == len(scores) == 32000
    assert tokens[f.get("tokenizer.ggml.bos_token_id")] == "<s>" and f.get("tokenizer.ggml.add_bos_token") is True
    llm = load_llama(path, vocab_only=True)
    try:  # SentencePiece: the leading space marker and byte fallback, as the HF tokenizer does
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(str(report.model))
        text = "[INST] Grüße 🦙 naïve [/INST]"
        assert llm.tokenize(text.encode(), add_bos=True, special=True) == hf(text)["input_ids"]
    finally:
        llm.close()


def test_sentencepiece_scores_follow_the_merges(exported):
    """gguf-py's LlamaHfVocab scores every piece -1000, so llama.cpp's score-driven merging would be
    arbitrary ('<</SYS>>' split differently from HF); the exporter scores pieces by merge rank."""
    _, out, _ = exported("mistral", *CASES["mistral"])
    f = read_gguf(next(out.glob("*-F32.gguf")))
    tokens, scores = f.get("tokenizer.ggml.tokens"), f.get("tokenizer.ggml.scores")
    s = dict(zip(tokens, scores))
    assert s["▁t"] > s["▁the"] > -1000  # '▁t' is made by an earlier merge than '▁the'
    assert s["<s>"] == -1000.0


def test_space_after_bos_differs_in_llama_cpp_and_is_refused(tiny, tmp_path):
    """Mistral-v1's '<s> [INST]': llama.cpp strips the BOS text and prefixes the rest with a space
    (SentencePiece add_space_prefix), giving '▁' '▁[' where the HF tokenizer gives '▁['.  The token-id
    check catches it: the model would see other tokens than in training."""
    from tmplc.export import ValidationFailed, export

    model = tiny("mistral-v1", "mistral", "llama2", template="mistral-v1")
    with pytest.raises(ValidationFailed) as ei:
        export(model, None, tmp_path, outtypes="q8_0", logits=False, n_random=0)
    c = ei.value.report.check("token_ids")
    assert c.ok is False and "position 1" in c.detail
    assert c.data["hf"][:2] == [1, 733] and c.data["llama_cpp"][:3] == [1, 28705, 733]
    assert "HF '<s>'(1) '▁['(733)" in c.detail and "llama.cpp '<s>'(1) '▁'(28705) '▁['(733)" in c.detail


def test_a_legacy_sentencepiece_folder_as_shipped_exports_with_its_space_prefix(tiny, tmp_path):
    """A model folder holding the Llama-2 fixture's tokenizer files as shipped (tokenizer.json's
    normalizer prepends '▁', legacy; transformers 5 nevertheless reports add_prefix_space=False):
    the GGUF says add_space_prefix=true, as the tokenizer behaves, so llama.cpp puts '▁' before the
    text after every special token as the HF tokenizer does, and every training render's ids agree
    (this folder was refused at position 1 before)."""
    from tmplc.export import export
    from tmplc.gguf_container import read_gguf

    model = tiny("raw-llama2", "mistral", "llama2")  # no template: the fixture's files as they are
    rep = export(model, "mistral-v7-tekken-tools", tmp_path, outtypes="f16", logits=False)
    assert rep.ok, rep.summary()
    assert rep.check("token_ids").data["renders"] >= 10
    assert read_gguf(next(tmp_path.glob("*.gguf"))).get("tokenizer.ggml.add_space_prefix") is True
