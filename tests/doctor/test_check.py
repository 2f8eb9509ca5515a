"""``tmplc.check`` on tiny random models with the real Llama-3 / Qwen3 / Gemma-3 / Llama-2 vocabularies:
each planted fault is found with its code and the exact ids; the clean models have no error."""

from __future__ import annotations

import json

import pytest

import tmplc
from conftest import load_tokenizer
from doctor_models import EMBED, HEAD, built, edit_json, model, set_rows  # noqa: F401 - fixtures

LLAMA3_TURN = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def ids_of(folder, texts):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    return [tok.convert_tokens_to_ids(t) for t in texts]


# -- clean ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,template,tied", [("qwen3", None, False), ("gemma3", None, True),
                                                ("llama3", "llama-3", False), ("llama2", "llama-2", True)])
def test_clean_models_have_no_error(model, name, template, tied):
    r = tmplc.check(model(name, tied), template=template, tokenizer=load_tokenizer(name))
    assert r.ok, [f.message for f in r.errors]
    assert r.template is not None
    assert r.template_source == ("given" if template else "tokenizer chat_template")
    # transformers zeroes the padding_idx row at init (config pad_token_id): the only "untrained" row, used by none
    pad = {"qwen3": 151643, "gemma3": 0}.get(name)
    assert [f.details["ids"] for f in r.by_code("untrained-tokens")] == ([[pad]] if pad is not None else [])
    assert all(f.severity == "info" for f in r.by_code("untrained-tokens"))


def test_tokenizer_only_folder(tmp_path):
    import shutil

    from conftest import tokenizer_dir

    d = tmp_path / "tok"
    shutil.copytree(tokenizer_dir("qwen3"), d)
    r = tmplc.check(d)
    assert r.ok and r.template_source == "tokenizer chat_template"


# -- untrained --------------------------------------------------------------------------------------
def test_llama3_base_style_zero_rows_untied(model):
    m = model("llama3")
    turn = ids_of(m, LLAMA3_TURN)
    reserved = ids_of(m, ["<|reserved_special_token_5|>", "<|reserved_special_token_6|>"])
    for t in (EMBED, HEAD):
        set_rows(m, t, {i: 0.0 for i in turn + reserved})
    r = tmplc.check(m, template="llama-3", tokenizer=load_tokenizer("llama3"))
    (f,) = r.by_code("untrained-tokens")
    assert f.severity == "error"
    assert set(f.details["ids"]) == set(turn + reserved)
    assert set(f.details["used"]) == set(turn)
    by_id = {e["id"]: e for e in f.details["tokens"]}
    assert by_id[turn[2]]["token"] == "<|eot_id|>" and by_id[turn[2]]["used_by"] == ["template"]
    assert by_id[turn[2]]["matrices"] == {"embedding": "zero", "lm_head": "zero"}
    assert by_id[reserved[0]]["used_by"] == ["none"]
    assert "128009" in f.message and "base model" in f.message


def test_untrained_lm_head_duplicates_llama31_style(model):
    """Llama-3.1: untrained lm_head rows are identical non-zero rows (the zero test misses them)."""
    import torch

    m = model("llama3")
    turn = ids_of(m, LLAMA3_TURN)
    row = torch.linspace(-0.01, 0.02, 32)
    set_rows(m, HEAD, {i: row for i in turn})
    r = tmplc.check(m, template="llama-3", tokenizer=load_tokenizer("llama3"))
    (f,) = r.by_code("untrained-tokens")
    assert f.severity == "error"
    assert set(f.details["ids"]) == set(turn)
    assert {e["matrices"]["lm_head"] for e in f.details["tokens"]} == {"duplicate"}


def test_untrained_tied_gemma3_used_by_data(model, tmp_path):
    m = model("gemma3", tied=True)
    (sot, eot, rare) = ids_of(m, ["<start_of_turn>", "<end_of_turn>", "<unused5>"])
    set_rows(m, EMBED, {rare: 0.0})
    data = tmp_path / "d.jsonl"
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]},
            {"messages": [{"role": "user", "content": "say <unused5>"}, {"role": "assistant", "content": "<unused5>"}]}]
    data.write_text("\n".join(json.dumps(x) for x in rows), encoding="utf-8")
    tok = load_tokenizer("gemma3")
    r = tmplc.check(m, tokenizer=tok)
    (f,) = r.by_code("untrained-tokens")
    assert f.severity == "info" and f.details["ids"] == [0, rare]  # 0: <pad>, zeroed at init
    # <unused5> is a non-special added token: it is one token even inside message content
    r = tmplc.check(m, data=data, tokenizer=tok)
    (f,) = r.by_code("untrained-tokens")
    assert f.severity == "error" and f.details["used"] == [rare]
    (e,) = [e for e in f.details["tokens"] if e["id"] == rare]
    assert e["used_by"] == ["data"] and e["data_rows"] == [1] and e["matrices"] == {"embedding": "zero"}
    text = tmp_path / "t.jsonl"
    text.write_text(json.dumps({"text": "hi"}) + "\n" + json.dumps({"text": "<start_of_turn>user\nhi <unused5>"}),
                    encoding="utf-8")
    (f,) = tmplc.check(m, data=text, tokenizer=tok).by_code("untrained-tokens")
    assert f.severity == "error" and [e["data_rows"] for e in f.details["tokens"] if e["id"] == rare] == [[1]]


# -- pad ----------------------------------------------------------------------------------------------
def test_pad_is_eot_qwen3(model):
    m = model("qwen3")
    edit_json(m / "tokenizer_config.json", pad_token="<|im_end|>")
    edit_json(m / "config.json", pad_token_id=151645)
    r = tmplc.check(m)
    fs = r.by_code("pad-is-eot")
    assert fs and all(f.severity == "error" for f in fs)
    assert {f.details["pad_id"] for f in fs} == {151645} and fs[0].details["eot_id"] == 151645
    assert "<|im_end|>" in fs[0].message and "erases every end-of-turn label" in fs[0].message


def test_pad_is_eos_llama3_is_a_warning_when_eot_differs(model):
    m = model("llama3")
    edit_json(m / "tokenizer_config.json", pad_token="<|end_of_text|>")
    r = tmplc.check(m, template="llama-3")
    (f,) = r.by_code("pad-is-eos")
    assert f.severity == "warning" and f.details["pad_id"] == 128001
    r2 = tmplc.check(m, template="llama-3", tokenizer=None)
    assert "pad-missing" not in r2.codes()


def test_pad_missing_and_out_of_range(model):
    m = model("llama2", tied=True)
    r = tmplc.check(m, template="llama-2")
    assert r.by_code("pad-missing")[0].severity == "warning"
    edit_json(m / "config.json", pad_token_id=32000)
    r = tmplc.check(m, template="llama-2")
    (f,) = r.by_code("pad-out-of-range")
    assert f.details == {"pad_id": 32000, "rows": 32000, "source": "config.json pad_token_id"}


# -- end of turn, stop ids, vocabulary ------------------------------------------------------------------
def test_eot_not_stop(model):
    m = model("llama3")
    edit_json(m / "generation_config.json", eos_token_id=128001)
    r = tmplc.check(m, template="llama-3", tokenizer=load_tokenizer("llama3"))
    (f,) = r.by_code("eot-not-stop")
    assert f.details["eot_id"] == 128009 and f.details["stop_ids"] == [128001]
    assert f.details["source"] == "generation_config.json"


def test_eot_not_single_token_and_missing_tokens(model):
    """ChatML on the Llama-2 vocabulary: <|im_start|>/<|im_end|> are not tokens of it."""
    m = model("llama2", tied=True)
    r = tmplc.check(m, template="chatml", tokenizer=load_tokenizer("llama2"))
    (f,) = r.by_code("eot-not-single-token")
    assert f.details["token"] == "<|im_end|>" and len(f.details["ids"]) > 1
    missing = {f.details["token"] for f in r.by_code("template-token-missing")}
    assert missing == {"<|im_start|>"}


def test_llama2_format_has_no_false_token_findings(model):
    r = tmplc.check(model("llama2", tied=True), template="llama-2", tokenizer=load_tokenizer("llama2"))
    assert not r.by_code("template-token-missing") and not r.by_code("eot-not-single-token")


def test_vocab_out_of_range(model):
    from transformers import AutoTokenizer

    m = model("llama2", tied=True)
    tok = AutoTokenizer.from_pretrained(str(m))
    tok.add_special_tokens({"additional_special_tokens": ["<sep>"]})
    tok.save_pretrained(str(m))
    r = tmplc.check(m, template="llama-2")
    (f,) = r.by_code("vocab-out-of-range")
    assert f.details["ids"] == [32000] and f.details["tokens"] == ["<sep>"] and f.details["rows"] == 32000


# -- templates ----------------------------------------------------------------------------------------
def test_template_mismatch_by_ir_equality(model):
    m = model("qwen3")
    tok = load_tokenizer("qwen3")
    assert "template-mismatch" not in tmplc.check(m, template="qwen3-thinking", tokenizer=tok).codes()
    r = tmplc.check(m, template="chatml", tokenizer=tok)
    (f,) = r.by_code("template-mismatch")
    assert f.details["tokenizer_template"] == "qwen3-thinking" and f.details["training_template"] == "chatml"
    # the message shows where the two renders part (qwen3-thinking's empty think block on the final
    # answer, past a shared head longer than a one-line excerpt), not two identical beginnings
    assert "<think>\\n\\n</think>" in f.message and "From character" in f.message


def test_template_mismatch_compares_tool_parts_of_a_tool_format(tmp_path):
    """A training format with tools is compared with the tokenizer's whole template, tool part
    included: the real Qwen3 template is qwen3-tools (no mismatch), and a format whose text renders
    alike but whose tool JSON differs (sorted keys) is a mismatch that says the tool parts differ."""
    import shutil

    from conftest import tokenizer_dir

    d = tmp_path / "tok"
    shutil.copytree(tokenizer_dir("qwen3"), d)
    assert "template-mismatch" not in tmplc.check(d, template="qwen3-tools").codes()
    fmt = tmplc.load("qwen3-tools")
    other = fmt.with_meta(name="qwen3-tools-sorted")
    from dataclasses import replace

    from tmplc.ir import JsonStyle

    st = replace(fmt.structure, tools=replace(fmt.structure.tools, json=JsonStyle(sort_keys=True)))
    r = tmplc.check(d, template=replace(other, structure=st))
    (f,) = r.by_code("template-mismatch")
    assert f.details["tokenizer_template"] == "qwen3-tools" and "tool parts differ" in f.message


def test_template_shadowed(model):
    m = model("qwen3")
    (m / "chat_template.jinja").write_text(tmplc.load("chatml").to_jinja(), encoding="utf-8")
    r = tmplc.check(m, template="chatml", tokenizer=load_tokenizer("qwen3"))
    assert "template-shadowed" in r.codes() and "template-mismatch" not in r.codes()


def test_unimportable_tokenizer_template_is_reported(model):
    r = tmplc.check(model("llama3"), tokenizer=load_tokenizer("llama3"))
    (f,) = r.by_code("template-unimportable")
    assert f.severity == "error" and "add_generation_prompt" in f.message
    assert r.template is None


# -- double BOS ---------------------------------------------------------------------------------------
def test_double_bos_template_and_tokenizer(model):
    """Gemma-3's template writes BOS and its tokenizer adds one: found by tokenizing (a warning: tmplc
    format and apply_chat_template(tokenize=True) give one BOS)."""
    r = tmplc.check(model("gemma3", tied=True), tokenizer=load_tokenizer("gemma3"))
    (f,) = r.by_code("double-bos")
    assert f.severity == "warning" and f.details["bos_id"] == 2
    # Qwen3 has no BOS at all; Llama-3's fixture tokenizer does not add one
    assert "double-bos" not in tmplc.check(model("llama3"), template="llama-3", tokenizer=load_tokenizer("llama3")).codes()


def test_double_bos_spec_writes_it_twice(model):
    spec = tmplc.load("llama-3").to_spec().replace("{BOS}", "{BOS}<|begin_of_text|>", 1)
    r = tmplc.check(model("llama3"), template=spec, tokenizer=load_tokenizer("llama3"))
    (f,) = r.by_code("double-bos")
    assert f.severity == "error" and f.details["path"] == "template"


def test_double_bos_pre_rendered_rows(model, tmp_path):
    m = model("llama2", tied=True)
    data = tmp_path / "t.jsonl"
    data.write_text("\n".join(json.dumps({"text": t}) for t in
                              ["[INST] hi [/INST] ok </s>", "<s>[INST] hi [/INST] ok </s>"]), encoding="utf-8")
    r = tmplc.check(m, template="llama-2", data=data, tokenizer=load_tokenizer("llama2"))
    fs = [f for f in r.by_code("double-bos") if f.details["path"] == "data"]
    assert len(fs) == 1 and fs[0].severity == "error" and fs[0].details["rows"] == [1]


# -- data ---------------------------------------------------------------------------------------------
def test_truncation_counts_trained_tokens(model, tmp_path):
    from transformers import AutoTokenizer

    m = model("qwen3")
    long = " ".join(["word"] * 300)
    rows = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}],
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": long}],
            [{"role": "user", "content": long}, {"role": "assistant", "content": "ok"}]]
    r = tmplc.check(m, data=rows, max_seq_length=100, tokenizer=load_tokenizer("qwen3"))
    (f,) = r.by_code("truncation")
    assert f.details["rows"] == [1, 2] and f.details["count"] == 2
    # independent count: render each row with the tokenizer's own template, tokenize, count assistant tokens
    tok = AutoTokenizer.from_pretrained(str(m))
    fmt = tmplc.load("qwen3-thinking")
    cut = 0
    for msgs in rows[1:]:
        segs = fmt.segments(msgs)
        ids, trained = [], []
        for s in segs:
            t = tok(s.text, add_special_tokens=False)["input_ids"]
            ids += t
            trained += [s.trainable] * len(t)
        cut += sum(trained[100:])
    assert f.details["trained_tokens_cut"] == cut
    assert f.details["longest_row"] == 1 or f.details["longest_row"] == 2


def test_data_findings_entry_point():
    from conftest import load_tokenizer

    from tmplc.doctor import data_findings

    tok = load_tokenizer("gemma3")
    fs = data_findings(None, tok, ["<bos>hello", "hello"], max_seq_length=2)
    codes = {f.code: f for f in fs}
    assert codes["double-bos"].details["rows"] == [0]
    assert codes["truncation"].details["rows"] == [0]


def test_disk_space(model, tmp_path):
    m = model("qwen3")
    assert "disk-space" not in tmplc.check(m, output_dir=tmp_path / "out", tokenizer=load_tokenizer("qwen3")).codes()


def test_report_json_and_import_is_light():
    import subprocess
    import sys

    code = ("import sys, tmplc; tmplc.check; import tmplc.doctor; "
            "assert not {'torch','transformers','safetensors'} & set(sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
    from tmplc.doctor import Finding, Report

    r = Report("x", "chatml", "given", [Finding("pad-missing", "warning", "m", "f", {"ids": {3, 1}})])
    j = r.to_json()
    assert j["findings"][0]["details"] == {"ids": [1, 3]} and r.ok and r.codes() == {"pad-missing"}
    with pytest.raises(ValueError):
        Finding("x", "fatal", "m")


def test_disk_space_thresholds(tmp_path):
    import shutil

    from tmplc.doctor.disk import disk_findings

    (f,) = disk_findings(tmp_path / "out", 10**18)
    assert f.code == "disk-space" and f.severity == "error"
    free = shutil.disk_usage(tmp_path).free
    (f,) = disk_findings(tmp_path / "a" / "b", int(free / 1.5), keep=2)  # one fits, two do not
    assert f.severity == "warning" and f.details["keep"] == 2
    assert disk_findings(tmp_path, 1024, keep=3) == []
