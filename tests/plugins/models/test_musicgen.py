"""The ``musicgen`` plugin on a tiny MusicGen folder in the released format (``state_dict.bin``
from ``export_lm``; ``compression_state_dict.bin`` naming ``facebook/encodec_32khz`` as
``export_pretrained_compression_model`` writes it), loaded by ``MusicGen.get_pretrained``
offline with the T5 and the named EnCodec served from local folders (audiocraft_fixtures)."""

from __future__ import annotations

import numpy as np
import pytest

from audiocraft_fixtures import (ENCODEC_NAME, MUSICGEN_CARD, write_tiny_hf_encodec,
                                 write_tiny_musicgen, write_tiny_t5)
from tiny_parts import captioned, write_clips

COND = "token_stats/conditional"
CONTRAST = "token_stats/contrast"
SECONDS = 2.0
T = 100  # 2 s at 50 frames/s (32 kHz, hop 640)
VALID = T + (T - 1) + (T - 2) + (T - 3)
CAPTIONS = ("upbeat jazz piano trio", "slow ambient pads, 60 bpm", "")


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("musicgen")
    t5 = write_tiny_t5(root / "t5-base", d_model=768)
    enc = write_tiny_hf_encodec(root / "encodec_32khz")
    ck = write_tiny_musicgen(root / "ckpt", t5_dir=t5)
    return {"ckpt": ck, "t5": t5, "encodec": enc}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return write_clips(tmp_path_factory.mktemp("mg-clips"),
                       [(32000, 1, 2.5), (44100, 2, 3.0), (22050, 1, 1.2)],
                       freqs=[330, 660, 990], noise=0.1, seed=5)


def _samples(paths, captions=CAPTIONS):
    return captioned(paths, captions, prefix="m")


def _model(parts, **kw):
    from plugins.models._musicgen_impl import MusicGenModel

    return MusicGenModel(checkpoint=str(parts["ckpt"]), t5=str(parts["t5"]),
                         encodec=str(parts["encodec"]), **{"segment_seconds": SECONDS, **kw})


@pytest.fixture(scope="module")
def model(parts):
    return _model(parts)


def test_registered_through_the_entry_point_and_documented():
    from harness import plugins
    from harness.plugin_docs import param_docs

    info = plugins.get("model", "musicgen")
    assert info.family == "autoregressive"
    cls = info.load()
    assert cls.__name__ == "MusicGenModel"
    assert cls.defaults["segment_seconds"] == 30.0
    docs = param_docs(cls)
    assert all(docs[k] for k in cls.defaults), {k: v for k, v in docs.items() if not v}


def test_loads_the_released_layout_with_identical_weights(model, parts):
    import torch

    mg = model.load()
    assert type(mg).__name__ == "MusicGen" and mg.sample_rate == 32000
    comp = mg.compression_model
    assert type(comp).__name__ == "HFEncodecCompressionModel"
    assert comp.num_codebooks == 4 and comp.cardinality == MUSICGEN_CARD and comp.frame_rate == 50
    pkg = torch.load(parts["ckpt"] / "compression_state_dict.bin", weights_only=True)
    assert pkg["pretrained"] == ENCODEC_NAME and "best_state" not in pkg
    lm = torch.load(parts["ckpt"] / "state_dict.bin", weights_only=True)["best_state"]
    mine = mg.lm.state_dict()
    assert set(mine) == set(lm)
    for k, v in lm.items():
        assert torch.equal(mine[k], v), k
    from transformers import EncodecModel

    ref = EncodecModel.from_pretrained(str(parts["encodec"])).state_dict()
    for k, v in comp.model.state_dict().items():
        assert torch.equal(v, ref[k]), k
    cond = mg.lm.condition_provider.conditioners["description"]
    assert type(cond).__name__ == "T5Conditioner" and cond.name == "t5-base"


def test_per_codebook_loss_and_contrast_equal_audiocraft_lm_forward(model, clips):
    """Each sample's token log-probs, conditional and guidance contrast, equal those of
    audiocraft's own ``LMModel.compute_predictions`` run on that sample alone with
    ``ConditioningAttributes`` (the caption, then None as CFG dropout makes it); the mean over
    codebook k is the solver's per-codebook cross-entropy."""
    import torch
    import torch.nn.functional as F
    from audiocraft.modules.conditioners import ConditioningAttributes

    samples = _samples(clips)
    got = model.provide(samples, {COND, CONTRAST}, None)
    lm = model.load().lm
    codes = model.tokens(samples)
    for i, s in enumerate(samples[:2]):
        with torch.no_grad():
            c = lm.compute_predictions(codes[i:i + 1], [ConditioningAttributes(
                text={"description": s.caption})])
            u = lm.compute_predictions(codes[i:i + 1], [ConditioningAttributes(
                text={"description": None})])
        m = c.mask[0].permute(1, 0)                                   # [T, K]
        tgt = codes[i].permute(1, 0)[..., None]
        lc = torch.log_softmax(torch.where(m[..., None], c.logits[0].permute(1, 0, 2), 0.0), -1)
        diff = torch.where(m[..., None], (c.logits[0] - u.logits[0]).permute(1, 0, 2), 0.0)
        lx = torch.log_softmax(diff, -1)
        np.testing.assert_allclose(got[COND][i].logprob, lc.gather(-1, tgt)[..., 0][m].numpy(),
                                   atol=3e-5)
        np.testing.assert_allclose(got[CONTRAST][i].logprob,
                                   lx.gather(-1, tgt)[..., 0][m].numpy(), atol=3e-5)
        kidx = torch.arange(4)[None, :].expand_as(m)[m].numpy()
        for k in range(4):
            mk = c.mask[0, k]
            ce = F.cross_entropy(c.logits[0, k][mk], codes[i, k][mk]).item()
            assert abs(-got[COND][i].logprob[kidx == k].mean() - ce) < 1e-4
    assert [len(x) for x in got[COND]] == [VALID, VALID, 4 * 60]   # 1.2 s: 60 real frames
    assert got[COND][0].token_ids.max() < MUSICGEN_CARD
    assert len(np.unique(got[COND][0].token_ids)) > 20


def test_audio_is_read_at_32khz_mono(model, clips):
    import torch
    from audiocraft.data.audio import audio_read
    from audiocraft.data.audio_utils import convert_audio

    wav = model.read_audio(clips[1])                 # 44.1 kHz stereo
    assert wav.shape == (1, int(SECONDS * 32000))
    ref, sr = audio_read(clips[1], 0.0, SECONDS)
    torch.testing.assert_close(wav, convert_audio(ref, sr, 32000, 1)[..., :wav.shape[-1]])


def test_all_seven_autoregressive_attacks_run(model, clips):
    from harness import plugins
    from harness.contracts import BatchContext
    from plugins.attacks.autoregressive import ATTACKS

    assert len(ATTACKS) == 7
    samples = _samples(clips)
    for mode in ("conditional", "contrast"):
        attacks = []
        for name in ATTACKS:
            cls = plugins.get("attack", name).load()
            params = {"mode": mode} if "mode" in cls.defaults else {}
            attacks.append(cls(**params))
        ctx = BatchContext(model, samples, 0, attacks=list(ATTACKS))
        ctx.outputs = model.provide(samples, set().union(*(a.needs() for a in attacks)), ctx)
        for a in attacks:
            feats = a.extract(ctx)
            assert set(feats) == {s.name for s in a.feature_specs()}
            for k, v in feats.items():
                assert v.shape == (3,) and np.isfinite(v).all(), (mode, k, v)


def test_strict_loading_names_missing_and_unexpected_keys(parts, tmp_path):
    import shutil

    import torch

    from harness.errors import ModelLoadError

    for kind in ("missing", "unexpected"):
        d = tmp_path / kind
        shutil.copytree(parts["ckpt"], d)
        pkg = torch.load(d / "state_dict.bin", weights_only=True)
        if kind == "missing":
            del pkg["best_state"]["out_norm.weight"]
        else:
            pkg["best_state"]["extra.weight"] = torch.zeros(3)
        torch.save(pkg, d / "state_dict.bin")
        m = _model({**parts, "ckpt": d})
        with pytest.raises(ModelLoadError, match=("Missing key" if kind == "missing"
                                                  else "Unexpected key")):
            m.load()


def test_melody_checkpoint_is_refused_before_anything_is_built(parts, tmp_path, monkeypatch):
    import audiocraft.models
    import torch
    from omegaconf import OmegaConf

    from plugins.models._audiocraft_lm import UnsupportedConditioningError

    d = tmp_path / "melody"
    import shutil

    shutil.copytree(parts["ckpt"], d)
    pkg = torch.load(d / "state_dict.bin", weights_only=True)
    cfg = OmegaConf.to_container(OmegaConf.create(pkg["xp.cfg"]))
    # musicgen-melody's conditioner block (audiocraft config/conditioner/chroma2music.yaml)
    cfg["conditioners"]["self_wav"] = {"model": "chroma_stem", "chroma_stem": {
        "sample_rate": 32000, "n_chroma": 12, "radix2_exp": 14, "argmax": True,
        "match_len_on_eval": False, "eval_wavs": None, "n_eval_wavs": 100, "cache_path": None}}
    pkg["xp.cfg"] = OmegaConf.to_yaml(OmegaConf.create(cfg))
    torch.save(pkg, d / "state_dict.bin")
    called = []
    monkeypatch.setattr(audiocraft.models.MusicGen, "get_pretrained",
                        staticmethod(lambda *a, **k: called.append(a)))
    with pytest.raises(UnsupportedConditioningError, match="self_wav.*melody"):
        _model({**parts, "ckpt": d}).load()
    assert not called


def test_provider_args_are_not_taken_for_a_conditioner(parts, tmp_path):
    """``conditioners.args`` (the provider's merge/drop options, which audiocraft's loader
    deletes) is not a conditioner: such a text-only checkpoint loads."""
    ck = write_tiny_musicgen(tmp_path / "args", t5_dir=parts["t5"], extra_conditioners={
        "args": {"merge_text_conditions_p": 0.25, "drop_desc_p": 0.5}})
    mg = _model({**parts, "ckpt": ck}).load()
    assert set(mg.lm.condition_provider.conditioners) == {"description"}


def test_bad_params_and_folders_raise_named_errors(parts, tmp_path):
    from harness.errors import ConfigError, ModelLoadError
    from plugins.models._musicgen_impl import MusicGenModel

    with pytest.raises(ConfigError, match="musicgen: 'checkpoint' is required.*musicgen-small"):
        MusicGenModel()
    with pytest.raises(ModelLoadError, match="encodec .* is not a directory"):
        _model({**parts, "encodec": tmp_path / "nope"}).load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="MusicGen checkpoint folder"):
        MusicGenModel(checkpoint=str(tmp_path / "empty")).load()


def test_identity_follows_the_codec_folder(parts, tmp_path):
    import shutil

    a = _model(parts).identity()
    other = tmp_path / "enc"
    shutil.copytree(parts["encodec"], other)
    assert _model({**parts, "encodec": other}).identity() == a
    cfg = other / "config.json"
    cfg.write_text(cfg.read_text().replace('"num_lstm_layers": 1', '"num_lstm_layers": 2'))
    assert _model({**parts, "encodec": other}).identity()["encodec"] != a["encodec"]


def test_identity_covers_the_codec_read_from_the_hf_cache(parts, tmp_path, monkeypatch):
    """Without ``encodec``, audiocraft loads the codec the package names from the HF cache:
    the cache key must follow those weights byte for byte (issue #9)."""
    import shutil

    import huggingface_hub.constants as hub_constants

    from harness.cache import make_key
    from plugins.models._musicgen_impl import MusicGenModel

    def cached_model():
        return MusicGenModel(checkpoint=str(parts["ckpt"]), t5=str(parts["t5"]),
                             segment_seconds=SECONDS)

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert "not in the local Hugging Face cache" in cached_model().identity()["encodec"]
    repo = tmp_path / "hub" / ("models--" + ENCODEC_NAME.replace("/", "--"))
    rev = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(rev)
    snap = repo / "snapshots" / rev
    shutil.copytree(parts["encodec"], snap)
    a = cached_model().identity()
    # the same codec bytes as the explicit folder: the same identity
    assert a == _model(parts).identity()
    (weights,) = [p for p in snap.iterdir() if p.suffix in (".safetensors", ".bin")]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    b = cached_model().identity()
    assert b["encodec"] != a["encodec"] and make_key(b) != make_key(a)


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-6), ("float16", 0.02)])
def test_the_gpu_load_path_runs_in_the_suite_dtype(parts, clips, model, monkeypatch, dtype, tol):
    """audiocraft's ``load_lm_model`` on a GPU builds the LM with ``cfg.dtype='float16'`` (the
    transformer half, embeddings and heads float32), emulated here on CPU: the plugin casts the
    whole LM to the suite's dtype (reloading the checkpoint weights for float32), so features
    match the CPU load exactly in float32 and closely in float16."""
    from audiocraft.models import musicgen as mg_mod

    from harness.dtypes import module_dtypes

    real = mg_mod.load_lm_model

    def load(*a, **k):
        lm = real(*a, **k)
        lm.transformer.half()
        return lm

    monkeypatch.setattr(mg_mod, "load_lm_model", load)
    samples = _samples(clips)
    m = _model(parts, dtype=dtype)
    assert module_dtypes(m.load().lm) == {dtype}
    got = m.provide(samples, {COND, CONTRAST}, None)
    want = model.provide(samples, {COND, CONTRAST}, None)
    for name in (COND, CONTRAST):
        for a, b in zip(got[name], want[name]):
            np.testing.assert_array_equal(a.token_ids, b.token_ids)
            assert abs(a.logprob.mean() - b.logprob.mean()) < tol
