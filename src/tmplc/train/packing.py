"""Micro-batches: packed rows of whole conversations (leak-free), or padded rows.

*Plan* (``plan_epoch``): a pure function of (lengths, seed, epoch), so a resumed run sees the
same order.  Packed: conversations in a seeded random order go first-fit into rows of at most
``budget`` tokens (a conversation is never split).  Padded: ``batch_size`` conversations per
micro-batch.

*Collate*: ``targets`` are the next-token labels, shifted here once per conversation
(``targets[t] = labels[t+1]``, and -100 on a conversation's last token), so no position ever
predicts the first token of the next packed conversation, and padding is -100 by position (never
by comparing ids with the pad id).  Packed rows carry ``position_ids`` restarting at 0 for each
conversation and ``seq_lens``, from which the attention gets a real document boundary
(``tmplc.train.attention``): positions alone would let conversations attend to each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IGNORE = -100


def plan_epoch(lengths: np.ndarray, *, seed: int, epoch: int, packing: bool, budget: int,
               batch_size: int) -> list[np.ndarray]:
    """The micro-batches of one epoch: arrays of conversation indices."""
    order = np.random.default_rng([seed, epoch]).permutation(len(lengths))
    if not packing:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return first_fit(order, lengths, budget)


def first_fit(order: np.ndarray, lengths: np.ndarray, budget: int, window: int = 64) -> list[np.ndarray]:
    """First-fit packing in ``order`` among the last ``window`` open rows (O(n x window))."""
    rows: list[list[int]] = []
    room: list[int] = []
    first_open = 0
    for i in order:
        n = int(lengths[i])
        if n > budget:
            raise ValueError(f"conversation {int(i)} has {n} tokens, more than the packing budget {budget}")
        placed = False
        for r in range(max(first_open, len(rows) - window), len(rows)):
            if room[r] >= n:
                rows[r].append(int(i))
                room[r] -= n
                placed = True
                break
        if not placed:
            rows.append([int(i)])
            room.append(budget - n)
    return [np.asarray(r, dtype=np.int64) for r in rows]


@dataclass
class Batch:
    """One micro-batch on the CPU (torch tensors) with its token counts."""

    input_ids: "object"              # [B, T] long
    targets: "object"                # [B, T] long, -100 = no loss
    position_ids: "object | None"    # [B, T] packed: restarting per conversation
    attention_mask: "object | None"  # [B, T] padded rows only
    seq_lens: list | None            # packed: segment lengths (the last may be filler)
    n_real: int                      # non-pad tokens
    n_target: int                    # tokens with a loss
    packed: bool

    def to(self, device, non_blocking: bool = True) -> "Batch":
        mv = (lambda t: None if t is None else t.to(device, non_blocking=non_blocking))
        return Batch(mv(self.input_ids), mv(self.targets), mv(self.position_ids), mv(self.attention_mask),
                     self.seq_lens, self.n_real, self.n_target, self.packed)


def shifted(labels: np.ndarray) -> np.ndarray:
    """Next-token targets of one conversation: labels[1:] then -100."""
    out = np.empty(len(labels), dtype=np.int64)
    out[:-1] = labels[1:]
    out[-1] = IGNORE
    return out


def collate_packed(data, docs, *, pad_id: int, pad_to: int | None = None) -> Batch:
    """One row: the conversations concatenated; ``pad_to`` appends a filler segment (no loss)."""
    import torch

    ids, tgt, pos, lens = [], [], [], []
    for i in docs:
        a, b = data.doc(int(i))
        ids.append(a.astype(np.int64))
        tgt.append(shifted(b))
        pos.append(np.arange(len(a), dtype=np.int64))
        lens.append(len(a))
    n_real = sum(lens)
    if pad_to is not None and pad_to > n_real:
        k = pad_to - n_real
        ids.append(np.full(k, pad_id, dtype=np.int64))
        tgt.append(np.full(k, IGNORE, dtype=np.int64))
        pos.append(np.arange(k, dtype=np.int64))
        lens.append(k)
    t = np.concatenate(tgt)
    return Batch(torch.from_numpy(np.concatenate(ids))[None], torch.from_numpy(t)[None],
                 torch.from_numpy(np.concatenate(pos))[None], None, lens, n_real, int((t != IGNORE).sum()), True)


def collate_padded(data, docs, *, pad_id: int) -> Batch:
    """``len(docs)`` rows padded on the right to the longest; targets padded with -100 by position."""
    import torch

    rows = [data.doc(int(i)) for i in docs]
    L = max(len(a) for a, _ in rows)
    ids = np.full((len(rows), L), pad_id, dtype=np.int64)
    tgt = np.full((len(rows), L), IGNORE, dtype=np.int64)
    am = np.zeros((len(rows), L), dtype=np.int64)
    for r, (a, b) in enumerate(rows):
        ids[r, :len(a)] = a
        tgt[r, :len(a)] = shifted(b)
        am[r, :len(a)] = 1
    return Batch(torch.from_numpy(ids), torch.from_numpy(tgt), None, torch.from_numpy(am), None,
                 int(am.sum()), int((tgt != IGNORE).sum()), False)
