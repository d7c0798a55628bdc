"""The toy models keep the contracts a real model keeps (padding, masks, per-sample results,
differentiable denoiser, half-precision outputs) and carry their documented member signal."""

import numpy as np
import pytest
import soundfile as sf
import torch

from harness.contracts import (CONDITION, LATENTS, NULL_CONDITION, TOKEN_STATS_CONDITIONAL,
                               TOKEN_STATS_CONTRAST, BatchContext)
from harness.errors import ConfigError
from harness.testing import ToyAutoregressiveModel, ToyDataset, ToyDiffusionModel, toy_data


@pytest.fixture
def data(tmp_path, toy_plugins):
    ds = ToyDataset(root=str(tmp_path), n=6)
    ds.prepare()
    return ds


def test_toy_data_mixed_lengths_louder_members_and_shuffle(data, tmp_path):
    members, non = data.samples("members"), data.samples("nonmembers")
    lengths = [sf.info(s.path).frames for s in members]
    assert lengths == [1600, 800, 2400, 1200, 1600, 800]
    peak = lambda s: np.abs(sf.read(s.path)[0]).max()  # noqa: E731
    assert min(map(peak, members)) > max(map(peak, non))
    shuffled = ToyDataset(root=str(tmp_path), n=6, shuffle=3).samples("members")
    assert sorted(s.id for s in shuffled) == [s.id for s in members]
    assert [s.id for s in shuffled] != [s.id for s in members]
    with pytest.raises(ConfigError, match="needs params.root"):
        ToyDataset()


def test_autoregressive_toy_batches_like_it_scores_alone(data):
    model = ToyAutoregressiveModel()
    samples = data.samples("members")[:4] + data.samples("nonmembers")[:4]
    needs = {TOKEN_STATS_CONDITIONAL, TOKEN_STATS_CONTRAST}
    batch = model.provide(samples, needs, BatchContext(model, samples, 0))
    for i, s in enumerate(samples):
        alone = model.provide([s], needs, BatchContext(model, [s], 0))
        for out in needs:
            a, b = batch[out][i], alone[out][0]
            assert len(a) == sf.info(s.path).frames // 25
            np.testing.assert_allclose(a.logprob, b.logprob, rtol=1e-6)
            np.testing.assert_array_equal(a.token_ids, b.token_ids)
            assert np.all(a.var_logprob >= 0)  # a real variance
    lp = [batch[TOKEN_STATS_CONTRAST][i].logprob.mean() for i in range(8)]
    assert min(lp[:4]) > max(lp[4:])  # members (louder) are more likely


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_diffusion_toy_contract_and_signal(data, tmp_path, dtype):
    ref = toy_data(tmp_path, n=6)["members"]
    model = ToyDiffusionModel(train_data=ref, dtype=dtype)
    samples = data.samples("members")[:3] + data.samples("nonmembers")[:3]
    out = model.provide(samples, {LATENTS, CONDITION, NULL_CONDITION},
                        BatchContext(model, samples, 0))
    z0 = out[LATENTS]
    assert z0.shape == (6, 2, 8) and z0.dtype == torch.float32
    assert out[CONDITION]["embedding"].shape == (6, 8)
    assert float(out[NULL_CONDITION]["embedding"].abs().sum()) == 0
    a = model.alphas_cumprod()
    assert a.shape == (1000,) and a.dtype == torch.float64
    t = torch.full((6,), 100, dtype=torch.long)
    eps = torch.randn(z0.shape, generator=torch.Generator().manual_seed(0))
    z_t = (a[100].sqrt() * z0 + (1 - a[100]).sqrt() * eps).float().requires_grad_(True)
    pred = model.predict_noise(z_t, t, out[CONDITION])
    assert pred.dtype == torch.float32 and pred.shape == z0.shape
    assert torch.equal(pred, pred.to(getattr(torch, dtype)).float())  # rounded to ``dtype``
    (grad,) = torch.autograd.grad(pred.float().sum(), z_t)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    err = (pred.float() - eps).flatten(1).norm(dim=1)
    assert err[:3].max() < err[3:].min()  # memorised members denoise better
    null_pred = model.predict_noise(z_t, t, out[NULL_CONDITION]).float()
    null_err = (null_pred - eps).flatten(1).norm(dim=1)
    assert (null_err[:3] > err[:3]).all()  # the null condition memorises less
    with pytest.raises(ValueError, match=r"t must have shape \[B\]"):
        model.predict_noise(z_t, t[:2], out[CONDITION])


def test_diffusion_toy_needs_train_data():
    with pytest.raises(ConfigError, match="needs params.train_data"):
        ToyDiffusionModel()
