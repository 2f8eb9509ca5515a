"""Write every requested GGUF in one pass over the weights: each HF tensor is read once, merged
with the adapter (if any), transformed (Q/K permutation), then encoded and appended to every
output file.  The files are written under temporary names in the output folder; the caller
renames them when the checks pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from tmplc.export.quantize import FILE_TYPES, encode, f16_overflow, tensor_type

if TYPE_CHECKING:  # pragma: no cover
    from tmplc.export.architectures import Architecture
    from tmplc.export.lora import LoraAdapter
    from tmplc.export.metadata import ChatKeys
    from tmplc.export.safetensors_reader import Checkpoint
    from tmplc.export.vocab import GGUFVocab


@dataclass
class PassResult:
    """What the pass saw: F16 overflows per tensor, Q8_0 -> F16 fallbacks, tensors read."""

    overflow: dict[str, dict] = field(default_factory=dict)
    fallbacks: dict[str, list[str]] = field(default_factory=dict)
    tensors_read: int = 0
    max_tensor_bytes: int = 0


def write_ggufs(paths: dict[str, Path], name: str, arch: "Architecture", vocab: "GGUFVocab", keys: "ChatKeys",
                ck: "Checkpoint", adapter: "LoraAdapter | None" = None,
                progress: Callable[[str], None] | None = None) -> PassResult:
    """Write one GGUF per output type (``paths``: type -> temp path) in a single pass."""
    import gguf

    from tmplc.export.metadata import write_metadata

    res = PassResult()
    writers: dict[str, gguf.GGUFWriter] = {}
    types: dict[str, list] = {}
    try:
        for outtype, path in paths.items():
            w = gguf.GGUFWriter(path, arch.gguf_arch)
            write_metadata(w, name, arch, vocab, keys, FILE_TYPES[outtype])
            tl = []
            for t in arch.tensors:
                shape = t.shape if t.hf_name is not None else t.generate().shape
                tt = tensor_type(outtype, tuple(shape), t.keep_f32)
                if tt.fallback:
                    res.fallbacks.setdefault(outtype, []).append(t.gguf_name)
                q = getattr(gguf.GGMLQuantizationType, tt.ggml)
                if tt.ggml in ("F32", "F16"):
                    w.add_tensor_info(t.gguf_name, tt.shape, np.dtype(np.float32 if tt.ggml == "F32" else np.float16),
                                      tt.nbytes)
                else:
                    block, size = gguf.GGML_QUANT_SIZES[q]
                    byte_shape = (*tt.shape[:-1], tt.shape[-1] // block * size)
                    w.add_tensor_info(t.gguf_name, byte_shape, np.dtype(np.uint8), tt.nbytes, raw_dtype=q)
                tl.append(tt)
            w.write_header_to_file(path)
            w.write_kv_data_to_file()
            w.write_ti_data_to_file()
            writers[outtype] = w
            types[outtype] = tl
        check_f16 = "F16" in paths
        for k, t in enumerate(arch.tensors):
            if t.hf_name is None:
                data = t.generate()
            else:
                data = ck.read(t.hf_name)
                res.tensors_read += 1
                if adapter is not None:
                    data = adapter.delta(t.hf_name, data)
                if t.transform is not None:
                    data = t.transform(data)
            res.max_tensor_bytes = max(res.max_tensor_bytes, data.nbytes)
            if check_f16 and not t.keep_f32 and data.ndim >= 2:
                big, mx = f16_overflow(data)
                if big:
                    res.overflow[t.gguf_name] = {"values_over_f16_max": big, "max_abs": mx,
                                                 "source": t.hf_name}
            for outtype, w in writers.items():
                w.write_tensor_data(encode(data, types[outtype][k].ggml))
            if progress is not None:
                progress(t.gguf_name)
            del data
    finally:
        for w in writers.values():
            w.close()
        ck.close()
    return res
