"""Which part of a clip a model scores: one declared length policy for every model.

Why a module of its own: every audio model sees a fixed window (AudioGen 10 s, the canaries
2.5–3 s, AudioLDM2 10.24 s). A clip shorter than the window is zero-padded, and the padding is
not the clip: scored, it swamps the membership signal with frames that are the same for members
and non-members (issue #9: the autoregressive contrast loss fell to AUC 0.22 on clips shorter than
the segment). A clip longer than the window is cut, and a user must be told how much of it was
ever looked at. So the policy is explicit, the same for every model, and logged:

* ``windows: first`` (default) scores the first window of the sample's span; ``all`` tiles the
  span into consecutive windows (the last one possibly partial) and the model aggregates them.
* ``padding: exclude`` (default) leaves padded frames out of every per-token / per-frame
  statistic; ``include`` scores them, for models known to have been trained on zero-padded
  segments.
* A sample's span is ``[start, start + duration)`` of its file (``Sample.start`` /
  ``Sample.duration``, e.g. AudioCaps' ``start_time`` in a full-length download).
* A span shorter than the model's minimum (one codec frame, say) is a ``ClipTooShortError``.

Reading durations uses ``soundfile.info`` (the header), so planning costs no decoding.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence

from .errors import ClipTooShortError, ConfigError, DataError

WINDOW_POLICIES = ("first", "all")
PADDING_POLICIES = ("exclude", "include")


@dataclass(frozen=True)
class Window:
    """One window a model scores: ``start`` seconds into the file, ``seconds`` of real audio in
    a window of ``length`` seconds (the rest is padding)."""

    start: float
    seconds: float
    length: float

    @property
    def padded(self) -> float:
        return max(self.length - self.seconds, 0.0)


def check_policy(windows: str, padding: str, where: str) -> None:
    """Raise a ConfigError naming the parameter when a policy value is unknown."""
    if windows not in WINDOW_POLICIES:
        raise ConfigError(f"{where}: windows must be one of {WINDOW_POLICIES}, got {windows!r}")
    if padding not in PADDING_POLICIES:
        raise ConfigError(f"{where}: padding must be one of {PADDING_POLICIES}, got {padding!r}")


def file_duration(path: str | os.PathLike) -> float:
    """Seconds of audio in ``path``, from its header."""
    import soundfile as sf

    try:
        info = sf.info(os.fspath(path))
    except Exception as exc:
        raise DataError(f"cannot read audio file '{path}': {exc}. Use a wav/flac/ogg file "
                        "readable by soundfile.") from exc
    if info.samplerate <= 0:
        raise DataError(f"audio file '{path}' declares no sample rate")
    return info.frames / float(info.samplerate)


def span(sample, duration: float) -> tuple[float, float]:
    """(start, seconds) of the sample inside a file of ``duration`` seconds."""
    start = float(sample.start or 0.0)
    if start < 0:
        raise DataError(f"sample '{sample.id}': start {start} s is negative")
    if start >= duration and duration > 0:
        raise ClipTooShortError(f"sample '{sample.id}': start {start:g} s is past the end of "
                                f"'{sample.path}' ({duration:.3f} s); check its start_time")
    end = duration if sample.duration is None else min(duration, start + float(sample.duration))
    return start, max(end - start, 0.0)


def plan(sample, window: float, windows: str = "first", min_seconds: float = 0.0,
         duration: float | None = None) -> list[Window]:
    """The windows of ``window`` seconds a model scores for ``sample``.

    ``min_seconds``: the least audio the model can score (a window with less real audio than that
    is dropped, unless it is the only one: then the clip is too short)."""
    if duration is None:
        duration = file_duration(sample.path)
    start, seconds = span(sample, duration)
    if seconds < max(min_seconds, 1e-9):
        raise ClipTooShortError(
            f"sample '{sample.id}' ('{sample.path}') has {seconds:.4f} s of audio from "
            f"{start:g} s; the model needs at least {min_seconds:g} s. Remove it from the data "
            "or give a longer clip.")
    if windows == "first":
        return [Window(start, min(seconds, window), window)]
    n = max(1, math.ceil(seconds / window - 1e-9))
    out = []
    for i in range(n):
        got = min(window, seconds - i * window)
        if i and got < min_seconds:
            break
        out.append(Window(start + i * window, got, window))
    return out


def coverage(sample, wins: Sequence[Window], padding: str = "exclude",
             duration: float | None = None) -> dict:
    """What of the sample was scored: ``coverage`` = scored audio / the sample's audio,
    ``padded_fraction`` = padded / window time (0 when padding is excluded from the scores)."""
    if duration is None:
        duration = file_duration(sample.path)
    _, seconds = span(sample, duration)
    used = sum(w.seconds for w in wins)
    total = sum(w.length for w in wins)
    padded = sum(w.padded for w in wins)
    return {"seconds": seconds, "scored_seconds": used,
            "coverage": used / seconds if seconds > 0 else 0.0,
            "padded_seconds": padded if padding == "include" else 0.0,
            "padded_fraction": padded / total if padding == "include" and total > 0 else 0.0,
            "short": used < total - 1e-9, "truncated": used < seconds - 1e-6}


def summarize(records: Sequence[dict]) -> dict:
    """Per-cell summary of ``coverage`` records (results.json / MLflow)."""
    if not records:
        return {"coverage_mean": float("nan"), "padded_fraction": float("nan"),
                "n_truncated": 0, "n_short": 0}
    return {"coverage_mean": sum(r["coverage"] for r in records) / len(records),
            "padded_fraction": sum(r["padded_fraction"] for r in records) / len(records),
            "n_truncated": sum(bool(r["truncated"]) for r in records),
            "n_short": sum(bool(r["short"]) for r in records)}
