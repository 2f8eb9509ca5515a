"""LoRA SFT throughput: transformers' default padded batches vs tmplc's leak-free packing.

    PYTHONUNBUFFERED=1 python bench/bench_trainer.py [--rows a,b,c,d,e] [--steps 8] [--warmup 3]
                                                     [--budget 16384] [--time-limit 380] [--tiny]

One table, one run.  Model: a 1.1B Llama shape (hidden 2048, intermediate 5632, 22 layers, 32
heads, 4 KV heads, vocab 32000), random weights, bf16, LoRA r=16 / alpha 32 on every linear layer
(q,k,v,o,gate,up,down), AdamW lr 2e-4, gradient clipping 1.0.  Data: 4,000 lengths drawn
lognormal (median 350, sigma 0.9, clipped 32..2048; mean ~500; seed 0, the stream of
``../shared/experiments``), random token ids, every token trained.  Rows:

a. transformers' default: 8 conversations per step padded to the longest, sdpa, HF loss;
b. tmplc packing, ``--budget`` tokens per step, flex_attention with a document BlockMask, full logits;
c. b with tmplc's fused chunked cross-entropy (no logits tensor) -- ``tmplc train``'s default path;
d. c + liger-kernel's rope / rms_norm / swiglu (``--liger``; skipped when not installed);
e. c + ``torch.compile`` of each decoder layer, rows padded to the budget (``--compile``; a fresh
   model, without liger).

Every row except (a) goes through the trainer's own functions (``collate_packed``,
``_forward_args``, ``LossModule``, ``attention.set_impl``) with the trainer's fallback: if
flex_attention fails to build or run, the row uses sdpa with a dense block-diagonal mask and says so.
Columns: real (non-pad) tokens/s over the timed steps, ratio to (a), peak GPU memory (max
allocated), approximate model TFLOP/s (4 x parameters x tokens/s: forward 2N + input-gradient 2N
per token for a frozen base), and the leak figure: on a packed probe row, max over its
conversations of |mean loss in the packed row - mean loss of the conversation alone (sdpa, no
mask)|, bf16 (noise ~1e-2); the same figure for packing with restarted position_ids only (no
document mask) is printed under the table to show what a leak looks like.  ``--tiny``: a small
model, lengths and budget on the CPU, to check the script.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import numpy as np
import torch

from tmplc.train import attention as attn
from tmplc.train.data import Tokenized
from tmplc.train.loop import _forward_args
from tmplc.train.loss import LossModule
from tmplc.train.packing import collate_packed, first_fit

ROWS = {
    "a": "transformers default: 8 rows padded to the longest, sdpa",
    "b": "tmplc packed, flex BlockMask, full logits",
    "c": "tmplc packed, flex BlockMask, fused chunked CE (default)",
    "d": "c + liger rope/rms_norm/swiglu",
    "e": "c + torch.compile per decoder layer (static rows)",
}
T0 = time.perf_counter()


def shape(tiny: bool):
    from transformers import LlamaConfig

    if tiny:
        return LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)
    return LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                       num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=4096)


def lengths(tiny: bool) -> list[int]:
    rnd = random.Random(0)
    med, hi = (40, 256) if tiny else (350, 2048)
    return [min(hi, max(32 if not tiny else 8, int(rnd.lognormvariate(math.log(med), 0.9)))) for _ in range(4000)]


def synthetic(lens: list[int], vocab: int) -> Tokenized:
    g = np.random.default_rng(0)
    ids = [g.integers(0, vocab, n, dtype=np.int64).tolist() for n in lens]
    return Tokenized.from_rows(ids, ids)  # every token trained


def build(cfg, device, dtype, liger=False):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        m = LlamaForCausalLM(cfg).to(dtype)
    if liger:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        _apply_liger_kernel_to_instance(model=m, rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                        fused_linear_cross_entropy=False)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    return get_peft_model(m, lora)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_gib(device) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def padded_batches(data, k0, n_rows=8):
    k = k0
    while True:
        docs = [(k + j) % len(data) for j in range(n_rows)]
        k += n_rows
        rows = [data.doc(i)[0] for i in docs]
        L = max(len(r) for r in rows)
        ids = torch.zeros(n_rows, L, dtype=torch.long)
        am = torch.zeros(n_rows, L, dtype=torch.long)
        for r, x in enumerate(rows):
            ids[r, :len(x)] = torch.from_numpy(x.astype(np.int64))
            am[r, :len(x)] = 1
        yield ids, am, int(am.sum())


def packed_plans(data, budget):
    order = np.arange(len(data))
    plans = first_fit(order, data.lengths, budget)
    while True:
        yield from plans


def run_row(key, model, data, args, device, dtype, budget):
    """Throughput of one configuration; returns (tokens/s, peak GiB, impl used, note)."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4,
                            **({"fused": True} if device.type == "cuda" else {}))
    params = [p for p in model.parameters() if p.requires_grad]
    note, impl = "", "sdpa"
    reset_peak(device)
    if key == "a":
        attn.set_impl(model, "sdpa")
        it = padded_batches(data, 0)

        def step():
            ids, am, n = next(it)
            ids, am = ids.to(device, non_blocking=True), am.to(device, non_blocking=True)
            loss = model(input_ids=ids, attention_mask=am, labels=ids.masked_fill(am == 0, -100)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return n
    else:
        impl = "flex"
        lm = LossModule(model, "hf" if key == "b" else "chunked")
        plans = packed_plans(data, budget)
        pad_to = budget if key == "e" else None
        attn.set_impl(model, impl)
        first = next(plans)
        try:  # the trainer's probe: flex must build and run forward+backward, else the dense-mask path
            b = collate_packed(data, first, pad_id=0, pad_to=pad_to)
            lm(**_forward_args(b, "flex", dtype, device)).backward()
        except Exception as e:
            if key == "e" and device.type == "cuda":
                raise  # a compile failure is this row's result, not a reason to switch attention
            impl = "sdpa"
            attn.set_impl(model, impl)
            note = f"flex failed ({type(e).__name__}); sdpa dense mask"
        opt.zero_grad(set_to_none=True)

        def step():
            b = collate_packed(data, next(plans), pad_id=0, pad_to=pad_to)
            loss = lm(**_forward_args(b, impl, dtype, device))
            (loss / max(1, b.n_target)).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return b.n_real
    for _ in range(args.warmup):
        step()
    sync(device)
    reset_peak(device) if key != "a" else None
    t = time.perf_counter()
    real = sum(step() for _ in range(args.steps))
    sync(device)
    dt = time.perf_counter() - t
    if key in args.profile.split(",") and device.type == "cuda":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            step()
            sync(device)
        print(f"# profile of one step of row {key}:", flush=True)
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=60),
              flush=True)
    if key == "e":
        from torch._dynamo.utils import counters

        note = (note + "; " if note else "") + f"{counters['stats']['unique_graphs']} compiled graphs"
    del opt
    return real / dt, peak_gib(device), impl, note


def leak(model, data, budget, impl, device, dtype, compiled=False):
    """max over the probe row's conversations of |mean loss packed - mean loss alone| (and the same
    with position_ids only, no document mask)."""
    lm = LossModule(model, "chunked")
    docs = first_fit(np.arange(len(data)), data.lengths, budget)[0][:24]
    b = collate_packed(data, docs, pad_id=0, pad_to=budget if compiled else None)
    base = model.get_base_model()
    head = base.get_output_embeddings()

    def per_doc(mask, pos_only=None):
        kw = _forward_args(b, impl, dtype, device)
        am = kw["attention_mask"]
        if pos_only == "none":
            am = None
        elif pos_only == "ones":  # what a padding collator passes with a packed row
            am = torch.ones_like(kw["input_ids"])
        with torch.enable_grad() if compiled else torch.no_grad():  # compiled: reuse the training graph
            h = base.model(input_ids=kw["input_ids"], position_ids=kw["position_ids"],
                           attention_mask=am, use_cache=False).last_hidden_state[0].detach()
        out, off = [], 0
        for L in b.seq_lens[:len(docs)]:
            with torch.no_grad():
                logits = head(h[off:off + L]).float()
                tg = b.targets[0, off:off + L].to(device)
                out.append(float(torch.nn.functional.cross_entropy(logits, tg, ignore_index=-100)))
            off += L
        return out

    packed = per_doc(True)
    layers = base.model.layers
    saved = [getattr(l, "_compiled_call_impl", None) for l in layers]
    for l in layers:
        l._compiled_call_impl = None
    attn.set_impl(model, "sdpa")
    alone = []
    with torch.no_grad():
        for i in docs:
            ids, lab = data.doc(int(i))
            x = torch.from_numpy(ids.astype(np.int64))[None].to(device)
            y = torch.from_numpy(lab.astype(np.int64))[None].to(device)
            alone.append(float(base(input_ids=x, labels=y).loss))
    pos_only = None
    if not compiled:
        pos_only = tuple(max(abs(a - p) for a, p in zip(alone, per_doc(False, pos_only=k))) for k in ("none", "ones"))
    for l, s in zip(layers, saved):
        l._compiled_call_impl = s
    attn.set_impl(model, impl)
    return max(abs(a - p) for a, p in zip(alone, packed)), pos_only


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", default="a,b,c,d,e")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--budget", type=int, default=None, help="tokens per packed step (default 16384; tiny 1024)")
    ap.add_argument("--time-limit", type=float, default=380.0, help="skip rows that would start after this (s)")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--profile", default="", help="rows to profile for one extra step (CUDA), e.g. c,e")
    ap.add_argument("--out", default=None, help="also write the table here")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    budget = args.budget or (1024 if args.tiny else 16384)
    import peft
    import transformers

    gpu = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"
    head = (f"# {gpu}; torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, "
            f"python {platform.python_version()}; budget {budget} tokens/packed step; "
            f"{args.warmup} warm-up + {args.steps} timed steps")
    print(head, flush=True)
    cfg = shape(args.tiny)
    data = synthetic(lengths(args.tiny), cfg.vocab_size)
    print(f"# lengths: mean {data.lengths.mean():.0f}, max {data.lengths.max()}", flush=True)
    results, model, model_kind, n_params, pos_leak = {}, None, None, 0, None
    lines = ["| row | configuration | real tokens/s | x (a) | peak GiB | ~model TFLOP/s | leak | note |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    print("\n".join(lines), flush=True)
    for key in args.rows.split(","):
        if time.perf_counter() - T0 > args.time_limit:
            print(f"| {key} | {ROWS[key]} | skipped: time limit | | | | | |", flush=True)
            continue
        want = "liger" if key == "d" else ("fresh" if key == "e" else "plain")
        note = ""
        try:
            if key == "d":
                import liger_kernel  # noqa: F401
            if model is None or want != model_kind or key == "e":
                model = None
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                model = build(cfg, device, dtype, liger=(key == "d"))
                model_kind = want
                n_params = sum(p.numel() for p in model.parameters())
                if key == "e":
                    for layer in model.get_base_model().model.layers:
                        layer.compile(dynamic=False)
            tps, peak, impl, note = run_row(key, model, data, args, device, dtype, budget)
            lk = "-"
            if key != "a":
                lk_v, pl = leak(model, data, budget, impl, device, dtype, compiled=(key == "e"))
                lk = f"{lk_v:.3f}"
                if pl is not None and pos_leak is None:
                    pos_leak = pl
        except ImportError as e:
            print(f"| {key} | {ROWS[key]} | skipped: {e} | | | | | |", flush=True)
            continue
        except Exception as e:  # one row failing must not lose the others
            msg = str(e).splitlines()[0][:160] if str(e) else ""
            print(f"| {key} | {ROWS[key]} | failed: {type(e).__name__}: {msg} | | | | | |", flush=True)
            model = None
            continue
        results[key] = tps
        ratio = f"{tps / results['a']:.2f}" if "a" in results else "-"
        line = (f"| {key} | {ROWS[key]} | {tps:,.0f} | {ratio} | {peak:.1f} | {tps * 4 * n_params / 1e12:.0f} | "
                f"{lk} | {note} |")
        lines.append(line)
        print(line + f"  ({time.perf_counter() - T0:.0f} s)", flush=True)
    if pos_leak is not None:
        tail = (f"\nleak with restarted position_ids and no document mask, same probe row (sdpa): attention_mask=None "
                f"{pos_leak[0]:.3f}; all-ones attention_mask {pos_leak[1]:.3f}")
        print(tail, flush=True)
        lines.append(tail)
    if args.out:
        Path(args.out).write_text(head + "\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
