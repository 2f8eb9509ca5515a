"""``tmplc check`` on an 8B-sized embedding: wall time and peak RSS vs just reading the tensors.

    .venv/bin/python bench/bench_check.py [--rows 128256] [--hidden 4096] [--dir /tmp/tmplc-bench-check]

Builds (once; reused when present) a synthetic model folder: ``model.embed_tokens.weight`` and
``lm_head.weight`` of ``rows x hidden`` bf16 (1 GiB each at the default size, random normal
x 0.02, Llama-3 style: the header/end-of-turn rows and 200 reserved rows zero, Llama-3.1 style
identical lm_head rows for 3 of them), in two shards with a ``model.safetensors.index.json``, a
Llama config, generation_config and the real Llama-3 tokenizer fixture.  Then, each in a fresh
subprocess (so peak RSS is that run's own; the files are in the page cache after a warm-up read):

* read: ``safe_open(...).get_tensor(name).clone()`` of both tensors, one after the other (the floor;
  ``clone`` because get_tensor may return a lazily mapped tensor that reads nothing);
* scan: :func:`tmplc.doctor.weights.scan_rows` on both (the weights part of the check);
* check: ``tmplc.check(folder, template="llama-3")`` (everything the check does after ``import
  tmplc``: its own lazy imports — numpy, tokenizers, the converter —, tokenizer, template, both
  scans, findings; transformers and torch are *not* pre-imported: the check does not need them);
* cli: the whole ``python -m tmplc.cli check FOLDER --template llama-3`` process, next to the whole
  ``read`` process (python start + ``import torch, safetensors`` + the read);
* phases (``--phases``): one profiled check, the cumulative seconds of its parts.

Peak RSS is ``VmHWM`` of the subprocess (``ru_maxrss`` would include the parent's, it survives
exec); "baseline" is its ``VmRSS`` after importing torch + safetensors (or tmplc + transformers for
the check), before reading anything.  Goal (issue 14):
check <= 2x the read time; peak RSS <= 1.5 x one tensor + 300 MiB.  Best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, {src!r})

def _status(key):  # /proc/self/status in KiB: VmHWM is this process's own peak (ru_maxrss survives exec)
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])

mode, folder = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if mode == "read":
    import torch
    from safetensors import safe_open
    base = _status("VmRSS")
    t = time.perf_counter()
    idx = json.load(open(os.path.join(folder, "model.safetensors.index.json")))["weight_map"]
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        with safe_open(os.path.join(folder, idx[name]), framework="pt") as f:
            w = f.get_tensor(name).clone()  # get_tensor may map lazily: clone() reads every byte
            s = float(w[-1, -1])
        del w
    dt = time.perf_counter() - t
elif mode == "scan":
    import torch, safetensors
    from tmplc.doctor.weights import scan_rows
    base = _status("VmRSS")
    t = time.perf_counter()
    idx = json.load(open(os.path.join(folder, "model.safetensors.index.json")))["weight_map"]
    flags = {{}}
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        flags[name] = len(scan_rows(os.path.join(folder, idx[name]), name).flags)
    dt = time.perf_counter() - t
elif mode.startswith("gguf-"):
    import tmplc
    base = _status("VmRSS")
    t = time.perf_counter()
    r = tmplc.check(os.path.join(folder, "model-" + mode[5:] + ".gguf"))
    dt = time.perf_counter() - t
    f = r.by_code("untrained-tokens")[0]
    assert f.severity == "error" and len(f.details["ids"]) >= 203, f.details["ids"][:10]
else:
    import tmplc
    base = _status("VmRSS")
    t = time.perf_counter()
    if mode == "phases":
        import cProfile, pstats
        pr = cProfile.Profile()
        pr.enable()
    r = tmplc.check(folder, template="llama-3")
    dt = time.perf_counter() - t
    if mode == "phases":
        pr.disable()
        st = pstats.Stats(pr).stats
        want = {{"check_tokenizer": "tokenizer (tokenizers.Tokenizer.from_file, specials, BOS probe)",
                "resolve": "template import (given format; the tokenizer's chat_template via the converter)",
                "template_findings": "template findings", "end_of_turn_text": "end-of-turn of the format",
                "pad_findings": "pad findings", "vocab_findings": "vocabulary findings",
                "scan_rows": "untrained-row scans (both matrices)", "template_ids": "template ids (probe render)",
                "untrained_finding": "untrained finding", "disk_findings": "disk findings"}}
        phases = {{}}
        for (fn, line, name), (cc, nc, tt, ct, callers) in st.items():
            if name in want and "tmplc" in fn:
                phases[want[name]] = phases.get(want[name], 0.0) + ct
        print(json.dumps({{"phases": phases, "total": dt}}))
        sys.exit(0)
    assert "untrained-tokens" in r.codes(), r
    f = r.by_code("untrained-tokens")[0]
    assert f.severity == "error" and len(f.details["ids"]) >= 203, f.details["ids"][:10]
    assert not {{"torch", "transformers"}} & set(sys.modules), "the check imported torch/transformers"
peak = _status("VmHWM")
print(json.dumps({{"seconds": dt, "peak_kib": peak, "base_kib": base}}))
"""


def build(folder: Path, rows: int, hidden: int) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    if (folder / "model.safetensors.index.json").is_file():
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    tokdir = ROOT / ".cache" / "fixtures" / "llama3"
    for f in tokdir.iterdir():
        shutil.copy(f, folder / f.name)
    tok = AutoTokenizer.from_pretrained(str(tokdir))
    turn = [tok.convert_tokens_to_ids(t) for t in ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")]
    reserved = [tok.convert_tokens_to_ids(f"<|reserved_special_token_{i}|>") for i in range(10, 210)]
    g = torch.Generator().manual_seed(0)
    shards = {}
    for k, name in enumerate(("model.embed_tokens.weight", "lm_head.weight")):
        w = torch.empty(rows, hidden, dtype=torch.bfloat16)
        for a in range(0, rows, 8192):  # fill in chunks: no float32 copy of the whole matrix
            w[a:a + 8192] = (torch.randn(min(8192, rows - a), hidden, generator=g) * 0.02).to(torch.bfloat16)
        w[reserved] = 0
        if name == "lm_head.weight":
            w[turn] = (torch.randn(hidden, generator=g) * 0.02).to(torch.bfloat16)  # identical rows
        else:
            w[turn] = 0
        fn = f"model-0000{k + 1}-of-00002.safetensors"
        save_file({name: w}, str(folder / fn), metadata={"format": "pt"})
        shards[name] = fn
        del w
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": 2 * rows * hidden * 2}, "weight_map": shards}))
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": rows, "hidden_size": hidden,
        "tie_word_embeddings": False, "bos_token_id": 128000, "eos_token_id": [128001, 128009]}))
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [128001, 128009]}))


def build_gguf(folder: Path, qtype: str) -> Path:
    """``folder/model-QTYPE.gguf``: the same two matrices as token_embd / output (BF16 bits copied,
    or quantized with gguf-py a chunk at a time), the Llama-3 vocabulary and template."""
    import gguf
    import numpy as np
    from gguf.quants import quantize
    from transformers import AutoTokenizer

    import tmplc

    path = folder / f"model-{qtype}.gguf"
    if path.is_file():
        return path
    tok = AutoTokenizer.from_pretrained(str(folder))
    n = len(tok)
    special = {a.content for a in tok.added_tokens_decoder.values() if a.special}
    tokens = tok.convert_ids_to_tokens(list(range(n)))
    w = gguf.GGUFWriter(str(path) + ".partial", arch="llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in special else 1 for t in tokens])
    w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    w.add_add_bos_token(False)
    w.add_chat_template(tmplc.load("llama-3").to_jinja())
    idx = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    q = gguf.GGMLQuantizationType[qtype]
    for src, dst in (("model.embed_tokens.weight", "token_embd.weight"), ("lm_head.weight", "output.weight")):
        f = folder / idx[src]
        with open(f, "rb") as fh:
            hn = int.from_bytes(fh.read(8), "little")
            meta = json.loads(fh.read(hn))[src]
        rows, hidden = meta["shape"]
        bits = np.memmap(f, dtype="<u2", mode="r", offset=8 + hn + meta["data_offsets"][0], shape=(rows, hidden))
        if qtype == "BF16":
            w.add_tensor(dst, np.ascontiguousarray(bits).view(np.uint8), raw_dtype=q)
            continue
        out = None
        for a in range(0, rows, 8192):
            x = (bits[a:a + 8192].astype(np.uint32) << 16).view(np.float32)
            qb = quantize(x, q)
            if out is None:
                out = np.empty((rows, qb.shape[1]), dtype=np.uint8)
            out[a:a + len(qb)] = qb
        w.add_tensor(dst, out, raw_dtype=q)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(str(path) + ".partial", path)
    return path


def run(mode: str, folder: Path) -> dict:
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(ROOT / "src"))
    if mode in ("cli", "cli-read"):
        cmd = ([sys.executable, "-m", "tmplc.cli", "check", str(folder), "--template", "llama-3"] if mode == "cli" else
               [sys.executable, "-c", CHILD.format(src=str(ROOT / "src")), "read", str(folder)])
        t = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        dt = time.perf_counter() - t
        if out.returncode not in (0, 1) or (mode == "cli" and "untrained-tokens" not in out.stdout):
            raise SystemExit(f"{mode} failed (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
        return {"seconds": dt, "peak_kib": 0, "base_kib": 0}
    code = CHILD.format(src=str(ROOT / "src"))
    out = subprocess.run([sys.executable, "-c", code, mode, str(folder)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=128256)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--dir", default="/tmp/tmplc-bench-check")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the synthetic folder")
    ap.add_argument("--phases", action="store_true", help="also print the seconds of each part of one check")
    ap.add_argument("--gguf", default="", help="also check GGUFs of the same matrices, e.g. BF16,Q8_0 (built once)")
    args = ap.parse_args()
    folder = Path(args.dir)
    t = time.perf_counter()
    build(folder, args.rows, args.hidden)
    built = time.perf_counter() - t
    run("read", folder)  # warm the page cache
    ggufs = [q for q in args.gguf.split(",") if q]
    for q in ggufs:
        build_gguf(folder, q)
    modes = ("read", "scan", "check", "cli-read", "cli") + tuple(f"gguf-{q}" for q in ggufs)
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    for _ in range(args.repeats):  # interleaved: each repeat sees the same load on every mode
        for m in modes:
            runs[m].append(run(m, folder))
    res = {m: min(rs, key=lambda r: r["seconds"]) for m, rs in runs.items()}
    load = os.getloadavg()
    tensor_mib = args.rows * args.hidden * 2 / 2**20
    print(f"synthetic model: 2 x {args.rows}x{args.hidden} bf16 ({tensor_mib:.0f} MiB each), built/reused in "
          f"{built:.1f} s; {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} (1 / 5 min) at the "
          f"end; best of {args.repeats} interleaved repeats (all: "
          + ", ".join(f"{m} " + "/".join(f"{r['seconds']:.2f}" for r in rs) for m, rs in runs.items()) + ")")
    print()
    print("| run | wall s | x read | peak RSS MiB | RSS over its baseline MiB |")
    print("|---|---:|---:|---:|---:|")
    for m, label in (("read", "safetensors get_tensor, both tensors (floor)"),
                     ("scan", "tmplc scan_rows, both tensors"), ("check", "tmplc.check(folder, template='llama-3')")):
        r = res[m]
        print(f"| {label} | {r['seconds']:.2f} | {r['seconds'] / res['read']['seconds']:.2f} | "
              f"{r['peak_kib'] / 1024:.0f} | {(r['peak_kib'] - r['base_kib']) / 1024:.0f} |")
    for q in ggufs:
        r = res[f"gguf-{q}"]
        print(f"| tmplc.check(model-{q}.gguf) (token_embd + output {q}) | {r['seconds']:.2f} | "
              f"{r['seconds'] / res['read']['seconds']:.2f} | {r['peak_kib'] / 1024:.0f} | "
              f"{(r['peak_kib'] - r['base_kib']) / 1024:.0f} |")
    c, cr = res["cli"]["seconds"], res["cli-read"]["seconds"]
    print(f"| whole process: python -c 'import torch, safetensors; read both' | {cr:.2f} | 1.00 | | |")
    print(f"| whole process: python -m tmplc.cli check FOLDER --template llama-3 | {c:.2f} | {c / cr:.2f} | | |")
    goal = 1.5 * tensor_mib + 300
    print()
    print(f"goal: check <= 2x read; peak RSS over baseline <= 1.5 x {tensor_mib:.0f} + 300 = {goal:.0f} MiB")
    if args.phases:
        ph = run("phases", folder)
        print()
        print(f"phases of one profiled check ({ph['total']:.2f} s with the profiler on; cumulative seconds):")
        print()
        print("| part | s |")
        print("|---|---:|")
        for k, v in sorted(ph["phases"].items(), key=lambda kv: -kv[1]):
            print(f"| {k} | {v:.3f} |")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
