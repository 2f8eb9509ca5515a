"""The ``qwen3-tools`` entry against the REAL Qwen3 chat template (the qwen3 fixture's own
``chat_template``), on random tool conversations: 0-3 tools with nested JSON-schema parameters,
unicode, 0-3 calls per answer (arguments as objects and as JSON strings), tool results in JSON
and plain text, reasoning as ``reasoning_content`` and inside the content.

Compared: transformers' ``apply_chat_template`` with the real template == tmplc's reference
render == tmplc's HF Jinja through transformers == the same through tmplc's jinja2 sandbox; and
the token ids.  Outside the domain (documented in the entry's notes): user messages wrapped in
``<tool_response>`` tags, which the real template takes for tool results."""

from __future__ import annotations

import json

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from tmplc.errors import MessageError
from tmplc.jinja_env import render_template
from tmplc.registry import registry

from conftest import load_tokenizer
from tools.strategies_tools import tool_conversations

FMT = registry["qwen3-tools"]
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Météo 日本",
                                            "parameters": {"type": "object", "properties": {
                                                "city": {"type": "string"},
                                                "days": {"type": "array", "items": {"type": "integer"}}},
                                                "required": ["city"]}}}


def _jinja() -> str:
    return FMT.to_jinja()


def check(msgs, tools, agp):
    tok = load_tokenizer("qwen3")
    real = tok.apply_chat_template(msgs, tools=tools, tokenize=False, add_generation_prompt=agp)
    assert FMT.render(msgs, tools=tools, add_generation_prompt=agp) == real
    tmpl = _jinja()
    assert tok.apply_chat_template(msgs, tools=tools, tokenize=False, add_generation_prompt=agp,
                                   chat_template=tmpl) == real
    assert render_template(tmpl, msgs, add_generation_prompt=agp, tools=tools) == real
    ids = tok.apply_chat_template(msgs, tools=tools, tokenize=True, add_generation_prompt=agp)
    ours = tok.apply_chat_template(msgs, tools=tools, tokenize=True, add_generation_prompt=agp, chat_template=tmpl)
    assert (ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids) == \
        (ours["input_ids"] if isinstance(ours, dict) or hasattr(ours, "keys") else ours)


AGENT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Weather in Paris and Tokyo?"},
    {"role": "assistant", "content": "", "reasoning_content": "\nTwo cities: two calls.\n",
     "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                    {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Tokyo\"}"}}]},
    {"role": "tool", "content": "{\"temp\": 21}"},
    {"role": "tool", "content": "rain"},
    {"role": "assistant", "content": "Paris 21°, Tokyo rain."},
]


@pytest.mark.parametrize("tools", [None, [], [WEATHER], [WEATHER, WEATHER]])
@pytest.mark.parametrize("cut", range(2, len(AGENT) + 1))
def test_fixed_agent_conversation(tools, cut):
    for agp in (False, True):
        check(AGENT[:cut], tools, agp)
        check(AGENT[1:cut], tools, agp)


def test_reasoning_in_content_and_as_reasoning_content():
    base = [{"role": "user", "content": "q"}]
    for a in ({"role": "assistant", "content": "<think>\nr\n</think>\n\nA"},
              {"role": "assistant", "content": "\nA", "reasoning_content": "r"},
              {"role": "assistant", "content": "\nA", "reasoning_content": ""},
              {"role": "assistant", "content": "x</think>y", "reasoning_content": "\n"}):
        for tail in ([], [{"role": "user", "content": "more"}], [dict(a)]):
            check(base + [a] + tail, None, False)


@settings(max_examples=80)
@given(tool_conversations(), st.booleans())
@example(([{"role": "user", "content": ""},
           {"role": "assistant", "content": "\n", "tool_calls": [{"name": "f", "arguments": {}}]}], None), False)
@example(([{"role": "user", "content": "q"},
           {"role": "assistant", "content": "a", "reasoning_content": "\n"},
           {"role": "assistant", "content": "b"}], [WEATHER]), True)
def test_random_tool_conversations_equal_the_real_template(conv, agp):
    msgs, tools = conv
    # the real template's last-query search takes these user messages for tool results
    assume(not any(m["role"] == "user" and m["content"].startswith("<tool_response>")
                   and m["content"].endswith("</tool_response>") for m in msgs))
    check(msgs, tools, agp)


def test_a_format_without_tool_support_refuses_tools_and_tool_messages():
    qwen3 = registry["qwen3"]
    with pytest.raises(MessageError, match="no tool support: it cannot render tools"):
        qwen3.render([{"role": "user", "content": "hi"}], tools=[WEATHER])
    with pytest.raises(MessageError, match=r"message 1: unknown role 'tool'.*no tool support"):
        qwen3.render([{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}])
    with pytest.raises(MessageError, match=r"message 1.*cannot render tool_calls"):
        qwen3.render([{"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {}}]}])
    with pytest.raises(MessageError, match=r"message 1.*renders no reasoning"):
        qwen3.render([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a", "reasoning_content": "r"}])


@pytest.mark.parametrize("call, what", [
    ({"name": "f", "arguments": "{not json"}, "not JSON"),
    ({"name": "f", "arguments": 3}, "must be an object or a JSON string"),
    ({"function": {"arguments": {}}}, r"tool_calls\[0\] must be"),
    ("f", r"tool_calls\[0\] must be"),
])
def test_bad_tool_calls_name_the_message(call, what):
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "", "tool_calls": [call]}]
    with pytest.raises(MessageError, match="message 1") as e:
        FMT.render(msgs)
    assert e.match(what)


def test_string_and_object_arguments_render_as_transformers_does():
    """A JSON-string argument renders as given (its own layout); an object by the format's JSON."""
    msgs = [{"role": "user", "content": "hi"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"name": "f", "arguments": "{\"a\":1}"}, {"name": "g", "arguments": {"é": [1, {"b": None}]}}]}]
    out = FMT.render(msgs)
    assert '{"name": "f", "arguments": {"a":1}}' in out
    assert '{"name": "g", "arguments": ' + json.dumps({"é": [1, {"b": None}]}, ensure_ascii=False) + "}" in out
    check(msgs, None, False)


def test_thinking_alias_and_null_content_render_alike_in_every_target():
    """tmplc's own conventions beyond the real template: ``thinking`` is read as the reasoning, and
    a tool-call-only answer may have ``content: None`` (= ``""``); the HF and llama.cpp targets
    render them as the reference does."""
    from tools.test_llamacpp_tools import check_batch

    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": None, "thinking": "\nhm\n",
             "tool_calls": [{"name": "f", "arguments": {"a": 1}}]},
            {"role": "tool", "content": "r"}]
    want = FMT.render(msgs, tools=[WEATHER])
    assert "<think>\nhm\n</think>\n\n<tool_call>\n" in want
    assert render_template(_jinja(), msgs, tools=[WEATHER]) == want
    check_batch([(msgs, [WEATHER], False)])
    # as reasoning_content, it is what the real template renders
    real = [dict(m) for m in msgs]
    real[1]["reasoning_content"] = real[1].pop("thinking")
    real[1]["content"] = ""
    assert load_tokenizer("qwen3").apply_chat_template(real, tools=[WEATHER], tokenize=False) == want
