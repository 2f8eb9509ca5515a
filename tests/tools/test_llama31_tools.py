"""``llama-3.1-tools`` where the real Llama-3.1 template (the corpus text, through transformers)
raises, or renders something other than the conversation it was given: tmplc refuses with a
MessageError naming the message, and its HF Jinja (and llama.cpp) target raises too.  Where the
real template renders, tmplc renders the same bytes (test_real_tool_templates.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import TemplateError

from tmplc.engines.llamacpp import LlamaCppRenderError, render_llamacpp
from tmplc.errors import MessageError
from tmplc.registry import registry

from conftest import load_tokenizer, missing_fixture
from tools.test_llamacpp_tools import _driver
from tools.test_qwen3_tools_real import WEATHER

CORPUS = Path(__file__).resolve().parents[2] / ".cache" / "corpus" / "templates"
FMT = registry["llama-3.1-tools"]
CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}


def _real(name: str = "llamacpp-meta-llama-Llama-3.1-8B-Instruct.jinja") -> str:
    path = CORPUS / name
    if not path.is_file():
        missing_fixture(f"the real template {path.name}", "run: bash scripts/setup.sh (fetches the corpus)")
    return path.read_text(encoding="utf-8")


def real(msgs, tools=None, agp=False, template=None):
    return load_tokenizer("llama3").apply_chat_template(msgs, tokenize=False, chat_template=template or _real(),
                                                        tools=tools, add_generation_prompt=agp)


def ours_jinja(msgs, tools=None, agp=False):
    return load_tokenizer("llama3").apply_chat_template(msgs, tokenize=False, chat_template=FMT.to_jinja(),
                                                        tools=tools, add_generation_prompt=agp)


def refused_everywhere(msgs, tools, index, what):
    """tmplc's reference refuses (MessageError at ``index``), and both of its templates raise."""
    with pytest.raises(MessageError, match=what) as e:
        FMT.render(msgs, tools=tools)
    assert e.value.index == index
    with pytest.raises(TemplateError):
        ours_jinja(msgs, tools)
    _driver()
    target = FMT.to_llamacpp()
    out = render_llamacpp([{"template": target.chat_template, "messages": msgs, "bos_token": "",
                            "eos_token": FMT.meta.eos_token, "add_generation_prompt": False,
                            "add_bos": target.add_bos_token, "raw_messages": True,
                            "extra_context": {"tools": tools} if tools is not None else None}])[0]
    assert isinstance(out, LlamaCppRenderError) and "tmplc: " in out.message, out  # our raise_exception


@pytest.mark.parametrize("tools", [None, [WEATHER]])
def test_more_than_one_call_per_answer_is_refused_as_the_real_template_raises(tools):
    msgs = [{"role": "user", "content": "Paris and Tokyo?"},
            {"role": "assistant", "content": "", "tool_calls": [CALL, CALL]}]
    with pytest.raises(TemplateError, match="only supports single tool-calls"):
        real(msgs, tools)
    refused_everywhere(msgs, tools, 1, "at most 1 tool call per answer")
    one = [msgs[0], {"role": "assistant", "content": "", "tool_calls": [CALL]}]
    assert FMT.render(one, tools=tools) == real(one, tools) == ours_jinja(one, tools)


@pytest.mark.parametrize("tools", [[], [WEATHER]])
def test_tools_without_a_user_message_are_refused_as_the_real_template_raises(tools):
    msgs = [{"role": "system", "content": "S"}]  # (transformers itself refuses an empty conversation)
    with pytest.raises(TemplateError):
        real(msgs, tools)
    refused_everywhere(msgs, tools, None, "puts the tools in the first user message, but the conversation has "
                                          "no user message")
    with pytest.raises(MessageError, match="has no user message"):
        FMT.render([], tools=tools)


def test_without_tools_a_system_message_alone_renders_as_the_real_template():
    msgs = [{"role": "system", "content": " S "}]
    for agp in (False, True):
        assert FMT.render(msgs, add_generation_prompt=agp) == real(msgs, agp=agp) == ours_jinja(msgs, agp=agp)


@pytest.mark.parametrize("lead", [[], [{"role": "system", "content": "S"}]])
def test_with_tools_the_first_turn_must_be_a_user_message(lead):
    """The real template takes the first message after the system message as the user message,
    whatever its role: an opening answer is rendered under a *user* header.  tmplc refuses."""
    msgs = lead + [{"role": "assistant", "content": "I start."}, {"role": "user", "content": "ok"}]
    text = real(msgs, [WEATHER])
    assert "<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions" in text
    assert "I start.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nok" in text
    assert "<|start_header_id|>assistant<|end_header_id|>\n\nI start." not in text
    refused_everywhere(msgs, [WEATHER], len(lead), "the first message after the system message must be a user "
                                                   "message, not 'assistant'")
    # without tools there is no first-user slot: the same conversation renders as the real template
    assert FMT.render(msgs) == real(msgs) == ours_jinja(msgs)


@pytest.mark.parametrize("tools", [None, [WEATHER]])
def test_content_beside_a_call_is_refused_as_the_real_template_drops_it(tools):
    msgs = [{"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [CALL]}]
    assert "Let me look." not in real(msgs, tools)
    refused_everywhere(msgs, tools, 1, "renders an answer with tool calls without its content")
    # whitespace-only content renders as nothing (trimmed), as the real template's dropped content
    for content in ("", " \n", None):
        ws = [msgs[0], dict(msgs[1], content=content)]
        assert FMT.render(ws, tools=tools) == real(ws, tools) == ours_jinja(ws, tools)


def test_tool_results_are_json_string_literals_in_an_ipython_turn():
    """The real template pipes a result through tojson when it ``is iterable``, which a string is."""
    msgs = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "", "tool_calls": [CALL]},
            {"role": "tool", "content": "21 °C\n\"dry\""}]
    text = real(msgs, [WEATHER])
    assert text.endswith('<|start_header_id|>ipython<|end_header_id|>\n\n"21 °C\\n\\"dry\\""<|eot_id|>')
    assert FMT.render(msgs, tools=[WEATHER]) == text == ours_jinja(msgs, [WEATHER])


def test_an_empty_tool_list_still_renders_the_tool_prompt():
    """``tools is not none``: ``[]`` switches the real template to its tool layout (without items)."""
    msgs = [{"role": "user", "content": "hi"}]
    text = real(msgs, [])
    assert "Environment: ipython\n" in text and "Do not use variables.\n\nhi<|eot_id|>" in text
    assert FMT.render(msgs, tools=[]) == text == ours_jinja(msgs, [])
    assert FMT.render(msgs) == real(msgs) != text


def test_llama_33_ships_the_same_template():
    """The alias llama-3.3-tools: Llama-3.3-70B-Instruct's template is Llama-3.1's text."""
    assert _real("llamacpp-meta-llama-Llama-3.3-70B-Instruct.jinja") == _real()
    assert registry.resolve("llama-3.3-tools") == "llama-3.1-tools"


def test_llamacpp_pipeline_keeps_the_system_role():
    """llama.cpp's capability probe renders the template with ``tools=[]``, which switches this
    format to its tool prompt (as the real template): it must still find the system role, or
    llama-server would merge the system message into the user's content."""
    from test_contract import llamacpp_expected

    _driver()
    target = FMT.to_llamacpp()
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "yo"}, {"role": "user", "content": "hi"}]
    job = {"template": target.chat_template, "messages": msgs, "bos_token": FMT.meta.bos_token,
           "eos_token": FMT.meta.eos_token, "add_generation_prompt": True, "add_bos": target.add_bos_token}
    got = render_llamacpp([job])[0]
    assert got == llamacpp_expected(FMT, msgs, True, target.add_bos_token)
    assert "Be brief.<|eot_id|>" in got and "Environment: ipython" not in got
