"""What the formatter needs to know about a tokenizer, computed once per tokenizer.

* BOS: its id, and whether the tokenizer *adds* one itself (tested by tokenizing, not by
  trusting ``add_bos_token``).
* Special tokens (``special=True`` added tokens): their strings, for finding special-token text
  inside message content.
* A *surface length table*: for each token id, how many UTF-8 bytes of the original text it
  covers.  For byte-level BPE (Llama 3, Qwen, GPT-style) that is the length of the token's bytes;
  for SentencePiece-style BPE with a ``" " -> "▁"`` normalizer and byte fallback (Gemma) it is
  the piece with ``▁`` read as a space, and 1 for a ``<0xNN>`` byte token.  With it, token
  offsets are a cumulative sum, with no offset mapping requested from the tokenizer.  The table
  is used for a row only when the lengths sum exactly to the row's byte length (and, for an NFC
  normalizer, when the text is already NFC); otherwise that row uses the tokenizer's own
  character offsets.
* Optionally a tiktoken encoding built from the same vocabulary (see ``fast.py``).
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
import warnings
from functools import lru_cache
from typing import Any, Callable

from tmplc.errors import TmplcError


class FormatterWarning(UserWarning):
    """A training-data hazard the formatter found (pad == EOS, multi-token end-of-turn...)."""


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _components(node: Any, key: str = "pretokenizers") -> list[dict]:
    if not node:
        return []
    if node.get("type") == "Sequence":
        out = []
        for sub in node.get(key) or node.get("pretokenizers") or node.get("normalizers") or \
                node.get("decoders") or node.get("processors") or []:
            out.extend(_components(sub, key))
        return out
    return [node]


def spec_head(spec: dict) -> dict:
    """A tokenizer JSON without its model's ``vocab`` and ``merges``: what the formatter reads of it
    on every run (the vocabulary is read only to build what is then cached)."""
    head = {k: v for k, v in spec.items() if k != "model"}
    head["model"] = {k: v for k, v in (spec.get("model") or {}).items() if k not in ("vocab", "merges")}
    return head


def _parse_json(text: str) -> Any:
    """``json.loads`` with the cyclic collector paused: a 128k vocabulary's merges are ~10^6 small
    lists, and collections while they are made would more than double the time."""
    import gc

    was = gc.isenabled()
    gc.disable()
    try:
        return json.loads(text)
    finally:
        if was:
            gc.enable()


def _id_ranges(ids) -> list[tuple[int, int]]:
    """Sorted ids as half-open ranges ``[(start, end), ...]`` (a vocabulary is mostly one range)."""
    out: list[list[int]] = []
    for i in sorted(ids):
        if out and out[-1][1] == i:
            out[-1][1] = i + 1
        elif not out or out[-1][1] < i:
            out.append([i, i + 1])
    return [(a, b) for a, b in out]


def _model_vocab_ids(model: dict):
    vocab = model.get("vocab") or {}
    return vocab.values() if isinstance(vocab, dict) else range(len(vocab))  # Unigram: a list of pieces


class TokenizerInfo:
    """Facts about one HF fast tokenizer (see the module docstring)."""

    def __init__(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "is_fast", False) or getattr(tokenizer, "backend_tokenizer", None) is None:
            raise TmplcError(
                f"{type(tokenizer).__name__} is a slow (Python) tokenizer; tmplc needs an HF fast tokenizer "
                "(a tokenizer.json): load it with AutoTokenizer.from_pretrained(..., use_fast=True), or "
                "convert it with PreTrainedTokenizerFast(tokenizer_object=...)")
        self._setup(tokenizer.backend_tokenizer, tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token)

    @classmethod
    def from_parts(cls, tokenizer_json: str | Callable[[], str], bos_token, eos_token, pad_token,
                   facts: dict | None = None, surface: tuple | None = None,
                   head: dict | None = None) -> "TokenizerInfo":
        """Rebuild from ``parts()`` (what a pickled BatchTokenizer carries instead of the HF object).

        ``facts`` (from ``facts()`` of the same tokenizer, e.g. a cache) defers building the Rust
        tokenizer (about 0.5 s for a 128k vocabulary) until something needs it; ``surface``: the
        ``(surface, nfc)`` pair, likewise; ``head`` (``spec_head``) defers parsing the JSON (about
        0.1 s), and then ``tokenizer_json`` may be a function that reads it when first needed."""
        self = cls.__new__(cls)
        if facts is None:
            from tokenizers import Tokenizer

            rust = Tokenizer.from_str(tokenizer_json if isinstance(tokenizer_json, str) else tokenizer_json())
        else:
            rust = None
        self._setup(rust, bos_token, eos_token, pad_token, tokenizer_json, own=True, facts=facts, surface=surface,
                    head=head)
        return self

    def parts(self) -> tuple:
        return (self.json, self.bos_token, self.eos_token, self.pad_token)

    def facts(self) -> dict:
        """What ``_setup`` asks the Rust tokenizer and the full JSON (see ``from_parts``)."""
        return {"bos_id": self.bos_id, "eos_id": self.eos_id, "pad_id": self.pad_id, "adds_bos": self.adds_bos,
                "vocab_size": self.vocab_size, "model_vocab": self.model_vocab, "json_sha256": self.json_sha256}

    @property
    def json(self) -> str:
        """The tokenizer's JSON text (read when first needed, where the info came from a cache)."""
        if not isinstance(self._json, str):
            with self._json_lock:
                if not isinstance(self._json, str):
                    self._json = self._json()
        return self._json

    @property
    def spec(self) -> dict:
        """The parsed tokenizer JSON (parsed when first needed; ``head`` has all but the model's
        vocabulary and merges)."""
        if self._spec is None:
            with self._json_lock:
                if self._spec is None:
                    self._spec = _parse_json(self.json)
        return self._spec

    @property
    def json_sha256(self) -> str:
        """The SHA-256 of ``json`` (hex): the key of what is cached about this vocabulary."""
        if self._json_sha256 is None:
            import hashlib

            self._json_sha256 = hashlib.sha256(self.json.encode("utf-8")).hexdigest()
        return self._json_sha256

    def in_model_vocab(self, token_id: int) -> bool:
        """Whether ``token_id`` is an entry of the model's own vocabulary (not only an added token)."""
        return any(a <= token_id < b for a, b in self.model_vocab)

    @property
    def rust(self):
        """The HF ``tokenizers.Tokenizer`` (special-token text recognised), built on first use."""
        if self._rust is None:
            with self._rust_lock:  # not self._lock: tiktoken() holds it and may need this
                if self._rust is None:
                    from tokenizers import Tokenizer

                    t = Tokenizer.from_str(self.json)
                    t.encode_special_tokens = False
                    self._rust = t
        return self._rust

    def _setup(self, rust, bos_token, eos_token, pad_token, tokenizer_json: Any = None, own: bool = False,
               facts: dict | None = None, surface: tuple | None = None, head: dict | None = None) -> None:
        self._json = tokenizer_json if tokenizer_json is not None else rust.to_str()
        self._spec: dict | None = None
        self._json_lock = threading.RLock()  # spec reads json under it
        self._rust_lock = threading.Lock()
        if own:
            self._rust = rust
        else:
            # an own copy: transformers leaves its shared backend's encode_special_tokens set after a
            # tokenizer(..., split_special_tokens=True) call, which would split template special tokens
            from tokenizers import Tokenizer

            self._rust = Tokenizer.from_str(self.json)
        if self._rust is not None:
            self._rust.encode_special_tokens = False
        self.head = head if head is not None else spec_head(self.spec)
        self._lock = threading.Lock()
        self._rust_split = None
        self._tiktoken: Any = False  # False: not tried yet; None: not available

        self.bos_token = bos_token
        self.eos_token = eos_token
        self.pad_token = pad_token
        if facts is not None:
            self.bos_id, self.eos_id, self.pad_id = facts["bos_id"], facts["eos_id"], facts["pad_id"]
            self.adds_bos = bool(facts["adds_bos"])
            self.model_vocab = [tuple(r) for r in facts["model_vocab"]]
            self._json_sha256 = facts["json_sha256"]
        else:
            self.model_vocab = _id_ranges(_model_vocab_ids(self.spec.get("model") or {}))
            self._json_sha256 = None
            self.bos_id = self._id(self.bos_token)
            self.eos_id = self._id(self.eos_token)
            self.pad_id = self._id(self.pad_token)
            with_sp = self.rust.encode("a", add_special_tokens=True).ids
            self.adds_bos = self.bos_id is not None and bool(with_sp) and with_sp[0] == self.bos_id

        added = self.head.get("added_tokens") or []
        self.added: dict[str, int] = {a["content"]: a["id"] for a in added}
        self.special: dict[str, int] = {a["content"]: a["id"] for a in added if a.get("special")}
        self.special_len: dict[int, int] = {i: len(s) for s, i in self.special.items()}
        self.nonspecial_added = {a["content"] for a in added if not a.get("special")}
        self.lrstrip = any(a.get("lstrip") or a.get("rstrip") for a in added)
        # longest first, so that the regex prefers the longest token at a position (leftmost-longest,
        # as the tokenizer's added-token matcher does)
        names = sorted(self.special, key=len, reverse=True)
        self.special_re = re.compile("|".join(re.escape(s) for s in names)) if names else None
        self.vocab_size = facts["vocab_size"] if facts is not None else \
            max([self.rust.get_vocab_size(with_added_tokens=True)] + [i + 1 for i in self.added.values()])
        self.surface, self.nfc = surface if surface is not None else self._surface_table()

    # ------------------------------------------------------------------------------------------
    def _id(self, token: str | None) -> int | None:
        if token is None:
            return None
        i = self.rust.token_to_id(token)
        return i

    def token_ids(self, text: str) -> list[int]:
        return self.rust.encode(text, add_special_tokens=False).ids

    def _surface_table(self):
        """(numpy int array of byte lengths per id, needs_nfc_check) or (None, False)."""
        import numpy as np

        model = self.head["model"]
        if model.get("type") != "BPE" or self.lrstrip:
            return None, False
        if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
            return None, False
        norms = _components(self.head.get("normalizer"), "normalizers")
        pres = _components(self.head.get("pre_tokenizer"))
        decs = _components(self.head.get("decoder"), "decoders")
        nfc = False
        kind = None
        if any(p.get("type") == "ByteLevel" for p in pres) and not model.get("byte_fallback"):
            if any(p.get("type") == "ByteLevel" and p.get("add_prefix_space") for p in pres):
                return None, False
            ok_norm = all(n.get("type") == "NFC" for n in norms)
            if not ok_norm:
                return None, False
            nfc = bool(norms)
            kind = "bytelevel"
        elif (len(norms) == 1 and norms[0].get("type") == "Replace"
              and norms[0].get("pattern") == {"String": " "} and norms[0].get("content") == "▁"
              and not any(p.get("type") in ("Metaspace", "ByteLevel") for p in pres)
              and any(d.get("type") == "ByteFallback" for d in decs)):
            kind = "spm"
        else:
            return None, False
        vocab: dict[str, int] = self.spec["model"].get("vocab") or {}
        table = np.full(self.vocab_size, -1, dtype=np.int64)
        if kind == "bytelevel":
            bd = _byte_decoder()
            for tok, i in vocab.items():
                try:
                    table[i] = len(bytes(bd[c] for c in tok))
                except KeyError:
                    table[i] = -(10 ** 9)
        else:
            byte_re = re.compile(r"<0x[0-9A-Fa-f]{2}>")
            for tok, i in vocab.items():
                table[i] = 1 if byte_re.fullmatch(tok) else len(tok.replace("▁", " ").encode("utf-8"))
        for tok, i in self.added.items():
            table[i] = len(tok.encode("utf-8"))
        unk = model.get("unk_token")
        if unk is not None and unk in vocab:
            table[vocab[unk]] = -(10 ** 9)  # any <unk> in a row breaks the sum check -> offsets path
        return table, nfc

    def row_table_ok(self, text: str) -> bool:
        if self.surface is None:
            return False
        if self.nfc and not text.isascii() and not unicodedata.is_normalized("NFC", text):
            return False
        return True

    # ------------------------------------------------------------------------------------------
    @property
    def rust_split(self):
        """A copy of the Rust tokenizer that encodes special-token text as plain text."""
        if self._rust_split is None:
            from tokenizers import Tokenizer

            t = Tokenizer.from_str(self.json)
            t.encode_special_tokens = True
            self._rust_split = t
        return self._rust_split

    def tiktoken(self):
        """A verified tiktoken Encoding for this vocabulary, or None (see fast.py)."""
        if self._tiktoken is False:
            with self._lock:
                if self._tiktoken is False:
                    from tmplc.formatter.fast import build_tiktoken

                    self._tiktoken = build_tiktoken(self)
        return self._tiktoken

    # ------------------------------------------------------------------------------------------
    def hazards(self, fmt) -> list[str]:
        """Human-readable warnings about this tokenizer with this format (empty when fine)."""
        out = []
        eot = end_of_turn(fmt, self)
        if eot and eot in self.special and self.head.get("normalizer") is None:
            eot_ids = [self.special[eot]]  # a special token's own text is that token
        else:
            eot_ids = self.token_ids(eot) if eot else []
        if eot and (len(eot_ids) != 1 or eot not in self.added and self.rust.token_to_id(eot) is None):
            out.append(
                f"the end-of-turn marker {eot!r} of format {fmt.name!r} is not a single token in this "
                f"tokenizer's vocabulary (it tokenizes to {len(eot_ids)} ids {eot_ids[:8]}): generation "
                "cannot stop on one token id; this is where 'the model never stops' starts. Use a "
                "tokenizer that has it as a special token, or add it (tokenizer.add_special_tokens) and "
                "resize the embeddings")
        if fmt.structure.uses("BOS") and not self.bos_token:
            out.append(f"format {fmt.name!r} renders {{BOS}} but this tokenizer has no BOS token: "
                       "it renders nothing there (as HF's Jinja does)")
        if self.pad_id is not None:
            stops = {}
            if self.eos_id is not None:
                stops[self.eos_id] = self.eos_token
            if eot and len(eot_ids) == 1:
                stops[eot_ids[0]] = eot
            if self.pad_id in stops:
                out.append(
                    f"pad token {self.pad_token!r} (id {self.pad_id}) is the same token as the "
                    f"end-of-turn/EOS {stops[self.pad_id]!r}: tmplc's labels keep it trained, but a collator "
                    "that masks labels by pad id (e.g. transformers' DataCollatorForLanguageModeling) erases "
                    "every end-of-turn label and the model never learns to stop. Use "
                    "tmplc.formatter.DataCollatorForTmplc (pads labels with -100 by position), or set a "
                    "distinct pad token")
        return out


def end_of_turn(fmt, info: TokenizerInfo | None = None) -> str | None:
    """The string that ends an assistant turn: the format's eot/eos token as it appears in the
    assistant suffix, else the first special token of the suffix, else the stripped suffix."""
    from tmplc.ir import SpecialToken, Text

    suffix = fmt.structure.assistant.suffix
    parts = []
    for p in suffix:
        if isinstance(p, SpecialToken):
            if p.name == "EOS":
                return (info.eos_token if info is not None and info.eos_token else None) or fmt.meta.eos_token
            if p.name == "BOS":
                parts.append(info.bos_token if info and info.bos_token else fmt.meta.bos_token or "")
        elif isinstance(p, Text):
            parts.append(p.value)
    text = "".join(parts)
    for cand in (fmt.meta.eot_token, fmt.meta.eos_token):
        if cand and cand in text:
            return cand
    if info is not None and info.special_re is not None:
        m = info.special_re.search(text)
        if m:
            return m.group(0)
    return text.strip() or None


def with_end_of_turn(fmt, tokenizer: Any):
    """``fmt`` with ``eot_token`` declared where it declares neither that nor ``stop``: the
    :func:`end_of_turn` string of its assistant suffix, when that is one token of ``tokenizer``
    other than its EOS (an imported chat template knows no token names: Llama 3's ends turns with
    ``<|eot_id|>``, where the tokenizer's eos_token may be ``<|end_of_text|>``, and a GGUF or
    Modelfile that stops on the EOS alone never stops).  Otherwise ``fmt`` unchanged."""
    if fmt.meta.eot_token or fmt.meta.stop:
        return fmt
    eot = end_of_turn(fmt, tokenizer_info(tokenizer))
    if not eot or eot in (fmt.meta.eos_token, getattr(tokenizer, "eos_token", None)):
        return fmt
    if len(tokenizer.encode(eot, add_special_tokens=False)) != 1:
        return fmt
    return fmt.with_meta(eot_token=eot)


_CACHE: dict[int, tuple[Any, TokenizerInfo]] = {}
_CACHE_LOCK = threading.Lock()


def tokenizer_info(tokenizer: Any) -> TokenizerInfo:
    """The cached TokenizerInfo of ``tokenizer`` (one per tokenizer object)."""
    if isinstance(tokenizer, TokenizerInfo):
        return tokenizer
    key = id(tokenizer)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is tokenizer:
        return hit[1]
    info = TokenizerInfo(tokenizer)
    with _CACHE_LOCK:
        _CACHE[key] = (tokenizer, info)
        if len(_CACHE) > 16:
            _CACHE.pop(next(iter(_CACHE)))
    return info


_WARNED: set = set()


def warn_hazards(fmt, info: TokenizerInfo) -> list[str]:
    msgs = info.hazards(fmt)
    for m in msgs:
        key = (id(info), fmt.name, m)
        if key not in _WARNED:
            _WARNED.add(key)
            warnings.warn(m, FormatterWarning, stacklevel=3)
    return msgs
