"""Llama (Llama-3 tokenizer): the whole export, checked with independent readers and llama.cpp."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import tmplc
from tmplc.targets.llamacpp import to_llamacpp
from tmplc.targets.ollama import modelfile_fields


@pytest.fixture(scope="module")
def llama(exported):
    return exported("llama", "llama", "llama3", "llama-3", "f32,f16,q8_0")


def test_every_check_passes_and_is_recorded(llama):
    model, out, report = llama
    assert report.ok, report.summary()
    names = [c.name for c in report.checks]
    assert names == ["llamacpp_template", "modelfile", "token_ids", "hf_template", "doctor", "f16_range",
                     "logits_f32", "logits_f16"]
    saved = json.loads((out / "export-report.json").read_text())
    assert saved["ok"] is True and saved["format"] == "llama-3" and saved["refused"] is False
    assert saved["spec"] == (model / "tmplc.yaml").read_text()  # the format recorded by the "trainer"
    assert "recorded by the trainer" in saved["spec_source"]
    assert saved["checks"][0]["data"]["renders"] >= 20


def test_files_have_final_names_and_their_sha256(llama):
    model, out, report = llama
    stem = model.name
    assert sorted(report.files) == sorted([f"{stem}-F32.gguf", f"{stem}-F16.gguf", f"{stem}-Q8_0.gguf", "Modelfile",
                                           "llama.cpp/chat_template.jinja", "llama.cpp/args.txt"])
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"
    for rel, digest in report.files.items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest


def test_metadata_as_llama_cpp_reads_it(llama, llama_cpp):
    from tmplc.gguf_container import read_gguf
    from tmplc.export.validate import load_llama

    _, out, _ = llama
    target = to_llamacpp(tmplc.load("llama-3"), check_builtins=False)
    path = next(out.glob("*-Q8_0.gguf"))
    llm = load_llama(path, vocab_only=True)
    try:
        md = llm.metadata
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        text = lambda i: llama_cpp.llama_vocab_get_text(vocab, i).decode()  # noqa: E731
        assert md["tokenizer.chat_template"] == target.chat_template
        assert text(int(md["tokenizer.ggml.eos_token_id"])) == "<|eot_id|>"  # EOS = end of turn
        assert text(int(md["tokenizer.ggml.eot_token_id"])) == "<|eot_id|>"
        assert text(llama_cpp.llama_vocab_bos(vocab)) == "<|begin_of_text|>"
        assert llama_cpp.llama_vocab_get_add_bos(vocab) and not llama_cpp.llama_vocab_get_add_eos(vocab)
        assert md["tokenizer.ggml.model"] == "gpt2"
        # the fixture's tokenizer.json lacks Llama-3's ignore_merges: llama.cpp's table calls that smaug-bpe
        assert md["tokenizer.ggml.pre"] == "smaug-bpe"
        eot = llm.tokenize(b"<|eot_id|>", add_bos=False, special=True)[0]
        assert llama_cpp.llama_vocab_get_attr(vocab, eot) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
        assert llama_cpp.llama_vocab_n_tokens(vocab) == 128256
    finally:
        llm.close()
    kinds = {t.name: t.ggml_type for t in read_gguf(path).tensors}
    assert kinds["blk.0.attn_q.weight"] == 8 and kinds["blk.0.attn_norm.weight"] == 0  # Q8_0, F32


def test_llama_cpp_loads_it_with_the_template_and_stops_on_end_of_turn(llama, llama_cpp):
    from tmplc.export.validate import load_llama

    _, out, _ = llama
    llm = load_llama(next(out.glob("*-F16.gguf")), vocab_only=True)
    try:
        assert llm.metadata["tokenizer.chat_template"] == to_llamacpp(tmplc.load("llama-3"),
                                                                        check_builtins=False).chat_template
        eot = llm.tokenize(b"<|eot_id|>", add_bos=False, special=True)
        assert eot == [128009] and llm.token_eos() == 128009
        assert llama_cpp.llama_vocab_is_eog(llama_cpp.llama_model_get_vocab(llm.model), 128009)
        # BOS once: the served prompt (leading BOS text stripped, add_bos) starts with a single BOS
        ids = llm.tokenize(b"<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>", add_bos=True, special=True)
        assert ids[0] == 128000 and ids[1] != 128000
    finally:
        llm.close()


def _f32_tensors(path):
    from tmplc.gguf_container import read_gguf

    f = read_gguf(path)
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for t in f.tensors:
        assert t.ggml_type == 0
        n = int(np.prod(t.shape))
        start = f.data_start + t.offset
        out[t.name] = raw[start:start + 4 * n].view(np.float32).reshape(tuple(reversed(t.shape)))
    return out


def test_q_and_k_are_permuted_for_llama_cpp(llama):
    """The F32 GGUF's Q/K rows are HF's rows reordered per head (rotary halves -> interleaved pairs)."""
    from safetensors.numpy import load_file

    model, out, _ = llama
    hf = load_file(str(model / "model.safetensors"))
    t = _f32_tensors(next(out.glob("*-F32.gguf")))
    q = hf["model.layers.0.self_attn.q_proj.weight"]
    k = hf["model.layers.0.self_attn.k_proj.weight"]
    head = 16  # head_dim of the tiny model; in each head, row 2i <- i and 2i+1 <- i + head/2
    for h in range(4):
        for i in range(head // 2):
            assert np.array_equal(t["blk.0.attn_q.weight"][h * head + 2 * i], q[h * head + i])
            assert np.array_equal(t["blk.0.attn_q.weight"][h * head + 2 * i + 1], q[h * head + head // 2 + i])
    assert np.array_equal(t["blk.0.attn_k.weight"][1], k[head // 2])
    assert np.array_equal(t["blk.0.attn_v.weight"], hf["model.layers.0.self_attn.v_proj.weight"])
    assert np.array_equal(t["token_embd.weight"], hf["model.embed_tokens.weight"])


def test_modelfile_points_at_the_first_gguf_and_stops_at_end_of_turn(llama):
    _, out, _ = llama
    fields = modelfile_fields((out / "Modelfile").read_text())
    first = next(iter(llama[2].files))
    assert fields["from"] == "./" + first and first.endswith("-F32.gguf")
    assert "<|eot_id|>" in fields["stop"]
    assert fields["template"] == modelfile_fields(tmplc.load("llama-3").to_ollama(allow_untrimmed=True))["template"]
    assert (out / "llama.cpp" / "chat_template.jinja").read_text() == to_llamacpp(
        tmplc.load("llama-3"), check_builtins=False).chat_template
