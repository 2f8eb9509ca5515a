"""The by-example ``tools:`` section (tmplc.spec.tools_example): a tool format shown as what it
renders reads back to a ToolFormat that renders every tool conversation alike; the registry's
qwen3-tools is written this way (and is proven against the real Qwen3 template in
test_qwen3_tools_real.py); bad examples are refused at FILE:LINE:COL with what to do."""

from __future__ import annotations

import json
from dataclasses import fields, replace

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import tmplc
from tmplc.errors import SpecError
from tmplc.ir import JsonStyle, ToolFormat
from tmplc.registry import registry
from tmplc.spec.files import load_spec_file, load_yaml_spec
from tmplc.jinja_env import render_template
from tmplc.spec.tools_example import PROBE, examples_of, json_style_of
from tmplc.targets.spec import to_yaml

from tools.strategies_tools import tool_conversations
from tools.test_tool_formats import _text

#: fields whose split of repeated text is canonical in the examples (renders alike, names may differ)
SPLIT_FIELDS = {"system_sep", "list_prefix", "item_prefix", "item_suffix", "item_sep", "list_suffix", "results_open",
                "result_prefix", "result_suffix", "results_close", "grouped"}
#: the call layout's split of repeated text (calls_open + (call_prefix ... call_suffix)* + calls_close,
#: arguments likewise): canonical in the examples, compared by rendering
CALL_SPLIT_FIELDS = {"calls_open", "call_prefix", "call_middle", "call_suffix", "call_sep", "calls_close", "arg_prefix",
                     "arg_suffix", "no_arguments", "arg_sep"}
QWEN3 = tmplc.load("qwen3-tools")
QWEN25 = tmplc.load("qwen2.5-tools")
CHATML = tmplc.load("chatml")


def _yaml_with_examples(fmt, examples: dict) -> str:
    """``fmt``'s YAML spec file with its tool section written as ``examples``."""
    data = yaml.safe_load(to_yaml(fmt))
    data["tools"] = examples
    # allow_unicode=False: PyYAML would write U+0085 raw, and YAML reads it back as a line break
    return yaml.safe_dump(data, allow_unicode=False, sort_keys=False, width=10**6)


def _renders_alike(a, b, conv, agp=False) -> None:
    msgs, tools = conv
    try:
        want = a.render(msgs, tools=tools, add_generation_prompt=agp)
    except tmplc.MessageError as e:
        with pytest.raises(tmplc.MessageError):
            b.render(msgs, tools=tools, add_generation_prompt=agp)
        return
    assert b.render(msgs, tools=tools, add_generation_prompt=agp) == want


def test_the_registry_qwen3_tools_is_written_by_example():
    data = yaml.safe_load(open(QWEN3.meta.source, encoding="utf-8").read())
    assert isinstance(data["tools"]["json"], str) and set(data["tools"]) >= {"list", "calls", "results"}
    # the field form of the same format (to_yaml writes fields) reads back to the same IR
    fields = load_yaml_spec(to_yaml(QWEN3))
    assert isinstance(yaml.safe_load(to_yaml(QWEN3))["tools"].get("call_prefix"), str)
    assert fields.structure == QWEN3.structure


@settings(max_examples=25)
@given(tool_conversations(), st.booleans())
def test_qwen25_tools_by_example_renders_as_its_field_form(conv, agp):
    """qwen2.5-tools (field form in the registry) written by example: a default system message, so
    one list example; string_arguments: json kept beside the examples."""
    ex = examples_of(QWEN25.structure)
    assert len(ex["list"]) == 1 and ex["string_arguments"] == "json"
    fmt = load_yaml_spec(_yaml_with_examples(QWEN25, ex))
    _renders_alike(QWEN25, fmt, conv, agp)


_styles = st.builds(JsonStyle, indent=st.sampled_from([None, 0, 2, 4]),
                    separators=st.sampled_from([(), (",", ":"), (", ", ": "), (",", ": ")]),
                    sort_keys=st.booleans(), ensure_ascii=st.booleans())
_formats = st.builds(ToolFormat, json=_styles, system_sep=_text, list_prefix=_text, item_prefix=_text,
                     item_suffix=_text, list_suffix=_text, content_sep=_text, call_prefix=_text,
                     call_middle=_text, call_suffix=_text, call_sep=_text, results_open=_text,
                     call_index_prefix=st.none() | _text,
                     result_prefix=_text, result_suffix=_text, results_close=_text, grouped=st.booleans(),
                     string_arguments=st.sampled_from(["verbatim", "json"]),
                     tool_object=st.sampled_from(["tool", "function"]),
                     system_sep_if=st.sampled_from(["message", "content"]),
                     renders_calls=st.sampled_from([True, True, True, False]),
                     renders_list=st.sampled_from([True, True, True, False]),
                     calls_end_turn=st.booleans(), list_first=st.booleans(),
                     placement=st.sampled_from(["system", "system", "after_system", "start"]),
                     tool_layout=st.sampled_from(["json", "json", "xml", "python_def", "typescript", "python_str"]),
                     call_answers=st.sampled_from(["rule", "trim", "verbatim"]),
                     answers_after_results=st.sampled_from(["rule", "verbatim"]),
                     absent=st.none() | _text).flatmap(
    lambda tf: st.sampled_from([tf] + ([] if tf.tool_layout != "json" else
                                       [replace(tf, list_json=True, item_prefix="", item_suffix="", item_sep="")]))
).flatmap(lambda tf: st.just(tf) if tf.placement != "system" else
          (st.none() | _text).map(lambda d: replace(tf, default_system=d))
).flatmap(lambda tf: st.just(tf) if tf.placement != "system" or tf.list_first or tf.default_system is not None
          or not tf.renders_list else (st.none() | _text).map(lambda x: replace(tf, list_block_suffix=x)))


@settings(max_examples=60)
@given(_formats, st.booleans(), st.lists(tool_conversations(reasoning=False), min_size=1, max_size=3))
def test_any_tool_format_reads_back_from_its_examples(tf, default, convs):
    """Examples written from a random ToolFormat (texts with braces, Jinja syntax, newlines; any
    JSON style json.dumps writes; grouped or not; with or without a default system message; the
    list in the system block or the first user turn; every declared field) read back to a format
    that renders every tool conversation alike."""
    st_ = replace(CHATML.structure, tools=tf)
    if default:
        st_ = replace(st_, system=replace(st_.system, default="You are a bot."))
    fmt = tmplc.ChatFormat(st_, CHATML.meta)
    tf = st_.tools  # as the layout holds it (calls_end_turn without a final ending means nothing)
    back = load_yaml_spec(_yaml_with_examples(fmt, examples_of(st_)))
    for f in fields(ToolFormat):
        if f.name not in SPLIT_FIELDS:
            assert getattr(back.structure.tools, f.name) == getattr(tf, f.name), f.name
    for conv in convs:
        _renders_alike(fmt, back, conv)


_call_layouts = st.fixed_dictionaries({
    "calls_open": _text, "calls_close": _text, "content_sep_if": st.sampled_from(["answer", "content", "unended"]),
    "arg_prefix": _text, "arg_middle": _text, "arg_suffix": _text,
    "arg_values": st.sampled_from(["json", "python", "str", "python_call"]), "arg_sep": _text,
    "arg_middle_other": st.none() | _text, "no_arguments": _text, "arg_cdata": st.booleans()})


def _as_objects(msgs: list[dict]) -> list[dict]:
    def obj(c):
        f = c.get("function", c)
        f = {**f, "arguments": f["arguments"] if isinstance(f["arguments"], dict) else json.loads(f["arguments"])}
        return {**c, "function": f} if "function" in c else f

    return [{**m, "tool_calls": [obj(c) for c in m["tool_calls"]]} if m.get("tool_calls") else m for m in msgs]


@settings(max_examples=60)
@given(_formats, _call_layouts, st.booleans(), st.lists(tool_conversations(reasoning=False), min_size=1, max_size=3))
def test_per_argument_calls_and_calls_around_read_back_from_examples(tf, layout, per_argument, convs):
    """Text around all of an answer's calls, the content separator's rule, and arguments key by key
    (``{KEY}{VALUE}`` twice per call, a call without arguments and what it renders in their place,
    ``arg_middle_other`` declared beside), written from a random format:
    the declared fields read back equal, the call layout renders every conversation alike."""
    if not per_argument:
        layout = {k: v for k, v in layout.items() if not k.startswith("arg_") and k != "no_arguments"}
    tf = replace(tf, renders_calls=True, renders_list=True, **layout)
    fmt = tmplc.ChatFormat(replace(CHATML.structure, tools=tf), CHATML.meta)
    tf = fmt.structure.tools  # as the layout holds it
    ex = examples_of(fmt.structure)
    if per_argument:
        assert "{KEY}" in ex["calls"][0] and "{KEY}" not in ex["calls"][1]
    back = load_yaml_spec(_yaml_with_examples(fmt, ex))
    for f in fields(ToolFormat):
        if f.name not in SPLIT_FIELDS | CALL_SPLIT_FIELDS:
            assert getattr(back.structure.tools, f.name) == getattr(tf, f.name), f.name
    for msgs, tools in convs:
        _renders_alike(fmt, back, (_as_objects(msgs), tools))
        _renders_alike(fmt, back, (msgs, tools))  # string arguments: both refuse a per-argument format


def test_json_style_by_example():
    for style in (JsonStyle(), JsonStyle(indent=4), JsonStyle(separators=(",", ":")), JsonStyle(sort_keys=True),
                  JsonStyle(ensure_ascii=True), JsonStyle(indent=2, separators=(", ", ": "))):
        assert json_style_of(json.dumps(PROBE, indent=style.indent, separators=style.separators,
                                        sort_keys=style.sort_keys, ensure_ascii=style.ensure_ascii)) == style
    # Go's encoding/json (compact, '<' escaped) and Python's repr are not json.dumps styles
    assert json_style_of('{"name":"\\u003c"}') is None
    assert json_style_of(repr(PROBE)) is None


def _bad(tmp_path, tools_yaml: str) -> SpecError:
    text = ("name: t\neos_token: <|im_end|>\nspec: |\n  <|im_start|>system\n  {SYSTEM}<|im_end|>\n"
            "  <|im_start|>user\n  {INPUT}<|im_end|>\n  <|im_start|>assistant\n  {OUTPUT}<|im_end|>\n"
            "  <|im_start|>user\n  {INPUT}<|im_end|>\n  <|im_start|>assistant\n  {OUTPUT}<|im_end|>\n"
            + tools_yaml)
    p = tmp_path / "t.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as e:
        load_spec_file(p)
    assert e.value.filename == str(p)
    return e.value


GOOD = {
    "json": "  json: '{\"name\": \"é\", \"values\": [1, {\"z\": null, \"a\": true}]}'\n",
    "list": "  list:\n    - |\n      <|im_start|>system\n      {SYSTEM}\n      T:[{TOOL}][{TOOL}]<|im_end|>\n"
            "    - |\n      <|im_start|>system\n      T:[{TOOL}][{TOOL}]<|im_end|>\n",
    "calls": "  calls:\n    - '{OUTPUT} C({NAME}={ARGUMENTS}) C({NAME}={ARGUMENTS})'\n    - 'C({NAME}={ARGUMENTS})'\n",
    "results": "  results: |\n    R[{RESULT}][{RESULT}]\n",
}


def _tools(**over) -> str:
    return "tools:\n" + "".join(over.get(k, v) for k, v in GOOD.items())


def test_a_small_format_by_example(tmp_path):
    p = tmp_path / "t.yaml"
    text = ("name: t\neos_token: <|im_end|>\nspec: |\n  <|im_start|>system\n  {SYSTEM}<|im_end|>\n"
            "  <|im_start|>user\n  {INPUT}<|im_end|>\n  <|im_start|>assistant\n  {OUTPUT}<|im_end|>\n"
            "  <|im_start|>user\n  {INPUT}<|im_end|>\n  <|im_start|>assistant\n  {OUTPUT}<|im_end|>\n" + _tools())
    p.write_text(text, encoding="utf-8")
    fmt = load_spec_file(p)
    tools = [{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "g"}}]
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a", "tool_calls": [{"name": "f", "arguments": {"x": 1}},
                                                                 {"name": "g", "arguments": "{}"}]},
            {"role": "tool", "content": "1"}, {"role": "tool", "content": "2"},
            {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {}}]}]
    got = fmt.render(msgs, tools=tools)
    t1, t2 = (json.dumps(t, ensure_ascii=False) for t in tools)
    assert got == ("<|im_start|>system\nS\nT:[" + t1 + "][" + t2 + "]<|im_end|>\n"
                   "<|im_start|>user\nq<|im_end|>\n"
                   '<|im_start|>assistant\na C(f={"x": 1}) C(g={})<|im_end|>\n'
                   "R[1][2]\n"
                   "<|im_start|>assistant\nC(f={})<|im_end|>\n")
    # without a system message: the list alone in the block
    assert fmt.render(msgs[1:2], tools=tools[:1]) == ("<|im_start|>system\nT:[" + t1 + "]<|im_end|>\n"
                                                      "<|im_start|>user\nq<|im_end|>\n")


def test_results_separated_by_example(tmp_path):
    """Text between two results that is neither a result's ending nor the next one's beginning
    separates them (``result_sep``: DeepSeek V4's ``\n\n``); a run of three renders it twice,
    in the reference and in the HF target."""
    p = tmp_path / "t.yaml"
    text = ("name: t\neos_token: <|im_end|>\nspec: |\n  <|im_start|>system\n  {SYSTEM}<|im_end|>\n"
            "  <|im_start|>user\n  {INPUT}<|im_end|>\n  <|im_start|>assistant\n  {OUTPUT}<|im_end|>\n"
            "  <|im_start|>user\n  {INPUT}<|im_end|>\n  <|im_start|>assistant\n  {OUTPUT}<|im_end|>\n"
            + _tools(results="  results: |\n    R[<r>{RESULT}</r>;<r>{RESULT}</r>]\n"))
    p.write_text(text, encoding="utf-8")
    fmt = load_spec_file(p)
    tf = fmt.structure.tools
    assert (tf.results_open, tf.result_prefix, tf.result_suffix, tf.result_sep, tf.results_close) == (
        "R[", "<r>", "</r>", ";", "]\n")
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {}}] * 3},
            {"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}, {"role": "tool", "content": "3"},
            {"role": "user", "content": "q2"}, {"role": "assistant", "content": "", "tool_calls": [
                {"name": "f", "arguments": {}}]}, {"role": "tool", "content": "4"}]
    got = fmt.render(msgs)
    assert "R[<r>1</r>;<r>2</r>;<r>3</r>]\n<|im_start|>user" in got and got.endswith("R[<r>4</r>]\n")
    assert render_template(fmt.to_jinja(), msgs) == got
    assert examples_of(fmt.structure)["results"] == "R[<r>{RESULT}</r>;<r>{RESULT}</r>]\n"


@pytest.mark.parametrize("over, line, col, what", [
    ({"json": "  json: '{\"name\":\"é\"}'\n"}, 15, 9, "not the probe object"),
    ({"calls": "  calls:\n    - '{OUTPUT} C({NAME}={ARGUMENTS}) C({NAME}:{ARGUMENTS})'\n    - 'C({NAME}={ARGUMENTS})'\n"},
     None, None, "between {NAME} and {ARGUMENTS} differs"),
    ({"calls": "  calls:\n    - |-\n      {OUTPUT} C({NAME}={ARGUMENTS})\n      {TOOL}\n    - 'C({NAME}={ARGUMENTS})'\n"},
     27, 7, "{TOOL} does not belong in this example"),
    ({"results": "  results: |\n    R[{RESULT}][{RESULT]\n"}, 28, 17, "does not start a placeholder"),
    ({"list": "  list:\n    - |\n      <|im_start|>system\n      {SYSTEM}\n      T:[{TOOL}][{TOOL}]<|im_end|>\n"},
     17, 7, "show the system block twice"),
    ({"list": "  list:\n    - |\n      <|im_start|>user\n      {SYSTEM}\n      T:[{TOOL}][{TOOL}]<|im_end|>\n"
              "    - |\n      <|im_start|>system\n      T:[{TOOL}][{TOOL}]<|im_end|>\n"},
     17, 7, "must start with the system block's prefix"),
    ({"results": "  results: R{RESULT}\n  call_prefix: x\n"}, 28, 3, "which cannot be declared beside them"),
    ({"list": "  list:\n    - |-\n      <|im_start|>user\n      T:[{TOOL}][{TOOL}]{INPUT}<|im_end|>\n"
              "    - '{TOOL}{TOOL}{INPUT}'\n"}, 20, 7, "is shown once"),
    ({"list": "  list:\n    - |-\n      <|im_start|>user\n      T:[{TOOL}][{TOOL}]{INPUT}\n"}, 17, 7,
     "after {INPUT} comes the user turn's suffix"),
    ({"list": "  list:\n    - |-\n      <|im_start|>usr\n      T:[{TOOL}][{TOOL}]{INPUT}<|im_end|>\n"}, 17, 7,
     "must start with the user turn's prefix"),
    ({"list": "  list:\n    - '{TOOL}{INPUT}{TOOL}'\n"}, 17, 7, "expected {TOOL}, {TOOL}, {INPUT} in this order"),
    ({"json": GOOD["json"] + "  call_json: '{}'\n"}, 16, 14, "tools.call_json: not the probe object"),
    ({"calls": "  calls: '{OUTPUT} C({NAME}={ARGUMENTS})'\n"}, 24, 10, "tools.calls must be a list of 2 strings"),
])
def test_bad_examples_say_where_and_what(tmp_path, over, line, col, what):
    e = _bad(tmp_path, _tools(**over))
    assert what in e.message, e.message
    if line is not None:
        assert (e.line, e.column) == (line, col), (e.line, e.column, e.message)


def test_a_list_in_the_first_user_turn_by_example(tmp_path):
    """The list example holds {INPUT}: the list goes into the first user turn; behaviour no example
    shows is declared beside them (max_calls, calls_alone, result_content), and call_json shows how
    a call's arguments are written."""
    p = tmp_path / "t.yaml"
    p.write_text("name: t\neos_token: <|im_end|>\nspec: |\n  <|im_start|>system\n  {SYSTEM}<|im_end|>\n"
                 "  <|im_start|>user\n  {INPUT}<|im_end|>\n  <|im_start|>assistant\n  {OUTPUT}<|im_end|>\n"
                 "  <|im_start|>user\n  {INPUT}<|im_end|>\n  <|im_start|>assistant\n  {OUTPUT}<|im_end|>\n"
                 "tools:\n" + GOOD["json"]
                 + "  call_json: '{\"name\":\"é\",\"values\":[1,{\"z\":null,\"a\":true}]}'\n"
                 "  list:\n    - |\n      <|im_start|>user\n      Tools:{TOOL};{TOOL};\n      Q: {INPUT}<|im_end|>\n"
                 + GOOD["calls"] + "  results: 'R[{RESULT}][{RESULT}]'\n"
                 "  max_calls: 1\n  calls_alone: true\n  result_content: json\n", encoding="utf-8")
    fmt = load_spec_file(p)
    tf = fmt.structure.tools
    assert (tf.placement, tf.list_prefix, tf.item_prefix, tf.item_suffix, tf.list_suffix) == \
        ("first_user", "Tools:", "", ";", "\nQ: ")
    assert (tf.max_calls, tf.calls_alone, tf.result_content, tf.call_json) == (1, True, "json", JsonStyle(separators=(",", ":")))
    tools = [{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "g"}}]
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {"x": [1, 2]}}]},
            {"role": "tool", "content": "ok"}]
    t1, t2 = (json.dumps(t, ensure_ascii=False) for t in tools)
    assert fmt.render(msgs, tools=tools) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nTools:" + t1 + ";" + t2 + ";\nQ: q<|im_end|>\n"
        '<|im_start|>assistant\nC(f={"x":[1,2]})<|im_end|>\nR["ok"]')
    with pytest.raises(tmplc.MessageError, match="at most 1"):
        fmt.render(msgs[:2] + [{"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {}}] * 2}],
                   tools=tools)


def test_tool_placeholders_only_in_tool_examples(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("<s>{INPUT}</s>{OUTPUT}\n<s>{INPUT}</s>{OUTPUT}{TOOL}", encoding="utf-8")
    with pytest.raises(SpecError, match=r"\{TOOL\} belongs in the examples of a YAML spec file's 'tools:'") as e:
        load_spec_file(p)
    assert (e.value.line, e.value.column) == (2, 23)


def test_every_tool_field_is_shown_by_an_example_or_declared():
    """A ToolFormat field added later is either read from the examples or declared beside them."""
    from tmplc.spec.tools_example import DECLARED_KEYS, OPTIONAL_EXAMPLE_KEYS

    shown = {"json", "placement", "system_sep", "list_first", "list_prefix", "item_prefix", "item_suffix", "item_sep", "list_suffix", "list_json",
             "content_sep", "call_prefix", "call_id_prefix", "call_id_after", "call_index_prefix", "call_middle", "call_suffix",
             "call_sep", "calls_open",
             "calls_close", "arg_prefix", "arg_middle", "arg_suffix", "results_open",
             "result_prefix", "result_id_suffix", "result_suffix", "results_close", "grouped", "result_sep",
             "no_arguments", "arg_sep"}
    assert {f.name for f in fields(ToolFormat)} == shown | set(OPTIONAL_EXAMPLE_KEYS) | (set(DECLARED_KEYS) - {"final_scope"})


TOOL_ENTRIES = [n for n in registry if registry[n].structure.tools is not None]


def test_the_registry_has_tool_entries_of_every_placement():
    assert {registry[n].structure.tools.placement for n in TOOL_ENTRIES} == {"system", "first_user", "last_user"}
    assert len(TOOL_ENTRIES) >= 6


@pytest.mark.parametrize("name", TOOL_ENTRIES)
def test_every_registry_tool_entry_reads_back_from_its_examples(name):
    """Every tool entry (every placement, declared system_prefix with a date, call_json, item_sep,
    call and result ids, max_calls, calls_alone, result_content, keep_default_system,
    empty_system_counts) written by
    example reads back: the same fields but the canonical split of repeated text, and the same
    render of random tool conversations (with and without the generation prompt)."""
    fmt = registry[name]
    ex = examples_of(fmt.structure)
    back = load_yaml_spec(_yaml_with_examples(fmt, ex))
    tf, bt = fmt.structure.tools, back.structure.tools
    for f in fields(ToolFormat):
        if f.name not in SPLIT_FIELDS:
            assert getattr(bt, f.name) == getattr(tf, f.name), f.name
    assert replace(back.structure, tools=None) == replace(fmt.structure, tools=None)

    @settings(max_examples=20, deadline=None)
    @given(tool_conversations(), st.booleans())
    def alike(conv, agp):
        _renders_alike(fmt, back, conv, agp)

    alike()


def test_per_argument_split_reads_the_text_between_calls():
    """Regression (found by the random read-back above): arguments that start with a newline and
    end with nothing, calls closed by a newline; ``{KEY}{VALUE}\\n`` could be read as an argument
    ending with ``\\n``, but the two calls follow each other with nothing between them, so the
    reading that fits both examples is the newline opening each argument."""
    tf = ToolFormat(calls_close="\n", arg_prefix="\n")
    fmt = tmplc.ChatFormat(replace(CHATML.structure, tools=tf), CHATML.meta)
    back = load_yaml_spec(_yaml_with_examples(fmt, examples_of(fmt.structure)))
    got = back.structure.tools
    assert (got.arg_prefix, got.arg_suffix, got.calls_close) == ("\n", "", "\n")
    conv = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "f", "arguments": {"a": 1, "b": "x"}}}] * 2}]
    assert back.render(conv) == fmt.render(conv)


@pytest.mark.parametrize("last_call_ids", [False, True])
@settings(max_examples=15)
@given(conv=tool_conversations(reasoning=False))
def test_call_ids_after_the_arguments_read_back_from_examples(last_call_ids, conv):
    """Apriel's calls (``{"name": ..., "arguments": ..., "id": ...}``): the examples show ``{ID}``
    after ``{ARGUMENTS}`` (``call_id_after``) and declare ``last_call_ids`` and the
    ``call_id_suffix`` a call without its id leaves out; they read back to the same format."""
    from tools.test_llamacpp_tools import PYSTR_LIKE, _with_ids

    st_ = replace(PYSTR_LIKE.structure, tools=replace(PYSTR_LIKE.structure.tools, last_call_ids=last_call_ids))
    fmt = tmplc.ChatFormat(st_, PYSTR_LIKE.meta)
    ex = examples_of(st_)
    assert ex["calls"][1] == '<tool_calls>[{{"name": "{NAME}", "arguments": {ARGUMENTS}, "id": "{ID}"}}]</tool_calls>'
    assert (ex.get("call_id_suffix"), ex.get("last_call_ids")) == (('"', False) if not last_call_ids else (None, None))
    back = load_yaml_spec(_yaml_with_examples(fmt, ex))
    assert back.structure.tools == st_.tools
    msgs, tools = conv
    _renders_alike(fmt, back, (_with_ids(msgs), tools))
