"""The ``assistant_no_reasoning`` policy: an answer's reasoning block (Qwen3's ``<think>\\n...
\\n</think>\\n\\n``) is masked, its answer, tool calls and end of turn still train; the default
policy trains it.  Checked on the real Qwen3 tokenizer against the brute-force reference of
test_tool_masks with the reasoning characters taken out."""

from __future__ import annotations

from hypothesis import given, settings

from tmplc.formatter.policies import get_policy
from tmplc.registry import registry

from conftest import load_tokenizer
from formatter.reference import IGNORE, has_special_text, inside_labels, pieces_encode
from tools.strategies_tools import tool_conversations
from tools.test_tool_masks import TRAINED

FMT = registry["qwen3-tools"]
MSGS = [{"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n4"}]


def test_the_reasoning_block_is_masked_and_the_answer_trains():
    tok = load_tokenizer("qwen3")
    out = FMT.tokenize(MSGS, tok, policy="assistant_no_reasoning")
    trained = tok.decode([i for i, lab in zip(out["input_ids"], out["labels"]) if lab != IGNORE])
    assert trained == "4<|im_end|>\n"
    full = FMT.tokenize(MSGS, tok)
    assert tok.decode([i for i, lab in zip(full["input_ids"], full["labels"]) if lab != IGNORE]) == \
        "<think>\nadd them\n</think>\n\n4<|im_end|>\n"
    assert get_policy("reasoning=no").train_reasoning is False
    assert get_policy("assistant_no_reasoning").describe().endswith("reasoning=no")


def _brute(tok, msgs, tools):
    segs = FMT.segments(msgs, eos_token=tok.eos_token, tools=tools)
    text = "".join(s.text for s in segs)
    flags = []
    for s in segs:
        flags += [s.role == "assistant" and s.part in TRAINED and not s.reasoning] * len(s.text)
    data = [s.__class__(s.text, s.role, "content" if s.part == "call_content" else s.part, s.message_index,
                        s.trainable) for s in segs]
    if has_special_text(tok, data):
        ids, offs = pieces_encode(tok, data)
    else:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offs = list(enc["input_ids"]), list(enc["offset_mapping"])
    return ids, inside_labels(ids, offs, flags)


@settings(max_examples=40)
@given(tool_conversations())
def test_random_conversations_masked_reasoning_equals_brute_force(conv):
    msgs, tools = conv
    tok = load_tokenizer("qwen3")
    ids, labels = _brute(tok, msgs, tools)
    if all(lab == IGNORE for lab in labels):
        return
    out = FMT.tokenize(msgs, tok, tools=tools, policy="assistant_no_reasoning")
    assert (out["input_ids"], out["labels"]) == (ids, labels)
