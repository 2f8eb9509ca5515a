"""Any ToolFormat, not only Qwen3's: random tool layouts (texts with Jinja syntax, quotes,
newlines, special-token text; JSON styles: indent, separators, sort_keys, ensure_ascii; grouped
or not; a system default; a reasoning format or not) on random tool conversations, the HF Jinja
target in jinja2's HF-compatible sandbox equals the reference renderer."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

import tmplc
from tmplc.ir import JsonStyle, ToolFormat
from tmplc.jinja_env import render_template

from tools.strategies_tools import tool_conversations

_text = st.one_of(st.sampled_from(["", "\n", "<tools>", "{{ x }}", "{% if %}", "'", '"', "\\", "<|im_end|>", "é 🙂"]),
                  st.text(max_size=6))
_styles = st.builds(JsonStyle, indent=st.sampled_from([None, 0, 2]),
                    separators=st.sampled_from([(), (",", ":"), (", ", ": "), (",\n", " = ")]),
                    sort_keys=st.booleans(), ensure_ascii=st.booleans())
tool_formats = st.builds(ToolFormat, json=_styles, system_sep=_text, list_prefix=_text, item_prefix=_text,
                         item_suffix=_text, list_suffix=_text, content_sep=_text, call_prefix=_text,
                         call_middle=_text, call_suffix=_text, call_sep=_text, results_open=_text,
                         result_prefix=_text, result_suffix=_text, results_close=_text, grouped=st.booleans())

CHATML = tmplc.load("chatml")
THINKING = tmplc.load("qwen3-thinking")


@settings(max_examples=80)
@given(tool_formats, st.sampled_from(["chatml", "thinking", "default"]), tool_conversations(), st.booleans())
def test_any_tool_format_renders_alike_in_the_hf_target(tf, base, conv, agp):
    msgs, tools = conv
    fmt = {"chatml": CHATML, "thinking": THINKING, "default": CHATML}[base]
    st_ = fmt.structure
    if base == "default":
        st_ = replace(st_, system=replace(st_.system, default="You are a bot."))
    if base != "thinking":  # a format without reasoning rules refuses reasoning: leave it out here
        msgs = [{k: v for k, v in m.items() if k != "reasoning_content"} for m in msgs]
    fmt = replace(fmt, structure=replace(st_, tools=tf))
    want = fmt.render(msgs, tools=tools, add_generation_prompt=agp)
    assert render_template(fmt.to_jinja(), msgs, tools=tools, add_generation_prompt=agp) == want
