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

#: How the guidance contrast is formed from conditional and null-condition logits. Only
#: ``logit`` has a source (the IAR code); ``prob-experimental`` is a harness construction.
CONTRAST_MODES = ("logit", "prob-experimental")


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
    ``contrast="logit"`` (the IAR code, default) uses softmax(l_c - l_u).
    ``"prob-experimental"`` uses normalised max(p_c - p_u, 0) with a floor: EXPERIMENTAL, from no
    source. A review of the audio paper writes the contrast as a probability difference
    p(x|c) - p(x|c_null) (attacks.md §9 item 13), which is a score, not a distribution; the
    clipping and renormalisation that make it one are the harness's own, so numbers from it
    reproduce nothing (issue #10).
    """
    import torch

    if contrast == "prob":
        raise ValueError("contrast 'prob' is now 'prob-experimental': it reproduces no paper or "
                         "code (see harness.tokenstats.summarize); write it out to use it anyway")
    if contrast not in CONTRAST_MODES:
        raise ValueError(f"contrast must be one of {CONTRAST_MODES}, not {contrast!r}")
    out = []
    with torch.no_grad():
        # one sample at a time, in float64: the contrast l_c - l_u and the centred moments keep
        # their digits when the two logits are close, and memory stays one sample's logits
        for b in range(logits.shape[0]):
            m = mask[b].bool().reshape(-1)
            V = logits.shape[-1]
            lc = logits[b].reshape(-1, V)[m].double()
            tgt = targets[b].reshape(-1)[m].long()
            if null_logits is None:
                logp = torch.log_softmax(lc, dim=-1)
            else:
                lu = null_logits[b].reshape(-1, V)[m].double()
                if contrast == "logit":
                    logp = torch.log_softmax(lc - lu, dim=-1)
                else:
                    diff = (torch.softmax(lc, -1) - torch.softmax(lu, -1)).clamp_min(0) + 1e-12
                    logp = torch.log(diff / diff.sum(-1, keepdim=True))
            out.append(_moments(logp, tgt))
    return out


def _moments(logp, tgt) -> TokenStats:
    """TokenStats of log-probs [N, V] (float64) and targets [N]. ``p log p`` is 0 where p is 0
    (a -inf logit), not 0 * -inf = NaN; the second moment is centred."""
    import torch

    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    lp = logp.gather(-1, tgt[:, None])[:, 0]
    max_other = logp.scatter(-1, tgt[:, None], float("-inf")).max(-1).values \
        if logp.shape[-1] > 1 else torch.full_like(lp, float("-inf"))
    p = logp.exp()
    live = p > 0
    mean_lp = torch.where(live, p * logp, zero).sum(-1)
    centred = torch.where(live, logp - mean_lp[:, None], zero)
    var_lp = (p * centred.square()).sum(-1)
    return TokenStats(logprob=lp.cpu().numpy(), max_other_logprob=max_other.cpu().numpy(),
                      mean_logprob=mean_lp.cpu().numpy(), var_logprob=var_lp.cpu().numpy(),
                      token_ids=tgt.cpu().numpy().astype(np.int64))


def concatenate(parts: list[TokenStats]) -> TokenStats:
    """Join the stats of consecutive windows of one file (FIGARO scores 256-token windows)."""
    return TokenStats(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                        ("logprob", "max_other_logprob", "mean_logprob", "var_logprob",
                         "token_ids")))
