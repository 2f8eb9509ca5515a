"""``tmplc gguf inspect`` and ``tmplc gguf set-template``: tensors byte-identical (hashed one by one
with gguf-py's reader), template and ids rewritten, atomic."""

from __future__ import annotations

import hashlib
import shutil

import pytest

import tmplc
from tmplc.cli import main
from tmplc.targets.llamacpp import to_llamacpp


@pytest.fixture(scope="module")
def qwen(exported):
    return exported("qwen2", "qwen2", "qwen3", "qwen2.5", "f16")


@pytest.fixture(scope="module")
def mistral(exported):  # a 32k vocabulary: gguf-py's reader is quick on it
    return exported("mistral", "mistral", "llama2", "llama-2", "f32,q8_0")


def _tensor_hashes(path):
    """name -> (type, shape, sha256 of its bytes), read by gguf-py's own GGUFReader."""
    import gguf

    r = gguf.GGUFReader(path)
    return {t.name: (int(t.tensor_type), tuple(int(x) for x in t.shape), hashlib.sha256(t.data.tobytes()).hexdigest())
            for t in r.tensors}


def test_inspect_names_the_registry_entry_and_the_ids(qwen, capsys):
    _, out, _ = qwen
    assert main(["gguf", "inspect", str(next(out.glob("*.gguf")))]) == 0
    text = capsys.readouterr().out
    assert "registry entry: qwen2.5" in text
    assert "eos: " in text and "'<|im_end|>'" in text
    assert "add_bos_token: False" in text
    assert to_llamacpp(tmplc.load("qwen2.5"), check_builtins=False).chat_template in text


def test_set_template_rewrites_keys_and_keeps_every_tensor(mistral, tmp_path, capsys, llama_cpp):
    from tmplc.gguf_container import read_gguf
    from tmplc.export.validate import load_llama

    _, out, _ = mistral
    src = next(out.glob("*-Q8_0.gguf"))
    dst = tmp_path / "zephyr.gguf"
    before = _tensor_hashes(src)
    assert len(before) == 21
    assert main(["gguf", "set-template", str(src), "--template", "zephyr", "--out", str(dst)]) == 0
    assert "set tokenizer.chat_template" in capsys.readouterr().out
    assert _tensor_hashes(dst) == before
    f = read_gguf(dst)
    assert f.get("tokenizer.chat_template") == to_llamacpp(tmplc.load("zephyr"), check_builtins=False).chat_template
    tokens = f.get("tokenizer.ggml.tokens")
    assert tokens[f.get("tokenizer.ggml.eos_token_id")] == "</s>"
    assert f.get("tokenizer.ggml.add_bos_token") is to_llamacpp(tmplc.load("zephyr"), check_builtins=False).add_bos_token
    llm = load_llama(dst, vocab_only=True)  # llama.cpp still loads it
    try:
        assert llm.metadata["tokenizer.chat_template"] == f.get("tokenizer.chat_template")
    finally:
        llm.close()
    assert main(["gguf", "inspect", str(dst)]) == 0
    assert "registry entry: zephyr" in capsys.readouterr().out


def test_set_template_in_place_and_refusal(mistral, tmp_path, capsys):
    _, out, _ = mistral
    path = tmp_path / "m.gguf"
    shutil.copy(next(out.glob("*-F32.gguf")), path)
    before = _tensor_hashes(path)
    assert main(["gguf", "set-template", str(path), "--template", "chatml"]) == 3  # <|im_end|> is not a token
    assert "'<|im_end|>' is not in the GGUF's vocabulary" in capsys.readouterr().err
    assert main(["gguf", "set-template", str(path), "--template", "mistral-v1"]) == 0
    assert _tensor_hashes(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf"]  # no temporary left


def test_read_gguf_skips_values_without_losing_the_layout(qwen):
    """``read_gguf(skip=...)`` leaves the skipped values undecoded (None) and reads everything
    else, the raw records, the tensor infos and the data start exactly as the full read."""
    from tmplc.gguf_container import read_gguf

    path = next(qwen[1].glob("*.gguf"))
    skip = ("tokenizer.ggml.merges", "tokenizer.ggml.token_type", "general.name")
    full, part = read_gguf(path), read_gguf(path, skip=skip)
    assert all(full.get(k) is not None and part.get(k) is None for k in skip)
    assert {k: kv.raw for k, kv in full.kvs.items()} == {k: kv.raw for k, kv in part.kvs.items()}
    assert {k: v for k, v in full.values().items() if k not in skip} == \
        {k: v for k, v in part.values().items() if k not in skip}
    assert (full.tensors, full.data_start, full.ti_raw) == (part.tensors, part.data_start, part.ti_raw)
