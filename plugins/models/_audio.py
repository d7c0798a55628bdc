"""Audio loading and the AudioLDM / TANGO mel front-end, reproduced as those models were trained.

Why a module of its own: the latent of a clip is a function of its mel, so a membership signal is
only meaningful if the mel is computed the way the training data was (models.md §2.4, §3.4). Small
deviations (a different STFT padding, a missing peak normalisation, a different mel filter) shift
every latent and therefore every denoising loss. Both models (and the diffusion canary, which
reuses this front-end) share the same mel; they differ only in how the waveform is cut and
normalised before it.

What matches the originals, and how:

* STFT. The originals use ``TacotronSTFT`` (``audioldm2/utilities/audio/stft.py``, TANGO's vendored
  ``audioldm/audio/stft.py``): reflect-pad by n_fft/2 on both sides, then a conv1d with a
  Fourier basis windowed by ``scipy.signal.get_window("hann", 1024, fftbins=True)`` (a *periodic*
  Hann window), stride = hop, magnitude ``sqrt(re² + im²)``. That is exactly
  ``torch.stft(center=True, pad_mode="reflect", window=torch.hann_window(1024, periodic=True),
  onesided=True, normalized=False).abs()``; ``tests/plugins/models/test_audio.py`` rebuilds the
  conv basis independently and checks the two agree to float32 precision.
* Mel filters. ``librosa.filters.mel(sr=16000, n_fft=1024, n_mels=64, fmin=0, fmax=8000)`` with
  librosa's defaults (slaney mel scale, slaney area normalisation) — the call the originals make
  positionally (librosa 0.9). TANGO ships its own copy of this matrix in
  ``pytorch_model_stft.bin``; the TANGO plugin checks the shipped matrix against ours and uses the
  shipped one.
* Compression: ``log(clamp(mel, min=1e-5))`` (``dynamic_range_compression`` with C=1); no mean/std
  normalisation.
* Frames: 163,840 samples give 1 + 163840/160 = 1025 frames; the originals' ``pad_spec`` keeps the
  first 1024 (zero-padding in log space if there were fewer). The result is [1024, 64]
  (time, mel), which the models see as [B, 1, 1024, 64].
* Input clipping: waveforms are clipped to [-1, 1] (TANGO: ``torch.clip`` + ``nan_to_num``;
  AudioLDM2: ``get_mel_from_wav`` clips too).

Waveform preparation (the part that differs):

* AudioLDM2 (``AudioDataset.read_wav_file``): take a 10.24 s segment *at the source rate*
  (the original picks a random start; we take the start, deterministic), resample to 16 kHz with
  ``torchaudio.functional.resample``, keep the first channel, ``x -= mean; x /= max|x| + 1e-8;
  x *= 0.5``, zero-pad at the end to 163,840 samples (``pad_wav_start_sample = 0`` in the
  original, ``trim_wav = False``).
* TANGO (``tools/torch_tools.read_wav_file``): resample the *whole* file, first channel, the same
  peak normalisation, keep the first 163,840 samples (or zero-pad at the end), then peak-normalise
  a second time to 0.5. For an all-silent clip the original divides 0/0 and its ``nan_to_num``
  turns the NaNs into zeros; we skip the division instead, which gives the same zeros.

Deliberate differences: audio is read with ``soundfile`` (torchaudio.load needs FFmpeg here), which
decodes the same PCM samples as float32 in [-1, 1].
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
import torch

from harness.errors import ConfigError, DataError

SAMPLE_RATE = 16000
SECONDS = 10.24
N_SAMPLES = 163840          # 10.24 s at 16 kHz = 1024 frames × hop 160
N_FFT = 1024
HOP_LENGTH = 160
WIN_LENGTH = 1024
N_MELS = 64
FMIN = 0.0
FMAX = 8000.0
N_FRAMES = 1024

#: models whose front-end this module reproduces
MODELS = ("audioldm2", "tango")


# ---------------------------------------------------------------------------------------------
# reading


def read_audio(path: str | os.PathLike) -> tuple[torch.Tensor, int]:
    """Decode a file to float32 [channels, samples] and its sample rate (soundfile)."""
    import soundfile as sf

    try:
        data, sr = sf.read(os.fspath(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises its own LibsndfileError / RuntimeError
        raise DataError(f"cannot read audio file '{path}': {exc}. Use a wav/flac/ogg file "
                        "readable by soundfile.") from exc
    if data.shape[0] == 0:
        raise DataError(f"audio file '{path}' has no samples")
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(sr)


def _as_2d(audio) -> torch.Tensor:
    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.dim() == 1:
        x = x[None]
    if x.dim() != 2:
        raise DataError(f"audio must be [samples] or [channels, samples], got shape {tuple(x.shape)}")
    return x


def _resample(x: torch.Tensor, sr: int, target: int) -> torch.Tensor:
    if sr == target:
        return x
    import torchaudio.functional as AF

    return AF.resample(x, orig_freq=int(sr), new_freq=int(target))


def _fit(x: torch.Tensor, n: int) -> torch.Tensor:
    """Keep the first ``n`` samples, or zero-pad at the end (both originals' ``pad_wav``)."""
    if x.shape[-1] >= n:
        return x[..., :n]
    return torch.nn.functional.pad(x, (0, n - x.shape[-1]))


def load_audio(path: str | os.PathLike, sample_rate: int, seconds: float,
               mono: Literal["first", "mean"] = "first") -> torch.Tensor:
    """Audio at ``sample_rate``, one channel, exactly ``round(seconds * sample_rate)`` samples
    (first part kept, zero-padded at the end). ``mono="first"`` is what AudioLDM/TANGO do."""
    if mono not in ("first", "mean"):
        raise ConfigError(f"mono must be 'first' or 'mean', got {mono!r}")
    x, sr = read_audio(path)
    x = x[:1] if mono == "first" else x.mean(0, keepdim=True)
    x = _resample(x, sr, sample_rate)[0]
    return _fit(x, int(round(seconds * sample_rate))).contiguous()


# ---------------------------------------------------------------------------------------------
# per-model waveform preparation


def _peak_half(x: torch.Tensor) -> torch.Tensor:
    """``normalize_wav`` of both originals: remove the mean, scale the peak to 0.5."""
    x = x - x.mean()
    return 0.5 * x / (x.abs().max() + 1e-8)


def audioldm2_waveform(audio, sample_rate: int) -> torch.Tensor:
    """AudioLDM2 training waveform [163840] from audio [channels, samples] at ``sample_rate``."""
    x = _as_2d(audio)
    x = x[:, : int(sample_rate * SECONDS)]  # segment first, at the source rate (start 0)
    x = _resample(x, sample_rate, SAMPLE_RATE)[0]
    return _fit(_peak_half(x), N_SAMPLES).contiguous()


def tango_waveform(audio, sample_rate: int) -> torch.Tensor:
    """TANGO training waveform [163840]: double 0.5 peak normalisation around the cut."""
    x = _as_2d(audio)
    x = _resample(x, sample_rate, SAMPLE_RATE)[0]
    x = _fit(_peak_half(x), N_SAMPLES)
    peak = x.abs().max()
    if peak > 0:
        x = 0.5 * x / peak
    return x.contiguous()


_WAVEFORM = {"audioldm2": audioldm2_waveform, "tango": tango_waveform}


def waveform_for(model_name: str, source, sample_rate: int | None = None) -> torch.Tensor:
    """The training-time waveform of ``model_name`` ("audioldm2" | "tango") from a file path, or
    from an array/tensor [samples] or [channels, samples] at ``sample_rate``."""
    if model_name not in _WAVEFORM:
        raise ConfigError(f"no mel front-end for model '{model_name}'; known: {', '.join(MODELS)}")
    if isinstance(source, (str, os.PathLike)):
        audio, sr = read_audio(source)
    else:
        if sample_rate is None:
            raise ConfigError("waveform_for: pass sample_rate with an in-memory waveform")
        audio, sr = source, int(sample_rate)
    return _WAVEFORM[model_name](audio, sr)


# ---------------------------------------------------------------------------------------------
# mel


def mel_filters() -> torch.Tensor:
    """[64, 513] librosa slaney mel filterbank, as ``TacotronSTFT.mel_basis``.

    Without librosa, torchaudio's slaney filterbank is used: the tests check both agree to 1e-6.
    """
    try:
        import librosa
    except ImportError:
        import torchaudio.functional as AF

        return AF.melscale_fbanks(N_FFT // 2 + 1, FMIN, FMAX, N_MELS, SAMPLE_RATE, norm="slaney",
                                  mel_scale="slaney").T.contiguous().float()
    fb = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)
    return torch.from_numpy(np.asarray(fb, dtype=np.float32))


_FILTERS: dict = {}


def _default_filters() -> torch.Tensor:
    if "mel" not in _FILTERS:
        _FILTERS["mel"] = mel_filters()
    return _FILTERS["mel"]


def log_mel(wav: torch.Tensor, mel_basis: torch.Tensor | None = None) -> torch.Tensor:
    """TacotronSTFT log-mel of 16 kHz waveforms [B, n] (or [n]) → [B, 1024, 64] (time, mel)."""
    x = torch.as_tensor(wav, dtype=torch.float32)
    if x.dim() == 1:
        x = x[None]
    x = torch.nan_to_num(x.clamp(-1.0, 1.0))
    basis = (_default_filters() if mel_basis is None else mel_basis).to(x.device, torch.float32)
    window = torch.hann_window(WIN_LENGTH, periodic=True, device=x.device, dtype=torch.float32)
    spec = torch.stft(x, N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH, window=window,
                      center=True, pad_mode="reflect", normalized=False, onesided=True,
                      return_complex=True).abs()                       # [B, 513, frames]
    mel = torch.log(torch.clamp(torch.matmul(basis, spec), min=1e-5))  # [B, 64, frames]
    mel = mel.transpose(1, 2)
    frames = mel.shape[1]
    if frames >= N_FRAMES:
        return mel[:, :N_FRAMES].contiguous()
    return torch.nn.functional.pad(mel, (0, 0, 0, N_FRAMES - frames))


def mel_for(model_name: str, source, sample_rate: int | None = None,
            mel_basis: torch.Tensor | None = None) -> torch.Tensor:
    """[1, 1024, 64] log-mel of one clip exactly as ``model_name`` saw its training clips."""
    return log_mel(waveform_for(model_name, source, sample_rate), mel_basis)
