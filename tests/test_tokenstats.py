"""Per-token statistics keep their digits where real models live (issue #9): a flat guidance
contrast, and logits with -inf entries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.tokenstats import summarize


def _reference(logits64: np.ndarray, targets: np.ndarray):
    """Independent float64 numpy: log-softmax, mean and centred variance of log p under p."""
    z = logits64 - logits64.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    p = np.exp(logp)
    with np.errstate(invalid="ignore"):
        mu = np.where(p > 0, p * logp, 0.0).sum(-1)
        var = np.where(p > 0, p * (logp - mu[..., None]) ** 2, 0.0).sum(-1)
    lp = np.take_along_axis(logp, targets[..., None], -1)[..., 0]
    return lp, mu, var


def test_flat_contrast_keeps_the_variance_and_min_k_pp():
    """Conditional and null logits that differ by ~1e-2: mu^2 ~ 58 against a variance ~1e-4.
    E[x^2] - mu^2 in float32 loses the variance; the centred form matches float64."""
    from plugins.attacks._autoregressive_impl import _Tokens

    g = torch.Generator().manual_seed(0)
    V, T = 2048, 64
    cond = torch.randn(1, T, V, generator=g) * 3
    null = cond + 0.01 * torch.randn(1, T, V, generator=g)
    targets = torch.randint(0, V, (1, T), generator=g)
    mask = torch.ones(1, T, dtype=torch.bool)
    (st,) = summarize(cond, targets, mask, null_logits=null)
    diff = (cond.double() - null.double()).numpy()
    lp, mu, var = _reference(diff[0], targets[0].numpy())
    assert var.mean() < 1e-2 and (mu ** 2).mean() > 50      # the hard case
    np.testing.assert_allclose(st.mean_logprob, mu, rtol=1e-6)
    np.testing.assert_allclose(st.var_logprob, var, rtol=1e-3)
    # the old float32 E[x^2] - mu^2, for the record: it is off by far more
    logp = torch.log_softmax(cond - null, -1)
    p = logp.exp()
    old = ((p * logp.square()).sum(-1) - (p * logp).sum(-1) ** 2)[0].double().numpy()
    assert np.abs(old - var).max() / var.mean() > 10 * np.abs(st.var_logprob - var).max() / var.mean()
    t = _Tokens(st, "test")
    want = (lp - mu) / np.sqrt(var)
    np.testing.assert_allclose(t.mkpp("std", 0.0), want, rtol=1e-3)


def test_minus_inf_logits_give_finite_statistics():
    """A banned token (-inf logit) has p = 0, so p log p counts as 0, not NaN."""
    logits = torch.tensor([[[0.0, 1.0, float("-inf"), 2.0], [3.0, float("-inf"), 0.5, 0.5]]])
    targets = torch.tensor([[1, 0]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    (st,) = summarize(logits, targets, mask)
    lp, mu, var = _reference(logits.double().numpy()[0], targets[0].numpy())
    for got, want in ((st.logprob, lp), (st.mean_logprob, mu), (st.var_logprob, var)):
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, rtol=1e-6)
    (cst,) = summarize(logits, targets, mask, null_logits=torch.zeros_like(logits))
    assert np.all(np.isfinite(cst.mean_logprob)) and np.all(np.isfinite(cst.var_logprob))


def test_prob_contrast_is_marked_experimental():
    import torch

    from harness.tokenstats import CONTRAST_MODES, summarize

    assert CONTRAST_MODES == ("logit", "prob-experimental")
    logits = torch.randn(1, 4, 6)
    targets = torch.zeros(1, 4, dtype=torch.long)
    mask = torch.ones(1, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="prob-experimental"):
        summarize(logits, targets, mask, null_logits=logits * 0.5, contrast="prob")
    (s,) = summarize(logits, targets, mask, null_logits=logits * 0.5,
                     contrast="prob-experimental")
    assert np.isfinite(s.logprob).all()
