"""The diffusion contract's noise levels on the discrete-schedule models: generalising it to
(alpha_t, sigma_t, model time) leaves AudioLDM2's and TANGO's noised inputs, hence every
diffusion attack's numbers, exactly what sqrt(abar_t) z0 + sqrt(1 - abar_t) eps gave before."""

import math

import torch

from harness.contracts import BatchContext, Sample
from plugins.attacks import _diffusion_impl as D
from plugins.attacks.diffusion import ATTACKS


def _check(model):
    ctx = BatchContext(model, [Sample("x", "unused.wav", "")], 0)
    z0 = torch.randn(1, 8, 16, 4, generator=torch.Generator().manual_seed(0))
    eps = torch.randn(1, 8, 16, 4, generator=torch.Generator().manual_seed(1))
    ac = model.alphas_cumprod()
    for t in list(range(0, 1000, 100)) + [200, 999]:
        a = float(ac[t])
        assert D.noise_level(ctx, t) == (math.sqrt(a), math.sqrt(1.0 - a))
        assert torch.equal(D.q_sample(z0, D.noise_level(ctx, t), eps),
                           math.sqrt(a) * z0 + math.sqrt(1.0 - a) * eps)
    _, _, model_t = model.noise_levels(torch.tensor([0, 100, 900]))
    assert model_t.tolist() == [0.0, 100.0, 900.0]   # the UNet is still called at t itself
    assert len(ATTACKS) == 6


def test_audioldm2_noise_levels_unchanged(tiny_audioldm2_dir):
    from plugins.models._audioldm2_impl import AudioLDM2

    _check(AudioLDM2(checkpoint=str(tiny_audioldm2_dir)))


def test_tango_noise_levels_unchanged(tiny_tango_dir):
    from plugins.models._tango_impl import Tango

    _check(Tango(checkpoint=str(tiny_tango_dir), tokenizer=str(tiny_tango_dir / "flan-t5")))
