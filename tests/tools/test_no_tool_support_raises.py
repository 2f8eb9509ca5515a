"""A format without tool support (or without reasoning) refuses what it cannot render in every
target, as the reference does: its HF Jinja raises (``raise_exception``, as the real templates
do) through transformers' ``apply_chat_template`` and through llama.cpp's C++ engine, instead of
silently dropping tools, tool calls or reasoning."""

from __future__ import annotations

import pytest

from tmplc.engines.llamacpp import LlamaCppRenderError, render_llamacpp
from tmplc.errors import MessageError
from tmplc.registry import registry

from conftest import load_tokenizer
from tools.test_llamacpp_tools import _driver
from tools.test_qwen3_tools_real import WEATHER

HI = {"role": "user", "content": "hi"}
CALL = {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {}}]}
CASES = {  # what is given -> (messages, tools, the reference's message)
    "tools": ([HI], [WEATHER], "no tool support: it cannot render tools"),
    "tool_calls": ([HI, CALL], None, "message 1: .*no tool support: it cannot render tool_calls"),
    "reasoning_content": ([HI, {"role": "assistant", "content": "a", "reasoning_content": "r"}], None,
                          "message 1: .*renders no reasoning"),
    "thinking": ([HI, {"role": "assistant", "content": "a", "thinking": ""}], None,
                 "message 1: .*renders no reasoning"),
}
FORMATS = ["qwen3", "qwen2.5", "llama-3.1", "mistral-v7", "gemma-3", "chatml"]


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_hf_jinja_raises_like_the_reference(name, case):
    msgs, tools, what = CASES[case]
    fmt = registry[name]
    if case in ("reasoning_content", "thinking") and fmt.structure.assistant.rule.renders_reasoning:
        pytest.fail(f"{name} renders reasoning: pick a format without")
    with pytest.raises(MessageError, match=what):
        fmt.render(msgs, tools=tools)
    tok = load_tokenizer("qwen3")
    with pytest.raises(Exception, match="tmplc: .*" + what) as e:
        tok.apply_chat_template(msgs, tools=tools, tokenize=False, chat_template=fmt.to_jinja())
    assert type(e.value).__name__ == "TemplateError"


@pytest.mark.parametrize("name", FORMATS)
def test_an_empty_tool_list_means_no_tools(name):
    """``tools=[]`` is no tools, as in the real templates (``{% if tools %}``); llama.cpp's capability
    probe renders every template with it, so refusing it would make llama.cpp think the template
    has no system role and merge the system message into the first user message."""
    fmt = registry[name]
    msgs = [{"role": "system", "content": "S"}, HI] if fmt.structure.system is not None else [HI]
    want = fmt.render(msgs)
    assert fmt.render(msgs, tools=[]) == want
    tok = load_tokenizer("qwen3")
    got = tok.apply_chat_template(msgs, tools=[], tokenize=False, chat_template=fmt.to_jinja())
    assert got == tok.apply_chat_template(msgs, tokenize=False, chat_template=fmt.to_jinja())
    assert "hi" in got and ("S" in got or fmt.structure.system is None)


def test_a_tool_format_renders_the_same_conversations():
    """The refusals are of the format, not of the conversations: a tool and reasoning format
    renders them all, in its Jinja as in the reference."""
    fmt = registry["qwen3-tools"]
    tok = load_tokenizer("qwen3")
    for msgs, tools, _ in CASES.values():
        assert tok.apply_chat_template(msgs, tools=tools, tokenize=False, chat_template=fmt.to_jinja()) == \
            fmt.render(msgs, tools=tools)


@pytest.mark.parametrize("name", FORMATS)
def test_llamacpp_engine_raises_like_the_reference(name):
    _driver()
    fmt = registry[name]
    target = fmt.to_llamacpp()
    cases = sorted(CASES)
    jobs = [{"template": target.chat_template, "messages": CASES[c][0], "bos_token": "<s>",
             "eos_token": fmt.meta.eos_token or "</s>", "add_generation_prompt": False,
             "add_bos": target.add_bos_token, "raw_messages": True,
             "extra_context": {"tools": CASES[c][1]} if CASES[c][1] is not None else None} for c in cases]
    for c, out in zip(cases, render_llamacpp(jobs)):
        assert isinstance(out, LlamaCppRenderError), (c, out)
        assert "tmplc: " in str(out) and ("tool" in str(out) or "reasoning" in str(out)), (c, str(out))


def test_llamacpp_keeps_the_system_role_of_first_user_system_formats():
    """Regression (found by tests/test_contract.py): llama.cpp's capability probe renders every
    template with ``tools=[]``; a refusal of empty tools made it conclude the template has no system
    role and merge the system message into the user's content (the ``<<SYS>>`` wrapper lost)."""
    from test_contract import llamacpp_expected

    _driver()
    names = [n for n in registry if registry[n].structure.system is not None
             and registry[n].structure.system.placement == "first_user"]
    assert len(names) >= 3, names
    msgs = [{"role": "system", "content": "Be brief."}, HI, {"role": "assistant", "content": "yo"}, HI]
    jobs, wants = [], []
    for name in names:
        fmt = registry[name]
        target = fmt.to_llamacpp()
        bos, eos = fmt.meta.bos_token or "<s>", fmt.meta.eos_token or "</s>"
        jobs.append({"template": target.chat_template, "messages": msgs, "bos_token": bos, "eos_token": eos,
                     "add_generation_prompt": True, "add_bos": target.add_bos_token})
        wants.append(llamacpp_expected(fmt, msgs, True, target.add_bos_token))
    for name, got, want in zip(names, render_llamacpp(jobs), wants):
        assert got == want, (name, got, want)
