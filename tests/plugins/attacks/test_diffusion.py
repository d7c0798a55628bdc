"""Diffusion attack family (CDI suite) on a tiny random DiffusionModel with a real diffusers UNet,
so gradients, batching and sharing behave as on a real model."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from harness.contracts import (CONDITION, LATENT_MASK, LATENTS, NULL_CONDITION, BatchContext,
                               DiffusionModel, Sample)
from harness.errors import ConfigError
from plugins.attacks import _diffusion_impl as D
from plugins.attacks import diffusion as entry

NAMES = ["denoising-loss", "multiple-loss", "pia", "pian", "gradient-masking",
         "noise-optimization"]
CLASSES = dict(zip(NAMES, [D.DenoisingLoss, D.MultipleLoss, D.PIA, D.PIAN, D.GradientMasking,
                           D.NoiseOptimization]))


class TinyDiffusion(DiffusionModel):
    """A random 2-channel 8x8 latent UNet with cross-attention; latents and captions are derived
    from the sample id, so a sample is the same whatever batch it is in."""

    defaults = {}

    def __init__(self):
        super().__init__()
        from diffusers import UNet2DConditionModel

        torch.manual_seed(0)
        self.unet = UNet2DConditionModel(
            sample_size=8, in_channels=2, out_channels=2, layers_per_block=1,
            block_out_channels=(8, 16), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=8,
            attention_head_dim=4, norm_num_groups=4).eval().requires_grad_(False)
        betas = torch.linspace(0.0015 ** 0.5, 0.0195 ** 0.5, 1000, dtype=torch.float64) ** 2
        self._ac = torch.cumprod(1 - betas, 0)
        self.calls = 0
        self.grad_calls = 0
        self.audio_frames: dict[str, int] = {}  # sample id -> latent frames of audio (default 8)

    def identity(self):
        return {"tiny": 1}

    def alphas_cumprod(self):
        return self._ac

    @staticmethod
    def _gen(sid: str, what: str):
        seed = int.from_bytes(hashlib.blake2b(f"{sid}/{what}".encode(), digest_size=4).digest(),
                              "little")
        return torch.Generator().manual_seed(seed)

    def provide(self, samples, needs, ctx):
        out = {}
        if LATENTS in needs:
            out[LATENTS] = torch.stack([torch.randn(2, 8, 8, generator=self._gen(s.id, "z"))
                                        for s in samples])
        if CONDITION in needs:
            out[CONDITION] = {"encoder_hidden_states": torch.stack(
                [torch.randn(3, 8, generator=self._gen(s.id, "c")) for s in samples])}
        if NULL_CONDITION in needs:
            out[NULL_CONDITION] = {"encoder_hidden_states": torch.zeros(len(samples), 3, 8)}
        if LATENT_MASK in needs:  # the first ``audio_frames`` of 8 latent frames hold audio
            mask = torch.zeros(len(samples), 1, 8, 1, dtype=torch.bool)
            for i, s in enumerate(samples):
                mask[i, :, :self.audio_frames.get(s.id, 8)] = True
            out[LATENT_MASK] = mask
        return out

    def predict_noise(self, z_t, t, condition):
        self.calls += 1
        self.grad_calls += int(torch.is_grad_enabled() and z_t.requires_grad)
        return self.unet(z_t, t, encoder_hidden_states=condition["encoder_hidden_states"],
                         return_dict=False)[0]


@pytest.fixture(scope="module")
def model():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: extra threads only spin on a shared 2-core box
    yield TinyDiffusion()
    torch.set_num_threads(threads)


SAMPLES = [Sample(f"s{i}", f"/nowhere/{i}.wav", caption=f"tune {i}") for i in range(4)]


def make(name, **params):
    a = CLASSES[name](**params)
    a.registered_name = name
    return a


def context(model, samples, cell=None, seed=0):
    ctx = BatchContext(model, samples, seed)
    ctx.outputs = model.provide(samples, {LATENTS, CONDITION, LATENT_MASK}, ctx)
    if cell is not None:
        ctx.attacks = frozenset(cell)
    return ctx


def extract(model, name, samples=SAMPLES, cell=None, **params):
    return make(name, **params).extract(context(model, samples, cell))


# ---------------------------------------------------------------------------------------------


def test_registration_is_light_and_complete():
    got = []
    entry.register_attacks(lambda name, factory, family, description: got.append(
        (name, factory, family)))
    assert [g[0] for g in got] == NAMES
    assert all(g[2] == "diffusion" for g in got)
    for name, factory, _ in got:
        module, cls = factory.split(":")
        assert getattr(D, cls) is CLASSES[name]


@pytest.mark.parametrize("name", NAMES)
def test_feature_names_shapes_orientation(model, name):
    a = make(name)
    specs = a.feature_specs()
    feats = a.extract(context(model, SAMPLES, NAMES))
    assert set(feats) == {s.name for s in specs}
    for s in specs:
        assert feats[s.name].shape == (4,) and np.isfinite(feats[s.name]).all()
        # every raw feature is a loss / distance, except Noise Optimization's ||delta*||, which
        # the paper says is larger for members (member_norm: larger)
        assert s.higher_is_member is (s.name == "noise-optimization/norm")
    assert a.needs() == {LATENTS, CONDITION, LATENT_MASK}
    if name in ("multiple-loss", "gradient-masking"):
        assert [s.name for s in specs] == [f"{name}/{t}" for t in D.CDI_TIMESTEPS]
        assert {s.group for s in specs} == {name}
        assert [s.index for s in specs] == [str(t) for t in D.CDI_TIMESTEPS]
    elif name == "noise-optimization":
        assert [s.index for s in specs] == ["loss", "norm"]
    else:
        assert len(specs) == 1 and specs[0].name == name and specs[0].group == ""


@pytest.mark.parametrize("name", NAMES)
def test_same_sample_same_features_whatever_the_batch(model, name):
    together = extract(model, name, SAMPLES, NAMES)
    alone = [extract(model, name, [s], NAMES) for s in SAMPLES]
    for k, v in together.items():
        np.testing.assert_allclose(v, [a[k][0] for a in alone], rtol=2e-4, atol=1e-5)


def test_joint_noise_optimization_depends_on_the_batch_as_cdi(model):
    together = extract(model, "noise-optimization", SAMPLES, joint=True)
    alone = extract(model, "noise-optimization", SAMPLES[:1], joint=True)
    per_sample = extract(model, "noise-optimization", SAMPLES)
    assert np.isfinite(together["noise-optimization/loss"]).all()
    assert not np.allclose(together["noise-optimization/norm"], per_sample["noise-optimization/norm"])
    assert not math.isclose(together["noise-optimization/norm"][0],
                            alone["noise-optimization/norm"][0], rel_tol=1e-4)


# ---------------------------------------------------------------------------------------------
# sharing


@pytest.mark.parametrize("order", [("multiple-loss", "gradient-masking"),
                                   ("gradient-masking", "multiple-loss")])
def test_multiple_loss_comes_from_gradient_masking_forward(model, order):
    ctx = context(model, SAMPLES, cell=order)
    model.calls = model.grad_calls = 0
    feats = {n: make(n).extract(ctx) for n in order}
    # 10 shared forwards with gradients + 10 masked forwards; ML costs nothing extra
    assert model.calls == 20 and model.grad_calls == 10
    ml_alone = extract(model, "multiple-loss", SAMPLES, cell=["multiple-loss"])
    for k, v in ml_alone.items():
        np.testing.assert_allclose(feats["multiple-loss"][k], v, rtol=1e-5, atol=1e-6)


def test_multiple_loss_alone_runs_without_gradients(model):
    ctx = context(model, SAMPLES, cell=["multiple-loss", "pia"])
    model.calls = model.grad_calls = 0
    make("multiple-loss").extract(ctx)
    assert model.calls == 10 and model.grad_calls == 0


def test_sharing_is_correct_without_ctx_attacks(model):
    """A caller that does not list the cell's attacks: GM adds the gradients itself, with the
    same noise, and gets the same numbers."""
    ctx = context(model, SAMPLES, cell=None)
    model.calls = model.grad_calls = 0
    ml = make("multiple-loss").extract(ctx)
    gm = make("gradient-masking").extract(ctx)
    assert model.calls == 30 and model.grad_calls == 10
    ref_ctx = context(model, SAMPLES, cell=NAMES)
    gm_ref = make("gradient-masking").extract(ref_ctx)
    ml_ref = make("multiple-loss").extract(ref_ctx)
    for got, ref in ((ml, ml_ref), (gm, gm_ref)):
        for k in ref:
            np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-6)


def test_pia_and_pian_share_eps0_and_denoising_loss_costs_five(model):
    ctx = context(model, SAMPLES, cell=NAMES)
    model.calls = 0
    make("pia").extract(ctx)
    assert model.calls == 2
    make("pian").extract(ctx)
    assert model.calls == 3
    model.calls = 0
    make("denoising-loss").extract(ctx)
    assert model.calls == 5


def test_denoising_loss_noise_is_independent_of_multiple_loss(model):
    ctx = context(model, SAMPLES, cell=NAMES)
    dl = make("denoising-loss", n_repetitions=1).extract(ctx)["denoising-loss"]
    ml = make("multiple-loss").extract(ctx)["multiple-loss/100"]
    assert not np.allclose(dl, ml)


# ---------------------------------------------------------------------------------------------
# documented discrepancy options


def test_pian_scales_differ_by_pi_over_two(model):
    ctx = context(model, SAMPLES)
    e0 = D.eps0(ctx)
    full = D.audio_mask(ctx)
    cdi = make("pian")._noise(e0, full)
    code = make("pian", pian_scale="pia-code")._noise(e0, full)
    m_cdi = cdi.abs().flatten(1).mean(1)
    m_code = code.abs().flatten(1).mean(1)
    np.testing.assert_allclose(m_cdi.numpy(), math.sqrt(math.pi / 2), rtol=1e-5)
    np.testing.assert_allclose(m_code.numpy(), math.sqrt(2 / math.pi), rtol=1e-5)
    np.testing.assert_allclose((m_cdi / m_code).numpy(), math.pi / 2, rtol=1e-5)
    a = extract(model, "pian")["pian"]
    b = extract(model, "pian", pian_scale="pia-code")["pian"]
    assert not np.allclose(a, b)


def test_pia_norm_options(model):
    p5 = extract(model, "pia")["pia"]
    p4 = extract(model, "pia", p=4)["pia"]
    p4_code = extract(model, "pia", p=4, root=False)["pia"]
    np.testing.assert_allclose(p4_code, p4 ** 4, rtol=1e-6)
    assert not np.allclose(p5, p4)


def test_squared_norm(model):
    ml = extract(model, "multiple-loss")
    ml_sq = extract(model, "multiple-loss", norm="squared")
    for k in ml:
        np.testing.assert_allclose(ml_sq[k], ml[k] ** 2, rtol=1e-5)
    # averaging over repetitions makes the two different quantities (Jensen: mean x^2 > (mean x)^2)
    dl = extract(model, "denoising-loss")["denoising-loss"]
    dl_sq = extract(model, "denoising-loss", norm="squared")["denoising-loss"]
    assert (dl_sq > dl ** 2).all()


def test_t0_options_only_change_t0(model):
    first = extract(model, "multiple-loss", timesteps=[0, 100, 900])
    clean = extract(model, "multiple-loss", timesteps=[0, 100, 900], t0="clean")
    assert not np.allclose(first["multiple-loss/0"], clean["multiple-loss/0"])
    for t in (100, 900):
        np.testing.assert_array_equal(first[f"multiple-loss/{t}"], clean[f"multiple-loss/{t}"])
    ctx = context(model, SAMPLES)
    assert D.noise_level(ctx, 0, "clean") == (1.0, 0.0)
    a, s = D.noise_level(ctx, 0, "first-step")
    assert a ** 2 == pytest.approx(1 - 0.0015) and s ** 2 == pytest.approx(0.0015)


def test_gradient_masking_options(model):
    code = extract(model, "gradient-masking", timesteps=[500])
    paper = extract(model, "gradient-masking", timesteps=[500], unmasked="noised")
    target = extract(model, "gradient-masking", timesteps=[500], target="noise")
    for other in (paper, target):
        assert not np.allclose(code["gradient-masking/500"], other["gradient-masking/500"])
    # at t=0 with t0=clean the paper's z_t is z0 itself, so both variants coincide there
    c0 = extract(model, "gradient-masking", t0="clean", timesteps=[0])
    p0 = extract(model, "gradient-masking", t0="clean", timesteps=[0], unmasked="noised")
    np.testing.assert_allclose(c0["gradient-masking/0"], p0["gradient-masking/0"], rtol=1e-6)


def test_gradient_masking_scores_only_masked_entries(model):
    """With masking_ratio 1 every entry is masked: z~ = eps, and the feature is the full norm."""
    ctx = context(model, SAMPLES)
    got = make("gradient-masking", masking_ratio=1.0, timesteps=[300]).extract(ctx)
    z0 = D.latents(ctx)
    eps = D.multi_t(ctx, [300], "first-step", True).eps
    with torch.no_grad():
        e = D.predict(ctx, eps, 300, ctx.output(CONDITION))
    ref = D.norm(eps - z0 - e, "l2").double().numpy()
    np.testing.assert_allclose(got["gradient-masking/300"], ref, rtol=1e-5)


def test_noise_optimization_final_loss_options(model):
    renoised = extract(model, "noise-optimization")
    direct = extract(model, "noise-optimization", final_loss="direct")
    np.testing.assert_allclose(renoised["noise-optimization/norm"],
                               direct["noise-optimization/norm"], rtol=1e-6)
    assert (renoised["noise-optimization/norm"] > 0).all()
    assert not np.allclose(renoised["noise-optimization/loss"], direct["noise-optimization/loss"])
    # the optimiser lowers the loss it optimises: final (direct) loss <= the t=100 loss at delta=0
    ctx = context(model, SAMPLES)
    z0 = D.latents(ctx)
    eps = ctx.randn(tuple(z0.shape[1:]), "diffusion/noise-optimization")
    with torch.no_grad():
        e = D.predict(ctx, D.q_sample(z0, D.noise_level(ctx, 100), eps), 100, ctx.output(CONDITION))
    start = D.norm(e - eps, "l2").double().numpy()
    assert (direct["noise-optimization/loss"] <= start + 1e-6).all()


def test_lbfgs_lockstep_matches_independent_scipy_runs():
    from scipy.optimize import minimize

    rng = np.random.default_rng(0)
    A = [np.diag(rng.uniform(0.5, 5, 6)) for _ in range(3)]
    b = [rng.normal(size=6) for _ in range(3)]

    def f(i, x):
        r = A[i] @ x - b[i]
        return float(r @ r + np.sum(np.cos(x))), 2 * A[i].T @ r - np.sin(x)

    calls = []

    def evaluate(idx, xs):
        calls.append(len(idx))
        return [f(i, x) for i, x in zip(idx, xs)]

    got = D.lbfgs_lockstep([np.zeros(6)] * 3, evaluate, maxiter=4)
    for i in range(3):
        ref = minimize(lambda x: f(i, x), np.zeros(6), jac=True, method="L-BFGS-B",
                       options={"maxiter": 4}).x
        np.testing.assert_array_equal(got[i], ref)
    assert max(calls) == 3  # evaluations were batched


def test_lbfgs_lockstep_propagates_errors():
    def evaluate(idx, xs):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        D.lbfgs_lockstep([np.zeros(2)] * 2, evaluate, maxiter=2)


# ---------------------------------------------------------------------------------------------
# validation


@pytest.mark.parametrize("name,params", [
    ("multiple-loss", {"norm": "l1"}),
    ("multiple-loss", {"timesteps": []}),
    ("multiple-loss", {"timesteps": [0, 0]}),
    ("multiple-loss", {"t0": "zero"}),
    ("denoising-loss", {"n_repetitions": 0}),
    ("pia", {"p": 0}),
    ("pian", {"pian_scale": "paper"}),
    ("gradient-masking", {"masking_ratio": 1.5}),
    ("gradient-masking", {"unmasked": "z_t"}),
    ("gradient-masking", {"target": "eps"}),
    ("noise-optimization", {"final_loss": "twice"}),
    ("noise-optimization", {"maxiter": 0}),
    ("noise-optimization", {"joint": "yes"}),
    ("pia", {"lp": 4}),
])
def test_bad_params_are_refused(name, params):
    with pytest.raises(ConfigError):
        CLASSES[name](**params)


def test_timestep_outside_schedule(model):
    with pytest.raises(ConfigError, match="outside the model's schedule"):
        extract(model, "multiple-loss", timesteps=[1000])


def test_noise_optimization_norm_direction_is_a_named_parameter():
    specs = {s.name: s.higher_is_member for s in D.NoiseOptimization(member_norm="smaller")
             .feature_specs()}
    assert specs == {"noise-optimization/loss": False, "noise-optimization/norm": False}
    with pytest.raises(ConfigError, match="member_norm"):
        D.NoiseOptimization(member_norm="up")


# ---------------------------------------------------------------------------------------------
# gradient precision: a half-precision model (as official loaders put it on a GPU), emulated on
# CPU by casting the UNet to float16


class HalfCapable(DiffusionModel):
    """The tiny UNet through the shared diffusers denoiser (``UNetDenoiser``), in ``dtype``."""

    defaults = {"dtype": "float32"}
    prediction_type = "epsilon"

    def __init__(self, base, unet, dtype):
        super().__init__(dtype=dtype)
        from plugins.models._diffusers_shared import DTYPES

        self.base, self.m = base, {"unet": unet.to(DTYPES[dtype])}

    def identity(self):
        return {}

    def alphas_cumprod(self):
        return self.base.alphas_cumprod()

    def provide(self, samples, needs, ctx):
        return self.base.provide(samples, needs, ctx)


def _half_models(base):
    import copy

    from plugins.models._diffusers_shared import UNetDenoiser

    cls = type("TinyUNet", (UNetDenoiser, HalfCapable), {})
    w16 = copy.deepcopy(base.unet).half()  # the weights a float16 load gives
    return cls(base, copy.deepcopy(w16).float(), "float32"), cls(base, w16, "float16")


def test_gradient_attacks_take_float32_gradients_on_a_half_model(model):
    """Default grad_precision float32: GM and NO on the float16 model equal the same weights run
    in float32 (tolerance 1e-5 relative: float32 arithmetic on identical inputs); the forward-only
    attacks stay in float16 and within 5e-3 of float32. grad_precision: model reproduces the raw
    float16 gradients, whose GM masks differ (features off by more than 1e-3)."""
    ref, half = _half_models(model)
    samples = SAMPLES[:3]
    for name in ("gradient-masking", "noise-optimization"):
        want = extract(ref, name, samples, cell=[name], maxiter=2) if name.startswith("noise") \
            else extract(ref, name, samples, cell=[name])
        kw = {"maxiter": 2} if name.startswith("noise") else {}
        got = extract(half, name, samples, cell=[name], **kw)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-5, err_msg=k)
        if name == "gradient-masking":
            raw = extract(half, name, samples, cell=[name], grad_precision="model")
            dev = max(np.max(np.abs(raw[k] - want[k]) / np.abs(want[k])) for k in want)
            assert dev > 1e-3
    for name in ("multiple-loss", "denoising-loss", "pia"):
        want, got = extract(ref, name, samples), extract(half, name, samples)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=5e-3, err_msg=k)


def test_multiple_loss_does_not_depend_on_gradient_masking_in_its_cell(model):
    _, half = _half_models(model)
    alone = extract(half, "multiple-loss", SAMPLES[:2], cell=["multiple-loss"])
    ctx = context(half, SAMPLES[:2], cell=["multiple-loss", "gradient-masking"])
    make("gradient-masking").extract(ctx)
    shared = make("multiple-loss").extract(ctx)
    for k in alone:
        np.testing.assert_array_equal(shared[k], alone[k])


def test_a_model_that_cannot_switch_precision_names_the_opt_out(model):
    half = HalfCapable(model, torch.nn.Identity(), "float16")
    with pytest.raises(ConfigError, match="grad_precision: model"):
        extract(half, "gradient-masking", SAMPLES[:2])
    with pytest.raises(ConfigError, match="grad_precision"):
        make("noise-optimization", grad_precision="float64")


def test_noise_levels_of_a_discrete_schedule_are_the_old_formula_bit_for_bit(model):
    """The contract's default ``noise_levels`` (from ``alphas_cumprod``) and ``q_sample`` give
    exactly the pre-generalisation sqrt(abar) z0 + sqrt(1 - abar) eps (AudioLDM2 / TANGO / the
    canary numbers unchanged), at every grid timestep."""
    import math

    ctx = context(model, SAMPLES)
    z0 = D.latents(ctx)
    eps = ctx.randn(tuple(z0.shape[1:]), "test")
    ac = model.alphas_cumprod()
    for t in range(0, 1000, 37):
        a = float(ac[t])
        assert D.noise_level(ctx, t) == (math.sqrt(a), math.sqrt(1.0 - a))
        assert torch.equal(D.q_sample(z0, D.noise_level(ctx, t), eps),
                           math.sqrt(a) * z0 + math.sqrt(1.0 - a) * eps)
    alpha, sigma, model_t = model.noise_levels(torch.tensor([0, 100, 999]))
    assert model_t.tolist() == [0.0, 100.0, 999.0]
    torch.testing.assert_close(alpha ** 2 + sigma ** 2, torch.ones(3, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------
# padding: latent frames that are zero-padding after a short clip are never scored


class Elementwise(DiffusionModel):
    """A denoiser that works entry by entry (ε̂ = 0.7·z_t + 0.1·c), so an entry of the padding can
    reach a feature only through the attack's own arithmetic: what the mask must prevent."""

    defaults = {}

    def __init__(self, pad_value: float):
        super().__init__()
        self.pad_value = pad_value
        betas = torch.linspace(0.0015 ** 0.5, 0.0195 ** 0.5, 1000, dtype=torch.float64) ** 2
        self._ac = torch.cumprod(1 - betas, 0)

    def identity(self):
        return {}

    def alphas_cumprod(self):
        return self._ac

    def provide(self, samples, needs, ctx):
        z = torch.stack([torch.randn(2, 8, 8, generator=TinyDiffusion._gen(s.id, "z"))
                         for s in samples])
        mask = torch.ones(len(samples), 1, 8, 1, dtype=torch.bool)
        mask[0, :, 3:] = False  # the first sample holds 3 of 8 frames of audio
        z[0, :, 3:] = self.pad_value  # whatever the padding encodes to
        return {LATENTS: z, LATENT_MASK: mask,
                CONDITION: {"c": torch.arange(len(samples), dtype=torch.float32)}}

    def predict_noise(self, z_t, t, condition):
        return 0.7 * z_t + 0.1 * condition["c"].view(-1, 1, 1, 1).to(z_t)


@pytest.mark.parametrize("name", NAMES)
def test_padding_never_reaches_a_feature(name):
    """Features of a clip with padded latent frames do not depend on what the padding encodes
    to; the unpadded clips of the same batch keep their numbers."""
    kw = {"maxiter": 3} if name == "noise-optimization" else {}
    a = extract(Elementwise(0.0), name, SAMPLES[:3], cell=[name], **kw)
    b = extract(Elementwise(25.0), name, SAMPLES[:3], cell=[name], **kw)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, err_msg=k)


def test_masked_norm_is_rescaled_to_the_full_latent():
    x = torch.ones(2, 2, 8, 4)
    mask = torch.ones(2, 1, 8, 1, dtype=torch.bool)
    mask[1, :, 2:] = False
    x[1, :, 2:] = 100.0
    full = D.norm(x, "squared", mask.expand(x.shape))
    assert full.tolist() == [64.0, 64.0]  # per-entry mean 1 either way, times N = 64
    assert D.norm(x, "l2").tolist()[0] == 8.0


def test_gradient_masking_picks_its_entries_among_audio(monkeypatch):
    picked = []
    real = D.predict

    def spy(ctx, z_t, t, condition):
        picked.append(z_t.detach().clone())
        return real(ctx, z_t, t, condition)

    model = Elementwise(0.0)
    ctx = context(model, SAMPLES[:2], cell=["gradient-masking"])
    mt = D.multi_t(ctx, [100], "first-step", need_grad=True)
    monkeypatch.setattr(D, "predict", spy)
    make("gradient-masking", timesteps=[100], unmasked="clean").extract(ctx)
    z0 = ctx.output(LATENTS)
    changed = (picked[-1] != z0) & (picked[-1] == mt.eps)  # entries replaced by the noise
    assert changed[0, :, 3:].sum() == 0  # none in the padding
    assert changed[0].sum() == int(0.2 * 2 * 3 * 8) and changed[1].sum() == int(0.2 * 128)
