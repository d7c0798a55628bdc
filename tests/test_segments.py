"""The length policy: which part of a clip a model scores, and what that covers."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from harness import segments
from harness.contracts import Sample
from harness.errors import ClipTooShortError, ConfigError


@pytest.fixture
def clip(tmp_path):
    p = tmp_path / "c.wav"
    sf.write(p, np.zeros(16000 * 5, np.float32) + 0.1, 16000)   # 5 s
    return str(p)


def test_first_window_of_a_long_clip_is_truncated(clip):
    s = Sample("a", clip)
    (w,) = segments.plan(s, 2.0)
    assert (w.start, w.seconds, w.length) == (0.0, 2.0, 2.0)
    cov = segments.coverage(s, [w])
    assert cov["coverage"] == pytest.approx(0.4) and cov["truncated"] and not cov["short"]


def test_all_windows_tile_the_span_and_drop_a_tail_below_the_minimum(clip):
    s = Sample("a", clip)
    wins = segments.plan(s, 2.0, "all")
    assert [(w.start, w.seconds) for w in wins] == [(0.0, 2.0), (2.0, 2.0), (4.0, 1.0)]
    assert segments.coverage(s, wins)["coverage"] == pytest.approx(1.0)
    wins = segments.plan(s, 2.0, "all", min_seconds=1.5)
    assert len(wins) == 2


def test_span_honours_start_and_duration(clip):
    s = Sample("a", clip, start=1.0, duration=1.5)
    (w,) = segments.plan(s, 2.0)
    assert (w.start, w.seconds, w.padded) == (1.0, 1.5, 0.5)
    cov = segments.coverage(s, [w], padding="exclude")
    assert cov["coverage"] == pytest.approx(1.0) and cov["short"]
    assert cov["padded_fraction"] == 0.0
    assert segments.coverage(s, [w], padding="include")["padded_fraction"] == pytest.approx(0.25)


def test_too_short_and_past_the_end_are_named_errors(clip):
    with pytest.raises(ClipTooShortError, match="past the end"):
        segments.plan(Sample("a", clip, start=6.0), 2.0)
    with pytest.raises(ClipTooShortError, match="at least 0.02 s"):
        segments.plan(Sample("a", clip, start=4.99), 2.0, min_seconds=0.02)


def test_unknown_policies_are_config_errors():
    with pytest.raises(ConfigError, match="windows"):
        segments.check_policy("middle", "exclude", "m")
    with pytest.raises(ConfigError, match="padding"):
        segments.check_policy("first", "zero", "m")


def test_summary_counts():
    recs = [{"coverage": 1.0, "padded_fraction": 0.0, "truncated": False, "short": True},
            {"coverage": 0.5, "padded_fraction": 0.0, "truncated": True, "short": False}]
    s = segments.summarize(recs)
    assert s == {"coverage_mean": 0.75, "padded_fraction": 0.0, "n_truncated": 1, "n_short": 1}


def test_diffusion_models_refuse_a_span_they_would_read_wrongly(clip):
    from harness.contracts import DiffusionModel
    from harness.errors import DataError

    class M(DiffusionModel):
        def identity(self):
            return {}

    with pytest.raises(DataError, match="span of its file"):
        M().provide([Sample("a", clip, start=1.0)], {"latents"}, None)
