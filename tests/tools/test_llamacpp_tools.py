"""The ``qwen3-tools`` llama.cpp target (its GGUF ``tokenizer.chat_template``) rendered by
llama.cpp's own C++ Jinja engine equals the reference on random tool conversations.

The messages reach the engine as given (the driver's ``raw_messages`` test hook: tool_calls
with object or string arguments, reasoning_content, tool results) and the tools as a context
variable; llama-server's own message normalisation (which rewrites tool calls from its parsed
form) is not part of this check."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import assume, given, settings

import tmplc
from tmplc.engines.llamacpp import LlamaCppRenderError, ensure_llamacpp_driver, render_llamacpp
from tmplc.ir import JsonStyle, Text
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


def check_batch(cases, fmt=FMT):
    _driver()
    target = fmt.to_llamacpp()
    jobs = [{"template": target.chat_template, "messages": msgs, "bos_token": "", "eos_token": fmt.meta.eos_token,
             "add_generation_prompt": agp, "add_bos": target.add_bos_token, "raw_messages": True,
             "extra_context": {"tools": tools} if tools is not None else None} for msgs, tools, agp in cases]
    for (msgs, tools, agp), out in zip(cases, render_llamacpp(jobs)):
        assert not isinstance(out, LlamaCppRenderError), out
        want = fmt.render(msgs, tools=tools, add_generation_prompt=agp)
        if target.add_bos_token:  # llama.cpp's tokenizer adds the BOS the template leaves out
            assert want.startswith(fmt.meta.bos_token), want[:40]
            want = want[len(fmt.meta.bos_token):]
        assert out == want, (msgs, tools, agp)


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


def _unescaped_in_llamacpp(v, nested: bool = False) -> bool:
    """Whether ``v`` holds, inside a list or mapping, a string with a character Python's ``repr``
    escapes and the llama.cpp target's ``tmplc_pyrepr`` does not (unassigned code points, U+0000:
    a known divergence, docs/tools.md)."""
    from tmplc.targets.llamacpp import PYREPR_ESCAPED

    if isinstance(v, str):
        return nested and any(not c.isprintable() and c not in PYREPR_ESCAPED and c not in "\t\n\r" for c in v)
    if isinstance(v, dict):
        return any(_unescaped_in_llamacpp(k, True) or _unescaped_in_llamacpp(x, True) for k, x in v.items())
    if isinstance(v, list):
        return any(_unescaped_in_llamacpp(x, True) for x in v)
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


#: qwen3-tools with Qwen3-Coder's call layout: arguments key by key with Python-written None/True/
#: False, text around all calls, and the separator only where the answer does not end with it;
#: the tool list holds each tool's function object alone (MiniMax, DeepSeek V3.2); reasoning_content
#: renders as given (MiniMax-M2)
CODER_LIKE = replace(FMT, structure=replace(FMT.structure, given_reasoning="verbatim", tools=replace(
    FMT.structure.tools, tool_object="function", content_sep_if="unended", calls_open="<calls>", calls_close="</calls>",
    call_prefix="<tool_call>\n<function=", call_middle=">\n", call_suffix="</function>\n</tool_call>",
    call_sep="\n", arg_prefix="<parameter=", arg_middle=">\n", arg_suffix="\n</parameter>\n",
    arg_values="python")))


def _objects(msgs):
    def obj(c):
        f = c.get("function", c)
        f = {**f, "arguments": f["arguments"] if isinstance(f["arguments"], dict) else json.loads(f["arguments"])}
        return {**c, "function": f} if "function" in c else f

    return [{**m, "tool_calls": [obj(c) for c in m["tool_calls"]]} if m.get("tool_calls") else m for m in msgs]


def test_per_argument_calls_fixed_cases_in_llamacpps_engine():
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "a\n", "tool_calls": [
                {"name": "f", "arguments": {"s": "x<y", "n": None, "t": True, "u": False, "l": [1, {"k": "v"}]}},
                {"name": "g", "arguments": {}}]},
            {"role": "tool", "content": "r"}]
    check_batch([(msgs, [WEATHER], agp) for agp in (False, True)], CODER_LIKE)
    reasoned = msgs[:1] + [{**msgs[1], "reasoning_content": "\nr\n"}]
    check_batch([(reasoned, None, False)], CODER_LIKE)
    assert "<think>\n\nr\n\n</think>" in CODER_LIKE.render(reasoned)
    ref = CODER_LIKE.render(msgs)
    assert "<parameter=n>\nNone\n</parameter>" in ref and "a\n<calls><tool_call>" in ref
    listed = CODER_LIKE.render(msgs, tools=[WEATHER])
    assert json.dumps(WEATHER["function"], ensure_ascii=False) in listed and '"type": "function"' not in listed
    # a tool without a function object: the engine raises, as the reference does
    target = CODER_LIKE.to_llamacpp()
    bad = [WEATHER, {"type": "function", "name": "get"}]
    out, = render_llamacpp([{"template": target.chat_template, "messages": msgs, "bos_token": "",
                             "eos_token": CODER_LIKE.meta.eos_token, "add_generation_prompt": False,
                             "add_bos": target.add_bos_token, "raw_messages": True, "extra_context": {"tools": bad}}])
    assert isinstance(out, LlamaCppRenderError) and "has no 'function' object" in str(out), out
    with pytest.raises(tmplc.MessageError, match="has no 'function' object"):
        CODER_LIKE.render(msgs, tools=bad)


#: qwen3-tools with Kimi K2's list turn before everything and call positions after the names
KIMI_LIKE = replace(FMT, structure=replace(FMT.structure, tools=replace(
    FMT.structure.tools, placement="start", system_sep="", list_prefix="<|im_system|>tool_declare<|im_middle|>",
    item_prefix="", item_suffix="", item_sep=", ", list_suffix="<|im_end|>", call_prefix="<|tool_call_begin|>functions.",
    call_index_prefix=":", call_middle="<|tool_call_argument_begin|>", call_suffix="<|tool_call_end|>")))
#: qwen3-tools with Granite 3.3's list (one indented JSON array of the function objects after the
#: system block) and a no-system text that changes with tools
GRANITE_LIKE = replace(FMT, structure=replace(
    FMT.structure, system=replace(FMT.structure.system, absent=(Text("<|im_start|>system\nNo tools.<|im_end|>\n"),)),
    tools=replace(FMT.structure.tools, placement="after_system", system_sep="", list_json=True, item_prefix="",
                  item_suffix="", item_sep="", tool_object="function",
                  json=JsonStyle(indent=4, separators=(",", ": ")), list_prefix="<|im_start|>tools\n",
                  list_suffix="<|im_end|>\n", absent=(Text("<|im_start|>system\nTools below.<|im_end|>\n"),))))


def test_start_placement_call_positions_list_json_and_absent_in_llamacpps_engine():
    """The tool list at the very start, a call's position after its name (``loop.index0``), the list
    as one indented JSON array of function objects (``tojson(indent=4)``), and the no-system text
    with tools: llama.cpp's own Jinja engine renders the target as the reference does."""
    calls = [{"type": "function", "function": {"name": n, "arguments": {"k": n}}} for n in ("f", "g", "h")]
    agent = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": calls},
             {"role": "tool", "content": "r1"}, {"role": "tool", "content": "r2"}, {"role": "tool", "content": "r3"},
             {"role": "assistant", "content": "done"}]
    cases = [(m, tools, agp) for m in (agent, [{"role": "system", "content": "S"}] + agent)
             for tools in (None, [WEATHER], [WEATHER, WEATHER]) for agp in (False, True)]
    check_batch(cases, KIMI_LIKE)
    check_batch(cases, GRANITE_LIKE)
    kimi = KIMI_LIKE.render(agent, tools=[WEATHER])
    assert kimi.startswith("<|im_system|>tool_declare<|im_middle|>{\"type\"") and "functions.h:2<|tool_call_arg" in kimi
    granite = GRANITE_LIKE.render(agent, tools=[WEATHER, WEATHER])
    assert granite.startswith("<|im_start|>system\nTools below.<|im_end|>\n<|im_start|>tools\n[\n    {\n")
    assert GRANITE_LIKE.render(agent).startswith("<|im_start|>system\nNo tools.")


#: CODER_LIKE with DeepSeek V4's call and result layout: the text before a value depends on its type,
#: a call without arguments writes "\n", results go into a user turn that a user message continues
DSML_LIKE = replace(CODER_LIKE, structure=replace(CODER_LIKE.structure, tools=replace(
    CODER_LIKE.structure.tools, arg_values="json", call_middle=">\n", arg_prefix="<parameter=", arg_suffix="\n</parameter>\n",
    call_suffix="</function>\n</tool_call>", arg_middle='" string="true">', arg_middle_other='" string="false">',
    no_arguments="\n", results_open="<|im_start|>user\n", result_prefix="<r>", result_suffix="</r>", result_sep="\n\n",
    results_close="", user_prefix_after_results="\n\n", user_after_user=True)))
#: CODER_LIKE with DeepSeek V3.2's: the answer after its results goes on in the same turn, and a run
#: of results answers every call of the answer before it
V32_LIKE = replace(CODER_LIKE, structure=replace(CODER_LIKE.structure, tools=replace(
    CODER_LIKE.structure.tools, assistant_prefix_after_results="\n\n", results_answer_calls=True)))


def test_dsml_arguments_results_and_turn_prefixes_after_results_in_llamacpps_engine():
    """Typed argument texts, a call without arguments, separated results, the turn prefixes after
    results (also at the generation prompt), and the refusal of a run that does not answer each
    call: llama.cpp's own Jinja engine renders (and raises) as the reference does."""
    calls = [{"type": "function", "function": {"name": "f", "arguments": {"s": "x", "n": 3, "l": [1, None]}}},
             {"type": "function", "function": {"name": "g", "arguments": {}}}]
    agent = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "tool_calls": calls},
             {"role": "tool", "content": "r1"}, {"role": "tool", "content": "r2"},
             {"role": "assistant", "content": "done"}, {"role": "user", "content": "u2"},
             {"role": "user", "content": "u3"}, {"role": "assistant", "content": "", "tool_calls": calls[1:]},
             {"role": "tool", "content": "r3"}, {"role": "user", "content": "u4"}]
    cases = [(agent[:k], tools, agp) for k in (4, 5, 9, 10) for tools in (None, [WEATHER]) for agp in (False, True)]
    check_batch(cases, DSML_LIKE)
    check_batch([c for c in cases if len(c[0]) != 10], V32_LIKE)
    dsml = DSML_LIKE.render(agent)
    assert 'f>\n<parameter=s" string="true">x\n</parameter>\n<parameter=n" string="false">3' in dsml
    assert "<r>r1</r>\n\n<r>r2</r>" in dsml and "<r>r3</r>\n\nu4" in dsml and "u2<|im_end|>\n\n\nu3" in dsml
    assert "g>\n\n</function>" in dsml
    assert V32_LIKE.render(agent[:4], True).endswith("</tool_response><|im_end|>\n\n\n")  # no assistant prefix
    short = agent[:3] + [{"role": "assistant", "content": "ok"}]
    with pytest.raises(tmplc.MessageError, match="this run has 1 result for 2 calls"):
        V32_LIKE.render(short)
    target = V32_LIKE.to_llamacpp()
    out, = render_llamacpp([{"template": target.chat_template, "messages": short, "bos_token": "",
                             "eos_token": V32_LIKE.meta.eos_token, "add_generation_prompt": False,
                             "add_bos": target.add_bos_token, "raw_messages": True, "extra_context": None}])
    assert isinstance(out, LlamaCppRenderError) and "one result per call" in str(out), out


#: CODER_LIKE with Qwen3-Coder's tool list: each tool as XML (``tool_layout="xml"``), a system
#: text of its own with tools and no system message (``default_system``), answers trimmed beside
#: their calls (``call_answers: trim``)
XML_LIKE = replace(CODER_LIKE, structure=replace(CODER_LIKE.structure, tools=replace(
    CODER_LIKE.structure.tools, tool_layout="xml", call_answers="trim",
    default_system="You are Qwen, a helpful AI assistant that can interact with a computer to solve tasks.")))


def test_xml_tool_list_fixed_cases_in_llamacpps_engine():
    tool = {"type": "function", "function": {
        "name": "f", "description": "  d é\n", "strict": True, "parameters": {
            "type": "object", "required": ["s"], "properties": {
                "s": {"type": ["string", "null"], "description": " the s ", "enum": ["a", "b"]},
                "n": {"type": "integer", "minimum": 0, "default": None}, "o": {"items": {"type": "string"}}}}}}
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "\n let me look \n", "tool_calls": [{"name": "f", "arguments": {"s": "a"}}]},
            {"role": "tool", "content": "r"}, {"role": "assistant", "content": " done \n"}]
    cases = [(m, tools, agp) for m in (msgs, [{"role": "system", "content": "Be brief."}] + msgs)
             for tools in (None, [tool], [WEATHER, tool]) for agp in (False, True)]
    check_batch(cases, XML_LIKE)
    listed = XML_LIKE.render(msgs, tools=[tool])
    assert listed.startswith("<|im_start|>system\nYou are Qwen, a helpful AI assistant")
    assert ("\n<parameter>\n<name>s</name>\n<type>['string', 'null']</type>\n<description>the s</description>"
            '\n<enum>["a", "b"]</enum>\n</parameter>') in listed
    assert "\n<default>None</default>" in listed and "\n<strict>True</strict>\n</function>" in listed
    assert "let me look\n<calls>" in listed and " done \n<|im_end|>" in listed  # only the answer beside calls trims
    assert not XML_LIKE.render(msgs).startswith("<|im_start|>system")  # no tools: no system text of its own


#: CODER_LIKE with MiniCPM5's string arguments: one holding '<', '&' or a newline in a CDATA section
CDATA_LIKE = replace(CODER_LIKE, structure=replace(CODER_LIKE.structure, tools=replace(
    CODER_LIKE.structure.tools, arg_cdata=True)))


def test_cdata_string_arguments_fixed_cases_in_llamacpps_engine():
    args = {"plain": "x y", "lt": "a<b", "amp": "R&D", "nl": "two\nlines", "end": "x]]>y", "n": 2, "l": ["<"]}
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": args}]},
            {"role": "tool", "content": "r"}, {"role": "assistant", "content": "done"}]
    check_batch([(msgs, tools, agp) for tools in (None, [WEATHER]) for agp in (False, True)], CDATA_LIKE)
    text = CDATA_LIKE.render(msgs)
    for key, value in (("plain", "x y"), ("lt", "<![CDATA[a<b]]>"), ("amp", "<![CDATA[R&D]]>"),
                       ("nl", "<![CDATA[two\nlines]]>"), ("end", "x]]>y")):
        assert f"<parameter={key}>\n{value}\n</parameter>" in text
    assert '<parameter=l>\n["<"]\n</parameter>' in text  # not a string: as before, no CDATA
    assert "CDATA" not in CODER_LIKE.render(msgs)


#: CODER_LIKE with LFM2.5's Python call syntax: ``f(a='x', n=1, o={"k": 1})``, ", " between arguments
PYCALL_LIKE = replace(CODER_LIKE, structure=replace(CODER_LIKE.structure, tools=replace(
    CODER_LIKE.structure.tools, calls_open="[", calls_close="]", call_prefix="", call_middle="(", call_suffix=")",
    call_sep=", ", arg_prefix="", arg_middle="=", arg_suffix="", arg_sep=", ", arg_values="python_call")))


def test_python_call_arguments_fixed_cases_in_llamacpps_engine():
    args = {"s": "x y", "q": "it's", "n": 2, "b": True, "z": None, "o": {"k": [1, None], "é": "ü"}, "l": ["a", {"k": 1}]}
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": args},
                                                                {"name": "g", "arguments": {}}]},
            {"role": "tool", "content": "r"}, {"role": "tool", "content": "r2"}, {"role": "assistant", "content": "done"}]
    check_batch([(msgs, tools, agp) for tools in (None, [WEATHER]) for agp in (False, True)], PYCALL_LIKE)
    text = PYCALL_LIKE.render(msgs)
    assert ("""[f(s='x y', q='it's', n=2, b=True, z=None, o={"k": [1, null], "é": "ü"}, l=['a', {'k': 1}]), g()]"""
            in text)


#: CODER_LIKE with GigaChat's tool list: each tool's function as a TypeScript type (``tool_layout="typescript"``)
TS_LIKE = replace(CODER_LIKE, structure=replace(CODER_LIKE.structure, tools=replace(
    CODER_LIKE.structure.tools, tool_layout="typescript", list_prefix="namespace functions {\n", item_sep="\n",
    item_prefix="", item_suffix="", list_suffix="\n} // namespace functions\n\n")))

#: a tool holding what the TypeScript layout writes: comments from descriptions (blank lines left
#: out) and from the keys it names, defaults, enums, dates, nested objects and arrays, an index
#: signature, a return type
TS_TOOL = {"type": "function", "function": {
    "name": "book", "description": "Book a room.\n\n  Pays too.", "parameters": {
        "type": "object", "required": ["when", "room"], "properties": {
            "when": {"type": "string", "format": "date", "description": "the day"},
            "room": {"type": "string", "enum": ["single", "double"], "default": "single"},
            "n": {"type": "integer", "minimum": 1, "maximum": 4, "default": None, "enum": [1, 2]},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "any": {"type": "array"}, "pay": {"type": "boolean", "default": True},
            "who": {"type": "object", "description": "guest", "properties": {"name": {"type": "string"}},
                    "additionalProperties": {"type": "number"}},
            "meta": {"type": "object", "additionalProperties": True}, "x": {"type": ["string", "null"]}}},
    "return_parameters": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}}


def test_typescript_tool_list_fixed_cases_in_llamacpps_engine():
    """GigaChat's layout, as its template writes TS_TOOL (written out here by hand from that
    template's rules), through the reference renderer, and the llama.cpp target in llama.cpp's own
    engine on the same conversations."""
    bare = {"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}}
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "tool_calls": [{"name": "book", "arguments": {"when": "d"}}]},
            {"role": "tool", "content": "r"}, {"role": "assistant", "content": "done"}]
    check_batch([(msgs, tools, agp) for tools in (None, [TS_TOOL], [bare, TS_TOOL]) for agp in (False, True)], TS_LIKE)
    want = ('namespace functions {\n// Book a room.\n//   Pays too.\ntype book = (_: {\n'
            '  // the day\n  // format: "date"\n  when: Date,\n'
            '  room: "single" | "double", // default: "single"\n'
            '  // minimum: 1\n  // maximum: 4\n  n?: 1 | 2, // default: None\n'
            '  // maxItems: 3\n  tags?: string[],\n  any?: Array<any>,\n  pay?: boolean, // default: True\n'
            '  // guest\n  who?: {\n    name?: string,\n    [key: string]: number\n  },\n'
            '  meta?: {\n    [key: string]: any\n  },\n  x?: any,\n'
            '}) => {\n  ok?: boolean,\n};\n\ntype ping = () => any;\n\n} // namespace functions')
    assert want.replace("\n\ntype ping = () => any;\n", "\n") in TS_LIKE.render(msgs, tools=[TS_TOOL])
    assert "{\ntype ping = () => any;\n\n// Book a room." in TS_LIKE.render(msgs, tools=[bare, TS_TOOL])
    with pytest.raises(tmplc.MessageError, match="tools\\[0\\]: .* TypeScript type"):
        TS_LIKE.render(msgs, tools=[{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"a": "not a schema"}}}}])


#: qwen3-tools with Apriel's layout: each tool as Python's str writes it (``tool_layout="python_str"``),
#: a call's id after its arguments, and none in the last message's calls
PYSTR_LIKE = replace(FMT, structure=replace(FMT.structure, tools=replace(
    FMT.structure.tools, tool_layout="python_str", call_prefix='{"name": "', call_middle='", "arguments": ',
    call_id_prefix=', "id": "', call_id_after=True, call_id_suffix='"', last_call_ids=False, call_suffix="}",
    calls_open="<tool_calls>[", call_sep=", ", calls_close="]</tool_calls>")))


def _with_ids(msgs: list[dict]) -> list[dict]:
    """``msgs`` with an id on each call (``call_<message>_<k>``)."""
    return [{**m, "tool_calls": [{**c, "id": f"call_{i}_{k}"} for k, c in enumerate(m["tool_calls"])]}
            if m.get("tool_calls") else m for i, m in enumerate(msgs)]


def test_python_str_tools_and_call_ids_after_arguments_fixed_cases_in_llamacpps_engine():
    tool = {"type": "function", "function": {"name": "f", "description": "it's \"q\" \\ é\n", "strict": True,
                                             "parameters": {"type": "object", "properties": {"n": {"default": None}}}}}
    msgs = _with_ids([{"role": "user", "content": "q"},
                      {"role": "assistant", "content": "", "tool_calls": [{"name": "f", "arguments": {"n": 1}},
                                                                         {"name": "g", "arguments": "{}"}]},
                      {"role": "tool", "content": "r"}, {"role": "tool", "content": "r2"},
                      {"role": "assistant", "content": "done"}])
    cases = [(m, tools, agp) for m in (msgs, msgs[:2]) for tools in (None, [tool]) for agp in (False, True)]
    check_batch(cases, PYSTR_LIKE)
    # Apriel 1.5: with tools and no system message, the list in a block of its own, then the usual block
    own = replace(PYSTR_LIKE, structure=replace(PYSTR_LIKE.structure, system=replace(
        PYSTR_LIKE.structure.system, default="You are a bot."), tools=replace(
        PYSTR_LIKE.structure.tools, list_block_suffix="\nCall them well.<|im_end|>\n")))
    check_batch(cases + [([{"role": "system", "content": "S"}] + m, t, agp) for m, t, agp in cases], own)
    alone = own.render(msgs[:1], tools=[tool])
    assert alone.startswith("<|im_start|>system\n# Tools") and alone.endswith(
        "</tool_call>\nCall them well.<|im_end|>\n<|im_start|>system\nYou are a bot.<|im_end|>\n"
        "<|im_start|>user\nq<|im_end|>\n"), alone
    assert "Call them well" not in own.render([{"role": "system", "content": "S"}] + msgs[:1], tools=[tool])
    text = PYSTR_LIKE.render(msgs, tools=[tool])
    assert """{'type': 'function', 'function': {'name': 'f', 'description': 'it\\'s "q" \\\\ é\\n', 'strict': True, """ \
           """'parameters': {'type': 'object', 'properties': {'n': {'default': None}}}}}""" in text
    assert '<tool_calls>[{"name": "f", "arguments": {"n": 1}, "id": "call_1_0"}, {"name": "g", "arguments": {}, ' \
           '"id": "call_1_1"}]</tool_calls>' in text
    last = PYSTR_LIKE.render([msgs[0], {**msgs[1], "tool_calls": [{"name": "f", "arguments": {}}]}])
    assert last.endswith('<tool_calls>[{"name": "f", "arguments": {}}]</tool_calls><|im_end|>\n')  # no id, none needed
    with pytest.raises(tmplc.MessageError, match="has no id"):
        PYSTR_LIKE.render([msgs[0], {**msgs[1], "tool_calls": [{"name": "f", "arguments": {}}]}, msgs[2]])


@pytest.mark.parametrize("name", ["per-argument calls", "XML tool list", "CDATA string arguments",
                                  "Python call arguments", "TypeScript tool list", "Python str tool list"])
@settings(max_examples=40)
@given(conv=tool_conversations())
def test_random_per_argument_conversations_in_llamacpps_engine(name, conv):
    msgs, tools = conv
    msgs = _with_ids(_objects(msgs))
    assume(not _has_float([m.get("tool_calls") for m in msgs]) and not _has_float(tools or []))
    if name == "Python str tool list":  # the tools as Python's str writes them: the known repr divergence
        assume(not _unescaped_in_llamacpp(tools or []))
    if name == "Python call arguments":  # a list value as Python's str writes it: the known repr divergence
        assume(not any(_unescaped_in_llamacpp(v) for m in msgs for c in m.get("tool_calls") or []
                       for v in c.get("function", c)["arguments"].values()))
    check_batch([(msgs, tools, False), (msgs, tools, True)], {"per-argument calls": CODER_LIKE,
                                                              "XML tool list": XML_LIKE,
                                                              "CDATA string arguments": CDATA_LIKE,
                                                              "Python call arguments": PYCALL_LIKE,
                                                              "TypeScript tool list": TS_LIKE,
                                                              "Python str tool list": PYSTR_LIKE}[name])
