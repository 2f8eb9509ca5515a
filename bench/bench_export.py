#!/usr/bin/env python3
"""Benchmark ``tmplc export`` against llama.cpp's own ``convert_hf_to_gguf.py`` (same pinned sdist).

A synthetic Llama-shaped model (default ~1B parameters, bf16 safetensors, Llama-3 fixture tokenizer)
is exported to F16 and Q8_0 in ONE tmplc run (checks off: conversion only), and converted by the
converter once per type.  Prints one table: wall time and peak RSS (of the child process).

Goals (issue 15): both tmplc types together <= 1.0x the converter's time for one type; peak RSS <=
largest tensor x 3 + 1 GiB.

Usage: python bench/bench_export.py [--hidden 2048 --layers 16 --ffn 8192] [--work DIR]
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


def timed(cmd: list[str], env=None) -> tuple[float, float]:
    """(seconds, peak RSS GiB) of a child process."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed with exit {proc.returncode}")
    return time.perf_counter() - t, usage.ru_maxrss / 1024 / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--ffn", type=int, default=8192)
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    from tmplc.export.llamacpp_sources import extract_converter

    work = Path(args.work or tempfile.mkdtemp(prefix="tmplc-bench-"))
    model = work / "model"
    n = make_model(model, args.hidden, args.layers, args.ffn, ROOT / ".cache" / "fixtures" / "llama3")
    largest = 128256 * args.hidden * 4 / 2**30  # the embedding in float32, GiB
    conv = extract_converter(work / "llama.cpp")
    env = dict(os.environ, PYTHONPATH=f"{work / 'llama.cpp' / 'gguf-py'}")
    rows = []
    py = sys.executable
    tm_code = ("import sys; from tmplc.export.exporter import export; "
               f"export({str(model)!r}, 'llama-3', {str(work / 'tmplc')!r}, outtypes='f16,q8_0', logits=False, "
               "n_random=0, force=True)")
    s, rss = timed([py, "-c", tm_code], env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    rows.append(("tmplc export (F16 + Q8_0, one pass)", s, rss))
    for t in ("f16", "q8_0"):
        s, rss = timed([py, str(conv), str(model), "--outtype", t, "--outfile", str(work / f"conv-{t}.gguf")], env=env)
        rows.append((f"convert_hf_to_gguf.py --outtype {t}", s, rss))
    print(f"model: {n / 1e9:.2f}B parameters (bf16), largest tensor {largest:.2f} GiB as float32; "
          f"RSS goal <= {3 * largest + 1:.2f} GiB")
    print(f"| run | wall s | peak RSS GiB |\n|---|---:|---:|")
    for name, s, rss in rows:
        print(f"| {name} | {s:.1f} | {rss:.2f} |")
    one = min(r[1] for r in rows[1:])
    print(f"tmplc (both types) / converter (one type) = {rows[0][1] / one:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
