"""Turn seams with real SentencePiece and DeepSeek tokenizers (npm fixtures).

* Llama-2 / Mistral: `` answer`` after ``[/INST]`` is ONE token (``▁answer``).  The space is the
  format's assistant lead ({REPLY}), written by the model, so that token trains — a format that
  put the space in the (masked) header would never train the first token of any reply.
* DeepSeek-V3's real tokenizer has pad == EOS: the EOS of every reply still trains.
"""

from __future__ import annotations

import warnings

from hypothesis import given, settings

import tmplc
from tmplc.formatter import DataCollatorForTmplc, tokenize_messages

from conftest import load_tokenizer
from reference import IGNORE, reference
from strategies import conversations, plain_text


def _quiet_tokenize(fmt, msgs, tok, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tokenize_messages(fmt, msgs, tok, **kw)


def test_first_reply_token_trains_llama2():
    tok = load_tokenizer("llama2")
    fmt = tmplc.load("llama-2")
    msgs = [{"role": "user", "content": "What is two plus two?"}, {"role": "assistant", "content": "Four, of course."},
            {"role": "user", "content": "And three?"}, {"role": "assistant", "content": "Six."}]
    out = _quiet_tokenize(fmt, msgs, tok)
    toks = tok.convert_ids_to_tokens(out["input_ids"])
    trained = [t for t, l in zip(toks, out["labels"]) if l != IGNORE]
    assert trained[0] == "▁Four" and "▁Six" in trained
    assert trained == ["▁Four", ",", "▁of", "▁course", ".", "▁", "</s>", "▁Six", ".", "▁", "</s>"]
    # the generation prompt ends exactly where the official Llama-2 prompt ends
    assert fmt.render(msgs[:1], add_generation_prompt=True).endswith("[/INST]")


@settings(max_examples=25)
@given(conversations(text=plain_text, system=False, max_exchanges=3, end_with_assistant=True))
def test_labels_equal_brute_force_sentencepiece(msgs):
    tok = load_tokenizer("llama2")
    for name in ("llama-2", "mistral-v1", "vicuna"):
        fmt = tmplc.load(name)
        out = _quiet_tokenize(fmt, msgs, tok)
        ids, labels, _, _, _ = reference(tok, fmt, msgs)
        assert out["input_ids"] == ids, name
        assert out["labels"] == labels, name
        # every assistant reply's first token trains (none straddles the prompt)
        n_replies = sum(1 for m in msgs if m["role"] == "assistant")
        runs = sum(1 for k, l in enumerate(out["labels"]) if l != IGNORE and (k == 0 or out["labels"][k - 1] == IGNORE))
        assert runs == n_replies, name


def test_real_deepseek_v3_pad_equals_eos_still_trains():
    tok = load_tokenizer("deepseek_v3")
    assert tok.pad_token_id == tok.eos_token_id
    fmt = tmplc.load("deepseek-v3")
    msgs = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there"},
            {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Bye!"}]
    out = _quiet_tokenize(fmt, msgs, tok)
    eos = tok.eos_token_id
    eos_pos = [k for k, i in enumerate(out["input_ids"]) if i == eos]
    assert len(eos_pos) == 2 and all(out["labels"][k] == eos for k in eos_pos)
    ids, labels, _, _, _ = reference(tok, fmt, msgs)
    assert (out["input_ids"], out["labels"]) == (ids, labels)
    short = _quiet_tokenize(fmt, msgs[:2], tok)
    batch = DataCollatorForTmplc(tok, return_tensors="np")([out, short])
    row = batch["labels"].tolist()[1]
    assert row[len(short["labels"]) - 1] == eos and row[len(short["labels"]):] == \
        [IGNORE] * (len(out["labels"]) - len(short["labels"]))
