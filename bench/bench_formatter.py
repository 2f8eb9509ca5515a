"""Formatter throughput: tmplc vs transformers' apply_chat_template mask vs the tokenization floor.

    .venv/bin/python bench/bench_formatter.py [--tokenizer .cache/fixtures/llama3] [--repeats 3]
                                              [--write BENCHMARKS.md]

Corpora (fixed, seeded): 2,000 conversations of 3 exchanges and 300 of 20 exchanges, each with a
system prompt; the real Llama-3 tokenizer and tmplc's llama-3 format; one process
(TOKENIZERS_PARALLELISM=false, tiktoken in one thread).  Methods:

* tmplc: ``tmplc.formatter.encode_rows`` (render + one tokenizer pass + labels), batches of 1,000;
  with the auto backend (tiktoken, verified identical ids; rows go through the compiled per-format
  plan of ``tmplc.formatter.plan``, single-threaded) and with ``backend="hf"``;
* transformers: ``apply_chat_template(conv, chat_template=fmt.to_jinja(), tokenize=True,
  return_dict=True, return_assistant_tokens_mask=True)`` per conversation;
* floor: ``tokenizer(texts, add_special_tokens=False)`` on the already-rendered texts, batches of
  1,000, no masking.

Before timing it asserts, on every conversation, that tmplc's labels equal the brute-force labels
(token trains iff its HF offset span is inside trainable text) and its ids equal the floor's.
Best of ``--repeats`` runs.  Prints a table; ``--write`` replaces the table in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent

WORDS = ("the of and to in is was for on that with as by at from his her it an were are which this be or "
         "have has had not but they their one all would there been when who will more no if out so said "
         "what up its about into than them can only other new some could time these two may then do first "
         "any my now such like our over man me even most made after also did many before must through back "
         "years where much your way well down should because each just those people how too little state "
         "good very make world still own see men work long get here between both life being under never day "
         "same another know while last might us great old year off come since against go came right used take "
         "three model token training data loss mask template chat assistant user system function return value "
         "résumé naïve café 日本 東京 데이터 🙂 λ≈π").split()


def sentence(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n)]
    out = []
    for k, w in enumerate(words):
        out.append(w)
        r = rng.random()
        if r < 0.08:
            out.append(",")
        elif r < 0.14:
            out.append(".\n" if rng.random() < 0.3 else ".")
    s = " ".join(out).replace(" ,", ",").replace(" .", ".")
    return s[0].upper() + s[1:] + "."


def corpus(n: int, exchanges: int, seed: int) -> list[list[dict]]:
    rng = random.Random(seed)
    convs = []
    for _ in range(n):
        msgs = [{"role": "system", "content": sentence(rng, rng.randint(20, 60))}]
        for _ in range(exchanges):
            msgs.append({"role": "user", "content": sentence(rng, rng.randint(15, 80))})
            msgs.append({"role": "assistant", "content": sentence(rng, rng.randint(40, 160))})
        convs.append(msgs)
    return convs


def brute_force_labels(tok, fmt, convs):
    """Independent reference: HF offsets + per-character trainability from the renderer."""
    texts, flags = [], []
    for c in convs:
        segs = fmt.segments(c, bos_token=tok.bos_token, eos_token=tok.eos_token)
        texts.append("".join(s.text for s in segs))
        f = []
        for s in segs:
            f.extend([s.trainable] * len(s.text))
        flags.append(f)
    enc = tok(texts, add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for ids, offs, fl in zip(enc["input_ids"], enc["offset_mapping"], flags):
        out.append((list(ids), [i if b > a and all(fl[a:b]) else -100 for i, (a, b) in zip(ids, offs)]))
    return out


def best(fn, repeats):
    times = []
    result = None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", default=str(ROOT / ".cache" / "fixtures" / "llama3"))
    ap.add_argument("--template", default="llama-3")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--large", type=int, default=300)
    ap.add_argument("--write", metavar="BENCHMARKS.md", default=None)
    args = ap.parse_args(argv)

    import transformers
    from transformers import AutoTokenizer

    import tmplc
    from tmplc.formatter import encode_rows, tokenizer_info
    from tmplc.formatter.core import make_options

    warnings.simplefilter("ignore")
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    fmt = tmplc.load(args.template)
    jinja = fmt.to_jinja()
    info = tokenizer_info(tok)
    t0 = time.perf_counter()
    have_tiktoken = info.tiktoken() is not None
    verify_s = time.perf_counter() - t0
    corpora = [(f"{args.small} × 3 exchanges", corpus(args.small, 3, 1)),
               (f"{args.large} × 20 exchanges", corpus(args.large, 20, 2))]
    rows = []
    for title, convs in corpora:
        texts = [fmt.render(c, bos_token=tok.bos_token, eos_token=tok.eos_token) for c in convs]
        # correctness first: labels == brute force, ids == floor, on every conversation
        ref = brute_force_labels(tok, fmt, convs)
        for backend in (["auto", "hf"] if have_tiktoken else ["hf"]):
            res = encode_rows(fmt, convs, tok, make_options(backend=backend))
            bad = sum(1 for r, (ids, labels) in zip(res, ref) if r.input_ids != ids or r.labels != labels)
            assert bad == 0, f"{title}: {bad} conversations differ from the brute-force labels ({backend})"
        hf_one = tok.apply_chat_template(convs[0], chat_template=jinja, tokenize=True, return_dict=True,
                                         return_assistant_tokens_mask=True)
        assert list(hf_one["input_ids"]) == ref[0][0]
        n_tokens = sum(len(ids) for ids, _ in ref)

        def run_tmplc(backend):
            opts = make_options(backend=backend)
            return lambda: [encode_rows(fmt, convs[k:k + 1000], tok, opts) for k in range(0, len(convs), 1000)]

        def run_hf():
            return [tok.apply_chat_template(c, chat_template=jinja, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True) for c in convs]

        def run_floor():
            return [tok(texts[k:k + 1000], add_special_tokens=False) for k in range(0, len(texts), 1000)]

        timings = {}
        if have_tiktoken:
            timings["tmplc (tiktoken backend)"] = best(run_tmplc("auto"), args.repeats)[0]
        timings["tmplc (HF tokenizers backend)"] = best(run_tmplc("hf"), args.repeats)[0]
        timings["transformers apply_chat_template + assistant mask"] = best(run_hf, max(1, args.repeats - 1))[0]
        timings["floor: tokenizer(rendered texts), no mask"] = best(run_floor, args.repeats)[0]
        rows.append((title, len(convs), n_tokens, timings))

    hf_key = "transformers apply_chat_template + assistant mask"
    floor_key = "floor: tokenizer(rendered texts), no mask"
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"transformers {transformers.__version__}, tokenizers {__import__('tokenizers').__version__}"
        + (f", tiktoken {__import__('tiktoken').__version__}" if have_tiktoken else "")
        + f"; single process, best of {args.repeats}. tiktoken verification (once per tokenizer, cached on disk "
          f"afterwards): {verify_s:.2f} s.",
        "",
        "| corpus | method | examples/s | tokens/s | × transformers | × floor |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for title, n, ntok, timings in rows:
        for name, t in timings.items():
            lines.append(f"| {title} ({ntok / n:,.0f} tok/ex) | {name} | {n / t:,.0f} | {ntok / t / 1e6:.2f} M | "
                         f"{timings[hf_key] / t:.2f} | {timings[floor_key] / t:.2f} |")
    table = "\n".join(lines)
    print(table)
    print("\nlabels == brute-force reference on every conversation of both corpora: OK")
    if args.write:
        from benchdoc import write_block

        write_block(args.write, "bench_formatter", table, "Formatter throughput",
                    "Command: `.venv/bin/python bench/bench_formatter.py --write BENCHMARKS.md`\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
