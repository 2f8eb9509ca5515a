"""`tmplc format` end to end vs the in-process formatter loop (issue 18).

    .venv/bin/python bench/bench_format_cli.py [--rows 20000 40000] [--repeat 3] [--tokenizer .cache/fixtures/llama3]
        [--baseline-src ../main/src] [--write BENCHMARKS.md]

Corpus: bench_formatter's README corpus (system prompt + 3 exchanges, seeded), as JSONL with a
``messages`` column; the real Llama-3 tokenizer; tmplc's llama-3 format; output Parquet.
Methods: the in-process loop (``encode_rows`` in batches of 1,000 on already-read conversations,
tokenizer loaded before timing), and the CLI (``python -m tmplc.cli format``, start-up, reading
and writing included) with ``--num-proc 1`` and ``2``, run as an installed package runs (with
Python's bytecode cache, even where the environment sets PYTHONDONTWRITEBYTECODE).  Peak memory
of the whole process tree is sampled every 50 ms from /proc in one run of each CLI method of its
own: RSS summed over processes (counts pages shared by forked workers once per process) and PSS
(shared pages divided among the processes that share them); the timed runs are not sampled (the
sampling's CPU would compete with a 2-core run).  CPU seconds: user + system of the whole tree
(the loop: this process's).

On a shared machine, ``--repeat N`` runs the three methods N times interleaved (loop, --num-proc
1, --num-proc 2, loop, ...), so that each round's three see about the same load, and reports each
method's fastest round (the least disturbed) and the ratios of those; the first CLI run fills the
tokenizer cache (one of its own per source tree, under the run's temporary folder) and the memory
runs warm the rest (neither is timed).  ``--baseline-src`` adds an older checkout's CLI (``--num-proc 1`` and
``2``) to the same rounds, for before/after figures taken under the same load; its outputs must be
the same table as this tree's (byte-identical across its own --num-proc).  Prints one Markdown table;
``--write`` also puts it (with the command and the time) in BENCHMARKS.md, replacing the last one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


SRC = ROOT / "src"
CACHE = Path(tempfile.gettempdir()) / "tmplc-bench-cache"


def run_cli(args: list[str], src: Path | None = None, sample: bool = False) -> tuple[float, float, int, int]:
    """(wall s, CPU s of the tree, peak RSS, peak PSS) of one ``tmplc`` run.  Memory is sampled only
    when ``sample`` (reading /proc every 50 ms costs CPU that a 2-core run would feel, and the
    polling rounds the wall time up): a timed run only waits for the process."""
    # Python's bytecode cache as an installed package has it (pip compiles at install); where the
    # environment sets PYTHONDONTWRITEBYTECODE, every start would compile tmplc's modules again (~0.1 s)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(src or SRC)
    # each tree its own tokenizer cache: another version's entries would not be its own
    env["TMPLC_CACHE_DIR"] = str(CACHE / ("baseline" if src else "this"))
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "tmplc.cli", *args], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    peak_rss = peak_pss = 0
    if sample:
        status = None
        while status is None:
            r, s = mem(p.pid)
            peak_rss, peak_pss = max(peak_rss, r), max(peak_pss, s)
            time.sleep(0.05)
            pid, st, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                status = st
        err = p.stderr.read()
    else:
        err = p.stderr.read()  # the run's summary is small: reading it to the end waits for the run
        _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"tmplc format failed ({code}):\n{err}")
    return wall, ru.ru_utime + ru.ru_stime, peak_rss, peak_pss


def loop(convs, tok_dir: str) -> tuple[float, float]:
    """(wall s, CPU s) of the in-process loop."""
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
    t, c = time.perf_counter(), time.process_time()
    for i in range(0, len(convs), 1000):
        encode_rows(fmt, convs[i:i + 1000], info, opts)
    return time.perf_counter() - t, time.process_time() - c


def main() -> None:
    global SRC
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[20000, 40000])
    ap.add_argument("--repeat", type=int, default=1, help="interleaved rounds; the fastest of each is reported")
    ap.add_argument("--tokenizer", default=str(ROOT / ".cache" / "fixtures" / "llama3"))
    ap.add_argument("--src", default=str(ROOT / "src"),
                    help="the tmplc source tree the CLI runs (e.g. an older checkout's src, with its templates/ "
                         "and grammars/ beside it)")
    ap.add_argument("--write", metavar="BENCHMARKS.md", default=None, help="also write the table there")
    ap.add_argument("--baseline-src", default=None,
                    help="also run this source tree's CLI in the same rounds (before/after under the same load)")
    a = ap.parse_args()
    SRC = Path(a.src)
    base = Path(a.baseline_src).resolve() if a.baseline_src else None
    procs = [(1, None), (2, None)] + ([(1, base), (2, base)] if base else [])
    from bench_formatter import corpus

    global CACHE
    tmp = Path(tempfile.mkdtemp(prefix="tmplc-bench-"))
    CACHE = tmp / "cache"
    loads = [os.getloadavg()[0]]
    lines = []
    for n in a.rows:
        convs = corpus(n, 3, 7)
        data = tmp / f"c{n}.jsonl"
        data.write_text("".join(json.dumps({"messages": c}, ensure_ascii=False) + "\n" for c in convs))
        cli = ["format", str(data), "-t", "llama-3", "--tokenizer", a.tokenizer]
        run_cli(cli + ["--out", str(tmp / "warm.parquet"), "--preview", "1"])  # the tokenizer cache
        if base:
            run_cli(cli + ["--out", str(tmp / "warm.parquet"), "--preview", "1"], base)
        best: dict = {}
        peaks: dict = {}
        for np_, src in procs:  # memory: one sampled run each (also the timed runs' warm-up)
            peaks[np_, src] = run_cli(cli + ["--out", str(tmp / "mem.parquet"), "--num-proc", str(np_)], src,
                                      sample=True)[2:]
        for _ in range(a.repeat):
            w, c = loop(convs, a.tokenizer)
            best["loop"] = min(best.get("loop", (w, c, 0, 0)), (w, c, 0, 0))
            outs = []
            for np_, src in procs:
                out = tmp / f"o{n}-{np_}.parquet"
                r = run_cli(cli + ["--out", str(out), "--num-proc", str(np_)], src)
                key = (np_, src)
                best[key] = min(best.get(key, r), r)
                outs.append((src, out.read_bytes()))
            mine = [o for s, o in outs if s is None]
            assert all(o == mine[0] for o in mine), "outputs differ across --num-proc"
            if base:  # the baseline may lay Parquet out otherwise: the same table, and its own bytes alike
                import io

                import pyarrow.parquet as pq

                theirs = [o for s, o in outs if s is not None]
                assert all(o == theirs[0] for o in theirs), "the baseline's outputs differ across --num-proc"
                assert pq.read_table(io.BytesIO(theirs[0])).equals(pq.read_table(io.BytesIO(mine[0]))), \
                    "the output's table differs from the baseline's"
        m = lambda x: f"{x / 1e6:.0f} MB" if x else "—"  # noqa: E731
        lw, lc = best["loop"][:2]
        lines.append(f"| {n} | in-process `encode_rows` loop | {lw:.1f} | {lc:.1f} | {n / lw:,.0f} | 1.00× "
                     "| — | — | — |")
        for np_, src in procs:
            w, c = best[np_, src][:2]
            rss, pss = peaks[np_, src]
            vs1 = f"{best[1, src][0] / w:.2f}×"
            who = f"baseline ({src.parent.name}) " if src else ""
            lines.append(f"| {n} | {who}`tmplc format --num-proc {np_}` | {w:.1f} | {c:.1f} | {n / w:,.0f} | "
                         f"{lw / w:.2f}× | {vs1} | {m(rss)} | {m(pss)} |")
    loads.append(os.getloadavg()[0])
    also = f" and the baseline's from {base}" if base else ""
    table = "\n".join(
        ["| rows | run | wall s | CPU s | ex/s | vs loop | vs --num-proc 1 | peak RSS (tree) | peak PSS (tree) |",
         "|---:|---|---:|---:|---:|---:|---:|---:|---:|"] + lines +
        [f"(fastest of {a.repeat} interleaved round(s); CLI from {SRC}{also}; outputs byte-identical across "
         f"--num-proc{', the same table as the baseline' if base else ''}; {os.cpu_count()} CPUs; load average "
         f"{' / '.join(f'{x:.1f}' for x in loads)} at the start / end)"])
    print(table)
    if a.write:
        from benchdoc import write_block

        cmd = " ".join(["bench/bench_format_cli.py"] + sys.argv[1:])
        write_block(a.write, "bench_format_cli", f"Last run: `.venv/bin/python {cmd}` "
                    f"({time.strftime('%H:%M UTC, %Y-%m-%d', time.gmtime())})\n\n{table}",
                    "`tmplc format` end to end (issue 18)")
    shutil.rmtree(tmp, ignore_errors=True)  # only this run's own folder


if __name__ == "__main__":
    main()
