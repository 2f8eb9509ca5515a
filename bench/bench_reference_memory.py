"""Peak memory of the logits check's torch reference: the whole float32 model vs the weights
streamed block by block (tmplc.export.reference). Run each in its own process under
/usr/bin/time -v, on the model bench/bench_export.py builds (its --work DIR/model):

    /usr/bin/time -v python bench/bench_reference_memory.py DIR/model streamed
    /usr/bin/time -v python bench/bench_reference_memory.py DIR/model whole

Each run saves its logits to DIR/model/../ref-<mode>.npy; after both, it compares them."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from tmplc.export import reference
from tmplc.export.safetensors_reader import Checkpoint


def main() -> None:
    model, mode = Path(sys.argv[1]), sys.argv[2]
    ids = list(range(100, 148))  # 48 tokens, as the export's check
    t = time.perf_counter()
    if mode == "streamed":
        ck = Checkpoint.from_folder(model)
        try:
            out = reference.streamed_logits(model, ids, ck)
        finally:
            ck.close()
    elif mode == "whole":
        out = reference.whole_model_logits(model, ids)
    else:
        raise SystemExit("mode: streamed or whole")
    np.save(model.parent / f"ref-{mode}.npy", out)
    print(f"| {mode} | {time.perf_counter() - t:.1f} s | logits {out.shape} |")
    other = model.parent / f"ref-{'whole' if mode == 'streamed' else 'streamed'}.npy"
    if other.exists():
        print("bit-identical to the other mode:", bool(np.array_equal(out, np.load(other))))


if __name__ == "__main__":
    main()
