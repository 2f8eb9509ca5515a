"""Token facts the checks share: BOS/EOS/pad/unk (text and id), whether the tokenizer *adds* BOS
(found by tokenizing, as :class:`tmplc.formatter.tokenizer_info.TokenizerInfo` does), whether a
string is exactly one token, and how to show a token (``id 128009 '<|eot_id|>'``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class TokFacts:
    tokenizer: Any
    bos: str | None
    bos_id: int | None
    eos: str | None
    eos_id: int | None
    pad: str | None
    pad_id: int | None
    unk: str | None
    unk_id: int | None
    adds_bos: bool
    added: dict[str, int]          # added-token text -> id
    special: dict[str, int]        # special added tokens
    size: int                      # number of token ids (max id + 1)

    @classmethod
    def of(cls, tok: Any) -> "TokFacts":
        def tid(t):
            if t is None:
                return None
            i = tok.convert_tokens_to_ids(t)
            unk = getattr(tok, "unk_token_id", None)
            if i is None or (i == unk and t != getattr(tok, "unk_token", None)):
                return None
            return int(i)

        bos, eos, pad, unk = tok.bos_token, tok.eos_token, tok.pad_token, getattr(tok, "unk_token", None)
        bos_id = tid(bos)
        with_sp = tok("a", add_special_tokens=True)["input_ids"]
        adds = bos_id is not None and bool(with_sp) and with_sp[0] == bos_id
        added: dict[str, int] = {}
        special: dict[str, int] = {}
        for i, a in (getattr(tok, "added_tokens_decoder", None) or {}).items():
            added[a.content] = int(i)
            if getattr(a, "special", False):
                special[a.content] = int(i)
        size = max([len(tok)] + [i + 1 for i in added.values()])
        return cls(tok, bos, bos_id, eos, tid(eos), pad, tid(pad), unk, tid(unk), adds, added, special, size)

    def ids(self, text: str, special: bool = False) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def single_id(self, text: str) -> int | None:
        """The id when ``text`` is exactly one token of the vocabulary (and tokenizes to it), else None."""
        if not text:
            return None
        ids = self.ids(text)
        if len(ids) != 1:
            return None
        i = self.tokenizer.convert_tokens_to_ids(text)
        if text in self.added or (i is not None and i == ids[0]):
            return ids[0]
        # a plain-vocabulary word that is one token (e.g. 'Hello') counts too
        return ids[0] if self.tokenizer.decode(ids) == text else None

    def show(self, i: int | None) -> str:
        if i is None:
            return "none"
        try:
            t = self.tokenizer.convert_ids_to_tokens(int(i))
        except Exception:  # noqa: BLE001 - ids out of the vocabulary
            t = None
        return f"id {i} {t!r}" if t is not None else f"id {i}"

    def text(self, i: int) -> str | None:
        try:
            return self.tokenizer.convert_ids_to_tokens(int(i))
        except Exception:  # noqa: BLE001
            return None
