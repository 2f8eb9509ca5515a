"""An exact faster tokenizer path: tiktoken built from a byte-level BPE ``tokenizer.json``.

tiktoken runs the same algorithm as HF ``tokenizers`` for byte-level BPE vocabularies whose
merge priorities follow token ids (Llama 3, GPT-style): split with the pre-tokenizer regex, then
merge the adjacent pair whose result has the lowest rank (HF: the pair with the lowest merge
index; converted vocabularies such as Llama 3's, built from tiktoken ranks, agree).  Agreement
is not derivable from the merges list alone (it holds redundant merges), so it is verified.  It is used only when:

1. the tokenizer is structurally eligible: a BPE model with no normalizer, a pre-tokenizer that
   is ``Split(regex, Isolated)`` + ``ByteLevel(use_regex=False)`` (or ``ByteLevel(use_regex=True)``,
   the GPT-2 regex), no byte fallback, no dropout, no subword prefix/suffix, no added token that
   strips whitespace, and no added token that is a prefix of another;
2. a verification run gives identical ids to the HF tokenizer on every vocabulary entry's text
   and on a fixed stress text (unicode, whitespace runs, digits, special tokens).

Otherwise ``build_tiktoken`` returns None and the HF tokenizer is used.  Every row is still
checked (token byte lengths must sum to the row's byte length) by the formatter.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from tmplc.formatter.tokenizer_info import TokenizerInfo

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

STRESS = (
    "Hello, world!  How's it going?\n\n\n  \t\tTabs\tand   spaces   \r\n"
    "12345678901 3.14159 -42 1e10 日本語のテキスト 🙂🙃 é ü ñ ß Ω ∑ \u200b\u00a0x\n"
    "{{ jinja }} {% tag %} <|not_special|> </s> <s> [INST] ``` code ```\n"
    "def f(x):\n    return x**2  # comment\n\n\nTHE END. I'M HERE, YOU'RE THERE, WE'LL SEE'D."
)


def _eligible(info: "TokenizerInfo") -> str | None:
    """The pre-tokenizer regex when eligible, else None."""
    spec = info.head
    model = spec["model"]
    if model.get("type") != "BPE" or model.get("byte_fallback") or model.get("dropout"):
        return None
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        return None
    if spec.get("normalizer") is not None or info.lrstrip:
        return None
    pre = spec.get("pre_tokenizer") or {}
    items = pre.get("pretokenizers") if pre.get("type") == "Sequence" else [pre]
    pattern = None
    if len(items) == 1 and items[0].get("type") == "ByteLevel":
        if items[0].get("add_prefix_space") or not items[0].get("use_regex", True):
            return None
        pattern = GPT2_PATTERN
    elif (len(items) == 2 and items[0].get("type") == "Split" and items[1].get("type") == "ByteLevel"
          and not items[1].get("use_regex", True) and not items[1].get("add_prefix_space")
          and items[0].get("behavior") == "Isolated" and not items[0].get("invert")
          and "Regex" in (items[0].get("pattern") or {})):
        pattern = items[0]["pattern"]["Regex"]
    else:
        return None
    added = list(info.added)
    for a in added:
        for b in added:
            if a != b and b.startswith(a):
                return None
    return pattern


class TiktokenBackend:
    """tiktoken's BPE core plus the tokenizer's added-token split (leftmost-longest, as HF does)."""

    def __init__(self, enc: Any, added: dict[str, int]) -> None:
        import re

        self.enc = enc
        self.core = enc._core_bpe
        self.added = added
        names = sorted(added, key=len, reverse=True)
        self.split_re = re.compile("(" + "|".join(re.escape(t) for t in names) + ")") if names else None

    def encode(self, text: str) -> list[int]:
        if self.split_re is None:
            return self.core.encode_ordinary(text)
        parts = self.split_re.split(text)
        out: list[int] = []
        enc = self.core.encode_ordinary
        added = self.added
        for k, p in enumerate(parts):
            if k & 1:
                out.append(added[p])
            elif p:
                out.extend(enc(p))
        return out

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]


def _cache_key(info: "TokenizerInfo") -> str:
    import hashlib

    import tiktoken
    import tokenizers

    h = hashlib.sha256(info.json_sha256.encode())
    h.update(f"|tiktoken={tiktoken.__version__}|tokenizers={tokenizers.__version__}|v1".encode())
    return h.hexdigest()


def _cache_dir():
    from pathlib import Path

    base = os.environ.get("TMPLC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "tmplc")
    return Path(base) / "tiktoken-verified"


def _ranks_file(key: str):
    return _cache_dir().parent / "tiktoken-ranks" / f"{key}.npz"


def _load_ranks(key: str, n: int) -> dict[bytes, int] | None:
    """The byte-level vocabulary as tiktoken ranks, from the cache (None when absent or unusable):
    rebuilding it from the JSON vocabulary takes about 0.3 s for 128k tokens."""
    f = _ranks_file(key)
    if not f.is_file():
        return None
    try:
        import numpy as np

        with np.load(f, allow_pickle=False) as z:
            blob, ends, ids = z["blob"].tobytes(), z["ends"].tolist(), z["ids"].tolist()
        starts = [0] + ends[:-1]
        ranks = dict(zip([blob[a:b] for a, b in zip(starts, ends)], ids))
        return ranks if len(ranks) == n == len(ids) else None
    except Exception:  # an unreadable entry: rebuild
        return None


def _save_ranks(key: str, ranks: dict[bytes, int]) -> None:
    import numpy as np

    try:
        f = _ranks_file(key)
        f.parent.mkdir(parents=True, exist_ok=True)
        toks = list(ranks)
        tmp = f.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, blob=np.frombuffer(b"".join(toks), dtype=np.uint8),
                 ends=np.cumsum([len(t) for t in toks], dtype=np.int64),
                 ids=np.asarray([ranks[t] for t in toks], dtype=np.int64))
        os.replace(tmp, f)
    except Exception:  # pragma: no cover - a read-only cache is not an error
        pass


def build_tiktoken(info: "TokenizerInfo") -> Any:
    """A TiktokenBackend giving the HF tokenizer's ids exactly, or None (see module docstring).

    ``TMPLC_NO_TIKTOKEN=1`` disables it.  A passed verification is remembered on disk (keyed by
    the SHA-256 of the tokenizer JSON and the tiktoken/tokenizers versions) under
    ``$TMPLC_CACHE_DIR`` (default ``~/.cache/tmplc``), with the ranks (``tiktoken-ranks/``)."""
    if os.environ.get("TMPLC_NO_TIKTOKEN"):
        return None
    try:
        import tiktoken
    except ImportError:
        return None
    pattern = _eligible(info)
    if pattern is None:
        return None
    from tmplc.formatter.tokenizer_info import _byte_decoder

    bd = _byte_decoder()
    try:
        key = _cache_key(info)
    except Exception:  # pragma: no cover
        key = None
    ranks = _load_ranks(key, sum(b - a for a, b in info.model_vocab)) if key else None
    if ranks is None:
        vocab: dict[str, int] = info.spec["model"]["vocab"]
        ranks = {}
        try:
            for tok, i in vocab.items():
                ranks[bytes(bd[c] for c in tok)] = i
        except KeyError:
            return None
        if len(ranks) != len(vocab):
            return None
        if key:
            _save_ranks(key, ranks)
    try:
        enc = tiktoken.Encoding(f"tmplc-{id(info)}", pat_str=pattern, mergeable_ranks=ranks, special_tokens={})
    except Exception:
        return None
    backend = TiktokenBackend(enc, dict(info.added))
    try:
        marker = _cache_dir() / key if key else None
        if marker is not None and marker.is_file():
            return backend
    except Exception:  # pragma: no cover - unreadable cache: verify
        marker = None
    # verification: every vocabulary entry's text, plus stress texts with the added tokens
    texts = [bytes(bd[c] for c in tok).decode("utf-8", "replace") for tok in info.spec["model"]["vocab"]]
    texts.append(STRESS)
    texts.append(STRESS + "".join(list(info.added)[:64]) + STRESS)
    texts.append("".join(f"{t} x{t}\n" for t in info.added))
    hf = [e.ids for e in info.rust.encode_batch_fast(texts, add_special_tokens=False)]
    if hf != backend.encode_batch(texts):
        return None
    if marker is not None:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("verified\n")
        except OSError:  # pragma: no cover
            pass
    return backend
