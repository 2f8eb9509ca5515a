"""The loss: summed next-token cross-entropy over the positions with a target.

``linear_cross_entropy(hidden, weight, targets)`` fuses the lm_head projection with the
cross-entropy, chunk by chunk, for the positions that have a target only: the full
``[tokens, vocab]`` logits tensor (and its float32 copy and gradient) never exists, and masked
positions (prompts, system text) cost no lm_head work at all.  The gradient with respect to the
hidden states (and to the weight, when it trains) is computed in the forward pass, chunk by
chunk, and scaled in the backward pass.

``LossModule`` wraps the PEFT model so one ``forward(batch tensors) -> loss sum`` is what DDP
wraps (a submodule called around DDP would not synchronise gradients).  The sum is divided by the
number of target tokens of the whole optimizer step (all micro-batches, all processes) by the
loop, so one process with accumulation 2 and two processes with accumulation 1 compute the
same gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk: int):
        n = hidden.shape[0]
        need_h = ctx.needs_input_grad[0]
        need_w = ctx.needs_input_grad[1]
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        for s in range(0, n, chunk):
            h = hidden[s:s + chunk]
            t = targets[s:s + chunk]
            logits = (h @ weight.t()).float()
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, t[:, None])[:, 0]).sum()
            if need_h or need_w:
                g = logits.sub_(lse[:, None]).exp_()                    # softmax
                g[torch.arange(g.shape[0], device=g.device), t] -= 1.0  # - one-hot
                g = g.to(hidden.dtype)
                if need_h:
                    grad_h[s:s + chunk] = g @ weight
                if need_w:
                    grad_w += (g.t() @ h).float()
        ctx.save_for_backward(grad_h, grad_w)
        ctx.w_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        gh = grad_h * grad_out.to(grad_h.dtype) if grad_h is not None else None
        gw = (grad_w * grad_out).to(ctx.w_dtype) if grad_w is not None else None
        return gh, gw, None, None


def chunk_size(vocab: int, budget_bytes: int = 1 << 30) -> int:
    """Positions per chunk so one float32 logits chunk stays near ``budget_bytes``."""
    return max(256, budget_bytes // (4 * vocab))


def linear_cross_entropy(hidden, weight, targets, chunk: int | None = None):
    """sum_i CE(hidden[i] @ weight.T, targets[i]) (rows whose target is -100 must be removed first)."""
    return _LinearCrossEntropy.apply(hidden, weight, targets, chunk or chunk_size(weight.shape[0]))


def chunked_supported(causal_lm) -> bool:
    """Whether the logits are exactly ``hidden @ lm_head.weight.T`` (no bias, scale or soft-cap)."""
    head = causal_lm.get_output_embeddings()
    cfg = causal_lm.config
    text = getattr(cfg, "get_text_config", lambda: cfg)()
    if type(head) is not torch.nn.Linear or head.bias is not None:
        return False
    for attr in ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale"):
        if getattr(text, attr, None) not in (None, 1, 1.0):
            return False
    return hasattr(causal_lm, "model")


class LossModule(torch.nn.Module):
    """``forward(...) -> summed loss`` over a micro-batch, through the (PEFT) model."""

    def __init__(self, model, mode: str = "chunked") -> None:
        super().__init__()
        self.model = model
        self.mode = mode

    @property
    def causal_lm(self):
        m = self.model
        return m.get_base_model() if hasattr(m, "get_base_model") else m

    def forward(self, input_ids, targets, position_ids=None, attention_mask=None, target_index=None):
        if self.mode == "hf":
            logits = self.model(input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask,
                                use_cache=False).logits
            return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE,
                                   reduction="sum")
        lm = self.causal_lm
        hidden = lm.model(input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask,
                          use_cache=False).last_hidden_state
        h = hidden.flatten(0, 1)
        t = targets.flatten()
        if target_index is None:
            target_index = (t != IGNORE).nonzero()[:, 0]
        h = h.index_select(0, target_index)
        t = t.index_select(0, target_index)
        return linear_cross_entropy(h, lm.get_output_embeddings().weight, t)
