"""TANGO plugin on a tiny checkpoint in the official declare-lab/tango layout: three JSON
configs and three torch-pickled state dicts with the original key names."""

import json
import shutil

import pytest
import torch

from harness.contracts import CONDITION, LATENTS, NULL_CONDITION, BatchContext
from harness.errors import ConfigError, ModelLoadError
from plugins.models import _audio
from plugins.models._tango_impl import Tango, map_vae_key


ALL = {LATENTS, CONDITION, NULL_CONDITION}


def make(d, **kw):
    return Tango(checkpoint=str(d), tokenizer=str(d / "flan-t5"), **kw)


@pytest.fixture(scope="module")
def model(tiny_tango_dir):
    return make(tiny_tango_dir)


def test_vae_mapping_reproduces_the_original_autoencoder(model, tiny_tango_dir, tiny_audio_files,
                                                          diffusion_ckpt):
    """Same weights, original module tree vs mapped diffusers AutoencoderKL: same outputs."""
    H = diffusion_ckpt
    ref = H.OriginalAutoencoder(H.tiny_tango_ddconfig(), embed_dim=8)
    state = torch.load(tiny_tango_dir / "pytorch_model_vae.bin", weights_only=True)
    ref.load_state_dict({k: v for k, v in state.items() if not k.startswith("vocoder.")})
    mel = _audio.mel_for("tango", tiny_audio_files[1], mel_basis=model.m["mel_basis"])[:, None]
    mel = mel[:, :, 100:356]  # a 256-frame crop: the VAE is convolutional, and this is 4x cheaper
    vae = model.m["vae"]
    with torch.no_grad():
        moments = ref.encode_moments(mel)
        dist = vae.encode(mel).latent_dist
        torch.testing.assert_close(dist.mean, moments[:, :8], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(dist.logvar, moments[:, 8:].clamp(-30, 20), atol=1e-4, rtol=1e-4)
        z = torch.randn(1, 8, 32, 16)
        torch.testing.assert_close(vae.decode(z).sample, ref.decode(z), atol=1e-4, rtol=1e-4)


def test_provide_shapes_determinism_and_nulls(model, tiny_tango_dir, tiny_audio_files,
                                              diffusion_ckpt):
    H = diffusion_ckpt
    samples = H.samples_for(tiny_audio_files)
    out = model.provide(samples, ALL, BatchContext(model, samples, seed=0))
    z = out[LATENTS]
    assert z.shape == (3, 8, 256, 16) and z.dtype == torch.float32
    mel = _audio.mel_for("tango", tiny_audio_files[0], mel_basis=model.m["mel_basis"])[:, None]
    with torch.no_grad():
        ref = model.m["vae"].encode(mel).latent_dist.mean * H.SCALE_TANGO
    torch.testing.assert_close(z[:1], ref, atol=1e-4, rtol=1e-4)
    assert torch.equal(model.provide(samples, {LATENTS}, BatchContext(model, samples, 1))[LATENTS], z)
    cond, null = out[CONDITION], out[NULL_CONDITION]
    assert set(cond) == set(null) == {"encoder_hidden_states", "encoder_attention_mask"}
    assert cond["encoder_hidden_states"].shape[:1] == (3,) and cond["encoder_hidden_states"].shape[2] == 32
    assert cond["encoder_attention_mask"].dtype == torch.bool
    for k in cond:
        assert null[k].shape == cond[k].shape
    # t5-empty: T5("") = "</s>" only, padded to the caption length with its own mask
    assert null["encoder_attention_mask"].sum(1).tolist() == [1, 1, 1]
    assert not torch.allclose(cond["encoder_hidden_states"], null["encoder_hidden_states"])
    zeros = make(tiny_tango_dir, null_condition="zeros")
    zn = zeros.provide(samples, {CONDITION, NULL_CONDITION}, BatchContext(zeros, samples, 0))
    assert torch.all(zn[NULL_CONDITION]["encoder_hidden_states"] == 0)
    assert torch.equal(zn[NULL_CONDITION]["encoder_attention_mask"],
                       zn[CONDITION]["encoder_attention_mask"])


def test_v_prediction_converted_to_epsilon(model, tiny_audio_files, diffusion_ckpt):
    H = diffusion_ckpt
    samples = H.samples_for(tiny_audio_files[:2])
    ctx = BatchContext(model, samples, seed=0)
    out = model.provide(samples, ALL, ctx)
    a = model.alphas_cumprod()
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    torch.testing.assert_close(a, torch.cumprod(1 - betas, 0), atol=1e-6, rtol=1e-6)
    z0 = out[LATENTS][..., :64, :]  # a crop keeps the test fast; the UNet is size-agnostic
    t = torch.tensor([100, 700])
    eps = ctx.randn(z0.shape[1:], "test")
    s = a[t].float().view(-1, 1, 1, 1)
    z_t = (s.sqrt() * z0 + (1 - s).sqrt() * eps).requires_grad_(True)
    pred = model.predict_noise(z_t, t, out[CONDITION])
    pred.square().mean().backward()
    assert z_t.grad is not None and z_t.grad.abs().sum() > 0
    with torch.no_grad():
        v = model.m["unet"](z_t, t, encoder_hidden_states=out[CONDITION]["encoder_hidden_states"],
                            encoder_attention_mask=out[CONDITION]["encoder_attention_mask"]).sample
    expected = s.sqrt() * v + (1 - s).sqrt() * z_t.detach()
    torch.testing.assert_close(pred.detach(), expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(pred.detach(), v)
    with torch.no_grad():
        p_null = model.predict_noise(z_t, t, out[NULL_CONDITION])
    assert not torch.allclose(p_null, pred.detach())


def test_identity_and_config_lookup(model, tiny_tango_dir, tmp_path):
    ident = model.identity()
    assert ident["unet_config"] == "configs/diffusion_model_config.json"
    assert ident["scheduler_config"] == "scheduler/scheduler_config.json"
    copy = tmp_path / "copy"
    shutil.copytree(tiny_tango_dir, copy)
    assert make(copy).identity()["content_hash"] == ident["content_hash"]
    shutil.rmtree(copy / "scheduler")  # falls back to the built-in SD-2.1 schedule
    fallback = make(copy)
    assert fallback.identity()["scheduler_config"].startswith("built-in")
    torch.testing.assert_close(fallback.alphas_cumprod(), model.alphas_cumprod())
    assert fallback.prediction_type == "v_prediction"
    assert fallback.identity()["content_hash"] != ident["content_hash"]


def _rewrite_vae(src, dst, edit):
    shutil.copytree(src, dst)
    state = torch.load(dst / "pytorch_model_vae.bin", weights_only=True)
    edit(state)
    torch.save(state, dst / "pytorch_model_vae.bin")
    return make(dst)


def test_vae_key_errors_name_the_keys(tiny_tango_dir, tmp_path):
    m = _rewrite_vae(tiny_tango_dir, tmp_path / "extra",
                     lambda s: s.__setitem__("encoder.mystery.weight", torch.zeros(3)))
    with pytest.raises(ModelLoadError, match="encoder.mystery.weight"):
        m.m
    m = _rewrite_vae(tiny_tango_dir, tmp_path / "missing",
                     lambda s: s.pop("decoder.up.0.block.1.norm2.bias"))
    with pytest.raises(ModelLoadError, match=r"missing 1 key\(s\): decoder.up_blocks.2.resnets.1.norm2.bias"):
        m.m


def test_main_key_errors_name_the_keys(tiny_tango_dir, tmp_path):
    d = tmp_path / "main"
    shutil.copytree(tiny_tango_dir, d)
    state = torch.load(d / "pytorch_model_main.bin", weights_only=True)
    state.pop("unet.conv_in.bias")
    state["group_in.0.weight"] = torch.zeros(2, 2)
    torch.save(state, d / "pytorch_model_main.bin")
    with pytest.raises(ModelLoadError, match="group_in.0.weight"):
        make(d).m
    state.pop("group_in.0.weight")
    torch.save(state, d / "pytorch_model_main.bin")
    with pytest.raises(ModelLoadError, match="conv_in.bias"):
        make(d).m


def test_map_vae_key_examples():
    assert map_vae_key("encoder.down.1.block.0.nin_shortcut.weight", 3) == \
        "encoder.down_blocks.1.resnets.0.conv_shortcut.weight"
    assert map_vae_key("decoder.up.1.upsample.conv.bias", 3) == \
        "decoder.up_blocks.1.upsamplers.0.conv.bias"
    assert map_vae_key("decoder.up.2.block.0.conv1.weight", 3) == \
        "decoder.up_blocks.0.resnets.0.conv1.weight"
    assert map_vae_key("encoder.mid.attn_1.proj_out.weight", 3) == \
        "encoder.mid_block.attentions.0.to_out.0.weight"
    assert map_vae_key("vocoder.conv_pre.weight", 3) is None


def test_bad_params_and_missing_files(tiny_tango_dir, tmp_path):
    with pytest.raises(ConfigError, match="Did you mean"):
        Tango(checkpoint=str(tiny_tango_dir), tokeniser="x")
    with pytest.raises(ConfigError, match="null_condition"):
        make(tiny_tango_dir, null_condition="trained")
    with pytest.raises(ModelLoadError, match="pytorch_model_main.bin"):
        Tango(checkpoint=str(tmp_path / "absent"))
    d = tmp_path / "partial"
    shutil.copytree(tiny_tango_dir, d)
    (d / "pytorch_model_stft.bin").unlink()
    with pytest.raises(ModelLoadError, match="lacks pytorch_model_stft.bin"):
        make(d)
    with pytest.raises(ModelLoadError, match="flan-t5-large"):
        Tango(checkpoint=str(tiny_tango_dir))  # default tokenizer: hub id, not in the cache
    cfg = json.loads((tiny_tango_dir / "stft_config.json").read_text())
    d2 = tmp_path / "stft"
    shutil.copytree(tiny_tango_dir, d2)
    (d2 / "stft_config.json").write_text(json.dumps({**cfg, "hop_length": 256}))
    with pytest.raises(ModelLoadError, match="hop_length"):
        make(d2)


@pytest.mark.slow
def test_fresh_fixture_writes_and_loads(tmp_path, tiny_audio_files, diffusion_ckpt):
    H = diffusion_ckpt
    d = H.write_tiny_tango(tmp_path / "t", seed=3)
    m = make(d, dtype="bfloat16")
    s = H.samples_for(tiny_audio_files[:1])
    out = m.provide(s, ALL, BatchContext(m, s, 0))
    eps = m.predict_noise(out[LATENTS], torch.tensor([5]), out[CONDITION])
    assert eps.dtype == torch.float32 and torch.isfinite(eps).all()


def test_registered_through_the_entry_point():
    from harness import plugins

    info = plugins.get("model", "tango")
    assert info.family == "diffusion" and info.load() is Tango


# -- hostile checkpoints (issue #15): nothing in a pickle runs --------------------------------


@pytest.mark.slow
def test_code_pickled_into_a_weights_file_never_runs(tmp_path, tiny_tango_dir):
    import hostile

    for name in ("pytorch_model_stft.bin", "pytorch_model_vae.bin", "pytorch_model_main.bin"):
        d = tmp_path / name
        shutil.copytree(tiny_tango_dir, d)
        marker = tmp_path / f"ran-{name}"
        hostile.code_pickle(d / name, marker, "legacy")
        with pytest.raises(ModelLoadError, match=name):
            make(d).m
        assert not marker.exists()



# -- strict loading (issue #15): TANGO's own loader, every file it reads -----------------------

STRICT_CASES = {  # file, key prefix in it, how the error names the component
    "vae": ("pytorch_model_vae.bin", "encoder.", "the VAE (pytorch_model_vae.bin)"),
    "unet": ("pytorch_model_main.bin", "unet.", "the UNet (unet.* in pytorch_model_main.bin"),
    "text_encoder": ("pytorch_model_main.bin", "text_encoder.encoder.block.",
                     "the FLAN-T5 encoder (text_encoder.* in pytorch_model_main.bin)"),
    "stft": ("pytorch_model_stft.bin", "stft_fn.inverse", "the STFT buffers (pytorch_model_stft.bin)"),
}


@pytest.mark.parametrize("component", sorted(STRICT_CASES))
def test_a_missing_and_a_foreign_weight_are_refused_by_name(model, tiny_tango_dir, tmp_path,
                                                            component):
    from plugins.models._diffusers_shared import StrictLoadError

    assert {"vae", "unet", "text_encoder"} <= set(model.m)  # the intact files load
    fname, prefix, named = STRICT_CASES[component]
    d = tmp_path / component
    shutil.copytree(tiny_tango_dir, d)
    state = torch.load(d / fname, weights_only=True)
    gone = sorted(k for k in state if k.startswith(prefix))[-1]
    del state[gone]
    foreign = prefix.split(".")[0] + ".mystery_block.weight"
    state[foreign] = torch.zeros(2)
    torch.save(state, d / fname)
    with pytest.raises(StrictLoadError) as err:
        make(d).m
    msg = str(err.value)
    assert named in msg
    # the keys as the module names them: the VAE's mapped to diffusers, the others' prefix cut
    own_gone = (map_vae_key(gone, 3) if component == "vae"
                else gone if component == "stft" else gone.split(".", 1)[1])
    own_foreign = foreign if component in ("vae", "stft") else foreign.split(".", 1)[1]
    assert f"missing 1 key(s): {own_gone}" in msg
    assert f"unexpected 1 key(s): {own_foreign}" in msg
