"""Exact labels for formats using ``|lstrip``/``|rstrip``, ``{SYSTEM|nonempty}`` and ``{PROMPT=...}``.

* labels == the brute-force reference (reference.py), with the real Llama-3 (byte-level BPE,
  tiktoken backend) and Llama-2 (SentencePiece) tokenizers;
* semantics stated without the reference: a ``|lstrip``/``|rstrip`` format tokenizes a row like
  the untrimmed format tokenizes the row with its contents stripped; an empty system message
  under ``|nonempty`` tokenizes like no system message; ``{PROMPT=...}`` changes nothing in
  training rows (they contain no generation prompt);
* the compiled plan (formatter/plan.py, the tiktoken fast path) is used for ``{PROMPT=...}``
  formats and gives the generic path's ids and labels; formats with a trim side or ``skip_empty``
  take the generic path.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tmplc
import tmplc.formatter.core as core
import tmplc.formatter.plan as plan_mod
from tmplc.errors import MessageError
from tmplc.formatter import tokenizer_info

from conftest import load_tokenizer
from test_labels import _ours  # tmplc's formatter, warnings silenced, None for a dropped row
from reference import IGNORE, reference

L3_HEAD = "<|start_header_id|>{}<|end_header_id|>\n\n"


def llama3_spec(system="{SYSTEM|trim}", inp="{INPUT|trim}", out="{OUTPUT|trim}", prompt="") -> str:
    ex = (inp + "<|eot_id|>" + L3_HEAD.format("assistant") + prompt + out + "<|eot_id|>")
    return ("{BOS}" + L3_HEAD.format("system") + system + "<|eot_id|>" + L3_HEAD.format("user") + ex
            + L3_HEAD.format("user") + ex)


def _fmt(spec, **meta):
    return tmplc.parse_spec(spec, name="t", **meta)


# formats on the Llama-3 tokenizer
SIDES_A = _fmt(llama3_spec("{SYSTEM|lstrip|nonempty}", "{INPUT|rstrip}", "{OUTPUT|lstrip}"))
SIDES_B = _fmt(llama3_spec("{SYSTEM|rstrip|nonempty=You are helpful.}", "{INPUT|lstrip}", "{OUTPUT|rstrip}"))
SIDES_ONLY = _fmt(llama3_spec("{SYSTEM|rstrip}", "{INPUT|lstrip}", "{OUTPUT|rstrip}"))
NONEMPTY = _fmt(llama3_spec("{SYSTEM|nonempty}", "{INPUT}", "{OUTPUT}"))
NONEMPTY_DEFAULT = _fmt(llama3_spec("{SYSTEM|trim|nonempty=Be brief.}"))
PROMPT = _fmt(llama3_spec(prompt="{PROMPT=<think>\n\n}"))
PROMPT_UNTRIMMED = _fmt(llama3_spec("{SYSTEM}", "{INPUT}", "{OUTPUT}", prompt="{PROMPT=<think>\n}"))
ALL = _fmt(llama3_spec("{SYSTEM|rstrip|nonempty}", "{INPUT|lstrip}", "{OUTPUT|rstrip}", prompt="{PROMPT=<think>\n}"))
LLAMA3_FORMATS = {"sides_a": SIDES_A, "sides_b": SIDES_B, "sides_only": SIDES_ONLY, "nonempty": NONEMPTY,
                  "nonempty_default": NONEMPTY_DEFAULT, "prompt": PROMPT, "prompt_untrimmed": PROMPT_UNTRIMMED,
                  "all": ALL}
POLICIES = ["default", "assistant_no_eot", "assistant_header", "last_turn", "all"]

# whitespace at the edges is what the trim sides act on; "" is what |nonempty acts on
_bits = st.sampled_from(["", " ", "  ", "\n", "\n\n", "\t", "x", "Hi", "日本", "🙂", ".", " a ", "\u3000",
                         "<think>", "</think>", "<|eot_id|>"])
edge_text = st.lists(_bits, max_size=5).map("".join)


@st.composite
def conversations(draw, system_values=st.one_of(st.none(), st.just(""), st.just(" "), edge_text)):
    system = draw(system_values)
    msgs = [] if system is None else [{"role": "system", "content": system}]
    for _ in range(draw(st.integers(1, 3))):
        msgs.append({"role": "user", "content": draw(edge_text)})
        msgs.append({"role": "assistant", "content": draw(edge_text)})
    if draw(st.booleans()):
        msgs.pop()
    return msgs


def _assert_reference(fmt, msgs, tok, policy, **kw):
    ids, labels, _, _, _ = reference(tok, fmt, msgs, policy)
    out = _ours(fmt, msgs, tok, policy, **kw)
    if out is None:  # dropped: only because nothing trains
        assert all(x == IGNORE for x in labels)
        return
    assert out["input_ids"] == ids
    assert [k for k, (a, b) in enumerate(zip(out["labels"], labels)) if a != b] == []
    assert len(out["labels"]) == len(labels)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(LLAMA3_FORMATS)), msgs=conversations(), policy=st.sampled_from(POLICIES),
       backend=st.sampled_from(["auto", "hf"]))
def test_labels_equal_bruteforce_llama3(name, msgs, policy, backend):
    _assert_reference(LLAMA3_FORMATS[name], msgs, load_tokenizer("llama3"), policy, backend=backend)


def _strip_row(msgs, side_of):
    return [dict(m, content=side_of[m["role"]](m["content"])) for m in msgs]


@settings(max_examples=25, deadline=None)
@given(msgs=conversations(system_values=st.one_of(st.none(), edge_text)), policy=st.sampled_from(POLICIES))
def test_trim_sides_tokenize_like_stripped_contents(msgs, policy):
    """``|lstrip``/``|rstrip``: exactly the untrimmed format on contents stripped by hand."""
    tok = load_tokenizer("llama3")
    plain = _fmt(llama3_spec("{SYSTEM}", "{INPUT}", "{OUTPUT}"))
    side_of = {"system": str.rstrip, "user": str.lstrip, "assistant": str.rstrip}
    assert _ours(SIDES_ONLY, msgs, tok, policy) == _ours(plain, _strip_row(msgs, side_of), tok, policy)


@settings(max_examples=25, deadline=None)
@given(msgs=conversations(system_values=st.just("")), policy=st.sampled_from(POLICIES))
def test_empty_system_tokenizes_like_no_system(msgs, policy):
    """``|nonempty``: a system message "" is no system message (the default, if any, is shown)."""
    tok = load_tokenizer("llama3")
    assert msgs[0] == {"role": "system", "content": ""}
    for fmt in (NONEMPTY, NONEMPTY_DEFAULT, SIDES_A, SIDES_B):
        assert _ours(fmt, msgs, tok, policy) == _ours(fmt, msgs[1:], tok, policy)
    # without |nonempty the empty system block is rendered: more tokens, the header among them
    plain = _fmt(llama3_spec("{SYSTEM}", "{INPUT}", "{OUTPUT}"))
    a, b = _ours(plain, msgs, tok, policy), _ours(NONEMPTY, msgs, tok, policy)
    if a is not None and b is not None:
        assert len(a["input_ids"]) > len(b["input_ids"])


def test_empty_system_rows_hand_checked():
    tok = load_tokenizer("llama3")
    row = [{"role": "system", "content": ""}, {"role": "user", "content": "Hi"},
           {"role": "assistant", "content": "Hello!"}]
    out = _ours(NONEMPTY_DEFAULT, row, tok)
    text = tok.decode(out["input_ids"])
    assert text == ("<|begin_of_text|>" + L3_HEAD.format("system") + "Be brief.<|eot_id|>" + L3_HEAD.format("user")
                    + "Hi<|eot_id|>" + L3_HEAD.format("assistant") + "Hello!<|eot_id|>")
    trained = tok.decode([i for i, lab in zip(out["input_ids"], out["labels"]) if lab != IGNORE])
    assert trained == "Hello!<|eot_id|>"
    out = _ours(NONEMPTY, row, tok)
    assert tok.decode(out["input_ids"]) == ("<|begin_of_text|>" + L3_HEAD.format("user") + "Hi<|eot_id|>"
                                            + L3_HEAD.format("assistant") + "Hello!<|eot_id|>")
    # " " is not empty: the block is rendered (trimmed to "" by |trim)
    row[0]["content"] = " "
    assert tok.decode(_ours(NONEMPTY_DEFAULT, row, tok)["input_ids"]).startswith(
        "<|begin_of_text|>" + L3_HEAD.format("system") + "<|eot_id|>")
    assert tok.decode(_ours(NONEMPTY, row, tok)["input_ids"]).startswith(
        "<|begin_of_text|>" + L3_HEAD.format("system") + " <|eot_id|>")


def test_trim_sides_hand_checked():
    tok = load_tokenizer("llama3")
    row = [{"role": "system", "content": "  s  "}, {"role": "user", "content": "  x  "},
           {"role": "assistant", "content": "  y  "}]
    out = _ours(SIDES_B, row, tok)  # system |rstrip, user |lstrip, assistant |rstrip
    assert tok.decode(out["input_ids"]) == (
        "<|begin_of_text|>" + L3_HEAD.format("system") + "  s<|eot_id|>" + L3_HEAD.format("user") + "x  <|eot_id|>"
        + L3_HEAD.format("assistant") + "  y<|eot_id|>")
    trained = tok.decode([i for i, lab in zip(out["input_ids"], out["labels"]) if lab != IGNORE])
    assert trained == "  y<|eot_id|>"
    out = _ours(SIDES_A, row, tok)  # system |lstrip, user |rstrip, assistant |lstrip
    assert tok.decode(out["input_ids"]).endswith(
        L3_HEAD.format("system") + "s  <|eot_id|>" + L3_HEAD.format("user") + "  x<|eot_id|>"
        + L3_HEAD.format("assistant") + "y  <|eot_id|>")
    trained = tok.decode([i for i, lab in zip(out["input_ids"], out["labels"]) if lab != IGNORE])
    assert trained == "y  <|eot_id|>"


@settings(max_examples=25, deadline=None)
@given(msgs=conversations(), policy=st.sampled_from(POLICIES))
def test_prompt_only_changes_no_training_row(msgs, policy):
    tok = load_tokenizer("llama3")
    for with_prompt in (PROMPT, PROMPT_UNTRIMMED, ALL):
        without = tmplc.ChatFormat(replace(with_prompt.structure, assistant=replace(
            with_prompt.structure.assistant, prompt_only="")), with_prompt.meta)
        assert with_prompt.structure != without.structure
        assert _ours(with_prompt, msgs, tok, policy) == _ours(without, msgs, tok, policy)


# -- the compiled plan (tiktoken fast path) --------------------------------------------------------

def _plan(fmt, tok, policy=None):
    info = tokenizer_info(tok)
    enc = info.tiktoken()
    assert enc is not None, "the Llama-3 vocabulary must verify for the tiktoken backend"
    opts = core.make_options(policy)
    return plan_mod.get_plan(fmt, info, opts.policy, enc)


PLAN_POLICIES = ["default", "assistant_no_eot", "assistant_header", "all"]


def test_plan_applies_to_prompt_only_formats_only():
    tok = load_tokenizer("llama3")
    for policy in PLAN_POLICIES:
        pol = None if policy == "default" else policy
        assert _plan(PROMPT, tok, pol) is not None, policy
        assert _plan(PROMPT_UNTRIMMED, tok, pol) is not None, policy
        for fmt in (SIDES_A, SIDES_B, SIDES_ONLY, NONEMPTY, NONEMPTY_DEFAULT, ALL):
            assert _plan(fmt, tok, pol) is None, (fmt.to_spec(), policy)


def _generic(monkeypatch, fmt, msgs, tok, policy):
    with monkeypatch.context() as mp:
        mp.setattr(core, "get_plan", lambda *a, **k: None)
        return _ours(fmt, msgs, tok, policy, backend="tiktoken")


@settings(max_examples=30, deadline=None)
@given(msgs=conversations(), policy=st.sampled_from(PLAN_POLICIES))
def test_plan_equals_generic_path_for_prompt_only(monkeypatch_module, msgs, policy):
    tok = load_tokenizer("llama3")
    for fmt in (PROMPT, PROMPT_UNTRIMMED):
        plan = _plan(fmt, tok, None if policy == "default" else policy)
        assert plan is not None
        try:
            fmt.segments(msgs)  # rows the renderer refuses are the generic path's to report
        except MessageError:
            continue
        fast = _ours(fmt, msgs, tok, policy, backend="tiktoken")
        assert fast == _generic(monkeypatch_module, fmt, msgs, tok, policy)
        assert fast == _ours(fmt, msgs, tok, policy, backend="hf")


def test_plan_takes_plain_prompt_only_rows():
    """The fast path really runs: the plan encodes ordinary rows itself (None = generic path)."""
    tok = load_tokenizer("llama3")
    plan = _plan(PROMPT, tok)
    row = [{"role": "system", "content": "S"}, {"role": "user", "content": " Hi "},
           {"role": "assistant", "content": "Hello!\n"}]
    got = plan.encode(row)
    assert got is not None
    ids, labels = list(got[0]), list(got[1])
    out = _ours(PROMPT, row, tok, backend="hf")
    assert (ids, labels) == (out["input_ids"], out["labels"])
    assert tok.decode([i for i, lab in zip(ids, labels) if lab != IGNORE]) == "Hello!<|eot_id|>"


@settings(max_examples=20, deadline=None)
@given(msgs=conversations(), policy=st.sampled_from(PLAN_POLICIES))
def test_ungated_plan_is_exact(monkeypatch_module, msgs, policy):
    """With the field gate (``_PLAN_VALUES``) lifted, the plan still gets every row right or leaves
    it to the generic path: it compiles the reference walk's own events (trim sides, ``skip_empty``
    and all), so there is no rule of its own that could disagree (no runtime self-check)."""
    tok = load_tokenizer("llama3")
    pol = None if policy == "default" else policy
    with monkeypatch_module.context() as mp:
        mp.setattr(plan_mod, "_PLAN_VALUES", {})
        for fmt in (SIDES_A, SIDES_B, SIDES_ONLY, NONEMPTY, NONEMPTY_DEFAULT, ALL):
            mp.setattr(plan_mod, "_PLANS", {})
            plan = _plan(fmt, tok, pol)
            got = plan.encode(msgs) if plan is not None else None
            if got is None:
                continue
            ids, labels, _, _, _ = reference(tok, fmt, msgs, policy)  # dropped rows included
            assert (list(got[0]), list(got[1])) == (ids, labels)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


# -- SentencePiece (Llama-2): the first reply token still trains ----------------------------------

LLAMA2_NEW = ("{BOS}[INST] <<SYS>>\n{SYSTEM|rstrip|nonempty}\n<</SYS>>\n\n{INPUT|rstrip} [/INST]{SPLIT}{REPLY}"
              "{PROMPT=<think>} {OUTPUT|lstrip} {EOS}"
              "{BOS}[INST] {INPUT|rstrip} [/INST]{SPLIT}{REPLY}{PROMPT=<think>} {OUTPUT|lstrip} {EOS}")
sp_text = st.lists(st.sampled_from(["", " ", "  ", "\n", "Four", "of course", ".", "日本", " x "]),
                   max_size=4).map("".join)


@settings(max_examples=25, deadline=None)
@given(msgs=conversations(system_values=st.one_of(st.none(), st.just(""), sp_text)),
       policy=st.sampled_from(POLICIES))
def test_labels_equal_bruteforce_sentencepiece(msgs, policy):
    tok = load_tokenizer("llama2")
    fmt = _fmt(LLAMA2_NEW, bos_token="<s>", eos_token="</s>")
    _assert_reference(fmt, msgs, tok, policy)


def test_sentencepiece_hand_checked():
    tok = load_tokenizer("llama2")
    fmt = _fmt(LLAMA2_NEW, bos_token="<s>", eos_token="</s>")
    msgs = [{"role": "system", "content": ""}, {"role": "user", "content": "What is two plus two?  "},
            {"role": "assistant", "content": "  Four, of course."}]
    out = _ours(fmt, msgs, tok)
    text = "<s>[INST] What is two plus two? [/INST] Four, of course. </s>"
    assert fmt.render(msgs, bos_token="<s>", eos_token="</s>") == text
    assert out["input_ids"] == tok(text, add_special_tokens=False)["input_ids"]
    trained = [t for t, lab in zip(tok.convert_ids_to_tokens(out["input_ids"]), out["labels"]) if lab != IGNORE]
    assert trained == ["▁Four", ",", "▁of", "▁course", ".", "▁", "</s>"]
    # the generation prompt has the prompt-only text; training rows never do
    assert fmt.render(msgs[:2], add_generation_prompt=True, bos_token="<s>") == \
        "<s>[INST] What is two plus two? [/INST]<think>"
