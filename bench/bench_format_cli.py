"""`tmplc format` end to end vs the in-process formatter loop (issue 18).

    .venv/bin/python bench/bench_format_cli.py [--rows 20000 40000] [--tokenizer .cache/fixtures/llama3]

Corpus: bench_formatter's README corpus (system prompt + 3 exchanges, seeded), as JSONL with a
``messages`` column; the real Llama-3 tokenizer; tmplc's llama-3 format; output Parquet.
Methods: the in-process loop (``encode_rows`` in batches of 1,000 on already-read conversations,
tokenizer loaded before timing), and the CLI (``python -m tmplc.cli format``, start-up, reading
and writing included) with ``--num-proc 1`` and ``2``.  Peak memory of the whole process tree is
sampled every 50 ms from /proc: RSS summed over processes (counts pages shared by forked workers
once per process) and PSS (shared pages divided among the processes that share them).
Prints one table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{t}/children").read_text().split()]
        except OSError:
            pass
    return out


def mem(pid: int) -> tuple[int, int]:
    rss = pss = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except OSError:
            pass
    return rss, pss


def run_cli(args: list[str]) -> tuple[float, int, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "tmplc.cli", *args], env=env, stderr=subprocess.PIPE, text=True)
    peak_rss = peak_pss = 0
    while p.poll() is None:
        r, s = mem(p.pid)
        peak_rss, peak_pss = max(peak_rss, r), max(peak_pss, s)
        time.sleep(0.05)
    wall = time.perf_counter() - t
    err = p.stderr.read()
    if p.returncode != 0:
        raise SystemExit(f"tmplc format failed ({p.returncode}):\n{err}")
    return wall, peak_rss, peak_pss


def loop(convs, tok_dir: str) -> float:
    import warnings

    import tmplc
    from tmplc.formatter import encode_rows
    from tmplc.formatter.core import make_options
    from tmplc.formatter.tokenizer_load import load_tokenizer_info

    warnings.simplefilter("ignore")
    fmt = tmplc.load("llama-3")
    info = load_tokenizer_info(tok_dir)
    opts = make_options()
    encode_rows(fmt, convs[:50], info, opts)  # warm: tiktoken and the compiled plan
    t = time.perf_counter()
    for i in range(0, len(convs), 1000):
        encode_rows(fmt, convs[i:i + 1000], info, opts)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[20000, 40000])
    ap.add_argument("--tokenizer", default=str(ROOT / ".cache" / "fixtures" / "llama3"))
    a = ap.parse_args()
    from bench_formatter import corpus

    tmp = Path(tempfile.mkdtemp(prefix="tmplc-bench-"))
    rows_out = []
    for n in a.rows:
        convs = corpus(n, 3, 7)
        data = tmp / f"c{n}.jsonl"
        data.write_text("".join(json.dumps({"messages": c}, ensure_ascii=False) + "\n" for c in convs))
        lt = loop(convs, a.tokenizer)
        rows_out.append((n, "in-process encode_rows loop", lt, None, None))
        outs = []
        for np_ in (1, 2):
            out = tmp / f"o{n}-{np_}.parquet"
            w, rss, pss = run_cli(["format", str(data), "-t", "llama-3", "--tokenizer", a.tokenizer, "--out", str(out),
                                   "--num-proc", str(np_)])
            rows_out.append((n, f"tmplc format --num-proc {np_}", w, rss, pss))
            outs.append(out.read_bytes())
        assert outs[0] == outs[1], "outputs differ across --num-proc"
    print(f"{'rows':>6} | {'run':<30} | {'wall s':>7} | {'ex/s':>7} | {'peak RSS (tree)':>15} | {'peak PSS (tree)':>15}")
    print("|".join(["-" * 7, "-" * 32, "-" * 9, "-" * 9, "-" * 17, "-" * 17]))
    for n, name, w, rss, pss in rows_out:
        m = lambda x: f"{x / 1e6:.0f} MB" if x else "—"  # noqa: E731
        print(f"{n:>6} | {name:<30} | {w:7.1f} | {n / w:7.0f} | {m(rss):>15} | {m(pss):>15}")
    print(f"(outputs byte-identical across --num-proc; {os.cpu_count()} CPUs; {tmp})")


if __name__ == "__main__":
    main()
