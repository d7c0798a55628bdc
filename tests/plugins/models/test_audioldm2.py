"""AudioLDM2 plugin on a tiny pipeline folder in the diffusers format (model_index.json +
component subfolders), with a GPT2Model language model as in the released cvssp/audioldm2."""

import json
import shutil

import pytest
import torch

from harness.contracts import CONDITION, LATENTS, NULL_CONDITION, BatchContext
from harness.errors import ConfigError, ModelLoadError
from plugins.models._audioldm2_impl import AudioLDM2


ALL = {LATENTS, CONDITION, NULL_CONDITION}


@pytest.fixture(scope="module")
def model(tiny_audioldm2_dir):
    return AudioLDM2(checkpoint=str(tiny_audioldm2_dir))


def test_provide_shapes_and_determinism(model, tiny_audio_files, diffusion_ckpt):
    H = diffusion_ckpt
    samples = H.samples_for(tiny_audio_files)
    out = model.provide(samples, ALL, BatchContext(model, samples, seed=0))
    z = out[LATENTS]
    assert z.shape == (3, 8, 256, 16) and z.dtype == torch.float32
    cond, null = out[CONDITION], out[NULL_CONDITION]
    assert set(cond) == set(null) == {"encoder_hidden_states", "encoder_hidden_states_1",
                                      "encoder_attention_mask_1"}
    assert cond["encoder_hidden_states"].shape == (3, 8, 16)
    assert cond["encoder_hidden_states_1"].shape[0] == 3
    assert cond["encoder_hidden_states_1"].shape[2] == 32
    for k in cond:
        assert null[k].shape == cond[k].shape
    # trained null: zeros for the GPT-2 stream, T5("") = one token (</s>) unmasked
    assert torch.all(null["encoder_hidden_states"] == 0)
    assert null["encoder_attention_mask_1"].sum(1).tolist() == [1, 1, 1]
    assert not torch.equal(cond["encoder_hidden_states"], null["encoder_hidden_states"])
    # latents: posterior mean × scaling factor, identical on a second pass and batch-invariant
    again = model.provide(samples[1:2], {LATENTS, CONDITION}, BatchContext(model, samples[1:2], 5))
    torch.testing.assert_close(again[LATENTS][0], z[1], atol=1e-4, rtol=1e-4)
    same = model.provide(samples, {LATENTS}, BatchContext(model, samples, seed=9))[LATENTS]
    assert torch.equal(same, z)
    torch.testing.assert_close(again[CONDITION]["encoder_hidden_states"][0],
                               cond["encoder_hidden_states"][1], atol=1e-5, rtol=1e-5)
    from plugins.models import _audio

    mel = _audio.mel_for("audioldm2", tiny_audio_files[0])[:, None]
    with torch.no_grad():
        ref = model.m["vae"].encode(mel).latent_dist.mean * H.SCALE_AUDIOLDM2
    torch.testing.assert_close(z[:1], ref, atol=2e-4, rtol=1e-3)


def test_condition_matches_diffusers_encode_prompt(model, tiny_audioldm2_dir, diffusion_ckpt):
    """Our GPT-2 loop equals the pipeline's generate_language_model, run with the documented
    workaround (the same weights loaded as GPT2LMHeadModel)."""
    H = diffusion_ckpt
    from diffusers import AudioLDM2Pipeline
    from transformers import GPT2LMHeadModel

    lm = GPT2LMHeadModel.from_pretrained(tiny_audioldm2_dir / "language_model")
    pipe = AudioLDM2Pipeline.from_pretrained(tiny_audioldm2_dir, language_model=lm)
    prompt = H.CAPTIONS[1]
    with torch.no_grad():
        t5, mask, gen = pipe.encode_prompt(prompt, device="cpu", num_waveforms_per_prompt=1,
                                           do_classifier_free_guidance=True)
        ours = model.encode_text([prompt])
    torch.testing.assert_close(ours["encoder_hidden_states"], gen[1:], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours["encoder_hidden_states_1"], t5[1:], atol=1e-5, rtol=1e-4)
    assert torch.equal(ours["encoder_attention_mask_1"].cpu(), mask[1:])
    diff = AudioLDM2(checkpoint=str(tiny_audioldm2_dir), null_condition="diffusers")
    with torch.no_grad():
        null = diff.null_condition(diff.encode_text([prompt]), 1)
    torch.testing.assert_close(null["encoder_hidden_states"], gen[:1], atol=1e-5, rtol=1e-4)
    n = int(mask[0].sum())
    torch.testing.assert_close(null["encoder_hidden_states_1"][:, :n], t5[:1, :n], atol=1e-5,
                               rtol=1e-4)


def test_predict_noise_gradient_and_schedule(model, tiny_audio_files, diffusion_ckpt):
    H = diffusion_ckpt
    samples = H.samples_for(tiny_audio_files[:2])
    ctx = BatchContext(model, samples, seed=0)
    out = model.provide(samples, ALL, ctx)
    z0 = out[LATENTS][..., :64, :]  # a crop keeps the test fast; the UNet is size-agnostic
    eps = ctx.randn(z0.shape[1:], "test")
    t = torch.tensor([10, 900])
    a = model.alphas_cumprod()
    assert a.dtype == torch.float64 and a.shape == (1000,)
    torch.testing.assert_close(a.float(), model.scheduler.alphas_cumprod, atol=1e-6, rtol=1e-5)
    betas = torch.linspace(0.0015 ** 0.5, 0.0195 ** 0.5, 1000, dtype=torch.float64) ** 2
    torch.testing.assert_close(a, torch.cumprod(1 - betas, 0), atol=1e-6, rtol=1e-6)
    z_t = (a[t].sqrt().view(-1, 1, 1, 1) * z0 + (1 - a[t]).sqrt().view(-1, 1, 1, 1) * eps).float()
    z_t.requires_grad_(True)
    pred = model.predict_noise(z_t, t, out[CONDITION])
    assert pred.shape == z_t.shape
    pred.pow(2).sum().backward()
    assert z_t.grad is not None and z_t.grad.abs().sum() > 0
    with torch.no_grad():  # ε-prediction: the UNet output is returned as it is
        raw = model.m["unet"](z_t, t, **out[CONDITION]).sample
        torch.testing.assert_close(pred.detach(), raw)
        p_null = model.predict_noise(z_t[:1], 10, {k: v[:1] for k, v in out[NULL_CONDITION].items()})
    assert not torch.allclose(pred[:1].detach(), p_null)


def test_sampled_latents_are_seeded_per_sample(tiny_audioldm2_dir, tiny_audio_files,
                                               diffusion_ckpt):
    H = diffusion_ckpt
    m = AudioLDM2(checkpoint=str(tiny_audioldm2_dir), latent_sampling="sample")
    samples = H.samples_for(tiny_audio_files[:2])
    z1 = m.provide(samples, {LATENTS}, BatchContext(m, samples, seed=3))[LATENTS]
    z2 = m.provide(samples[1:], {LATENTS}, BatchContext(m, samples[1:], seed=3))[LATENTS]
    z3 = m.provide(samples[1:], {LATENTS}, BatchContext(m, samples[1:], seed=4))[LATENTS]
    torch.testing.assert_close(z1[1:], z2, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(z2, z3)


def test_identity_hashes_configs_and_weight_contents(tiny_audioldm2_dir, tmp_path):
    a = AudioLDM2(checkpoint=str(tiny_audioldm2_dir)).identity()
    copy = tmp_path / "copy"
    shutil.copytree(tiny_audioldm2_dir, copy)
    b = AudioLDM2(checkpoint=str(copy)).identity()
    assert a["content_hash"] == b["content_hash"]
    cfg = copy / "scheduler" / "scheduler_config.json"
    data = json.loads(cfg.read_text())
    data["beta_end"] = 0.02
    cfg.write_text(json.dumps(data))
    assert AudioLDM2(checkpoint=str(copy)).identity()["content_hash"] != a["content_hash"]
    # a fine-tune saved over the weights: same names and sizes, new identity (issue #9)
    before = AudioLDM2(checkpoint=str(copy)).identity()["content_hash"]
    weights = sorted(p for p in (copy / "unet").iterdir() if p.suffix in (".safetensors", ".bin"))
    raw = bytearray(weights[0].read_bytes())
    raw[-8] ^= 1
    weights[0].write_bytes(bytes(raw))
    assert AudioLDM2(checkpoint=str(copy)).identity()["content_hash"] != before


def test_bad_params_and_missing_checkpoint(tiny_audioldm2_dir, tmp_path):
    with pytest.raises(ConfigError, match="checkpont|Did you mean"):
        AudioLDM2(checkpont=str(tiny_audioldm2_dir))
    with pytest.raises(ConfigError, match="null_condition"):
        AudioLDM2(checkpoint=str(tiny_audioldm2_dir), null_condition="zeros")
    with pytest.raises(ConfigError, match="checkpoint"):
        AudioLDM2()
    with pytest.raises(ModelLoadError, match="model_index.json"):
        AudioLDM2(checkpoint=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="model_index.json"):
        AudioLDM2(checkpoint=str(tmp_path / "empty"))
    broken = tmp_path / "broken"
    shutil.copytree(tiny_audioldm2_dir, broken)
    shutil.rmtree(broken / "unet")
    with pytest.raises(ModelLoadError, match="unet"):
        AudioLDM2(checkpoint=str(broken))


@pytest.mark.slow
def test_lm_head_checkpoint_loads_too(tmp_path, tiny_audio_files, diffusion_ckpt):
    H = diffusion_ckpt
    d = H.write_tiny_audioldm2(tmp_path / "lmhead", language_model_class="GPT2LMHeadModel")
    m = AudioLDM2(checkpoint=str(d))
    assert type(m.m["language_model"]).__name__ == "GPT2LMHeadModel"
    samples = H.samples_for(tiny_audio_files[:1])
    out = m.provide(samples, {CONDITION}, BatchContext(m, samples, 0))
    assert out[CONDITION]["encoder_hidden_states"].shape == (1, 8, 16)


def test_registered_through_the_entry_point():
    from harness import plugins

    info = plugins.get("model", "audioldm2")
    assert info.family == "diffusion" and info.load() is AudioLDM2


# -- hostile checkpoints (issue #15): nothing in a pickle runs --------------------------------


@pytest.mark.slow
def test_code_pickled_into_a_component_never_runs(tmp_path, tiny_audioldm2_dir):
    import hostile

    d = tmp_path / "ldm2"
    shutil.copytree(tiny_audioldm2_dir, d)
    for f in (d / "unet").glob("*.safetensors"):
        f.unlink()
    marker = tmp_path / "ran"
    hostile.code_pickle(d / "unet" / "diffusion_pytorch_model.bin", marker, "zip")
    with pytest.raises(ModelLoadError, match="AudioLDM2 unet weights"):
        AudioLDM2(checkpoint=str(d)).m
    assert not marker.exists()



def test_padded_latent_frames_are_masked_and_coverage_declared(model, tiny_audio_files,
                                                                diffusion_ckpt):
    """2 s and 3 s clips in the 10.24 s window: latent frames after the audio are padding (40 ms
    each, 256 frames); the 11 s clip fills the window and is cut."""
    from harness.contracts import LATENT_MASK

    samples = diffusion_ckpt.samples_for(tiny_audio_files)
    out = model.provide(samples, {LATENTS, LATENT_MASK}, BatchContext(model, samples, 0))
    mask = out[LATENT_MASK]
    assert mask.dtype == torch.bool and mask.shape == (3, 1, 256, 1)
    assert mask.sum((1, 2, 3)).tolist() == [50, 75, 256]  # ceil(s / 10.24 * 256)
    wins = [model.scoring_windows(s)[0] for s in samples]
    assert [round(w.seconds, 3) for w in wins] == [2.0, 3.0, 10.24]
    incl = AudioLDM2(checkpoint=model.params["checkpoint"], padding="include")
    assert incl.latent_mask(samples, out[LATENTS]).all()
    with pytest.raises(ConfigError, match="padding"):
        AudioLDM2(checkpoint=model.params["checkpoint"], padding="drop")


# -- strict loading (issue #15): from_pretrained alone fills a missing weight at random --------


def _drop_one_add_one(folder):
    """Delete one tensor of the component's safetensors and add a foreign one; return both keys."""
    from safetensors.torch import load_file, save_file

    (f,) = folder.glob("*.safetensors")
    state = load_file(f)
    gone = sorted(k for k in state if not any(t in k for t in ("embed", "shared", "wte", "wpe")))[-1]
    del state[gone]
    state["mystery_block.weight"] = torch.zeros(2)
    save_file(state, f)
    return gone


@pytest.mark.parametrize("component", ["vae", "unet", "text_encoder", "text_encoder_2",
                                       "projection_model", "language_model"])
def test_a_missing_and_a_foreign_weight_are_refused_by_name(model, tiny_audioldm2_dir, tmp_path,
                                                            component):
    from plugins.models._diffusers_shared import StrictLoadError

    assert set(model.m) >= {"vae", "unet", "language_model"}  # the intact folder loads
    d = tmp_path / component
    shutil.copytree(tiny_audioldm2_dir, d)
    gone = _drop_one_add_one(d / component)
    with pytest.raises(StrictLoadError) as err:
        AudioLDM2(checkpoint=str(d)).m
    msg = str(err.value)
    assert f"AudioLDM2 {component}:" in msg
    assert f"missing 1 key(s): {gone}" in msg
    assert "unexpected 1 key(s): mystery_block.weight" in msg
