"""Reduce teacher-forced logits to the four per-token scalars every autoregressive attack needs.

attacks.md §2.2: Loss, Zlib, Hinge, Min-K%, Min-K%++, SURP and CAMIA all derive from the true
token's log-prob, the best other log-prob, and the first two moments of log p. Keeping only those
(instead of [T, V] logits per sample) makes the feature cache tiny and lets all seven attacks share
one conditional + one null-condition pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .contracts import TokenStats

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: How the guidance contrast is formed from conditional and null-condition logits.
CONTRAST_MODES = ("logit", "prob")


def summarize(
    logits: "torch.Tensor",
    targets: "torch.Tensor",
    mask: "torch.Tensor",
    null_logits: "torch.Tensor | None" = None,
    contrast: str = "logit",
) -> list[TokenStats]:
    """Per-sample TokenStats from logits.

    logits, null_logits: [B, ..., V] (any number of middle dims, e.g. [B, K, T, V]); positions where
    ``mask`` is False may hold NaN (audiocraft does) and are dropped. targets: [B, ...] int64.
    mask: [B, ...] bool. Middle dims are flattened in the order given, so pass time-major layouts
    ([B, T, K, V]) to get time-major tokens.

    With ``null_logits`` the distribution is the classifier-free-guidance contrast:
    ``contrast="logit"`` (the IAR code, default) uses softmax(l_c - l_u); ``"prob"`` (the audio-paper
    review's wording, attacks.md §9 item 13) uses normalised max(p_c - p_u, 0) with a floor.
    """
    import torch

    with torch.no_grad():
        mask = mask.bool()
        logits = torch.where(mask[..., None], logits, torch.zeros((), dtype=logits.dtype,
                                                                  device=logits.device))
        logits = logits.float()
        if null_logits is None:
            logp = torch.log_softmax(logits, dim=-1)
        else:
            null_logits = torch.where(mask[..., None], null_logits.float(),
                                      torch.zeros((), device=logits.device))
            if contrast == "logit":
                logp = torch.log_softmax(logits - null_logits, dim=-1)
            elif contrast == "prob":
                diff = (torch.softmax(logits, -1) - torch.softmax(null_logits, -1)).clamp_min(0)
                diff = diff + 1e-12
                logp = torch.log(diff / diff.sum(-1, keepdim=True))
            else:
                raise ValueError(f"contrast must be one of {CONTRAST_MODES}, not {contrast!r}")
        safe_targets = torch.where(mask, targets, torch.zeros_like(targets)).long()
        lp = logp.gather(-1, safe_targets[..., None]).squeeze(-1)
        other = logp.scatter(-1, safe_targets[..., None], float("-inf"))
        max_other = other.max(-1).values
        p = logp.exp()
        mean_lp = (p * logp).sum(-1)
        mean_sq = (p * logp.square()).sum(-1)
        out = []
        B = logits.shape[0]
        for b in range(B):
            m = mask[b].reshape(-1)
            out.append(TokenStats(
                logprob=lp[b].reshape(-1)[m].double().cpu().numpy(),
                max_other_logprob=max_other[b].reshape(-1)[m].double().cpu().numpy(),
                mean_logprob=mean_lp[b].reshape(-1)[m].double().cpu().numpy(),
                mean_sq_logprob=mean_sq[b].reshape(-1)[m].double().cpu().numpy(),
                token_ids=targets[b].reshape(-1)[m].cpu().numpy().astype(np.int64),
            ))
        return out


def concatenate(parts: list[TokenStats]) -> TokenStats:
    """Join the stats of consecutive windows of one file (FIGARO scores 256-token windows)."""
    return TokenStats(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                        ("logprob", "max_other_logprob", "mean_logprob", "mean_sq_logprob",
                         "token_ids")))
