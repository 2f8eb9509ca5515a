"""--adapter (PEFT LoRA merged on CPU in float32) equals exporting the PEFT-merged model; k-quants by
llama.cpp's quantizer; a BF16 checkpoint whose values overflow F16 is reported per tensor."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from tmplc.export import ExportRefused, ValidationFailed, export
from tmplc.gguf_container import read_gguf, tensor_bytes

from .conftest import need_engines, need_llama_cpp

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "tmplc.yaml")


def _tensor_digests(path):
    import hashlib

    f = read_gguf(path)
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    return {n: hashlib.sha256(raw[a:b].tobytes()).hexdigest() for n, (a, b) in tensor_bytes(f).items()}


@pytest.fixture(scope="module")
def base_and_adapter(tiny, tmp_path_factory):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    need_llama_cpp()
    need_engines()
    base = tiny("lora-base", "mistral", "llama2", template="llama-2", seed=3)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
                     lora_dropout=0.0)
    peft_model = get_peft_model(model, cfg)
    torch.manual_seed(7)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:  # a trained adapter: B is not zero
                p.normal_(0.0, 0.05)
    adapter = tmp_path_factory.mktemp("adapter")
    peft_model.save_pretrained(str(adapter))
    for f in TOKENIZER_FILES:  # the trainer saves the tokenizer and the format with the adapter
        if (base / f).is_file():
            shutil.copy(base / f, adapter / f)
    merged = tmp_path_factory.mktemp("merged")
    peft_model.merge_and_unload().save_pretrained(str(merged), safe_serialization=True)
    for f in TOKENIZER_FILES:
        if (base / f).is_file():
            shutil.copy(base / f, merged / f)
    return base, adapter, merged


def test_adapter_merge_equals_exporting_the_merged_model(base_and_adapter, tmp_path):
    base, adapter, merged = base_and_adapter
    a = export(base, None, tmp_path / "a", outtypes="f32,f16", adapter=adapter, name="m")
    assert a.ok, a.summary()
    assert a.check("logits_f32").ok  # llama.cpp on the merged GGUF == torch with PEFT's merge
    assert any("LoRA adapter merged into 10 weights" in n for n in a.notes)
    b = export(merged, None, tmp_path / "b", outtypes="f32,f16", name="m", logits=False)
    for t in ("F32", "F16"):
        da, db = _tensor_digests(tmp_path / "a" / f"m-{t}.gguf"), _tensor_digests(tmp_path / "b" / f"m-{t}.gguf")
        assert da == db and len(da) == 21
    # and the adapter did change the weights
    plain = export(base, None, tmp_path / "c", outtypes="f32", name="m", logits=False)
    assert plain.ok
    dc = _tensor_digests(tmp_path / "c" / "m-F32.gguf")
    da = _tensor_digests(tmp_path / "a" / "m-F32.gguf")
    assert dc["blk.0.attn_q.weight"] != da["blk.0.attn_q.weight"]
    assert dc["blk.0.ffn_up.weight"] == da["blk.0.ffn_up.weight"]  # not a target


def test_dora_adapter_is_refused(base_and_adapter, tmp_path):
    base, adapter, _ = base_and_adapter
    dora = tmp_path / "dora"
    shutil.copytree(adapter, dora)
    cfg = json.loads((dora / "adapter_config.json").read_text())
    cfg["use_dora"] = True
    (dora / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ExportRefused, match="DoRA"):
        export(base, None, tmp_path / "o", outtypes="f16", adapter=dora)


def test_k_quant_through_llama_cpps_quantizer(base_and_adapter, tmp_path, llama_cpp):
    from tmplc.export.validate import load_llama

    base, _, _ = base_and_adapter
    rep = export(base, None, tmp_path, outtypes="q4_k_m", name="m")
    assert rep.ok, rep.summary()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".gguf") == ["m-Q4_K_M.gguf"]  # scratch F16 gone
    f = read_gguf(tmp_path / "m-Q4_K_M.gguf")
    assert f.get("general.file_type") == 15
    from tmplc.targets.llamacpp import to_llamacpp
    import tmplc

    assert f.get("tokenizer.chat_template") == to_llamacpp(tmplc.load("llama-2"), check_builtins=False).chat_template
    assert f.get("tokenizer.ggml.add_bos_token") is True  # llama.cpp's quantizer kept the chat keys
    types = {t.ggml_type for t in f.tensors}
    assert types - {0, 1}  # quantized tensors (k-quants, or llama.cpp's fallbacks for 64-wide rows)
    llm = load_llama(tmp_path / "m-Q4_K_M.gguf", vocab_only=True)
    llm.close()


def test_k_quant_refused_without_llama_cpp(base_and_adapter, tmp_path, monkeypatch):
    base, _, _ = base_and_adapter
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if llama-cpp-python were not installed
    with pytest.raises(ExportRefused, match="llama-cpp-python"):
        export(base, None, tmp_path / "o", outtypes="f16,q5_k_m")
    assert not (tmp_path / "o").exists()


def test_bf16_values_beyond_f16_are_reported_per_tensor(tiny, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    need_llama_cpp()
    need_engines()
    model = tiny("bf16-big", "mistral", "llama2", template="llama-2", dtype="bfloat16")
    w = load_file(str(model / "model.safetensors"))
    assert w["model.layers.1.mlp.down_proj.weight"].dtype == torch.bfloat16
    w["model.layers.1.mlp.down_proj.weight"][3, 5] = 1.0e5  # fine in bf16, inf in f16
    save_file(w, str(model / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValidationFailed) as ei:
        export(model, None, tmp_path / "f16", outtypes="f16", logits=False, n_random=0)
    c = ei.value.report.check("f16_range")
    assert c.ok is False and "--outtype bf16" in c.detail
    assert list(c.data["tensors"]) == ["blk.1.ffn_down.weight"]
    assert c.data["tensors"]["blk.1.ffn_down.weight"]["values_over_f16_max"] == 1
    ok = export(model, None, tmp_path / "bf16", outtypes="bf16", logits=False, n_random=0)
    assert ok.ok and "f16_range" not in [x.name for x in ok.checks]
    f = read_gguf(tmp_path / "bf16" / f"{model.name}-BF16.gguf")
    assert {t.name: t.ggml_type for t in f.tensors}["blk.1.ffn_down.weight"] == 30  # BF16
