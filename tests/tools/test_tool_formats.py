"""Any ToolFormat, not only Qwen3's: random tool layouts (texts with Jinja syntax, quotes,
newlines, special-token text; JSON styles: indent, separators, sort_keys, ensure_ascii; grouped
or not; a system default; a reasoning format or not; text around all of an answer's calls; the
three rules for the content separator; the list after the system message, before it or after the
whole block; the separator
between them always or only beside
a non-empty one; each tool listed whole or its function object alone; calls or the tool list not
rendered at all (refused); arguments as one JSON object or key by key, with JSON or
Python values) on random tool conversations, the HF Jinja target in jinja2's HF-compatible
sandbox equals the reference renderer, and both refuse the same messages."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

import tmplc
from tmplc.ir import ContentRule, JsonStyle, ToolFormat
from tmplc.jinja_env import render_template

from tools.strategies_tools import tool_conversations
from tools.test_llamacpp_tools import _with_ids

_text = st.one_of(st.sampled_from(["", "\n", "<tools>", "{{ x }}", "{% if %}", "'", '"', "\\", "<|im_end|>", "é 🙂"]),
                  st.text(max_size=6))
_styles = st.builds(JsonStyle, indent=st.sampled_from([None, 0, 2]),
                    separators=st.sampled_from([(), (",", ":"), (", ", ": "), (",\n", " = ")]),
                    sort_keys=st.booleans(), ensure_ascii=st.booleans())
tool_formats = st.builds(ToolFormat, json=_styles, system_sep=_text, list_prefix=_text, item_prefix=_text,
                         item_suffix=_text, list_suffix=_text, content_sep=_text, call_prefix=_text,
                         call_middle=_text, call_suffix=_text, call_sep=_text, results_open=_text,
                         result_prefix=_text, result_suffix=_text, results_close=_text, grouped=st.booleans())

_arg_layouts = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"arg_prefix": _text, "arg_middle": _text, "arg_suffix": _text,
                           "arg_values": st.sampled_from(["json", "python", "str", "python_call"]),
                           "arg_middle_other": st.none() | _text, "arg_sep": _text,
                           "no_arguments": _text, "arg_cdata": st.booleans()}))


def _extended(tf: ToolFormat, extra: dict) -> ToolFormat:
    extra = dict(extra)
    if extra["list_json"]:
        extra.update(item_prefix="", item_suffix="", item_sep="")
    if not tf.grouped:
        extra["result_sep"] = ""
    if extra["user_prefix_after_results"] is None:
        extra["user_after_user"] = False
    if extra["list_json"]:
        extra["tool_layout"] = "json"
    if extra["placement"] != "system":
        extra["default_system"] = None
    if not extra["call_id_after"]:
        extra["call_id_suffix"] = ""
    if extra["placement"] != "system" or extra["list_first"] or extra["default_system"] is not None:
        extra["list_block_suffix"] = None
    return replace(tf, **extra)
extended_tool_formats = st.builds(
    _extended, tool_formats,
    st.fixed_dictionaries({"calls_open": _text, "calls_close": _text, "call_index_prefix": st.none() | _text,
                           "call_id_prefix": st.none() | _text, "call_id_after": st.booleans(), "call_id_suffix": _text,
                           "last_call_ids": st.booleans(), "list_block_suffix": st.none() | _text,
                           "list_json": st.booleans(), "absent": st.none() | _text,
                           "content_sep_if": st.sampled_from(["answer", "content", "unended"]),
                           "tool_object": st.sampled_from(["tool", "function"]),
                           "system_sep_if": st.sampled_from(["message", "content"]),
                           "renders_calls": st.sampled_from([True, True, True, False]),
                           "renders_list": st.sampled_from([True, True, True, False]),
                           "calls_end_turn": st.booleans(), "list_first": st.booleans(),
                           "result_content": st.sampled_from(["verbatim", "json", "trim"]),
                           "result_sep": _text, "user_prefix_after_results": st.none() | _text,
                           "assistant_prefix_after_results": st.none() | _text, "user_after_user": st.booleans(),
                           "results_answer_calls": st.sampled_from([False, False, True]),
                           "placement": st.sampled_from(["system", "system", "after_system", "start"]),
                           "tool_layout": st.sampled_from(["json", "json", "xml", "python_def", "typescript", "python_str"]),
                           "default_system": st.none() | st.none() | _text,
                           "call_answers": st.sampled_from(["rule", "trim", "verbatim"]),
                           "answers_after_results": st.sampled_from(["rule", "verbatim"])}).flatmap(
        lambda d: _arg_layouts.map(lambda a: {**d, **a})))

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


def _objects(msgs: list[dict]) -> list[dict]:
    """Every call's arguments as an object (a per-argument format refuses JSON strings)."""
    import json

    def obj(c):
        f = c.get("function", c)
        args = f["arguments"] if isinstance(f["arguments"], dict) else json.loads(f["arguments"])
        f = {**f, "arguments": args}
        return {**c, "function": f} if "function" in c else f

    return [{**m, "tool_calls": [obj(c) for c in m["tool_calls"]]} if m.get("tool_calls") else m for m in msgs]


@settings(max_examples=120)
@given(extended_tool_formats, st.sampled_from(["chatml", "thinking", "drop_think"]), tool_conversations(), st.booleans(),
       st.booleans(), st.sampled_from(["strip_nl", "verbatim", "trim", "refused"]))
def test_any_extended_tool_format_renders_alike_in_the_hf_target(tf, base, conv, agp, as_objects, given_reasoning):
    """calls_open/calls_close, content_sep_if, arg_prefix/arg_middle/arg_suffix/arg_values,
    arg_middle_other/no_arguments, result_sep, the turn prefixes after results, results_answer_calls,
    tool_object, tool_layout (XML tool lists, Python signatures, TypeScript types, Python's str), call ids
    before or after the arguments and left out of the last message's calls, default_system, call_answers,
    answers_after_results (on a format that drops the reasoning from answers: where they differ), and each way of
    reading reasoning_content (given_reasoning): equal output where
    the reference renders; the same refusal (a MessageError from the reference, the template's
    raise_exception from the target) where it does not (string arguments of a per-argument
    format, reasoning_content for a format that refuses it)."""
    import pytest
    from jinja2 import TemplateError

    from tmplc.errors import MessageError

    msgs, tools = conv
    msgs = _with_ids(msgs)  # a format that renders call ids needs them (a missing one: tests/tools/test_llamacpp_tools)
    if as_objects:
        msgs = _objects(msgs)
    fmt = THINKING if base == "thinking" else CHATML
    if base == "drop_think":  # answers after their last </think>: the rule an answer "as given" differs from
        fmt = replace(fmt, structure=replace(fmt.structure, assistant=replace(
            fmt.structure.assistant, rule=ContentRule(drop_think="last"))))
    if base != "thinking":
        msgs = [{k: v for k, v in m.items() if k != "reasoning_content"} for m in msgs]
    else:  # a reasoning block would go unrendered in an answer "as given": such a format is refused (ValueError)
        tf = replace(tf, answers_after_results="rule",
                     call_answers="rule" if tf.call_answers == "verbatim" else tf.call_answers)
    fmt = replace(fmt, structure=replace(fmt.structure, tools=tf, given_reasoning=given_reasoning))
    try:
        want = fmt.render(msgs, tools=tools, add_generation_prompt=agp)
    except MessageError:
        t = fmt.structure.tools
        assert (tf.per_argument or fmt.structure.given_reasoning == "refused" or not t.renders_calls
                or not t.renders_list or t.results_answer_calls or t.tool_layout in ("python_def", "typescript"))
        with pytest.raises(TemplateError):
            render_template(fmt.to_jinja(), msgs, tools=tools, add_generation_prompt=agp)
        return
    assert render_template(fmt.to_jinja(), msgs, tools=tools, add_generation_prompt=agp) == want


def test_per_argument_values_none_true_false_as_python_or_json():
    """A value that is not a string: JSON by default, Python's ``None``/``True``/``False`` with
    ``arg_values: python``; strings as given, nested values as JSON, keys in the object's order."""
    args = {"z": None, "t": True, "f": False, "s": "x\ny", "n": 1.5, "o": {"b": [None, True]}}
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": args}]}]
    base = ToolFormat(call_prefix="<call ", call_middle=">", call_suffix="</call>", arg_prefix="<p ",
                      arg_middle="=", arg_suffix=";")
    for values, written in (("json", "<p z=null;<p t=true;<p f=false;"), ("python", "<p z=None;<p t=True;<p f=False;")):
        fmt = replace(CHATML, structure=replace(CHATML.structure, tools=replace(base, arg_values=values)))
        want = fmt.render(msgs)
        assert "<call f>" + written + '<p s=x\ny;<p n=1.5;<p o={"b": [null, true]};</call>' in want
        assert render_template(fmt.to_jinja(), msgs) == want


def test_function_object_lists_only_each_tools_function_and_refuses_a_tool_without_one():
    """``tool_object: function`` (MiniMax, DeepSeek V3.2, Solar): each list item is the JSON of
    ``tool["function"]``; a tool without a ``function`` object is refused by the reference and by
    the template alike (never rendered as something else)."""
    import json

    import pytest
    from jinja2 import TemplateError

    from tmplc.errors import MessageError

    tool = {"type": "function", "function": {"name": "get", "description": "d", "parameters": {"type": "object"}}}
    msgs = [{"role": "user", "content": "q"}]
    tf = ToolFormat(list_prefix="<tools>", item_prefix="\n", list_suffix="\n</tools>")
    for obj, item in (("tool", tool), ("function", tool["function"])):
        fmt = replace(CHATML, structure=replace(CHATML.structure, tools=replace(tf, tool_object=obj)))
        want = fmt.render(msgs, tools=[tool, tool])
        listed = "<tools>\n" + json.dumps(item, ensure_ascii=False) + "\n" + json.dumps(item, ensure_ascii=False)
        assert listed + "\n</tools>" in want
        assert render_template(fmt.to_jinja(), msgs, tools=[tool, tool]) == want
    for bad in ({"type": "function", "name": "get"}, {"type": "function", "function": "get"}):
        with pytest.raises(MessageError, match=r"tools\[1\] has no 'function' object"):
            fmt.render(msgs, tools=[tool, bad])
        with pytest.raises(TemplateError, match=r"tools\[1\] has no 'function' object"):
            render_template(fmt.to_jinja(), msgs, tools=[tool, bad])


def test_reasoning_content_read_newline_stripped_as_given_or_refused():
    """``given_reasoning``: Qwen3 strips the newlines around ``reasoning_content``, MiniMax-M2 renders
    it as given, Qwen3.5 strips its whitespace, QwQ never reads it (a message carrying it is refused by the reference and the
    template alike); either reading leaves the content unsplit."""
    import pytest
    from jinja2 import TemplateError

    from tmplc.errors import MessageError

    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "<think>x</think>a", "reasoning_content": "\nr\n"}]
    msgs[1]["reasoning_content"] = "\n r \n"
    for mode, block in (("strip_nl", "<think>\n r \n</think>"), ("verbatim", "<think>\n\n r \n\n</think>"),
                        ("trim", "<think>\nr\n</think>")):
        fmt = replace(THINKING, structure=replace(THINKING.structure, given_reasoning=mode))
        want = fmt.render(msgs)
        assert block + "\n\n<think>x</think>a<|im_end|>" in want
        assert render_template(fmt.to_jinja(), msgs) == want
    fmt = replace(THINKING, structure=replace(THINKING.structure, given_reasoning="refused"))
    with pytest.raises(MessageError, match="does not read reasoning_content"):
        fmt.render(msgs)
    with pytest.raises(TemplateError, match="does not read reasoning_content"):
        render_template(fmt.to_jinja(), msgs)
    del msgs[1]["reasoning_content"]
    assert render_template(fmt.to_jinja(), msgs) == fmt.render(msgs)


def test_system_separator_only_after_a_non_empty_system_message():
    """``system_sep_if: content`` (LFM2: ``"\\n" if system_prompt``): no separator between an empty
    (as the block renders it: trimmed) system message and the tool list; ``message``: always."""
    tool = {"type": "function", "function": {"name": "f", "parameters": {}}}
    st_ = replace(CHATML.structure, system=replace(CHATML.structure.system, trim=True))
    for sys_if, sep in (("message", "\n"), ("content", "")):
        tf = ToolFormat(system_sep="\n", system_sep_if=sys_if, list_prefix="Tools: ")
        fmt = replace(CHATML, structure=replace(st_, tools=tf))
        for content, shown in ((" \n", sep), ("s", "s\n")):
            msgs = [{"role": "system", "content": content}, {"role": "user", "content": "q"}]
            want = fmt.render(msgs, tools=[tool])
            assert want.startswith("<|im_start|>system\n" + shown + "Tools: {")
            assert render_template(fmt.to_jinja(), msgs, tools=[tool]) == want


def test_a_format_that_renders_no_calls_refuses_them_and_renders_the_rest():
    """``renders_calls: false`` (LFM2: the model writes its calls into the content): an answer
    carrying ``tool_calls`` is refused by the reference and the template alike; the tool list and
    the results render as for any format."""
    import pytest
    from jinja2 import TemplateError

    from tmplc.errors import MessageError

    tf = ToolFormat(list_prefix="Tools: [", item_sep=", ", list_suffix="]", call_prefix="<call>",
                    result_prefix="<r>", result_suffix="</r>", renders_calls=False)
    assert tf.call_prefix == "" and tf == replace(tf, call_prefix="")  # the call fields mean nothing here
    fmt = replace(CHATML, structure=replace(CHATML.structure, tools=tf))
    tool = {"type": "function", "function": {"name": "f", "parameters": {}}}
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "<|tool_call_start|>[f()]<|tool_call_end|>"},
            {"role": "tool", "content": "42"}]
    want = fmt.render(msgs, tools=[tool])
    assert "Tools: [{" in want and "<r>42</r>" in want
    assert render_template(fmt.to_jinja(), msgs, tools=[tool]) == want
    calls = msgs[:1] + [{"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {}}]}] + msgs[2:]
    with pytest.raises(MessageError, match="renders no tool_calls"):
        fmt.render(calls, tools=[tool])
    with pytest.raises(TemplateError, match="renders no tool_calls"):
        render_template(fmt.to_jinja(), calls, tools=[tool])


def test_a_format_that_renders_no_tool_list_refuses_tools_and_renders_the_rest():
    """``renders_list: false`` (DeepSeek: the tools go into the system message by hand): non-empty
    ``tools`` are refused by the reference and the template alike; ``[]`` is no tools; calls and
    results render as for any format."""
    import pytest
    from jinja2 import TemplateError

    from tmplc.errors import MessageError

    tf = ToolFormat(list_prefix="Tools: ", call_prefix="<call>", call_suffix="</call>", result_prefix="<r>",
                    result_suffix="</r>", renders_list=False)
    assert tf.list_prefix == "" and tf == replace(tf, list_prefix="")  # the list fields mean nothing here
    fmt = replace(CHATML, structure=replace(CHATML.structure, tools=tf))
    tool = {"type": "function", "function": {"name": "f", "parameters": {}}}
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {"a": 1}}]},
            {"role": "tool", "content": "42"}]
    want = fmt.render(msgs, tools=[])
    assert '<call>f{"a": 1}</call>' in want and "<r>42</r>" in want
    assert render_template(fmt.to_jinja(), msgs, tools=[]) == want == fmt.render(msgs)
    with pytest.raises(MessageError, match="renders no tool list"):
        fmt.render(msgs, tools=[tool])
    with pytest.raises(TemplateError, match="renders no tool list"):
        render_template(fmt.to_jinja(), msgs, tools=[tool])


def test_an_answer_with_calls_keeps_the_regular_ending_where_calls_end_the_turn():
    """``calls_end_turn`` (Hy3): the last answer has its own ending (none here), except an answer
    with tool calls, which ends as every earlier answer does; the template renders the same."""
    st_ = replace(CHATML.structure, assistant=replace(CHATML.structure.assistant, final_suffix=()))
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "a", "tool_calls": [{"name": "f", "arguments": {}}]}]
    for end_turn, ending in ((False, "</call>"), (True, "</call><|im_end|>\n")):
        tf = ToolFormat(call_prefix="<call>", call_suffix="</call>", calls_end_turn=end_turn)
        fmt = replace(CHATML, structure=replace(st_, tools=tf))
        want = fmt.render(msgs)
        assert want.endswith(ending) and fmt.render(msgs[:1] + [{"role": "assistant", "content": "a"}]).endswith("a")
        assert render_template(fmt.to_jinja(), msgs) == want


def test_the_list_before_the_system_message_and_trimmed_results():
    """``list_first`` (Qwen3.5, Spark): the block is prefix, list, separator, system content, suffix;
    without a system message, prefix, list, suffix.  ``result_content: trim`` (Qwen3.5): a result's
    surrounding whitespace is dropped.  The template renders the same."""
    tool = {"type": "function", "function": {"name": "f", "parameters": {}}}
    tf = ToolFormat(list_first=True, list_prefix="<tools>", list_suffix="</tools>", system_sep="\n\n",
                    system_sep_if="content", result_prefix="<r>", result_suffix="</r>", result_content="trim")
    fmt = replace(CHATML, structure=replace(CHATML.structure, tools=tf))
    calls = [{"role": "user", "content": "q"},
             {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {}}]},
             {"role": "tool", "content": " \n42\n "}]
    for system, head in (("S", "<|im_start|>system\n<tools>{"), ("", "<|im_start|>system\n<tools>{")):
        msgs = [{"role": "system", "content": system}] + calls
        want = fmt.render(msgs, tools=[tool])
        assert want.startswith(head) and ("}</tools>\n\nS<|im_end|>" in want) == (system == "S")
        assert "<r>42</r>" in want
        assert render_template(fmt.to_jinja(), msgs, tools=[tool]) == want
    want = fmt.render(calls, tools=[tool])
    assert "}</tools><|im_end|>" in want and render_template(fmt.to_jinja(), calls, tools=[tool]) == want


def test_answers_as_given_are_refused_where_answers_render_a_reasoning_block():
    """``call_answers``/``answers_after_results`` ``verbatim`` render an answer's content as given:
    in a format whose answers render a reasoning block ({THINK}) that block would go unrendered
    there, so such a format is refused; in one whose answers render as given anyway, they mean
    nothing and read back as ``rule`` (one value per meaning)."""
    import pytest

    for field in ("call_answers", "answers_after_results"):
        with pytest.raises(ValueError, match="reasoning block"):
            replace(THINKING.structure, tools=replace(THINKING.structure.tools or ToolFormat(), **{field: "verbatim"}))
        st_ = replace(CHATML.structure, tools=ToolFormat(**{field: "verbatim"}))
        assert (st_.tools.call_answers, st_.tools.answers_after_results) == ("rule", "rule")
