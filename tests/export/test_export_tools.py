"""A model folder whose own template carries tools (the real Qwen3-Coder template, no tmplc.yaml):
``tmplc check`` reads its tool part, and ``tmplc export`` imports it with its tools, so the GGUF's
template renders tool conversations as the model's own template does, checked by llama.cpp's
engine at export time; the Modelfile carries the text part, with a note saying so."""

from __future__ import annotations

import json

import pytest

import tmplc
from convert.test_convert_tools import corpus_template
from tmplc.convert.corpus import hf_render
from tmplc.export.conversations import check_tool_conversations

from .conftest import need_engines, need_llama_cpp

CODER = "llamacpp-Qwen3-Coder"


@pytest.fixture(scope="module")
def coder(tiny, tmp_path_factory):
    need_llama_cpp()
    need_engines()
    template, _, _ = corpus_template(CODER)
    from transformers import AutoTokenizer

    from conftest import tokenizer_dir

    eot = AutoTokenizer.from_pretrained(str(tokenizer_dir("qwen3"))).convert_tokens_to_ids("<|im_end|>")
    model = tiny("coder", "qwen3", "qwen3", eos_token_id=eot)  # generation stops at the end of turn
    cfg = model / "tokenizer_config.json"
    data = json.loads(cfg.read_text(encoding="utf-8"))
    data["chat_template"] = template
    cfg.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert not (model / "chat_template.jinja").exists() and not (model / "tmplc.yaml").exists()
    out = tmp_path_factory.mktemp("coder-out")
    return model, template, out, tmplc.export(model, None, out, outtypes="f16", logits=False)


def test_check_reads_the_folders_tool_part(coder):
    model, *_ = coder
    from tmplc.doctor.template import folder_format

    r = tmplc.check(model)
    assert r.ok and r.template_source == "tokenizer chat_template" and r.template == model.name
    fmt, why = folder_format(model)  # what check, format and train read off the folder
    tf = fmt.structure.tools
    assert tf is not None and tf.tool_layout == "xml" and tf.default_system.startswith("You are Qwen")


def test_export_keeps_the_templates_tools_and_checks_them_in_llamacpp(coder):
    from tmplc.engines.llamacpp import render_llamacpp
    from tmplc.export.validate import gguf_chat_fields

    model, template, out, report = coder
    assert report.ok, report.summary()
    first = report.checks[0]
    assert first.name == "llamacpp_template" and first.data["with_tools"] >= 6, first.detail
    hf = next(c for c in report.checks if c.name == "hf_template")  # the folder's own template, by transformers
    assert hf.ok and hf.data["with_tools"] == first.data["with_tools"], hf.detail
    assert "tool_layout: xml" in report.spec
    # independent of tmplc's reference: the GGUF's template through llama.cpp's engine == the
    # model's own template through transformers, on every tool conversation of the check
    g = gguf_chat_fields(out / f"{model.name}-F16.gguf")
    cases = [(m, t, agp) for m, t in check_tool_conversations() for agp in (False, True)
             if not (agp and m[-1]["role"] == "assistant")]
    jobs = [{"template": g["chat_template"], "messages": m, "bos_token": g["bos_text"] or "",
             "eos_token": g["eos_text"] or "", "add_generation_prompt": agp, "add_bos": bool(g["add_bos"]),
             "raw_messages": True, "extra_context": {"tools": t} if t is not None else None} for m, t, agp in cases]
    for (m, t, agp), got in zip(cases, render_llamacpp(jobs)):
        assert got == hf_render(template, m, agp, None, "<|im_end|>", t), (m, t, agp)
    # the Modelfile: the text part, and the report says so
    assert (out / "Modelfile").is_file()
    assert any(n.startswith("the Modelfile carries the text format only, without its tools") for n in report.notes)


def test_the_tool_check_fails_on_a_template_that_drops_the_tools(coder):
    """The check is no rubber stamp: the text part's template (which refuses tools) fails it."""
    from tmplc.export.validate import check_llamacpp_template, gguf_chat_fields

    model, _, out, report = coder
    from tmplc.spec.files import load_yaml_spec

    fmt = load_yaml_spec(report.spec)
    fields = dict(gguf_chat_fields(out / f"{model.name}-F16.gguf"))
    fields["chat_template"] = fmt.without_tools().to_llamacpp().chat_template
    c = check_llamacpp_template(fmt, out / "unused.gguf", [], fields, check_tool_conversations())
    assert c.ok is False and "differently from training" in c.detail
