"""Dataset shaping (readers, normalizers, merged_prompt, extension, row errors) and `tmplc format`."""

from __future__ import annotations

import csv
import json

import pytest

from tmplc.cli import main
from tmplc.data import MergedPrompt, normalize_rows, read_rows
from tmplc.errors import MessageError, TmplcError

from conftest import tokenizer_dir

ROWS = [
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
    {"conversations": [{"from": "Human", "value": "Q"}, {"FROM": "GPT", "VALUE": "A"}]},
    {"instruction": "Do X", "input": "", "output": "Done"},
    {"instruction": "Do Y", "input": "ctx", "output": "Ok", "system": "S"},
    {"prompt": "P", "completion": "C"},
    {"messages": [{"role": "robot", "content": "x"}]},
    {"nothing": 1},
]


def test_normalizers_and_row_errors():
    convs, rep = normalize_rows(ROWS, default_system="Sys")
    assert rep.rows_in == 7 and rep.rows_out == 5 and rep.rows_rejected == 2
    assert [n for n, _ in convs] == [0, 1, 2, 3, 4]
    assert convs[1][1] == [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Q"},
                           {"role": "assistant", "content": "A"}]
    assert convs[2][1][1]["content"] == "Do X"
    assert convs[3][1] == [{"role": "system", "content": "S"}, {"role": "user", "content": "Do Y\n\nctx"},
                           {"role": "assistant", "content": "Ok"}]
    assert [r for r, _ in rep.examples] == [5, 6]
    assert "message 0: unknown role 'robot'" in rep.examples[0][1]
    with pytest.raises(MessageError) as e:
        normalize_rows(ROWS, on_error="raise")
    assert e.value.row == 5 and e.value.index == 0


def test_merged_prompt_optional_blocks():
    mp = MergedPrompt.parse("{instruction}[[\nYour input is:\n{input}]][[ (n={n}, src={src})]] {{literal}}")
    assert mp.render({"instruction": "Do X", "input": "ctx", "n": 0, "src": "w"}) == \
        "Do X\nYour input is:\nctx (n=0, src=w) {literal}"
    # a block vanishes when ANY of its columns is missing/empty (Unsloth checks only the first)
    assert mp.render({"instruction": "Do Y", "input": "", "n": 5, "src": None}) == "Do Y {literal}"
    assert mp.render({"instruction": "Do Z", "input": None, "n": 5, "src": "  "}) == "Do Z {literal}"
    for bad in ("[[no column]]", "{a}[[{b}", "{a}]]", "[[{a}[[{b}]]]]", "{a} { b"):
        with pytest.raises(TmplcError):
            MergedPrompt.parse(bad)
    rows = [{"instruction": "A", "input": "x", "output": "1"}, {"instruction": None, "input": "", "output": "2"}]
    convs, rep = normalize_rows(rows, merged_prompt="{instruction}[[ / {input}]]")
    assert convs == [(0, [{"role": "user", "content": "A / x"}, {"role": "assistant", "content": "1"}])]
    assert rep.examples == [(1, "column 'instruction' is missing or null")]
    with pytest.raises(TmplcError, match="do not exist"):
        normalize_rows(rows, merged_prompt="{instrukshun}")


def test_conversation_extension_is_seeded():
    rows = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(10)]
    a, _ = normalize_rows(rows, conversation_extension=3, seed=1, default_system="S")
    b, _ = normalize_rows(rows, conversation_extension=3, seed=1, default_system="S")
    c, _ = normalize_rows(rows, conversation_extension=3, seed=2, default_system="S")
    assert a == b and a != c and len(a) == 10
    for n, msgs in a:
        assert [m["role"] for m in msgs] == ["system"] + ["user", "assistant"] * 3
        assert msgs[1]["content"] == f"q{n}"


def test_readers(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"instruction": "i", "input": "", "output": "o"}, {"instruction": "j", "input": "k", "output": "p"}]
    (tmp_path / "d.json").write_text(json.dumps({"data": rows}))
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n{bad\n")
    with (tmp_path / "d.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    for ext in ("json", "csv", "parquet"):
        assert read_rows(tmp_path / f"d.{ext}") == rows
    got = read_rows(tmp_path / "d.jsonl")
    assert got[:2] == rows and len(got) == 3  # the bad line is row 2 (blank line is not a row)
    _, rep = normalize_rows(got)
    assert rep.examples[0][0] == 2 and "invalid JSON" in rep.examples[0][1]


def test_cli_format_end_to_end(tmp_path, capsys):
    import datasets  # noqa: F401
    tok = tokenizer_dir("qwen3")
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    out = tmp_path / "o.jsonl"
    summary = tmp_path / "s.json"
    args = ["format", str(data), "--template", "qwen3", "--tokenizer", str(tok), "--out", str(out),
            "--max-seq-length", "12", "--summary-json", str(summary)]
    assert main(args) == 1 and not out.exists()  # 3 of 7 rejected: above the default --max-rejected 10%
    assert "3 of 7 rows rejected" in capsys.readouterr().err.splitlines()[0]
    rc = main(args + ["--max-rejected", "3"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "rows in:        7" in err
    s = json.loads(summary.read_text())
    assert s["rows_in"] == s["rows_out"] + s["rows_rejected"] == 7
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == s["rows_out"]
    assert all(len(x["input_ids"]) <= 12 and len(x["labels"]) == len(x["input_ids"]) for x in lines)
    assert {x["tmplc_row"] for x in lines} <= {0, 1, 2, 3, 4}
    rc = main(["format", str(data), "--template", "qwen3", "--tokenizer", str(tok), "--out",
               str(tmp_path / "o.parquet"), "--on-error", "raise"])
    assert rc == 2
    assert "row 5, message 0" in capsys.readouterr().err


def test_cli_render_show_labels(tmp_path, capsys):
    tok = tokenizer_dir("qwen3")
    m = tmp_path / "m.json"
    m.write_text(json.dumps([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "\nHello"}]))
    assert main(["render", "qwen3", "-m", str(m), "--tokenizer", str(tok), "--show-labels", "--plain"]) == 0
    out = capsys.readouterr().out
    assert out.endswith("assistant·\\n\\n[[Hello·<|im_end|>·\\n]]\n")  # the straddling "\n\n" stays masked
