"""Write every requested GGUF in one pass over the weights: each HF tensor is read once, merged
with the adapter (if any), transformed (Q/K permutation), then encoded and appended to every
output file.  The files are written under temporary names in the output folder; the caller
renames them when the checks pass.
"""

from __future__ import annotations

import struct
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


_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NP = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 10: "<u8", 11: "<i8", 12: "<f8"}


def _str(s: str | bytes) -> bytes:
    b = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def _array(values, sub_type) -> bytes:
    import gguf

    lt = int(sub_type if sub_type is not None else gguf.GGUFValueType.get_type(values[0]))
    head = struct.pack("<IQ", lt, len(values))
    if lt == 8:
        return head + b"".join(_str(v) for v in values)
    if lt in _NP:
        return head + np.asarray(values, dtype=_NP[lt]).tobytes()
    return head + b"".join(struct.pack(_SCALAR[lt], v) for v in values)


def _write_kv(w, cache: dict[int, bytes]) -> None:
    """gguf-py's ``write_kv_data_to_file``, byte for byte, without its per-element packing (seconds on a
    150k-token vocabulary, per file); big arrays are encoded once for all output files."""
    from gguf.gguf_writer import WriterState

    out = bytearray()
    for key, val in w.kv_data[0].items():
        out += _str(key) + struct.pack("<I", int(val.type))
        t = int(val.type)
        if t == 9:
            k = id(val.value)
            if k not in cache:
                cache[k] = _array(val.value, val.sub_type)
            out += cache[k]
        elif t == 8:
            out += _str(val.value)
        else:
            out += struct.pack(_SCALAR[t], val.value)
    w.fout[0].write(out)
    w.flush()
    w.state = WriterState.KV_DATA


def write_ggufs(paths: dict[str, Path], name: str, arch: "Architecture", vocab: "GGUFVocab", keys: "ChatKeys",
                ck: "Checkpoint", adapter: "LoraAdapter | None" = None,
                progress: Callable[[str], None] | None = None) -> PassResult:
    """Write one GGUF per output type (``paths``: type -> temp path) in a single pass."""
    import gguf

    from tmplc.export.metadata import write_metadata

    res = PassResult()
    writers: dict[str, gguf.GGUFWriter] = {}
    types: dict[str, list] = {}
    kv_cache: dict[int, bytes] = {}
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
            _write_kv(w, kv_cache)
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
