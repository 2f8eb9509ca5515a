"""Invariants for hypothesis-generated formats and conversations (and every registry entry).

1. spec -> IR -> to_spec() -> IR is the identity.
2. The Jinja target rendered by jinja2's sandbox and by transformers' apply_chat_template
   equals the reference render; both refuse the same conversations.
3. Append-only: the render of k exchanges is a prefix of the render of k+1, and
   render(msgs[:-1], add_generation_prompt=True) + content + assistant suffix == render(msgs).
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from jinja2.exceptions import TemplateError

import tmplc
from tmplc.jinja_env import render_template
from tmplc.render import render_segments
from tmplc.spec.files import parse_structure

from conftest import load_tokenizer
from strategies import chat_formats, conversations, structures

BOS, EOS = "<s>", "</s>"


def _ref(fmt, msgs, **kw):
    return fmt.render(msgs, bos_token=BOS, eos_token=EOS, **kw)


@given(structures())
def test_spec_round_trip_generated(structure):
    assert parse_structure(tmplc.ChatFormat(structure).to_spec()) == structure


def test_spec_round_trip_registry():
    assert len(tmplc.registry) > 0
    for name in tmplc.registry:
        fmt = tmplc.registry[name]
        assert parse_structure(fmt.to_spec()) == fmt.structure, name


def assert_engine_matches(fmt, msgs, engine, *, bos=BOS, eos=EOS, **kw):
    """engine(msgs) equals the reference, or both refuse the conversation."""
    try:
        expected = fmt.render(msgs, bos_token=bos, eos_token=eos, **kw)
    except tmplc.MessageError:
        with pytest.raises(TemplateError, match="tmplc: message"):
            engine(msgs)
        return
    assert engine(msgs) == expected


@given(chat_formats(), conversations(), st.booleans())
def test_jinja_sandbox_equals_reference(fmt, msgs, gen):
    template = fmt.to_jinja()
    assert_engine_matches(fmt, msgs, lambda m: render_template(
        template, m, add_generation_prompt=gen, bos_token=BOS, eos_token=EOS), add_generation_prompt=gen)


@given(chat_formats(), conversations(), st.booleans())
def test_transformers_apply_chat_template_equals_reference(fmt, msgs, gen):
    tok = load_tokenizer("llama3")
    template = fmt.to_jinja()
    assert_engine_matches(fmt, msgs, lambda m: tok.apply_chat_template(
        m, chat_template=template, tokenize=False, add_generation_prompt=gen),
        bos=tok.bos_token, eos=tok.eos_token, add_generation_prompt=gen)


bad_conversations = st.one_of(
    st.just([{"role": "user", "content": "a"}, {"role": "system", "content": "late"}]),
    st.just([{"role": "user", "content": "a"}, {"role": "tool", "content": "t"}]),
    st.just([{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]),
    st.just([{"role": "system", "content": "s"}]),
)


@given(chat_formats(), bad_conversations)
def test_jinja_refuses_what_the_reference_refuses(fmt, msgs):
    template = fmt.to_jinja()
    assert_engine_matches(fmt, msgs, lambda m: render_template(template, m, bos_token=BOS, eos_token=EOS))


def _assistant_tail(fmt, msgs):
    """What the model writes for the last message: lead + content (trimmed if the format trims)
    + assistant suffix."""
    last = len(msgs) - 1
    content = msgs[-1]["content"]
    a = fmt.structure.assistant
    if a.drop_think:  # written out here, independently of Turn.content
        content = content.split("</think>", 1 if a.drop_think == "first" else -1)[-1]
    strip = {"both": str.strip, "left": str.lstrip, "right": str.rstrip}[a.trim_side]
    text = strip(content) if a.trim else content
    segs = [s for s in render_segments(fmt, msgs, bos_token=BOS, eos_token=EOS) if s.message_index == last]
    lead = "".join(s.text for s in segs if s.part == "lead")
    suffix = "".join(s.text for s in segs if s.part == "suffix")
    return lead + text + suffix


@given(chat_formats(), conversations(min_exchanges=2, end_with_assistant=True, system=False))
@example(fmt=tmplc.load("chatml"),
         msgs=[{"role": "user", "content": "\n"}, {"role": "assistant", "content": "\n"},
               {"role": "user", "content": ""}, {"role": "assistant", "content": ""}])
def test_append_only_and_generation_prompt_identity(fmt, msgs):
    full = _ref(fmt, msgs)
    exchanges = [i for i, m in enumerate(msgs) if m["role"] == "assistant"]
    prev = None
    # with a final_suffix the last answer ends differently: the history up to it (its suffix
    # left out, continue_final_message) is what a longer conversation extends
    final = fmt.structure.assistant.final_suffix is not None
    for end in exchanges:
        cur = _ref(fmt, msgs[: end + 1])
        if prev is not None:
            assert cur.startswith(prev)
        prev = _ref(fmt, msgs[: end + 1], continue_final_message=True) if final else cur
    assert cur == full
    head = _ref(fmt, msgs[:-1], add_generation_prompt=True)
    tail = _assistant_tail(fmt, msgs)  # lead + content + suffix: what the model writes
    # the generation prompt is the history's text up to the reply, plus {PROMPT=...} text
    po = fmt.structure.assistant.prompt_only
    assert head.endswith(po)
    head = head[:len(head) - len(po)]
    assert head + tail == full
    # continue_final_message leaves exactly the assistant suffix out
    cont = _ref(fmt, msgs, continue_final_message=True)
    suffix = full[len(cont):]
    assert full.startswith(cont) and tail.endswith(suffix) and head + tail[:len(tail) - len(suffix)] == cont


@given(chat_formats(), conversations(system=False))
def test_segments_partition_the_render(fmt, msgs):
    segs = fmt.segments(msgs, bos_token=BOS, eos_token=EOS)
    assert "".join(s.text for s in segs) == _ref(fmt, msgs)
    for s in segs:
        assert s.text
        assert s.trainable == (s.role == "assistant" and s.part in ("lead", "content", "suffix"))
