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
    "empty tools": ([HI], [], "no tool support: it cannot render tools"),
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
