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


def test_format_reports_the_doctors_data_findings(tmp_path):
    """Issue 14 wiring: `tmplc format` prints the doctor's truncation and double-BOS findings for the
    rows it formats (real Llama-3 tokenizer), in its summary and in --summary-json."""
    import tmplc
    from tmplc.formatter import tokenize_messages

    long_rows, bos_rows = {3, 7, 11}, {2, 9}
    tok = load_tokenizer("llama3")
    rows = []
    for i in range(14):
        user = f"question {i} " + "word " * (40 if i in long_rows else 3)
        if i in bos_rows:  # pre-rendered text put in a message
            user = tok.bos_token + "<|start_header_id|>user<|end_header_id|>\n\n" + user
        rows.append({"messages": [{"role": "user", "content": user},
                                  {"role": "assistant", "content": f"answer {i} " + "more " * (
                                      60 if i in long_rows else 4)}]})
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    limit = 64
    # expected values from the formatter's untruncated rows, recomputed here
    fmt = tmplc.load("llama-3")
    full = [tokenize_messages(fmt, r["messages"], tok) for r in rows]
    over = sorted(i for i, f in enumerate(full) if len(f["input_ids"]) > limit)
    assert over == sorted(long_rows)
    cut = sum(sum(1 for x in full[i]["labels"][limit:] if x != -100) for i in over)
    trained = sum(sum(1 for x in f["labels"] if x != -100) for f in full)
    longest = max(range(len(full)), key=lambda i: len(full[i]["input_ids"]))

    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    for n in ("1", "2"):
        summary = tmp_path / f"s{n}.json"
        r = subprocess.run([sys.executable, "-m", "tmplc.cli", "format", str(data), "-t", "llama-3", "--tokenizer",
                            str(tokenizer_dir("llama3")), "--out", str(tmp_path / f"o{n}.parquet"),
                            "--max-seq-length", str(limit), "--num-proc", n, "--batch-size", "4",
                            "--summary-json", str(summary)], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        assert "[double-bos]" in r.stderr and "[truncation]" in r.stderr, r.stderr
        found = {f["code"]: f for f in json.loads(summary.read_text())["findings"]}
        assert set(found) == {"double-bos", "truncation"}
        assert found["double-bos"]["details"]["rows"] == sorted(bos_rows)
        assert found["double-bos"]["details"]["bos_id"] == tok.bos_token_id
        t = found["truncation"]["details"]
        assert t["rows"] == over and t["count"] == len(over)
        assert t["trained_tokens_cut"] == cut and t["trained_tokens"] == trained
        assert t["longest_row"] == longest and t["longest_tokens"] == len(full[longest]["input_ids"])

    # clean rows, no limit: no finding
    clean = tmp_path / "clean.jsonl"
    clean.write_text("".join(json.dumps(r) + "\n" for i, r in enumerate(rows) if i not in bos_rows))
    r = subprocess.run([sys.executable, "-m", "tmplc.cli", "format", str(clean), "-t", "llama-3", "--tokenizer",
                        str(tokenizer_dir("llama3")), "--out", str(tmp_path / "c.parquet"),
                        "--summary-json", str(tmp_path / "c.json")], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "c.json").read_text())["findings"] == []
    assert "[truncation]" not in r.stderr and "[double-bos]" not in r.stderr


def test_cached_tokenizer_info_equals_a_fresh_one(tmp_path, monkeypatch):
    """The tokenizer cache's facts (which let a run skip building the Rust tokenizer) and surface
    table are those of the tokenizer transformers loads, for every fixture vocabulary; the cached
    info encodes like the fresh one."""
    import numpy as np

    import tmplc
    from tmplc.formatter import tokenize_messages
    from tmplc.formatter.tokenizer_info import TokenizerInfo
    from tmplc.formatter.tokenizer_load import load_tokenizer_info

    monkeypatch.setenv("TMPLC_CACHE_DIR", str(tmp_path / "cache"))
    conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <s> there\n"},
            {"role": "assistant", "content": "Hello, 日本語 🙂 friend."}]
    for name, fmt_name in (("llama3", "llama-3"), ("qwen3", "chatml"), ("gemma3", "gemma-3"),
                           ("llama2", "llama-2")):
        fresh = TokenizerInfo(load_tokenizer(name))
        first = load_tokenizer_info(tokenizer_dir(name))     # writes the cache entry
        cached = load_tokenizer_info(tokenizer_dir(name))    # reads it: no Rust tokenizer built yet
        assert cached._rust is None, name
        assert cached.facts() == first.facts() == fresh.facts(), name
        assert (cached.surface is None) == (fresh.surface is None), name
        if fresh.surface is not None:
            assert np.array_equal(cached.surface, fresh.surface) and cached.nfc == fresh.nfc, name
        fmt = tmplc.load(fmt_name)
        assert cached.hazards(fmt) == fresh.hazards(fmt), name
        assert tokenize_messages(fmt, conv, cached) == tokenize_messages(fmt, conv, load_tokenizer(name)), name
        if cached.tiktoken() is not None:  # once its ranks are cached, the tiktoken path reads only the head
            again = load_tokenizer_info(tokenizer_dir(name))
            assert tokenize_messages(fmt, conv, again) == tokenize_messages(fmt, conv, cached), name
            assert again._spec is None and again._rust is None and not isinstance(again._json, str), name
        assert cached.spec == fresh.spec and cached.json_sha256 == fresh.json_sha256, name  # read on demand
        assert all(cached.in_model_vocab(i) == (i in set(_vocab_ids(fresh.spec))) for i in
                   (0, fresh.bos_id or 0, fresh.eos_id or 0, fresh.vocab_size - 1, fresh.vocab_size)), name


def _vocab_ids(spec):
    vocab = spec["model"]["vocab"]
    return vocab.values() if isinstance(vocab, dict) else range(len(vocab))


def test_an_older_tokenizer_cache_entry_is_rebuilt(tmp_path, monkeypatch):
    """An entry in an older layout (the JSON inline, no head) or with its JSON file missing is read
    again through transformers and rewritten, never half-used."""
    from tmplc.formatter.tokenizer_load import _cache_dir, load_tokenizer_info

    monkeypatch.setenv("TMPLC_CACHE_DIR", str(tmp_path / "cache"))
    first = load_tokenizer_info(tokenizer_dir("llama3"))
    (entry,) = [p for p in _cache_dir().glob("*.json") if not p.name.endswith(".tokenizer.json")]
    entry.write_text(json.dumps({"json": first.json, "bos": first.bos_token, "eos": first.eos_token,
                                 "pad": first.pad_token}))
    again = load_tokenizer_info(tokenizer_dir("llama3"))
    assert again._rust is not None and again.facts() == first.facts()  # built through transformers
    assert json.loads(entry.read_text())["layout"] == 2
    entry.with_suffix(".tokenizer.json").unlink()
    third = load_tokenizer_info(tokenizer_dir("llama3"))
    assert third._rust is not None and third.facts() == first.facts()
    assert entry.with_suffix(".tokenizer.json").read_text() == first.json


def test_without_template_the_tokenizer_folders_own_chat_template_formats(tmp_path):
    """``tmplc format`` without ``--template`` uses the ``--tokenizer`` folder's own chat_template
    where tmplc imports it exactly (the same bytes as ``--template`` with the registry entry it
    equals), and refuses with the converter's reason (exit 2, nothing written) where it cannot: the
    npm Llama-3 fixture's template ignores add_generation_prompt."""
    import shutil

    import tmplc

    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a {i}"}]}
            for i in range(20)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))

    def fmt_cli(*args):
        return subprocess.run([sys.executable, "-m", "tmplc.cli", "format", str(data), *args], capture_output=True,
                              text=True, env=env, timeout=300)

    r = fmt_cli("--tokenizer", str(tokenizer_dir("llama3")), "--out", str(tmp_path / "refused.parquet"))
    assert r.returncode == 2 and "no --template given" in r.stderr and "ignores add_generation_prompt" in r.stderr
    assert not (tmp_path / "refused.parquet").exists()
    folder = tmp_path / "tok"
    shutil.copytree(tokenizer_dir("llama3"), folder)
    (folder / "chat_template.jinja").write_text(tmplc.load("llama-3").to_jinja())  # as tmplc fix writes it
    r = fmt_cli("--tokenizer", str(folder), "--out", str(tmp_path / "own.parquet"))
    assert r.returncode == 0, r.stderr
    assert "(template llama-3," in r.stdout + r.stderr
    r = fmt_cli("--tokenizer", str(folder), "--template", "llama-3", "--out", str(tmp_path / "given.parquet"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "own.parquet").read_bytes() == (tmp_path / "given.parquet").read_bytes()
