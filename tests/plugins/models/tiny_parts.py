"""What the tiny official-format fixtures (AudioLDM2 and TANGO in conftest.py,
audiocraft_fixtures.py, stable_audio_fixtures.py) and their tests build the same way: a unigram
T5 tokenizer over a character set, test clips of mixed rates, channel counts and lengths, and
captioned samples over those clips.

Why one module: the copies differed only in their numbers (which characters, which rates and
lengths, which seed), so each caller now states just those, and a fix to the shared part (the
tokenizer's special ids, how a clip's channels differ) reaches every model's tests. The outputs
are the ones the copies wrote, byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf


def unigram_t5_tokenizer(chars: str, spaced: str | None = None, words: Sequence[str] = (),
                         model_max_length: int | None = None):
    """A unigram ``T5Tokenizer`` (pad 0, eos 1, unk 2, then "▁") over ``words`` (score -1),
    the characters ``chars`` (-3) and "▁" + each of ``spaced`` (default ``chars``; -3.5), so
    any caption over those characters tokenises offline."""
    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(w, -1.0) for w in words]
    pieces += [(c, -3.0) for c in chars]
    pieces += [("▁" + c, -3.5) for c in (chars if spaced is None else spaced)]
    tok = T5Tokenizer(vocab=pieces, extra_ids=0)
    if model_max_length is not None:
        tok.model_max_length = model_max_length
    return tok


def write_clips(root, layout: Sequence[tuple[int, int, float]], freqs: Sequence[float],
                noise: float, seed: int) -> list[str]:
    """One WAV in ``root`` per (rate, channels, seconds) of ``layout``: a sine at the matching
    frequency of ``freqs`` (amplitude 0.3) plus ``noise`` times Gaussian noise, channel c scaled
    by (c + 1) / channels so that no two channels are equal. Returns the paths."""
    rng = np.random.default_rng(seed)
    out = []
    for i, ((sr, ch, sec), f) in enumerate(zip(layout, freqs, strict=True)):
        n = int(sr * sec)
        t = np.arange(n) / sr
        x = 0.3 * np.sin(2 * np.pi * f * t) + noise * rng.standard_normal(n)
        x = np.stack([x * (c + 1) / ch for c in range(ch)], 1).astype(np.float32)
        p = Path(root) / f"clip{i}.wav"
        sf.write(p, x, sr)
        out.append(str(p))
    return out


def captioned(paths: Sequence[str], captions: Sequence[str], prefix: str = "s") -> list:
    """``Sample``s ``{prefix}{i}`` over ``paths``, captions taken in turn."""
    from harness.contracts import Sample

    return [Sample(id=f"{prefix}{i}", path=p, caption=captions[i % len(captions)])
            for i, p in enumerate(paths)]
