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


def _cli(*args):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "tmplc.cli", *args], capture_output=True, text=True, env=env,
                          timeout=180)


def test_merged_prompt_escapes_as_readme_writes_them(tmp_path):
    """--merged-prompt '{instruction}[[\\n\\nInput: {input}]]' (README's string, as a shell passes it)
    trains real newlines; '\\\\n' is a literal backslash-n (11.3)."""
    import tmplc
    from tmplc.formatter import tokenize_messages

    from conftest import load_tokenizer

    tok_dir = tokenizer_dir("llama3")
    tok = load_tokenizer("llama3")
    fmt = tmplc.load("llama-3")
    (tmp_path / "d.csv").write_text("instruction,input,output\nSum it,1 2,3\n")
    readme = r"{instruction}[[\n\nInput: {input}]]"          # exactly the characters the README shows
    for prompt, user in ((readme, "Sum it\n\nInput: 1 2"), (r"{instruction}\\n{input}", "Sum it\\n1 2")):
        out = tmp_path / "o.jsonl"
        r = _cli("format", str(tmp_path / "d.csv"), "-t", "llama-3", "--tokenizer", str(tok_dir), "--out", str(out),
                 "--merged-prompt", prompt)
        assert r.returncode == 0, r.stderr
        row = json.loads(out.read_text())
        want = tokenize_messages(fmt, [{"role": "user", "content": user}, {"role": "assistant", "content": "3"}], tok)
        assert row["input_ids"] == want["input_ids"] and row["labels"] == want["labels"]


def test_one_number_rule_whichever_reader(tmp_path):
    """A CSV read by tmplc, the same CSV through `datasets` (a float column: 22.0) and a list of rows
    render `Age: 22` alike (11.4)."""
    import datasets

    import tmplc
    from tmplc.formatter import format_dataset

    from conftest import load_tokenizer

    tok = load_tokenizer("llama3")
    fmt = tmplc.load("llama-3")
    (tmp_path / "d.csv").write_text("name,age,output\nBob,22,ok\nAl,,fine\n")
    ds = datasets.load_dataset("csv", data_files=str(tmp_path / "d.csv"), split="train")
    assert ds[0]["age"] == 22.0  # datasets reads the column as float (a cell is empty)
    kw = dict(merged_prompt="{name}[[ Age: {age}]]", output_column="output")
    via_ds, s1 = format_dataset(fmt, ds, tok, **kw)
    via_file, s2 = format_dataset(fmt, read_rows(tmp_path / "d.csv"), tok, **kw)
    by_hand, _ = format_dataset(fmt, [[{"role": "user", "content": "Bob Age: 22"}, {"role": "assistant", "content": "ok"}],
                                      [{"role": "user", "content": "Al"}, {"role": "assistant", "content": "fine"}]], tok)
    assert via_ds.to_list() == via_file == by_hand and s1.rows_out == s2.rows_out == 2


def test_tokenize_batch_reads_every_shape_or_raises_with_the_row(tmp_path):
    """ShareGPT through Dataset.map(tokenize_batch(..., messages_column="conversations")) is
    formatted, not silently emptied; a bad row raises naming its index (11.2)."""
    import datasets
    import pytest as _pytest

    import tmplc
    from tmplc.formatter import tokenize_batch, tokenize_messages

    from conftest import load_tokenizer

    tok = load_tokenizer("qwen3")
    fmt = tmplc.load("qwen3")
    share = [{"conversations": [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": f"a{i}"}]} for i in range(5)]
    ds = datasets.Dataset.from_list(share)
    out = ds.map(tokenize_batch(fmt, tok, messages_column="conversations"), batched=True,
                 remove_columns=ds.column_names)
    want = [tokenize_messages(fmt, [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}],
                              tok) for i in range(5)]
    assert out.to_list() == want
    alpaca = datasets.Dataset.from_list([{"instruction": "q0", "input": "", "output": "a0"}])
    assert alpaca.map(tokenize_batch(fmt, tok), batched=True, remove_columns=alpaca.column_names).to_list() == want[:1]
    bad = datasets.Dataset.from_list(share[:3] + [{"conversations": [{"from": "robot", "value": "x"}]}])
    with _pytest.raises(MessageError, match="row 3, message 0: unknown role 'robot'"):
        bad.map(tokenize_batch(fmt, tok, messages_column="conversations"), batched=True, with_indices=True,
                remove_columns=bad.column_names)
    kept = bad.map(tokenize_batch(fmt, tok, messages_column="conversations", on_error="skip"), batched=True,
                   remove_columns=bad.column_names)
    assert len(kept) == 4 and kept["tmplc_status"][3].startswith("invalid: message 0: unknown role")


def test_preview_and_bos_token_flags(tmp_path):
    """--preview N prints the trained/masked view and writes nothing; --bos-token sets what {BOS}
    renders (a token of the vocabulary, else exit 2) (11.7, 11.9)."""
    tok = tokenizer_dir("qwen3")
    (tmp_path / "d.jsonl").write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1]) + "\n")
    spec = "{BOS}U: {INPUT}\nA: {OUTPUT}<|im_end|>\nU: {INPUT}\nA: {OUTPUT}<|im_end|>\n"
    r = _cli("format", str(tmp_path / "d.jsonl"), "-t", spec, "--tokenizer", str(tok), "--preview", "1",
             "--bos-token", "<|endoftext|>")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("row 0: ") and r.stdout.splitlines()[1].startswith("<|endoftext|>·U")
    assert "· Hello[[<|im_end|>·\\n]]" in r.stdout and "row 1" not in r.stdout  # " Hello" straddles: masked
    assert list(tmp_path.iterdir()) == [tmp_path / "d.jsonl"]
    r = _cli("format", str(tmp_path / "d.jsonl"), "-t", spec, "--tokenizer", str(tok), "--preview", "1",
             "--bos-token", "<|no such token|>")
    assert r.returncode == 2 and "not a token of this tokenizer" in r.stderr and "Traceback" not in r.stderr


def test_a_json_file_of_bare_message_lists_reads_like_jsonl(tmp_path, capsys):
    """Regression: a .json file whose rows are bare lists of messages had each list taken as a
    whole batch by the reader, so every message became a row (all rejected); the rows are the
    lists, as in JSONL, and the outputs are the same bytes."""
    tok = tokenizer_dir("qwen3")
    rows = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}] for i in range(5)]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    outs = []
    for name in ("d.json", "d.jsonl"):
        out = tmp_path / (name + ".out.jsonl")
        summary = tmp_path / (name + ".summary.json")
        assert main(["format", str(tmp_path / name), "--template", "qwen3", "--tokenizer", str(tok),
                     "--out", str(out), "--summary-json", str(summary), "--batch-size", "2"]) == 0
        s = json.loads(summary.read_text())
        assert s["rows_in"] == s["rows_out"] == 5 and s["rows_rejected"] == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
