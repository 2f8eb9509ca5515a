"""The ``qwen3-tools`` llama.cpp target (its GGUF ``tokenizer.chat_template``) rendered by
llama.cpp's own C++ Jinja engine equals the reference on random tool conversations.

The messages reach the engine as given (the driver's ``raw_messages`` test hook: tool_calls
with object or string arguments, reasoning_content, tool results) and the tools as a context
variable; llama-server's own message normalisation (which rewrites tool calls from its parsed
form) is not part of this check."""

from __future__ import annotations

from hypothesis import assume, given, settings

from tmplc.engines.llamacpp import LlamaCppRenderError, ensure_llamacpp_driver, render_llamacpp
from tmplc.registry import registry

from conftest import missing_fixture
from tools.strategies_tools import tool_conversations
from tools.test_qwen3_tools_real import AGENT, WEATHER

FMT = registry["qwen3-tools"]


def _driver():
    try:
        ensure_llamacpp_driver()
    except Exception as exc:  # noqa: BLE001 - any build failure means the engine is missing
        missing_fixture(f"llama.cpp's engine ({exc})", "run: python scripts/fetch_llamacpp.py --build")


def check_batch(cases):
    _driver()
    target = FMT.to_llamacpp()
    jobs = [{"template": target.chat_template, "messages": msgs, "bos_token": "", "eos_token": FMT.meta.eos_token,
             "add_generation_prompt": agp, "add_bos": target.add_bos_token, "raw_messages": True,
             "extra_context": {"tools": tools} if tools is not None else None} for msgs, tools, agp in cases]
    for (msgs, tools, agp), out in zip(cases, render_llamacpp(jobs)):
        assert not isinstance(out, LlamaCppRenderError), out
        assert out == FMT.render(msgs, tools=tools, add_generation_prompt=agp), (msgs, tools, agp)


def test_fixed_agent_conversation():
    check_batch([(AGENT[:k], tools, agp) for k in range(2, len(AGENT) + 1)
                 for tools in (None, [], [WEATHER]) for agp in (False, True)])


def _has_float(v) -> bool:
    if isinstance(v, float):
        return True
    if isinstance(v, dict):
        return any(_has_float(x) for x in v.values())
    if isinstance(v, list):
        return any(_has_float(x) for x in v)
    return False


def test_llamacpps_tojson_writes_floats_with_six_significant_digits():
    """A known divergence (docs/tools.md): llama.cpp's ``tojson`` writes a float like C's ``%g``
    (``0.0`` as ``0``, ``3.14159265358979`` as ``3.14159``) where Python's json (transformers, the
    reference) writes its shortest round-trip form; arguments given as a JSON string render as
    given in both."""
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {"x": 0.0}},
                                                                {"name": "g", "arguments": {"y": 3.14159265358979}}]}]
    _driver()
    target = FMT.to_llamacpp()
    (out,) = render_llamacpp([{"template": target.chat_template, "messages": msgs, "bos_token": "",
                               "eos_token": "<|im_end|>", "raw_messages": True}])
    ref = FMT.render(msgs)
    assert '{"x": 0.0}' in ref and out == ref.replace('{"x": 0.0}', '{"x": 0}').replace("3.14159265358979", "3.14159")
    msgs[1]["tool_calls"][0]["arguments"] = '{"x": 0.0}'
    msgs[1]["tool_calls"][1]["arguments"] = '{"y": 3.14159265358979}'
    check_batch([(msgs, None, False)])


@settings(max_examples=60)
@given(tool_conversations())
def test_random_tool_conversations_in_llamacpps_engine(conv):
    msgs, tools = conv
    assume(not _has_float([m.get("tool_calls") for m in msgs]) and not _has_float(tools or []))
    check_batch([(msgs, tools, False), (msgs, tools, True)])
