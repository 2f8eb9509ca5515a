"""`tmplc render` reads every row shape `tmplc format` reads (issue 11.9), and the token options of
compile/render (issue 11.7): a plain-text spec with {BOS}/{EOS} works from the CLI."""

from __future__ import annotations

import json

import pytest

from conftest import tokenizer_dir
from tmplc import registry
from tmplc.cli import main

WANT = registry["chatml"].render([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])


def _render(capsys, *argv) -> str:
    capsys.readouterr()
    assert main(["render", "chatml", *argv]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name, text", [
    ("openai.jsonl", json.dumps({"messages": [{"role": "user", "content": "Hi"},
                                              {"role": "assistant", "content": "Hello"}]}) + "\n"),
    ("sharegpt.jsonl", json.dumps({"conversations": [{"from": "human", "value": "Hi"},
                                                     {"from": "gpt", "value": "Hello"}]}) + "\n"),
    ("alpaca.json", json.dumps([{"instruction": "Hi", "input": "", "output": "Hello"}])),
    ("pc.jsonl", json.dumps({"prompt": "Hi", "completion": "Hello"}) + "\n"),
    ("alpaca.csv", "instruction,input,output\nHi,,Hello\n"),
    ("one.json", json.dumps([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])),
    ("lists.jsonl", json.dumps([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]) + "\n"),
])
def test_every_row_shape(tmp_path, capsys, name, text):
    p = tmp_path / name
    p.write_text(text)
    assert _render(capsys, "--messages", str(p)) == WANT


def test_parquet(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "d.parquet"
    pq.write_table(pa.table({"conversations": [[{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]]}), p)
    assert _render(capsys, "--messages", str(p)) == WANT


def test_merged_prompt_csv_preview(tmp_path, capsys):
    p = tmp_path / "d.csv"
    p.write_text("name,age,answer\nAnn,22,yes\nBob,31,no\n")
    out = _render(capsys, "--messages", str(p), "--merged-prompt", "Name: {name}[[ Age: {age}]]",
                  "--output-column", "answer", "--limit", "1")
    assert out == registry["chatml"].render([{"role": "user", "content": "Name: Ann Age: 22"},
                                             {"role": "assistant", "content": "yes"}])


def test_a_bad_row_names_the_file_and_row(tmp_path, capsys):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"}]}) + "\n"
                 + json.dumps({"conversations": [{"from": "robot", "value": "x"}]}) + "\n")
    capsys.readouterr()
    assert main(["render", "chatml", "--messages", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tmplc: error: row 1") and str(p) in err and "robot" in err


SPEC = "{BOS}U: {INPUT}\nA: {OUTPUT}{EOS}\nU: {INPUT}\nA: {OUTPUT}{EOS}\n"


def test_bos_eos_flags_and_tokenizer(tmp_path, capsys):
    spec = tmp_path / "be.spec"
    spec.write_text(SPEC)
    m = tmp_path / "m.json"
    m.write_text(json.dumps([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]))
    capsys.readouterr()
    assert main(["render", str(spec), "--messages", str(m)]) == 2  # says which flags to give
    assert "--bos-token TEXT --eos-token TEXT, or --tokenizer DIR" in capsys.readouterr().err
    assert main(["render", str(spec), "--messages", str(m), "--bos-token", "<s>", "--eos-token", "</s>"]) == 0
    assert capsys.readouterr().out == "<s>U: Hi\nA: Yo</s>\n"
    tok = tokenizer_dir("llama3")  # its tokenizer_config.json: <|begin_of_text|> / <|end_of_text|>
    cfg = json.loads((tok / "tokenizer_config.json").read_text())
    assert main(["render", str(spec), "--messages", str(m), "--tokenizer", str(tok)]) == 0
    assert capsys.readouterr().out == f"{cfg['bos_token']}U: Hi\nA: Yo{cfg['eos_token']}\n"


def test_to_all_writes_ollama_with_the_tokens_and_says_why_without(tmp_path, capsys):
    spec = tmp_path / "be.spec"
    spec.write_text(SPEC)
    capsys.readouterr()
    assert main(["compile", str(spec), "--to", "all", "--out", str(tmp_path / "a")]) == 0
    out, err = capsys.readouterr()
    assert "ollama    refused:" in out and "--eos-token" in out  # never silently dropped
    assert "tmplc: ollama not written:" in err
    assert main(["compile", str(spec), "--to", "all", "--out", str(tmp_path / "b"), "--eos-token", "</s>"]) == 0
    assert (tmp_path / "b" / "Modelfile").is_file()
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["refused"] == {}
