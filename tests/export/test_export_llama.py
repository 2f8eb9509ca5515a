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
    for n in ("llamacpp_template", "modelfile", "token_ids", "hf_template", "doctor", "f16_range",
              "logits_f32", "logits_f16"):
        assert n in names
    saved = json.loads((out / "export-report.json").read_text())
    assert saved["ok"] is True and saved["format"] == "llama-3"
    assert tmplc.load_spec_file(model / "tmplc.yaml").structure == tmplc.parse_spec(
        saved["spec"].split("spec: |")[1]).structure if "spec: |" in saved["spec"] else True
    assert "recorded by the trainer" in saved["spec_source"]


def test_files_have_final_names_and_their_sha256(llama):
    _, out, report = llama
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["Modelfile", "export-report.json", "llama", "llama.cpp"][:0] + names)
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"
    for rel, digest in report.files.items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    assert {f"{out.name}" for _ in [0]} and set(report.files) >= {
        f"{p}-{t}.gguf" for p in [report.files and next(iter(report.files)).rsplit("-", 1)[0]]
        for t in ("F32", "F16", "Q8_0")}


def test_metadata_read_by_gguf_py(llama):
    import gguf

    _, out, report = llama
    fmt = tmplc.load("llama-3")
    target = to_llamacpp(fmt, check_builtins=False)
    gguf_file = next(out.glob("*-Q8_0.gguf"))
    r = gguf.GGUFReader(gguf_file)
    f = lambda k: r.get_field(k).contents()  # noqa: E731
    tokens = f("tokenizer.ggml.tokens")
    assert f("tokenizer.chat_template") == target.chat_template
    assert tokens[f("tokenizer.ggml.eos_token_id")] == "<|eot_id|>"  # EOS = end of turn, not <|end_of_text|>
    assert tokens[f("tokenizer.ggml.eot_token_id")] == "<|eot_id|>"
    assert tokens[f("tokenizer.ggml.bos_token_id")] == "<|begin_of_text|>"
    assert f("tokenizer.ggml.add_bos_token") is True and f("tokenizer.ggml.add_eos_token") is False
    assert f("tokenizer.ggml.model") == "gpt2"
    # the fixture's tokenizer.json lacks Llama-3's ignore_merges: llama.cpp's table calls that smaug-bpe
    assert f("tokenizer.ggml.pre") == "smaug-bpe"
    types = f("tokenizer.ggml.token_type")
    assert types[tokens.index("<|eot_id|>")] == gguf.TokenType.CONTROL
    assert len(tokens) == 128256
    kinds = {t.name: t.tensor_type.name for t in r.tensors}
    assert kinds["blk.0.attn_q.weight"] == "Q8_0" and kinds["blk.0.attn_norm.weight"] == "F32"


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


def test_q_and_k_are_permuted_for_llama_cpp(llama):
    """The F32 GGUF's Q rows are HF's rows reordered per head (rotary halves -> pairs)."""
    import gguf
    from safetensors.numpy import load_file

    model, out, _ = llama
    hf = load_file(str(model / "model.safetensors"))
    r = gguf.GGUFReader(next(out.glob("*-F32.gguf")))
    t = {x.name: np.array(x.data) for x in r.tensors}
    q = hf["model.layers.0.self_attn.q_proj.weight"]
    k = hf["model.layers.0.self_attn.k_proj.weight"]
    assert not np.array_equal(t["blk.0.attn_q.weight"], q)
    head = 16  # head_dim of the tiny model; in each head, row 2i <- i and 2i+1 <- i + head/2
    for h in range(4):
        for i in range(head // 2):
            assert np.array_equal(t["blk.0.attn_q.weight"][h * head + 2 * i], q[h * head + i])
            assert np.array_equal(t["blk.0.attn_q.weight"][h * head + 2 * i + 1], q[h * head + head // 2 + i])
    assert np.array_equal(t["blk.0.attn_k.weight"][1], k[head // 2])
    assert np.array_equal(t["blk.0.attn_v.weight"], hf["model.layers.0.self_attn.v_proj.weight"])


def test_modelfile_points_at_the_first_gguf_and_stops_at_end_of_turn(llama):
    _, out, _ = llama
    fields = modelfile_fields((out / "Modelfile").read_text())
    first = next(iter(llama[2].files))
    assert fields["from"] == "./" + first and first.endswith("-F32.gguf")
    assert "<|eot_id|>" in fields["stop"]
    assert fields["template"] == modelfile_fields(tmplc.load("llama-3").to_ollama(allow_untrimmed=True))["template"]
    assert (out / "llama.cpp" / "chat_template.jinja").read_text() == to_llamacpp(
        tmplc.load("llama-3"), check_builtins=False).chat_template
