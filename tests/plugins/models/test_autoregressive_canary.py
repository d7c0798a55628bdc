"""The autoregressive canary: trained once, cached in AudioGen's official format, and scored by
loading that folder with the ``audiogen`` plugin's code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

COND = "token_stats/conditional"
CONTRAST = "token_stats/contrast"

TINY = {"steps": 25, "dim": 16, "num_layers": 1, "num_heads": 2, "card": 16,
        "codec_filters": 2, "codec_dim": 8, "segment_seconds": 2.5, "batch_size": 4,
        "warmup_steps": 5}
T = 125  # 2.5 s at 50 frames/s


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """Six captioned clips (tones + noise), audiocraft-style .json sidecars, as local-folder."""
    root = tmp_path_factory.mktemp("canary-clips")
    rng = np.random.default_rng(0)
    for i in range(6):
        sr = 16000
        t = np.arange(int(sr * 3.0)) / sr
        x = 0.3 * np.sin(2 * np.pi * (200 + 90 * i) * t * (1 + 0.1 * np.sin(t * (i + 1))))
        x = (x + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)
        sf.write(root / f"clip{i}.wav", x, sr)
        (root / f"clip{i}.json").write_text(json.dumps({"description": f"tone number {i}"}))
    return root


def _canary(folder, **over):
    from plugins.models._autoregressive_canary_impl import AutoregressiveCanary

    td = {"source": "local-folder", "split": "all", "params": {"path": str(folder)}}
    return AutoregressiveCanary(**{"train_data": td, **TINY, **over})


@pytest.fixture(scope="module")
def canary(clip_folder):
    return _canary(clip_folder)


def test_registers_as_autoregressive_model():
    from plugins.models import autoregressive_canary

    got = []
    autoregressive_canary.register_models(lambda *a, **k: got.append((a, k)))
    (name, factory), kw = got[0]
    assert name == "autoregressive-canary" and kw["family"] == "autoregressive"
    assert factory.endswith(":AutoregressiveCanary")


def test_trains_into_the_official_format_and_loads_through_audiogen(canary):
    from plugins.models._audiogen_impl import AudioGenModel

    d = canary.checkpoint_dir()
    for fname in ("state_dict.bin", "compression_state_dict.bin"):
        pkg = torch.load(d / fname, map_location="cpu")
        assert set(pkg) == {"xp.cfg", "best_state", "version", "exported"}
        assert "delays:" in pkg["xp.cfg"] and "t5-small" in pkg["xp.cfg"]
    rep = canary.training_report()
    assert rep["frames"] == T and len(rep["members"]) == 6
    assert rep["loss_last"] < rep["loss_first"]
    assert all(u["used"] >= 2 for u in rep["code_usage"])   # k-means spread the codebooks
    # the canary is scored by the audiogen plugin's own code, loading the folder
    assert type(canary).provide is AudioGenModel.provide
    assert type(canary).load is AudioGenModel.load
    ag = canary.load()
    assert type(ag).__name__ == "AudioGen"
    assert type(ag.lm.condition_provider.conditioners["description"]).__name__ == "T5Conditioner"
    pkg = torch.load(d / "state_dict.bin", map_location="cpu")
    for k, v in pkg["best_state"].items():
        assert torch.equal(ag.lm.state_dict()[k], v)
    # and a user could load the same folder with the audiogen plugin directly
    plain = AudioGenModel(checkpoint=str(d), t5=str(d / "t5"), segment_seconds=2.5)
    samples = canary._train_samples()[:2]
    a = canary.provide(samples, {COND, CONTRAST}, None)
    b = plain.provide(samples, {COND, CONTRAST}, None)
    for name in (COND, CONTRAST):
        assert [len(s) for s in a[name]] == [T + (T - 1) + (T - 2) + (T - 3)] * 2
        for x, y in zip(a[name], b[name]):
            np.testing.assert_allclose(x.logprob, y.logprob, atol=1e-6)


def test_a_caption_is_trained_as_it_is_scored_whatever_its_batch(canary):
    """Training computes each caption unpadded, as the scorer does. audiocraft's own forward pads
    a batch's captions with zero keys that its cross-attention does not mask, so a short caption
    next to a long one was trained diluted and scored undiluted; on the variable-length speech
    test that made the contrast features fail on short clips (loss AUC 0.45 there; 0.87 once
    trained unpadded). Checked on the training forward itself: a row's logits do not depend on
    its batch neighbours' captions, and equal the scorer's."""
    from plugins.models._audiocraft_lm import null_keys
    from plugins.models._autoregressive_canary_impl import training_predictions

    lm = canary.load().lm
    samples = canary._train_samples()[:2]
    codes = canary.tokens(samples)
    short, long = "a", "a much longer caption, so that the short one gets padded in a batch"
    attrs = canary.condition_attributes
    with torch.no_grad():
        n_null = null_keys(lm, attrs([None]))
        alone = training_predictions(lm, codes[:1], attrs([short]), n_null).logits
        padded = training_predictions(lm, codes, attrs([short, long]), n_null).logits
        null_alone = training_predictions(lm, codes[:1], attrs([None]), n_null).logits
        null_batch = training_predictions(lm, codes, attrs([None, None]), n_null).logits
        ((_, scored, _),) = canary.predictions(codes[:1], [short], True)
    valid = ~torch.isnan(alone)
    assert valid.any()
    torch.testing.assert_close(padded[:1][valid], alone[valid], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(null_batch[:1][valid], null_alone[valid], atol=1e-5, rtol=1e-5)
    # the scorer's conditional and null rows are the training forward's
    torch.testing.assert_close(scored[:1][valid], alone[valid], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scored[1:][valid], null_alone[valid], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("padding", ["exclude", "include"])
def test_padding_policy_decides_what_is_trained_on_and_scored(tmp_path, padding):
    """``padding: include`` is the behaviour before the length policy: the zero-padded frames of
    a clip shorter than the segment are trained on (k-means and loss) and scored; ``exclude``
    (default) does neither."""
    rng = np.random.default_rng(1)
    seconds = (1.2, 2.0, 3.0)
    for i, s in enumerate(seconds):
        x = 0.3 * np.sin(2 * np.pi * 300 * (i + 1) * np.arange(int(16000 * s)) / 16000)
        sf.write(tmp_path / f"c{i}.wav", (x + 0.05 * rng.standard_normal(x.shape)).astype(
            np.float32), 16000)
        (tmp_path / f"c{i}.json").write_text(json.dumps({"description": f"clip {i}"}))
    canary = _canary(tmp_path, steps=2, padding=padding)
    samples = canary._train_samples()
    real = [min(int(seconds[int(Path(x.path).stem[1:])] * 50), T) for x in samples]
    trained = canary.training_report()["trained_frames"]
    scored = [len(st.logprob) for st in canary.provide(samples, {COND}, None)[COND]]
    # tokens of a clip with f real frames: codebook k (delay k) has min(f, T - k) valid positions
    if padding == "exclude":
        assert trained == sum(real)
        assert scored == [sum(min(f, T - k) for k in range(4)) for f in real]
    else:
        assert trained == T * len(samples)
        assert scored == [sum(T - k for k in range(4))] * len(samples)


def test_cached_and_keyed_by_params_and_data(canary, clip_folder, monkeypatch):
    from plugins.models import _autoregressive_canary_impl as impl

    d = canary.checkpoint_dir()
    again = _canary(clip_folder)

    def boom(*a, **k):
        raise AssertionError("retrained a cached canary")

    monkeypatch.setattr(impl.AutoregressiveCanary, "_train", boom)
    assert again.checkpoint_dir() == d
    samples = canary._train_samples()
    assert _canary(clip_folder, steps=26).cache_key(samples) != canary.cache_key(samples)
    assert _canary(clip_folder, threads=1).cache_key(samples) == canary.cache_key(samples)


def test_identity_is_the_weights_content_so_a_copied_cache_is_reused(canary, tmp_path):
    """Issue #15: the identity held the canary's absolute path inside the cache, so a copied
    cache recomputed every feature. Now it is the files' content hashes: the same for the
    folder loaded from anywhere with the audiogen plugin."""
    import shutil

    from plugins.models._audiogen_impl import AudioGenModel

    d = canary.checkpoint_dir()
    ident = canary.identity()
    assert str(d) not in json.dumps(ident) and str(d.parent) not in json.dumps(ident)
    copy = tmp_path / "copied-cache" / d.name
    shutil.copytree(d, copy)
    other = AudioGenModel(checkpoint=str(copy), t5=str(copy / "t5"),
                          segment_seconds=TINY["segment_seconds"])
    assert other.identity() == ident


def test_bad_params_are_refused(clip_folder):
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="segment_seconds"):
        _canary(clip_folder, segment_seconds=2.0)
    with pytest.raises(ConfigError, match="multiple"):
        _canary(clip_folder, dim=18, num_heads=4)
    with pytest.raises(ConfigError, match="cond_dropout"):
        _canary(clip_folder, cond_dropout=1.5)
    with pytest.raises(ConfigError, match="Unknown parameter"):
        _canary(clip_folder, checkpoint="/some/dir")
    with pytest.raises(ConfigError, match="train_data"):
        _canary(clip_folder, train_data={"split": "members"})


@pytest.mark.slow
def test_memorises_folk_tune_members():
    """A short run on real folk-tune renders already separates members by the Loss feature."""
    from sklearn.metrics import roc_auc_score

    from harness.datasets import resolve
    from plugins.models._autoregressive_canary_impl import AutoregressiveCanary

    td = {"source": "folk-tunes", "split": "members",
          "params": {"n_members": 8, "n_nonmembers": 8}}
    m = AutoregressiveCanary(train_data=td, steps=120, dim=64, num_layers=2, card=64,
                             batch_size=8)
    members, non = resolve(td), resolve({**td, "split": "nonmembers"})
    loss = []
    for S in (members, non):
        out = m.provide(S, {CONTRAST, COND}, None)
        loss.append([-s.logprob.mean() for s in out[COND]])
    y = np.r_[np.ones(len(members)), np.zeros(len(non))]
    assert roc_auc_score(y, -np.r_[loss[0], loss[1]]) > 0.8
