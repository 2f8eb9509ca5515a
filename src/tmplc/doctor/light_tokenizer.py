"""The part of a transformers fast tokenizer the checks use, built from ``tokenizer.json`` and
``tokenizer_config.json`` with the ``tokenizers`` library alone.

Why: ``AutoTokenizer.from_pretrained`` imports most of transformers (its config classes pull in
torch.distributed): ~2 s of a check that otherwise takes well under that.  The doctor's checks
only tokenize strings, look ids up and read the special tokens, which ``tokenizers`` does the
same way transformers' fast tokenizers do (transformers delegates to it).

Where transformers would behave differently, :func:`light_tokenizer` returns ``None`` and the
caller loads the transformers tokenizer: a ``tokenizer_class`` outside :data:`KNOWN_CLASSES`
(custom code, slow-only tokenizers), or ``add_bos_token`` / ``add_eos_token`` flags in
tokenizer_config.json that disagree with what tokenizer.json's post-processor adds (transformers'
Llama/Gemma tokenizers rebuild the post-processor from those flags).  The test suite checks that
every fixture tokenizer gives the same facts and ids as ``AutoTokenizer``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: tokenizer classes whose transformers fast tokenizer is tokenizer.json plus the config's special tokens
#: (checked equal on the fixtures; not Llama's: transformers 5 rebuilds its normalizer/pre-tokenizer
#: from the vocabulary and text with leading spaces tokenizes differently; not Gemma's: its class
#: declares ``<mask>`` a special token that tokenizer.json does not)
KNOWN_CLASSES = {None, "PreTrainedTokenizerFast", "TokenizersBackend", "Qwen2Tokenizer", "Qwen2TokenizerFast"}


class LightTokenizer:
    """Duck-typed subset of ``PreTrainedTokenizerFast``: special tokens, ``__call__``, id/token
    conversion, ``decode``, ``added_tokens_decoder``, ``get_vocab``, ``len``."""

    is_light = True

    def __init__(self, rust: Any, specials: dict[str, str | None], config_added: dict | None = None) -> None:
        self._t = rust
        self.bos_token = specials.get("bos_token")
        self.eos_token = specials.get("eos_token")
        self.pad_token = specials.get("pad_token")
        self.unk_token = specials.get("unk_token")
        self.added_tokens_decoder = dict(rust.get_added_tokens_decoder())
        # transformers takes the special flags from tokenizer_config.json's added_tokens_decoder
        for k, v in (config_added or {}).items():
            try:
                i = int(k)
            except ValueError:
                continue
            a = self.added_tokens_decoder.get(i)
            if a is not None and isinstance(v, dict) and v.get("content") == a.content and "special" in v:
                a.special = bool(v["special"])

    def __len__(self) -> int:
        return self._t.get_vocab_size(with_added_tokens=True)

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": self._t.encode(text, add_special_tokens=add_special_tokens).ids}

    @property
    def unk_token_id(self) -> int | None:
        return self._t.token_to_id(self.unk_token) if self.unk_token is not None else None

    def convert_tokens_to_ids(self, token: str) -> int | None:
        i = self._t.token_to_id(token)
        return i if i is not None else self.unk_token_id

    def convert_ids_to_tokens(self, i: int) -> str | None:
        return self._t.id_to_token(int(i))

    def decode(self, ids: list[int]) -> str:
        return self._t.decode(list(ids), skip_special_tokens=False)

    def get_vocab(self) -> dict[str, int]:
        return self._t.get_vocab(with_added_tokens=True)


def light_tokenizer(folder: Path, tokenizer_config: dict) -> LightTokenizer | None:
    """A :class:`LightTokenizer` for ``folder``, or ``None`` when transformers would differ (see the
    module docstring) or the files cannot be read that way."""
    import json

    from tmplc.doctor.model import token_text

    cfg = tokenizer_config or {}
    if cfg.get("tokenizer_class") not in KNOWN_CLASSES or cfg.get("auto_map"):
        return None
    tj = folder / "tokenizer.json"
    if not tj.is_file():
        return None
    try:
        from tokenizers import Tokenizer

        rust = Tokenizer.from_file(str(tj))
    except Exception:  # noqa: BLE001 - let transformers load (or report) it
        return None
    specials: dict[str, str | None] = {}
    stm = folder / "special_tokens_map.json"
    extra: dict = {}
    if stm.is_file():
        try:
            extra = json.loads(stm.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    for k in ("bos_token", "eos_token", "pad_token", "unk_token"):
        v = cfg.get(k, extra.get(k)) if isinstance(extra, dict) else cfg.get(k)
        specials[k] = token_text(v)
    tok = LightTokenizer(rust, specials, cfg.get("added_tokens_decoder"))
    # transformers' Llama/Gemma tokenizers rebuild the post-processor from these flags: when they
    # disagree with tokenizer.json, only transformers gives the real behaviour
    probe = tok("a", add_special_tokens=True)["input_ids"]
    for flag, token, at in (("add_bos_token", specials["bos_token"], 0), ("add_eos_token", specials["eos_token"], -1)):
        if flag in cfg and cfg[flag] is not None:
            tid = rust.token_to_id(token) if token else None
            adds = bool(probe) and tid is not None and probe[at] == tid
            if bool(cfg[flag]) != adds and not (tid is None and not cfg[flag]):
                return None
    return tok
