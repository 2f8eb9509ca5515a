"""Hostile and broken datasets, tokenizer folders and outputs through ``tmplc format`` (a subprocess).

Each case asserts: the exit code; no "Traceback" on stderr; the first stderr line names the file
or row and the problem; and, where rows were read, rows in = rows out + rejected with every
rejected row index listed in ``--summary-json``.  (issues 11.5, 11.6, 12.2, 12.3, 12.5-12.8, 12.10)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, tokenizer_dir

OK = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
J = json.dumps(OK)
USER_ONLY = json.dumps({"messages": [{"role": "user", "content": "Hi"}]})


def lines(*rows: str) -> bytes:
    return ("\n".join(rows) + "\n").encode()


def parquet(table: dict) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(table), buf)
    return buf.getvalue()


def cli(*args: str, cwd: Path | None = None, stdout=subprocess.PIPE, timeout: int = 180, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), TOKENIZERS_PARALLELISM="false")
    return subprocess.run([sys.executable, "-m", "tmplc.cli", *args], cwd=cwd, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=timeout, env=env, **kw)


def check_clean(r, code: int, *words: str) -> str:
    err = r.stderr
    assert "Traceback" not in err, err
    assert r.returncode == code, (r.returncode, err)
    first = err.strip().splitlines()[0] if err.strip() else ""
    for w in words:
        assert w in first, (w, first)
    return first


# -------------------------------------------------------------------------------------- datasets
# (file name, bytes, extra args, exit code, words in the first stderr line, rejected rows or None)
DATA_CASES = [
    ("empty.jsonl", b"", [], 2, ["empty.jsonl", "no data rows"], None),
    ("blank.jsonl", b"\n  \n\n", [], 2, ["blank.jsonl", "no data rows"], None),
    ("header_only.csv", b"instruction,input,output\n", [], 2, ["header_only.csv", "no data rows"], None),
    ("no_shape.csv", b"a,b\n1,2\n", [], 2, ["no_shape.csv", "no known shape", "--merged-prompt"], None),
    ("empty.csv", b"", [], 2, ["empty.csv", "empty CSV file"], None),
    ("missing_col.csv", b"question,output\nhi,there\n", ["--merged-prompt", "{question} {context}"], 2,
     ["missing_col.csv", "['context']"], None),
    ("missing_col.jsonl", lines(json.dumps({"q": "a", "output": "b"})), ["--merged-prompt", "{question}"], 2,
     ["missing_col.jsonl", "'question'"], None),
    ("not_parquet.parquet", b"this is not parquet at all", [], 2, ["not_parquet.parquet", "not a Parquet file"],
     None),
    ("truncated.parquet", None, [], 2, ["truncated.parquet", "Parquet"], None),
    ("messages_str.jsonl", lines(json.dumps({"messages": "hi"}), json.dumps({"messages": 5})), [], 2,
     ["messages_str.jsonl", "no row reads as a conversation", "row 0", "must be a list of messages"], None),
    ("scalar.json", b"42", [], 2, ["scalar.json", "must hold a list of rows"], None),
    ("bad.json", b'[{"messages": []},\n {"messages": [}]', [], 2, ["bad.json:2:", "invalid JSON"], None),
    ("data.txt", b"hello", [], 2, ["data.txt", "unknown data file type"], None),
    ("wrong_source.jsonl", lines(J, J), ["--source", "sharegpt"], 2,
     ["wrong_source.jsonl", "row 0", "no 'conversations' column"], None),
    ("utf16.jsonl", lines(J).decode().encode("utf-16"), [], 2, ["utf16.jsonl:1:1", "UTF-16"], None),
    # one bad row is rejected with its index; the run goes on
    ("surrogate.jsonl", lines(J, json.dumps({"messages": [{"role": "user", "content": "a\ud800"},
                                                          {"role": "assistant", "content": "b"}]}), J),
     ["--max-rejected", "1"], 0, ["surrogate.jsonl"], {1: "lone surrogate U+D800"}),
    ("deep.jsonl", lines(J, "[" * 100_000 + "]" * 100_000, J), ["--max-rejected", "1"], 0, [],
     {1: "nested deeper than"}),
    ("bigint.jsonl", lines(J, '{"messages": [], "n": ' + "9" * 5000 + "}", J), ["--max-rejected", "1"], 0, [],
     {1: "digits"}),
    ("bad_utf8.jsonl", lines(J) + b'{"messages": [{"role": "user", "content": "a\xff"}]}\n' + lines(J),
     ["--max-rejected", "1"], 0, [], {1: "bad_utf8.jsonl:2: invalid UTF-8 at byte offset"}),
    ("bad_utf8.csv", b"instruction,input,output\nhi,,there\nbad\xff,,x\nok,,yes\n", ["--max-rejected", "1"], 0, [],
     {1: "bad_utf8.csv:3: invalid UTF-8 at byte offset"}),
    ("extra_cells.csv", b"instruction,input,output\nhi,,there,EXTRA\nhi,,there\n", ["--max-rejected", "1"], 0, [],
     {0: "4 cells, the header has 3"}),
    ("big_field.csv", b"instruction,input,output\n" + b"x" * 200_000 + b",,y\nhi,,there\n", [], 0, [], {}),
    ("u2028.jsonl", lines(json.dumps({"messages": [{"role": "user", "content": "a\u2028b\u0085c"},
                                                   {"role": "assistant", "content": "d"}]}, ensure_ascii=False)),
     [], 0, [], {}),
    ("bom.jsonl", b"\xef\xbb\xbf" + lines(J, J), [], 0, [], {}),
    ("bytes.parquet", None, ["--max-rejected", "1"], 0, [], {1: "bytes that are not UTF-8"}),
    ("null_content.jsonl", lines(json.dumps({"messages": [{"role": "user", "content": None},
                                                          {"role": "assistant", "content": "x"}]})), [], 0, [], {}),
    # loud failures: nothing out, too many rejected, --truncation error
    ("all_dropped.jsonl", lines(USER_ONLY, USER_ONLY), [], 1, ["all_dropped.jsonl", "every row was rejected",
                                                             "row 0"], {0: "no trainable tokens",
                                                                         1: "no trainable tokens"}),
    ("too_many.jsonl", lines(*[J] * 7, *[USER_ONLY] * 3), [], 1, ["3 of 10 rows rejected", "--max-rejected 10%"],
     {7: "no trainable", 8: "no trainable", 9: "no trainable"}),
    ("too_many_count.jsonl", lines(*[J] * 7, *[USER_ONLY] * 3), ["--max-rejected", "2"], 1, ["above --max-rejected 2"],
     {7: "", 8: "", 9: ""}),
    ("accepted.jsonl", lines(*[J] * 7, *[USER_ONLY] * 3), ["--max-rejected", "30%"], 0, [], {7: "", 8: "", 9: ""}),
    ("too_long.jsonl", lines(J, json.dumps({"messages": [{"role": "user", "content": "word " * 200},
                                                         {"role": "assistant", "content": "x"}]})),
     ["--max-seq-length", "64", "--truncation", "error", "--max-rejected", "100%"], 1,
     ["too_long.jsonl", "row 1", "--truncation error"], {1: "max_seq_length 64"}),
    ("thirty_bad.jsonl", lines(*[J] * 10, *['{"x": 1}'] * 30), ["--max-rejected", "100%"], 0, [],
     {n: "no known shape" for n in range(10, 40)}),
]


def _special_bytes(name: str) -> bytes:
    if name == "truncated.parquet":
        d = parquet({"messages": [[{"role": "user", "content": "a"}]] * 50})
        return d[: len(d) // 2]
    if name == "bytes.parquet":
        return parquet({"instruction": [b"hello", b"\xff\xfe"], "output": [b"world", b"x"]})
    raise KeyError(name)


@pytest.mark.parametrize("name, data, extra, code, words, rejected", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_hostile_dataset(tmp_path, name, data, extra, code, words, rejected):
    tok = tokenizer_dir("llama3")
    f = tmp_path / name
    f.write_bytes(data if data is not None else _special_bytes(name))
    out = tmp_path / "out" / "train.jsonl"
    summary = tmp_path / "summary.json"
    r = cli("format", str(f), "-t", "llama-3", "--tokenizer", str(tok), "--out", str(out),
            "--summary-json", str(summary), *extra)
    check_clean(r, code, *words)
    assert out.exists() == (code == 0)
    assert not [p for p in (tmp_path / "out").glob(".*.tmp")] if (tmp_path / "out").exists() else True
    if rejected is None:
        return
    s = json.loads(summary.read_text())
    assert s["rows_in"] == s["rows_out"] + s["rows_rejected"]
    got = {e["row"]: e["reason"] for e in s["rejected"]}
    assert sorted(got) == sorted(rejected)
    for row, words_ in rejected.items():
        assert words_ in got[row], (row, got[row])
    if code == 0:
        assert len(out.read_text().splitlines()) == s["rows_out"]
    if len(got) > 20:
        assert f"and {len(got) - 20} more rejected rows" in r.stderr


def test_bytes_and_numbers_are_text_not_reprs(tmp_path):
    """Parquet bytes are decoded (never b'...'); 22.0 reads as 22 whichever reader (11.4, 12.5c)."""
    tok = tokenizer_dir("llama3")
    (tmp_path / "b.parquet").write_bytes(_special_bytes("bytes.parquet"))
    r = cli("format", str(tmp_path / "b.parquet"), "-t", "llama-3", "--tokenizer", str(tok), "--preview", "1")
    check_clean(r, 0)
    assert "hello" in r.stdout and "b'" not in r.stdout
    (tmp_path / "a.parquet").write_bytes(parquet({"age": [22.0, 0.5], "output": ["x", "y"]}))
    (tmp_path / "a.csv").write_text("age,output\n22,x\n0.5,y\n")
    views = []
    for f in ("a.parquet", "a.csv"):
        r = cli("format", str(tmp_path / f), "-t", "llama-3", "--tokenizer", str(tok), "--preview", "2",
                "--merged-prompt", "Age: {age}")
        check_clean(r, 0)
        views.append(r.stdout)
    assert views[0] == views[1] and "·22·" in views[0] and "22·.·0" not in views[0]


# -------------------------------------------------------------------------------------- usage
USAGE_CASES = [
    (["--num-proc", "-1"], "--num-proc -1"), (["--max-seq-length", "0"], "--max-seq-length 0"),
    (["--policy", "bogus"], "--policy"), (["--max-rejected", "lots"], "--max-rejected"),
    (["--batch-size", "0"], "--batch-size 0"), (["--merged-prompt", "{a"], "--merged-prompt"),
]


@pytest.mark.parametrize("extra, words", USAGE_CASES, ids=[c[1] for c in USAGE_CASES])
def test_usage_errors_exit_2(tmp_path, extra, words):
    f = tmp_path / "d.jsonl"
    f.write_bytes(lines(J))
    r = cli("format", str(f), "-t", "llama-3", "--tokenizer", str(tmp_path), "--out", str(tmp_path / "o.jsonl"),
            *extra)
    check_clean(r, 2, words)


# -------------------------------------------------------------------------------------- tokenizers
def _tok_case(tmp_path: Path, kind: str) -> str:
    src = tokenizer_dir("llama3")
    d = tmp_path / "tok"
    if kind == "hub id":
        return "meta-llama/Llama-3.1-8B-Instruct"
    if kind == "missing":
        return str(tmp_path / "nope")
    d.mkdir()
    if kind == "empty":
        return str(d)
    if kind == "a file":
        (d / "tokenizer.json").write_bytes((src / "tokenizer.json").read_bytes())
        return str(d / "tokenizer.json")
    (d / "tokenizer_config.json").write_bytes((src / "tokenizer_config.json").read_bytes())
    data = (src / "tokenizer.json").read_bytes()
    if kind == "truncated json":
        data = data[: len(data) // 3]
    elif kind == "not utf-8":
        data = b"\xff\xfe" + data[2:]
    elif kind == "not a tokenizer":
        data = b'{"model": {"type": "Nonsense"}}'
    elif kind == "corrupt config":
        (d / "tokenizer_config.json").write_bytes(b"{oops")
    (d / "tokenizer.json").write_bytes(data)
    return str(d)


TOKENIZER_CASES = [
    ("missing", ["no such folder", "local folder"]), ("hub id", ["hub id", "never downloads"]),
    ("empty", ["no tokenizer.json", "empty folder"]), ("a file", ["is a file"]),
    ("truncated json", ["tokenizer.json", "invalid JSON"]), ("not utf-8", ["tokenizer.json", "UTF-16"]),
    ("not a tokenizer", ["tokenizer.json", "cannot load"]), ("corrupt config", ["tokenizer_config.json:1:2"]),
]


@pytest.mark.parametrize("kind, words", TOKENIZER_CASES, ids=[c[0] for c in TOKENIZER_CASES])
def test_tokenizer_folder_problems_exit_2(tmp_path, kind, words):
    f = tmp_path / "d.jsonl"
    f.write_bytes(lines(J))
    r = cli("format", str(f), "-t", "llama-3", "--tokenizer", _tok_case(tmp_path, kind),
            "--out", str(tmp_path / "o.jsonl"))
    check_clean(r, 2, *words)
    assert len(r.stderr.strip().splitlines()) <= 3  # a sentence, not a transformers traceback


# -------------------------------------------------------------------------------------- outputs
def test_output_problems(tmp_path):
    tok = str(tokenizer_dir("llama3"))
    f = tmp_path / "d.jsonl"
    f.write_bytes(lines(J, J))
    (tmp_path / "afile").write_text("x")
    run = lambda out, *a: cli("format", str(f), "-t", "llama-3", "--tokenizer", tok, "--out", out, *a)  # noqa: E731
    check_clean(run(str(tmp_path)), 2, "--out", "must end with")                # a folder (no suffix)
    (tmp_path / "dir.jsonl").mkdir()
    check_clean(run(str(tmp_path / "dir.jsonl")), 2, "dir.jsonl", "is a folder")
    check_clean(run(str(tmp_path / "afile" / "o.jsonl")), 2, "afile is a file")
    check_clean(run("/sys/kernel/tmplc-test.jsonl"), 2, "/sys/kernel/tmplc-test.jsonl")  # a read-only folder
    check_clean(run("/dev/full"), 2, "--out")                                    # no suffix
    r = cli("format", str(f), "-t", "llama-3", "--tokenizer", tok, "--out", "x.jsonl", "--summary-json", "/dev/full",
            cwd=tmp_path)
    check_clean(r, 2, "/dev/full", "no space left")
    assert Path("/dev/full").is_char_device() and not (tmp_path / "x.jsonl").exists()
    check_clean(run(str(f)), 2, "same file")                                     # would overwrite the data
    out = tmp_path / "new" / "deeper" / "o.parquet"                               # missing parents: created
    check_clean(run(str(out)), 0, "->")
    assert out.is_file() and os.listdir(out.parent) == ["o.parquet"]
    # a failed run leaves no stale file under the final name
    stale = tmp_path / "stale.jsonl"
    stale.write_text("previous run\n")
    (tmp_path / "bad.jsonl").write_bytes(lines(USER_ONLY))
    r = cli("format", str(tmp_path / "bad.jsonl"), "-t", "llama-3", "--tokenizer", tok, "--out", str(stale))
    check_clean(r, 1, "every row was rejected")
    assert not stale.exists() and "removed" in r.stderr


def test_closed_stdout(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_bytes(lines(J))
    tok = str(tokenizer_dir("llama3"))
    args = [sys.executable, "-m", "tmplc.cli", "format", str(f), "-t", "llama-3", "--tokenizer", tok]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    r = subprocess.run(["bash", "-c", '"$@" >&-', "_", *args, "--preview", "1"], capture_output=False,
                       stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    check_clean(r, 2, "standard output is closed")
    r = subprocess.run(["bash", "-c", '"$@" >&-', "_", *args, "--out", str(tmp_path / "o.jsonl")],
                       stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    check_clean(r, 0)


def _big(tmp_path: Path, n: int = 12000) -> Path:
    f = tmp_path / "big.jsonl"
    row = json.dumps({"messages": [{"role": "system", "content": "Be brief. " * 20}] +
                      [{"role": r, "content": ("lorem ipsum dolor sit amet " * 40)} for r in ("user", "assistant")] * 3})
    f.write_text((row + "\n") * n)
    return f


def _wait_for_temp(folder: Path, proc, limit: float = 120.0) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end and proc.poll() is None:
        if list(folder.glob(".*.tmp")):
            return True
        time.sleep(0.05)
    return False


def _default_sigint() -> None:
    """The child starts with Ctrl-C's default disposition, as from a terminal: an ignored SIGINT is
    inherited across exec, and Python then installs no KeyboardInterrupt handler (a runner that
    ignores SIGINT, like a shell's background job, would make the run uninterruptible)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("how, num_proc", [("SIGINT", "1"), ("SIGINT", "2"), ("SIGKILL", "1")])
def test_interrupted_run_leaves_no_final_file(tmp_path, how, num_proc):
    f = _big(tmp_path)
    outdir = tmp_path / "out"
    out = outdir / "train.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    p = subprocess.Popen([sys.executable, "-m", "tmplc.cli", "format", str(f), "-t", "llama-3", "--tokenizer",
                          str(tokenizer_dir("llama3")), "--out", str(out), "--num-proc", num_proc,
                          "--batch-size", "100"], stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True, preexec_fn=_default_sigint)
    try:
        assert _wait_for_temp(outdir, p), p.stderr.read() if p.poll() is not None else "no temp file"
        time.sleep(0.1)
        os.killpg(p.pid, signal.SIGINT if how == "SIGINT" else signal.SIGKILL)
        p.wait(60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    time.sleep(0.5)  # workers die with their parent (PR_SET_PDEATHSIG): none is left in the group
    survivors = subprocess.run(["pgrep", "-g", str(p.pid)], capture_output=True, text=True).stdout.split()
    if survivors:
        os.killpg(p.pid, signal.SIGKILL)  # never hang the suite on their open stderr
    assert survivors == [], f"worker processes outlived the run: {survivors}"
    err = p.stderr.read()
    assert not out.exists(), (p.returncode, err[-600:])
    if how == "SIGINT":
        assert p.returncode == 130 and "Traceback" not in err and "interrupted" in err, err
        assert os.listdir(outdir) == []  # the temporary file is removed too


def test_a_killed_worker_ends_the_run_with_an_error_and_no_file(tmp_path):
    """A worker killed from outside (as the kernel's OOM killer does) fails the run at once with the
    reason and what to do, instead of hanging; the temporary output is removed."""
    f = _big(tmp_path)
    outdir = tmp_path / "out"
    out = outdir / "train.parquet"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    p = subprocess.Popen([sys.executable, "-m", "tmplc.cli", "format", str(f), "-t", "llama-3", "--tokenizer",
                          str(tokenizer_dir("llama3")), "--out", str(out), "--num-proc", "2", "--batch-size", "100"],
                         stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        assert _wait_for_temp(outdir, p), p.stderr.read() if p.poll() is not None else "no temp file"
        end = time.monotonic() + 60
        while time.monotonic() < end and p.poll() is None:
            workers = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
            if len(workers) == 2:
                break
            time.sleep(0.02)
        assert len(workers) == 2, workers
        os.kill(int(workers[0]), signal.SIGKILL)
        p.wait(60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    err = p.stderr.read()
    assert p.returncode not in (0, None), err[-600:]
    assert p.returncode == 1 and "tmplc: error: a format worker process ended unexpectedly (killed by SIGKILL: " \
        "often the kernel's out-of-memory killer)" in err and "--num-proc 1" in err, err[-600:]
    assert "Traceback" not in err and "internal error" not in err, err[-1500:]
    time.sleep(0.5)
    assert subprocess.run(["pgrep", "-g", str(p.pid)], capture_output=True, text=True).stdout.split() == []
    assert not out.exists() and os.listdir(outdir) == []
