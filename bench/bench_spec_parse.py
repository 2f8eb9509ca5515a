"""Spec size vs parse time: ``tmplc.parse_spec`` on specs of 1 KB to 10 MB (the growth must be linear).

    .venv/bin/python bench/bench_spec_parse.py [--sizes 1e3,1e4,1e5,1e6,1e7] [--repeats 1]

Each spec is the two-repetition ChatML-like layout whose user prefix carries filler text (lines of
"lorem ipsum ..."), so the spec is ``size`` characters long; a mismatched spec of the same size
(the second repetition differs at its end) measures the error path and the error's length.  The
parser is built once first (its cache warm), so the table is the parse itself.  Best of
``--repeats``.  Prints one table: size, seconds, microseconds per character, the error's length, seconds
for the brace-heavy spec, seconds for the YAML file.
"""

from __future__ import annotations

import argparse
import time


def spec_of(size: int, mismatch: bool = False, braces: bool = False) -> str:
    turns = "<|im_start|>user\n{INPUT}<|im_end|>\n<|im_start|>assistant\n{OUTPUT}<|im_end|>\n"
    pad_len = max(0, size // 2 - len(turns) - 1)
    line = "a{{b}} c\n" if braces else "lorem ipsum dolor sit amet, consectetur adipiscing elit\n"
    pad = (line * (pad_len // len(line) + 1))[:pad_len]
    first = pad + turns
    second = pad + ("X" if mismatch else "") + turns
    return first + second


def main(argv=None) -> int:
    import tmplc

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1e3,1e4,1e5,1e6,1e7")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)
    tmplc.parse_spec(spec_of(1000))  # the parser, built (or loaded from the cache) once
    from tmplc.spec.files import load_yaml_spec

    print("| spec size | parse (s) | µs / character | mismatch: error (s) | error message length "
          "| brace-heavy: parse (s) | YAML file: load (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for size in (int(float(x)) for x in args.sizes.split(",")):
        text = spec_of(size)
        best = min(_time(lambda: tmplc.parse_spec(text)) for _ in range(args.repeats))
        bad = spec_of(size, mismatch=True)
        err_len = 0
        t = time.perf_counter()
        try:
            tmplc.parse_spec(bad)
        except tmplc.SpecError as e:
            err_len = len(e.cli_text())
        err_s = time.perf_counter() - t
        braces = spec_of(size, braces=True)
        brace_s = min(_time(lambda: tmplc.parse_spec(braces)) for _ in range(args.repeats))
        yaml_text = "name: bench\nspec: |\n" + "".join("  " + ln if ln.strip() else ln
                                                      for ln in text.splitlines(keepends=True))
        yaml_s = min(_time(lambda: load_yaml_spec(yaml_text, "bench.yaml")) for _ in range(args.repeats))
        print(f"| {len(text):,} | {best:.3f} | {best / len(text) * 1e6:.2f} | {err_s:.3f} | {err_len:,} "
              f"| {brace_s:.3f} | {yaml_s:.3f} |")
    return 0


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    raise SystemExit(main())
