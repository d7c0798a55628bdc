"""The ``stable-audio-open`` plugin on a tiny StableAudioPipeline folder written by
``save_pretrained`` (stable_audio_fixtures), checked against diffusers' own pipeline: the
condition and null condition its ``__call__`` feeds the DiT, and one denoiser call through the
pipeline scheduler's EDM preconditioning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from harness.contracts import CONDITION, LATENTS, NULL_CONDITION, BatchContext
from stable_audio_fixtures import FRAMES, HOP, RATE, WINDOW_SECONDS, write_tiny_stable_audio
from tiny_parts import captioned, write_clips

ALL = {LATENTS, CONDITION, NULL_CONDITION}
CAPTIONS = ("a dog barks twice", "rain on a tin roof", "")


@pytest.fixture(scope="module")
def sao_dir(tmp_path_factory):
    return write_tiny_stable_audio(tmp_path_factory.mktemp("sao") / "ckpt")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Mixed rates, channels and lengths: 0.6 s (padded into the 1.024 s window), 2.5 s stereo
    (cropped), 1.5 s at 44.1 kHz, 3 channels."""
    return write_clips(tmp_path_factory.mktemp("sao-clips"),
                       [(16000, 1, 0.6), (22050, 2, 2.5), (44100, 3, 1.5)],
                       freqs=[150, 350, 550], noise=0.05, seed=2)


def _samples(paths):
    return captioned(paths, CAPTIONS)


@pytest.fixture(scope="module")
def model(sao_dir):
    from plugins.models._stable_audio_impl import StableAudioOpen

    return StableAudioOpen(checkpoint=str(sao_dir))


@pytest.fixture(scope="module")
def pipe(sao_dir):
    from diffusers import StableAudioPipeline

    return StableAudioPipeline.from_pretrained(str(sao_dir))


def _captured_call(pipe, prompt, seconds_total, steps=2):
    """The DiT inputs of the pipeline's first denoising step (CFG on, no negative prompt)."""
    calls = []
    dit = pipe.transformer
    original = dit.forward

    def spy(*args, **kw):
        calls.append((args, kw))
        return original(*args, **kw)

    dit.forward = spy
    try:
        pipe(prompt, audio_end_in_s=seconds_total, num_inference_steps=steps, guidance_scale=7.0,
             output_type="latent", generator=torch.Generator().manual_seed(0))
    finally:
        del dit.forward
    return calls[0]


def test_registered_and_documented():
    from harness import plugins
    from harness.plugin_docs import param_docs

    info = plugins.get("model", "stable-audio-open")
    assert info.family == "diffusion"
    docs = param_docs(info.load())
    assert all(docs.values()), docs


def test_condition_and_null_are_the_pipelines(model, pipe, clips):
    """Our condition rows equal the pipeline's ``encode_prompt`` + ``encode_duration`` for the
    same prompt and seconds_total; for a clip whose total fits the window (``__call__`` refuses
    longer ones, though training saw whole-file totals up to 512 s) both halves of what
    ``__call__`` feeds its DiT: the conditional one and the unconditional one (our null)."""
    samples = _samples(clips)
    out = model.provide(samples, {CONDITION, NULL_CONDITION}, BatchContext(model, samples, 0))
    cond, null = out[CONDITION], out[NULL_CONDITION]
    totals = [math.ceil(sf.info(p).frames / sf.info(p).samplerate) for p in clips]
    assert totals == [1, 3, 2]
    with torch.no_grad():
        for i, s in enumerate(samples):
            text = pipe.encode_prompt(s.caption, "cpu", False)
            start, end = pipe.encode_duration(0.0, float(totals[i]), "cpu", False, 1)
            torch.testing.assert_close(cond["encoder_hidden_states"][i:i + 1],
                                       torch.cat([text, start, end], 1), atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(cond["global_hidden_states"][i:i + 1],
                                       torch.cat([start, end], 2), atol=1e-6, rtol=1e-5)
    (args, kw) = _captured_call(pipe, samples[0].caption, float(totals[0]))
    enc, glob = kw["encoder_hidden_states"], kw["global_hidden_states"]
    assert enc.shape[0] == 2                                        # [uncond, cond]
    torch.testing.assert_close(cond["encoder_hidden_states"][0], enc[1], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(cond["global_hidden_states"][0], glob[1], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(null["encoder_hidden_states"][0], enc[0], atol=0, rtol=0)
    torch.testing.assert_close(null["global_hidden_states"][0], glob[0], atol=1e-6, rtol=1e-5)
    assert torch.all(null["encoder_hidden_states"] == 0)
    assert torch.equal(null["global_hidden_states"], cond["global_hidden_states"])
    # timing differs between clips of different length even with the same caption
    a = model.condition_for(["x"], [1.0])["global_hidden_states"]
    b = model.condition_for(["x"], [3.0])["global_hidden_states"]
    assert not torch.allclose(a, b)


def test_one_denoiser_call_equals_the_pipelines_preconditioned_dit(model, pipe, clips):
    """epsilon from our predict_noise at grid t equals what diffusers' scheduler implies for
    the same noised latent: the VE sample x = z0 + sigma_EDM eps (sigma_EDM = tan(tau pi/2)),
    ``precondition_inputs`` -> DiT at ``precondition_noise(sigma_EDM)`` -> ``precondition_outputs``
    (the denoised z0_hat) -> eps = (x - z0_hat) / sigma_EDM; with the pipeline's own rotary
    embedding and conditions."""
    samples = _samples(clips)
    ctx = BatchContext(model, samples, 0)
    out = model.provide(samples, ALL, ctx)
    z0 = out[LATENTS]
    assert z0.shape == (3, 4, FRAMES)
    eps = ctx.randn(tuple(z0.shape[1:]), "test")
    sched = pipe.scheduler
    for t in (100, 500, 900):
        alpha, sigma, tau = model.noise_levels(torch.tensor([t] * 3))
        assert tau[0] == t / 1000
        z_t = (alpha.float().view(-1, 1, 1) * z0 + sigma.float().view(-1, 1, 1) * eps)
        with torch.no_grad():
            ours = model.predict_noise(z_t, torch.tensor([t] * 3), out[CONDITION])
            s_edm = torch.tan(tau * math.pi / 2).float()
            x = z0 + s_edm.view(-1, 1, 1) * eps
            (args, kw) = _captured_call(pipe, samples[0].caption, 1.0)
            ref = []
            for i in range(3):
                scaled = sched.precondition_inputs(x[i:i + 1], s_edm[i])
                torch.testing.assert_close(scaled, z_t[i:i + 1], atol=1e-5, rtol=1e-5)
                t_model = sched.precondition_noise(s_edm[i]).reshape(1)
                v = pipe.transformer(scaled, t_model, encoder_hidden_states=out[CONDITION][
                    "encoder_hidden_states"][i:i + 1], global_hidden_states=out[CONDITION][
                    "global_hidden_states"][i:i + 1], rotary_embedding=kw["rotary_embedding"],
                    return_dict=False)[0]
                den = sched.precondition_outputs(x[i:i + 1], v, s_edm[i])
                ref.append((x[i:i + 1] - den) / s_edm[i])
        torch.testing.assert_close(ours, torch.cat(ref), atol=5e-4, rtol=1e-3)
    # gradients reach z_t (the white-box attacks)
    z = z_t.clone().requires_grad_(True)
    model.predict_noise(z, torch.tensor([900] * 3), out[CONDITION]).pow(2).sum().backward()
    assert z.grad.abs().sum() > 0


def test_latents_follow_the_training_crop(model, clips):
    """Stereo at the VAE rate, the window's first samples, zero-padded; the posterior mean, the
    same whatever the batch."""
    from plugins.models import _audio

    w = model.waveform(clips[0])                                    # 0.6 s mono at 16 kHz
    assert w.shape == (2, FRAMES * HOP) and torch.equal(w[0], w[1])
    n = int(0.6 * RATE)
    assert torch.all(w[:, n + 8:] == 0) and w[:, : n - 8].abs().max() > 0.1
    x, sr = _audio.read_audio(clips[2])                             # 3 channels -> first two
    ref = _audio._resample(x[:2], sr, RATE)[:, :FRAMES * HOP]
    torch.testing.assert_close(model.waveform(clips[2]), ref)
    samples = _samples(clips)
    z = model.provide(samples, {LATENTS}, BatchContext(model, samples, 0))[LATENTS]
    one = model.provide(samples[1:2], {LATENTS}, BatchContext(model, samples[1:2], 3))[LATENTS]
    torch.testing.assert_close(one[0], z[1], atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        mean = model.m["vae"].encode(model.waveform(clips[1])[None]).latent_dist.mean
    torch.testing.assert_close(z[1:2], mean, atol=1e-5, rtol=1e-5)
    assert WINDOW_SECONDS == pytest.approx(1.024)


def test_time_maps(model, sao_dir):
    from plugins.models._stable_audio_impl import StableAudioOpen, audioldm2_abar

    a, s, tau = model.noise_levels(torch.tensor([0, 100, 999]))
    assert a[0] == 1.0 and s[0] == 0.0 and tau.tolist() == [0.0, 0.1, 0.999]
    torch.testing.assert_close(a ** 2 + s ** 2, torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(model.alphas_cumprod()[[0, 100, 999]], a ** 2)
    snr = StableAudioOpen(checkpoint=str(sao_dir), time_map="audioldm2-snr")
    a2, _, tau2 = snr.noise_levels(torch.tensor([0, 100, 900]))
    torch.testing.assert_close(a2 ** 2, audioldm2_abar()[[0, 100, 900]])
    assert (tau2 > 0).all() and tau2[1] < tau2[2] < 1


def test_all_six_diffusion_attacks_run(model, clips):
    from harness import plugins
    from plugins.attacks.diffusion import ATTACKS

    assert len(ATTACKS) == 6
    samples = _samples(clips)
    attacks = []
    for name in ATTACKS:
        cls = plugins.get("attack", name).load()
        params = {"maxiter": 2} if name == "noise-optimization" else {}
        attacks.append(cls(**params))
    ctx = BatchContext(model, samples, 0, attacks=list(ATTACKS))
    ctx.outputs = model.provide(samples, set().union(*(a.needs() for a in attacks)), ctx)
    for a in attacks:
        feats = a.extract(ctx)
        assert set(feats) == {s.name for s in a.feature_specs()}
        for k, v in feats.items():
            assert v.shape == (3,) and np.isfinite(v).all(), (k, v)


def test_strict_loading_names_the_keys(sao_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from plugins.models._diffusers_shared import StrictLoadError
    from plugins.models._stable_audio_impl import StableAudioOpen

    for kind in ("missing", "unexpected", "mismatched"):
        d = tmp_path / kind
        shutil.copytree(sao_dir, d)
        f = next((d / "transformer").glob("*.safetensors"))
        state = load_file(f)
        if kind == "missing":
            del state["proj_out.weight"]
        elif kind == "unexpected":
            state["extra.weight"] = torch.zeros(2)
        else:
            state["proj_out.weight"] = torch.zeros(3, 3)
        save_file(state, f)
        m = StableAudioOpen(checkpoint=str(d))
        with pytest.raises(StrictLoadError, match="transformer"):
            m.m
    d = tmp_path / "t5"
    shutil.copytree(sao_dir, d)
    f = next((d / "text_encoder").glob("*.safetensors"))
    state = load_file(f)
    state.pop(next(k for k in state if "layer_norm" in k))
    save_file(state, f)
    with pytest.raises(StrictLoadError, match=r"text_encoder.*missing 1 key\(s\): encoder\."):
        StableAudioOpen(checkpoint=str(d)).m


def test_bad_params_and_folders(sao_dir, tmp_path):
    import json
    import shutil

    from harness.errors import ConfigError, ModelLoadError
    from plugins.models._stable_audio_impl import StableAudioOpen

    with pytest.raises(ConfigError, match="checkpoint"):
        StableAudioOpen()
    with pytest.raises(ConfigError, match="time_map"):
        StableAudioOpen(checkpoint=str(sao_dir), time_map="cosine")
    with pytest.raises(ConfigError, match="segment_seconds"):
        StableAudioOpen(checkpoint=str(sao_dir), segment_seconds=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="model_index.json"):
        StableAudioOpen(checkpoint=str(tmp_path / "empty"))
    d = tmp_path / "eps"
    shutil.copytree(sao_dir, d)
    cfg = d / "scheduler" / "scheduler_config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "prediction_type": "epsilon"}))
    with pytest.raises(ModelLoadError, match="v-prediction"):
        StableAudioOpen(checkpoint=str(d))
    short = StableAudioOpen(checkpoint=str(sao_dir), segment_seconds=0.5)
    assert short.window_samples() == 4000 - 4000 % HOP


def test_identity_hashes_weights(sao_dir, tmp_path):
    import shutil

    from plugins.models._stable_audio_impl import StableAudioOpen

    a = StableAudioOpen(checkpoint=str(sao_dir)).identity()
    d = tmp_path / "copy"
    shutil.copytree(sao_dir, d)
    assert StableAudioOpen(checkpoint=str(d)).identity()["content_hash"] == a["content_hash"]
    f = next((d / "vae").glob("*.safetensors"))
    raw = bytearray(f.read_bytes())
    raw[-3] ^= 1
    f.write_bytes(bytes(raw))
    assert StableAudioOpen(checkpoint=str(d)).identity()["content_hash"] != a["content_hash"]


@pytest.mark.parametrize("dtype,tol", [("float16", 0.01), ("bfloat16", 0.05)])
def test_reduced_precision_is_close_to_float32(sao_dir, model, clips, dtype, tol):
    """VAE and DiT in float16 / bfloat16 (as the pipeline runs on a GPU; T5 kept float32):
    latents and one epsilon prediction within ``tol`` (relative L2) of float32."""
    from plugins.models._stable_audio_impl import StableAudioOpen

    low = StableAudioOpen(checkpoint=str(sao_dir), dtype=dtype)
    samples = _samples(clips)
    ref = model.provide(samples, ALL, BatchContext(model, samples, 0))
    got = low.provide(samples, ALL, BatchContext(low, samples, 0))
    assert got[LATENTS].dtype == torch.float32                      # posterior mean, as float
    rel = lambda a, b: float((a.float() - b.float()).norm() / b.float().norm())  # noqa: E731
    assert rel(got[LATENTS], ref[LATENTS]) < tol
    assert got[CONDITION]["encoder_hidden_states"].dtype == getattr(torch, dtype)
    z = ref[LATENTS]
    t = torch.tensor([300] * 3)
    with torch.no_grad():
        e_ref = model.predict_noise(z, t, ref[CONDITION])
        e_low = low.predict_noise(z, t, got[CONDITION])
    assert e_low.dtype == torch.float32 and rel(e_low, e_ref) < tol
    # the gradient attacks' float32 passes: the same weights, float32 arithmetic
    with low.denoiser_precision("float32"), torch.no_grad():
        e_32 = low.predict_noise(z, t, got[CONDITION])
    assert low.denoiser_dtype() == dtype  # back to the suite's dtype after
    assert rel(e_32, e_ref) < tol and not torch.equal(e_32, e_low)


@pytest.mark.slow
@pytest.mark.skipif(__import__("shutil").which("espeak-ng") is None,
                    reason="espeak-ng is installed by scripts/setup.sh")
def test_a_suite_runs_stable_audio_open_on_attribution_lists_of_speech(sao_dir, tmp_path):
    """End to end through the runner: the attribution-list dataset (lists + downloads in the
    released naming) feeding stable-audio-open, on espeak-ng speech in four voices and lengths
    from 0.4 s to several seconds (data nothing here was tuned on). Random weights: the AUCs are
    only checked to exist, with their chance level (0.5) and permutation band reported."""
    import csv
    import subprocess

    from harness.testing import run_suite

    words = "river stone light morning garden window silver paper orange quiet".split()
    voices = ("en-us", "de", "fr", "es")
    rows = []
    for side, root in (("members", tmp_path / "dl" / "freesound"),
                       ("nonmembers", tmp_path / "new" / "freesound")):
        root.mkdir(parents=True)
        for i in range(6):
            sid = 1000 + i if side == "members" else 900000 + i
            first = 0 if side == "members" else 5
            text = " ".join((words * 2)[first: first + 1 + (i * 3) % 10])
            wav = root / f"{sid}__user{i}__clip.wav"
            subprocess.run(["espeak-ng", "-v", voices[i % 4], "-w", str(wav), text], check=True,
                           capture_output=True)
            (root / f"{sid}__user{i}__clip.txt").write_text(text)
            if side == "members":
                rows.append([sid, f"https://freesound.org/people/user{i}/sounds/{sid}/",
                             "clip.wav", f"user{i}", "CC0"])
    lst = tmp_path / "freesound_dataset_attribution2.csv"
    with open(lst, "w", newline="") as fh:
        csv.writer(fh).writerows([["id", "url", "title", "author", "license"], *rows])
    params = {"lists": {"freesound": str(lst)}, "recordings": str(tmp_path / "dl"),
              "nonmembers": str(tmp_path / "new")}
    suite = {
        "name": "sao-speech", "seed": 0, "batch_size": 4,
        "models": {"sao": {"plugin": "stable-audio-open", "params": {"checkpoint": str(sao_dir)}}},
        "data": {"speech": {side: {"source": "attribution-list", "split": side, "params": params}
                            for side in ("members", "nonmembers")}},
        "attacks": [{"plugin": "denoising-loss", "params": {"n_repetitions": 2}},
                    {"plugin": "pia"}],
        "mia": {"subsamples": 20}, "mlflow": {"enabled": False},
    }
    res = run_suite(suite, tmp_path / "work")
    for attack in ("denoising-loss", "pia"):
        r = res.mia_result(attack)
        assert 0.0 <= r["auc"] <= 1.0
    feats = res.features("denoising-loss")
    assert all(np.isfinite(np.asarray(v, dtype=float)).all() for v in feats.values()
               if np.asarray(v).dtype.kind == "f")


def test_gradient_attacks_take_float32_gradients_on_half_weights(sao_dir, clips):
    """Gradient Masking and Noise Optimization default to ``grad_precision: float32``: on a
    float16 Stable Audio Open the DiT switches to a float32 copy of the same weights for them
    (``denoiser_in``), and back."""
    from harness import plugins
    from plugins.models._stable_audio_impl import StableAudioOpen

    m = StableAudioOpen(checkpoint=str(sao_dir), dtype="float16")
    samples = _samples(clips)
    gm = plugins.get("attack", "gradient-masking").load()(timesteps=[100, 600])
    no = plugins.get("attack", "noise-optimization").load()(maxiter=2)
    ctx = BatchContext(m, samples, 0, attacks=["gradient-masking", "noise-optimization"])
    ctx.outputs = m.provide(samples, gm.needs() | no.needs(), ctx)
    for a in (gm, no):
        for k, v in a.extract(ctx).items():
            assert np.isfinite(v).all(), (k, v)
    assert m.denoiser_dtype() == "float16"
    with m.denoiser_precision("float32"):
        from plugins.models._diffusers_shared import denoiser_in

        dit, dtype = denoiser_in(m, "transformer")
        assert dtype == torch.float32 and dit is not m.m["transformer"]
        assert next(dit.parameters()).dtype == torch.float32
