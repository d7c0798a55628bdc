"""Generators for the broken and hostile inputs of issue #15: checkpoints whose pickle runs code,
damaged audio/MIDI files, oversized suites. Each writes one file and returns its path; the tests
assert the harness refuses it with a one-line named error and runs or writes nothing.

Code-executing checkpoints create a marker file when unpickled, so a test can prove nothing ran
(``assert not marker.exists()``) rather than relying on captured output.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import struct
import wave
from pathlib import Path

import numpy as np


# ---------------------------------------------------------------------------------------------
# checkpoints


class RunsCode:
    """Unpickling this writes ``marker`` (a stand-in for ``os.system``)."""

    def __init__(self, marker: str | os.PathLike):
        self.marker = os.fspath(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


PICKLE_KINDS = ("zip", "legacy", "raw")


class TrustedObject:
    """A harmless object (attributes only) of an importable class: what a trusted Lightning
    checkpoint holds that weights-only loading still refuses."""


def code_pickle(path: str | os.PathLike, marker: str | os.PathLike, kind: str = "zip",
                payload: dict | None = None) -> str:
    """A checkpoint ``payload`` (default: a Lightning-like dict) with a code-running object
    inside, written as a torch zip file, a legacy torch file, or a raw pickle."""
    import torch

    obj = dict(payload or {"hyper_parameters": {}, "state_dict": {"w": torch.zeros(2)}})
    obj["callbacks"] = {"evil": RunsCode(marker)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "zip":
        torch.save(obj, path)
    elif kind == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    elif kind == "raw":
        with open(path, "wb") as fh:
            pickle.dump(obj, fh)
    else:
        raise ValueError(kind)
    return str(path)


# ---------------------------------------------------------------------------------------------
# audio


def tone(seconds: float = 1.0, sr: int = 16000, freq: float = 440.0, amp: float = 0.3):
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def wav(path, samples=None, sr: int = 16000, subtype: str = "PCM_16") -> str:
    import soundfile as sf

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone() if samples is None else samples, sr, subtype=subtype)
    return str(path)


def _pcm16_header(n_frames: int, sr: int = 16000, channels: int = 1) -> bytes:
    data_bytes = n_frames * channels * 2
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sr, sr * channels * 2,
                                    channels * 2, 16)
            + b"data" + struct.pack("<I", data_bytes))


def truncated_wav(path, claimed_seconds: float = 10.0, present_frames: int = 1000,
                  sr: int = 16000) -> str:
    """A PCM WAV whose header claims ``claimed_seconds`` but holds ``present_frames`` frames."""
    body = (tone(present_frames / sr, sr) * 32767).astype("<i2").tobytes()
    Path(path).write_bytes(_pcm16_header(int(claimed_seconds * sr), sr) + body)
    return str(path)


def header_only_wav(path) -> str:
    Path(path).write_bytes(_pcm16_header(0))
    return str(path)


def float_wav(path, values) -> str:
    """A 32-bit float WAV with exactly these samples (NaN/Inf survive, unlike PCM)."""
    return wav(path, np.asarray(values, dtype=np.float32), subtype="FLOAT")


def nan_wav(path) -> str:
    x = tone()
    x[100:200] = np.nan
    return float_wav(path, x)


def inf_wav(path) -> str:
    x = tone()
    x[5] = np.inf
    return float_wav(path, x)


def silent_wav(path) -> str:
    return wav(path, np.zeros(16000, dtype=np.float32))


def one_sample_wav(path) -> str:
    return wav(path, np.array([0.5], dtype=np.float32))


def mp3_named_wav(path) -> str:
    """MPEG audio bytes (an ID3 tag and frame sync) under a ``.wav`` name."""
    frame = b"\xff\xfb\x90\x64" + bytes(413)
    Path(path).write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + frame * 20)
    return str(path)


def text_named_wav(path) -> str:
    Path(path).write_text("this is not audio\n")
    return str(path)


def empty_file(path) -> str:
    Path(path).write_bytes(b"")
    return str(path)


def directory_named_wav(path) -> str:
    Path(path).mkdir(parents=True)
    return str(path)


def symlink_loop(path) -> str:
    """``path`` -> ``path.loop`` -> ``path``."""
    path = Path(path)
    other = path.with_name(path.name + ".loop")
    os.symlink(other.name, path)
    os.symlink(path.name, other)
    return str(path)


def midi(path, notes: int = 16) -> str:
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(0)
    for i in range(notes):
        inst.notes.append(pretty_midi.Note(80, 60 + i % 12, i * 0.25, i * 0.25 + 0.25))
    pm.instruments.append(inst)
    pm.write(str(path))
    return str(path)


def truncated_midi(path) -> str:
    good = io.BytesIO()
    tmp = Path(str(path) + ".tmp.mid")
    midi(tmp)
    good.write(tmp.read_bytes())
    tmp.unlink()
    Path(path).write_bytes(good.getvalue()[:30])
    return str(path)


def wav_named_mid(path) -> str:
    data = Path(wav(str(path) + ".tmp.wav")).read_bytes()
    os.unlink(str(path) + ".tmp.wav")
    Path(path).write_bytes(data)
    return str(path)


#: every broken audio kind: (generator, words the error must contain)
BROKEN_AUDIO = {
    "mp3_named_wav": (mp3_named_wav, "MPEG"),
    "text_named_wav": (text_named_wav, "not audio"),
    "empty": (empty_file, "empty"),
    "header_only": (header_only_wav, "no audio frames"),
    "truncated": (truncated_wav, "truncated"),
    "claims_hours": (lambda p: truncated_wav(p, claimed_seconds=3 * 3600, present_frames=1600),
                     "truncated"),
    "nan": (nan_wav, "NaN"),
    "inf": (inf_wav, "infinite"),
    "silent": (silent_wav, "silent"),
    "one_sample": (one_sample_wav, "too short"),
}

BROKEN_MIDI = {
    "truncated_midi": (truncated_midi, "MIDI"),
    "wav_named_mid": (wav_named_mid, "WAV"),
    "empty_midi": (empty_file, "empty"),
}


def write_wave_stdlib(path, frames: np.ndarray, sr: int = 16000) -> str:
    """PCM16 through the stdlib (no soundfile), for tests that must not depend on it."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(frames, -1, 1) * 32767).astype("<i2").tobytes())
    return str(path)
