"""``harness.inputs``: every broken audio/MIDI kind of issue #15 is refused with a one-line error
naming the file; good files of every supported format pass."""

from __future__ import annotations

import tracemalloc

import hostile
import numpy as np
import pytest
import soundfile as sf

from harness import inputs
from harness.inputs import InputError


@pytest.mark.parametrize("kind", sorted(hostile.BROKEN_AUDIO))
def test_broken_audio_is_refused(tmp_path, kind):
    make, words = hostile.BROKEN_AUDIO[kind]
    path = make(tmp_path / "clip.wav")
    with pytest.raises(InputError) as err:
        inputs.check_file(path)
    msg = str(err.value)
    assert words in msg and path in msg and "\n" not in msg


@pytest.mark.parametrize("kind", sorted(hostile.BROKEN_MIDI))
def test_broken_midi_is_refused(tmp_path, kind):
    make, words = hostile.BROKEN_MIDI[kind]
    path = make(tmp_path / "tune.mid")
    with pytest.raises(InputError) as err:
        inputs.check_file(path)
    assert words in str(err.value) and path in str(err.value)


@pytest.mark.parametrize("fmt,subtype,ext", [("WAV", "PCM_16", "wav"), ("WAV", "FLOAT", "wav"),
                                             ("FLAC", "PCM_16", "flac"),
                                             ("OGG", "VORBIS", "ogg"), ("MP3", None, "mp3"),
                                             ("AIFF", "PCM_16", "aiff")])
def test_good_audio_passes(tmp_path, fmt, subtype, ext):
    path = tmp_path / f"ok.{ext}"
    sf.write(str(path), np.stack([hostile.tone(0.5), hostile.tone(0.5, freq=220)], 1), 16000,
             format=fmt, subtype=subtype)
    info = inputs.check_file(path)
    assert info.format == {"WAV": "wav", "FLAC": "flac", "OGG": "ogg", "MP3": "mp3",
                           "AIFF": "aiff"}[fmt]
    assert info.channels == 2 and info.sample_rate == 16000
    assert abs(info.seconds - 0.5) < 0.1


def test_good_midi_and_stdlib_wav_pass(tmp_path):
    assert inputs.check_file(hostile.midi(tmp_path / "a.mid")).format == "midi"
    info = inputs.check_file(hostile.write_wave_stdlib(tmp_path / "b.wav", hostile.tone(0.1)))
    assert info.frames == 1600


def test_quiet_but_not_silent_passes_and_threshold_is_the_documented_one(tmp_path):
    quiet = hostile.float_wav(tmp_path / "q.wav", hostile.tone(amp=10 ** (-90 / 20) * 2 ** 0.5))
    inputs.check_file(quiet)  # -90 dBFS RMS
    faint = hostile.float_wav(tmp_path / "f.wav", hostile.tone(amp=10 ** (-110 / 20) * 2 ** 0.5))
    with pytest.raises(InputError, match=r"silent \(RMS -110.0 dBFS"):
        inputs.check_file(faint)


def test_minimum_length_is_a_parameter(tmp_path):
    path = hostile.wav(tmp_path / "a.wav", hostile.tone(0.1))
    inputs.check_file(path)
    with pytest.raises(InputError, match="too short.*minimum is 1 s"):
        inputs.check_file(path, min_seconds=1.0)


def test_truncated_claim_is_not_allocated(tmp_path):
    # 3 hours claimed (345 MB of PCM16): refused from the header, memory stays small
    path = hostile.truncated_wav(tmp_path / "long.wav", claimed_seconds=3 * 3600,
                                 present_frames=1600)
    tracemalloc.start()
    with pytest.raises(InputError, match="claims 172800000 frames"):
        inputs.check_file(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000


def test_extension_mismatch_names_both(tmp_path):
    path = hostile.mp3_named_wav(tmp_path / "clip.wav")
    with pytest.raises(InputError, match=r"holds MPEG audio \(MP3\) data but is named .wav; "
                                         r"rename it to .mp3"):
        inputs.check_file(path)
    flac = tmp_path / "x.ogg"
    sf.write(str(flac), hostile.tone(0.2), 16000, format="FLAC")
    with pytest.raises(InputError, match="FLAC data but is named .ogg"):
        inputs.check_file(flac)


def test_directories_links_and_missing(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        inputs.check_file(hostile.directory_named_wav(tmp_path / "d.wav"))
    with pytest.raises(InputError, match="symlink loop"):
        inputs.check_file(hostile.symlink_loop(tmp_path / "loop.wav"))
    (tmp_path / "broken.wav").symlink_to(tmp_path / "gone.wav")
    with pytest.raises(InputError, match="broken symlink"):
        inputs.check_file(tmp_path / "broken.wav")
    with pytest.raises(InputError, match="does not exist"):
        inputs.check_file(tmp_path / "nope.wav")


def test_check_files_prefixes_the_key_path(tmp_path):
    good = hostile.wav(tmp_path / "a.wav")
    bad = hostile.silent_wav(tmp_path / "b.wav")
    with pytest.raises(InputError, match=r"^data\.d\.members: .*b\.wav: is silent"):
        inputs.check_files([good, bad], where="data.d.members")
    assert len(inputs.check_files([good], where="x")) == 1


def test_read_audio_is_checked(tmp_path):
    x, sr = inputs.read_audio(hostile.wav(tmp_path / "a.wav"))
    assert x.shape == (1, 16000) and sr == 16000
    with pytest.raises(InputError):
        inputs.read_audio(hostile.nan_wav(tmp_path / "n.wav"))


@pytest.mark.parametrize("placeholder", [0xFFFFFFFF, 0x7FFFF000])
def test_wav_written_to_a_pipe_is_not_truncated(tmp_path, placeholder):
    # sox/ffmpeg writing to a pipe cannot seek back to fix the data size
    path = tmp_path / "piped.wav"
    hostile.truncated_wav(path, claimed_seconds=0, present_frames=4000)
    data = bytearray(path.read_bytes())
    data[40:44] = placeholder.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    assert inputs.check_file(path).frames == 4000
