"""Regression (issue #9): the autoregressive canary on real speech of mixed lengths.

espeak-ng renders 32 members and 32 non-members, 0.7–5.2 s each (a third to a half shorter than
the 3 s segment), in six voices of four languages, captioned with the spoken text. Before the
length policy, clips were zero-padded to the segment and the padding was trained on and scored:
the features then tracked each clip's length (non-member conditional loss vs duration: Spearman
-0.90 against -0.63 now) and the attacks weakened exactly on the short clips (measured with this
data and these settings: conditional loss AUC 0.934 → 0.989 overall, 0.86 → 0.97 on the short
clips; chance 0.5).

The guidance-contrast features stay weak on the *short* clips whatever the padding (AUC ≈ 0.45
short, 0.97 on clips ≥ 3 s, 0.66 overall). That is asserted as measured, not hidden. What the
per-token log-probs say (this data, these settings; member vs non-member means, nats):

* the conditional model memorises a short member far less than a long one *at the same token
  positions* (tokens 0–40: −1.25 short vs −0.23 long; non-members −2.05 / −2.11), so less of a
  short clip's identity comes from its caption;
* the contrast log-prob (log softmax(l_c − l_u)) is below −log V for every clip (−6 to −9 with
  V = 64): the null condition predicts the next token better than the caption does once the
  audio prefix is known, for members and non-members alike; only long members rise above the
  non-members (−5.7 vs −7.2 on tokens 0–40);
* not the captions' wording: re-captioning the same audio with descriptions that make every
  caption unique (language, speed, pitch and text) lifts the short members' conditional
  memorisation (tokens 0–40: −0.79) but leaves the short-clip contrast AUC at 0.52 (0.67 overall);
* not padding (excluded here, and the test's first version showed the padding made it worse).
* not the token-weighted training loss (a short clip gives a fifth of a long clip's tokens):
  weighting every clip equally instead leaves short members at −1.17 (tokens 0–40) and the
  short-clip contrast AUC at 0.49 (0.64 overall).
The root cause of the weaker memorisation of short clips at equal positions is not found; the
contrast inherits it because the null condition, given the audio prefix, keeps up with the caption.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                 reason="espeak-ng is installed by scripts/setup.sh")]

WORDS = ("river stone light morning garden window silver paper orange quiet thunder yellow "
         "market winter forest candle bridge ocean pocket mirror basket engine harbor meadow "
         "castle ticket planet rabbit violin summer copper shadow island kettle lantern").split()
VOICES = ("en-us", "en-gb", "en-gb-scotland", "de", "fr", "es")
CANARY = {"steps": 400, "dim": 64, "threads": 1, "num_layers": 2, "num_heads": 4, "card": 64,
          "codec_filters": 4, "codec_dim": 16, "segment_seconds": 3.0, "batch_size": 16,
          "warmup_steps": 20}


def speak(root, n: int, seed: int) -> None:
    """``n`` clips of 1–11 random words, voice, speed and pitch varied; audiocraft-style json
    sidecars carry the text as the description."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        text = " ".join(rng.choice(WORDS, int(rng.integers(1, 12))))
        speed, pitch = int(rng.integers(140, 200)), int(rng.integers(30, 70))
        wav = root / f"s{seed}_{i:03d}.wav"
        (root / f"s{seed}_{i:03d}.json").write_text(json.dumps({"description": text}))
        subprocess.run(["espeak-ng", "-v", VOICES[i % len(VOICES)], "-s", str(speed), "-p",
                        str(pitch), "-w", str(wav), text], check=True, capture_output=True)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    speak(root / "members", 32, 1)
    speak(root / "nonmembers", 32, 2)
    return {side: {"source": "local-folder", "split": "all",
                   "params": {"path": str(root / side)}} for side in ("members", "nonmembers")}


def _features(model, samples, attacks):
    from harness.contracts import BatchContext

    feats: dict = {}
    for i in range(0, len(samples), 16):
        batch = samples[i:i + 16]
        ctx = BatchContext(model, batch, 0)
        ctx.outputs = model.provide(batch, set().union(*(a.needs() for a in attacks)), ctx)
        for a in attacks:
            for k, v in a.extract(ctx).items():
                feats.setdefault((a.params["mode"], k), []).extend(v)
    return {k: np.asarray(v) for k, v in feats.items()}


def test_ar_canary_on_mixed_length_speech(speech):
    from harness import segments
    from harness.datasets import resolve
    from harness.metrics import subsampled
    from plugins.attacks._autoregressive_impl import Loss, MinK
    from plugins.models._autoregressive_canary_impl import AutoregressiveCanary

    canary = AutoregressiveCanary(train_data=speech["members"], **CANARY)
    members, nonmembers = resolve(speech["members"]), resolve(speech["nonmembers"])
    durations = np.array([segments.file_duration(s.path) for s in members + nonmembers])
    short = durations < CANARY["segment_seconds"]
    assert 0.3 < short.mean() < 0.7 and durations.min() < 1.0 and durations.max() > 4.5
    attacks = [cls(mode=mode) for mode in ("conditional", "contrast") for cls in (Loss, MinK)]
    fm, fn = _features(canary, members, attacks), _features(canary, nonmembers, attacks)
    specs = {(a.params["mode"], s.name): s for a in attacks for s in a.feature_specs()}
    result = {}
    for key, spec in specs.items():
        sign = 1 if spec.higher_is_member else -1
        r = subsampled(sign * fm[key], sign * fn[key], rng=0)
        result[key] = (r["auc"], r["auc_std"])
        # no attack below chance by more than its own std
        assert r["auc"] > 0.5 - r["auc_std"], (key, r)
    for key in (("conditional", "loss"), ("conditional", "min-k/k0.2")):
        assert result[key][0] > 0.95, result
    # the contrast on clips that fill the segment: the padding no longer decides anything there
    m_long, n_long = ~short[:len(members)], ~short[len(members):]
    loss = ("contrast", "loss")
    r = subsampled(-fm[loss][m_long], -fn[loss][n_long], rng=0)
    assert r["auc"] > 0.9, r
