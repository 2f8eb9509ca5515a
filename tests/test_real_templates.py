"""Registry entries against the REAL chat templates of real tokenizers (npm fixtures).

For each fixture, the tokenizer's own ``chat_template`` and the matching registry entry's Jinja
(``chat_template=entry.to_jinja()``) are both rendered by ``tok.apply_chat_template`` and must be
equal, or differ by exactly the deliberate difference documented in the entry's ``notes``:

* llama3: the fixture is the BASE Meta-Llama-3 tokenizer; its template always appends the
  generation prompt (and ``| trim``s content, as the instruct one and ours do):
  ``real(msgs, agp) == ours(msgs, add_generation_prompt=True)``.
* qwen3: the real template puts an empty think block ``<think>\\n\\n</think>\\n\\n`` into the
  final assistant turn after the last user message and ``lstrip('\\n')``s that content;
  everything else is identical.
* gemma3: identical for alternating conversations; the real template raises on non-alternating
  roles, tmplc renders them.

The ``qwen3-thinking`` entry has the real Qwen3 template's reasoning rules: it equals the real
template (text and token ids) on alternating conversations whose answers hold reasoning
(``<think>...</think>``, newlines around the tags, several ``</think>``), with and without
``add_generation_prompt``.  Outside them (an assistant message after another, after no user
message) the real template keys its think block on "after the last user message", tmplc on "the
last message": those differences are stated in a test.

Token ids are compared too (``tokenize=True``, which encodes without adding special tokens).
A missing fixture fails under CI=true and skips otherwise (conftest.tokenizer_dir).
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tmplc.registry import registry

from conftest import load_tokenizer
from strategies import content_text, conversations, reasoning_text, unreasoned_text

ENTRY = {"llama3": "llama-3", "qwen3": "qwen3", "gemma3": "gemma-3"}
QWEN3_THINK = "<think>\n\n</think>\n\n"


def _ids(out):
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def _real(tok, msgs, agp, tokenize=False):
    out = tok.apply_chat_template(msgs, tokenize=tokenize, add_generation_prompt=agp)
    return _ids(out) if tokenize else out


def _ours(tok, fixture, msgs, agp, tokenize=False):
    out = tok.apply_chat_template(msgs, chat_template=_jinja(fixture), tokenize=tokenize,
                                  add_generation_prompt=agp)
    return _ids(out) if tokenize else out


_JINJA: dict[str, str] = {}


def _jinja(fixture: str) -> str:
    if fixture not in _JINJA:
        _JINJA[fixture] = registry[ENTRY[fixture]].to_jinja()
    return _JINJA[fixture]


def expected_real(fixture, tok, msgs, agp):
    """What the real template renders, written in terms of OUR Jinja render (the documented
    deliberate difference of each entry)."""
    if fixture == "llama3":
        return _ours(tok, fixture, msgs, True)
    if fixture == "qwen3":
        if msgs[-1]["role"] == "assistant":
            # one assistant reply after the last user message (alternating conversations)
            return (_ours(tok, fixture, msgs[:-1], True) + QWEN3_THINK
                    + msgs[-1]["content"].lstrip("\n") + "<|im_end|>\n"
                    + ("<|im_start|>assistant\n" if agp else ""))
        return _ours(tok, fixture, msgs, agp)
    return _ours(tok, fixture, msgs, agp)


def check(fixture, tok, msgs, agp):
    ours = _ours(tok, fixture, msgs, agp)
    # our Jinja, run by transformers, is the reference renderer
    assert ours == registry[ENTRY[fixture]].render(
        msgs, add_generation_prompt=agp, bos_token=tok.bos_token, eos_token=tok.eos_token)
    want = expected_real(fixture, tok, msgs, agp)
    real = _real(tok, msgs, agp)
    assert real == want
    # token ids: the real template's ids are the ids of the expected text, and ours are the
    # ids of our text, each tokenized once without added special tokens
    real_ids = _real(tok, msgs, agp, tokenize=True)
    ours_ids = _ours(tok, fixture, msgs, agp, tokenize=True)
    assert real_ids == tok(want, add_special_tokens=False)["input_ids"]
    assert ours_ids == tok(ours, add_special_tokens=False)["input_ids"]
    if want == ours:
        assert real_ids == ours_ids


# -- hand-written conversations ------------------------------------------------------------

def _conv(system, n, end_with_user, texts=None):
    msgs = [{"role": "system", "content": system}] if system is not None else []
    for i in range(n):
        u, a = (texts[i % len(texts)] if texts else (f"Question {i + 1}?", f"Answer {i + 1}."))
        msgs.append({"role": "user", "content": u})
        msgs.append({"role": "assistant", "content": a})
    if end_with_user:
        msgs.append({"role": "user", "content": "And finally?"})
    return msgs


TRICKY = [
    ("  leading and trailing spaces  ", "\n\nnewlines around\n\n"),
    ("{{ not jinja }} {% if %}", "<|im_end|> and <|eot_id|> as text"),
    ("unicode: é 日本 🙂", ""),
    ("", "   "),
    ("multi\nline\ninput", "it's \"quoted\" \\ backslash"),
]

FIXED = []
for _system in (None, "You are a helpful assistant.", "  padded system\n", ""):
    for _n in (1, 2, 3, 6):
        for _end_user in (False, True):
            FIXED.append(_conv(_system, _n, _end_user))
            FIXED.append(_conv(_system, _n, _end_user, TRICKY))
FIXED.append([{"role": "user", "content": "Only a user message"}])
FIXED.append([{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}])


@pytest.mark.parametrize("fixture", list(ENTRY))
def test_fixed_conversations(fixture):
    tok = load_tokenizer(fixture)
    assert tok.chat_template, f"{fixture}: the fixture has no chat_template"
    for msgs in FIXED:
        for agp in (False, True):
            check(fixture, tok, msgs, agp)


@pytest.mark.parametrize("fixture", list(ENTRY))
def test_hypothesis_conversations(fixture):
    tok = load_tokenizer(fixture)

    # (qwen3: contents mostly without reasoning, which the `qwen3` entry does not model)
    @given(conversations(text=unreasoned_text if fixture == "qwen3" else content_text), st.booleans())
    def run(msgs, agp):
        if fixture == "qwen3":
            # the real template parses '</think>' in assistant content and treats a user message
            # wrapped in <tool_response> tags as a tool result: outside the text-only subset
            assume(all("</think>" not in m["content"] for m in msgs))
            assume(not any(m["content"].startswith("<tool_response>") for m in msgs))
        check(fixture, tok, msgs, agp)

    run()


# -- the documented differences, stated directly ------------------------------------------

def test_llama3_base_always_appends_the_generation_prompt():
    tok = load_tokenizer("llama3")
    msgs = _conv("sys", 2, False)
    gen = "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ours = _ours(tok, "llama3", msgs, False)
    assert _real(tok, msgs, False) == ours + gen
    assert _real(tok, msgs, True) == ours + gen
    # content is trimmed by both
    trimmed = [{"role": "user", "content": "  x \n"}]
    assert _real(tok, trimmed, True) == _ours(tok, "llama3", trimmed, True)
    assert "\n\nx<|eot_id|>" in _real(tok, trimmed, True)


def test_qwen3_think_block_only_in_the_final_assistant_turn():
    tok = load_tokenizer("qwen3")
    msgs = _conv(None, 3, False)
    real, ours = _real(tok, msgs, False), _ours(tok, "qwen3", msgs, False)
    assert real != ours
    assert real.count("<think>") == 1
    assert real.replace(QWEN3_THINK, "", 1) == ours
    assert real.rindex(QWEN3_THINK) > real.rindex("<|im_start|>assistant\n")
    # ending with a user message: identical, with and without the generation prompt
    msgs = _conv("sys", 3, True)
    for agp in (False, True):
        assert _real(tok, msgs, agp) == _ours(tok, "qwen3", msgs, agp)


def test_gemma3_raises_on_non_alternating_roles_where_tmplc_renders():
    from jinja2.exceptions import TemplateError

    tok = load_tokenizer("gemma3")
    msgs = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(TemplateError, match="alternate"):
        _real(tok, msgs, True)
    assert _ours(tok, "gemma3", msgs, True) == (
        "<bos><start_of_turn>user\na<end_of_turn>\n<start_of_turn>user\nb<end_of_turn>\n"
        "<start_of_turn>model\n")


def test_gemma3_system_goes_into_the_first_user_turn_untrimmed():
    tok = load_tokenizer("gemma3")
    msgs = [{"role": "system", "content": " sys "}, {"role": "user", "content": " hi "}]
    want = "<bos><start_of_turn>user\n sys \n\nhi<end_of_turn>\n<start_of_turn>model\n"
    assert _real(tok, msgs, True) == want == _ours(tok, "gemma3", msgs, True)


# -- qwen3-thinking: the real Qwen3 template's reasoning rules, exactly ------------------------

THINKING = registry["qwen3-thinking"]


def _thinking(tok, msgs, agp, tokenize=False):
    out = tok.apply_chat_template(msgs, chat_template=_thinking_jinja(), tokenize=tokenize, add_generation_prompt=agp)
    return _ids(out) if tokenize else out


def _thinking_jinja() -> str:
    if "thinking" not in _JINJA:
        _JINJA["thinking"] = THINKING.to_jinja()
    return _JINJA["thinking"]


def check_thinking(tok, msgs, agp):
    """The real template == the qwen3-thinking entry: its reference render and its Jinja through
    transformers; token ids too."""
    real = _real(tok, msgs, agp)
    assert THINKING.render(msgs, add_generation_prompt=agp, bos_token=tok.bos_token,
                           eos_token=tok.eos_token) == real
    assert _thinking(tok, msgs, agp) == real
    assert _thinking(tok, msgs, agp, tokenize=True) == _real(tok, msgs, agp, tokenize=True)


REASONED = [
    ("<think>\nLet me think.\n</think>\n\nThe answer.", "Why?"),
    ("</think>\n\nonly an end tag", "\n\nleading newlines"),
    ("<think>\n\n\nr\n\n\n</think>\n\n\n\nA\n", "x</think>y</think>\nz"),
    ("<think></think>", "\n<think>\nr</think>"),
    ("  <think> r </think>  a  ", ""),
]


@pytest.mark.parametrize("texts", [None, TRICKY, REASONED])
def test_qwen3_thinking_fixed_conversations(texts):
    tok = load_tokenizer("qwen3")
    for system in (None, "You are a helpful assistant.", ""):
        for n in (1, 2, 3):
            for end_user in (False, True):
                msgs = _conv(system, n, end_user, texts)
                for agp in (False, True):
                    check_thinking(tok, msgs, agp)


@settings(max_examples=60)
@given(conversations(text=st.one_of(reasoning_text(), reasoning_text(), content_text)), st.booleans())
def test_qwen3_thinking_hypothesis_conversations(msgs, agp):
    tok = load_tokenizer("qwen3")
    # a user message wrapped in <tool_response> tags is a tool result to the real template
    assume(not any(m["content"].startswith("<tool_response>") for m in msgs))
    check_thinking(tok, msgs, agp)


def test_qwen3_thinking_and_qwen3_differ_by_the_reasoning_rules_only():
    """Both entries have one layout; the qwen3 entry renders every answer as sent."""
    plain = registry["qwen3"]
    assert THINKING.structure.assistant.prefix == plain.structure.assistant.prefix
    assert THINKING.structure.user == plain.structure.user and THINKING.structure.system == plain.structure.system
    msgs = _conv(None, 2, False, [("q", "<think>\nr\n</think>\n\na")])
    assert plain.render(msgs).count("<think>\nr\n</think>\n\na") == 2
    assert THINKING.render(msgs).count("<think>\nr\n</think>\n\na") == 1  # the final answer's
    assert THINKING.render(msgs[:-1]) == plain.render(msgs[:-1]).replace("<think>\nr\n</think>\n\n", "")


def test_qwen3_thinking_differs_where_no_user_message_precedes_the_answer():
    """Stated differences: the real template re-wraps each answer after the LAST USER message
    (every one of several consecutive answers that has reasoning, and the last), tmplc only the
    conversation's last message; an answer with no user message before it is not re-wrapped by
    the real template."""
    tok = load_tokenizer("qwen3")
    block, u, a = "<think>\nr\n</think>\n\n", "<|im_start|>user\nq<|im_end|>\n", "<|im_start|>assistant\n"
    two = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r</think>x"},
           {"role": "assistant", "content": "r</think>y"}]
    assert _real(tok, two, False) == f"{u}{a}{block}x<|im_end|>\n{a}{block}y<|im_end|>\n"
    assert THINKING.render(two) == f"{u}{a}x<|im_end|>\n{a}{block}y<|im_end|>\n"
    alone = [{"role": "assistant", "content": "r</think>x"}]
    assert _real(tok, alone, False) == f"{a}x<|im_end|>\n"
    assert THINKING.render(alone) == f"{a}{block}x<|im_end|>\n"
