"""The one checked reader of input files (audio and MIDI), used for every sample of every data
source before any model loads.

Why: a decoder that accepts whatever it is given turns broken data into numbers. MP3 bytes named
``.wav``, a WAV whose header claims 10 s but holds 60 ms, NaN samples, digital silence or a
one-sample clip all decode "fine" and yield an AUC. Each is refused here with a one-line error
that names the file and what to do. The format comes from the file's first bytes, not its name;
a truncated WAV is recognised from its header and size, without allocating what the header
claims; content (finite, not silent) is checked block by block, so a long file costs no more
memory than one block.
"""

from __future__ import annotations

import errno
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import DataError

#: shortest clip accepted (one 512-sample frame at 16 kHz); a model may ask for more
MIN_SECONDS = 0.032
#: a clip whose RMS is below this is treated as silent (16-bit dither is around -100 dBFS too)
SILENCE_DBFS = -100.0
#: samples decoded per block when checking content
_BLOCK = 1 << 16

#: data-chunk sizes that writers streaming to a pipe leave in the header (ffmpeg: 0xFFFFFFFF,
#: sox: 0x7FFFF000, others 0x7FFFFFFF): not a claim, the data runs to the end of the file
_OPEN_SIZES = (0xFFFFFFFF, 0x7FFFFFFF, 0x7FFFF000)

#: extension -> the format its bytes must have
EXTENSION_FORMATS = {"wav": "wav", "wave": "wav", "flac": "flac", "ogg": "ogg", "oga": "ogg",
                     "opus": "ogg", "mp3": "mp3", "aif": "aiff", "aiff": "aiff", "aifc": "aiff",
                     "mid": "midi", "midi": "midi"}
_NAMES = {"wav": "WAV (RIFF/WAVE)", "flac": "FLAC", "ogg": "Ogg", "mp3": "MPEG audio (MP3)",
          "aiff": "AIFF",
          "midi": "MIDI (MThd)"}
_CONVERT = {"midi": "", "mp3": " or convert it (ffmpeg -i IN OUT.wav)"}


class InputError(DataError):
    """An input file is unusable; the message is one line naming the file."""


@dataclass(frozen=True)
class FileInfo:
    path: str
    format: str
    sample_rate: int = 0
    frames: int = 0
    channels: int = 0

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _fail(path, problem: str) -> InputError:
    return InputError(f"{path}: {problem}")


# ---------------------------------------------------------------------------------------------
# format


def sniff(head: bytes) -> str | None:
    """The format of a file from its first 12 bytes, or None."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"MThd":
        return "midi"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def check_path(path: str | os.PathLike) -> Path:
    """``path`` is a regular file that can be opened: not missing, not a directory, not a
    symlink loop, not empty."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _fail(p, "is a symlink loop; point the link at a real file or remove "
                           "it") from None
        if p.is_symlink():
            raise _fail(p, f"is a broken symlink (to {os.readlink(p)}); fix or remove it") from None
        raise _fail(p, "does not exist") from None
    import stat

    if stat.S_ISDIR(st.st_mode):
        raise _fail(p, "is a directory, not a file; rename it or move it out of the data folder")
    if not stat.S_ISREG(st.st_mode):
        raise _fail(p, "is not a regular file (a device, socket or pipe)")
    if st.st_size == 0:
        raise _fail(p, "is empty (0 bytes); the copy or render was cut short")
    return p


def file_format(path: str | os.PathLike) -> str:
    """The sniffed format, checked against the extension (when the extension is a known one)."""
    p = check_path(path)
    with open(p, "rb") as fh:
        head = fh.read(12)
    fmt = sniff(head)
    ext = p.suffix.lower().lstrip(".")
    want = EXTENSION_FORMATS.get(ext)
    if fmt is None:
        raise _fail(p, f"is not audio or MIDI: its first bytes {head[:8]!r} match no known "
                       "format (WAV, FLAC, Ogg, MP3, AIFF, MIDI)")
    if want is not None and fmt != want:
        right = {"wav": ".wav", "flac": ".flac", "ogg": ".ogg", "mp3": ".mp3", "aiff": ".aiff",
                 "midi": ".mid"}[fmt]
        raise _fail(p, f"holds {_NAMES[fmt]} data but is named .{ext}; rename it to "
                       f"{right}{_CONVERT.get(fmt, '')}")
    return fmt


# ---------------------------------------------------------------------------------------------
# WAV header


def _wav_header(p: Path) -> tuple[int, int, int, int] | None:
    """(sample_rate, channels, block_align, frames present) of a RIFF WAV, checking that the
    data chunk is as long as its header says. None for RF64/RIFX (left to libsndfile)."""
    size = p.stat().st_size
    with open(p, "rb") as fh:
        riff = fh.read(12)
        if riff[:4] != b"RIFF":
            return None
        fmt = None
        while True:
            hdr = fh.read(8)
            if len(hdr) < 8:
                break
            cid, clen = hdr[:4], struct.unpack("<I", hdr[4:])[0]
            start = fh.tell()
            if cid == b"fmt ":
                body = fh.read(min(clen, 40))
                if len(body) < 16:
                    raise _fail(p, "WAV 'fmt ' chunk is cut short")
                _, ch, sr, _, align = struct.unpack("<HHIIH", body[:14])
                fmt = (sr, ch, align)
            elif cid == b"data":
                if fmt is None:
                    raise _fail(p, "WAV has a data chunk before its 'fmt ' chunk")
                sr, ch, align = fmt
                if not sr or not ch or not align:
                    raise _fail(p, f"WAV header is invalid ({sr} Hz, {ch} channels)")
                present = size - start
                if clen in _OPEN_SIZES and present:  # written to a pipe: size left open
                    clen = present - present % align
                if clen == 0:
                    raise _fail(p, "WAV has no audio frames (a header only); re-export the "
                                   "recording")
                if present < clen:
                    claimed = clen // align
                    raise _fail(p, f"WAV is truncated: its header claims {claimed} frames "
                                   f"({claimed / sr:.2f} s) but the file holds "
                                   f"{present // align} ({present // align / sr:.2f} s); copy "
                                   "or export it again")
                return sr, ch, align, clen // align
            fh.seek(start + clen + (clen & 1))
            if fh.tell() > size:
                break
    raise _fail(p, "WAV has no data chunk" if fmt else "WAV has no 'fmt ' chunk")


# ---------------------------------------------------------------------------------------------
# audio


def check_audio(path: str | os.PathLike, min_seconds: float = MIN_SECONDS,
                fmt: str | None = None) -> FileInfo:
    """Check an audio file end to end (format, header, every sample); raise InputError."""
    import soundfile as sf

    p = Path(path)
    fmt = fmt or file_format(p)
    if fmt == "midi":
        raise _fail(p, "is a MIDI file where audio is expected")
    if fmt == "wav":
        _wav_header(p)
    try:
        info = sf.info(str(p))
    except Exception as exc:
        raise _fail(p, f"cannot be decoded as {_NAMES[fmt]} ({' '.join(str(exc).split())})")
    sr, ch = int(info.samplerate), int(info.channels)
    if sr <= 0 or ch <= 0:
        raise _fail(p, f"has an invalid header ({sr} Hz, {ch} channels)")
    n = 0
    sq = 0.0
    nonfinite = 0
    first_bad = None
    try:
        for block in sf.blocks(str(p), blocksize=_BLOCK, dtype="float32", always_2d=True):
            bad = ~np.isfinite(block)
            if bad.any():
                if first_bad is None:
                    first_bad = n + int(np.argwhere(bad)[0][0])
                    kind = "NaN" if np.isnan(block[bad]).any() else "infinite"
                nonfinite += int(bad.sum())
            else:
                sq += float(np.square(block, dtype=np.float64).sum())
            n += block.shape[0]
    except Exception as exc:
        raise _fail(p, f"cannot be decoded past frame {n} ({' '.join(str(exc).split())}); "
                       "the file is damaged or truncated")
    if nonfinite:
        raise _fail(p, f"has {nonfinite} {kind} sample value(s) (first at frame {first_bad}); "
                       "fix the export (e.g. clip or re-render it)")
    if n == 0:
        raise _fail(p, "has no audio frames; re-export the recording")
    if info.frames > 0 and n < info.frames:
        raise _fail(p, f"is truncated: its header claims {info.frames} frames "
                       f"({info.frames / sr:.3g} s) but {n} decode")
    seconds = n / sr
    if seconds < min_seconds:
        raise _fail(p, f"is too short: {n} frame(s) = {seconds:.3g} s; the minimum is "
                       f"{min_seconds:g} s")
    rms = math.sqrt(sq / (n * ch))
    dbfs = 20 * math.log10(rms) if rms > 0 else -math.inf
    if dbfs < SILENCE_DBFS:
        raise _fail(p, f"is silent (RMS {dbfs:.1f} dBFS, below {SILENCE_DBFS:g} dBFS); remove "
                       "it from the data")
    return FileInfo(str(p), fmt, sr, n, ch)


def read_audio(path: str | os.PathLike, min_seconds: float = MIN_SECONDS
               ) -> tuple[np.ndarray, int]:
    """Checked decode: float32 [channels, samples] and the sample rate."""
    import soundfile as sf

    info = check_audio(path, min_seconds)
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), int(sr if sr else info.sample_rate)


# ---------------------------------------------------------------------------------------------
# MIDI


def check_midi(path: str | os.PathLike, fmt: str | None = None) -> FileInfo:
    """Structure of a Standard MIDI File: header, and every track chunk inside the file."""
    p = Path(path)
    fmt = fmt or file_format(p)
    if fmt != "midi":
        raise _fail(p, f"holds {_NAMES[fmt]} data where a MIDI file is expected")
    data = p.read_bytes()
    if len(data) < 14:
        raise _fail(p, "MIDI header is cut short; the file is truncated")
    hlen, kind, ntracks, division = struct.unpack(">IHHH", data[4:14])
    if hlen < 6 or kind > 2 or ntracks == 0 or division == 0:
        raise _fail(p, f"MIDI header is invalid (format {kind}, {ntracks} tracks, division "
                       f"{division})")
    pos, found = 8 + hlen, 0
    while pos + 8 <= len(data) and found < ntracks:
        cid, clen = data[pos:pos + 4], struct.unpack(">I", data[pos + 4:pos + 8])[0]
        if pos + 8 + clen > len(data):
            raise _fail(p, f"MIDI is truncated: chunk {cid!r} claims {clen} bytes, "
                           f"{len(data) - pos - 8} remain")
        found += cid == b"MTrk"
        pos += 8 + clen
    if found < ntracks:
        raise _fail(p, f"MIDI is truncated: the header declares {ntracks} track(s), "
                       f"{found} are present")
    return FileInfo(str(p), "midi")


# ---------------------------------------------------------------------------------------------


def check_file(path: str | os.PathLike, min_seconds: float = MIN_SECONDS) -> FileInfo:
    """Audio or MIDI, whichever the bytes say (and the name agrees with)."""
    fmt = file_format(path)
    return check_midi(path, fmt) if fmt == "midi" else check_audio(path, min_seconds, fmt)


def check_files(paths: Iterable[str | os.PathLike], where: str,
                min_seconds: float = MIN_SECONDS) -> list[FileInfo]:
    """Check every file; the first problem becomes ``"<where>: <file>: <problem>"``."""
    out = []
    for path in paths:
        try:
            out.append(check_file(path, min_seconds))
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
    return out
