"""Model-free features of a sample: its file and its caption, never a model.

Why these: the known ways member and non-member sets of audio benchmarks differ without any
model involved are recording conditions (sample rate, band limit, loudness, silence), length,
content type (speech vs music, visible in spectral and MFCC statistics) and caption style. The
file's native sample rate and channel count are features on purpose: if they differ between the
sets, that difference alone can carry an MIA (a model's loss differs on band-limited audio).
"""

from __future__ import annotations

import functools
import math
import re
from typing import Sequence

import numpy as np

from harness.contracts import Baseline, Sample
from harness.errors import ConfigError

#: analysis rate: high enough to see a 4 or 8 kHz band limit, cheap enough for thousands of clips
SR = 22050
N_FFT, HOP = 1024, 512
N_MFCC = 20
MIDI_SUFFIXES = (".mid", ".midi")

AUDIO_NAMES = (
    ["log_native_sr", "channels", "log_duration", "peak_db", "rms_db_mean", "rms_db_std",
     "rms_db_max", "crest_db", "silent_fraction", "dc_offset", "zcr_mean", "zcr_std",
     "centroid_mean", "centroid_std", "bandwidth_mean", "rolloff85_mean", "rolloff99_mean",
     "flatness_mean", "flux_mean", "energy_above_4k_db", "energy_above_8k_db"]
    + [f"mfcc{i}_mean" for i in range(N_MFCC)] + [f"mfcc{i}_std" for i in range(N_MFCC)])
MIDI_NAMES = ["midi_log_duration", "midi_notes_per_s", "midi_pitch_mean", "midi_pitch_std",
              "midi_pitch_min", "midi_pitch_max", "midi_velocity_mean", "midi_velocity_std",
              "midi_note_dur_mean", "midi_instruments", "midi_drum_fraction", "midi_program",
              "midi_tempo"]
TEXT_NAMES = ["caption_chars", "caption_words", "caption_word_len", "caption_digit_frac",
              "caption_upper_frac", "caption_punct_frac"]


class ModelFree(Baseline):
    """Audio (or MIDI) and caption features; see the module docstring for why each."""

    defaults = {
        "audio": True,         # duration, loudness, spectral and MFCC statistics / MIDI notes
        "text": True,          # caption length statistics and a hashed bag of words
        "bag_of_words": 256,   # hashed word buckets (0: none)
        "max_seconds": 30.0,   # audio analysed per sample (from the sample's start)
    }

    def validate(self) -> None:
        p = self.params
        for k in ("audio", "text"):
            if not isinstance(p[k], bool):
                raise ConfigError(f"baseline 'model-free': {k} must be true or false")
        if not p["audio"] and not p["text"]:
            raise ConfigError("baseline 'model-free': audio and text are both off; nothing to "
                              "compare")
        if not isinstance(p["bag_of_words"], int) or p["bag_of_words"] < 0:
            raise ConfigError("baseline 'model-free': bag_of_words must be an integer >= 0")
        if not isinstance(p["max_seconds"], (int, float)) or p["max_seconds"] <= 0:
            raise ConfigError("baseline 'model-free': max_seconds must be > 0")

    def featurize(self, samples: Sequence[Sample]) -> tuple[np.ndarray, list[str]]:
        blocks, names = [], []
        p = self.params
        if p["audio"]:
            midi = np.array([s.path.lower().endswith(MIDI_SUFFIXES) for s in samples])
            if (~midi).any():
                rows = [audio_features(s, p["max_seconds"]) if not m
                        else np.full(len(AUDIO_NAMES), np.nan) for s, m in zip(samples, midi)]
                blocks.append(np.stack(rows))
                names += AUDIO_NAMES
            if midi.any():
                rows = [midi_features(s.path) if m else np.full(len(MIDI_NAMES), np.nan)
                        for s, m in zip(samples, midi)]
                blocks.append(np.stack(rows))
                names += MIDI_NAMES
        if p["text"]:
            captions = [s.caption or "" for s in samples]
            blocks.append(np.stack([text_features(c) for c in captions]))
            names += TEXT_NAMES
            if p["bag_of_words"]:
                from sklearn.feature_extraction.text import HashingVectorizer

                hv = HashingVectorizer(n_features=p["bag_of_words"], alternate_sign=False,
                                       norm=None, token_pattern=r"(?u)\b\w+\b")
                blocks.append(np.log1p(hv.transform(captions).toarray()))
                names += [f"bow{i}" for i in range(p["bag_of_words"])]
        return np.concatenate(blocks, axis=1).astype(np.float64), names


def _db(x, floor=1e-10):
    return 10.0 * np.log10(np.maximum(x, floor))


@functools.lru_cache(maxsize=1)
def _mfcc_matrices():
    """Mel filterbank [F, 40] and DCT [40, N_MFCC] (torchaudio's MFCC, computed once)."""
    import torchaudio

    fb = torchaudio.functional.melscale_fbanks(N_FFT // 2 + 1, 0.0, SR / 2, 40, SR)
    return fb.numpy().astype(np.float64), \
        torchaudio.functional.create_dct(N_MFCC, 40, "ortho").numpy().astype(np.float64)


def audio_features(sample: Sample, max_seconds: float) -> np.ndarray:
    """Recording-condition and content statistics of the sample's span (first ``max_seconds``)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    info = sf.info(sample.path)
    native = int(info.samplerate)
    start = int(round(float(sample.start or 0.0) * native))
    span = max_seconds if sample.duration is None else min(max_seconds, float(sample.duration))
    stop = min(info.frames, start + int(round(span * native)))
    data, _ = sf.read(sample.path, start=start, stop=stop, dtype="float64", always_2d=True)
    duration = (info.frames - start) / native if sample.duration is None else \
        min(float(sample.duration), (info.frames - start) / native)
    x = data.mean(axis=1)
    if native != SR:
        g = math.gcd(native, SR)
        x = resample_poly(x, SR // g, native // g)
    if x.size < N_FFT:
        x = np.pad(x, (0, N_FFT - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]  # [T, N_FFT]
    rms_db = _db(np.square(frames).mean(axis=1))
    zc = (np.diff(np.signbit(frames), axis=1) != 0).mean(axis=1)
    spec = np.square(np.abs(np.fft.rfft(frames * np.hanning(N_FFT + 1)[:-1], axis=1))).T
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / SR)
    total = spec.sum(0) + 1e-20
    centroid = (freqs[:, None] * spec).sum(0) / total
    bandwidth = np.sqrt(((freqs[:, None] - centroid) ** 2 * spec).sum(0) / total)
    cum = np.cumsum(spec, axis=0) / total
    roll85 = freqs[np.argmax(cum >= 0.85, axis=0)]
    roll99 = freqs[np.argmax(cum >= 0.99, axis=0)]
    flat = np.exp(np.log(spec + 1e-20).mean(0)) / (spec.mean(0) + 1e-20)
    norm_spec = spec / total
    flux = np.sqrt((np.diff(norm_spec, axis=1) ** 2).sum(0)) if spec.shape[1] > 1 else [0.0]
    energy = spec.sum()
    above4 = _db(spec[freqs > 4000].sum() / (energy + 1e-20))
    above8 = _db(spec[freqs > 8000].sum() / (energy + 1e-20))
    fb, dct = _mfcc_matrices()
    mel_db = _db(fb.T @ spec)
    mel_db = np.maximum(mel_db, mel_db.max() - 80.0)  # torchaudio's MFCC: top_db 80
    mfcc = dct.T @ mel_db  # [N_MFCC, T]
    peak = float(np.abs(x).max())
    feats = [math.log2(native), info.channels, math.log(max(duration, 1e-3)), _db(peak ** 2),
             rms_db.mean(), rms_db.std(), rms_db.max(), _db(peak ** 2) - rms_db.mean(),
             float((rms_db < -60).mean()), float(x.mean()), zc.mean(), zc.std(),
             centroid.mean(), centroid.std(), bandwidth.mean(), roll85.mean(), roll99.mean(),
             flat.mean(), float(np.mean(flux)), above4, above8]
    return np.r_[np.array(feats, dtype=np.float64), mfcc.mean(1), mfcc.std(1)]


def midi_features(path: str) -> np.ndarray:
    """Note statistics of a MIDI file (NaN where the file has no notes)."""
    import pretty_midi

    out = np.full(len(MIDI_NAMES), np.nan)
    try:
        pm = pretty_midi.PrettyMIDI(path)
    except Exception:  # noqa: BLE001 (checked before the run; an odd file scores NaN here)
        return out
    notes = [(n, inst) for inst in pm.instruments for n in inst.notes]
    dur = pm.get_end_time()
    out[0] = math.log(max(dur, 1e-3))
    out[9] = len(pm.instruments)
    if notes:
        pitch = np.array([n.pitch for n, _ in notes], dtype=float)
        vel = np.array([n.velocity for n, _ in notes], dtype=float)
        nd = np.array([n.end - n.start for n, _ in notes], dtype=float)
        out[1] = len(notes) / max(dur, 1e-3)
        out[2:6] = pitch.mean(), pitch.std(), pitch.min(), pitch.max()
        out[6:8] = vel.mean(), vel.std()
        out[8] = nd.mean()
        out[10] = np.mean([inst.is_drum for _, inst in notes])
    if pm.instruments:
        out[11] = pm.instruments[0].program
    _, tempi = pm.get_tempo_changes()
    if len(tempi):
        out[12] = float(tempi[0])
    return out


def text_features(caption: str) -> np.ndarray:
    words = re.findall(r"\w+", caption)
    n = max(len(caption), 1)
    return np.array([len(caption), len(words),
                     np.mean([len(w) for w in words]) if words else 0.0,
                     sum(c.isdigit() for c in caption) / n,
                     sum(c.isupper() for c in caption) / n,
                     sum((not c.isalnum()) and not c.isspace() for c in caption) / n])
