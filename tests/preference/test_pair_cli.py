"""``tmplc format --preference``: pairs written as TRL's columns, every row accounted for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import tmplc
from tmplc.cli import main

from conftest import ROOT, load_tokenizer, tokenizer_dir

COLS = ("prompt_input_ids", "chosen_input_ids", "rejected_input_ids", "chosen_labels", "rejected_labels")


def U(t):
    return {"role": "user", "content": t}


def A(t):
    return {"role": "assistant", "content": t}


# (row, the pair it means or None, the rejection kind and a piece of its reason)
ROWS = [
    ({"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"}, ([U("What is 2+2?")], [A("4")], [A("5")]), None),
    ({"prompt": [U("Hi")], "chosen": [A("Hello!")], "rejected": [A("Bye.")]}, ([U("Hi")], [A("Hello!")], [A("Bye.")]),
     None),
    ({"chosen": [U("Sky?"), A("Blue.")], "rejected": [U("Sky?"), A("Green.")]},
     ([U("Sky?")], [A("Blue.")], [A("Green.")]), None),
    ({"chosen": "\n\nHuman: Hey\n\nAssistant: Hello", "rejected": "\n\nHuman: Hey\n\nAssistant: Go"},
     ([U("Hey")], [A("Hello")], [A("Go")]), None),
    ({"prompt": "x", "chosen": "\nmerged", "rejected": "ok"}, None, ("error", "merges across the prompt/chosen")),
    ({"prompt": "x", "chosen": "a"}, None, ("invalid", "no 'rejected' column")),
    ("not json", None, ("invalid", "invalid JSON")),
    ({"chosen": [U("A"), A("B")], "rejected": [U("C"), A("D")]}, None, ("invalid", "share no prompt")),
    ({"prompt": [U("Q"), {"role": "robot", "content": "?"}], "chosen": "a", "rejected": "b"}, None,
     ("invalid", "prompt message 1: unknown role 'robot'")),
]


def _data(tmp_path, rows=ROWS):
    p = tmp_path / "pairs.jsonl"
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r, _, _ in rows))
    return p


def _run(capsys, *argv):
    code = main(["format", *map(str, argv)])
    return code, capsys.readouterr().err


def _expected(tok, fmt, pair, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fmt.tokenize_pair(*pair, tok, **kw)


def test_jsonl_and_parquet_equal_tokenize_pair_and_every_rejected_row_named(tmp_path, capsys):
    import pyarrow.parquet as pq

    data = _data(tmp_path)
    tok, fmt = load_tokenizer("qwen3"), tmplc.load("qwen3")
    outs = {}
    for ext in ("jsonl", "parquet"):
        out, summ = tmp_path / f"o.{ext}", tmp_path / f"s_{ext}.json"
        code, err = _run(capsys, data, "--preference", "-t", "qwen3", "--tokenizer", tokenizer_dir("qwen3"), "--out",
                         out, "--summary-json", summ, "--max-rejected", "100%", "--batch-size", "4")
        assert code == 0, err
        outs[ext] = pq.read_table(out).to_pylist() if ext == "parquet" else \
            [json.loads(x) for x in out.read_text().splitlines()]
        s = json.loads(summ.read_text())
        assert s["written"] is True and s["rows_in"] == len(ROWS) == s["rows_out"] + s["rows_rejected"]
        want = [(k, kind, why) for k, (_, pair, bad) in enumerate(ROWS) if bad for kind, why in [bad]]
        assert [(r["row"], r["kind"]) for r in s["rejected"]] == [(k, kind) for k, kind, _ in want]
        for r, (_, _, why) in zip(s["rejected"], want):
            assert why in r["reason"], r
    assert outs["jsonl"] == outs["parquet"]
    kept = [k for k, (_, pair, _) in enumerate(ROWS) if pair]
    assert [r["tmplc_row"] for r in outs["jsonl"]] == kept
    for r in outs["jsonl"]:
        assert list(r) == list(COLS) + ["tmplc_row"]
        assert {c: r[c] for c in COLS} == _expected(tok, fmt, ROWS[r["tmplc_row"]][1])


def test_too_many_rejected_writes_nothing_but_the_summary(tmp_path, capsys):
    data, out, summ = _data(tmp_path), tmp_path / "o.parquet", tmp_path / "s.json"
    code, err = _run(capsys, data, "--preference", "-t", "qwen3", "--tokenizer", tokenizer_dir("qwen3"), "--out", out,
                     "--summary-json", summ)
    assert code == 1
    assert "5 of 9 rows rejected" in err and "nothing written" in err
    assert not out.exists()
    s = json.loads(summ.read_text())
    assert s["written"] is False and s["rows_in"] == 9 and len(s["rejected"]) == 5


def test_no_row_reads_as_a_pair_exits_2(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"messages": [U("a"), A("b")]}) + "\n")
    code, err = _run(capsys, data, "--preference", "-t", "qwen3", "--tokenizer", tokenizer_dir("qwen3"), "--out",
                     tmp_path / "o.jsonl")
    assert code == 2 and "no row reads as a preference pair" in err and "row 0: invalid: no 'chosen' column" in err


def test_on_error_raise_names_the_row(tmp_path, capsys):
    code, err = _run(capsys, _data(tmp_path), "--preference", "-t", "qwen3", "--tokenizer", tokenizer_dir("qwen3"),
                     "--out", tmp_path / "o.jsonl", "--on-error", "raise")
    assert code == 2 and "row 4: a token merges across the prompt/chosen boundary" in err
    assert not (tmp_path / "o.jsonl").exists()


def test_options_that_do_not_apply_are_refused(tmp_path, capsys):
    for extra in (["--preview", "2"], ["--merged-prompt", "{x}"], ["--conversation-extension", "2"],
                  ["--source", "openai"]):
        code, err = _run(capsys, _data(tmp_path), "--preference", "-t", "qwen3", "--tokenizer",
                         tokenizer_dir("qwen3"), "--out", tmp_path / "o.jsonl", *extra)
        assert code == 2 and "tmplc: error:" in err, extra
        assert "Traceback" not in err


def test_max_seq_length_truncates_drops_or_fails(tmp_path, capsys):
    tok, fmt = load_tokenizer("llama3"), tmplc.load("llama-3")
    rows = [({"prompt": "Say something long.", "chosen": "word " * 40, "rejected": "short"},
             ([U("Say something long.")], [A("word " * 40)], [A("short")]), None)]
    data = _data(tmp_path, rows)
    full = _expected(tok, fmt, rows[0][1])
    n = len(full["prompt_input_ids"])
    limit = n + 10
    base = [data, "--preference", "-t", "llama-3", "--tokenizer", tokenizer_dir("llama3"), "--max-seq-length", limit]
    code, err = _run(capsys, *base, "--out", tmp_path / "t.jsonl")
    assert code == 0, err
    (r,) = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert r["chosen_input_ids"] == full["chosen_input_ids"][:10] and r["rejected_input_ids"] == full["rejected_input_ids"]
    assert "truncated:      1" in err
    code, err = _run(capsys, *base, "--out", tmp_path / "d.jsonl", "--truncation", "drop", "--max-rejected", "100%")
    assert code == 1 and "every row was rejected" in err and "longer than max_seq_length" in err
    code, err = _run(capsys, *base, "--out", tmp_path / "e.jsonl", "--truncation", "error")
    assert code == 1 and "row 0:" in err and f"> max_seq_length {limit}" in err
    assert not (tmp_path / "e.jsonl").exists() and not (tmp_path / "d.jsonl").exists()


def test_csv_and_parquet_inputs(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    tok, fmt = load_tokenizer("gemma3"), tmplc.load("gemma-3")
    csv = tmp_path / "d.csv"
    csv.write_text('prompt,chosen,rejected\n"Q, with comma?",Yes.,No.\n')
    code, err = _run(capsys, csv, "--preference", "-t", "gemma-3", "--tokenizer", tokenizer_dir("gemma3"), "--out",
                     tmp_path / "c.jsonl")
    assert code == 0, err
    (r,) = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert {c: r[c] for c in COLS} == _expected(tok, fmt, ([U("Q, with comma?")], [A("Yes.")], [A("No.")]))
    # UltraFeedback's layout: a prompt string and whole conversations as lists of structs
    table = pa.Table.from_pylist([{"prompt": "Sky?", "chosen": [U("Sky?"), A("Blue.")],
                                   "rejected": [U("Sky?"), A("Green.")], "score_chosen": 9.0}])
    pq.write_table(table, tmp_path / "u.parquet")
    code, err = _run(capsys, tmp_path / "u.parquet", "--preference", "-t", "gemma-3", "--tokenizer",
                     tokenizer_dir("gemma3"), "--out", tmp_path / "u.jsonl")
    assert code == 0, err
    (r,) = [json.loads(x) for x in (tmp_path / "u.jsonl").read_text().splitlines()]
    assert {c: r[c] for c in COLS} == _expected(tok, fmt, ([U("Sky?")], [A("Blue.")], [A("Green.")]))


def test_as_a_command(tmp_path):
    """The installed entry point, in a fresh process: exit 0 and one line per accepted row."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = tmp_path / "o.jsonl"
    r = subprocess.run([sys.executable, "-m", "tmplc.cli", "format", str(_data(tmp_path)), "--preference", "-t",
                        "llama-2", "--tokenizer", str(tokenizer_dir("llama2")), "--out", str(out), "--max-rejected",
                        "5"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "rows in:        9" in r.stderr
    assert len(out.read_text().splitlines()) == 9 - r.stderr.count("\n  row ")
