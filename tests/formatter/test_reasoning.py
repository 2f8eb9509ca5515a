"""Training rows of reasoning formats: answers whose reasoning is dropped (``|drop_think`` and its
variants, ``|lstrip_nl``, ``|trim_first``) and a final answer with its own rule and ``{THINK}`` block.

* ``qwen3-thinking`` with the real Qwen3 tokenizer: the ids are the real template's
  (``apply_chat_template(tokenize=True)``) and decode to the rendered text; the final answer's
  think block, answer and ``<|im_end|>`` train, earlier answers train without their reasoning,
  which is not in the ids at all;
* labels == the brute-force reference (reference.py) on conversations whose answers hold
  reasoning, for every policy, with the Qwen3 (byte-level BPE) and Llama-3 tokenizers, for
  ``qwen3-thinking`` and hypothesis-generated reasoning layouts;
* the compiled plan (the tiktoken fast path) declines these formats: its field gate
  (``_PLAN_VALUES``) does, the probe check could not (its probe rows hold no ``</think>``).
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tmplc
from tmplc.errors import MessageError

from conftest import load_tokenizer
from reference import IGNORE, trained_runs, reference, straddles
from strategies import chat_formats, content_text, conversations, reasoning_text, structures
from test_ir_features import _plan  # the compiled plan (tiktoken fast path) for a format
from test_labels import _ours

THINKING = tmplc.load("qwen3-thinking")
POLICIES = ["default", "assistant_no_eot", "assistant_header", "last_turn", "all"]

ROW = [{"role": "system", "content": "S"}, {"role": "user", "content": "q1"},
       {"role": "assistant", "content": "<think>\nsecret plan\n</think>\n\na1"},
       {"role": "user", "content": "q2"},
       {"role": "assistant", "content": "<think>\nr2\n</think>\n\na2"}]




def _ids(out):
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def test_qwen3_thinking_row_hand_checked():
    tok = load_tokenizer("qwen3")
    out = _ours(THINKING, ROW, tok)
    text = THINKING.render(ROW)
    assert text == ("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\na1"
                    "<|im_end|>\n<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n<think>\nr2\n</think>\n\na2"
                    "<|im_end|>\n")
    assert tok.decode(out["input_ids"]) == text
    # the ids are the real Qwen3 template's, tokenized in one pass
    assert out["input_ids"] == _ids(tok.apply_chat_template(ROW, tokenize=True))
    assert out["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    # the earlier answer's reasoning is dropped: not trained, not even in the input
    assert "secret" not in tok.decode(out["input_ids"])
    assert tok("secret plan", add_special_tokens=False)["input_ids"][0] not in out["input_ids"]
    # earlier answers train without reasoning; the final answer's block + answer + <|im_end|> train
    assert trained_runs(tok, out) == ["a1<|im_end|>\n", "<think>\nr2\n</think>\n\na2<|im_end|>\n"]
    think, end = tok.convert_tokens_to_ids("<think>"), tok.convert_tokens_to_ids("</think>")
    assert out["input_ids"].count(think) == 1 and out["input_ids"].count(end) == 1
    for t in (think, end):
        assert out["labels"][out["input_ids"].index(t)] == t
    assert trained_runs(tok, _ours(THINKING, ROW, tok, "last_turn")) == ["<think>\nr2\n</think>\n\na2<|im_end|>\n"]
    assert trained_runs(tok, _ours(THINKING, ROW, tok, "assistant_no_eot")) == ["a1", "<think>\nr2\n</think>\n\na2"]
    # a final answer without reasoning trains the empty block (|always) that the model then writes
    row = ROW[:4] + [{"role": "assistant", "content": "\n\na2"}]
    assert trained_runs(tok, _ours(THINKING, row, tok))[-1] == "<think>\n\n</think>\n\na2<|im_end|>\n"


def test_qwen3_thinking_assistant_masks_equal_transformers():
    """HF's return_assistant_tokens_mask on the entry's Jinja ({% generation %} around the final
    answer's block and answer) marks the same tokens."""
    tok = load_tokenizer("qwen3")
    out = _ours(THINKING, ROW, tok)
    hf = tok.apply_chat_template(ROW, chat_template=THINKING.to_jinja(), tokenize=True, return_dict=True,
                                 return_assistant_tokens_mask=True)
    assert hf["input_ids"] == out["input_ids"]
    assert hf["assistant_masks"] == out["assistant_masks"]


reasoning_conversations = conversations(text=st.one_of(reasoning_text(), reasoning_text(), content_text),
                                        max_exchanges=3)


def _assert_reference(fmt, msgs, tok, policy, **kw):
    try:
        ids, labels, offsets, flags, _ = reference(tok, fmt, msgs, policy)
    except MessageError:
        with pytest.raises(MessageError):
            _ours(fmt, msgs, tok, policy, **kw)
        return None
    if tok.bos_token_id is not None and ids[:2] == [tok.bos_token_id] * 2:  # e.g. a generated {BOS}{BOS}
        with pytest.raises(tmplc.TmplcError, match="double BOS"):
            _ours(fmt, msgs, tok, policy, **kw)
        return None
    out = _ours(fmt, msgs, tok, policy, **kw)
    if out is None:  # dropped: only because nothing trains
        assert all(x == IGNORE for x in labels)
        return None
    assert out["input_ids"] == ids
    assert [k for k, (a, b) in enumerate(zip(out["labels"], labels)) if a != b] == []
    assert len(out["labels"]) == len(labels)
    return out, offsets, flags


@settings(max_examples=40, deadline=None)
@given(msgs=reasoning_conversations, policy=st.sampled_from(POLICIES))
@example(msgs=[{"role": "user", "content": ""}, {"role": "assistant", "content": "\uf900"}], policy="default")
def test_qwen3_thinking_labels_equal_bruteforce(msgs, policy):
    tok = load_tokenizer("qwen3")
    got = _assert_reference(THINKING, msgs, tok, policy)
    if got is None:
        return
    out, offsets, flags = got
    assert tok.decode(out["input_ids"]) == unicodedata.normalize("NFC", THINKING.render(msgs))  # Qwen's normalizer
    if policy == "default" and not straddles(offsets, flags):
        hf = tok.apply_chat_template(msgs, chat_template=THINKING.to_jinja(), tokenize=True, return_dict=True,
                                     return_assistant_tokens_mask=True)
        assert hf["input_ids"] == out["input_ids"] and hf["assistant_masks"] == out["assistant_masks"]


@settings(max_examples=30, deadline=None)
@given(fmt=chat_formats(structures(dates=False, reasoning=True)), msgs=reasoning_conversations,
       policy=st.sampled_from(POLICIES), backend=st.sampled_from(["auto", "hf"]))
@example(fmt=tmplc.parse_spec("{BOS}{BOS}{SPLIT}S:{SYSTEM}U:{INPUT}{SPLIT}A:{OUTPUT|drop_think}U:{INPUT}{SPLIT}A:{OUTPUT|drop_think}"),
         msgs=[{"role": "user", "content": ""}], policy="default", backend="auto")  # double BOS: an error
def test_generated_reasoning_formats_labels_equal_bruteforce_llama3(fmt, msgs, policy, backend):
    tok = load_tokenizer("llama3")
    _assert_reference(fmt.with_meta(bos_token=tok.bos_token, eos_token=tok.eos_token), msgs, tok, policy,
                      backend=backend)


# -- the compiled plan (tiktoken fast path) declines reasoning formats ----------------------------------

L3 = "<|start_header_id|>{}<|end_header_id|>\n\n"


def _llama3(first: str, second: str | None = None) -> tmplc.ChatFormat:
    ex = "{INPUT}<|eot_id|>" + L3.format("assistant")
    return tmplc.parse_spec("{BOS}" + L3.format("system") + "{SYSTEM}<|eot_id|>" + L3.format("user") + ex + first
                            + "<|eot_id|>" + L3.format("user") + ex + (second or first) + "<|eot_id|>", name="t",
                            bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")


REASONING_LLAMA3 = {
    "drop_think": _llama3("{OUTPUT|drop_think}"),
    "drop_think_first_lstrip_nl": _llama3("{OUTPUT|drop_think_first_lstrip_nl}"),
    "lstrip_nl": _llama3("{OUTPUT|lstrip_nl}"),
    "trim_first": _llama3("{OUTPUT|trim|drop_think_strip_nl|trim_first}"),
    "final": _llama3("{OUTPUT|drop_think}", "{OUTPUT}"),
    "think": _llama3("{OUTPUT|drop_think_lstrip_nl}",
                     "{THINK|always}<think>\n{REASONING}\n</think>\n\n{/THINK}{OUTPUT|drop_think|lstrip_nl}"),
}




@pytest.mark.parametrize("name", sorted(REASONING_LLAMA3))
def test_plan_declines_reasoning_formats(name):
    tok = load_tokenizer("llama3")
    fmt = REASONING_LLAMA3[name]
    for policy in (None, "assistant_no_eot", "all"):
        assert _plan(fmt, tok, policy) is None, (name, policy)
    # the same layout without its answer rules takes the fast path
    a = fmt.structure.assistant
    plain = tmplc.ChatFormat(fmt.structure.__class__(
        preamble=fmt.structure.preamble, system=fmt.structure.system, user=fmt.structure.user,
        assistant=tmplc.ir.Turn(prefix=a.prefix, suffix=a.suffix, lead=a.lead,
                                rule=tmplc.ir.ContentRule(trim=a.trim, trim_side=a.trim_side))), fmt.meta)
    assert _plan(plain, tok) is not None
