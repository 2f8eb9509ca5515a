"""Which HF architectures tmplc exports to GGUF, and how: hyper-parameters, tensor names, and the
per-tensor transforms llama.cpp needs.

* ``LlamaForCausalLM`` / ``MistralForCausalLM`` -> ``llama``.  Q and K rows are permuted
  (HF stores rotary halves, llama.cpp interleaved pairs): without it the model loads and is
  silently wrong.  ``rope_type: llama3`` adds the ``rope_freqs`` tensor, ``linear`` the scaling keys.
* ``Qwen2ForCausalLM`` -> ``qwen2``: q/k/v biases, no permutation, tied embeddings (no ``output``).
* ``Qwen3ForCausalLM`` -> ``qwen3``: per-head q/k RMS norms, explicit ``head_dim``.

Anything else is refused naming the architecture (never a best-effort guess).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from tmplc.export.errors import ExportInputError, ExportRefused

#: HF ``architectures[0]`` -> GGUF ``general.architecture``
SUPPORTED: dict[str, str] = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
}


def permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF -> llama.cpp row order of a Q or K weight (or bias): within each head, the two rotary
    halves become interleaved pairs (``convert_hf_to_gguf.py``'s ``LlamaModel.permute``)."""
    rows = w.shape[0]
    return (w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


@dataclass(frozen=True)
class TensorPlan:
    """One output tensor: its GGUF name, the HF tensor it comes from (None: generated), its shape
    (numpy order) and the transform from the float32 HF array to the float32 GGUF array."""

    gguf_name: str
    hf_name: str | None
    shape: tuple[int, ...]
    transform: Callable[[np.ndarray], np.ndarray] | None = None
    generate: Callable[[], np.ndarray] | None = None
    keep_f32: bool = False  # norms, biases, rope factors: always F32


@dataclass
class Architecture:
    """The plan for one model: GGUF arch name, hyper-parameter keys, tensors in file order."""

    hf_arch: str
    gguf_arch: str
    hparams: dict[str, Any]
    n_vocab: int
    tensors: list[TensorPlan] = field(default_factory=list)
    tied_embeddings: bool = False
    notes: list[str] = field(default_factory=list)


def _get(cfg: dict, key: str, where: str, default: Any = None, required: bool = True) -> Any:
    if key in cfg and cfg[key] is not None:
        return cfg[key]
    if not required:
        return default
    raise ExportInputError(f"{where}: config.json has no {key!r}")


def _rope(cfg: dict) -> dict:
    rp = dict(cfg.get("rope_parameters") or cfg.get("rope_scaling") or {})
    if "rope_theta" not in rp and cfg.get("rope_theta") is not None:
        rp["rope_theta"] = cfg["rope_theta"]
    return rp


def _llama3_rope_factors(rp: dict, head_dim: int) -> np.ndarray:
    base = float(rp.get("rope_theta", 10000.0))
    freqs = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    factor = rp.get("factor", 8.0)
    low, high = rp.get("low_freq_factor", 1.0), rp.get("high_freq_factor", 4.0)
    old = rp.get("original_max_position_embeddings", 8192)
    low_wl, high_wl = old / low, old / high
    out = []
    for f in freqs:
        wl = 2 * math.pi / f
        if wl < high_wl:
            out.append(1.0)
        elif wl > low_wl:
            out.append(factor)
        else:
            smooth = (old / wl - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def plan_architecture(cfg: dict, shapes: dict[str, tuple[int, ...]], where: str) -> Architecture:
    """Build the export plan from ``config.json`` and the checkpoint's tensor shapes (name -> shape).

    Raises:
        ExportRefused: an architecture, rope scaling or tensor that is not supported.
        ExportInputError: config.json lacks a required field.
    """
    import gguf

    archs = cfg.get("architectures") or []
    hf_arch = archs[0] if archs else cfg.get("model_type", "<none>")
    if hf_arch not in SUPPORTED:
        raise ExportRefused(f"{where}: architecture {hf_arch!r} is not supported by tmplc export "
                            f"(supported: {', '.join(SUPPORTED)}); use llama.cpp's convert_hf_to_gguf.py "
                            "and `tmplc gguf set-template` for the template")
    arch = SUPPORTED[hf_arch]
    n_layer = int(_get(cfg, "num_hidden_layers", where))
    n_embd = int(_get(cfg, "hidden_size", where))
    n_head = int(_get(cfg, "num_attention_heads", where))
    n_head_kv = int(_get(cfg, "num_key_value_heads", where, n_head, required=False))
    head_dim = int(cfg.get("head_dim") or n_embd // n_head)
    n_vocab = int(_get(cfg, "vocab_size", where))
    rp = _rope(cfg)
    rope_type = (rp.get("rope_type") or rp.get("type") or "default").lower()
    hp: dict[str, Any] = {
        "context_length": int(_get(cfg, "max_position_embeddings", where)),
        "embedding_length": n_embd,
        "block_count": n_layer,
        "feed_forward_length": int(_get(cfg, "intermediate_size", where)),
        "head_count": n_head,
        "head_count_kv": n_head_kv,
        "layer_norm_rms_eps": float(_get(cfg, "rms_norm_eps", where)),
        "rope_freq_base": float(rp.get("rope_theta", 10000.0)),
        "rope_dimension_count": head_dim,
        "vocab_size": n_vocab,
    }
    if head_dim != n_embd // n_head or arch == "qwen3":
        hp["key_length"] = head_dim
        hp["value_length"] = head_dim
    a = Architecture(hf_arch, arch, hp, n_vocab)
    extra: list[TensorPlan] = []
    if rope_type == "linear":
        hp["rope_scaling_type"] = "linear"
        hp["rope_scaling_factor"] = float(rp["factor"])
    elif rope_type == "llama3" and arch == "llama":
        factors = _llama3_rope_factors(rp, head_dim)
        extra.append(TensorPlan("rope_freqs.weight", None, factors.shape, generate=lambda f=factors: f,
                                keep_f32=True))
    elif rope_type != "default":
        raise ExportRefused(f"{where}: rope scaling {rope_type!r} is not supported by tmplc export "
                            "(supported: none, linear, llama3 for Llama)")
    if cfg.get("attention_bias") and arch == "llama":
        a.notes.append("attention biases present (attention_bias=true)")

    tmap = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, arch.upper()), n_layer)
    names = set(shapes)
    a.tied_embeddings = bool(cfg.get("tie_word_embeddings", False)) or "lm_head.weight" not in names
    for hf in shapes:
        if hf == "lm_head.weight" and a.tied_embeddings and cfg.get("tie_word_embeddings", False):
            continue  # llama.cpp reuses token_embd
        if hf.endswith(("rotary_emb.inv_freq",)):
            continue
        new = tmap.get_name(hf, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise ExportRefused(f"{where}: tensor {hf!r} has no GGUF name for {hf_arch} (tmplc exports "
                                "plain text models; vision towers, MoE and extra heads are not supported)")
        transform = None
        if arch == "llama" and hf.endswith(("self_attn.q_proj.weight", "self_attn.q_proj.bias")):
            transform = lambda w, n=n_head: permute_qk(w, n)  # noqa: E731
        elif arch == "llama" and hf.endswith(("self_attn.k_proj.weight", "self_attn.k_proj.bias")):
            transform = lambda w, n=n_head_kv: permute_qk(w, n)  # noqa: E731
        keep = hf.endswith(".bias") or "norm" in hf
        a.tensors.append(TensorPlan(new, hf, tuple(shapes[hf]), transform, keep_f32=keep))
    if "model.embed_tokens.weight" not in names:
        raise ExportInputError(f"{where}: the checkpoint has no model.embed_tokens.weight")
    a.tensors = extra + a.tensors
    return a

