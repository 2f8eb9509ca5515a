"""Invariants for hypothesis-generated formats and conversations (and every registry entry).

1. spec -> IR -> to_spec() -> IR is the identity.
2. The Jinja target rendered by jinja2's sandbox and by transformers' apply_chat_template
   equals the reference render; both refuse the same conversations.
3. Append-only: the render of k exchanges, its last answer rendered as an earlier one, is a
   prefix of the render of k+1, and render(msgs[:-1], add_generation_prompt=True) + lead +
   content (the final answer's rule and reasoning block) + assistant suffix == render(msgs).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from jinja2.exceptions import TemplateError

import tmplc
from tmplc.jinja_env import render_template
from tmplc.spec.files import parse_structure

import answer_rules
from conftest import load_tokenizer
from strategies import chat_formats, conversations, structures
from tmplc.ir import Text

BOS, EOS = "<s>", "</s>"


def _ref(fmt, msgs, **kw):
    return fmt.render(msgs, bos_token=BOS, eos_token=EOS, **kw)


@given(structures())
def test_spec_round_trip_generated(structure):
    assert parse_structure(tmplc.ChatFormat(structure).to_spec()) == structure


def test_spec_round_trip_registry():
    from tmplc.spec.tools import text_layout

    assert len(tmplc.registry) > 0
    for name in tmplc.registry:
        fmt = tmplc.registry[name]
        assert parse_structure(fmt.to_spec()) == text_layout(fmt.structure), name  # tools: in the YAML


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


def _frag_text(frag) -> str:
    """A lead/suffix fragment as rendered (BOS/EOS strings; these never hold a date)."""
    return "".join(p.value if isinstance(p, Text) else {"BOS": BOS, "EOS": EOS}[p.name] for p in frag)


def _empty_turn(a, content: str, body: str) -> bool:
    return getattr(a, "empty", None) is not None and (content if a.empty_raw else body) == ""


def _turn(fmt, content, final: bool, suffix: bool = True) -> str:
    """An assistant turn as rendered: prefix + lead + content through the answer rules (written out
    in answer_rules, independently of Turn.content; ``final``: as the conversation's last message,
    with the final answer's rule, reasoning block and final_suffix) + the suffix; or the whole
    turn of an empty answer ({EMPTY}: empty as sent with ``empty_raw``, else as rendered)."""
    a = fmt.structure.assistant
    body = answer_rules.answer(a, content, final)
    if _empty_turn(a, content, body):
        return _frag_text(a.empty)
    end = a.final_suffix if final and a.final_suffix is not None else a.suffix
    return _frag_text(a.prefix) + _frag_text(a.lead) + body + (_frag_text(end) if suffix else "")


@given(chat_formats(), conversations(min_exchanges=2, end_with_assistant=True, system=False))
@example(fmt=tmplc.load("chatml"),
         msgs=[{"role": "user", "content": "\n"}, {"role": "assistant", "content": "\n"},
               {"role": "user", "content": ""}, {"role": "assistant", "content": ""}])
@example(fmt=tmplc.load("qwen3-thinking"),
         msgs=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>\nr\n</think>\n\na"},
               {"role": "user", "content": "q2"}, {"role": "assistant", "content": "\n\nb</think>\n\nc"}])
def test_append_only_and_generation_prompt_identity(fmt, msgs):
    """For every answer: the generation prompt before it (without its {PROMPT=...} text and the
    assistant prefix) + the turn as the model writes it == the render ending with it (the final
    answer's rule and final_suffix; then the {END} closing text); with continue_final_message, the
    same without the suffix and closing; and every longer conversation starts with the history +
    the answer as an earlier answer renders it (append-only)."""
    a = fmt.structure.assistant
    po, prefix = a.prompt_only, _frag_text(a.prefix)
    closing = _frag_text(getattr(fmt.structure, "closing", ()))
    # |final_last_answer renders the last answer as final even before a user message: its history
    # (what every longer conversation starts with) is the |final_after_user rendering
    history = _as_history(fmt)
    earlier = None  # the conversation up to the previous answer, as every longer conversation renders it
    for end in [i for i, m in enumerate(msgs) if m["role"] == "assistant"]:
        content = msgs[end]["content"]
        head = _ref(history, msgs[:end], add_generation_prompt=True)
        assert head.endswith(prefix + po)
        before = head[:len(head) - len(prefix + po)]
        full = _ref(fmt, msgs[:end + 1])
        if earlier is not None:
            assert before.startswith(earlier) and full.startswith(earlier)
        assert full == before + _turn(fmt, content, final=True) + closing
        if not _empty_turn(a, content, answer_rules.answer(a, content, True)):  # ({EMPTY}: no continuing)
            assert _ref(fmt, msgs[:end + 1], continue_final_message=True) == \
                before + _turn(fmt, content, final=True, suffix=False)
        earlier = before + _turn(fmt, content, final=False)


def _as_history(fmt):
    """``fmt`` as every longer alternating conversation renders its history."""
    layout = fmt.structure
    if layout.final_scope != "last_answer":
        return fmt
    return replace(fmt, structure=replace(layout, final_scope="after_user"))


@given(chat_formats(), conversations(system=False))
def test_generation_prompt_after_either_role(fmt, msgs):
    """The generation prompt is the assistant prefix + {PROMPT=...} text after the conversation
    rendered without it and without the {END} closing; after an answer, that answer is the final
    one, except with |history_after_answer (then it renders as an earlier answer, as in a longer
    conversation); with |skip_after_answer the render is the one without the prompt."""
    layout = fmt.structure
    with_prompt = _ref(fmt, msgs, add_generation_prompt=True)
    prompt = _frag_text(layout.assistant.prefix) + layout.assistant.prompt_only
    unclosed = replace(fmt, structure=replace(layout, closing=()))
    if msgs[-1]["role"] == "user":
        assert with_prompt == _ref(unclosed, msgs) + prompt
    elif layout.prompt_after_answer == "skip":
        assert with_prompt == _ref(fmt, msgs)
    elif layout.prompt_after_answer == "history":
        unclosed = _as_history(unclosed)
        longer = _ref(unclosed, msgs + [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}])
        before_user = _ref(unclosed, msgs[:-1])
        turn = _turn(fmt, msgs[-1]["content"], final=False)
        assert longer.startswith(before_user + turn)
        assert with_prompt == before_user + turn + prompt
    else:
        assert with_prompt == _ref(unclosed, msgs) + prompt


@given(chat_formats(), conversations(system=False))
def test_segments_partition_the_render(fmt, msgs):
    segs = fmt.segments(msgs, bos_token=BOS, eos_token=EOS)
    assert "".join(s.text for s in segs) == _ref(fmt, msgs)
    for s in segs:
        assert s.text
        assert s.trainable == (s.role == "assistant" and s.part in ("lead", "content", "suffix"))
