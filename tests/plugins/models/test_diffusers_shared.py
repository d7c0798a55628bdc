"""The helpers every diffusers-based model plugin builds on (``_diffusers_shared``)."""

import pytest
import torch

from harness.errors import ConfigError, ModelLoadError
from plugins.models import _diffusers_shared as ds


def test_no_other_plugin_defines_the_shared_helpers():
    """One home: the model implementations import these, none re-defines them."""
    import pathlib
    import re

    root = pathlib.Path(ds.__file__).parent
    names = ("resolve_checkpoint", "to_epsilon", "timesteps", "posterior_latents", "freeze",
             "check_choice", "hub_offline", "unet_epsilon", "scheduler_alphas")
    for path in root.glob("*.py"):
        if path.name == "_diffusers_shared.py":
            continue
        text = path.read_text()
        for n in names:
            assert not re.search(rf"^def {n}\(", text, re.M), f"{path.name} re-defines {n}"
        assert "from ._audioldm2_impl import" not in text, path.name


def test_timesteps_broadcast_and_shape_error():
    assert ds.timesteps(7, 3, "cpu").tolist() == [7, 7, 7]
    assert ds.timesteps(torch.tensor([1, 2]), 2, "cpu").dtype == torch.long
    with pytest.raises(ValueError, match=r"shape \[3\]"):
        ds.timesteps(torch.tensor([1, 2]), 3, "cpu")


def test_v_prediction_inverts_diffusers_velocity():
    """ε recovered from the velocity diffusers defines (v = sqrt(ᾱ)ε − sqrt(1−ᾱ)x0)."""
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                          prediction_type="v_prediction")
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 2, 5, 3, generator=g), torch.randn(4, 2, 5, 3, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    z_t = sched.add_noise(x0, eps, t)
    v = sched.get_velocity(x0, eps, t)
    got = ds.to_epsilon(v, z_t, t, ds.scheduler_alphas(sched.betas), "v_prediction")
    assert torch.allclose(got, eps, atol=1e-5)
    assert ds.to_epsilon(v, z_t, t, ds.scheduler_alphas(sched.betas), "epsilon") is v
    with pytest.raises(ModelLoadError, match="sample"):
        ds.to_epsilon(v, z_t, t, ds.scheduler_alphas(sched.betas), "sample")


def test_unet_epsilon_casts_inputs_keeps_masks_and_returns_callers_dtype():
    seen = {}

    def unet(z, t, return_dict, **kw):
        seen.update(z=z.dtype, t=t.dtype, **{k: v.dtype for k, v in kw.items()})
        return (z * 2,)

    z = torch.ones(2, 1, 3, 3)
    cond = {"encoder_hidden_states": torch.zeros(2, 4, 8),
            "encoder_attention_mask": torch.ones(2, 4, dtype=torch.bool)}
    out = ds.unet_epsilon(unet, z, 5, cond, dtype=torch.bfloat16, device="cpu")
    assert seen == {"z": torch.bfloat16, "t": torch.long,
                    "encoder_hidden_states": torch.bfloat16, "encoder_attention_mask": torch.bool}
    assert out.dtype == torch.float32 and torch.equal(out, z * 2)


def test_checkpoint_and_choice_errors(tmp_path):
    with pytest.raises(ConfigError, match="needs the parameter 'checkpoint'"):
        ds.resolve_checkpoint(None, "m", "the files")
    with pytest.raises(ModelLoadError, match="does not exist. It must hold the files"):
        ds.resolve_checkpoint(str(tmp_path / "nope" / "deeper" / "x y"), "m", "the files")
    assert ds.resolve_checkpoint(str(tmp_path), "m", "the files") == tmp_path
    with pytest.raises(ConfigError, match="'dtype' must be one of 'float32'"):
        ds.check_choice("dtype", "fp8", ds.DTYPES, "m")
