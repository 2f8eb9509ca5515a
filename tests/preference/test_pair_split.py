"""``tokenize_pair`` on real tokenizers (npm fixtures): the prompt/completion split is exact or refused.

Oracles, none of them tmplc's pair code:

* the formatter's own tokenization of the whole conversation (``ChatFormat.tokenize``: tested
  against brute force in tests/formatter): prompt + completion ids equal its ids, and the
  completion labels equal its labels from the prompt's end on;
* HF's tokenizer on the rendered text (``tok(text, add_special_tokens=False)``, plus the BOS the
  tokenizer itself adds): the prompt ids are the tokenized prompt, and a pair is refused exactly
  when the tokenized prompt is not a prefix of the tokenized conversation (a BPE merge);
* the fixtures' REAL chat templates through ``apply_chat_template(tokenize=True)``, where they
  render like the registry entry (gemma3 / gemma-3, qwen3 / qwen3-thinking on alternating
  conversations; llama3's base template for the prompt, as it always appends the generation
  prompt; llama2 has no template: our Jinja through transformers).
"""

from __future__ import annotations

import warnings

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tmplc
from tmplc.formatter.preference import PairError

from conftest import load_tokenizer
from strategies import content_text, conversations

FIXTURES = {"llama3": "llama-3", "qwen3": "qwen3", "gemma3": "gemma-3", "llama2": "llama-2"}
IGNORE = -100

# text an HF tokenizer tokenizes like tmplc's "text" mode: nothing that looks like a special token
_words = st.sampled_from(["Hello", " there", "\n", "\n\n", " ", "  ", "\t", "é", "日本", "🙂", ".", "x1", "' '", "?"])
seam_text = st.lists(_words, max_size=6).map("".join)


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def _adds_bos(tok) -> bool:
    return tok.bos_token_id is not None and tok("a")["input_ids"][:1] == [tok.bos_token_id]


def _hf_ids(tok, text: str) -> list[int]:
    ids = tok(text, add_special_tokens=False)["input_ids"]
    if _adds_bos(tok) and ids[:1] != [tok.bos_token_id]:
        ids = [tok.bos_token_id] + ids
    return ids


def _render(fmt, tok, msgs, agp=False):
    return fmt.render(msgs, add_generation_prompt=agp, bos_token=tok.bos_token or "", eos_token=tok.eos_token)


def _pair(prompt_msgs, chosen, rejected):
    return (prompt_msgs, [{"role": "assistant", "content": chosen}], [{"role": "assistant", "content": rejected}])


def check_exact(fixture, prompt_msgs, chosen, rejected):
    """The invariants of an accepted pair, or of a refusal; returns the columns or None."""
    tok, fmt = load_tokenizer(fixture), tmplc.load(FIXTURES[fixture])
    p, c, r = _pair(prompt_msgs, chosen, rejected)
    try:
        out = _quiet(fmt.tokenize_pair, p, c, r, tok)
    except PairError as e:
        assert e.kind == "error", e
        assert "merges across the prompt/" in e.reason or "renders the prompt differently" in e.reason, e.reason
        part = "chosen" if "/chosen " in e.reason or "when chosen" in e.reason else "rejected"
        whole = _quiet(fmt.tokenize, p + (c if part == "chosen" else r), tok)["input_ids"]
        # the refusal is real: the formatter's conversation does not start with the prompt's ids
        alone = _hf_ids(tok, _render(fmt, tok, p, True))
        assert whole[:len(alone)] != alone
        return None
    n = len(out["prompt_input_ids"])
    for part, comp in (("chosen", c), ("rejected", r)):
        whole = _quiet(fmt.tokenize, p + comp, tok)
        assert out["prompt_input_ids"] + out[f"{part}_input_ids"] == whole["input_ids"]
        assert out[f"{part}_labels"] == whole["labels"][n:]
        assert len(out[f"{part}_labels"]) == len(out[f"{part}_input_ids"])
        assert any(x != IGNORE for x in out[f"{part}_labels"])
    bos = tok.bos_token_id
    if bos is not None and (_adds_bos(tok) or fmt.structure.uses("BOS")):
        assert out["prompt_input_ids"][0] == bos and out["prompt_input_ids"][1] != bos
    for part in ("chosen", "rejected"):
        assert out[f"{part}_input_ids"][:1] != [bos]
    return out


@pytest.mark.parametrize("fixture", list(FIXTURES))
def test_fixed_pairs_split_exactly(fixture):
    tok = load_tokenizer(fixture)
    for prompt_msgs in ([{"role": "user", "content": "What is 2+2?"}],
                        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Name a colour."}]):
        out = check_exact(fixture, prompt_msgs, "Blue, of course.", "I will not.")
        assert out is not None
        # the prompt is the tokenized prompt alone, generation prompt included
        fmt = tmplc.load(FIXTURES[fixture])
        assert out["prompt_input_ids"] == _hf_ids(tok, _render(fmt, tok, prompt_msgs, True))
        # the completion's end-of-turn is in the completion, and trained
        eot = {"llama3": "<|eot_id|>", "qwen3": "<|im_end|>", "gemma3": "<end_of_turn>", "llama2": "</s>"}[fixture]
        eot_id = tok.convert_tokens_to_ids(eot)
        for part in ("chosen", "rejected"):
            k = out[f"{part}_input_ids"].index(eot_id)
            assert out[f"{part}_labels"][k] == eot_id


@pytest.mark.parametrize("fixture", list(FIXTURES))
@settings(max_examples=30)
@given(prompt_msgs=conversations(text=content_text, min_exchanges=1, max_exchanges=3, end_with_assistant=False),
       chosen=content_text, rejected=content_text)
def test_any_content_split_is_the_formatters_tokenization(fixture, prompt_msgs, chosen, rejected):
    check_exact(fixture, prompt_msgs, chosen, rejected)


@pytest.mark.parametrize("fixture", list(FIXTURES))
@settings(max_examples=40)
@given(prompt_msgs=conversations(text=seam_text, min_exchanges=1, max_exchanges=2, end_with_assistant=False),
       chosen=seam_text, rejected=seam_text)
@example(prompt_msgs=[{"role": "user", "content": "Hi"}], chosen="\nHello", rejected="Hello")
def test_refused_exactly_when_hf_tokens_merge_at_the_seam(fixture, prompt_msgs, chosen, rejected):
    """Against HF alone: accepted iff the tokenized prompt is a prefix of both tokenized
    conversations, and then the ids are HF's."""
    tok, fmt = load_tokenizer(fixture), tmplc.load(FIXTURES[fixture])
    p, c, r = _pair(prompt_msgs, chosen, rejected)
    alone = _hf_ids(tok, _render(fmt, tok, p, True))
    wholes = [_hf_ids(tok, _render(fmt, tok, p + x)) for x in (c, r)]
    clean = all(w[:len(alone)] == alone for w in wholes)
    try:
        out = _quiet(fmt.tokenize_pair, p, c, r, tok)
    except PairError as e:
        assert not clean, e
        assert "merges across" in e.reason
        return
    assert clean
    assert out["prompt_input_ids"] == alone
    assert out["prompt_input_ids"] + out["chosen_input_ids"] == wholes[0]
    assert out["prompt_input_ids"] + out["rejected_input_ids"] == wholes[1]


def test_qwen_newline_merge_is_refused_and_named():
    tok, fmt = load_tokenizer("qwen3"), tmplc.load("qwen3")
    with pytest.raises(PairError) as e:
        _quiet(fmt.tokenize_pair, "Hi", "\nHello", "Hello", tok)
    assert e.value.kind == "error"
    assert "a token merges across the prompt/chosen boundary" in e.value.reason
    assert "'ĊĊ'" in e.value.reason


# -- the real chat templates ---------------------------------------------------------------

REAL = {"gemma3": "gemma-3", "qwen3": "qwen3-thinking", "llama3": "llama-3", "llama2": "llama-2"}
_real_text = st.text(st.characters(whitelist_categories=("L", "N", "P", "Zs"), blacklist_characters="<>{}"),
                     min_size=1, max_size=20).map(str.strip).filter(bool)


@pytest.mark.parametrize("fixture", list(REAL))
@settings(max_examples=20)
@given(prompt_msgs=conversations(text=_real_text, system=False, min_exchanges=1, max_exchanges=3,
                                 end_with_assistant=False),
       chosen=_real_text, rejected=_real_text)
def test_equal_to_apply_chat_template_of_the_real_template(fixture, prompt_msgs, chosen, rejected):
    tok, fmt = load_tokenizer(fixture), tmplc.load(REAL[fixture])
    template = tok.chat_template or fmt.to_jinja()  # llama2's fixture has none: our Jinja through transformers
    p, c, r = _pair(prompt_msgs, chosen, rejected)
    out = _quiet(fmt.tokenize_pair, p, c, r, tok)

    def real(msgs, agp):
        ids = tok.apply_chat_template(msgs, chat_template=template, tokenize=True, add_generation_prompt=agp)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)

    prompt = real(p, True)
    if fixture == "llama2":  # the template renders "<s>" as text: tokenized without added specials
        assert prompt[0] == tok.bos_token_id
    assert out["prompt_input_ids"] == prompt
    if fixture != "llama3":  # llama3's base template appends a generation prompt after the completion too
        assert out["prompt_input_ids"] + out["chosen_input_ids"] == real(p + c, False)
        assert out["prompt_input_ids"] + out["rejected_input_ids"] == real(p + r, False)
