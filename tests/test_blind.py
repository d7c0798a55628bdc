"""The blind baseline (issue #10 item 4): it must see a real shift between member and
non-member sets, and see nothing in a random split of one folder.

Audio is made here: members are 44.1 kHz fluidsynth renders of random melodies, non-members
espeak-ng speech band-limited to 8 kHz (resampled to 8 kHz and back to 44.1 kHz, so the files'
sample rates match and only their content differs); both installed by scripts/setup.sh."""

import shutil
import subprocess

import numpy as np
import pytest

from harness import blind
from harness.contracts import Sample

SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
VOICES = ["en-us", "en-gb", "de", "fr", "es", "en-gb-scotland"]
WORDS = ("the quick brown fox jumps over a lazy dog while seven bright stars rise above quiet "
         "hills and rivers run toward the old stone bridge").split()

pytestmark = pytest.mark.skipif(
    any(shutil.which(b) is None for b in ("espeak-ng", "fluidsynth", "sox")),
    reason="espeak-ng, fluidsynth and sox are installed by scripts/setup.sh")


def _music(dirpath, n, rng):
    import pretty_midi

    out = []
    for i in range(n):
        pm = pretty_midi.PrettyMIDI()
        program = int(rng.integers(0, 80))
        inst = pretty_midi.Instrument(program=program)
        t = 0.0
        for _ in range(int(rng.integers(6, 14))):
            d = float(rng.uniform(0.2, 0.5))
            inst.notes.append(pretty_midi.Note(int(rng.integers(70, 100)),
                                               int(rng.integers(50, 72)), t, t + d))
            t += d
        pm.instruments.append(inst)
        mid, stereo, wav = (dirpath / f"m{i}.{ext}" for ext in ("mid", "st.wav", "wav"))
        pm.write(str(mid))
        subprocess.run(["fluidsynth", "-ni", "-g", "0.8", "-r", "44100", "-F", str(stereo),
                        SOUNDFONT, str(mid)], check=True, capture_output=True)
        # mono like the speech: the channel count alone would separate the sets
        subprocess.run(["sox", str(stereo), str(wav), "channels", "1"], check=True,
                       capture_output=True)
        out.append(Sample(f"m{i}", str(wav), f"a melody played on "
                          f"{pretty_midi.program_to_instrument_name(program).lower()}"))
    return out


def _speech(dirpath, n, rng, band_limit=True, prefix="s"):
    out = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS, int(rng.integers(3, 12))))
        raw, wav = dirpath / f"{prefix}{i}.raw.wav", dirpath / f"{prefix}{i}.wav"
        subprocess.run(["espeak-ng", "-v", VOICES[i % len(VOICES)], "-s",
                        str(int(rng.integers(120, 200))), "-w", str(raw), text], check=True,
                       capture_output=True)
        chain = ["rate", "8000", "rate", "44100"] if band_limit else ["rate", "44100"]
        subprocess.run(["sox", str(raw), str(wav)] + chain, check=True, capture_output=True)
        out.append(Sample(f"{prefix}{i}", str(wav), text))
    return out


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    d = tmp_path_factory.mktemp("blind")
    rng = np.random.default_rng(0)
    return _music(d, 24, rng), _speech(d, 24, rng)


@pytest.fixture(scope="module")
def one_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("blind-one")
    return _speech(d, 48, np.random.default_rng(1), band_limit=False)


def _featurize(samples, **params):
    from plugins.baselines._blind_impl import ModelFree

    return ModelFree(**params).featurize(samples)


def test_constructed_shift_is_seen_from_audio_alone_and_with_captions(shifted):
    members, nonmembers = shifted
    for params in ({}, {"text": False}):
        X, names = _featurize(members + nonmembers, **params)
        res = blind.evaluate(X[:24], X[24:], names, seed=0)
        assert res["auc"] >= 0.9 and res["confounded"], (params, res["auc"])
        assert res["auc_lcb"] > 0.6 and res["auc"] > res["auc_null_q95"]
    # sample rate and channels match: what separates them is the content, not a header
    X, names = _featurize(members + nonmembers, text=False)
    assert np.all(X[:, names.index("log_native_sr")] == np.log2(44100))
    assert np.all(X[:, names.index("channels")] == 1)


def test_random_split_of_one_folder_is_not_separable(one_folder):
    X, names = _featurize(one_folder)
    aucs = []
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(len(one_folder))
        res = blind.evaluate(X[order[:24]], X[order[24:]], names, seed=seed)
        assert not res["confounded"], res["auc_lcb"]
        aucs.append(res["auc"])
    assert abs(np.mean(aucs) - 0.5) < 0.1, aucs


def test_logistic_classifier_and_midi_features(tmp_path):
    import pretty_midi

    rng = np.random.default_rng(3)
    samples = []
    for i in range(16):
        pm = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(program=0)
        low = i < 8  # members low notes, non-members high: a shift in pitch
        for k in range(8):
            inst.notes.append(pretty_midi.Note(80, int(rng.integers(40, 50) if low else
                                                       rng.integers(80, 90)), k * 0.3,
                                               k * 0.3 + 0.25))
        pm.instruments.append(inst)
        pm.write(str(tmp_path / f"{i}.mid"))
        samples.append(Sample(str(i), str(tmp_path / f"{i}.mid"), "a tune"))
    X, names = _featurize(samples)
    assert "midi_pitch_mean" in names and "mfcc0_mean" not in names
    res = blind.evaluate(X[:8], X[8:], names, classifier="logistic", folds=4, seed=0)
    assert res["auc"] > 0.9
    assert res["top_features"][0]["name"].startswith("midi_pitch")


def test_evidence_class():
    assert blind.evidence_class({"confounded": True}, canary=True) == "confounded"
    assert blind.evidence_class({"confounded": False}, canary=True) == "canary"
    assert blind.evidence_class({"confounded": False}, canary=False) == "iid-assumed"
    assert blind.evidence_class(None, canary=False) == "untested"


def test_delong_se_matches_the_spread_of_auc_over_fresh_draws():
    from harness.metrics import auc

    rng = np.random.default_rng(4)
    draws = [(rng.normal(0.8, 1, 40), rng.normal(0, 1, 40)) for _ in range(400)]
    sd = np.std([auc(m, u) for m, u in draws])
    se = np.mean([blind.delong_se(m, u) for m, u in draws])
    assert abs(se - sd) / sd < 0.15
