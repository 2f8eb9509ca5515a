"""The GGUF key/value metadata an export writes: general, hyper-parameters, vocabulary, and the
chat-format keys -- the format's llama.cpp template, its BOS policy and its stop tokens.

Rules (see README "Exporting to GGUF"):

* ``tokenizer.chat_template`` is the format's llama.cpp target (never the tokenizer's template).
* ``tokenizer.ggml.eos_token_id`` is the format's **end-of-turn** token (llama.cpp stops on EOS;
  an instruct model whose GGUF names the base EOS never stops), and ``eot_token_id`` is written
  too.  ``bos_token_id`` is the BOS the format renders (else the tokenizer's).
* ``tokenizer.ggml.add_bos_token`` is the target's flag: true exactly when every render starts
  with the BOS text, which llama.cpp then strips from the render and adds as a token -- once.
  ``add_eos_token`` is false.
* ``padding_token_id`` is never the end-of-turn token: the tokenizer's pad if it differs, else a
  pad chosen by the doctor's pad fix (or, without the doctor, the first unused CONTROL token among
  the usual pad names), said in the report; none when there is no candidate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tmplc.export.errors import ExportRefused

if TYPE_CHECKING:  # pragma: no cover
    from tmplc.export.architectures import Architecture
    from tmplc.export.vocab import GGUFVocab
    from tmplc.ir import ChatFormat

_PAD_CANDIDATES = ("<|finetune_right_pad_id|>", "<|endoftext|>", "<pad>", "<|pad|>", "[PAD]", "<unk>")


def _pad_candidates() -> tuple[str, ...]:
    """The doctor's pad candidates (its pad fix's order), else the short list above."""
    try:
        from tmplc.doctor.repair import PAD_CANDIDATES
    except ImportError:
        return _PAD_CANDIDATES
    return PAD_CANDIDATES


@dataclass
class ChatKeys:
    """The chat-format part of the metadata, with the reasons for each choice."""

    chat_template: str
    add_bos: bool
    bos_id: int | None
    eos_id: int
    eot_id: int
    pad_id: int | None
    bos_text: str | None
    eos_text: str
    notes: list[str] = field(default_factory=list)


def _single_id(vocab: "GGUFVocab", tokenizer: Any, text: str, what: str) -> int:
    i = vocab.id_of(text)
    ids = tokenizer.encode(text, add_special_tokens=False)
    if i is None or ids != [i]:
        raise ExportRefused(f"the format's {what} {text!r} is not a single token of this tokenizer "
                            f"(it encodes to {ids}); llama.cpp can only stop on / add a single token")
    return i


def choose_chat_keys(fmt: "ChatFormat", vocab: "GGUFVocab", tokenizer: Any, pad_fix: int | None = None) -> ChatKeys:
    """Decide the chat keys for ``fmt`` over ``vocab`` (see the module docstring)."""
    from tmplc.targets.llamacpp import to_llamacpp

    target = to_llamacpp(fmt, check_builtins=False)
    notes: list[str] = []
    eot_text = fmt.eot_token or tokenizer.eos_token
    if not eot_text:
        raise ExportRefused("the format declares no end-of-turn token and the tokenizer has no eos_token: "
                            "llama.cpp would not know where to stop (add eot_token to the spec)")
    eot = _single_id(vocab, tokenizer, eot_text, "end-of-turn token")
    bos_text = fmt.bos_token or tokenizer.bos_token
    bos = _single_id(vocab, tokenizer, bos_text, "BOS token") if bos_text else None
    if tokenizer.eos_token and tokenizer.eos_token != eot_text:
        notes.append(f"eos_token_id is the end-of-turn {eot_text!r}, not the tokenizer's eos_token "
                     f"{tokenizer.eos_token!r} (llama.cpp stops on EOS)")
    pad = tokenizer.pad_token_id
    if pad is not None and pad == eot:
        if pad_fix is not None and pad_fix != eot:
            notes.append(f"the tokenizer's pad token is the end-of-turn token; padding_token_id is "
                         f"{pad_fix} from the doctor's pad fix")
            pad = pad_fix
        else:
            pad = None
            for cand in _pad_candidates():
                hits = [i for i, t in enumerate(vocab.tokens) if t == cand or (cand.endswith("_") and t.startswith(cand))
                        ] if cand.endswith("_") else [i for i in [vocab.id_of(cand)] if i is not None]
                hits = [i for i in hits if i not in (eot, bos) and vocab.types[i] in (3, 5)]
                if hits:
                    pad = hits[0]
                    break
            notes.append("the tokenizer's pad token is the end-of-turn token; padding_token_id "
                         + (f"is {pad} ({vocab.tokens[pad]!r})" if pad is not None else "is not written"))
    if pad is None and tokenizer.pad_token_id is None:
        notes.append("the tokenizer has no pad token: padding_token_id is not written")
    return ChatKeys(target.chat_template, target.add_bos_token, bos, eot, eot, pad, bos_text, eot_text, notes)


def write_metadata(w: Any, name: str, arch: "Architecture", vocab: "GGUFVocab", keys: ChatKeys,
                   file_type: int) -> None:
    """Add every key/value to a gguf-py ``GGUFWriter`` (before its header is written)."""
    import gguf

    w.add_name(name)
    w.add_file_type(file_type)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    hp = arch.hparams
    w.add_context_length(hp["context_length"])
    w.add_embedding_length(hp["embedding_length"])
    w.add_block_count(hp["block_count"])
    w.add_feed_forward_length(hp["feed_forward_length"])
    w.add_head_count(hp["head_count"])
    w.add_head_count_kv(hp["head_count_kv"])
    w.add_layer_norm_rms_eps(hp["layer_norm_rms_eps"])
    w.add_rope_freq_base(hp["rope_freq_base"])
    w.add_rope_dimension_count(hp["rope_dimension_count"])
    w.add_vocab_size(hp["vocab_size"])
    if "key_length" in hp:
        w.add_key_length(hp["key_length"])
        w.add_value_length(hp["value_length"])
    if hp.get("rope_scaling_type") == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(hp["rope_scaling_factor"])
    w.add_tokenizer_model(vocab.model)
    if vocab.pre:
        w.add_tokenizer_pre(vocab.pre)
    w.add_token_list(vocab.tokens)
    if vocab.scores is not None:
        w.add_token_scores(vocab.scores)
    w.add_token_types(vocab.types)
    if vocab.merges:
        w.add_token_merges(vocab.merges)
    if keys.bos_id is not None:
        w.add_bos_token_id(keys.bos_id)
    w.add_eos_token_id(keys.eos_id)
    w.add_eot_token_id(keys.eot_id)
    if keys.pad_id is not None:
        w.add_pad_token_id(keys.pad_id)
    if vocab.unk_id is not None:
        w.add_unk_token_id(vocab.unk_id)
    if vocab.add_space_prefix is not None:
        w.add_add_space_prefix(vocab.add_space_prefix)
    w.add_add_bos_token(keys.add_bos)
    w.add_add_eos_token(False)
    w.add_chat_template(keys.chat_template)
