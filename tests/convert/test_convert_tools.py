"""The converter's tool part (tmplc.convert.tools, via convert_jinja) on REAL templates of the
corpus (.cache/corpus/templates/; ``python scripts/fetch_corpus.py``): Qwen2.5's and Qwen3's tool
parts are recovered exactly — the recovered format equals the hand-written registry entries proven
against the same templates (tests/tools/), and renders like the real template through
transformers' ``apply_chat_template`` on random tool conversations (hypothesis, tests/tools'
strategies); layouts the IR cannot carry are refused with the reason while the text format is
kept; an odd or hostile tool branch stays inside the sandbox's limits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import load_tokenizer, missing_fixture
from tools.strategies_tools import tool_conversations

import tmplc
from tmplc.convert import ConversionRefused
from tmplc.convert.jinja import convert_jinja
from tmplc.convert.sandbox import Limits
from tmplc.registry import registry

CORPUS = Path(__file__).resolve().parents[2] / ".cache" / "corpus"


def corpus_template(name: str) -> tuple[str, str | None, str | None]:
    """(template, bos, eos) of a corpus entry: fails under CI=true when the corpus is missing."""
    import json

    manifest = CORPUS / "manifest.json"
    if not manifest.is_file():
        missing_fixture("the template corpus (.cache/corpus)", "run: python scripts/fetch_corpus.py")
    for item in json.loads(manifest.read_text(encoding="utf-8")):
        if item["name"] == name:
            return ((CORPUS / "templates" / item["file"]).read_text(encoding="utf-8"), item.get("bos_token"),
                    item.get("eos_token"))
    missing_fixture(f"the corpus template {name!r}", "run: python scripts/fetch_corpus.py")


_CONVERSIONS: dict = {}


def converted(name: str):
    if name not in _CONVERSIONS:
        t, bos, eos = corpus_template(name)
        _CONVERSIONS[name] = (convert_jinja(t, bos_token=bos, eos_token=eos, format_name=name), t, bos, eos)
    return _CONVERSIONS[name]


#: corpus entry -> (the registry entry proven byte-equal to that template in tests/tools/, renders reasoning)
EXACT = {"llamacpp-Qwen-Qwen2.5-7B-Instruct": ("qwen2.5-tools", False), "npm-qwen3": ("qwen3-tools", True)}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_qwen_tool_parts_are_recovered_exactly(name):
    conv, *_ = converted(name)
    entry, _ = EXACT[name]
    assert conv.tools == "exact", conv.tools_status
    assert conv.tools_status == "exact" and conv.tools_reason == ""
    assert conv.format.structure.tools is not None and conv.text_format.structure.tools is None
    # the same ToolFormat (and answer scope) as the hand-written entry proven against this template
    assert conv.format.structure.tools == registry[entry].structure.tools
    assert conv.format.structure.final_scope == registry[entry].structure.final_scope
    from tmplc.convert.identify import identify

    assert identify(conv.format) == entry


@pytest.mark.parametrize("name", sorted(EXACT))
def test_recovered_tool_format_renders_like_the_real_template(name):
    """Random tool conversations (tests/tools' strategies, not the converter's generator): the real
    template through transformers == fmt.render == the conversion's to_jinja() through transformers."""
    conv, template, bos, eos = converted(name)
    fmt, ours = conv.format, conv.format.to_jinja()
    tok = load_tokenizer("qwen3")  # only its apply_chat_template: the template is passed explicitly
    reasoning = EXACT[name][1]
    special = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v is not None}

    @settings(max_examples=40)
    @given(tool_conversations(reasoning=reasoning), st.booleans())
    def check(c, agp):
        msgs, tools = c
        kw = dict(tools=tools, add_generation_prompt=agp, tokenize=False)
        real = tok.apply_chat_template(msgs, chat_template=template, **kw, **special)
        assert fmt.render(msgs, agp, tools=tools) == real
        assert tok.apply_chat_template(msgs, chat_template=ours, **kw, **special) == real

    check()


LLAMA_TOOLS = ("llamacpp-meta-llama-Llama-3.1-8B-Instruct", "llamacpp-meta-llama-Llama-3.3-70B-Instruct")


@pytest.mark.parametrize("name", LLAMA_TOOLS)
def test_llama31_tool_part_in_the_first_user_message_is_recovered_exactly(name):
    """Llama 3.1/3.3 write the tool list into the first user message, 'Environment: ipython' into
    the system header (also for tools=[]), one call per answer without its content, arguments in
    another JSON style than the list, results through tojson: the converter reads each of these off
    the probes, and the result is the hand-written entry proven against the same template."""
    conv, template, bos, eos = converted(name)
    assert conv.tools == "exact", conv.tools_status
    tf = conv.format.structure.tools
    assert tf == registry["llama-3.1-tools"].structure.tools
    assert (tf.placement, tf.empty_list, tf.max_calls, tf.calls_alone, tf.result_content) == \
        ("first_user", True, 1, True, "json")
    assert "Environment: ipython" in "".join(p.value for p in tf.system_prefix)
    # the whole layout is the entry's (the sdist's templates carry no token strings: the converter's
    # sentinels stand for BOS/EOS, so identify() by token strings does not apply)
    assert conv.format.structure == registry["llama-3.1-tools"].structure


@pytest.mark.parametrize("name", LLAMA_TOOLS)
def test_recovered_first_user_tool_format_renders_like_the_real_template(name):
    """Random tool conversations (tests/tools' strategies; one call per answer, as the template takes
    them): the real template through transformers == fmt.render == to_jinja() through transformers."""
    from tools.strategies_tools import one_call_answers

    conv, template, bos, eos = converted(name)
    fmt, ours = conv.format, conv.format.to_jinja()
    tok = load_tokenizer("qwen3")  # only its apply_chat_template: the template is passed explicitly

    @settings(max_examples=40)
    @given(tool_conversations(reasoning=False), st.booleans())
    def check(c, agp):
        msgs, tools = c
        msgs = one_call_answers(msgs)
        kw = dict(tools=tools, add_generation_prompt=agp, tokenize=False, bos_token=bos, eos_token=eos)
        real = tok.apply_chat_template(msgs, chat_template=template, **kw)
        assert fmt.render(msgs, agp, tools=tools) == real
        assert tok.apply_chat_template(msgs, chat_template=ours, **kw) == real

    check()


GRANITE = {"llamacpp-ibm-granite-granite-4.0": "granite-4.0-tools",
           "llamacpp-ibm-granite-granite-4.1": "granite-4.1-tools"}


@pytest.mark.parametrize("name", sorted(GRANITE))
def test_granite4_tool_parts_are_recovered_exactly(name):
    """Granite 4.x: with tools an empty system message still counts (its separator renders), and
    4.0's default system message gives way to the tool list; the recovered layout is the registry
    entry proven against the same template in tests/tools/test_real_tool_templates.py."""
    conv, *_ = converted(name)
    assert conv.tools == "exact", conv.tools_status
    assert conv.format.structure == registry[GRANITE[name]].structure
    tf = conv.format.structure.tools
    assert tf.empty_system_counts and tf.keep_default_system == name.endswith("4.1")
    # the result's own tags, not a split through Granite's '|>' (one reading for one meaning)
    assert (tf.result_prefix, tf.result_suffix) == ("\n<tool_response>\n", "\n</tool_response>")


def test_llama32_tool_part_keeps_todays_date_in_the_system_header():
    """Llama 3.2's header with tools ('Environment: ipython' + today's date from strftime_now) is a
    system_prefix fragment with the {DATE=...} piece of the header without tools: the recovered
    layout is the registry's llama-3.2-tools, and its render follows the day like the template's."""
    from tmplc.convert.corpus import frozen_hf_clock, hf_render
    from tmplc.ir import DateToken
    import datetime

    conv, template, bos, eos = converted("llamacpp-meta-llama-Llama-3.2-3B-Instruct")
    assert conv.tools == "exact", conv.tools_status
    assert conv.format.structure == registry["llama-3.2-tools"].structure
    assert [p for p in conv.format.structure.tools.system_prefix if isinstance(p, DateToken)] == \
        [DateToken("%d %b %Y")]
    msgs = [{"role": "user", "content": "Weather?"}]
    tools = [{"type": "function", "function": {"name": "w", "description": "", "parameters": {}}}]
    for day in (datetime.date(1999, 12, 31), datetime.date(2027, 2, 7)):
        with frozen_hf_clock(day):
            real = hf_render(template, msgs, True, bos, eos, tools=tools)
        assert conv.format.render(msgs, True, date=day, tools=tools) == real
        assert day.strftime("%d %b %Y") in real


def test_mistral_small_tool_part_is_recovered_exactly():
    """Mistral Small 3.2: [AVAILABLE_TOOLS] before the last user message as a JSON array (items
    joined by ', '), [TOOL_CALLS]name[CALL_ID]id[ARGS]arguments, [TOOL_RESULTS]id[TOOL_CONTENT]...:
    the recovered format is the registry's mistral-v7-tekken-tools (proven against the same
    template in tests/tools/test_real_tool_templates.py); the template's demand that user and
    assistant turns alternate is in the notes."""
    conv, *_ = converted("llamacpp-Mistral-Small-3.2-24B-Instruct-2506")
    assert conv.tools == "exact", conv.tools_status
    assert conv.format.structure == registry["mistral-v7-tekken-tools"].structure
    tf = conv.format.structure.tools
    assert (tf.placement, tf.item_sep, tf.call_id_prefix, tf.result_id_suffix) == \
        ("last_user", ", ", "[CALL_ID]", "[TOOL_CONTENT]")
    assert any("alternate" in n for n in conv.tools_notes)


#: corpus templates whose tool layout the IR cannot carry -> words the refusal must contain
#: (read off the templates: MiniMax-M3 writes each argument's value as nested XML elements
#: (`<alpha><item>1</item>...`), neither JSON nor text; DeepSeek-V3 never reads `tools`, QwQ
#: tests the raw content before a call's separator and renders reasoning_content nowhere)
REFUSED = {
    "llamacpp-MiniMax-M3": "the arguments are neither written as json.dumps of the object after the name nor key by key",
    "npm-deepseek_v3": "the recovered format renders '}<｜tool▁output▁end｜>'",
    "llamacpp-upstage-Solar-Open-100B": "without a system message",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_layouts_the_ir_cannot_carry_are_refused_never_wrong(name):
    conv, *_ = converted(name)
    assert conv.tools == "refused", (name, conv.tools_status)
    assert REFUSED[name] in conv.tools_reason, conv.tools_reason
    assert conv.format.structure.tools is None


@pytest.mark.parametrize("name", ["llamacpp-LFM2-8B-A1B", "llamacpp-LFM2.5-Instruct"])
def test_lfm2_calls_are_written_into_the_content(name):
    """LFM2's templates never render ``tool_calls`` (the model writes ``<|tool_call_start|>...`` into
    the content): ``renders_calls`` False, so the format refuses them.  Otherwise the format
    renders like the real template, through transformers (the newline between the system prompt
    and the tool list only after a non-empty one: an empty system message counts as none)."""
    import tmplc

    conv, template, bos, eos = converted(name)
    assert conv.tools == "exact", conv.tools_status
    fmt = conv.format
    tf = fmt.structure.tools
    assert not tf.renders_calls and tf.system_sep == "\n" and fmt.structure.system.skip_empty
    tok = load_tokenizer("qwen3")  # only its apply_chat_template: the template is passed explicitly
    special = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v is not None}
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    for system in ("", "Be brief."):
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": "q"},
                {"role": "assistant", "content": "<|tool_call_start|>[f()]<|tool_call_end|>"},
                {"role": "tool", "content": "42"}]
        real = tok.apply_chat_template(msgs, tools=[tool], chat_template=template, tokenize=False,
                                       add_generation_prompt=True, **special)
        assert fmt.render(msgs, True, tools=[tool]) == real
        assert tok.apply_chat_template(msgs, tools=[tool], chat_template=fmt.to_jinja(), tokenize=False,
                                       add_generation_prompt=True, **special) == real
    calls = msgs[:2] + [{"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": {}}}]}]
    with pytest.raises(tmplc.MessageError, match="renders no tool_calls"):
        fmt.render(calls, tools=[tool])


def test_reka_separator_unless_the_answer_ends_with_it_is_recovered_exactly():
    """Reka Edge writes a newline between an answer and its calls unless the answer already ends
    with one: ``content_sep_if: unended``, read by verification (each rule is tried), and the
    recovered format renders like the real template on random tool conversations."""
    conv, template, bos, eos = converted("llamacpp-Reka-Edge")
    assert conv.tools == "exact", conv.tools_status
    tf = conv.format.structure.tools
    assert (tf.content_sep, tf.content_sep_if) == ("\n", "unended")
    fmt, ours = conv.format, conv.format.to_jinja()
    tok = load_tokenizer("qwen3")  # only its apply_chat_template: the template is passed explicitly
    special = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v is not None}
    # an answer ending with the separator, with a call: the rule the other two would get wrong
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "a\n", "tool_calls": [{"name": "f", "arguments": {"x": 1}}]},
            {"role": "tool", "content": "r"}]
    real = tok.apply_chat_template(msgs, chat_template=template, tokenize=False, **special)
    assert fmt.render(msgs) == real and "a\n\n" not in real

    @settings(max_examples=40)
    @given(tool_conversations(reasoning=False), st.booleans())
    def check(c, agp):
        msgs, tools = c
        kw = dict(tools=tools, add_generation_prompt=agp, tokenize=False)
        real = tok.apply_chat_template(msgs, chat_template=template, **kw, **special)
        assert fmt.render(msgs, agp, tools=tools) == real
        assert tok.apply_chat_template(msgs, chat_template=ours, **kw, **special) == real

    check()


@pytest.mark.parametrize("name, mode", [("llamacpp-MiniMax-M2", "verbatim"), ("llamacpp-Qwen-QwQ-32B", "refused"),
                                        ("npm-qwen3", "strip_nl")])
def test_how_a_template_reads_reasoning_content_is_recovered(name, mode):
    """MiniMax-M2 renders ``reasoning_content`` as given, Qwen3 strips its newlines, QwQ never reads
    it (and splits every content at ``</think>``): ``given_reasoning``, read off probes that carry
    it.  The format renders like the real template (through transformers) on answers carrying it,
    or, where the template ignores it, refuses them and renders like the template without it."""
    import tmplc

    conv, template, bos, eos = converted(name)
    assert conv.tools == "exact", conv.tools_status
    fmt = conv.format
    assert fmt.structure.given_reasoning == mode and conv.text_format.structure.given_reasoning == mode
    tok = load_tokenizer("qwen3")  # only its apply_chat_template: the template is passed explicitly
    special = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v is not None}
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "<think>\nx\n</think>\n\na", "reasoning_content": "\n r\n",
             "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"k": "v"}}}]},
            {"role": "tool", "content": "res"},
            {"role": "assistant", "content": "b", "reasoning_content": "\nr2\n"}]
    real = tok.apply_chat_template(msgs, chat_template=template, tokenize=False, **special)
    if mode == "refused":
        with pytest.raises(tmplc.MessageError, match="does not read reasoning_content"):
            fmt.render(msgs)
        plain = [{k: v for k, v in m.items() if k != "reasoning_content"} for m in msgs]
        assert fmt.render(plain) == real and "r2" not in real
    else:
        assert fmt.render(msgs) == real
        assert ("\n\nr2\n\n" in real) == (mode == "verbatim")
    assert tok.apply_chat_template(msgs if mode != "refused" else plain, chat_template=fmt.to_jinja(),
                                   tokenize=False, **special) == real


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.mark.parametrize("hostile, words", [
    # an endless loop only when tools are given: the batch's time limit
    ("{% if tools %}{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{% endif %}",
     "time limit"),
    # a huge output only when tools are given: the output cap
    ("{% if tools %}{{ 'x' * 100000 * 100000 }}{% endif %}", "refusing"),
    # an attribute escape through the tool list: the sandbox's security
    ("{% if tools %}{{ tools.__class__.__mro__ }}{% endif %}", "unsafe"),
])
def test_a_hostile_tool_branch_stays_bounded_by_the_sandbox(hostile, words):
    t0 = time.monotonic()
    conv = convert_jinja(hostile + CHATML, limits=Limits(timeout=3.0), n_random=20)
    assert time.monotonic() - t0 < 60
    assert conv.tools == "refused" and words in conv.tools_reason, conv.tools_reason
    assert conv.format.structure.tools is None  # the text part stands, verified
    assert conv.format.render([{"role": "user", "content": "q"}], True) == "<|im_start|>user\nq<|im_end|>\n" \
        "<|im_start|>assistant\n"


def test_a_template_without_tools_says_none():
    conv = convert_jinja(CHATML, n_random=20)
    assert conv.tools == "none" and conv.tools_status == "none" and conv.format is conv.text_format


def test_a_text_refusal_still_raises():
    with pytest.raises(ConversionRefused):
        convert_jinja("{{ raise_exception('no') }}{% if tools %}{% endif %}")


@pytest.mark.parametrize("name", ["llamacpp-deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
                                  "llamacpp-deepseek-ai-DeepSeek-R1-Distill-Llama-8B"])
def test_deepseek_r1_templates_never_read_reasoning_content_nor_does_the_registry_entry(name):
    """The R1 distills' templates (llama.cpp's copies) ignore ``reasoning_content`` and split every
    answer at ``</think>``: the conversion and the registry's ``deepseek-r1`` refuse a message
    carrying it (``|no_reasoning_field``); the conversion otherwise renders like the template."""
    import tmplc

    conv, template, bos, eos = converted(name)
    entry = registry["deepseek-r1"].with_meta(bos_token=bos, eos_token=eos)
    assert conv.text_format.structure.given_reasoning == entry.structure.given_reasoning == "refused"
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "<think>\nx\n</think>\n\na", "reasoning_content": "r"},
            {"role": "user", "content": "q2"}]
    tok = load_tokenizer("qwen3")  # only its apply_chat_template: the template is passed explicitly
    real = tok.apply_chat_template(msgs, chat_template=template, tokenize=False, add_generation_prompt=True,
                                   bos_token=bos, eos_token=eos)
    for fmt in (conv.text_format, entry):
        with pytest.raises(tmplc.MessageError, match="does not read reasoning_content"):
            fmt.render(msgs, True)
    plain = [{k: v for k, v in m.items() if k != "reasoning_content"} for m in msgs]
    assert conv.text_format.render(plain, True) == real and "x" not in real


def test_laguna_separator_only_after_a_system_message_that_renders():
    """Poolside Laguna-S rstrips the system message and separates it from the tool list only when
    something is left: ``system_sep_if: content``, read by verification; a whitespace-only system
    message renders like the real template (through transformers)."""
    conv, template, bos, eos = converted("llamacpp-poolside-Laguna-S-2.1")
    assert conv.tools == "exact", conv.tools_status
    fmt = conv.format
    assert fmt.structure.tools.system_sep and fmt.structure.tools.system_sep_if == "content"
    tok = load_tokenizer("qwen3")  # only its apply_chat_template: the template is passed explicitly
    special = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v is not None}
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    for system in (" \n", "Be brief. "):
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": "q"}]
        real = tok.apply_chat_template(msgs, tools=[tool], chat_template=template, tokenize=False,
                                       add_generation_prompt=True, **special)
        assert fmt.render(msgs, True, tools=[tool]) == real
        assert tok.apply_chat_template(msgs, tools=[tool], chat_template=fmt.to_jinja(), tokenize=False,
                                       add_generation_prompt=True, **special) == real


def test_hy3_calls_end_their_turn_and_a_blank_system_message_has_no_separator():
    """Tencent Hy3 leaves the last answer open but ends an answer with calls with its EOS
    (``calls_end_turn``), and separates the system message from the tool list only when it has
    content (``system_sep_if: content``, read from the verification conversations with an empty
    system message); the format renders like the real template through transformers."""
    fmt, template, bos, eos = _exact_with_tools("llamacpp-tencent-Hy3")
    tf = fmt.structure.tools
    assert tf.calls_end_turn and tf.system_sep_if == "content" and fmt.structure.assistant.final_suffix is not None
    tok = load_tokenizer("qwen3")  # only its apply_chat_template: the template is passed explicitly
    special = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v is not None}
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    call = {"type": "function", "function": {"name": "f", "arguments": {"k": "v", "n": 2}}}
    for system in ("", "Be brief."):
        for last in ({"role": "assistant", "content": "a", "tool_calls": [call]}, {"role": "assistant", "content": "a"}):
            msgs = [{"role": "system", "content": system}, {"role": "user", "content": "q"}, last]
            real = tok.apply_chat_template(msgs, tools=[tool], chat_template=template, tokenize=False, **special)
            assert fmt.render(msgs, tools=[tool]) == real
            assert tok.apply_chat_template(msgs, tools=[tool], chat_template=fmt.to_jinja(), tokenize=False,
                                           **special) == real


@pytest.mark.parametrize("name", ["llamacpp-Spark2.5", "llamacpp-Qwen3.5-4B"])
def test_the_tool_list_before_the_system_message_is_recovered(name):
    """Spark 2.5 and Qwen3.5 write the tools into the system block before the system message
    (``list_first``), separated from it only when it has content; Spark's block prefix loses its
    ``\\n\\n`` with tools (``system_prefix``); Qwen3.5 trims results and reasoning_content.  The
    format renders like the real template through transformers, with and without a system
    message, on an agent conversation."""
    conv, template, bos, eos = converted(name)
    assert conv.tools == "exact", conv.tools_status
    fmt = conv.format
    tf = fmt.structure.tools
    assert tf.list_first and tf.system_sep == "\n\n"
    if name.endswith("Qwen3.5-4B"):
        # reasoning_content is trimmed too: by its {REASONING|trim} block, whichever way it is read
        assert tf.result_content == "trim" and tf.per_argument and fmt.structure.reads_reasoning
    else:
        assert tf.system_prefix is not None
    tok = load_tokenizer("qwen3")  # only its apply_chat_template: the template is passed explicitly
    special = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v is not None}
    tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}
    agent = [{"role": "user", "content": "q"},
             {"role": "assistant", "content": "Let me check.", "reasoning_content": " r \n",
              "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"k": "v", "n": None}}}]},
             {"role": "tool", "content": " 42\n"},
             {"role": "assistant", "content": "It is 42."}]
    if not fmt.structure.reads_reasoning:  # Spark's format renders no reasoning (and refuses it)
        agent = [{k: v for k, v in m.items() if k != "reasoning_content"} for m in agent]
    for system in (None, "", "Be brief."):
        msgs = agent if system is None else [{"role": "system", "content": system}] + agent
        for tools in (None, [tool], [tool, tool]):
            real = tok.apply_chat_template(msgs, tools=tools, chat_template=template, tokenize=False, **special)
            assert fmt.render(msgs, tools=tools) == real, (system, tools)
            assert tok.apply_chat_template(msgs, tools=tools, chat_template=fmt.to_jinja(), tokenize=False,
                                           **special) == real


def test_devstral_tool_list_after_the_system_block():
    """Devstral (Unsloth's template) writes ``[AVAILABLE_TOOLS]`` + ``tools|tojson`` right after the
    system block (``placement: after_system``); the format renders like the real template through
    transformers, with and without a system message."""
    conv, template, bos, eos = converted("llamacpp-unsloth-mistral-Devstral-Small-2507")
    assert conv.tools == "exact", conv.tools_status
    fmt = conv.format
    assert fmt.structure.tools.placement == "after_system" and fmt.structure.tools.item_sep == ", "
    tok = load_tokenizer("qwen3")  # only its apply_chat_template: the template is passed explicitly
    special = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v is not None}
    tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}
    agent = [{"role": "user", "content": "q"},
             {"role": "assistant", "content": "", "tool_calls": [
                 {"type": "function", "function": {"name": "f", "arguments": {"k": "v"}}}]},
             {"role": "tool", "content": "42"}, {"role": "assistant", "content": "It is 42."}]
    for msgs in (agent, [{"role": "system", "content": "Be brief."}] + agent):
        for tools in (None, [tool], [tool, tool]):
            real = tok.apply_chat_template(msgs, tools=tools, chat_template=template, tokenize=False, **special)
            assert fmt.render(msgs, tools=tools) == real
            assert tok.apply_chat_template(msgs, tools=tools, chat_template=fmt.to_jinja(), tokenize=False,
                                           **special) == real


def test_kimi_k2_tool_declare_turn_and_indexed_call_ids():
    """Kimi K2 (moonshotai's template) opens the text with a ``tool_declare`` turn holding
    ``tools|tojson`` (``placement: start``, before the default system message) and writes each call
    as ``functions.NAME:i`` with ``i`` the call's position in its answer (``call_index_prefix``);
    its results read ``## Return of <tool_call_id>``.  The format renders like the real template
    through transformers, with and without a system message, one and several calls per answer."""
    conv, template, bos, eos = converted("llamacpp-moonshotai-Kimi-K2")
    assert conv.tools == "exact", conv.tools_status
    tf = conv.format.structure.tools
    assert tf.placement == "start" and tf.call_index_prefix == ":" and tf.call_prefix.endswith("functions.")
    fmt = conv.format
    tok = load_tokenizer("qwen3")  # only its apply_chat_template: the template is passed explicitly
    special = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v is not None}
    tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}
    call = {"type": "function", "function": {"name": "f", "arguments": {"k": "v"}}}
    agent = [{"role": "user", "content": "q"},
             {"role": "assistant", "content": "Let me look.", "tool_calls": [call, call, call]},
             {"role": "tool", "tool_call_id": "functions.f:0", "content": "42"},
             {"role": "tool", "tool_call_id": "functions.f:1", "content": "43"},
             {"role": "tool", "tool_call_id": "functions.f:2", "content": "44"},
             {"role": "assistant", "content": "", "tool_calls": [call]},
             {"role": "tool", "tool_call_id": "functions.f:0", "content": "45"},
             {"role": "assistant", "content": "It is 42."}]
    for msgs in (agent, [{"role": "system", "content": "Be brief."}] + agent):
        for tools in (None, [tool], [tool, tool]):
            real = tok.apply_chat_template(msgs, tools=tools, chat_template=template, tokenize=False, **special)
            assert "functions.f:2<|tool_call_argument_begin|>" in real and "functions.f:0<|tool_call_arg" in real
            assert fmt.render(msgs, tools=tools) == real
            assert tok.apply_chat_template(msgs, tools=tools, chat_template=fmt.to_jinja(), tokenize=False,
                                           **special) == real


def test_granite_3_3_tool_list_as_one_indented_array_and_its_own_default_system_message():
    """Granite 3.3 writes ``tools | tojson(indent=4)`` in an ``available_tools`` turn after the
    system block (``list_json``: each tool nested a level deeper than ``json.dumps(tool,
    indent=4)``), and without a system message its dated default system text names the tools
    (``ToolFormat.absent``); it renders no calls (the model writes them into the content).  The
    format renders like the real template through transformers, on a fixed date, with and without
    a system message, with one and two tools; with calls it refuses, as documented."""
    fmt, template, bos, eos = _exact_with_tools("llamacpp-ibm-granite-granite-3.3-2B-Instruct")
    tf = fmt.structure.tools
    assert tf.list_json and tf.json.indent == 4 and tf.placement == "after_system" and tf.absent is not None
    assert not tf.renders_calls
    from tmplc.convert.corpus import CHECK_DAY, frozen_hf_clock

    tok = load_tokenizer("qwen3")  # only its apply_chat_template: the template is passed explicitly
    special = {k: v for k, v in (("bos_token", bos), ("eos_token", eos)) if v is not None}
    tools1 = [{"type": "function", "function": {"name": "f", "description": "d é", "parameters": {
        "type": "object", "properties": {"k": {"type": "string"}}}}}]
    agent = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<|tool_call|>[...]"},
             {"role": "tool", "content": "42"}, {"role": "assistant", "content": "It is 42."}]
    for msgs in (agent, [{"role": "system", "content": "Be brief."}] + agent):
        for tools in (None, tools1, tools1 * 2):
            with frozen_hf_clock(CHECK_DAY):
                real = tok.apply_chat_template(msgs, tools=tools, chat_template=template, tokenize=False, **special)
                ours = tok.apply_chat_template(msgs, tools=tools, chat_template=fmt.to_jinja(), tokenize=False,
                                               **special)
            assert fmt.render(msgs, tools=tools, date=CHECK_DAY) == real == ours
            if tools and len(msgs) == 4:
                assert "You are a helpful assistant with access to the following tools." in real
                assert '[\n    {\n        "type": "function"' in real
    with pytest.raises(tmplc.MessageError, match="renders no tool_calls"):
        fmt.render([{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": {}}}]}], tools=tools1)


@pytest.mark.parametrize("name", ["llamacpp-deepseek-ai-DeepSeek-V3.2", "llamacpp-deepseek-ai-DeepSeek-V4",
                                  "llamacpp-deepseek-ai-DeepSeek-V4-Flash-0731"])
def test_deepseek_dsml_calls_and_their_results(name):
    """DeepSeek V3.2/V4 write each argument as ``<｜DSML｜parameter name="k" string="true|false">``
    (the text before a value depends on its type: ``arg_middle_other``; V4 writes ``\\n`` for a
    call without arguments: ``no_arguments``).  V3.2 keeps the answer's turn open across its
    results (the answer after them opens with ``\\n\\n``, not ``<｜Assistant｜>``) and closes the
    run after the last call's result (a run of another length is refused); V4 writes results into
    a user turn (``\\n\\n`` between them) that a following user message continues.  The format
    renders like the real template through transformers, and so does its HF target."""
    conv, template, bos, eos = converted(name)
    assert conv.tools == "exact", conv.tools_status
    fmt = conv.format
    tf = fmt.structure.tools
    assert tf.arg_middle.endswith('string="true">') and tf.arg_middle_other.endswith('string="false">')
    v4 = "V4" in name
    if v4:
        assert (tf.no_arguments, tf.result_sep, tf.user_prefix_after_results, tf.user_after_user) == (
            "\n", "\n\n", "\n\n", True)
        assert tf.assistant_prefix_after_results is None and not tf.results_answer_calls
    else:
        assert tf.assistant_prefix_after_results == "\n\n" and tf.results_answer_calls
        assert tf.user_prefix_after_results is None and tf.no_arguments == ""
    from tmplc.convert.corpus import hf_render

    tool = {"type": "function", "function": {"name": "f", "description": "d é", "parameters": {"type": "object"}}}
    agent = _agent_with_two_calls({"s": "x y", "n": 3, "l": [1, None]}, "Let me look.", "It is 42.")
    agent += [{"role": "user", "content": "again"}, {"role": "assistant", "content": "", "tool_calls": agent[1]["tool_calls"][:1]},
              {"role": "tool", "tool_call_id": "c", "content": "44"}]
    if v4:  # a user message right after results, and right after another user message
        agent += [{"role": "user", "content": "and?"}, {"role": "user", "content": "well?"}]
    for msgs in (agent, [{"role": "system", "content": "Be brief."}] + agent):
        for tools in (None, [tool], [tool, tool]):
            for gen in (False, True):
                real = hf_render(template, msgs, gen, bos, eos, tools)
                assert 'string="false">3</' in real and 'string="true">x y</' in real
                assert fmt.render(msgs, gen, tools=tools) == real
                assert hf_render(fmt.to_jinja(), msgs, gen, bos, eos, tools) == real
    if not v4:  # one result for two calls: the real template never closes the run; the format refuses it
        short = agent[:3] + [{"role": "assistant", "content": "ok"}]
        assert "</function_results>" not in hf_render(template, short, False, bos, eos)
        with pytest.raises(tmplc.MessageError, match="this run has 1 result for 2 calls"):
            fmt.render(short)


def test_ministral_3_refuses_an_empty_answer_as_its_template_does():
    """Ministral 3's template raises on an answer with empty content and no tool calls: the
    conversion declares it (``{OUTPUT|no_empty_answer}``) instead of refusing the template, and
    renders everything else like the real template through transformers — text and tools —, as
    does its HF target; on an empty answer the format, the real template, the HF target and
    llama.cpp's own engine all refuse."""
    from tmplc.convert.corpus import hf_render
    from tmplc.engines.llamacpp import LlamaCppRenderError, render_llamacpp

    name = "llamacpp-mistralai-Ministral-3-14B-Reasoning-2512"
    conv, template, bos, eos = converted(name)
    assert conv.tools == "exact", conv.tools_status
    fmt = conv.format
    assert fmt.structure.refuses_empty_answers and "{OUTPUT|no_empty_answer}" in fmt.to_spec()
    tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}
    call = {"id": "abcdefghi", "type": "function", "function": {"name": "f", "arguments": {"k": "v"}}}
    agent = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [call]},
             {"role": "tool", "tool_call_id": "abcdefghi", "content": "42"}, {"role": "assistant", "content": "42."},
             {"role": "user", "content": "thanks"}]
    for msgs in (agent, [{"role": "system", "content": "Be brief."}] + agent):
        for tools in (None, [tool]):
            for gen in (False, True):
                real = hf_render(template, msgs, gen, bos, eos, tools)
                assert fmt.render(msgs, gen, tools=tools) == real
                assert hf_render(fmt.to_jinja(), msgs, gen, bos, eos, tools) == real
    empty = [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}, {"role": "user", "content": "q2"}]
    with pytest.raises(tmplc.MessageError, match="refuses an empty answer"):
        fmt.render(empty)
    for t in (template, fmt.to_jinja()):
        with pytest.raises(Exception, match="Assistant message must have|refuses an empty answer"):
            hf_render(t, empty, False, bos, eos)
    target = fmt.to_llamacpp()
    out, = render_llamacpp([{"template": target.chat_template, "messages": empty, "bos_token": bos or "",
                             "eos_token": eos or "", "add_generation_prompt": False,
                             "add_bos": target.add_bos_token, "raw_messages": True, "extra_context": None}])
    assert isinstance(out, LlamaCppRenderError) and "refuses an empty answer" in str(out), out


@pytest.mark.parametrize("name", ["llamacpp-GLM-4.6", "llamacpp-GLM-4.7-Flash", "llamacpp-poolside-Laguna-XS-2.1",
                                  "llamacpp-poolside-Laguna-XS.2"])
def test_reasoning_blocks_glm_and_laguna_xs_with_tools(name):
    """GLM-4.6/4.7: earlier answers render a fixed block whatever their reasoning ({THINK|hidden}),
    answers after the last user message their reasoning (4.7: '</think>' without it, {ELSE}); GLM-4.6
    puts '\\n' before a non-blank answer only.  Laguna-XS: '</think>\\n' in place of missing reasoning,
    '\\n' after a non-blank answer only ({NONEMPTY}).  On an agent conversation with reasoning, blank
    and empty answers, the format renders like the real template through transformers, and so do its
    HF target (through transformers) and its llama.cpp target (through llama.cpp's own engine)."""
    from tmplc.convert.corpus import hf_render
    from tools.test_llamacpp_tools import check_batch

    conv, template, bos, eos = converted(name)
    assert conv.tools == "exact", conv.tools_status
    fmt = conv.format
    a = fmt.structure.assistant
    if "GLM" in name:
        assert a.think is not None and a.think.hidden and fmt.structure.final_scope == "after_user"
        assert a.rule.before_nonempty == ("\n" if "4.6" in name else "")
    else:
        assert a.think.absent == "</think>\n" and a.rule.after_nonempty == "\n"
    tool = {"type": "function", "function": {"name": "f", "description": "d é", "parameters": {"type": "object"}}}
    call = [{"type": "function", "function": {"name": "f", "arguments": {"s": "x y", "n": 3}}}]
    agent = [{"role": "user", "content": "q"},
             {"role": "assistant", "content": "<think>plan</think>\nLet me look. ", "tool_calls": call},
             {"role": "tool", "tool_call_id": "a", "content": "42"},
             {"role": "assistant", "content": " ", "tool_calls": call},
             {"role": "tool", "tool_call_id": "b", "content": "43"},
             {"role": "assistant", "content": "<think> r </think>It is 42."},
             {"role": "user", "content": "again"},
             {"role": "assistant", "content": "", "tool_calls": call},
             {"role": "tool", "tool_call_id": "c", "content": "44"},
             {"role": "assistant", "content": "<think>\nsure\n</think>\n\n"}]
    cases = []
    for msgs in (agent, [{"role": "system", "content": "Be brief."}] + agent, agent[:7], agent[:9]):
        for tools in (None, [tool]):
            for gen in (False, True):
                real = hf_render(template, msgs, gen, bos, eos, tools)
                assert fmt.render(msgs, gen, tools=tools) == real
                assert hf_render(fmt.to_jinja(), msgs, gen, bos, eos, tools) == real
                cases.append((msgs, tools, gen))
    check_batch(cases, fmt)


def test_qwen3_coder_xml_tool_list_its_own_system_text_and_trimmed_call_answers():
    """Qwen3-Coder writes each tool as XML (``<function><name>..``, one ``<parameter>`` per
    property, every other JSON Schema key as ``<key>value</key>``: ``tool_layout="xml"``), opens
    the system block with a text of its own when tools come without a system message
    (``default_system``), and trims an answer beside its calls only (``call_answers: trim``).  The
    format renders like the real template through transformers on fixed and random tool
    conversations, as do its HF target (through transformers) and its llama.cpp target (through
    llama.cpp's own engine)."""
    fmt, template, bos, eos = _exact_with_tools("llamacpp-Qwen3-Coder")
    tf = fmt.structure.tools
    assert tf.tool_layout == "xml" and tf.call_answers == "trim" and tf.per_argument
    assert tf.default_system.startswith("You are Qwen, a helpful AI assistant")
    tool = {"type": "function", "function": {
        "name": "f", "description": "  d é\n", "strict": True, "parameters": {
            "type": "object", "required": ["s"], "properties": {
                "s": {"type": ["string", "null"], "description": " the s ", "enum": ["a", "b"]},
                "n": {"type": "integer", "minimum": 0, "default": None}, "o": {"items": {"type": "string"}}}}}}
    agent = _agent_with_two_calls({"s": "x y", "n": 3, "l": [1, None]}, "\n Let me look. \n", " It is 42. \n")
    real = _fixed_agent_in_three_engines(fmt, template, bos, eos, agent, tool)
    assert "<type>['string', 'null']</type>" in real and "Let me look.\n\n<tool_call>" in real
    _random_per_argument_conversations_in_three_engines(fmt, template, bos, eos)


def test_seed_oss_python_signatures_str_values_and_calls_after_an_empty_answer():
    """Seed-OSS writes each tool as a Python signature with a docstring (``tool_layout:
    python_def``: ``def f(a: str,b: Any):``, ``[必填]``/``[选填]``, a ``Returns`` section), every
    argument value that is not a string as Python's ``str`` writes it (``arg_values: str``:
    ``{'k': None}``), its own system text with tools (``default_system``), and an answer whose
    content is blank as its empty turn followed by the calls.  The format renders like the real
    template through transformers on fixed and random tool conversations, as do its HF target
    (through transformers) and its llama.cpp target (through llama.cpp's own engine)."""
    from tools.test_llamacpp_tools import check_batch

    fmt, template, bos, eos = _exact_with_tools("llamacpp-ByteDance-Seed-OSS")
    tf = fmt.structure.tools
    assert (tf.tool_layout, tf.arg_values) == ("python_def", "str") and fmt.structure.assistant.empty is not None
    assert tf.default_system.startswith("You are Doubao")
    tool = {"type": "function", "function": {
        "name": "f", "description": "  d é\n", "parameters": {
            "type": "object", "required": ["s"], "properties": {
                "s": {"type": "string", "description": "the s"}, "n": {"type": ["integer", "null"]},
                "o": {"type": "object", "description": 0}}},
        "returns": {"type": "object", "properties": {"ok": {"type": "boolean", "description": "done?"}}}}}
    calls = [{"type": "function", "function": {"name": "f", "arguments": {"s": "x y", "n": 3, "o": {"k": [None, True]}}}},
             {"type": "function", "function": {"name": "g", "arguments": {}}}]
    agent = [{"role": "user", "content": "q"},
             {"role": "assistant", "content": "\n Let me look. \n", "tool_calls": calls},
             {"role": "tool", "tool_call_id": "a", "content": "42"},
             {"role": "tool", "tool_call_id": "b", "content": "43"},
             {"role": "assistant", "content": "  ", "tool_calls": calls[:1]},
             {"role": "tool", "tool_call_id": "c", "content": "44"},
             {"role": "assistant", "content": " It is 42. \n"}]
    real = _fixed_agent_in_three_engines(fmt, template, bos, eos, agent, tool)
    assert "def f(s: str,n: Any,o: Any):" in real and "- s (str) [必填]: the s" in real and "- ok (bool): done?" in real
    assert "<parameter=o>{'k': [None, True]}</parameter>" in real and "<seed:bos>assistant\n<seed:tool_call>" in real
    # strings inside a value as Python's repr writes them, in llama.cpp's engine too (its own
    # `| string` writes them unescaped)
    nested = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": {"o": {"k\n": ["a\nb", "it's", 'say "hi"', "\\",
                                                                              "\x1b\xa0\u2028", "both '\""]}}}}]}]
    assert "<parameter=o>{'k\\n': ['a\\nb', \"it's\", 'say \"hi\"', '\\\\'" in fmt.render(nested)
    check_batch([(nested, [tool], False)], fmt)
    _random_per_argument_conversations_in_three_engines(fmt, template, bos, eos)


def test_minicpm5_cdata_string_arguments():
    """MiniCPM5 writes each argument as ``<param name="k">value</param>``, a string value holding
    ``<``, ``&`` or a newline inside a CDATA section (``arg_cdata``), any other value as Python's
    ``str`` writes it.  The format renders like the real template through transformers on fixed and
    random tool conversations, as do its HF target (through transformers) and its llama.cpp target
    (through llama.cpp's own engine)."""
    fmt, template, bos, eos = _exact_with_tools("llamacpp-openbmb-MiniCPM5-1B")
    tf = fmt.structure.tools
    assert tf.per_argument and tf.arg_cdata and tf.arg_values == "str"
    tool = {"type": "function", "function": {"name": "f", "description": "d é", "parameters": {
        "type": "object", "properties": {"s": {"type": "string"}}}}}
    agent = _agent_with_two_calls({"plain": "x y", "lt": "a<b", "amp": "R&D", "nl": "two\nlines", "n": 3,
                                   "l": ["<", None]}, "Let me look.", "It is 42.")
    real = _fixed_agent_in_three_engines(fmt, template, bos, eos, agent, tool)
    assert ('<param name="plain">x y</param><param name="lt"><![CDATA[a<b]]></param>'
            '<param name="amp"><![CDATA[R&D]]></param><param name="nl"><![CDATA[two\nlines]]></param>'
            "<param name=\"n\">3</param><param name=\"l\">['<', None]</param>") in real
    _random_per_argument_conversations_in_three_engines(fmt, template, bos, eos)


def test_lfm25_python_call_arguments():
    """LFM2.5 writes its calls in Python's call syntax, ``[f(s='x', n=3, o={"k": 1}), g()]``: each
    argument as ``key=value`` with ``, `` between them (``arg_sep``), a string in single quotes as
    given, an object as JSON and any other value as Python's ``str`` writes it (``arg_values:
    python_call``).  The format renders like the real template through transformers on fixed and
    random tool conversations, as do its HF target (through transformers) and its llama.cpp target
    (through llama.cpp's own engine)."""
    fmt, template, bos, eos = _exact_with_tools("llamacpp-LFM2.5-8B-A1B")
    tf = fmt.structure.tools
    assert (tf.arg_values, tf.arg_sep, tf.call_sep) == ("python_call", ", ", ", ")
    tool = {"type": "function", "function": {"name": "f", "description": "d é", "parameters": {
        "type": "object", "properties": {"s": {"type": "string"}}}}}
    agent = _agent_with_two_calls({"s": "x y", "q": "it's", "n": 3, "b": False, "z": None, "o": {"k": [1, None]},
                                   "l": ["a", {"k": 1}]}, "Let me look.", "It is 42.")
    real = _fixed_agent_in_three_engines(fmt, template, bos, eos, agent, tool)
    assert ("""Let me look.<|tool_call_start|>[f(s='x y', q='it's', n=3, b=False, z=None, o={"k": [1, null]}, """
            """l=['a', {'k': 1}]), g()]<|tool_call_end|>""") in real
    _random_per_argument_conversations_in_three_engines(fmt, template, bos, eos, wrap_calls=True)


@pytest.mark.parametrize("name", ["llamacpp-GigaChat3-10B-A1.8B", "llamacpp-GigaChat3.1-10B-A1.8B"])
def test_gigachat_typescript_tool_list_and_one_call_per_answer(name):
    """GigaChat 3 and 3.1 list the tools as TypeScript types in a ``function descriptions`` turn
    (``tool_layout: typescript``) and render only an answer's first call (``tool_calls[0]``): the
    format refuses a second call (``max_calls: 1``, a MessageError) where the template drops it
    silently.  Within that, the format renders like the real template through transformers on
    fixed and random tool conversations, as do its HF target (through transformers) and its
    llama.cpp target (through llama.cpp's own engine)."""
    from tmplc.convert.corpus import hf_render
    from tools.test_llamacpp_tools import TS_TOOL

    fmt, template, bos, eos = _exact_with_tools(name)
    tf = fmt.structure.tools
    assert (tf.tool_layout, tf.max_calls) == ("typescript", 1)
    two = _agent_with_two_calls({"s": "x y", "n": 3}, "Let me look.", "It is 42.")
    one = [two[0], {**two[1], "tool_calls": two[1]["tool_calls"][:1]}, two[2], two[4]]
    real = _fixed_agent_in_three_engines(fmt, template, bos, eos, one, TS_TOOL)
    assert "type book = (_: {\n  // the day\n  // format: \"date\"\n  when: Date," in real
    # the template drops the second call: the format refuses it instead
    dropped = hf_render(template, [two[0], two[1]], False, bos, eos, None)
    assert dropped == hf_render(template, [two[0], one[1]], False, bos, eos, None) and '"name": "g"' not in dropped
    with pytest.raises(tmplc.MessageError, match="at most 1 tool call"):
        fmt.render(two)
    _random_per_argument_conversations_in_three_engines(fmt, template, bos, eos, wrap_calls=True, fit=True)


@pytest.mark.parametrize("name", ["llamacpp-Apriel-1.6-15b-Thinker-fixed", "llamacpp-unsloth-Apriel-1.5"])
def test_apriel_python_str_tool_list_and_call_ids_after_the_arguments(name):
    """Apriel 1.5 and 1.6 list each tool as Python's ``str`` writes it (``tool | string``:
    ``tool_layout: python_str``) and write a call's id after its arguments (``{"name": ...,
    "arguments": ..., "id": ...}``: ``call_id_after``), except in the conversation's last message,
    whose calls render without ids (``last_call_ids: false``).  Apriel 1.5, with tools and no system
    message, renders the list in a block of its own (ending with its call instructions:
    ``list_block_suffix``) and then its usual system block.  The format renders like the real
    template through transformers on fixed and random tool conversations, as do its HF target
    (through transformers) and its llama.cpp target (through llama.cpp's own engine, where its
    Python-repr macro writes the tools as Python does)."""
    from tmplc.convert.corpus import hf_render

    fmt, template, bos, eos = _exact_with_tools(name)
    tf = fmt.structure.tools
    assert (tf.tool_layout, tf.call_id_after, tf.call_id_suffix, tf.last_call_ids) == ("python_str", True, '"', False)
    if "1.5" in name:
        block = "".join(p.value for p in tf.list_block_suffix)
        assert block.startswith("\nReturn all function calls as a list of json objects") and block.endswith("<|end|>\n")
        from tools.test_qwen3_tools_real import WEATHER

        alone = fmt.render([{"role": "user", "content": "q"}], tools=[WEATHER])
        assert alone == hf_render(template, [{"role": "user", "content": "q"}], False, bos, eos, [WEATHER])
        assert alone.count("<|system|>") == 2 and alone.index("<available_tools>") < alone.rindex("<|system|>")
    else:
        assert tf.list_block_suffix is None
    tool = {"type": "function", "function": {"name": "f", "description": "it's \"d\" é", "strict": True,
                                             "parameters": {"type": "object", "properties": {"s": {"type": "string"}}}}}
    agent = _agent_with_two_calls({"s": "x y", "n": None}, "Let me look.", "It is 42.")
    for c, cid in zip(agent[1]["tool_calls"], ("call_a", "call_b")):
        c["id"] = cid
    real = _fixed_agent_in_three_engines(fmt, template, bos, eos, agent, tool)
    assert """{'type': 'function', 'function': {'name': 'f', 'description': 'it\\'s "d" é', 'strict': True""" in real
    assert '[{"name": "f", "arguments": {"s": "x y", "n": null}, "id": "call_a"}, {"name": "g", "arguments": {}, ' \
           '"id": "call_b"}]</tool_calls>' in real
    last = fmt.render(agent[:2])  # the calls of the last message: no ids (which they need not have)
    assert '{"name": "g", "arguments": {}}]</tool_calls>' in last and "call_a" not in last
    assert fmt.render([agent[0], {**agent[1], "tool_calls": [{"type": "function", "function": {
        "name": "f", "arguments": {}}}]}]) == hf_render(template, [agent[0], {**agent[1], "tool_calls": [
            {"type": "function", "function": {"name": "f", "arguments": {}}}]}], False, bos, eos, None)
    _random_per_argument_conversations_in_three_engines(fmt, template, bos, eos, wrap_calls=True, ids=True)


def test_deepseek_v31_answers_beside_calls_and_after_results_render_as_given():
    """DeepSeek V3.1 keeps an answer's text after its first ``</think>``, except in an answer with
    tool calls (``call_answers: verbatim``) and in one right after a tool result, which also has no
    ``<｜Assistant｜>`` header (``answers_after_results: verbatim``,
    ``assistant_prefix_after_results: ""``); it renders no tool list.  The format renders like the
    real template through transformers on fixed and random tool conversations, as do its HF target
    (through transformers) and its llama.cpp target (through llama.cpp's own engine)."""
    from hypothesis import assume

    from tmplc.convert.corpus import hf_render
    from tools.test_llamacpp_tools import _has_float, _objects, check_batch

    fmt, template, bos, eos = _exact_with_tools("llamacpp-deepseek-ai-DeepSeek-V3.1")
    tf = fmt.structure.tools
    assert (tf.call_answers, tf.answers_after_results, tf.assistant_prefix_after_results) == ("verbatim", "verbatim", "")
    assert not tf.renders_list
    agent = _agent_with_two_calls({"s": "x y", "n": 3}, "<think>plan</think>Let me look.", "mulling</think>It is 42.") + [
        {"role": "user", "content": "and?"}, {"role": "assistant", "content": "a</think>b</think>c"}]
    cases = []
    for msgs in (agent, [{"role": "system", "content": "Be brief."}] + agent, agent[:4]):
        for gen in (False, True):
            real = hf_render(template, msgs, gen, bos, eos, None)
            assert fmt.render(msgs, gen) == real
            assert hf_render(fmt.to_jinja(), msgs, gen, bos, eos, None) == real
            cases.append((msgs, None, gen))
    check_batch(cases, fmt)
    real = hf_render(template, agent, False, bos, eos, None)
    assert "<think></think><think>plan</think>Let me look.<｜tool▁calls▁begin｜>" in real
    assert "<｜tool▁output▁end｜>mulling</think>It is 42.<｜end▁of▁sentence｜>" in real
    assert real.endswith("<｜Assistant｜><think></think>b</think>c<｜end▁of▁sentence｜>")
    with pytest.raises(tmplc.MessageError, match="tool list"):
        fmt.render(agent, tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}])

    @settings(max_examples=40)
    @given(tool_conversations(reasoning=False), st.booleans())
    def check(c, agp):  # random tool conversations without a tool list (it renders none)
        msgs = _wrapped_calls(_objects(c[0]))  # the template reads each call's function object
        # two answers in a row: the template's second has no header (its text part's own divergence)
        assume(not any(a["role"] == b["role"] == "assistant" for a, b in zip(msgs, msgs[1:])))
        real = hf_render(template, msgs, agp, bos, eos, None)
        assert fmt.render(msgs, agp) == real
        assert hf_render(fmt.to_jinja(), msgs, agp, bos, eos, None) == real
        if not _has_float([m.get("tool_calls") for m in msgs]):
            check_batch([(msgs, None, agp)], fmt)

    check()


def _exact_with_tools(name: str):
    """The corpus template ``name``'s conversion, which must be exact with tools: (its format, the
    template, its BOS and EOS)."""
    conv, template, bos, eos = converted(name)
    assert conv.tools == "exact", conv.tools_status
    return conv.format, template, bos, eos


def _agent_with_two_calls(args: dict, before: str, after: str) -> list[dict]:
    """A user question, an answer ``before`` with calls ``f(args)`` and ``g()``, their two results,
    and the answer ``after``."""
    calls = [{"type": "function", "function": {"name": "f", "arguments": args}},
             {"type": "function", "function": {"name": "g", "arguments": {}}}]
    return [{"role": "user", "content": "q"}, {"role": "assistant", "content": before, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "a", "content": "42"}, {"role": "tool", "tool_call_id": "b", "content": "43"},
            {"role": "assistant", "content": after}]


def _fixed_agent_in_three_engines(fmt, template, bos, eos, agent, tool) -> str:
    """``agent`` with and without a system message, with no tools, ``tool`` and it twice, with and
    without the generation prompt: the real template through transformers == ``fmt.render`` == its
    HF target through transformers == its llama.cpp target through llama.cpp's engine.  Returns
    the last real render."""
    from tmplc.convert.corpus import hf_render
    from tools.test_llamacpp_tools import check_batch

    cases = []
    for msgs in (agent, [{"role": "system", "content": "Be brief."}] + agent):
        for tools in (None, [tool], [tool, tool]):
            for gen in (False, True):
                real = hf_render(template, msgs, gen, bos, eos, tools)
                assert fmt.render(msgs, gen, tools=tools) == real
                assert hf_render(fmt.to_jinja(), msgs, gen, bos, eos, tools) == real
                cases.append((msgs, tools, gen))
    check_batch(cases, fmt)
    return real


def _wrapped_calls(msgs: list[dict]) -> list[dict]:
    """``msgs`` with every tool call as ``{"type": "function", "function": ...}`` (templates that
    read ``tool_call['function']`` raise on the bare function object, which tmplc also takes)."""
    return [{**m, "tool_calls": [c if "function" in c else {"type": "function", "function": c}
                                 for c in m["tool_calls"]]} if m.get("tool_calls") else m for m in msgs]


def _random_per_argument_conversations_in_three_engines(fmt, template, bos, eos, wrap_calls: bool = False,
                                                        fit: bool = False, ids: bool = False) -> None:
    """Random tool conversations (tests/tools' strategies; call arguments as objects, as a
    per-argument template needs; with ``wrap_calls``, each call in its ``function`` wrapper; with
    ``fit``, within what the format renders: ``fit_messages``; with ``ids``, each call with an id
    and no two user messages or answers without calls in a row, as the converter's verification
    conversations): the same equalities, in llama.cpp where no known divergence applies (floats;
    characters its Python-repr macro leaves raw)."""
    from hypothesis import assume

    from tmplc.convert.corpus import hf_render
    from tmplc.convert.tools import fit_messages
    from tools.test_llamacpp_tools import _has_float, _objects, _unescaped_in_llamacpp, check_batch

    @settings(max_examples=30)
    @given(tool_conversations(reasoning=False), st.booleans())
    def check(c, agp):
        msgs, tools = c
        msgs = _objects(msgs)
        if wrap_calls:
            msgs = _wrapped_calls(msgs)
        if fit:
            msgs = fit_messages(msgs, fmt.structure.tools)
        if ids:
            plain = [m["role"] for m in msgs if m["role"] == "user" or (m["role"] == "assistant" and not m.get("tool_calls"))]
            assume(all(a != b for a, b in zip(plain, plain[1:])))
            msgs = [{**m, "tool_calls": [{**tc, "id": f"call_{i}_{k}"} for k, tc in enumerate(m["tool_calls"])]}
                    if m.get("tool_calls") else m for i, m in enumerate(msgs)]
        real = hf_render(template, msgs, agp, bos, eos, tools)
        assert fmt.render(msgs, agp, tools=tools) == real
        assert hf_render(fmt.to_jinja(), msgs, agp, bos, eos, tools) == real
        calls = [c.get("function", c) for m in msgs for c in m.get("tool_calls") or []]
        values = [v for c in calls for v in c["arguments"].values()]
        listed = fmt.structure.tools.tool_layout == "python_str" and _unescaped_in_llamacpp(tools or [])
        if not (_has_float(calls) or _has_float(tools or []) or any(map(_unescaped_in_llamacpp, values)) or listed):
            check_batch([(msgs, tools, agp)], fmt)

    check()
