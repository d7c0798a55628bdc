"""The shared AudioLDM/TANGO front-end against independent re-implementations of the originals."""

import numpy as np
import pytest
import soundfile as sf
import torch

from harness.errors import ConfigError, DataError
from plugins.models import _audio


def _tacotron_magnitude(wav: np.ndarray) -> np.ndarray:
    """TacotronSTFT.transform rebuilt from its definition: reflect-pad n_fft/2, conv1d with the
    windowed real/imag Fourier basis (scipy periodic Hann), magnitude."""
    from scipy.signal import get_window

    n = _audio.N_FFT
    basis = np.fft.fft(np.eye(n))[: n // 2 + 1]
    window = get_window("hann", _audio.WIN_LENGTH, fftbins=True)
    fwd = torch.tensor(np.vstack([basis.real, basis.imag]) * window, dtype=torch.float32)[:, None]
    x = torch.tensor(wav, dtype=torch.float32)[None, None]
    x = torch.nn.functional.pad(x, (n // 2, n // 2), mode="reflect")[0]
    out = torch.nn.functional.conv1d(x[None], fwd, stride=_audio.HOP_LENGTH)[0]
    re, im = out[: n // 2 + 1], out[n // 2 + 1:]
    return torch.sqrt(re ** 2 + im ** 2).numpy()


def test_log_mel_matches_tacotron_stft_and_slaney_filters():
    rng = np.random.default_rng(0)
    wav = np.clip(0.3 * rng.standard_normal(_audio.N_SAMPLES), -1, 1).astype(np.float32)
    mag = _tacotron_magnitude(wav)
    assert mag.shape == (513, 1025)
    import torchaudio.functional as AF

    fb = AF.melscale_fbanks(513, 0.0, 8000.0, 64, 16000, norm="slaney", mel_scale="slaney").T
    assert torch.allclose(fb, _audio.mel_filters(), atol=1e-6)
    expected = np.log(np.clip(fb.numpy() @ mag, 1e-5, None)).T[:1024]
    got = _audio.log_mel(torch.from_numpy(wav))
    assert got.shape == (1, 1024, 64)
    np.testing.assert_allclose(got[0].numpy(), expected, atol=2e-4)


def test_log_mel_pads_short_input_with_zeros_and_clips():
    got = _audio.log_mel(torch.full((2, 16000), 3.0))  # clipped to 1
    assert got.shape == (2, 1024, 64)
    assert torch.all(got[:, 101:] == 0)  # 16000/160 + 1 = 101 frames computed
    assert torch.isfinite(got).all()


def test_tango_waveform_double_peak_normalisation_keeps_first_segment():
    sr = 16000
    x = np.zeros(sr * 12, dtype=np.float32)
    x[: sr] = 0.1
    x[sr * 11:] = 0.9  # loud part beyond 10.24 s is dropped *after* the first normalisation
    w = _audio.tango_waveform(x, sr)
    assert w.shape == (_audio.N_SAMPLES,)
    assert w.abs().max().item() == pytest.approx(0.5, abs=1e-6)
    first = x - x.mean()
    first = 0.5 * first / (np.abs(first).max() + 1e-8)
    first = first[: _audio.N_SAMPLES]
    np.testing.assert_allclose(w.numpy(), 0.5 * first / np.abs(first).max(), atol=1e-6)


def test_audioldm2_waveform_segments_before_normalising_and_pads_end():
    sr = 16000
    x = np.zeros(sr * 12, dtype=np.float32)
    x[:sr] = 0.1
    x[sr * 11:] = 0.9
    w = _audio.audioldm2_waveform(x, sr)
    seg = x[: _audio.N_SAMPLES]
    seg = 0.5 * (seg - seg.mean()) / (np.abs(seg - seg.mean()).max() + 1e-8)
    np.testing.assert_allclose(w.numpy(), seg, atol=1e-6)
    short = _audio.audioldm2_waveform(np.ones((2, 8000), np.float32) * [[0.2], [0.7]], sr)
    assert short.shape == (_audio.N_SAMPLES,)
    assert torch.all(short[8000:] == 0)


def test_silence_gives_zeros_not_nan():
    for name in _audio.MODELS:
        w = _audio.waveform_for(name, np.zeros(16000, np.float32), 16000)
        assert torch.all(w == 0)


def test_mel_for_reads_file_resamples_and_takes_first_channel(tmp_path):
    sr = 22050
    t = np.arange(int(sr * 3)) / sr
    left = 0.3 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, np.zeros_like(left)], 1).astype(np.float32)
    path = tmp_path / "a.wav"
    sf.write(path, stereo, sr)
    for name in _audio.MODELS:
        m = _audio.mel_for(name, path)
        assert m.shape == (1, 1024, 64)
        assert m[0, :200].max() > -3  # the 440 Hz tone from the left channel is there
    w = _audio.load_audio(path, 16000, 2.5, mono="mean")
    assert w.shape == (40000,)
    assert w.abs().max() == pytest.approx(0.15, abs=0.01)  # the mean of tone and silence


def test_errors(tmp_path):
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"not audio")
    with pytest.raises(DataError, match="cannot read"):
        _audio.mel_for("tango", bad)
    with pytest.raises(ConfigError, match="known"):
        _audio.mel_for("nope", bad)
    with pytest.raises(ConfigError):
        _audio.load_audio(bad, 16000, 1.0, mono="left")
