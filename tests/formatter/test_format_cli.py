"""`tmplc format` end to end: outputs byte-identical across --num-proc, Parquet == JSONL == the
in-process formatter, rows in input order (issue 18)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT, load_tokenizer, tokenizer_dir


def test_outputs_identical_across_num_proc_and_equal_to_the_formatter(tmp_path):
    import pyarrow.parquet as pq

    import tmplc
    from tmplc.formatter import tokenize_messages

    rows = []
    for i in range(240):
        if i % 37 == 5:
            rows.append({"messages": [{"role": "user", "content": "only a question"}]})  # dropped
        elif i % 53 == 7:
            rows.append({"conversations": [{"from": "robot", "value": "x"}]})             # invalid
        else:
            rows.append({"messages": [{"role": "system", "content": f"S{i}"}] + [
                {"role": r, "content": f"{r} {i} {k} " + "word " * (i % 17)} for k in range(3)
                for r in ("user", "assistant")]})
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    outs = {}
    for ext in ("parquet", "jsonl"):
        for n in ("1", "2", "3"):
            out = tmp_path / f"o{n}.{ext}"
            r = subprocess.run([sys.executable, "-m", "tmplc.cli", "format", str(data), "-t", "llama-3", "--tokenizer",
                                str(tokenizer_dir("llama3")), "--out", str(out), "--num-proc", n, "--batch-size", "32",
                                "--max-seq-length", "96", "--max-rejected", "100%"],
                               capture_output=True, text=True, env=env, timeout=300)
            assert r.returncode == 0, r.stderr
            outs[ext, n] = out.read_bytes()
        assert outs[ext, "1"] == outs[ext, "2"] == outs[ext, "3"]
    from_parquet = pq.read_table(tmp_path / "o1.parquet").to_pylist()
    from_jsonl = [json.loads(x) for x in (tmp_path / "o1.jsonl").read_text().splitlines()]
    assert from_parquet == from_jsonl
    tok = load_tokenizer("llama3")
    fmt = tmplc.load("llama-3")
    kept = [i for i, r in enumerate(rows) if "messages" in r and len(r["messages"]) > 1]
    assert [r["tmplc_row"] for r in from_jsonl] == kept
    for r in from_jsonl:
        want = tokenize_messages(fmt, rows[r["tmplc_row"]]["messages"], tok, max_seq_length=96)
        assert {k: r[k] for k in want} == want
