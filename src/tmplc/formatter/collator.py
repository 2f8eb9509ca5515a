"""A padding collator for HF Trainer / TRL that never derives labels from token ids.

``labels`` are padded with -100 **by position** (the padded tail), never by comparing ids with
the pad id, so an end-of-turn/EOS token that is also the pad token (DeepSeek-V3, or any
tokenizer where pad was set to EOS) keeps its label.  transformers'
``DataCollatorForLanguageModeling(mlm=False)`` rebuilds labels from ``input_ids`` and sets every
pad-id position to -100, erasing those EOS labels: the model then never learns to stop.
"""

from __future__ import annotations

from typing import Any, Sequence

IGNORE = -100


class DataCollatorForTmplc:
    """Pad ``input_ids`` (pad id), ``attention_mask`` (0), ``labels`` (-100) and
    ``assistant_masks`` (0) to the longest row (or ``max_length``), rounded up to
    ``pad_to_multiple_of``.  ``padding_side``: "right" (default) or "left".
    ``return_tensors``: "pt" (torch), "np" or None (lists).

    Extra keys (``position_ids``...) are not padded and are dropped."""

    PADS = {"input_ids": None, "attention_mask": 0, "labels": IGNORE, "assistant_masks": 0}

    def __init__(self, tokenizer: Any = None, *, pad_token_id: int | None = None,
                 pad_to_multiple_of: int | None = None, padding_side: str | None = None,
                 max_length: int | None = None, return_tensors: str | None = "pt") -> None:
        if pad_token_id is None:
            if tokenizer is None:
                raise ValueError("DataCollatorForTmplc needs a tokenizer or pad_token_id")
            pad_token_id = tokenizer.pad_token_id
            if pad_token_id is None:
                pad_token_id = tokenizer.eos_token_id
            if pad_token_id is None:
                raise ValueError("the tokenizer has neither a pad nor an eos token: pass pad_token_id=")
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of
        side = padding_side or "right"
        if side not in ("right", "left"):
            raise ValueError("padding_side must be 'right' or 'left'")
        self.padding_side = side
        self.max_length = max_length
        self.return_tensors = return_tensors

    def __call__(self, features: Sequence[dict]) -> dict:
        if not features:
            raise ValueError("empty batch")
        n = max(len(f["input_ids"]) for f in features)
        if self.max_length is not None:
            n = max(n, self.max_length)
        m = self.pad_to_multiple_of
        if m:
            n = -(-n // m) * m
        keys = [k for k in self.PADS if k in features[0]]
        if "attention_mask" not in keys:
            keys.append("attention_mask")
        if "labels" not in keys:
            raise ValueError("features have no 'labels': tmplc's collator pads labels given by the "
                             "formatter and never derives them from input_ids")
        out: dict[str, list] = {k: [] for k in keys}
        for f in features:
            ids = list(f["input_ids"])
            gap = n - len(ids)
            for k in keys:
                if k == "attention_mask" and "attention_mask" not in f:
                    row = [1] * len(ids)
                else:
                    row = list(f[k])
                if len(row) != len(ids):
                    raise ValueError(f"{k} has {len(row)} entries but input_ids has {len(ids)}")
                pad = self.pad_token_id if k == "input_ids" else self.PADS[k]
                fill = [pad] * gap
                out[k].append(row + fill if self.padding_side == "right" else fill + row)
        if self.return_tensors == "pt":
            import torch

            return {k: torch.tensor(v, dtype=torch.long) for k, v in out.items()}
        if self.return_tensors == "np":
            import numpy as np

            return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}
        return out
