"""Verification of the formatter with real tokenizers on hypothesis conversations.

(a) labels == brute-force reference (token trains iff its character span lies inside trainable
    text), 0 mismatches, for every named policy;
(b) assistant_masks == transformers' return_assistant_tokens_mask on tmplc's own Jinja where that
    mechanism is correct; where it is not (straddling tokens) HF follows its overlap rule and
    tmplc the inside rule, both asserted;
(c) input_ids == tokenizer(rendered, add_special_tokens=False) (+ one BOS when the tokenizer adds
    one and the format does not render it).
"""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tmplc
from tmplc.errors import MessageError
from tmplc.formatter import RowDropped, tokenize_messages

from conftest import load_tokenizer
from reference import IGNORE, has_special_text, overlap_mask, reference, straddles
from strategies import content_text, conversations, plain_text

PAIRS = [("llama3", "llama-3"), ("qwen3", "qwen3"), ("gemma3", "gemma-3"), ("llama3", "chatml"),
         ("llama3", "alpaca"), ("qwen3", "gemma-3")]
POLICIES = ["default", "assistant_no_eot", "assistant_header", "last_turn", "all"]
# edge-heavy text: whitespace and newlines at the edges, special-token text, unicode
edgy = st.one_of(content_text, st.lists(st.sampled_from(["\n", " ", "\n\n", "x", "Hi", "日本", "🙂", ".",
                                                         "<|im_end|>", "<|eot_id|>", "<end_of_turn>",
                                                         "<bos>", "<|begin_of_text|>", "\t"]),
                                        max_size=8).map("".join))


def _tok(name):
    return load_tokenizer(name)


def _ours(fmt, msgs, tok, policy="default", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return tokenize_messages(fmt, msgs, tok, policy=None if policy == "default" else policy, **kw)
        except RowDropped:
            return None


@pytest.mark.parametrize("tok_name,fmt_name", PAIRS)
@given(data=st.data())
def test_labels_equal_bruteforce(tok_name, fmt_name, data):
    tok, fmt = _tok(tok_name), tmplc.load(fmt_name)
    msgs = data.draw(conversations(text=edgy))
    policy = data.draw(st.sampled_from(POLICIES))
    try:
        ids, labels, _, _, _ = reference(tok, fmt, msgs, policy)
    except MessageError:
        with pytest.raises(MessageError):
            _ours(fmt, msgs, tok, policy)
        return
    out = _ours(fmt, msgs, tok, policy)
    if out is None:  # dropped: must be because nothing trains
        assert all(x == IGNORE for x in labels)
        return
    assert out["input_ids"] == ids
    mismatches = [k for k, (a, b) in enumerate(zip(out["labels"], labels)) if a != b]
    assert mismatches == []
    assert out["attention_mask"] == [1] * len(ids)
    assert out["assistant_masks"] == [int(x != IGNORE) for x in labels]


@pytest.mark.parametrize("tok_name,fmt_name", PAIRS)
@given(data=st.data())
def test_ids_are_one_pass(tok_name, fmt_name, data):
    """(c): the ids are those of tokenizing the whole rendered text once (control mode: always;
    text mode: whenever content holds no special-token text), with exactly one BOS."""
    tok, fmt = _tok(tok_name), tmplc.load(fmt_name)
    msgs = data.draw(conversations(text=edgy, end_with_assistant=True))
    try:
        text = fmt.render(msgs, bos_token=tok.bos_token or "",
                          eos_token=tok.eos_token or fmt.meta.eos_token)
    except MessageError:
        return
    expect = tok(text, add_special_tokens=False)["input_ids"]
    bos = tok.bos_token_id
    if bos is not None and tok("a")["input_ids"][:1] == [bos] and expect[:1] != [bos]:
        expect = [bos] + expect
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = tokenize_messages(fmt, msgs, tok, special_tokens="control", policy="all")
        except (RowDropped, tmplc.TmplcError):
            return
    assert out["input_ids"] == expect
    if bos is not None and fmt.render(msgs).count(fmt.meta.bos_token or "\0") <= 1:
        segs = fmt.segments(msgs, bos_token=tok.bos_token or "",
                            eos_token=tok.eos_token or fmt.meta.eos_token)
        if not has_special_text(tok, segs):
            assert out["input_ids"].count(bos) <= 1
            if fmt.structure.uses("BOS") or tok("a")["input_ids"][:1] == [bos]:
                assert out["input_ids"][0] == bos and out["input_ids"].count(bos) == 1


@pytest.mark.parametrize("tok_name,fmt_name", [p for p in PAIRS if p[1] != "chatml"])
@given(msgs=conversations(text=st.one_of(plain_text, edgy), end_with_assistant=True))
def test_matches_hf_assistant_mask(tok_name, fmt_name, msgs):
    """(b): HF's return_assistant_tokens_mask on tmplc's own Jinja ({% generation %} tags)."""
    tok, fmt = _tok(tok_name), tmplc.load(fmt_name)
    try:
        ids, labels, offs, flags, segs = reference(tok, fmt, msgs)
    except MessageError:
        return
    if has_special_text(tok, segs):
        return  # HF turns content special-token text into control tokens: different ids
    hf = tok.apply_chat_template(msgs, chat_template=fmt.to_jinja(), tokenize=True, return_dict=True,
                                 return_assistant_tokens_mask=True)
    ours = _ours(fmt, msgs, tok)
    bos_added = len(ids) == len(hf["input_ids"]) + 1
    hf_ids = ([tok.bos_token_id] if bos_added else []) + list(hf["input_ids"])
    hf_mask = ([0] if bos_added else []) + list(hf["assistant_masks"])
    assert hf_ids == ids
    offs_text = offs[1:] if bos_added else offs
    # HF's rule is overlap: any token touching the span trains
    expect_hf = ([0] if bos_added else []) + overlap_mask(offs_text, flags)
    if ours is None:
        assert sum(hf_mask) == 0
        return
    if not straddles(offs_text, flags):
        assert ours["assistant_masks"] == hf_mask  # where HF is correct, identical
    else:
        assert hf_mask == expect_hf  # HF trains straddling tokens (header text included)
        assert ours["assistant_masks"] != hf_mask
        assert ours["assistant_masks"] == [int(x != IGNORE) for x in labels]
