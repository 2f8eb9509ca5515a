"""Jinja import: exact conversions (real fixtures, every registry entry's own to_jinja output)
and precise refusals on hand-written templates."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from strategies import content_text, conversations, plain_text, reasoning_text
from conftest import load_tokenizer, tokenizer_dir
import tmplc
from tmplc import parse_spec, registry
from tmplc.convert import ConversionRefused, from_jinja, identify
from tmplc.ir import SpecialToken, Text
from tmplc.jinja_env import render_template

BOS_ = SpecialToken("BOS")


def _fixture_template(name: str) -> dict:
    return json.loads((tokenizer_dir(name) / "tokenizer_config.json").read_text(encoding="utf-8"))


# -- real fixtures ----------------------------------------------------------------------------

def test_gemma3_converts_exactly_and_is_the_registry_entry():
    cfg = _fixture_template("gemma3")
    fmt = from_jinja(cfg["chat_template"], bos_token=cfg["bos_token"], eos_token=cfg["eos_token"])
    assert fmt.to_spec() == ("{BOS}<start_of_turn>user\n{SYSTEM}\n\n{INPUT|trim}<end_of_turn>\n"
                             "<start_of_turn>model\n{OUTPUT|trim}<end_of_turn>\n"
                             "<start_of_turn>user\n{INPUT|trim}<end_of_turn>\n"
                             "<start_of_turn>model\n{OUTPUT|trim}<end_of_turn>\n")
    assert identify(fmt) == "gemma-3"


@settings(max_examples=40)
@given(conversations(system=None), st.booleans())
def test_gemma3_conversion_matches_transformers(msgs, gen):
    """Independent of the converter's own check: transformers renders the real template."""
    tok = load_tokenizer("gemma3")
    cfg = _fixture_template("gemma3")
    fmt = _gemma3_fmt()
    gen = gen and msgs[-1]["role"] == "user"
    want = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
    assert fmt.render(msgs, gen) == want
    assert tok.apply_chat_template(msgs, chat_template=fmt.to_jinja(), tokenize=False,
                                   add_generation_prompt=gen) == want
    assert cfg["chat_template"]


_CACHE: dict = {}


def _gemma3_fmt():
    if "g" not in _CACHE:
        cfg = _fixture_template("gemma3")
        _CACHE["g"] = from_jinja(cfg["chat_template"], bos_token=cfg["bos_token"], eos_token=cfg["eos_token"])
    return _CACHE["g"]


def test_llama3_fixture_is_refused_for_its_unconditional_generation_prompt():
    cfg = _fixture_template("llama3")
    with pytest.raises(ConversionRefused) as e:
        from_jinja(cfg["chat_template"], bos_token=cfg["bos_token"], eos_token=cfg["eos_token"])
    assert e.value.category == "generation_prompt"
    assert e.value.reason.startswith("ignores add_generation_prompt")
    assert "<|start_header_id|>assistant<|end_header_id|>" in e.value.reason


def _qwen3_fmt(**variables):
    key = ("qwen3",) + tuple(sorted(variables.items()))
    if key not in _CACHE:
        cfg = _fixture_template("qwen3")
        _CACHE[key] = from_jinja(cfg["chat_template"], bos_token=cfg.get("bos_token"), eos_token=cfg["eos_token"],
                                 **variables)
    return _CACHE[key]


def test_qwen3_fixture_converts_exactly_to_qwen3_thinking():
    """The real Qwen3 template (reasoning dropped from earlier answers, the final answer re-wrapped
    in a <think> block) converts, and is the registry's qwen3-thinking entry."""
    fmt = _qwen3_fmt()
    assert identify(fmt) == "qwen3-thinking"
    entry = registry["qwen3-thinking"]
    assert fmt.structure == entry.structure
    assert fmt.to_spec() == entry.to_spec()
    a = fmt.structure.assistant
    assert a.drop_think == "last_lstrip_nl" and a.prompt_only == ""
    assert a.final is not None and a.final.think is not None and a.final.think.always
    assert "{THINK|always}<think>\n{REASONING}\n</think>\n\n{/THINK}{OUTPUT|drop_think|lstrip_nl}" in fmt.to_spec()


def test_qwen3_fixture_with_thinking_disabled_converts_with_the_closed_think_block_in_the_prompt():
    fmt = _qwen3_fmt(enable_thinking=False)
    entry = registry["qwen3-thinking"]
    # the same layout and answer rules; the generation prompt closes an empty think block
    assert fmt.structure.assistant.prompt_only == "<think>\n\n</think>\n\n"
    assert fmt.structure == replace(entry.structure, assistant=replace(
        entry.structure.assistant, prompt_only="<think>\n\n</think>\n\n"))
    assert "<|im_start|>assistant\n{PROMPT=<think>\n\n</think>\n\n}{OUTPUT|drop_think_lstrip_nl}" in fmt.to_spec()
    assert identify(fmt) is None  # no registry entry has that prompt
    assert "enable_thinking=False" in fmt.meta.notes
    q = [{"role": "user", "content": "q"}]
    assert fmt.render(q, True) == "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert [c.code for c in tmplc.lint.caveats(fmt)] == ["prompt-not-in-training", "reasoning-dropped"]


# answers with reasoning: newlines around <think> and </think>, several </think>, none at all
qwen3_conversations = conversations(text=st.one_of(reasoning_text(), reasoning_text(), content_text), system=None)


@settings(max_examples=40)
@given(qwen3_conversations, st.booleans())
def test_qwen3_conversion_matches_transformers(msgs, gen):
    """Independent of the converter's own check: transformers renders the real Qwen3 template
    (the fixture tokenizer's chat_template), tmplc's format and its to_jinja() alike."""
    tok = load_tokenizer("qwen3")
    fmt = _qwen3_fmt()
    want = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
    assert fmt.render(msgs, gen) == want
    assert tok.apply_chat_template(msgs, chat_template=fmt.to_jinja(), tokenize=False,
                                   add_generation_prompt=gen) == want


@settings(max_examples=25)
@given(qwen3_conversations, st.booleans())
def test_qwen3_conversion_with_thinking_disabled_matches_transformers(msgs, gen):
    tok = load_tokenizer("qwen3")
    fmt = _qwen3_fmt(enable_thinking=False)
    want = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen, enable_thinking=False)
    assert fmt.render(msgs, gen) == want
    assert tok.apply_chat_template(msgs, chat_template=fmt.to_jinja(), tokenize=False,
                                   add_generation_prompt=gen) == want
    # only the generation prompt differs from the default (enable_thinking unset)
    assert fmt.render(msgs) == _qwen3_fmt().render(msgs)


def test_qwen3_conversion_hand_checked():
    tok = load_tokenizer("qwen3")
    fmt = _qwen3_fmt()
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "<think>\nr1\n</think>\n\na1"},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "\n<think>\n\nr2\n\n</think>\n</think>\n\na2"}]
    want = ("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\na1<|im_end|>\n"
            "<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n<think>\nr2\n</think>\n\na2<|im_end|>\n")
    assert tok.apply_chat_template(msgs, tokenize=False) == fmt.render(msgs) == want


# -- round trip: target -> import -> IR identity ----------------------------------------------

@pytest.mark.parametrize("name", sorted(registry))
def test_registry_to_jinja_round_trip(name):
    fmt = registry[name]
    back = from_jinja(fmt.to_jinja(), bos_token=fmt.meta.bos_token, eos_token=fmt.meta.eos_token, n_random=60)
    if fmt.structure.tools is None:
        assert back.structure == fmt.structure
        assert identify(back) is not None
        return
    # a tool format: from_jinja recovers the text layout (alternating text conversations cannot tell
    # Qwen3's after_user_reasoning final answers from the last message's); convert_jinja probes
    # the tool part too and gives the whole format back where ToolFormat's reading covers it
    from dataclasses import replace

    from tmplc.convert import convert_jinja
    from tmplc.spec.tools import text_layout

    assert back.structure == replace(text_layout(fmt.structure), final_scope="last")
    conv = convert_jinja(fmt.to_jinja(), bos_token=fmt.meta.bos_token, eos_token=fmt.meta.eos_token, n_random=60)
    # every tool entry, first-user placements included (where tmplc's template raises on content
    # beside a call, as calls_alone says, the converter reads calls_alone too)
    assert conv.tools == "exact", conv.tools_status
    assert conv.format.structure == fmt.structure
    assert identify(conv.format) == name


def _generated_convs():
    return st.lists(conversations(max_exchanges=3), min_size=3, max_size=3)


def _chat_formats():
    from strategies import chat_formats, structures

    return chat_formats(structures(reasoning=False))


# issue 11.1, found by this test under the dev profile: an unpadded day (%-d) came back as %d
# (both old probe days had two-digit days, so verification could not tell them apart)
@example(fmt=tmplc.parse_spec("{BOS}{DATE=%-d.%m.%y}|{INPUT}\n>{OUTPUT}</s>{DATE=%-d.%m.%y}|{INPUT}\n>{OUTPUT}</s>",
                              bos_token="<s>", eos_token="</s>"),
         convs=[[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]] * 3)
@settings(max_examples=25)
@given(fmt=_chat_formats(), convs=_generated_convs())
def test_generated_formats_round_trip(fmt, convs):
    from tmplc.targets.spec import to_spec
    from tmplc.errors import SpecError

    try:
        to_spec(fmt.structure)  # only layouts a spec can express
    except SpecError:
        return
    try:
        back = from_jinja(fmt.to_jinja(), bos_token="<s>", eos_token="</s>", n_random=40)
    except ConversionRefused as e:
        # A refusal must be explained; it happens only for the documented gaps (converter_gap).
        if converter_gap(fmt) is None:
            pytest.fail(f"refused its own target: {e.reason}\n{fmt.to_spec()!r}")
        assert e.reason
        return
    assert back.render([{"role": "user", "content": " a "}, {"role": "assistant", "content": " b "}], date=DAY) == \
        fmt.render([{"role": "user", "content": " a "}, {"role": "assistant", "content": " b "}], date=DAY)
    _renders_alike(back, fmt, convs)


@pytest.mark.parametrize("after", ["", "{PROMPT|skip_after_answer}", "{PROMPT|history_after_answer}"])
def test_final_suffix_round_trip(after):
    """Found by test_generated_formats_round_trip: an empty earlier answer of a layout whose last
    answer ends differently is its own empty answer, not an {EMPTY} turn; and what the generation
    prompt does after an answer converts back."""
    spec = (f"U:{{INPUT}}{{SPLIT}}A:{after}{{OUTPUT}}\n\n\n{{BOS}}{{BOS}}{{SPLIT}}U:{{INPUT}}{{SPLIT}}A:{after}"
            "{OUTPUT}\n|>{BOS}{BOS}")
    fmt = tmplc.parse_spec(spec, bos_token="<s>", eos_token="</s>")
    back = from_jinja(fmt.to_jinja(), bos_token="<s>", eos_token="</s>", n_random=40)
    assert back.structure == fmt.structure and back.to_spec() == spec


DAY = __import__("datetime").date(2027, 3, 7)  # single-digit day and month: %d and %-d differ


def _renders_alike(back, fmt, convs):
    for msgs in convs:
        if fmt.structure.system is None and msgs[0]["role"] == "system":
            msgs = msgs[1:]
        for gen in (False, True):
            try:
                want = fmt.render(msgs, gen, date=DAY)
            except tmplc.MessageError:
                continue
            assert back.render(msgs, gen, date=DAY) == want, (fmt.to_spec(), back.to_spec(), msgs, gen)


def converter_gap(fmt) -> str | None:
    """The answer rules whose templates the converter refuses (even as its own target): see
    test_converter_gaps_for_answer_rules."""
    a = fmt.structure.assistant
    if fmt.structure.final_scope == "last_answer" and a.final_suffix is not None:
        # the converter reads |final_last_answer off the answer rules (LFM2.5), not off an ending
        return "the last answer's own ending before a user message (|final_last_answer with a final_suffix)"
    if a.rule.wraps_nonempty or (a.final is not None and (a.final.wraps_nonempty or (
            a.final.think is not None and a.final.think.absent is not None))):
        # read where real templates have them: text after a non-empty answer off the suffix's
        # whitespace (Laguna-XS), before it off a lead that hides the reasoning (GLM-4.6)
        return "text around a non-empty answer or a final block's {ELSE} in a generated layout"
    if a.think is not None or a.empty is not None or fmt.structure.closing:
        # the converter reads these in the shapes real templates have (an always-rendered block
        # that was the lead, an empty turn off one probe, a closing where the prompt goes its own
        # way), not every generated one
        return "a generated reasoning block on every answer, {EMPTY} turn or {END} closing"
    return None


@settings(max_examples=25)
@given(st.data())
def test_generated_reasoning_formats_round_trip(data):
    """Layouts with answer rules (|drop_think..., |lstrip_nl, |trim_first, the final answer's own
    rule and {THINK} block) convert back from their own Jinja, except for the documented gaps;
    what converts renders like the layout on answers with reasoning."""
    from strategies import chat_formats, structures

    fmt = data.draw(chat_formats(structures(dates=False, reasoning=True)))
    try:
        back = from_jinja(fmt.to_jinja(), bos_token="<s>", eos_token="</s>", n_random=40)
    except ConversionRefused as e:
        assert converter_gap(fmt) is not None, f"refused its own target: {e.reason}\n{fmt.to_spec()!r}"
        assert e.reason
        return
    convs = data.draw(st.lists(conversations(text=st.one_of(reasoning_text(), content_text), max_exchanges=3),
                               min_size=4, max_size=4))
    _renders_alike(back, fmt, convs)


# Formerly converter gaps (refused): the final answer's own trim, answer rules with a final_suffix,
# a block before a final answer that keeps its reasoning; each converts back exactly now.
@pytest.mark.parametrize("spec", [
    # the final answer trimmed (or not) unlike the earlier ones
    "U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT|trim}\n",
    "U:{INPUT}\nA:{OUTPUT|drop_think|trim}\nU:{INPUT}\nA:{OUTPUT|drop_think}\n",
    "U:{INPUT}\nA:{OUTPUT|rstrip}\nU:{INPUT}\nA:{OUTPUT|lstrip|lstrip_nl}\n",
    # answer rules in a format whose last answer ends differently
    "U:{INPUT}\nA:{OUTPUT|drop_think}[\n{SPLIT}U:{INPUT}\nA:{OUTPUT|drop_think}:",
    "U:{INPUT}{SPLIT}A:{OUTPUT}<end>{SPLIT}U:{INPUT}{SPLIT}A:{OUTPUT|drop_think}<ret>",
    # a block before a final answer that keeps its reasoning
    "U:{INPUT}\nA:{OUTPUT|drop_think}\nU:{INPUT}\nA:{THINK|always}<think>{REASONING}</think>{/THINK}{OUTPUT}\n",
    "U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{THINK}<t>{REASONING}</t>{/THINK}{OUTPUT|trim|trim_first}\n",
    # after an answer, the prompt follows it rendered as an earlier one: told apart from the
    # final answer's rule by the answer probes rendered with the prompt (found by the generated tests)
    "U:{INPUT}\nA:{PROMPT|history_after_answer}{OUTPUT|drop_think_first|lstrip_nl}</s>\nU:{INPUT}\n"
    "A:{PROMPT|history_after_answer}{OUTPUT|rstrip|drop_think|lstrip_nl}</s>\n",
    # the last answer is final before a user message too (LFM2.5-Instruct)
    "U:{INPUT}\nA:{OUTPUT|drop_think}</s>\nU:{INPUT}\nA:{OUTPUT|final_last_answer}</s>\n",
])
def test_final_answer_rules_round_trip(spec):
    fmt = parse_spec(spec)
    assert converter_gap(fmt) is None
    back = from_jinja(fmt.to_jinja())
    assert back.structure == fmt.structure and back.to_spec() == fmt.to_spec()


# -- hand-written templates: precise refusals -------------------------------------------------

CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_plain_chatml_converts():
    fmt = from_jinja(CHATML)
    assert identify(fmt) == "chatml"
    assert fmt.structure.system is not None and fmt.structure.system.default is None


def test_default_system_message_is_recovered():
    t = ("{% if messages[0].role != 'system' %}<|im_start|>system\nBe {nice}.<|im_end|>\n{% endif %}" + CHATML)
    fmt = from_jinja(t)
    assert fmt.default_system == "Be {nice}."


GLM_LIKE = ("[gMASK]<sop>{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def test_fixed_text_before_the_system_block_becomes_the_preamble():
    fmt = from_jinja(GLM_LIKE)
    st = fmt.structure
    assert st.preamble == (Text("[gMASK]<sop>"),) and st.system.placement == "standalone"
    assert st.system.prefix == (Text("<|system|>\n"),) and st.system.default is None
    assert fmt.to_spec() == ("[gMASK]<sop>{SPLIT}<|system|>\n{SYSTEM}<|user|>\n{INPUT}{SPLIT}<|assistant|>\n"
                             "{OUTPUT}<|user|>\n{INPUT}{SPLIT}<|assistant|>\n{OUTPUT}")
    assert parse_spec(fmt.to_spec()).structure == st


def test_fixed_system_turn_before_the_optional_one_becomes_the_preamble():
    """A template that always renders its own system turn, then the user's system turn if any
    (functionary, Cohere): the fixed turn is the preamble, the default is None."""
    t = ("{{ bos_token }}<|im_start|>system\nRules {{ '{x}' }}.<|im_end|>\n" + CHATML)
    fmt = from_jinja(t, bos_token="<s>")
    st = fmt.structure
    assert st.preamble == (BOS_, Text("<|im_start|>system\nRules {x}.<|im_end|>\n"))
    assert st.system.prefix == (Text("<|im_start|>system\n"),) and st.system.default is None
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert fmt.render(msgs) == render_template(t, msgs, bos_token="<s>")
    assert fmt.to_spec().startswith("{BOS}<|im_start|>system\nRules {{x}}.<|im_end|>\n{SPLIT}<|im_start|>system\n")


def test_fixed_text_with_a_default_system_message_keeps_the_block_as_recovered():
    """With a default the block is always rendered, so fixed text before it may stay in the
    block's prefix (both layouts render every conversation the same): the block as recovered
    from the render with a system message is preferred."""
    t = ("<pre>{% if messages[0].role != 'system' %}<|im_start|>system\nBe nice.<|im_end|>\n{% endif %}"
         + CHATML)
    st = from_jinja(t).structure
    assert st.preamble == () and st.system.prefix == (Text("<pre><|im_start|>system\n"),)
    assert st.system.default == "Be nice."


def test_text_only_without_a_system_message_becomes_nosystem_text():
    t = ("{% if messages[0].role != 'system' %}[gMASK]{% endif %}" + CHATML)
    fmt = from_jinja(t)
    assert fmt.structure.system.absent == (Text("[gMASK]"),)
    assert fmt.to_spec().startswith("{NOSYSTEM}[gMASK]{/NOSYSTEM}<|im_start|>system\n{SYSTEM}")


def test_trim_per_role_is_recovered():
    t = ("{% for m in messages %}[{{ m.role }}]{% if m.role == 'user' %}{{ m.content | trim }}"
         "{% else %}{{ m.content }}{% endif %}\n{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}")
    fmt = from_jinja(t)
    assert fmt.structure.user.trim and not fmt.structure.assistant.trim and not fmt.structure.system.trim


@pytest.mark.parametrize("template, category, words", [
    ("{{ strftime_now('day %j') }}" + CHATML, "date", "injects today's date (strftime_now) in a form"),
    ("{% for m in messages %}{{ m.role }}: {{ m.content.lstrip(' ') }}\n{% endfor %}", "content",
     "trims system message content"),
    ("{% for m in messages %}{{ m.role }}: {{ m.content.strip('\\n') }}\n{% endfor %}"
     "{% if add_generation_prompt %}assistant: {% endif %}", "content", "transforms message content"),
    ("{% for t in tools %}{{ t }}{% endfor %}" + CHATML, "tools", "depends on tools"),
    ("{{ raise_exception('no') }}", "raises", "raises on a plain user/assistant conversation"),
    ("{% for m in messages %}{% if m.role != 'system' %}{{ m.role }}: {{ m.content }}\n{% endif %}{% endfor %}"
     "{% if add_generation_prompt %}assistant: {% endif %}", "system", "ignores the system message"),
    ("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}assistant: ", "generation_prompt",
     "ignores add_generation_prompt"),
    ("{% for m in messages %}{{ m.role }} {{ loop.index }}: {{ m.content }}\n{% endfor %}"
     "{% if add_generation_prompt %}assistant: {% endif %}", "turns", "different text"),
    ("{% for m in messages %}{{ m.role }}: {{ m.content | upper }}\n{% endfor %}"
     "{% if add_generation_prompt %}assistant: {% endif %}", "content", "does not render"),
    ("{% for m in messages %}{{ m.role }}: {{ m.content | replace('<', '&lt;') }}\n{% endfor %}"
     "{% if add_generation_prompt %}assistant: {% endif %}", "content", "transforms message content"),
    ("{% for m in messages %}{% if m.role == 'system' and m.content == ' ' %}{% else %}<{{ m.role }}>"
     "{{ m.content }}</{{ m.role }}>{% endif %}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
     "system", "treats a system message with content ' ' as no system message"),
    ("{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' %}{{ m.content.split('</think>')[0] }}"
     "{% else %}{{ m.content }}{% endif %}</{{ m.role }}>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
     "content", "transforms message content"),
    ("{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
     "{% if add_generation_prompt %}assistant: {% endif %}", "tokens", "renders bos_token but no bos_token"),
    ("{% if %}", "syntax", "does not parse"),
])
def test_refusal_reasons(template, category, words):
    with pytest.raises(ConversionRefused) as e:
        from_jinja(template)
    assert e.value.category == category, e.value.reason
    assert words in e.value.reason


def test_system_role_raise_converts_to_a_format_without_system():
    t = ("{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}"
         "{% endif %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}"
         "{% if add_generation_prompt %}<assistant>{% endif %}")
    fmt = from_jinja(t)
    assert fmt.structure.system is None
    assert "System role not supported" in fmt.meta.notes


def test_explicit_date_variable_makes_a_date_template_convertible():
    t = ("{% if date_string is not defined %}{% set date_string = strftime_now('%d %b %Y') %}{% endif %}"
         "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.role == 'user' %}[{{ date_string }}] "
         "{% endif %}{{ m.content }}<|im_end|>\n{% endfor %}"
         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    import datetime as dt
    from tmplc.ir import DateToken

    dated = from_jinja(t)  # strftime_now: the date is a variable of the format, in every user turn
    assert dated.structure.user.prefix == (Text("<|im_start|>user\n["), DateToken("%d %b %Y"), Text("] "))
    assert dated.render([{"role": "user", "content": "x"}], date=dt.date(2025, 2, 3)) == \
        "<|im_start|>user\n[03 Feb 2025] x<|im_end|>\n"
    fmt = from_jinja(t, date_string="26 Jul 2024")  # a date passed explicitly is fixed text
    assert fmt.render([{"role": "user", "content": "x"}]) == "<|im_start|>user\n[26 Jul 2024] x<|im_end|>\n"
    assert "date_string='26 Jul 2024'" in fmt.meta.notes


def test_user_assistant_boundary_is_observed_not_guessed():
    # no newline, no shared ending: the spec rules alone would call this ambiguous
    t = ("{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}<U>{{ m.content }}</U>"
         "{% else %}<A>{{ m.content }}</A>{% endif %}{% endfor %}{% if add_generation_prompt %}<A>{% endif %}")
    fmt = from_jinja(t, bos_token="<s>")
    assert fmt.structure.user.suffix[0].value == "</U>"
    assert fmt.structure.assistant.prefix[0].value == "<A>"


@settings(max_examples=30)
@given(conversations(text=plain_text, system=False))
def test_converted_format_renders_like_the_sandbox(msgs):
    fmt = from_jinja(CHATML, n_random=20)
    gen = msgs[-1]["role"] == "user"
    assert fmt.render(msgs, gen) == render_template(CHATML, msgs, add_generation_prompt=gen)


def test_parse_spec_formats_with_split_and_first_user_system_round_trip():
    fmt = parse_spec("{BOS}[INST] <<SYS>>\n{SYSTEM}\n<</SYS>>\n\n{INPUT} [/INST]{SPLIT} {OUTPUT} {EOS}"
                     "{BOS}[INST] {INPUT} [/INST]{SPLIT} {OUTPUT} {EOS}", bos_token="<s>", eos_token="</s>")
    back = from_jinja(fmt.to_jinja(), bos_token="<s>", eos_token="</s>")
    assert back.structure == fmt.structure


# -- the assistant lead: a generation prompt that stops before the history's opening text -----

MISTRAL_V3_STYLE = (
    "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content }}[/INST]"
    "{% elif m.role == 'assistant' %} {{ m.content | trim }}{{ eos_token }}"
    "{% else %}{{ raise_exception('only user and assistant roles are supported') }}{% endif %}{% endfor %}")


def test_template_without_generation_prompt_converts_to_a_lead():
    fmt = from_jinja(MISTRAL_V3_STYLE, bos_token="<s>", eos_token="</s>")
    st_ = fmt.structure
    assert st_.user.suffix == (Text("[/INST]"),)
    assert st_.assistant.prefix == ()
    assert st_.assistant.lead == (Text(" "),)
    assert st_.assistant.trim
    assert fmt.to_spec() == ("{BOS}[INST] {INPUT}[/INST]{SPLIT}{REPLY} {OUTPUT|trim}{EOS}"
                             "[INST] {INPUT}[/INST]{SPLIT}{REPLY} {OUTPUT|trim}{EOS}")
    msgs = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    assert fmt.render(msgs) == "<s>[INST] x[/INST] y</s>"
    assert fmt.render(msgs[:1], True) == fmt.render(msgs[:1]) == "<s>[INST] x[/INST]"


VICUNA_STYLE = (
    "{{ bos_token }}{% if messages[0].role == 'system' %}{{ messages[0].content }} {% endif %}"
    "{% for m in messages %}{% if m.role == 'user' %}USER: {{ m.content }} "
    "{% elif m.role == 'assistant' %}ASSISTANT: {{ m.content }}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def test_generation_prompt_that_is_a_prefix_of_the_history_turn_converts_to_a_lead():
    fmt = from_jinja(VICUNA_STYLE, bos_token="<s>", eos_token="</s>")
    st_ = fmt.structure
    assert st_.user.suffix == (Text(" "),)
    assert st_.assistant.prefix == (Text("ASSISTANT:"),)
    assert st_.assistant.lead == (Text(" "),)
    msgs = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    assert fmt.render(msgs) == "<s>USER: x ASSISTANT: y</s>"
    assert fmt.render(msgs[:1], True) == "<s>USER: x ASSISTANT:"
    segs = fmt.segments(msgs)
    assert [(s.text, s.trainable) for s in segs if s.role == "assistant"] == [
        ("ASSISTANT:", False), (" ", True), ("y", True), ("</s>", True)]


def test_generation_prompt_that_goes_on_past_the_history_turn_gets_prompt_only_text():
    t = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
         "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n\n</think>\n\n{% endif %}")
    fmt = from_jinja(t)
    assert fmt.structure.assistant.prefix == (Text("<|im_start|>assistant\n"),)
    assert fmt.structure.assistant.prompt_only == "<think>\n\n</think>\n\n"
    assert fmt.render([{"role": "user", "content": "q"}], True) == \
        "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def test_generation_prompt_that_differs_from_the_history_is_refused():
    t2 = ("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
          "{% if add_generation_prompt %}bot:{% endif %}")
    with pytest.raises(ConversionRefused) as e:
        from_jinja(t2)
    assert e.value.category == "generation_prompt", e.value.reason
    assert "'bot:'" in e.value.reason


def test_template_always_appending_the_assistant_header_stays_refused():
    # base Llama 3: the header follows every message, add_generation_prompt or not
    t = ("{% for m in messages %}<{{ m.role }}>\n{{ m.content }}<eot>{% endfor %}<assistant>\n")
    with pytest.raises(ConversionRefused) as e:
        from_jinja(t)
    assert e.value.category == "generation_prompt"
    assert e.value.reason.startswith("ignores add_generation_prompt")


@pytest.mark.parametrize("name", ["llama-2", "mistral-v1", "mistral-v3", "mistral-v7", "vicuna", "openchat",
                                  "starling", "deepseek-v2"])
def test_registry_leads_are_recovered(name):
    fmt = registry[name]
    assert fmt.structure.assistant.lead
    back = from_jinja(fmt.to_jinja(), bos_token=fmt.meta.bos_token, eos_token=fmt.meta.eos_token, n_random=30)
    assert back.structure.assistant.lead == fmt.structure.assistant.lead
    assert back.structure == fmt.structure


def test_lstrip_and_rstrip_are_recovered():
    t = ("{% for m in messages %}[{{ m.role }}]{% if m.role == 'user' %}{{ m.content.lstrip() }}"
         "{% elif m.role == 'assistant' %}{{ m.content.rstrip() }}{% else %}{{ m.content }}{% endif %}\n{% endfor %}"
         "{% if add_generation_prompt %}[assistant]{% endif %}")
    fmt = from_jinja(t)
    st = fmt.structure
    assert (st.user.trim, st.user.trim_side) == (True, "left")
    assert (st.assistant.trim, st.assistant.trim_side) == (True, "right")
    assert not st.system.trim
    msgs = [{"role": "user", "content": "\u3000 q \n"}, {"role": "assistant", "content": "\t a \u00a0"}]
    assert fmt.render(msgs) == "[user]q \n[assistant]\t a"  # (HF's trim_blocks eats the newlines)


def test_empty_system_message_counted_as_none_is_recovered():
    t = ("{% set ns = namespace(sys='') %}{% if messages[0].role == 'system' %}{% set ns.sys = messages[0].content %}"
         "{% endif %}{% if ns.sys %}<sys>{{ ns.sys }}</sys>\n{% endif %}{% for m in messages %}"
         "{% if m.role != 'system' %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>\n{% endif %}{% endfor %}"
         "{% if add_generation_prompt %}<assistant>{% endif %}")
    fmt = from_jinja(t)
    assert fmt.structure.system.skip_empty and fmt.structure.system.default is None
    assert "{SYSTEM|nonempty}" in fmt.to_spec()
    assert fmt.render([{"role": "system", "content": ""}, {"role": "user", "content": "q"}]) == "<user>q</user>\n"


R1_LIKE = ("{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}"
           "{% elif m.role == 'user' %}<|User|>{{ m.content }}"
           "{% elif m.role == 'assistant' %}{% set c = m.content %}{% if '</think>' in c %}"
           "{% set c = c.split('</think>')[-1] %}{% endif %}<|Assistant|>{{ c }}<|eos|>{% endif %}{% endfor %}"
           "{% if add_generation_prompt %}<|Assistant|><think>\n{% endif %}")


def test_reasoning_template_prompt_only_and_drop_think():
    fmt = from_jinja(R1_LIKE, bos_token="<s>")
    a = fmt.structure.assistant
    assert a.prompt_only == "<think>\n" and a.drop_think == "last" and a.lead == ()
    assert "<|Assistant|>{PROMPT=<think>\n}{OUTPUT|drop_think}" in fmt.to_spec()
    q = [{"role": "user", "content": "q"}]
    assert fmt.render(q, add_generation_prompt=True) == "<s><|User|>q<|Assistant|><think>\n"
    assert fmt.render(q + [{"role": "assistant", "content": "<think>r</think>x</think>y"}]) == \
        "<s><|User|>q<|Assistant|>y<|eos|>"


def test_drop_think_first_is_told_from_last():
    t = R1_LIKE.replace("c.split('</think>')[-1]", "c.split('</think>', 1)[1]")
    fmt = from_jinja(t, bos_token="<s>")
    assert fmt.structure.assistant.drop_think == "first"
    assert fmt.render([{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>r</think>x</think>y"}]) \
        == "<s><|User|>q<|Assistant|>x</think>y<|eos|>"


def test_prompt_that_diverges_inside_the_history_gives_lead_and_prompt_only():
    # GLM-4.7-like: the prompt opens <think>, the history shows the answer after </think>
    t = ("{% for m in messages %}{% if m.role == 'system' %}<|system|>{{ m.content }}{% elif m.role == 'user' %}"
         "<|user|>{{ m.content }}{% elif m.role == 'assistant' %}<|assistant|></think>{{ m.content }}{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|><think>"
         "{% endif %}")
    fmt = from_jinja(t)
    a = fmt.structure.assistant
    assert (a.prefix, a.lead, a.prompt_only) == ((Text("<|assistant|>"),), (Text("</think>"),), "<think>")


LLAMA32_LIKE = ("{{ bos_token }}{% if messages[0].role == 'system' %}{% set sys = messages[0].content %}"
                "{% else %}{% set sys = '' %}{% endif %}<|start_header_id|>system<|end_header_id|>\n\n"
                "Today Date: {{ strftime_now('%d %b %Y') }}\n\n{{ sys }}<|eot_id|>{% for m in messages %}"
                "{% if m.role != 'system' %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content }}"
                "<|eot_id|>{% endif %}{% endfor %}{% if add_generation_prompt %}"
                "<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")


def test_the_date_becomes_an_explicit_variable():
    import datetime as dt

    fmt = from_jinja(LLAMA32_LIKE, bos_token="<s>")
    assert fmt.structure.dated
    assert "Today Date: {DATE=%d %b %Y}\n\n{SYSTEM=}" in fmt.to_spec()
    msgs = [{"role": "user", "content": "q"}]
    d = dt.date(2024, 7, 26)
    expected = ("<s><|start_header_id|>system<|end_header_id|>\n\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
                "<|start_header_id|>user<|end_header_id|>\n\nq<|eot_id|>")
    assert fmt.render(msgs, date=d) == expected
    assert fmt.with_date(d).render(msgs) == expected and not fmt.with_date(d).structure.dated
    # the HF target asks HF's strftime_now, as the original does: equal on any day
    for day in (d, dt.date(2031, 12, 3)):
        assert render_template(fmt.to_jinja(), msgs, bos_token="<s>", today=day) == \
            render_template(LLAMA32_LIKE, msgs, bos_token="<s>", today=day) == fmt.render(msgs, date=day)


def test_a_system_turn_that_a_system_message_extends_becomes_nosystem_text():
    # Spark-like: a fixed system prompt, extended by the system message when there is one
    t = ("{{ bos_token }}<|System|>\nyou are helpful.{% if messages[0].role == 'system' %}\n\n"
         "{{ messages[0].content }}{% endif %}{{ eos_token }}{% for m in messages %}{% if m.role == 'user' %}"
         "<|User|>{{ m.content }}{{ eos_token }}{% elif m.role == 'assistant' %}<|Bot|>{{ m.content }}{{ eos_token }}"
         "{% endif %}{% endfor %}{% if add_generation_prompt %}<|Bot|>{% endif %}")
    fmt = from_jinja(t, bos_token="<s>", eos_token="</s>")
    assert fmt.structure.system.absent == (Text("<|System|>\nyou are helpful."), SpecialToken("EOS"))
    assert "{NOSYSTEM}<|System|>\nyou are helpful.{EOS}{/NOSYSTEM}" in fmt.to_spec()


def test_the_date_in_a_default_system_turn_becomes_nosystem_text_with_a_date():
    import datetime as dt
    from tmplc.ir import DateToken

    t = ("{% if messages[0].role == 'system' %}<|system|>{{ messages[0].content }}<|end|>{% else %}"
         "<|system|>Today's Date: {{ strftime_now('%B %d, %Y') }}. You are Granite.<|end|>{% endif %}"
         "{% for m in messages %}{% if m.role != 'system' %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endif %}"
         "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    fmt = from_jinja(t)
    assert fmt.structure.system.absent == (Text("<|system|>Today's Date: "), DateToken("%B %d, %Y"),
                                           Text(". You are Granite.<|end|>"))
    q = [{"role": "user", "content": "q"}]
    for day in (dt.date(2024, 7, 26), dt.date(2031, 1, 2)):
        assert fmt.render(q, date=day) == render_template(t, q, today=day)


def test_a_last_answer_that_ends_differently_gets_a_final_suffix():
    # gpt-oss-like: <|end|> between turns, <|return|> after the last answer
    t = ("{% for m in messages %}<|start|>{{ m.role }}<|message|>{{ m.content }}"
         "{% if m.role == 'assistant' and loop.last %}<|return|>{% else %}<|end|>{% endif %}{% endfor %}"
         "{% if add_generation_prompt %}<|start|>assistant<|message|>{% endif %}")
    fmt = from_jinja(t)
    a = fmt.structure.assistant
    assert (a.suffix, a.final_suffix) == ((Text("<|end|>"),), (Text("<|return|>"),))
    assert fmt.structure.user.prefix == (Text("<|start|>user<|message|>"),)
    # an open last turn (Apertus-like) is converted too, and reported
    t2 = t.replace("<|return|>", "")
    fmt2 = from_jinja(t2)
    assert fmt2.structure.assistant.final_suffix == ()
    assert [c.code for c in tmplc.lint.caveats(fmt2)] == ["last-turn-open"]


def test_an_empty_system_message_is_judged_against_no_system_message_before_the_answer_rules():
    """Regression (found by test_generated_reasoning_formats_round_trip): whether an empty system
    message counts as none is read before the answer rules are, so the layout then renders the
    final answer's block differently from the template; the reading compares what an empty
    system message changes against no system message, which the answer rules do not touch."""
    spec = ("\n\n\n\nU:\n\n\n\n<<S>>\n\n\n\n{SYSTEM|nonempty=\x95\U000d3bdfV}\n\n{INPUT}\n\n\n\nA:{REPLY}\n\n\n\t"
            "{OUTPUT}</s>\n\n\n{SPLIT}U:\n\n\n\n{INPUT}\n\n\n\nA:{REPLY}\n\n\n\t{THINK|always}{REASONING}[{/THINK}"
            "{OUTPUT|drop_think|lstrip_nl}\n\n\n\n")
    fmt = tmplc.parse_spec(spec, bos_token="<s>", eos_token="</s>")
    back = from_jinja(fmt.to_jinja(), bos_token="<s>", eos_token="</s>", n_random=40)
    assert back.structure.system == fmt.structure.system and back.structure.system.skip_empty


def test_minimax_m1_system_message_blank_or_empty_renders_nothing_not_the_default():
    """MiniMax-M1's template renders its default system message only without a system message;
    one whose content trims to "" renders no block at all (``{SYSTEM|trim|nonblank|empty_omitted}``),
    and ``<begin_of_document>`` before it is the preamble (only the empty message shows where the
    block starts).  The format renders like the real template through transformers, and so does
    its HF target; the spec writes the filters back."""
    from convert.test_convert_tools import converted
    from tmplc.convert.corpus import hf_render

    conv, template, bos, eos = converted("llamacpp-MiniMax-M1")
    fmt = conv.format
    sb = fmt.structure.system
    assert sb.skip_empty and sb.empty_after_trim and sb.empty_omitted and sb.default
    assert "{SYSTEM|trim|nonblank|empty_omitted=" in fmt.to_spec()
    assert tmplc.parse_spec(fmt.to_spec(), bos_token=bos, eos_token=eos).structure.system == sb
    for system in (None, "", " \n ", "Be brief.", " Be brief. "):
        msgs = ([] if system is None else [{"role": "system", "content": system}]) + [
            {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
        real = hf_render(template, msgs, False, bos, eos)
        assert ("You are a helpful assistant" in real) == (system is None)
        assert fmt.render(msgs) == real == hf_render(fmt.to_jinja(), msgs, False, bos, eos)


@pytest.mark.parametrize("spec", [
    # Laguna-XS: "</think>\n" in place of missing reasoning ({ELSE}: the generation prompt's own
    # "</think>" comes off the prefix), "\n" after a non-blank answer ({NONEMPTY})
    "<user>\n{INPUT}\n</user>\n{SPLIT}<assistant>\n{PROMPT=</think>}{THINK}<think>\n{REASONING|trim}\n</think>\n"
    "{ELSE}</think>\n{/THINK}{OUTPUT|trim|drop_think}{NONEMPTY}\n{/NONEMPTY}</assistant>\n<user>\n{INPUT}\n"
    "</user>\n{SPLIT}<assistant>\n{PROMPT=</think>}{THINK}<think>\n{REASONING|trim}\n</think>\n{ELSE}</think>\n"
    "{/THINK}{OUTPUT|trim|drop_think}{NONEMPTY}\n{/NONEMPTY}</assistant>\n",
    # GLM-4.6: earlier answers hide their reasoning ({THINK|hidden}), "\n" before a non-blank answer
    "[gMASK]<sop>{SPLIT}<|system|>\n{SYSTEM}<|user|>\n{INPUT}{SPLIT}<|assistant|>{THINK|hidden}\n<think></think>"
    "{REASONING}{/THINK}{NONEMPTY}\n{/NONEMPTY}{OUTPUT|trim|drop_think}<|user|>\n{INPUT}{SPLIT}<|assistant|>"
    "{THINK|always}\n<think>{REASONING|trim}</think>{/THINK}{NONEMPTY}\n{/NONEMPTY}{OUTPUT|trim|drop_think}",
    # GLM-4.7: the final answer without reasoning renders what the hidden block does ({ELSE})
    "[gMASK]<sop>{SPLIT}<|system|>{SYSTEM}<|user|>{INPUT}{SPLIT}<|assistant|>{PROMPT=<think>}{THINK|hidden}</think>"
    "{REASONING}{/THINK}{OUTPUT|trim|drop_think}<|user|>{INPUT}{SPLIT}<|assistant|>{PROMPT=<think>}{THINK}<think>"
    "{REASONING|trim}</think>{ELSE}</think>{/THINK}{OUTPUT|trim|drop_think}",
])
def test_reasoning_blocks_of_real_templates_round_trip(spec):
    """The shapes Laguna-XS and GLM-4.6/4.7 have convert back from tmplc's own Jinja to the same layout."""
    fmt = parse_spec(spec)
    back = from_jinja(fmt.to_jinja())
    assert back.structure == fmt.structure, (back.to_spec(), spec)
