"""The ``tools:`` section of a YAML spec file (tmplc.spec.tools): read, validated with
file:line:col errors, written back by ``to_yaml``; the IR (with its JsonStyle) round-trips through
``to_dict``/``from_dict`` and through the YAML."""

from __future__ import annotations

import json

import pytest

from tmplc.errors import SpecError
from tmplc.ir import JsonStyle
from tmplc.registry import registry
from tmplc.spec.files import load_yaml_spec
from tmplc.targets.json_ir import from_dict, to_dict

HEAD = """name: t
spec: |
  <|s|>{SYSTEM}<|e|>
  <|u|>{INPUT}<|e|>
  <|a|>{OUTPUT}<|e|>
  <|u|>{INPUT}<|e|>
  <|a|>{OUTPUT}<|e|>
"""


@pytest.mark.parametrize("name", ["qwen3-tools", "qwen2.5-tools", "llama-3.1-tools", "llama-3.2-tools", "granite-4.0-tools",
                                  "granite-4.1-tools"])
def test_tool_entries_round_trip_through_json_and_yaml(name):
    fmt = registry[name]
    assert fmt.structure.tools is not None
    if name == "qwen3-tools":
        assert fmt.structure.final_scope == "after_user_reasoning"
    assert from_dict(json.loads(json.dumps(to_dict(fmt)))) == fmt
    back = load_yaml_spec(fmt.to_yaml(), "back.yaml")
    assert back.structure == fmt.structure


def test_a_json_style_renders_and_round_trips():
    text = HEAD + """tools:
  json: {indent: 2, sort_keys: true, ensure_ascii: true}
  list_prefix: "T:"
  item_prefix: "\\n"
  call_prefix: "<c>"
  call_middle: " "
  call_suffix: "</c>"
  results_open: "<|r|>"
  results_close: "<|e|>"
  grouped: false
"""
    fmt = load_yaml_spec(text, "t.yaml")
    assert fmt.structure.tools.json == JsonStyle(indent=2, separators=(",", ": "), sort_keys=True, ensure_ascii=True)
    tool = {"b": 1, "a": "é"}
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {"z": 1, "y": [2]}}]},
            {"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}]
    out = fmt.render(msgs, tools=[tool])
    assert out == ("<|s|>T:\n" + json.dumps(tool, indent=2, sort_keys=True) + "<|e|>\n<|u|>q<|e|>\n<|a|><c>f "
                   + json.dumps({"z": 1, "y": [2]}, indent=2, sort_keys=True) + "</c><|e|>\n<|r|>1<|e|><|r|>2<|e|>")
    assert load_yaml_spec(fmt.to_yaml(), "b.yaml").structure == fmt.structure
    assert from_dict(to_dict(fmt)) == fmt
    from tmplc.jinja_env import render_template

    assert render_template(fmt.to_jinja(), msgs, tools=[tool]) == out


@pytest.mark.parametrize("section, line, col, what", [
    ("tools:\n  call_prefx: x\n", 9, 3, "unknown key 'call_prefx' in 'tools'"),
    ("tools:\n  call_prefix: 3\n", 9, 16, "tools.call_prefix must be a string"),
    ("tools:\n  grouped: maybe\n", 9, 12, "tools.grouped must be true or false"),
    ("tools:\n  json: {indent: -1}\n", 9, 18, "tools.json.indent must be null or a non-negative integer"),
    ("tools:\n  json:\n    separators: [a]\n", 10, 17, "tools.json.separators must be a list of two strings"),
    ("tools:\n  json: {spaces: 2}\n", 9, 10, "unknown key 'spaces' in tools.json"),
    ("tools:\n  final_scope: first\n", 9, 16, "tools.final_scope must be one of"),
    ("tools:\n  placement: sideways\n", 9, 14, "tools placement must be one of system, first_user"),
    ("tools:\n  max_calls: -1\n", 9, 14, "tools.max_calls must be a non-negative integer"),
    ("tools:\n  max_calls: yes\n", 9, 14, "tools.max_calls must be a non-negative integer"),
    ("tools:\n  result_content: yaml\n", 9, 19, "result_content must be one of verbatim, json"),
    ("tools:\n  call_json: {spaces: 2}\n", 9, 15, "unknown key 'spaces' in tools.call_json"),
    ("tools:\n  calls_alone: 1\n", 9, 16, "tools.calls_alone must be true or false"),
    ("tools:\n  system_prefix: [x]\n", 9, 18, "tools.system_prefix must be a string"),
    ("tools:\n  placement: first_user\n  system_sep: x\n", 10, 15, "a first_user tool list has none"),
    ("tools: [a]\n", 8, 8, "'tools' must be a mapping"),
    ("tools:\n  tool_layout: yaml\n", 9, 16, "tool_layout must be one of json, xml"),
    ("tools:\n  tool_layout: xml\n  list_json: true\n", 10, 14, "tool_layout xml writes each tool as XML"),
    ("tools:\n  placement: first_user\n  default_system: x\n", 10, 19, "default_system is the system message"),
    ("tools:\n  default_system: [x]\n", 9, 19, "tools.default_system must be a string"),
    ("tools:\n  call_answers: cut\n", 9, 17, "call_answers must be one of rule, trim, verbatim"),
    ("tools:\n  answers_after_results: trim\n", 9, 26, "answers_after_results must be one of rule, verbatim"),
])
def test_errors_name_file_line_and_column(section, line, col, what):
    with pytest.raises(SpecError) as e:
        load_yaml_spec(HEAD + section, "t.yaml")
    assert (e.value.line, e.value.column) == (line, col), str(e.value)
    assert what in str(e.value) and e.value.filename == "t.yaml" and "t.yaml:" in e.value.cli_text()


def test_tools_need_a_standalone_system_block():
    text = HEAD.replace("<|s|>{SYSTEM}<|e|>\n  ", "") + "tools:\n  list_prefix: x\n"
    with pytest.raises(SpecError, match="needs a standalone system block") as e:
        load_yaml_spec(text, "t.yaml")
    assert (e.value.line, e.value.column) == (8, 3)  # the section


def test_first_user_placement_and_the_new_fields_render_and_round_trip():
    """A first_user tool list sits between the user prefix and the first user content; a tools
    system_prefix replaces the system prefix; results as JSON string literals; call_json."""
    text = HEAD + """tools:
  placement: first_user
  system_prefix: "<|s+t|>"
  json: {indent: 1}
  call_json: {separators: [",", ":"]}
  list_prefix: "T:"
  item_suffix: "|"
  call_prefix: "<c>"
  call_middle: " "
  call_suffix: "</c>"
  result_prefix: "<|r|>"
  result_suffix: "<|e|>"
  result_content: json
  max_calls: 2
  calls_alone: true
  empty_list: true
  grouped: false
"""
    fmt = load_yaml_spec(text, "t.yaml")
    tf = fmt.structure.tools
    assert (tf.placement, tf.max_calls, tf.calls_alone, tf.empty_list, tf.result_content) == (
        "first_user", 2, True, True, "json")
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {"z": 1, "y": [2]}}]},
            {"role": "tool", "content": "é\n"}]
    tool = {"b": 1}
    out = fmt.render(msgs, tools=[tool])
    assert out == ('<|s+t|>S<|e|>\n<|u|>T:{\n "b": 1\n}|q<|e|>\n<|a|><c>f {"z":1,"y":[2]}</c><|e|>\n'
                   '<|r|>"é\\n"<|e|>')
    assert fmt.render(msgs[:2], tools=[]) == "<|s+t|>S<|e|>\n<|u|>T:q<|e|>\n"
    assert fmt.render(msgs[:2]) == "<|s|>S<|e|>\n<|u|>q<|e|>\n"
    assert load_yaml_spec(fmt.to_yaml(), "b.yaml").structure == fmt.structure
    assert from_dict(json.loads(json.dumps(to_dict(fmt)))) == fmt
    from tmplc.jinja_env import render_template

    for m, tools in ((msgs, [tool]), (msgs[:2], []), (msgs[:2], None)):
        assert render_template(fmt.to_jinja(), m, tools=tools) == fmt.render(m, tools=tools)


def test_an_xml_tool_list_with_its_own_system_text_renders_and_round_trips():
    """Qwen3-Coder's layout in the field form: each tool as XML (``tool_layout: xml``, the
    function object's fields), a system text of its own where tools come without a system message
    (``default_system``), answers trimmed beside their calls (``call_answers: trim``)."""
    text = HEAD + """tools:
  tool_layout: xml
  default_system: "You are Qwen."
  call_answers: trim
  list_prefix: "\\n<tools>"
  list_suffix: "\\n</tools>"
  content_sep: "\\n"
  call_prefix: "<c>"
  call_middle: " "
  call_suffix: "</c>"
  results_open: "<|r|>"
  results_close: "<|e|>"
"""
    fmt = load_yaml_spec(text, "t.yaml")
    tf = fmt.structure.tools
    assert (tf.tool_layout, tf.default_system, tf.call_answers, tf.tool_object) == (
        "xml", "You are Qwen.", "trim", "function")
    assert load_yaml_spec(fmt.to_yaml(), "b.yaml").structure == fmt.structure
    assert from_dict(json.loads(json.dumps(to_dict(fmt)))) == fmt
    tool = {"type": "function", "function": {"name": "f", "description": " d ", "parameters": {
        "type": "object", "properties": {"k": {"type": "string", "enum": ["a", "b"]}}}}}
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": " look ", "tool_calls": [{"name": "f", "arguments": {"k": "a"}}]},
            {"role": "tool", "content": "1"}, {"role": "assistant", "content": " ok "}]
    out = fmt.render(msgs, tools=[tool])
    assert out.startswith("<|s|>You are Qwen.\n<tools>\n<function>\n<name>f</name>\n<description>d</description>"
                          "\n<parameters>\n<parameter>\n<name>k</name>\n<type>string</type>"
                          '\n<enum>["a", "b"]</enum>\n</parameter>\n</parameters>\n</function>\n</tools><|e|>')
    assert "<|a|>look\n<c>f " in out and "<|a|> ok <|e|>" in out
    assert not fmt.render(msgs[:1]).startswith("<|s|>")  # without tools no system text of its own
    from tmplc.jinja_env import render_template

    assert render_template(fmt.to_jinja(), msgs, tools=[tool]) == out
