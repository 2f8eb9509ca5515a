#!/usr/bin/env python3
"""Benchmark ``tmplc export`` against llama.cpp's own ``convert_hf_to_gguf.py`` (same pinned sdist).

A synthetic Llama-shaped model (default 1.5B parameters, bf16 safetensors, Llama-3 fixture
tokenizer) is exported to F16 and Q8_0 in ONE tmplc run (with checks 1-4 on the fixed conversations,
no logits check; --logits adds a run of the default export), and converted by the converter once per
type.  Prints one table: wall time, CPU time and peak RSS of each child process, the ratio per round,
tmplc's phase timings (from export-report.json), and whether each tensor's bytes equal the
converter's.

Goals (issue 15): both tmplc types together <= 1.0x the converter's time for one type (compared with
the faster of its two runs in the same round); peak RSS <= largest tensor x 3 + 1 GiB.

Usage: python bench/bench_export.py [--hidden 2048 --layers 16 --ffn 8192] [--work DIR] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def make_model(out: Path, hidden: int, layers: int, ffn: int, tok_dir: Path) -> int:
    """Write a random bf16 Llama checkpoint tensor by tensor (never the whole model in memory)."""
    import shutil

    import numpy as np
    from safetensors.numpy import save_file

    vocab = 128256
    heads, kv = hidden // 64, max(1, hidden // 256)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab,
           "hidden_size": hidden, "intermediate_size": ffn, "num_hidden_layers": layers,
           "num_attention_heads": heads, "num_key_value_heads": kv, "max_position_embeddings": 4096,
           "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg))
    rng = np.random.default_rng(0)
    n = 0
    index = {}

    def bf16(shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).view(np.uint32).__rshift__(16).astype(np.uint16)

    shards = [("model.embed_tokens.weight", (vocab, hidden)), ("lm_head.weight", (vocab, hidden)),
              ("model.norm.weight", (hidden,))]
    for i in range(layers):
        p = f"model.layers.{i}."
        shards += [(p + "self_attn.q_proj.weight", (hidden, hidden)), (p + "self_attn.k_proj.weight", (kv * 64, hidden)),
                   (p + "self_attn.v_proj.weight", (kv * 64, hidden)), (p + "self_attn.o_proj.weight", (hidden, hidden)),
                   (p + "mlp.gate_proj.weight", (ffn, hidden)), (p + "mlp.up_proj.weight", (ffn, hidden)),
                   (p + "mlp.down_proj.weight", (hidden, ffn)), (p + "input_layernorm.weight", (hidden,)),
                   (p + "post_attention_layernorm.weight", (hidden,))]
    # safetensors.numpy has no bf16: write the header ourselves
    header, offset, blobs = {}, 0, []
    for name, shape in shards:
        a = bf16(shape)
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a)
        n += a.size
        index[name] = "model.safetensors"
    hb = json.dumps(header).encode()
    hb += b" " * ((-len(hb)) % 8)
    with open(out / "model.safetensors", "wb") as fh:
        fh.write(len(hb).to_bytes(8, "little") + hb)
        for a in blobs:
            a.tofile(fh)
    del blobs, save_file
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tok_dir / f, out / f)
    return n


def timed(cmd: list[str], env=None) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds = user + system, peak RSS GiB) of a child process."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed with exit {proc.returncode}")
    return time.perf_counter() - t, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024 / 1024


def tensor_digests(path: Path) -> dict[str, tuple[int, str]]:
    """GGUF tensor name -> (ggml type, sha256 of its bytes)."""
    import hashlib

    from tmplc.gguf_container import read_gguf, tensor_bytes

    f = read_gguf(path)
    types = {t.name: t.ggml_type for t in f.tensors}
    out = {}
    with open(path, "rb") as fh:
        for name, (a, b) in tensor_bytes(f).items():
            fh.seek(a)
            out[name] = (types[name], hashlib.sha256(fh.read(b - a)).hexdigest())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--ffn", type=int, default=8192)
    ap.add_argument("--work", default=None, help="work folder (default: a new temp folder); an existing "
                    "model/ in it with the same shape is reused")
    ap.add_argument("--repeats", type=int, default=1, help="rounds of (tmplc, converter f16, converter q8_0), "
                    "interleaved so that each round runs under the same load")
    ap.add_argument("--logits", action="store_true", help="also time the default export (12 random "
                    "conversations + the logits check, which loads the model in torch float32)")
    ap.add_argument("--make-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="tmplc-bench-"))
    model = work / "model"
    shape = {"hidden": args.hidden, "layers": args.layers, "ffn": args.ffn}
    stamp = model / "bench-shape.json"
    if args.make_only:
        n = make_model(model, args.hidden, args.layers, args.ffn, ROOT / ".cache" / "fixtures" / "llama3")
        (model / "n-params").write_text(str(n))
        stamp.write_text(json.dumps(shape))
        return 0
    if not (stamp.is_file() and json.loads(stamp.read_text()) == shape):
        # in a child: Linux carries a process's peak RSS over to the children it starts later, so the
        # parent must never hold the model (it would show up as every child's peak)
        subprocess.run([sys.executable, __file__, "--make-only", "--work", str(work), "--hidden", str(args.hidden),
                        "--layers", str(args.layers), "--ffn", str(args.ffn)], check=True)
    n = int((model / "n-params").read_text())
    largest = 128256 * args.hidden * 4 / 2**30  # the embedding in float32, GiB
    from tmplc.export.llamacpp_sources import extract_converter

    conv = extract_converter(work / "llama.cpp")
    env = dict(os.environ, PYTHONPATH=f"{work / 'llama.cpp' / 'gguf-py'}")
    py = sys.executable
    runs: list[tuple[str, list[str], dict]] = []
    for label, kw in [("tmplc export F16+Q8_0, one pass, checks 1-4", "logits=False, n_random=0"),
                      *([("tmplc export F16+Q8_0, one pass, all checks (default)", "")] if args.logits else [])]:
        out = work / ("tmplc-logits" if kw == "" else "tmplc")
        code = ("from tmplc.export.exporter import export; "
                f"export({str(model)!r}, 'llama-3', {str(out)!r}, outtypes='f16,q8_0', force=True, {kw})")
        runs.append((label, [py, "-c", code], dict(os.environ, PYTHONPATH=str(ROOT / "src"))))
    for t in ("f16", "q8_0"):
        runs.append((f"convert_hf_to_gguf.py --outtype {t}",
                     [py, str(conv), str(model), "--outtype", t, "--outfile", str(work / f"conv-{t}.gguf")], env))
    results: dict[str, list[tuple[float, float, float]]] = {r[0]: [] for r in runs}
    ratios = []
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for label, cmd, e in runs:
            results[label].append(timed(cmd, e))
            loads.append(os.getloadavg()[0])
        conv_min = min(results[label][-1][0] for label, _, _ in runs if label.startswith("convert"))
        ratios.append(results[runs[0][0]][-1][0] / conv_min)
    print(f"model: {n / 1e9:.2f}B parameters (bf16), largest tensor {largest:.2f} GiB as float32; "
          f"RSS goal <= {3 * largest + 1:.2f} GiB; {os.cpu_count()} CPUs, 1-min load average during the "
          f"runs {min(loads):.1f}-{max(loads):.1f}; {args.repeats} round(s), median shown")
    print("| run | wall s | CPU s (user+sys) | peak RSS GiB |\n|---|---:|---:|---:|")
    for label, rs in results.items():
        med = [statistics.median(x) for x in zip(*rs)]
        print(f"| {label} | {med[0]:.1f} | {med[1]:.1f} | {max(r[2] for r in rs):.2f} |")
    print(f"tmplc (both types) / converter (faster single type, same round): "
          f"{', '.join(f'{r:.2f}x' for r in ratios)} (median {statistics.median(ratios):.2f}x)")
    rep = json.loads((work / "tmplc" / "export-report.json").read_text())
    print("tmplc phases (last run, wall s): " + ", ".join(f"{k} {v:.1f}" for k, v in rep["timings"].items()))
    for t, conv_t in (("F16", "f16"), ("Q8_0", "q8_0")):
        mine = tensor_digests(work / "tmplc" / f"model-{t}.gguf")
        theirs = tensor_digests(work / f"conv-{conv_t}.gguf")
        same = sum(1 for k in mine if theirs.get(k) == mine[k])
        diff = sorted(k for k in mine if theirs.get(k) != mine[k])
        print(f"{t}: {same}/{len(mine)} tensors byte-identical to the converter's"
              + (f" (differ: {', '.join(diff[:6])}{'...' if len(diff) > 6 else ''})" if diff else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
