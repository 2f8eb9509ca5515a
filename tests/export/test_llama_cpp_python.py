"""The exported GGUFs in llama-cpp-python: the k-quants Q5_K_M and Q6_K (made by llama.cpp's own
quantizer) load, tokenize like the HF tokenizer and generate; and ``create_chat_completion`` on an
exported GGUF uses the embedded chat template (its Jinja2ChatFormatter) and renders exactly what
tmplc renders, then stops at the format's end of turn."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

import tmplc
from tmplc.export import export
from tmplc.gguf_container import read_gguf
from tmplc.export.validate import load_llama

from .conftest import need_engines, need_llama_cpp

MESSAGES = [{"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4."},
            {"role": "user", "content": "And 3+3?"}]


@pytest.fixture(scope="module")
def kquants(tiny, tmp_path_factory):
    """A Mistral-shaped model with 256-wide rows (k-quant blocks are 256 wide, so llama.cpp really
    uses Q5_K / Q6_K rather than its fallbacks), exported to both k-quants in one export."""
    need_llama_cpp()
    need_engines()
    model = tiny("kq-base", "mistral", "llama2", template="llama-2", seed=5, hidden_size=256,
                 intermediate_size=512, num_attention_heads=4, num_key_value_heads=2)
    out = tmp_path_factory.mktemp("kq-out")
    return model, out, export(model, None, out, outtypes="q5_k_m,q6_k", name="m")


@pytest.mark.parametrize("outtype,ftype,main_type", [
    ("Q5_K_M", "LLAMA_FTYPE_MOSTLY_Q5_K_M", gguf.GGMLQuantizationType.Q5_K),
    ("Q6_K", "LLAMA_FTYPE_MOSTLY_Q6_K", gguf.GGMLQuantizationType.Q6_K),
])
def test_k_quant_loads_tokenizes_and_generates(kquants, llama_cpp, outtype, ftype, main_type):
    from transformers import AutoTokenizer

    model, out, rep = kquants
    assert rep.ok, rep.summary()
    assert rep.outtypes == ["Q5_K_M", "Q6_K"]
    path = out / f"m-{outtype}.gguf"
    assert path.name in rep.files and not list(out.glob("*-F16.gguf"))  # the scratch F16 is gone
    f = read_gguf(path)
    assert f.get("general.file_type") == getattr(llama_cpp, ftype)
    types = {t.ggml_type for t in f.tensors}
    assert int(main_type) in types, sorted(types)
    # llama.cpp's quantizer kept the chat template the export wrote (the one its check rendered)
    assert rep.check("llamacpp_template").ok
    assert f.get("tokenizer.chat_template") == (out / "llama.cpp" / "chat_template.jinja").read_text()

    fmt = tmplc.load("llama-2")
    tok = AutoTokenizer.from_pretrained(str(model))
    text = fmt.render(MESSAGES, add_generation_prompt=True)
    want = list(tok(text, add_special_tokens=False)["input_ids"])
    llm = load_llama(path, n_ctx=256, n_threads=2, logits_all=True)
    try:
        bos = tok.bos_token
        served = text[len(bos):] if text.startswith(bos) else text  # llama.cpp adds the BOS itself
        assert llm.tokenize(served.encode(), add_bos=True, special=True) == want
        llm.eval(want)
        got = np.array(llm.scores[:len(want)], dtype=np.float64)
        llm.reset()
        gen = llm.create_completion(want, max_tokens=6, temperature=0.0)
        assert gen["usage"]["completion_tokens"] >= 1 and gen["choices"][0]["finish_reason"] in ("length", "stop")
    finally:
        llm.close()
    # the quantized model computes the trained model: its logits follow torch's float32 ones
    ref = reference_logits(model, want)
    corr = float(np.corrcoef(got.ravel(), ref.ravel())[0, 1])
    assert corr > MIN_CORR[outtype], corr


MIN_CORR = {"Q5_K_M": 0.95, "Q6_K": 0.98}  # measured 0.979 and 0.995 (deterministic: seeded model, ggml)


def reference_logits(model, ids) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32).eval()
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].double().numpy()


@pytest.mark.parametrize("key,kind,fixture,template", [
    ("llama", "llama", "llama3", "llama-3"),  # the same export as test_export_llama.py's (shared)
    ("qwen3-chatml", "qwen3", "qwen3", "chatml"),
])
def test_create_chat_completion_renders_like_tmplc_and_stops_at_end_of_turn(exported, llama_cpp, key, kind,
                                                                             fixture, template):
    model, out, rep = exported(key, kind, fixture, template, "f32,f16,q8_0")
    assert rep.ok, rep.summary()
    fmt = tmplc.load(template)
    llm = load_llama(next(out.glob("*-F16.gguf")), n_ctx=512, n_threads=2)
    try:
        assert llm.chat_format == "chat_template.default"  # the GGUF's template, not a built-in format
        seen: list[str] = []
        tokenize = llm.tokenize

        def spy(text: bytes, add_bos: bool = True, special: bool = False):
            seen.append(text.decode("utf-8"))
            return tokenize(text, add_bos=add_bos, special=special)

        llm.tokenize = spy
        eot = llm.metadata["tokenizer.ggml.eot_token_id"]
        n_free = 3

        def force_end_of_turn(input_ids, scores):
            if len(input_ids) >= n_prompt[0] + n_free:
                scores[:] = -np.inf
                scores[int(eot)] = 0.0
            return scores

        from tmplc.export.validate import quiet_stderr
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(model))
        want = fmt.render(MESSAGES, add_generation_prompt=True)
        n_prompt = [len(tok(want, add_special_tokens=False)["input_ids"])]
        with quiet_stderr():
            res = llm.create_chat_completion(MESSAGES, max_tokens=12, temperature=0.0,
                                             logits_processor=llama_cpp.LogitsProcessorList([force_end_of_turn]))
        assert seen and seen[0] == want
        assert res["usage"]["prompt_tokens"] == n_prompt[0]  # the same ids: BOS once
        choice = res["choices"][0]
        assert choice["finish_reason"] == "stop" and res["usage"]["completion_tokens"] <= n_free + 1
        assert fmt.eot_token not in choice["message"]["content"]
    finally:
        llm.close()
