"""The dataset paths read a per-row ``tools`` column (issue 17): ``tmplc format``, ``format_dataset``
and the ``datasets.map`` batch tokenizer pass each row's tools to the formatter, and give labels,
masks and ``n_tool_call_tokens`` exactly as ``ChatFormat.tokenize(messages, tok, tools=...)``
(the real Qwen3 tokenizer).  Tool definitions arrive as lists (JSONL, Parquet structs with
null-filled keys) or JSON strings (CSV, Parquet text); anything else rejects its row, naming it.
A format without tool support rejects rows with tools or tool messages with the formatter's own
reason; rows in = rows out + rows rejected.  Outputs are byte-identical across ``--num-proc``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tmplc
from tmplc.data import row_tools
from tmplc.data.merged import RowProblem
from tmplc.formatter import RowDropped, format_dataset, tokenize_batch
from tmplc.formatter.core import IGNORE

from conftest import ROOT, load_tokenizer, require_module, tokenizer_dir
from tools.strategies_tools import tool_conversations
from tools.test_qwen3_tools_real import AGENT, WEATHER

TOOLS_FMT = tmplc.load("qwen3-tools")
TEXT_FMT = tmplc.load("qwen3")
SEARCH = {"type": "function", "function": {"name": "search", "description": "Web search",
                                           "parameters": {"type": "object", "properties": {
                                               "query": {"type": "string"}}, "required": ["query"]}}}
# string arguments only: Arrow cannot hold an object in one row and a string in another
AGENT_STR = [dict(m) for m in AGENT]
AGENT_STR[2] = dict(AGENT[2], tool_calls=[
    {"type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": c})}}
    for c in ("Paris", "Tokyo")])
PLAIN = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
SEARCHING = [{"role": "user", "content": "Find tmplc"},
             {"role": "assistant", "content": "", "tool_calls": [
                 {"type": "function", "function": {"name": "search", "arguments": "{\"query\": \"tmplc\"}"}}]},
             {"role": "tool", "content": "a chat-template compiler"},
             {"role": "assistant", "content": "It compiles chat templates."}]


def want(fmt, msgs, tools, tok, **kw):
    """What ChatFormat.tokenize gives for one row, or None when the formatter drops it."""
    try:
        return fmt.tokenize(msgs, tok, tools=tools, **kw)
    except RowDropped:
        return None


def out_equals(row: dict, expected: dict) -> None:
    for k in ("input_ids", "labels", "attention_mask", "assistant_masks"):
        assert row[k] == expected[k], k
    assert row["n_tool_call_tokens"] == expected.get("n_tool_call_tokens", 0)


# ------------------------------------------------------------------------------------------------
# the accepted shapes, one rule (tmplc.data.normalize.row_tools)

def test_accepted_shapes():
    assert row_tools({"messages": PLAIN}) is None
    for none in (None, "", "  ", [], "[]", "null", float("nan")):
        assert row_tools({"tools": none}) is None, none
    assert row_tools({"tools": [WEATHER]}) == [WEATHER]
    assert row_tools({"TOOLS": (WEATHER,)}) == [WEATHER]                   # column names: any case
    assert row_tools({"tools": json.dumps([WEATHER])}) == [WEATHER]
    assert row_tools({"tools": json.dumps([WEATHER]).encode()}) == [WEATHER]
    assert row_tools({"t": [WEATHER]}, "t") == [WEATHER]
    assert row_tools({"tools": [WEATHER]}, None) is None                   # not read
    # Arrow/Parquet: a struct's absent keys arrive as null and are dropped; a JSON string is exact
    filled = {"type": "function", "function": dict(WEATHER["function"], strict=None)}
    filled["function"]["parameters"] = dict(WEATHER["function"]["parameters"], additionalProperties=None)
    assert row_tools({"tools": [filled]}) == [WEATHER]
    assert row_tools({"tools": json.dumps([filled])}) == [filled]


@pytest.mark.parametrize("value, words", [
    (5, "got number"), ({"type": "function"}, "got object"), (True, "got boolean"),
    ('{"type": "function"}', "is a JSON object, not a list"), ('"x"', "is a JSON string, not a list"),
    ("[{", "invalid JSON"), ("[" * 200 + "]" * 200, "nested deeper"),
])
def test_rejected_shapes_say_what_to_give(value, words):
    with pytest.raises(RowProblem) as e:
        row_tools({"tools": value})
    assert words in str(e.value) and "column 'tools'" in str(e.value)
    assert "tool definitions" in str(e.value)


def test_tool_keys_flow_through_normalisation_unchanged():
    from tmplc.data import normalize_row

    msgs, kind = normalize_row({"messages": AGENT, "tools": [WEATHER]})
    assert kind == "openai" and msgs == AGENT
    named = [dict(m, tool_call_id="c1", name="get_weather") if m["role"] == "tool" else m for m in AGENT]
    assert normalize_row({"messages": named})[0] == named
    # Arrow fills absent message keys with null: they are not message keys
    filled = [dict({"reasoning_content": None, "tool_calls": None, "name": None}, **m) for m in AGENT]
    assert normalize_row({"messages": filled})[0] == AGENT


# ------------------------------------------------------------------------------------------------
# the batch paths equal ChatFormat.tokenize

@given(st.lists(tool_conversations(), min_size=1, max_size=4), st.lists(st.integers(0, 2), min_size=4, max_size=4))
def test_batch_rows_equal_tokenize(convs, shapes):
    """Random tool conversations in one batch, tools as a list, a JSON string or absent: every row
    equals ChatFormat.tokenize (labels, masks, n_tool_call_tokens), or is dropped with a reason when
    it has nothing to train."""
    tok = load_tokenizer("qwen3")
    rows = []
    for (msgs, tools), shape in zip(convs, shapes):
        row = {"messages": msgs}
        if tools is not None:
            row["tools"] = json.dumps(tools) if shape == 1 else tools
        rows.append(row)
    out, summary = format_dataset(TOOLS_FMT, rows, tok, row_column="row")
    expected = [want(TOOLS_FMT, m, t or None, tok) for m, t in convs]
    assert [o["row"] for o in out] == [k for k, e in enumerate(expected) if e is not None]
    for o in out:
        out_equals(o, expected[o["row"]])
    assert summary.rows_in == summary.rows_out + summary.rows_rejected == len(rows)
    assert summary.tool_call_tokens == sum(o["n_tool_call_tokens"] for o in out)
    assert all(reason == "no trainable tokens" for _, _, reason in summary.rejected)


def test_truncated_rows_count_the_calls_they_keep():
    tok = load_tokenizer("qwen3")
    full = TOOLS_FMT.tokenize(AGENT, tok, tools=[WEATHER])
    calls = [k for k, lab in enumerate(full["labels"]) if lab != IGNORE]
    for limit in (calls[0] + 3, calls[-1] - 2, len(full["input_ids"]) + 1):
        out, summary = format_dataset(TOOLS_FMT, [{"messages": AGENT, "tools": [WEATHER]}], tok,
                                      max_seq_length=limit)
        out_equals(out[0], want(TOOLS_FMT, AGENT, [WEATHER], tok, max_seq_length=limit))
        assert summary.tool_call_tokens == out[0]["n_tool_call_tokens"]


def test_text_format_rejects_tool_rows_naming_row_and_reason():
    """Rows with tools, tool calls or tool messages, given to a format without tool support: each
    rejected with the formatter's MessageError reason and its row; the others formatted; nothing
    is dropped silently; no tool-call column or total for a text format."""
    tok = load_tokenizer("qwen3")
    rows = [{"messages": PLAIN}, {"messages": PLAIN, "tools": [WEATHER]}, {"messages": AGENT},
            {"messages": PLAIN, "tools": "[]"}, {"messages": [PLAIN[0], {"role": "tool", "content": "r"}]},
            {"messages": PLAIN, "tools": 3}]
    out, summary = format_dataset(TEXT_FMT, rows, tok, row_column="row")
    assert [o["row"] for o in out] == [0, 3]
    assert all("n_tool_call_tokens" not in o for o in out)
    assert out[0]["labels"] == TEXT_FMT.tokenize(PLAIN, tok)["labels"]
    got = {row: (kind, why) for row, kind, why in summary.rejected}
    assert got[1] == ("error", "format 'qwen3' has no tool support: it cannot render tools (use a tool format, "
                               "e.g. qwen3-tools)")
    assert got[2][0] == "error" and got[2][1].startswith("message 2: format 'qwen3' has no tool support")
    assert got[4][0] == "error" and got[4][1].startswith("message 1: unknown role 'tool'")
    assert got[5][0] == "invalid" and "column 'tools'" in got[5][1]
    assert summary.rows_in == 6 == summary.rows_out + summary.rows_rejected
    assert summary.tool_call_tokens is None and "tool_call_tokens" not in summary.as_dict()
    with pytest.raises(tmplc.MessageError) as e:
        format_dataset(TEXT_FMT, rows[:5], tok, on_error="raise")
    assert e.value.row == 1 and "no tool support" in str(e.value)


@pytest.mark.filterwarnings("ignore::tmplc.formatter.FormatterWarning")  # qwen3-tools on Llama 3's vocabulary
def test_fast_paths_decline_tool_rows():
    """The compiled tiktoken plan and the tiktoken backend (the Llama 3 tokenizer qualifies; Qwen3's
    does not) decline rows with tools: results equal the exact HF path and ChatFormat.tokenize, and
    a text format's plan leaves tool rows to the generic path, which rejects them."""
    from tmplc.formatter.plan import get_plan
    from tmplc.formatter.policies import get_policy
    from tmplc.formatter.tokenizer_info import tokenizer_info

    tok = load_tokenizer("llama3")
    info = tokenizer_info(tok)
    enc = info.tiktoken()
    if enc is None:
        pytest.skip("tiktoken is not available for the Llama 3 tokenizer here")
    llama = tmplc.load("llama-3")
    assert get_plan(llama, info, get_policy(None), enc) is not None
    assert get_plan(TOOLS_FMT, info, get_policy(None), enc) is None
    rows = [{"messages": AGENT, "tools": [WEATHER]}, {"messages": PLAIN}, {"messages": SEARCHING, "tools": [SEARCH]},
            {"messages": AGENT}]
    by_backend = {b: format_dataset(TOOLS_FMT, rows, tok, backend=b)[0] for b in ("tiktoken", "hf")}
    assert by_backend["tiktoken"] == by_backend["hf"]
    for o, r in zip(by_backend["hf"], rows):
        out_equals(o, TOOLS_FMT.tokenize(r["messages"], tok, tools=r.get("tools")))
    out, summary = format_dataset(llama, rows, tok, backend="tiktoken", row_column="row")
    assert [o["row"] for o in out] == [1]
    assert out[0]["labels"] == llama.tokenize(PLAIN, tok, backend="hf")["labels"]
    assert sorted(r for r, _, _ in summary.rejected) == [0, 2, 3]


def test_datasets_map_reads_the_tools_column():
    """``Dataset.map(tokenize_batch(...))`` and ``format_dataset`` on a Dataset: tools as a JSON
    string column or as Arrow structs beside the messages, with and without worker processes."""
    datasets = require_module("datasets")
    tok = load_tokenizer("qwen3")
    convs = [(AGENT_STR, [WEATHER]), (PLAIN, None), (SEARCHING, [SEARCH, WEATHER]), (AGENT_STR, None)] * 3
    expected = [TOOLS_FMT.tokenize(m, tok, tools=t) for m, t in convs]
    for as_text in (True, False):
        tools = [json.dumps(t) if as_text and t else t for _, t in convs]
        ds = datasets.Dataset.from_dict({"messages": [m for m, _ in convs], "tools": tools})
        mapped = ds.map(tokenize_batch(TOOLS_FMT, tok), batched=True, batch_size=5, remove_columns=ds.column_names)
        assert len(mapped) == len(convs)
        for row, e in zip(mapped, expected):
            out_equals(row, e)
        for num_proc in (None, 2):
            out, summary = format_dataset(TOOLS_FMT, ds, tok, num_proc=num_proc, batch_size=4)
            assert out.column_names == ["input_ids", "labels", "attention_mask", "assistant_masks",
                                        "n_tool_call_tokens"]
            assert [dict(r) for r in out] == [dict(r) for r in mapped]
            assert summary.tool_call_tokens == sum(e.get("n_tool_call_tokens", 0) for e in expected)


# ------------------------------------------------------------------------------------------------
# tmplc format

def _cli(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "tmplc.cli", "format", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def _rows() -> list[dict]:
    rows = []
    for i in range(26):
        k = i % 6
        if k == 0:
            rows.append({"messages": AGENT, "tools": [WEATHER]})
        elif k == 1:
            rows.append({"messages": [dict(m) for m in SEARCHING[:3]] + [
                {"role": "assistant", "content": f"Answer {i}."}], "tools": json.dumps([SEARCH, WEATHER])})
        elif k == 2:
            rows.append({"messages": [{"role": "user", "content": f"q {i}"},
                                      {"role": "assistant", "content": f"a {i} " * (i % 5)}]})
        elif k == 3:
            rows.append({"messages": AGENT})                           # tool messages, no tool list
        elif k == 4:
            rows.append({"messages": PLAIN, "tools": {"name": "x"}})   # invalid: an object
        else:
            rows.append({"messages": [{"role": "user", "content": "only a question"}], "tools": [SEARCH]})  # dropped
    return rows


def test_format_cli_tools_column_byte_identical_across_num_proc(tmp_path):
    """JSONL in, Parquet and JSONL out, --num-proc 1 and 2: identical bytes; each row equals
    ChatFormat.tokenize with its tools, n_tool_call_tokens included; the summary totals it and
    names every rejected row."""
    import pyarrow.parquet as pq

    rows = _rows()
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    outs = {}
    for ext in ("parquet", "jsonl"):
        for n in ("1", "2"):
            out, summ = tmp_path / f"o{n}.{ext}", tmp_path / f"s{n}{ext}.json"
            r = _cli([str(data), "-t", "qwen3-tools", "--tokenizer", str(tokenizer_dir("qwen3")), "--out", str(out),
                      "--num-proc", n, "--batch-size", "4", "--max-rejected", "100%", "--summary-json", str(summ)])
            assert r.returncode == 0, r.stderr
            outs[ext, n] = out.read_bytes()
            outs["summary", ext, n] = json.loads(summ.read_text())
        assert outs[ext, "1"] == outs[ext, "2"]
    for ext in ("jsonl", "parquet"):
        for n in ("1", "2"):
            outs["summary", ext, n].pop("output")
    assert outs["summary", "jsonl", "1"] == outs["summary", "parquet", "2"]
    from_parquet = pq.read_table(tmp_path / "o1.parquet").to_pylist()
    from_jsonl = [json.loads(x) for x in (tmp_path / "o1.jsonl").read_text().splitlines()]
    assert from_parquet == from_jsonl
    assert list(from_jsonl[0]) == ["input_ids", "labels", "attention_mask", "assistant_masks",
                                   "n_tool_call_tokens", "tmplc_row"]
    tok = load_tokenizer("qwen3")
    for o in from_jsonl:
        src = rows[o["tmplc_row"]]
        tools = src.get("tools")
        out_equals(o, TOOLS_FMT.tokenize(src["messages"], tok,
                                         tools=json.loads(tools) if isinstance(tools, str) else tools))
    assert any(o["n_tool_call_tokens"] for o in from_jsonl)
    s = outs["summary", "jsonl", "1"]
    assert s["tool_call_tokens"] == sum(o["n_tool_call_tokens"] for o in from_jsonl) > 0
    assert s["rows_in"] == len(rows) == s["rows_out"] + s["rows_rejected"]
    rejected = {e["row"]: e for e in s["rejected"]}
    assert set(rejected) == {i for i in range(len(rows)) if i % 6 in (4, 5)}
    assert all(rejected[i]["kind"] == "invalid" and "column 'tools'" in rejected[i]["reason"]
               for i in rejected if i % 6 == 4)


def test_format_cli_text_format_rejects_tool_rows(tmp_path):
    rows = _rows()
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summ, out = tmp_path / "s.json", tmp_path / "o.jsonl"
    r = _cli([str(data), "-t", "qwen3", "--tokenizer", str(tokenizer_dir("qwen3")), "--out", str(out),
              "--max-rejected", "100%", "--summary-json", str(summ)])
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    s = json.loads(summ.read_text())
    assert "tool_call_tokens" not in s
    written = [json.loads(x) for x in out.read_text().splitlines()]
    assert [o["tmplc_row"] for o in written] == [i for i in range(len(rows)) if i % 6 == 2]
    assert "n_tool_call_tokens" not in written[0]
    assert s["rows_in"] == len(rows) == s["rows_out"] + s["rows_rejected"]
    for e in s["rejected"]:
        if e["row"] % 6 in (0, 1, 3):
            assert e["kind"] == "error" and "format 'qwen3' has no tool support" in e["reason"], e
    # --on-error raise: exit 2, naming the row and the reason, no traceback
    data.write_text("".join(json.dumps(r) + "\n" for r in rows[:4]))
    r = _cli([str(data), "-t", "qwen3", "--tokenizer", str(tokenizer_dir("qwen3")), "--out", str(out),
              "--on-error", "raise"])
    assert r.returncode == 2 and "row 0" in r.stderr and "no tool support" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_format_cli_parquet_and_csv_inputs(tmp_path):
    """Parquet with the tools as nested structs (absent keys null-filled by Arrow) or as JSON text,
    and CSV with a JSON tools cell: the same output as the JSONL rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    convs = [(AGENT_STR, [WEATHER]), (SEARCHING, [SEARCH, WEATHER]), (PLAIN, None), (AGENT_STR, [])]
    tok = load_tokenizer("qwen3")
    expected = [TOOLS_FMT.tokenize(m, tok, tools=t) for m, t in convs]
    results = []
    for name, tools in (("structs", [t for _, t in convs]), ("text", [json.dumps(t) for _, t in convs])):
        data = tmp_path / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist([{"messages": m, "tools": t} for (m, _), t in zip(convs, tools)]), data)
        out = tmp_path / f"{name}.jsonl"
        r = _cli([str(data), "-t", "qwen3-tools", "--tokenizer", str(tokenizer_dir("qwen3")), "--out", str(out)])
        assert r.returncode == 0, r.stderr
        results.append(out.read_bytes())
    assert results[0] == results[1]
    for o, e in zip([json.loads(x) for x in results[0].decode().splitlines()], expected):
        out_equals(o, e)
    # CSV: an Alpaca row with a tools cell (cells are text: the tools are a JSON string)
    import csv

    data = tmp_path / "d.csv"
    with data.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["instruction", "output", "tools"])
        w.writerow(["Weather?", "Sunny.", json.dumps([WEATHER])])
        w.writerow(["Hi", "Hello", ""])
        w.writerow(["Bad", "row", "{not json"])
    out, summ = tmp_path / "csv.jsonl", tmp_path / "csv.json"
    r = _cli([str(data), "-t", "qwen3-tools", "--tokenizer", str(tokenizer_dir("qwen3")), "--out", str(out),
              "--max-rejected", "100%", "--summary-json", str(summ)])
    assert r.returncode == 0, r.stderr
    got = [json.loads(x) for x in out.read_text().splitlines()]
    msgs = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "Sunny."}]
    out_equals(got[0], TOOLS_FMT.tokenize(msgs, tok, tools=[WEATHER]))
    assert [o["tmplc_row"] for o in got] == [0, 1]
    s = json.loads(summ.read_text())
    assert [(e["row"], e["kind"]) for e in s["rejected"]] == [(2, "invalid")]
    assert "invalid JSON" in s["rejected"][0]["reason"]


def test_conversation_extension_rejects_rows_with_tools(tmp_path):
    rows = [{"messages": PLAIN}, {"messages": AGENT, "tools": [WEATHER]}, {"messages": PLAIN}]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summ = tmp_path / "s.json"
    r = _cli([str(data), "-t", "qwen3-tools", "--tokenizer", str(tokenizer_dir("qwen3")), "--out",
              str(tmp_path / "o.jsonl"), "--conversation-extension", "2", "--max-rejected", "100%",
              "--summary-json", str(summ)])
    assert r.returncode == 0, r.stderr
    s = json.loads(summ.read_text())
    assert s["rows_in"] == 3 and s["rows_out"] == 2
    assert [e["row"] for e in s["rejected"]] == [1]
    assert "--conversation-extension" in s["rejected"][0]["reason"]


# ------------------------------------------------------------------------------------------------
# tmplc train's data path (in process, datasets.map with workers, Ray Data)

def _train_rows() -> list[dict]:
    return [{"messages": AGENT_STR, "tools": [WEATHER]}, {"messages": PLAIN},
            {"messages": SEARCHING, "tools": json.dumps([SEARCH])}, {"messages": PLAIN, "tools": 7},
            {"messages": AGENT_STR}] * 2


def _check_train(t, rows, tok) -> None:
    kept = [r for r in rows if not isinstance(r.get("tools"), int)]
    assert len(t) == len(kept)
    for k, r in enumerate(kept):
        tools = r.get("tools")
        e = TOOLS_FMT.tokenize(r["messages"], tok, tools=json.loads(tools) if isinstance(tools, str) else tools)
        ids, labels = t.doc(k)
        assert ids.tolist() == e["input_ids"] and labels.tolist() == e["labels"]
    assert t.summary["rows_in"] == len(rows) == t.summary["rows_out"] + t.summary["rows_rejected"]


def test_train_data_reads_the_tools_column():
    from tmplc.train import make_config
    from tmplc.train.data import format_rows

    tok = load_tokenizer("qwen3")
    rows = _train_rows()
    base = dict(model="m", template="qwen3-tools", out="o", data=rows)
    plain = format_rows(make_config(base), TOOLS_FMT, tok)
    _check_train(plain, rows, tok)
    assert plain.summary["tool_call_tokens"] > 0
    workers = format_rows(make_config(base, num_proc=2), TOOLS_FMT, tok)
    assert workers.ids.tolist() == plain.ids.tolist() and workers.labels.tolist() == plain.labels.tolist()
    assert workers.summary["tool_call_tokens"] == plain.summary["tool_call_tokens"]


def test_train_data_on_ray_reads_the_tools_column():
    require_module("ray.data")
    from tmplc.train import make_config
    from tmplc.train.data import format_rows

    tok = load_tokenizer("qwen3")
    rows = _train_rows()
    base = dict(model="m", template="qwen3-tools", out="o", data=rows)
    plain = format_rows(make_config(base), TOOLS_FMT, tok)
    ray = format_rows(make_config(base, ray=True, num_proc=1), TOOLS_FMT, tok)
    _check_train(ray, rows, tok)
    assert ray.summary == plain.summary


def _pair_prompt_text(msgs, tools) -> str:
    return load_tokenizer("qwen3").apply_chat_template(msgs, tools=tools, add_generation_prompt=True, tokenize=False)


PAIR_PROMPT = [{"role": "user", "content": "Weather in Paris?"}]
PAIR_CHOSEN = [{"role": "assistant", "content": "", "tool_calls": [
    {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "content": "{\"temp\": 21}"}, {"role": "assistant", "content": "21 °C."}]
PAIR_REJECTED = [{"role": "assistant", "content": "I cannot check the weather."}]


def test_tokenize_pair_with_tools_splits_the_tool_conversation_exactly():
    """A pair with tools (qwen3-tools, the real Qwen3 tokenizer): the prompt ids are the real
    template's prompt with the tool list (transformers' apply_chat_template, tokenized); prompt +
    each completion is exactly fmt.tokenize of that conversation with the tools (ids and labels);
    the chosen completion's tool call trains, its tool result does not."""
    tok = load_tokenizer("qwen3")
    out = TOOLS_FMT.tokenize_pair(PAIR_PROMPT, PAIR_CHOSEN, PAIR_REJECTED, tok, tools=[WEATHER])
    want = tok(_pair_prompt_text(PAIR_PROMPT, [WEATHER]), add_special_tokens=False)["input_ids"]
    assert out["prompt_input_ids"] == want
    assert "get_weather" in tok.decode(out["prompt_input_ids"])
    n = len(want)
    for part, comp in (("chosen", PAIR_CHOSEN), ("rejected", PAIR_REJECTED)):
        full = TOOLS_FMT.tokenize(PAIR_PROMPT + comp, tok, tools=[WEATHER])
        assert out["prompt_input_ids"] + out[f"{part}_input_ids"] == full["input_ids"]
        assert out[f"{part}_labels"] == full["labels"][n:]
        assert all(x == IGNORE for x in full["labels"][:n])
    trained = tok.decode([i for i, lab in zip(out["chosen_input_ids"], out["chosen_labels"]) if lab != IGNORE])
    assert '"name": "get_weather"' in trained and "21 °C." in trained and "temp" not in trained
    # without the tools, the text-only prompt: a different prompt (never the tool list silently dropped)
    from tmplc.formatter.preference import PairError

    with pytest.raises(PairError) as e:
        tmplc.load("qwen3").tokenize_pair(PAIR_PROMPT, PAIR_CHOSEN, PAIR_REJECTED, tok, tools=[WEATHER])
    assert "no tool support" in e.value.reason


def test_format_preference_reads_a_tools_column(tmp_path):
    """`tmplc format --preference` with a tools column: each row's pair is rendered with its tools
    (as tokenize_pair); a tools cell that is not a list of tool definitions rejects that row, named."""
    from tmplc.formatter.preference import PairError, pair_tools

    rows = [{"prompt": PAIR_PROMPT, "chosen": PAIR_CHOSEN, "rejected": PAIR_REJECTED, "tools": [WEATHER]},
            {"prompt": PAIR_PROMPT, "chosen": PAIR_REJECTED, "rejected": PAIR_REJECTED, "tools": None},
            {"prompt": PAIR_PROMPT, "chosen": PAIR_REJECTED, "rejected": PAIR_REJECTED, "tools": 3}]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    p = subprocess.run([sys.executable, "-m", "tmplc.cli", "format", str(data), "--preference", "--template",
                        "qwen3-tools", "--tokenizer", str(tokenizer_dir("qwen3")), "--out", str(out),
                        "--summary-json", str(summary), "--max-rejected", "50%"],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    tok = load_tokenizer("qwen3")
    assert len(got) == 2
    assert got[0]["prompt_input_ids"] == TOOLS_FMT.tokenize_pair(PAIR_PROMPT, PAIR_CHOSEN, PAIR_REJECTED, tok,
                                                                 tools=[WEATHER])["prompt_input_ids"]
    assert got[1]["prompt_input_ids"] == tok(_pair_prompt_text(PAIR_PROMPT, None),
                                             add_special_tokens=False)["input_ids"]
    s = json.loads(summary.read_text())
    assert [r["row"] for r in s["rejected"]] == [2] and "column 'tools'" in s["rejected"][0]["reason"]
    assert pair_tools({"tools": json.dumps([WEATHER])}) == [WEATHER]
    with pytest.raises(PairError) as e:
        pair_tools({"tools": 3})
    assert "column 'tools'" in e.value.reason and e.value.kind == "invalid"


def test_format_cli_date_fixes_a_dated_format(tmp_path):
    """A format that renders today's date (Mistral Small 3.2's default system prompt): without
    --date the summary says every row carries today's; with --date the rows carry that day, the
    same as ChatFormat.with_date's render tokenised, whatever day the run is made."""
    import datetime

    import pyarrow.parquet as pq

    data = tmp_path / "d.jsonl"
    msgs = [{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": "Sunny."}]
    data.write_text(json.dumps({"messages": msgs}) + "\n", encoding="utf-8")
    tok = str(tokenizer_dir("llama2"))
    p = _cli([str(data), "-t", "mistral-v7-tekken-tools", "--tokenizer", tok, "--out", str(tmp_path / "a.parquet")])
    assert p.returncode == 0, p.stderr
    assert f"every row carries today's, {datetime.date.today().isoformat()}; give --date" in p.stderr
    p = _cli([str(data), "-t", "mistral-v7-tekken-tools", "--tokenizer", tok, "--out", str(tmp_path / "b.parquet"),
              "--date", "1999-12-31"])
    assert p.returncode == 0, p.stderr
    assert "give --date" not in p.stderr
    fixed = tmplc.load("mistral-v7-tekken-tools").with_date(datetime.date(1999, 12, 31))
    text = fixed.render(msgs)
    assert "The current date is 1999-12-31." in text
    ids = load_tokenizer("llama2")(text, add_special_tokens=False)["input_ids"]
    assert pq.read_table(tmp_path / "b.parquet").column("input_ids").to_pylist() == [ids]
    p = _cli([str(data), "-t", "mistral-v7-tekken-tools", "--tokenizer", tok, "--out", str(tmp_path / "c.parquet"),
              "--date", "31/12/1999"])
    assert p.returncode != 0 and "--date: '31/12/1999' is not a date (YYYY-MM-DD)" in p.stderr
