"""Loss masks on tool conversations (qwen3-tools with the real Qwen3 tokenizer, llama-3.1-tools with
the real Llama-3 tokenizer) equal a brute-force
reference: the rendered text tokenized once by the tokenizer itself (special-token text in message
data is plain text), a token trained iff every character of its span is trainable, where the
trainable characters are written out again here by the default policy's rule: an assistant
message's lead, content (its reasoning block included), tool calls and suffix; never a tool
result, the tool list, a system or user turn.  ``n_tool_call_tokens`` is the number of trained
tokens inside the tool calls, counted the same way."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings

from tmplc.registry import registry

from conftest import load_tokenizer
from formatter.reference import IGNORE, has_special_text, inside_labels, pieces_encode
from tools.strategies_tools import one_call_answers, tool_conversations
from tools.test_qwen3_tools_real import AGENT, WEATHER

FMT = registry["qwen3-tools"]
TRAINED = ("lead", "content", "call", "call_content", "suffix")


def brute(tok, msgs, tools, fmt=FMT):
    segs = fmt.segments(msgs, bos_token=tok.bos_token or "", eos_token=tok.eos_token, tools=tools)
    text = "".join(s.text for s in segs)
    flags, in_call = [], []
    for s in segs:
        flags += [s.role == "assistant" and s.part in TRAINED] * len(s.text)
        in_call += [s.part in ("call", "call_content")] * len(s.text)
    # message data (contents, call names and arguments) is content to the reference tokenizer
    data = [replace(s, part="content") if s.part == "call_content" else s for s in segs]
    if has_special_text(tok, data):
        ids, offs = pieces_encode(tok, data)
    else:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offs = list(enc["input_ids"]), list(enc["offset_mapping"])
    labels = inside_labels(ids, offs, flags)
    calls = sum(1 for lab, (a, b) in zip(labels, offs) if lab != IGNORE and all(in_call[a:b]))
    has_calls = any(m.get("tool_calls") for m in msgs)
    return ids, labels, calls if has_calls else None


def check(msgs, tools, fmt=FMT, tokenizer="qwen3"):
    tok = load_tokenizer(tokenizer)
    ids, labels, calls = brute(tok, msgs, tools, fmt)
    if all(lab == IGNORE for lab in labels):
        return  # the formatter drops such a row (tested elsewhere)
    out = fmt.tokenize(msgs, tok, tools=tools)
    assert out["input_ids"] == ids
    assert out["labels"] == labels
    assert out.get("n_tool_call_tokens") == calls


def test_agent_conversation_masks():
    tok = load_tokenizer("qwen3")
    for tools in (None, [WEATHER]):
        check(AGENT, tools)
    out = FMT.tokenize(AGENT, tok, tools=[WEATHER])
    trained = tok.decode([i for i, lab in zip(out["input_ids"], out["labels"]) if lab != IGNORE])
    # the calls, the reasoning and both ends of turn train; the tool results and tool list do not
    assert '{"name": "get_weather", "arguments": {"city": "Paris"}}' in trained
    assert "Two cities: two calls." in trained and trained.count("<|im_end|>") == 2
    assert "rain" not in trained.replace("Tokyo rain.", "") and "# Tools" not in trained
    assert out["n_tool_call_tokens"] > 20


def test_rows_without_calls_report_no_call_count():
    out = FMT.tokenize(AGENT[:2] + [{"role": "assistant", "content": "x"}], load_tokenizer("qwen3"))
    assert "n_tool_call_tokens" not in out


@settings(max_examples=60)
@given(tool_conversations())
def test_random_tool_conversation_masks_equal_brute_force(conv):
    msgs, tools = conv
    check(msgs, tools)


LLAMA = registry["llama-3.1-tools"]


def test_llama31_agent_conversation_masks():
    """Llama 3.1: the tool list sits in the first user turn (context), a call trains, an ipython
    result does not."""
    msgs = one_call_answers([{k: v for k, v in m.items() if k != "reasoning_content"} for m in AGENT])
    tok = load_tokenizer("llama3")
    for tools in (None, [], [WEATHER]):
        check(msgs, tools, LLAMA, "llama3")
    out = LLAMA.tokenize(msgs, tok, tools=[WEATHER])
    trained = tok.decode([i for i, lab in zip(out["input_ids"], out["labels"]) if lab != IGNORE])
    assert '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>' in trained
    assert '{"name": "get_weather", "parameters": "{\\"city\\": \\"Tokyo\\"}"}<|eot_id|>' in trained
    assert "Given the following functions" not in trained and "temp" not in trained and "ipython" not in trained
    assert out["n_tool_call_tokens"] > 20


@settings(max_examples=40)
@given(tool_conversations(reasoning=False))
def test_llama31_random_tool_conversation_masks_equal_brute_force(conv):
    msgs, tools = conv
    check(one_call_answers(msgs), tools, LLAMA, "llama3")
