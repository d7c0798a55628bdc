"""The ``audiogen`` plugin on tiny checkpoints written in AudioGen's official format and loaded
through ``AudioGen.get_pretrained(local_dir)``, offline (see audiocraft_fixtures)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from audiocraft_fixtures import CARD, write_tiny_audiogen, write_tiny_t5
from tiny_parts import captioned, write_clips

COND = "token_stats/conditional"
CONTRAST = "token_stats/contrast"
SECONDS = 2.0
T = 100  # 2 s at 50 frames/s
VALID = T + (T - 1) + (T - 2) + (T - 3)  # delays [0, 1, 2, 3]


@pytest.fixture(scope="session")
def t5_dir(tmp_path_factory):
    return write_tiny_t5(tmp_path_factory.mktemp("t5") / "t5-small")


@pytest.fixture(scope="session")
def ckpt_dir(tmp_path_factory, t5_dir):
    return write_tiny_audiogen(tmp_path_factory.mktemp("audiogen") / "ckpt", t5_dir=t5_dir)


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    return write_clips(tmp_path_factory.mktemp("ag-clips"),
                       [(16000, 1, 2.5), (44100, 2, 3.0), (22050, 1, 1.2)],
                       freqs=[220, 440, 660], noise=0.1, seed=3)


def _samples(paths, captions=("a dog barks twice", "rain on a tin roof, 4/4", "")):
    return captioned(paths, captions)


@pytest.fixture(scope="session")
def model(ckpt_dir, t5_dir):
    from plugins.models._audiogen_impl import AudioGenModel

    return AudioGenModel(checkpoint=str(ckpt_dir), t5=str(t5_dir), segment_seconds=SECONDS)


def test_registers_as_autoregressive_model():
    from plugins.models import audiogen

    got = []
    audiogen.register_models(lambda *a, **k: got.append((a, k)))
    (name, factory), kw = got[0]
    assert name == "audiogen" and factory.endswith("_audiogen_impl:AudioGenModel")
    assert kw["family"] == "autoregressive"


def test_loads_official_files_with_identical_weights(model, ckpt_dir):
    import torch

    ag = model.load()
    assert type(ag).__name__ == "AudioGen"
    for fname, module in (("state_dict.bin", ag.lm), ("compression_state_dict.bin",
                                                        ag.compression_model)):
        pkg = torch.load(ckpt_dir / fname, map_location="cpu")
        assert set(pkg) == {"xp.cfg", "best_state", "version", "exported"}
        assert isinstance(pkg["xp.cfg"], str)
        mine = module.state_dict()
        assert set(mine) == set(pkg["best_state"])
        for k, v in pkg["best_state"].items():
            assert torch.equal(mine[k], v), k
    cond = ag.lm.condition_provider.conditioners["description"]
    assert type(cond).__name__ == "T5Conditioner"
    assert not ag.lm.training


def test_stats_lengths_follow_the_delay_pattern(model, clips):
    out = model.provide(_samples(clips), {COND, CONTRAST}, None)
    assert set(out) == {COND, CONTRAST}
    # clip 2 has 1.2 s = 60 frames of audio: its padded frames are not scored (every codebook
    # of frames 0..59 is predicted within the 100-step pattern)
    for name in (COND, CONTRAST):
        assert [len(s) for s in out[name]] == [VALID, VALID, 4 * 60]
        for s in out[name]:
            assert np.all(np.isfinite(s.logprob)) and np.all(s.logprob <= 1e-9)
            assert np.all(s.var_logprob >= 0)
            assert s.token_ids.min() >= 0 and s.token_ids.max() < CARD
    only = model.provide(_samples(clips[:1]), {COND}, None)
    assert set(only) == {COND}


def test_conditional_and_contrast_differ(model, clips):
    out = model.provide(_samples(clips[:2]), {COND, CONTRAST}, None)
    for c, d in zip(out[COND], out[CONTRAST]):
        np.testing.assert_array_equal(c.token_ids, d.token_ids)
        assert np.abs(c.logprob - d.logprob).max() > 1e-3


def test_empty_caption_is_the_null_condition(model, clips):
    """T5 turns "" into the zeroed null condition, so the logit contrast is exactly uniform."""
    out = model.provide(_samples(clips[2:3], captions=("",)), {CONTRAST}, None)
    np.testing.assert_allclose(out[CONTRAST][0].logprob, -math.log(CARD), atol=1e-5)


def test_batch_of_two_equals_two_batches_of_one(model, clips):
    two = model.provide(_samples(clips[:2]), {COND, CONTRAST}, None)
    for i in range(2):
        one = model.provide(_samples(clips[:2])[i:i + 1], {COND, CONTRAST}, None)
        for name in (COND, CONTRAST):
            a, b = two[name][i], one[name][0]
            np.testing.assert_array_equal(a.token_ids, b.token_ids)
            for f in ("logprob", "max_other_logprob", "mean_logprob", "var_logprob"):
                np.testing.assert_allclose(getattr(a, f), getattr(b, f), atol=2e-5, rtol=1e-5)


def test_per_codebook_loss_equals_the_solver_cross_entropy(model, clips):
    """mean -logprob of codebook k over its valid positions == F.cross_entropy on
    compute_predictions' logits, as MusicGenSolver._compute_cross_entropy (batch of one)."""
    import torch
    import torch.nn.functional as F
    from audiocraft.modules.conditioners import ConditioningAttributes

    samples = _samples(clips[:1])
    stats = model.provide(samples, {COND}, None)[COND][0]
    lm = model.load().lm
    codes = model.tokens(samples)
    with torch.no_grad():
        out = lm.compute_predictions(
            codes, [ConditioningAttributes(text={"description": samples[0].caption})])
    K = codes.shape[1]
    # which codebook each time-major stat entry belongs to
    valid = out.mask[0].permute(1, 0)                       # [T, K]
    kidx = torch.arange(K)[None, :].expand_as(valid)[valid].numpy()
    np.testing.assert_array_equal(stats.token_ids, codes[0].permute(1, 0)[valid].numpy())
    for k in range(K):
        m = out.mask[0, k]
        ce = F.cross_entropy(out.logits[0, k][m], codes[0, k][m]).item()
        assert abs(-stats.logprob[kidx == k].mean() - ce) < 1e-4
        assert (kidx == k).sum() == T - k


def test_audio_is_read_as_audiocraft_does(model, clips):
    import torch
    from audiocraft.data.audio import audio_read
    from audiocraft.data.audio_utils import convert_audio

    wav = model.read_audio(clips[1])                 # 44.1 kHz stereo, 3 s
    assert wav.shape == (1, int(SECONDS * 16000))
    ref, sr = audio_read(clips[1], 0.0, SECONDS)
    ref = convert_audio(ref, sr, 16000, 1)
    torch.testing.assert_close(wav, ref[..., :wav.shape[-1]])
    short = model.read_audio(clips[2])              # 1.2 s -> zero-padded at the end
    assert short.shape == (1, int(SECONDS * 16000))
    assert torch.all(short[:, int(1.25 * 16000):] == 0)
    assert short[:, :16000].abs().max() > 0.1


def test_identity_hashes_content(ckpt_dir, t5_dir, tmp_path):
    import shutil

    import torch

    from plugins.models._audiogen_impl import AudioGenModel

    a = AudioGenModel(checkpoint=str(ckpt_dir), t5=str(t5_dir)).identity()
    other = tmp_path / "copy"
    shutil.copytree(ckpt_dir, other)
    b = AudioGenModel(checkpoint=str(other), t5=str(t5_dir)).identity()
    assert a["files"] == b["files"]
    pkg = torch.load(other / "state_dict.bin")
    k = next(iter(pkg["best_state"]))
    pkg["best_state"][k] = pkg["best_state"][k] + 1
    torch.save(pkg, other / "state_dict.bin")
    c = AudioGenModel(checkpoint=str(other), t5=str(t5_dir)).identity()
    assert c["files"]["state_dict.bin"] != b["files"]["state_dict.bin"]
    assert c["files"]["compression_state_dict.bin"] == b["files"]["compression_state_dict.bin"]
    # one byte, same size and name: still a new identity
    raw = bytearray((other / "state_dict.bin").read_bytes())
    raw[-20] ^= 1
    (other / "state_dict.bin").write_bytes(bytes(raw))
    d = AudioGenModel(checkpoint=str(other), t5=str(t5_dir)).identity()
    assert d["files"]["state_dict.bin"] != c["files"]["state_dict.bin"]


def test_lut_conditioned_checkpoint_loads_without_t5(tmp_path, clips):
    from plugins.models._audiogen_impl import AudioGenModel

    ck = write_tiny_audiogen(tmp_path / "lut", conditioner="lut", seed=1)
    m = AudioGenModel(checkpoint=str(ck), segment_seconds=SECONDS)
    out = m.provide(_samples(clips[:1]), {COND, CONTRAST}, None)
    assert len(out[CONTRAST][0]) == VALID


def test_bad_inputs_raise_named_errors(tmp_path, ckpt_dir, t5_dir, clips):
    from harness.contracts import Sample
    from harness.errors import ConfigError, DataError, ModelLoadError
    from plugins.models._audiogen_impl import AudioGenModel

    with pytest.raises(ConfigError, match="checkpoint"):
        AudioGenModel()
    with pytest.raises(ConfigError, match="dtype"):
        AudioGenModel(checkpoint="x", dtype="int8")
    with pytest.raises(ConfigError, match="contrast"):
        AudioGenModel(checkpoint="x", contrast="ratio")
    with pytest.raises(ConfigError, match="Did you mean"):
        AudioGenModel(checkpoint="x", segment_second=3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="state_dict.bin"):
        AudioGenModel(checkpoint=str(tmp_path / "empty")).load()
    big_t5 = write_tiny_t5(tmp_path / "t5-wrong", d_model=64)
    with pytest.raises(ModelLoadError, match="d_model"):
        AudioGenModel(checkpoint=str(ckpt_dir), t5=str(big_t5)).load()
    with pytest.raises(ModelLoadError, match="not a directory"):
        AudioGenModel(checkpoint=str(ckpt_dir), t5=str(tmp_path / "nope")).load()
    m = AudioGenModel(checkpoint=str(ckpt_dir), t5=str(t5_dir), segment_seconds=SECONDS)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    with pytest.raises(DataError, match="bad.wav"):
        m.provide([Sample("x", str(bad), "c")], {COND}, None)
    with pytest.raises(ConfigError, match="cannot provide"):
        m.provide(_samples(clips[:1]), {"latents"}, None)


def test_padding_would_change_scores_so_padded_keys_are_masked(model, clips):
    """Why ``predictions`` masks the padded keys: audiocraft batches captions padded to the
    longest, and its cross-attention has no key mask, so the short caption's logits move."""
    import torch
    from audiocraft.modules.conditioners import ConditioningAttributes

    samples = _samples(clips[:2], captions=("a dog", "rain on a tin roof, 4/4 time"))
    codes = model.tokens(samples)
    lm = model.load().lm
    with torch.no_grad():
        padded = lm.compute_predictions(
            codes, [ConditioningAttributes(text={"description": s.caption}) for s in samples])
        alone = lm.compute_predictions(
            codes[:1], [ConditioningAttributes(text={"description": samples[0].caption})])
    m = alone.mask[0]
    assert (padded.logits[0][m] - alone.logits[0][m]).abs().max() > 1e-4
    ours = model.provide(samples, {COND}, None)[COND][0]
    lp = torch.log_softmax(alone.logits[0].permute(1, 0, 2), -1)   # [T, K, V]
    tgt = codes[0].permute(1, 0)
    want = lp.gather(-1, tgt[..., None])[..., 0][m.permute(1, 0)].numpy()
    np.testing.assert_allclose(ours.logprob, want, atol=2e-5)


def _unpadded_reference(model, samples):
    """audiocraft's own scores, one sample and one condition per call (nothing padded):
    per-token log p of the true token, conditional and logit contrast."""
    import torch
    from audiocraft.modules.conditioners import ConditioningAttributes

    lm = model.load().lm
    codes = model.tokens(samples)
    out = []
    with torch.no_grad():
        for i, s in enumerate(samples):
            res = {}
            for cap in (s.caption, None):
                r = lm.compute_predictions(
                    codes[i:i + 1], [ConditioningAttributes(text={"description": cap})])
                res[cap is None] = r.logits[0].permute(1, 0, 2)        # [T, K, V]
            m = r.mask[0].permute(1, 0)
            tgt = codes[i].permute(1, 0)[..., None]
            for name, logits in ((COND, res[False]), (CONTRAST, res[False] - res[True])):
                lp = torch.log_softmax(torch.where(m[..., None], logits, 0.0), -1)
                res[name] = lp.gather(-1, tgt)[..., 0][m].numpy()
            out.append(res)
    return out


@pytest.mark.parametrize("lm_cfg,fuser_cfg,masked", [
    ({}, {}, True),                                               # AudioGen's own settings
    ({"bias_attn": True}, {}, True),                              # padded keys carry a bias
    ({"memory_efficient": False}, {}, True),                      # torch nn.MultiheadAttention
    ({"memory_efficient": False, "custom": True}, {}, True),      # audiocraft's einsum path
    ({"qk_layer_norm_cross": True}, {}, True),
    ({}, {"cross_attention_pos_emb": True}, True),
    ({}, {"cross": [], "prepend": ["description"]}, False),       # no cross-attention: grouped
], ids=["audiogen", "bias", "torch-mha", "custom", "qk-norm", "pos-emb", "prepend"])
def test_one_batched_call_scores_each_sample_as_alone(tmp_path, t5_dir, clips, lm_cfg,
                                                      fuser_cfg, masked):
    """Captions of different lengths (and an empty one) in one batch: every sample's scores
    equal audiocraft's unpadded single-sample ones; audiocraft configurations the masked
    path covers take one ``compute_predictions`` call, the others one per caption length
    plus one for the null rows."""
    from plugins.models._audiocraft_lm import key_mask_supported
    from plugins.models._audiogen_impl import AudioGenModel

    ck = write_tiny_audiogen(tmp_path / "lm", t5_dir=t5_dir, seed=2, lm=lm_cfg, fuser=fuser_cfg)
    # padding included: the reference below scores every frame of the padded 1.2 s clip
    model = AudioGenModel(checkpoint=str(ck), t5=str(t5_dir), segment_seconds=SECONDS,
                          padding="include")
    lm = model.load().lm
    assert key_mask_supported(lm) == masked
    samples = _samples(clips, captions=("a dog", "rain on a tin roof, 4/4 time", ""))
    calls = []
    original = lm.compute_predictions
    lm.compute_predictions = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        out = model.provide(samples, {COND, CONTRAST}, None)
    finally:
        del lm.compute_predictions
    assert len(calls) == (1 if masked else 4)
    for got_c, got_x, want in zip(out[COND], out[CONTRAST], _unpadded_reference(model, samples)):
        np.testing.assert_allclose(got_c.logprob, want[COND], atol=3e-5)
        np.testing.assert_allclose(got_x.logprob, want[CONTRAST], atol=3e-5)


# -- hostile checkpoints (issue #15): nothing in a pickle runs --------------------------------


@pytest.mark.slow
def test_code_pickled_into_a_package_never_runs(tmp_path, ckpt_dir, t5_dir):
    import shutil

    import hostile
    import torch

    from harness.errors import ModelLoadError
    from plugins.models._audiogen_impl import AudioGenModel

    t5, good = t5_dir, ckpt_dir
    for name in ("state_dict.bin", "compression_state_dict.bin"):
        for kind in hostile.PICKLE_KINDS:
            d = tmp_path / f"{name}-{kind}"
            shutil.copytree(good, d)
            marker = tmp_path / f"ran-{name}-{kind}"
            hostile.code_pickle(d / name, marker, kind)
            with pytest.raises(ModelLoadError, match=f"AudioGen {name}"):
                AudioGenModel(checkpoint=str(d), t5=str(t5)).load()
            assert not marker.exists()
    # a package without best_state is named as such (not a KeyError deep in audiocraft)
    d = tmp_path / "nobest"
    shutil.copytree(good, d)
    pkg = torch.load(d / "state_dict.bin", weights_only=True)
    del pkg["best_state"]
    torch.save(pkg, d / "state_dict.bin")
    with pytest.raises(ModelLoadError, match="lacks 'best_state'"):
        AudioGenModel(checkpoint=str(d), t5=str(t5)).load()
    # the canary loads through the same code
    from plugins.models._autoregressive_canary_impl import AutoregressiveCanary

    assert AutoregressiveCanary.load is AudioGenModel.load


def test_padded_frames_are_not_scored_so_the_window_length_does_not_matter(ckpt_dir, t5_dir,
                                                                           clips):
    """A 1.2 s clip in a 2 s or a 3 s window: the LM is causal, so its real frames score the
    same and only the padding differs; with padding excluded the stats are identical, with it
    included (the old behaviour) the mean loss moves with the amount of padding."""
    from plugins.models._audiogen_impl import AudioGenModel

    s = _samples(clips[2:3], captions=("a short one",))
    got = {}
    for seconds in (2.0, 3.0):
        for padding in ("exclude", "include"):
            m = AudioGenModel(checkpoint=str(ckpt_dir), t5=str(t5_dir), segment_seconds=seconds,
                              padding=padding)
            got[seconds, padding] = m.provide(s, {COND, CONTRAST}, None)
    for name in (COND, CONTRAST):
        a, b = got[2.0, "exclude"][name][0], got[3.0, "exclude"][name][0]
        assert len(a) == len(b) == 4 * 60
        np.testing.assert_array_equal(a.token_ids, b.token_ids)
        np.testing.assert_allclose(a.logprob, b.logprob, atol=1e-4)
        a, b = got[2.0, "include"][name][0], got[3.0, "include"][name][0]
        assert len(a) > 4 * 60 and len(b) > len(a)
        assert abs(a.logprob.mean() - b.logprob.mean()) > 1e-3


def test_windows_all_scores_the_whole_clip(ckpt_dir, t5_dir, clips):
    """3 s clip, 2 s windows: the second window's 1 s (50 frames) joins the first window's
    stats; the first window alone is what windows: first gives."""
    from plugins.models._audiogen_impl import AudioGenModel

    s = _samples(clips[1:2])
    first = AudioGenModel(checkpoint=str(ckpt_dir), t5=str(t5_dir), segment_seconds=SECONDS)
    every = AudioGenModel(checkpoint=str(ckpt_dir), t5=str(t5_dir), segment_seconds=SECONDS,
                          windows="all")
    a = first.provide(s, {COND}, None)[COND][0]
    b = every.provide(s, {COND}, None)[COND][0]
    assert len(a) == VALID and len(b) == VALID + 4 * 50
    np.testing.assert_allclose(b.logprob[:VALID], a.logprob, atol=1e-5)
    assert [w.seconds for w in every.scoring_windows(s[0])] == [2.0, 1.0]


def test_sample_start_is_where_the_window_begins(model, clips):
    import torch

    from harness.contracts import Sample

    late = model.read_window(clips[1], 1.0)[0]
    full, _ = model.read_window(clips[1], 0.0, 3.0)
    assert late.shape == full.shape
    w = model.scoring_windows(Sample("x", clips[1], start=1.0))[0]
    assert (w.start, w.seconds) == (1.0, 2.0)
    # julius resampling of a cut is not bit-identical at the edges; the middle is the same audio
    torch.testing.assert_close(late[:, 4000:12000], full[:, 20000:28000], atol=2e-3, rtol=0)


def test_a_clip_shorter_than_one_codec_frame_is_a_named_error(model, tmp_path):
    from harness.errors import ClipTooShortError

    p = tmp_path / "tiny.wav"
    sf.write(p, np.full(200, 0.1, np.float32), 16000)   # 200 samples < one 320-sample frame
    with pytest.raises(ClipTooShortError, match="tiny.wav"):
        model.provide(_samples([str(p)]), {COND}, None)


def test_codes_do_not_depend_on_the_batch(model, clips):
    """Each clip is encoded alone: its codes are the same whatever shares its batch (batch
    size is not in the feature-cache key)."""
    import torch

    samples = _samples(clips)
    together = model.tokens(samples)
    for i in range(len(samples)):
        assert torch.equal(model.tokens(samples[i:i + 1])[0], together[i])


@pytest.fixture
def cuda_style_load(monkeypatch):
    """audiocraft's ``load_lm_model`` on a non-CPU device builds the LM with
    ``cfg.dtype='float16'``: the transformer (and its loaded weights) fp16, embeddings, heads and
    condition provider fp32. Emulated on CPU by casting the transformer after the real load."""
    from audiocraft.models import audiogen as ag_mod

    real = ag_mod.load_lm_model

    def load(*a, **k):
        lm = real(*a, **k)
        lm.transformer.half()
        return lm

    monkeypatch.setattr(ag_mod, "load_lm_model", load)


def test_the_cuda_load_path_runs_end_to_end_in_the_suite_dtype(ckpt_dir, t5_dir, clips,
                                                                model, cuda_style_load):
    """Issue #9: the half-cast transformer made ``provide`` fail ('mixed dtype' / dtype
    mismatch) in float32. Now the LM is cast to the suite's dtype after loading and, having
    been narrowed, reloaded from the checkpoint: the float32 features are the CPU-load ones."""
    import torch

    from harness.dtypes import module_dtypes
    from plugins.models._audiogen_impl import AudioGenModel

    # the failure mode itself, on audiocraft's half-cast LM without the cast
    from audiocraft.models import AudioGen
    from plugins.models._audiocraft_lm import t5_from
    with t5_from(t5_dir):
        raw = AudioGen.get_pretrained(str(ckpt_dir), device="cpu")
    assert module_dtypes(raw.lm) == {"float16", "float32"}
    codes = model.tokens(_samples(clips[:1]))
    with pytest.raises(RuntimeError):
        with torch.no_grad():
            raw.lm.compute_predictions(codes, model.condition_attributes(["a dog"]))

    samples = _samples(clips)
    fp32 = AudioGenModel(checkpoint=str(ckpt_dir), t5=str(t5_dir), segment_seconds=SECONDS)
    assert module_dtypes(fp32.load().lm) == {"float32"}
    assert fp32.identity()["lm_dtype"] == "float32"
    got = fp32.provide(samples, {COND, CONTRAST}, None)
    want = model.provide(samples, {COND, CONTRAST}, None)      # loaded on CPU, never narrowed
    for name in (COND, CONTRAST):
        for a, b in zip(got[name], want[name]):
            np.testing.assert_allclose(a.logprob, b.logprob, atol=1e-6)


@pytest.mark.parametrize("dtype,tol", [("bfloat16", 0.15), ("float16", 0.02)])
def test_reduced_precision_features_are_close_to_float32(ckpt_dir, t5_dir, clips, model,
                                                         cuda_style_load, dtype, tol):
    """Mean per-token log-prob in bf16 / fp16 (whole LM cast, autocast as audiocraft's
    pipeline) within ``tol`` nats of float32 on the tiny checkpoint."""
    from harness.dtypes import module_dtypes
    from plugins.models._audiogen_impl import AudioGenModel

    samples = _samples(clips)
    low = AudioGenModel(checkpoint=str(ckpt_dir), t5=str(t5_dir), segment_seconds=SECONDS,
                        dtype=dtype)
    assert module_dtypes(low.load().lm) == {dtype}
    got = low.provide(samples, {COND, CONTRAST}, None)
    want = model.provide(samples, {COND, CONTRAST}, None)
    for name in (COND, CONTRAST):
        for a, b in zip(got[name], want[name]):
            np.testing.assert_array_equal(a.token_ids, b.token_ids)
            assert abs(a.logprob.mean() - b.logprob.mean()) < tol
