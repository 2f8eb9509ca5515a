"""The documented rules, on inputs built for them: straddling tokens, policies, BOS, special-token
text, truncation, pad == EOS (DeepSeek-like tokenizer) and the collator, hazards, batching."""

from __future__ import annotations

import pickle
import warnings

import pytest
from hypothesis import given

import tmplc
from tmplc.errors import MessageError, TmplcError
from tmplc.formatter import (DataCollatorForTmplc, FormatterWarning, RowDropped, format_dataset, tokenize_batch,
                             tokenize_messages, tokenizer_info)

from conftest import load_tokenizer
from reference import IGNORE, trained_runs
from strategies import conversations
from toys import DS_EOS, deepseek_like

CONV = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Bye!"}]




def quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


# -- policies -------------------------------------------------------------------------------------

POLICY_TABLE = {  # the README table: llama-3, one conversation, the text each policy trains
    "assistant": ["Hello!<|eot_id|>", "Bye!<|eot_id|>"],
    "assistant_no_eot": ["Hello!", "Bye!"],
    "assistant_header": ["<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>",
                         "<|start_header_id|>assistant<|end_header_id|>\n\nBye!<|eot_id|>"],
    "last_turn": ["Bye!<|eot_id|>"],
    "all": ["<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user"
            "<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant"
            "<|end_header_id|>\n\nBye!<|eot_id|>"],
}


@pytest.mark.parametrize("policy", sorted(POLICY_TABLE))
def test_policy_table(policy):
    tok = load_tokenizer("llama3")
    out = tokenize_messages(tmplc.load("llama-3"), CONV, tok, policy=policy)
    assert trained_runs(tok, out) == POLICY_TABLE[policy]
    assert out["input_ids"][0] == tok.bos_token_id and out["labels"][0] == IGNORE  # BOS never trains


def test_default_policy_is_assistant_plus_eot():
    tok = load_tokenizer("qwen3")
    fmt = tmplc.load("qwen3")
    assert tokenize_messages(fmt, CONV, tok) == tokenize_messages(fmt, CONV, tok, policy="assistant")
    custom = tokenize_messages(fmt, CONV, tok, policy="roles=user+assistant,eot=no,header=no,last=no")
    assert trained_runs(tok, custom) == ["Hi", "Hello!", "Bye", "Bye!"]
    with pytest.raises(TmplcError):
        tokenize_messages(fmt, CONV, tok, policy="nonsense")


# -- straddling tokens ------------------------------------------------------------------------------

def test_straddling_token_at_start_is_masked():
    """qwen3 header ends with "\\n"; content starting with "\\n" merges into one "\\n\\n" token that
    straddles masked header and trainable content: masked (HF's mask trains it)."""
    tok = load_tokenizer("qwen3")
    fmt = tmplc.load("qwen3")
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "\nHello"}]
    out = tokenize_messages(fmt, msgs, tok)
    nn = tok.convert_tokens_to_ids("ĊĊ")
    k = out["input_ids"].index(nn)
    assert out["labels"][k] == IGNORE
    assert trained_runs(tok, out) == ["Hello<|im_end|>\n"]
    hf = tok.apply_chat_template(msgs, chat_template=fmt.to_jinja(), tokenize=True, return_dict=True,
                                 return_assistant_tokens_mask=True)
    assert hf["input_ids"] == out["input_ids"]
    assert hf["assistant_masks"][k] == 1  # HF edge case: overlap rule trains header text


def test_straddling_token_at_end_follows_policy():
    """content "Hi\\n" + suffix "\\n" (a plain-text suffix) tokenizes to one "\\n\\n": inside trainable
    text under the default policy (content and suffix both train), straddling under
    assistant_no_eot (suffix masked), so masked there."""
    tok = load_tokenizer("qwen3")
    fmt = tmplc.parse_spec("U:\n{INPUT}\nA:\n{OUTPUT}\n\nU:\n{INPUT}\nA:\n{OUTPUT}\n\n", name="plain")
    msgs = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "Hi\n"}]
    nn = tok.convert_tokens_to_ids("ĊĊĊ")
    d = quiet(tokenize_messages, fmt, msgs, tok)
    assert nn in d["input_ids"]
    k = d["input_ids"].index(nn)
    assert d["labels"][k] == nn
    n = quiet(tokenize_messages, fmt, msgs, tok, policy="assistant_no_eot")
    assert n["input_ids"] == d["input_ids"] and n["labels"][k] == IGNORE
    assert trained_runs(tok, n) == ["Hi"]


# -- BOS ----------------------------------------------------------------------------------------------

GEMMA_NO_BOS = ("<start_of_turn>user\n{INPUT|trim}<end_of_turn>\n<start_of_turn>model\n{OUTPUT|trim}<end_of_turn>\n"
                "<start_of_turn>user\n{INPUT|trim}<end_of_turn>\n<start_of_turn>model\n{OUTPUT|trim}<end_of_turn>\n")
MSGS = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]


def test_one_bos_tokenizer_that_adds_bos():
    tok = load_tokenizer("gemma3")  # add_bos_token: true
    assert tokenizer_info(tok).adds_bos
    with_bos = tokenize_messages(tmplc.load("gemma-3"), MSGS, tok)  # the format renders {BOS}
    without = quiet(tokenize_messages, tmplc.parse_spec(GEMMA_NO_BOS, name="g"), MSGS, tok)
    for out in (with_bos, without):
        assert out["input_ids"][0] == tok.bos_token_id
        assert out["input_ids"].count(tok.bos_token_id) == 1
        assert out["labels"][0] == IGNORE
    assert with_bos["input_ids"] == without["input_ids"]
    # the naive path doubles it
    text = tmplc.load("gemma-3").render(MSGS, bos_token=tok.bos_token)
    assert tok(text)["input_ids"][:2] == [tok.bos_token_id] * 2


def test_one_bos_tokenizer_that_does_not_add_bos():
    tok = load_tokenizer("llama3")
    assert not tokenizer_info(tok).adds_bos
    out = tokenize_messages(tmplc.load("llama-3"), MSGS, tok)
    assert out["input_ids"][0] == tok.bos_token_id and out["input_ids"].count(tok.bos_token_id) == 1
    # a variant of the same tokenizer that adds BOS itself: still exactly one
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    rust = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    rust.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                        special_tokens=[("<|begin_of_text|>", tok.bos_token_id)])
    adding = PreTrainedTokenizerFast(tokenizer_object=rust, bos_token="<|begin_of_text|>",
                                     eos_token="<|end_of_text|>")
    assert tokenizer_info(adding).adds_bos
    assert tokenize_messages(tmplc.load("llama-3"), MSGS, adding)["input_ids"] == out["input_ids"]


def test_no_bos_tokenizer_gets_none():
    tok = load_tokenizer("qwen3")
    out = tokenize_messages(tmplc.load("qwen3"), MSGS, tok)
    assert out["input_ids"][0] == tok.convert_tokens_to_ids("<|im_start|>")


def test_double_bos_in_format_is_an_error():
    tok = load_tokenizer("llama3")
    fmt = tmplc.parse_spec("{BOS}{BOS}U:{INPUT}\nA:{OUTPUT}{EOS}U:{INPUT}\nA:{OUTPUT}{EOS}", name="bb")
    with pytest.raises(TmplcError, match="BOS"):
        quiet(tokenize_messages, fmt, MSGS, tok)


# -- special-token text in content ------------------------------------------------------------------

@pytest.mark.parametrize("tok_name,fmt_name,marker", [("llama3", "llama-3", "<|eot_id|>"),
                                                      ("qwen3", "qwen3", "<|im_end|>"),
                                                      ("gemma3", "gemma-3", "<end_of_turn>")])
def test_special_token_text_is_plain_text_by_default(tok_name, fmt_name, marker):
    tok = load_tokenizer(tok_name)
    fmt = tmplc.load(fmt_name)
    msgs = [{"role": "user", "content": f"say {marker} now"}, {"role": "assistant", "content": f"ok {marker} done"}]
    mid = tok.convert_tokens_to_ids(marker)
    plain = tokenize_messages(fmt, msgs, tok)
    ctrl = tokenize_messages(fmt, msgs, tok, special_tokens="control")
    n_template = fmt.render(msgs).count(marker) - 2
    assert plain["input_ids"].count(mid) == n_template
    assert ctrl["input_ids"].count(mid) == n_template + 2
    # control == exactly what inference tokenizes
    text = fmt.render(msgs, bos_token=tok.bos_token or "")
    assert ctrl["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    # the trained text still reads the same
    assert "".join(trained_runs(tok, plain)).startswith(f"ok {marker} done")
    _, summary = format_dataset(fmt, [msgs, MSGS], tok)
    assert summary.special_token_rows == 1 and summary.rows_out == 2


# -- truncation and dropping ------------------------------------------------------------------------

def test_truncation_policies_and_summary():
    tok = load_tokenizer("llama3")
    fmt = tmplc.load("llama-3")
    long = [{"role": "user", "content": "word " * 50}, {"role": "assistant", "content": "answer " * 50}]
    no_asst = [{"role": "user", "content": "hello"}]
    bad = [{"role": "robot", "content": "x"}]
    full = tokenize_messages(fmt, long, tok)
    n = len(full["input_ids"])
    cut = tokenize_messages(fmt, long, tok, max_seq_length=n - 10)
    assert cut["input_ids"] == full["input_ids"][:n - 10] and cut["labels"] == full["labels"][:n - 10]
    with pytest.raises(RowDropped, match="max_seq_length"):
        tokenize_messages(fmt, long, tok, max_seq_length=n - 10, truncation="drop")
    with pytest.raises(TmplcError, match="max_seq_length"):
        tokenize_messages(fmt, long, tok, max_seq_length=n - 10, truncation="error")
    with pytest.raises(RowDropped, match="no trainable tokens left after truncation"):
        tokenize_messages(fmt, long, tok, max_seq_length=20)
    with pytest.raises(RowDropped, match="no trainable tokens"):
        tokenize_messages(fmt, no_asst, tok)
    with pytest.raises(MessageError, match="message 0"):
        tokenize_messages(fmt, bad, tok)
    rows, summary = format_dataset(fmt, [long, no_asst, MSGS, long, bad], tok, max_seq_length=40)
    assert summary.rows_in == 5 and summary.rows_out == 1 and summary.rows_rejected == 4
    assert summary.dropped == {"no trainable tokens": 1, "no trainable tokens left after truncation": 2}
    assert sum(summary.invalid.values()) == 1  # an unknown role is caught when the row is read (as in the CLI)
    assert [e[0] for e in summary.examples] == [e[0] for e in summary.rejected] == [0, 1, 3, 4]
    assert len(rows) == 1 and rows[0]["input_ids"] == tokenize_messages(fmt, MSGS, tok)["input_ids"]
    rows, summary = format_dataset(fmt, [long, MSGS], tok, max_seq_length=n - 10)
    assert summary.truncated == 1 and summary.rows_out == 2
    summary.check()
    assert "rows in:" in str(summary)


# -- pad == EOS (DeepSeek-V3) and the collator ------------------------------------------------------

def test_pad_equals_eos_trains_and_collator_keeps_it():
    tok = deepseek_like()
    assert tok.pad_token_id == tok.eos_token_id
    fmt = tmplc.load("deepseek-v3")
    msgs = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there"},
            {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Bye!"}]
    import importlib

    mod = importlib.import_module("tmplc.formatter.tokenizer_info")

    mod._WARNED.clear()
    with pytest.warns(FormatterWarning, match="pad token"):
        out = tokenize_messages(fmt, msgs, tok)
    eos = tok.eos_token_id
    eos_pos = [k for k, i in enumerate(out["input_ids"]) if i == eos]
    assert len(eos_pos) == 2 and all(out["labels"][k] == eos for k in eos_pos)
    short = tokenize_messages(fmt, msgs[:2], tok)
    feats = [out, short]
    batch = DataCollatorForTmplc(tok, return_tensors="np")(feats)
    labels = batch["labels"].tolist()
    assert labels[0] == out["labels"]
    assert labels[1] == short["labels"] + [IGNORE] * (len(out["labels"]) - len(short["labels"]))
    assert labels[1][len(short["labels"]) - 1] == eos  # the EOS survives padding with pad == eos
    assert batch["attention_mask"].tolist()[1].count(0) == len(out["labels"]) - len(short["labels"])
    assert any(DS_EOS in h for h in tokenizer_info(tok).hazards(fmt))
    # transformers' LM collator derives labels from ids and erases every EOS label
    from transformers import DataCollatorForLanguageModeling

    hf = DataCollatorForLanguageModeling(tok, mlm=False, return_tensors="np")([{"input_ids": out["input_ids"]}])
    assert all(hf["labels"][0][k] == IGNORE for k in eos_pos)
    left = DataCollatorForTmplc(pad_token_id=eos, padding_side="left", pad_to_multiple_of=8,
                                return_tensors=None)(feats)
    assert len(left["input_ids"][1]) % 8 == 0 and left["labels"][1][-1] == eos


def test_collator_torch_tensors():
    import torch
    tok = load_tokenizer("llama3")
    out = tokenize_messages(tmplc.load("llama-3"), MSGS, tok)
    b = DataCollatorForTmplc(tok)([out, out])
    assert b["labels"].dtype == torch.long and b["labels"].shape[0] == 2


def test_multi_token_end_of_turn_is_reported():
    tok = load_tokenizer("gemma3")  # has no <|im_end|> token
    import importlib

    mod = importlib.import_module("tmplc.formatter.tokenizer_info")

    mod._WARNED.clear()
    with pytest.warns(FormatterWarning, match="not a single token"):
        tokenize_messages(tmplc.load("chatml"), MSGS, tok)


def test_slow_tokenizer_refused():
    class Slow:  # any tokenizer without a Rust backend
        is_fast = False
        backend_tokenizer = None

    with pytest.raises(TmplcError, match="slow"):
        tokenize_messages(tmplc.load("chatml"), MSGS, Slow())


# -- backends, batches, datasets ----------------------------------------------------------------------

@given(msgs=conversations())
def test_backends_agree(msgs):
    tok = load_tokenizer("llama3")
    fmt = tmplc.load("llama-3")
    assert tokenizer_info(tok).tiktoken() is not None, "llama-3 vocabulary must verify for tiktoken"
    try:
        a = quiet(tokenize_messages, fmt, msgs, tok, backend="hf")
    except (RowDropped, MessageError) as e:
        with pytest.raises(type(e)):
            quiet(tokenize_messages, fmt, msgs, tok, backend="tiktoken")
        return
    assert quiet(tokenize_messages, fmt, msgs, tok, backend="tiktoken") == a


def test_batch_is_picklable_and_works_with_datasets_map():
    import datasets
    tok = load_tokenizer("qwen3")
    fmt = tmplc.load("qwen3")
    convs = [MSGS, CONV, [{"role": "user", "content": "only user"}],
             [{"role": "user", "content": "a <|im_end|> b"}, {"role": "assistant", "content": "c"}]] * 5
    ds = datasets.Dataset.from_dict({"messages": convs, "other": list(range(len(convs)))})
    # on_error="raise" (the default): the "only user" row (no trainable token) raises, naming the row
    fn = pickle.loads(pickle.dumps(tokenize_batch(fmt, tok, max_seq_length=64)))
    with pytest.raises(RowDropped, match="row 2: dropped: no trainable tokens"):
        ds.map(fn, batched=True, batch_size=3, with_indices=True, remove_columns=ds.column_names)
    # on_error="skip": every row is kept with its status, so nothing is dropped uncounted
    fn = pickle.loads(pickle.dumps(tokenize_batch(fmt, tok, max_seq_length=64, on_error="skip")))
    out = ds.map(fn, batched=True, batch_size=3, num_proc=2, remove_columns=ds.column_names)
    assert out.column_names[:4] == ["input_ids", "labels", "attention_mask", "assistant_masks"]
    assert out["tmplc_status"].count("dropped: no trainable tokens") == 5
    out = out.filter(lambda s: s in ("ok", "truncated"), input_columns="tmplc_status")
    out = out.remove_columns([c for c in out.column_names if c.startswith("tmplc_")])
    expect = [tokenize_messages(fmt, c, tok, max_seq_length=64) for c in convs if c[-1]["role"] == "assistant"]
    assert out.to_list() == expect
    formatted, summary = format_dataset(fmt, ds, tok, num_proc=2, batch_size=3, max_seq_length=64)
    assert formatted.to_list() == expect
    assert summary.rows_in == 20 and summary.rows_out == 15 and summary.dropped == {"no trainable tokens": 5}
    assert summary.special_token_rows == 5


def test_ids_do_not_depend_on_an_earlier_split_special_tokens_call():
    from transformers import AutoTokenizer

    from conftest import tokenizer_dir

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir("qwen3")))  # a private one: its state changes here
    fmt = tmplc.load("qwen3")
    before = quiet(tokenize_messages, fmt, MSGS, tok)
    assert before["input_ids"][0] == tok.convert_tokens_to_ids("<|im_start|>")
    tok("x", split_special_tokens=True)  # transformers sets backend_tokenizer.encode_special_tokens = True
    assert quiet(tokenize_messages, fmt, MSGS, tok) == before
