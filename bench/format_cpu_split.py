"""Where `tmplc format --num-proc N` spends CPU, and how far two cores scale here (issue 18).

    .venv/bin/python bench/format_cpu_split.py [--rows 40000] [--tokenizer .cache/fixtures/llama3]

Two measurements on bench_formatter's README corpus (system prompt + 3 exchanges, JSONL -> Parquet,
the llama-3 format, the real Llama-3 tokenizer):

1. ``tmplc.cli.main(["format", ...])`` run in a fresh interpreter for ``--num-proc 1`` and ``2``,
   with the CPU seconds of each of its threads (``time.thread_time`` around the main thread, the
   Parquet writer thread and multiprocessing.Pool's three handler threads) and of its workers
   (``RUSAGE_CHILDREN``).  The sum against the wall time says whether the cores were busy; the sum
   against ``--num-proc 1``'s says what the extra process costs.
2. The in-process ``encode_rows`` loop (bench_format_cli's) alone, then two copies at once in two
   forked processes, then alone again: how much one core slows when the other works too.

Prints two Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# run in a fresh interpreter: argv = data, tokenizer, out, num_proc; prints one JSON line
DRIVER = r"""
import json, resource, sys, threading, time
import multiprocessing.pool as P
import tmplc.data.writers as W

cpu = {}
def timed(name, fn):
    def run(*a, **k):
        t = time.thread_time()
        try:
            return fn(*a, **k)
        finally:
            cpu[name] = cpu.get(name, 0.0) + time.thread_time() - t
    return run

W.BackgroundWriter._loop = timed("writer thread", W.BackgroundWriter._loop)
try:
    import tmplc.formatter.parallel as PP
    PP._Workers._feed = staticmethod(timed("sender threads", PP._Workers._feed))
except AttributeError:
    pass
for name in ("_handle_workers", "_handle_tasks", "_handle_results"):
    setattr(P.Pool, name, staticmethod(timed("Pool." + name, getattr(P.Pool, name))))
from tmplc.cli import main

data, tok, out, n = sys.argv[1:]
t0, c0 = time.perf_counter(), time.thread_time()
try:
    main(["format", data, "-t", "llama-3", "--tokenizer", tok, "-o", out, "--num-proc", n])
except SystemExit as e:
    if e.code:
        raise
cpu["main thread"] = time.thread_time() - c0
wall = time.perf_counter() - t0
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": wall, "cpu": cpu, "process": me.ru_utime + me.ru_stime,
                  "workers": kids.ru_utime + kids.ru_stime}))
"""


def cli_split(data: Path, tok: str, out: Path, num_proc: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    p = subprocess.run([sys.executable, "-c", DRIVER, str(data), tok, str(out), str(num_proc)], env=env,
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def pair_scaling(convs, tok: str) -> list[tuple[str, float]]:
    from bench_format_cli import loop

    rows = [("alone", loop(convs, tok)[0])]
    r, w = os.pipe()
    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.close(r)
            os.write(w, f"{loop(convs, tok)[0]}\n".encode())
            os._exit(0)
        pids.append(pid)
    os.close(w)
    for pid in pids:
        os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        rows += [(f"two at once, process {k + 1}", float(x)) for k, x in enumerate(f.read().split())]
    rows.append(("alone again", loop(convs, tok)[0]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=40000)
    ap.add_argument("--tokenizer", default=str(ROOT / ".cache" / "fixtures" / "llama3"))
    a = ap.parse_args()
    from bench_formatter import corpus

    convs = corpus(a.rows, 3, 7)
    with tempfile.TemporaryDirectory(prefix="tmplc-split-") as tmp:
        data = Path(tmp) / "c.jsonl"
        data.write_text("".join(json.dumps({"messages": c}, ensure_ascii=False) + "\n" for c in convs))
        cli_split(data, a.tokenizer, Path(tmp) / "warm.parquet", 1)  # the tokenizer cache
        runs = {n: cli_split(data, a.tokenizer, Path(tmp) / f"o{n}.parquet", n) for n in (1, 2)}
    names = sorted({k for r in runs.values() for k in r["cpu"]})
    print(f"| `tmplc format`, {a.rows} rows | " + " | ".join(f"--num-proc {n}" for n in runs) + " |")
    print("|---|" + "---:|" * len(runs))
    print("| wall s | " + " | ".join(f"{r['wall']:.2f}" for r in runs.values()) + " |")
    for k in names:
        print(f"| CPU s: {k} | " + " | ".join(f"{r['cpu'].get(k, 0.0):.2f}" for r in runs.values()) + " |")
    print("| CPU s: whole parent process | " + " | ".join(f"{r['process']:.2f}" for r in runs.values()) + " |")
    print("| CPU s: worker processes | " + " | ".join(f"{r['workers']:.2f}" for r in runs.values()) + " |")
    total = {n: r["process"] + r["workers"] for n, r in runs.items()}
    print("| CPU s: all | " + " | ".join(f"{t:.2f}" for t in total.values()) + " |")
    print("| cores busy (CPU / wall) | " + " | ".join(f"{total[n] / r['wall']:.2f}" for n, r in runs.items()) + " |")
    print()
    print(f"| in-process `encode_rows` loop, {a.rows // 2} rows | wall s |")
    print("|---|---:|")
    for what, w in pair_scaling(convs[: a.rows // 2], a.tokenizer):
        print(f"| {what} | {w:.2f} |")
    print(f"({os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()
