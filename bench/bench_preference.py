"""Preference pairs: tmplc's pair tokenization vs TRL's own DPO tokenization, same pairs, same run.

    .venv/bin/python bench/bench_preference.py [--pairs 2000] [--fixtures qwen3 llama3] [--repeat 3]

Corpus (seeded): a system message, 1-3 user/assistant exchanges as the prompt, two completions
of 5-80 words.  tmplc: ``process_pair_rows`` over batches of 1,000 rows (read, split, tokenize,
check; the tokenizer loaded before timing).  TRL 1.16.0: ``DPOTrainer._prepare_dataset`` (what
``DPOTrainer.__init__`` runs: ``datasets.map`` with three ``apply_chat_template`` calls per
row) on the same pairs, with the format's Jinja as the tokenizer's chat template, on a trainer
built before timing (tiny random model).  Both single-process.  Prints the best of ``--repeat``
runs per method and the ratio, and checks the ids agree on every pair tmplc accepts.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.simplefilter("ignore")

FORMATS = {"qwen3": "qwen3", "llama3": "llama-3", "gemma3": "gemma-3", "llama2": "llama-2"}
WORDS = "the a of model answer question sky blue green because therefore é 日本 data token pair".split()


def corpus(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def text(lo, hi):
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))).capitalize() + "."

    rows = []
    for _ in range(n):
        prompt = [{"role": "system", "content": text(3, 12)}]
        for k in range(rng.randint(1, 3)):
            if k:
                prompt.append({"role": "assistant", "content": text(5, 40)})
            prompt.append({"role": "user", "content": text(5, 40)})
        rows.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": text(5, 80)}],
                     "rejected": [{"role": "assistant", "content": text(5, 80)}]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--fixtures", nargs="+", default=["qwen3", "llama3"])
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    import datasets
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from trl import DPOConfig, DPOTrainer

    import tmplc
    from tmplc.formatter.core import make_options
    from tmplc.formatter.preference import TRL_COLUMNS, process_pair_rows

    datasets.disable_progress_bars()
    datasets.disable_caching()
    rows = corpus(a.pairs)
    print(f"{a.pairs} pairs, best of {a.repeat}, load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'fixture':8} {'tmplc s':>8} {'pairs/s':>8} {'TRL s':>8} {'pairs/s':>8} {'TRL/tmplc':>9} {'agree':>7}")
    for fx in a.fixtures:
        tok = copy.deepcopy(AutoTokenizer.from_pretrained(str(ROOT / ".cache" / "fixtures" / fx)))
        fmt = tmplc.load(FORMATS[fx])
        tok.chat_template = fmt.to_jinja()
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1)
        with tempfile.TemporaryDirectory() as d:
            args = DPOConfig(output_dir=d, report_to=[], max_length=None, use_cpu=True)
            trainer = DPOTrainer(model=LlamaForCausalLM(cfg), ref_model=LlamaForCausalLM(cfg), args=args,
                                 train_dataset=datasets.Dataset.from_list(rows[:2]), processing_class=tok)
            opts = make_options()
            process_pair_rows(fmt, tok, opts, [0, 1], rows[:2])  # warm the tokenizer facts
            best_t = best_r = float("inf")
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                ours = []
                for i in range(0, len(rows), 1000):
                    out, _ = process_pair_rows(fmt, tok, opts, list(range(i, i + 1000))[:len(rows[i:i + 1000])],
                                               rows[i:i + 1000])
                    ours.extend(out)
                best_t = min(best_t, time.perf_counter() - t0)
                ds = datasets.Dataset.from_list(rows)
                t0 = time.perf_counter()
                theirs = trainer._prepare_dataset(ds, tok, trainer.args, "bench")
                best_r = min(best_r, time.perf_counter() - t0)
            cols = {k: theirs[k] for k in TRL_COLUMNS.values()}
            agree = sum(all(cols[TRL_COLUMNS[k]][n] == v for k, v in x.items() if k in TRL_COLUMNS) for n, x in ours)
        print(f"{fx:8} {best_t:8.2f} {len(rows) / best_t:8.0f} {best_r:8.2f} {len(rows) / best_r:8.0f} "
              f"{best_r / best_t:9.2f} {agree:>4}/{len(ours)}")


if __name__ == "__main__":
    main()
