"""HF tokenizer -> GGUF vocabulary (``tokenizer.ggml.*``), as llama.cpp's converter builds it.

* BPE with a byte-level pre-tokenizer -> ``gpt2``: tokens in their byte-level form, merges as
  ``"a b"`` (a space inside a part written as ``Ġ``), ``pre`` from the check-text hash
  (:mod:`tmplc.export.pretokenizer`).  Added tokens that are special, or look special
  (``<|...|>``, ``<｜...｜>``, ``<pad>``, ...), are CONTROL; other added tokens USER_DEFINED
  (pre-normalised by an encode/decode round trip, as the converter does).
* BPE with byte fallback and a SentencePiece-style decoder (Llama-2/Mistral ``tokenizer.json``)
  -> ``llama``: pieces, scores and types through gguf-py's own ``LlamaHfVocab``.
* Anything else (Unigram, WordPiece) is refused.

Ids the tokenizer does not use up to the model's embedding rows become ``[PAD<i>]`` UNUSED, so
the vocabulary has exactly ``n_vocab`` entries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmplc.export.errors import ExportInputError, ExportRefused

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


@dataclass
class GGUFVocab:
    """What goes into the ``tokenizer.ggml.*`` keys (ids and flags come from :mod:`metadata`)."""

    model: str  # "gpt2" | "llama"
    pre: str | None
    tokens: list[str]
    types: list[int]
    scores: list[float] | None = None
    merges: list[str] = field(default_factory=list)
    unk_id: int | None = None
    add_space_prefix: bool | None = None
    notes: list[str] = field(default_factory=list)

    def id_of(self, text: str) -> int | None:
        """The id of a token given by its text (first match), or None."""
        if not hasattr(self, "_index"):
            self._index: dict[str, int] = {}
            for i, t in enumerate(self.tokens):
                self._index.setdefault(t, i)
        return self._index.get(text)


def looks_special(text: str) -> bool:
    """The converter's ``does_token_look_special``."""
    return (text in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
            or (text.startswith("<|") and text.endswith("|>"))
            or (text.startswith("<｜") and text.endswith("｜>"))
            or (text.startswith("<unused") and text.endswith(">")))


def _tokenizer_json(folder: Path) -> dict:
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise ExportRefused(f"{folder}: no tokenizer.json (a fast tokenizer is needed; save the tokenizer "
                            "with transformers to get one)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportInputError(f"{path}: cannot read: {exc}") from exc


def kind_of(tj: dict) -> str:
    """``gpt2`` or ``llama`` from tokenizer.json's model and decoder, or :class:`ExportRefused`."""
    model = tj.get("model") or {}
    if model.get("type") == "BPE" and model.get("byte_fallback") and (tj.get("decoder") or {}).get("type") == "Sequence":
        return "llama"
    if model.get("type") == "BPE":
        return "gpt2"
    raise ExportRefused(f"tokenizer model {model.get('type')!r} is not supported by tmplc export "
                        "(supported: byte-level BPE and SentencePiece-style BPE)")


def _merges(tj: dict) -> list[str]:
    out = []
    for m in tj["model"].get("merges", []):
        if isinstance(m, str):
            out.append(m)
        else:
            a, b = m
            out.append(" ".join(p.replace(" ", chr(ord(" ") + 256)) for p in (a, b)))
    return out


def _pad(tokens: list[str], types: list[int], n_vocab: int, scores: list[float] | None, where: str) -> None:
    if len(tokens) > n_vocab:
        raise ExportRefused(f"{where}: the tokenizer has {len(tokens)} tokens but the model's embedding has "
                            f"{n_vocab} rows (resize the embeddings before exporting)")
    for i in range(len(tokens), n_vocab):
        tokens.append(f"[PAD{i}]")
        types.append(UNUSED)
        if scores is not None:
            scores.append(-1000.0)


def bpe_vocab(tokenizer: Any, tj: dict, n_vocab: int, where: str) -> GGUFVocab:
    """The ``gpt2`` vocabulary (see the module docstring)."""
    from tmplc.export.pretokenizer import pre_tokenizer_name

    pre = pre_tokenizer_name(tokenizer, where)
    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= n_vocab:
        raise ExportRefused(f"{where}: token id {max(vocab.values())} is outside the model's {n_vocab} "
                            "embedding rows (resize the embeddings before exporting)")
    reverse = {i: t for t, i in vocab.items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    notes: list[str] = []
    for i in range(n_vocab):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
            continue
        tok = reverse[i]
        if tok in added:
            if not decoder[i].normalized:
                before = tok
                tok = tokenizer.decode(tokenizer.encode(tok, add_special_tokens=False))
                if tok != before:
                    notes.append(f"added token {before!r} is written as {tok!r} (its encode/decode form)")
            if decoder[i].special or looks_special(tok):
                types.append(CONTROL)
            else:
                tok = tok.replace("\u2581", " ")
                types.append(USER_DEFINED)
        else:
            types.append(NORMAL)
        tokens.append(tok)
    return GGUFVocab("gpt2", pre, tokens, types, None, _merges(tj), notes=notes)


def _parts(node: Any, key: str) -> list[dict]:
    """A tokenizer.json normalizer or pre-tokenizer, its ``Sequence`` flattened."""
    if not isinstance(node, dict):
        return []
    if node.get("type") == "Sequence":
        return [p for child in node.get(key) or [] for p in _parts(child, key)]
    return [node]


def space_prefix(tj: dict) -> bool | None:
    """Whether a SentencePiece-style tokenizer.json puts '▁' before the text of each piece between
    special tokens — llama.cpp's ``add_space_prefix`` (it adds the space at the start and after
    every special token) — read off the tokenizer itself: a ``Prepend('▁')`` normalizer (Llama-2,
    Mistral, legacy) or a ``Metaspace`` pre-tokenizer that prepends always: true; one that never
    does: false; None where it says neither (``prepend_scheme: first`` has no llama.cpp equivalent).

    Why not transformers' ``add_prefix_space``: transformers 5 reports false for a legacy
    tokenizer.json whose normalizer prepends '▁', and the GGUF then tokenizes every render
    differently (found exporting a model folder holding the Llama-2 fixture's files as shipped)."""
    if any(n.get("type") == "Prepend" and n.get("prepend") == "\u2581" for n in _parts(tj.get("normalizer"), "normalizers")):
        return True
    for p in _parts(tj.get("pre_tokenizer"), "pretokenizers"):
        if p.get("type") == "Metaspace":
            scheme = p.get("prepend_scheme") or ("always" if p.get("add_prefix_space", True) else "never")
            return {"always": True, "never": False}.get(scheme)
    return None


def spm_vocab(folder: Path, n_vocab: int, where: str) -> GGUFVocab:
    """The ``llama`` (SentencePiece) vocabulary from tokenizer.json, through gguf-py's LlamaHfVocab."""
    import gguf

    try:
        hv = gguf.LlamaHfVocab(folder)
    except (TypeError, FileNotFoundError) as exc:
        raise ExportRefused(f"{where}: not a SentencePiece-style tokenizer.json: {exc}") from exc
    tokens, scores, types = [], [], []
    for text, score, typ in hv.all_tokens():
        tokens.append(text.decode("utf-8") if isinstance(text, bytes) else text)
        scores.append(float(score))
        types.append(int(typ))
    # gguf-py writes -1000 for every score, and llama.cpp's SentencePiece tokenizer merges by score,
    # so its choices would be arbitrary.  tokenizer.json's merges are SentencePiece's scores in rank
    # order (transformers' LlamaConverter sorts them by the merged piece's score): the piece a merge
    # of rank r creates gets score -r (its first merge when several make it), which makes llama.cpp
    # merge in the order the HF tokenizer does.  Pieces no merge creates keep gguf-py's score.
    tj = _tokenizer_json(folder)
    rank: dict[str, int] = {}
    for r, m in enumerate(tj["model"].get("merges", [])):
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        rank.setdefault(a + b, r)
    for i, t in enumerate(tokens):
        if types[i] == NORMAL and t in rank:
            scores[i] = -float(rank[t])
    _pad(tokens, types, n_vocab, scores, where)
    tok = hv.tokenizer
    unk = tok.unk_token_id
    add_prefix = space_prefix(tj)
    if add_prefix is None:
        add_prefix = getattr(tok, "add_prefix_space", None)
    return GGUFVocab("llama", None, tokens, types, scores, [], unk_id=unk,
                     add_space_prefix=add_prefix if isinstance(add_prefix, bool) else None)


def build_vocab(folder: Path, tokenizer: Any, n_vocab: int) -> GGUFVocab:
    """The GGUF vocabulary of the tokenizer in ``folder`` for a model with ``n_vocab`` rows."""
    tj = _tokenizer_json(folder)
    where = str(folder / "tokenizer.json")
    kind = kind_of(tj)
    if kind == "llama":
        return spm_vocab(folder, n_vocab, where)
    return bpe_vocab(tokenizer, tj, n_vocab, where)
