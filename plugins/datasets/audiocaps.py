"""``audiocaps``: a local copy of AudioCaps audio plus the official CSVs.

AudioCaps itself cannot be downloaded by this project (the audio comes from YouTube or from the
authors on request), so users bring a folder of clips and the official
``train.csv``, ``val.csv``, ``test.csv`` (github.com/cdjkim/audiocaps ``dataset/``; the same
columns in ``dataset2.0/``): ``audiocap_id, youtube_id, start_time, caption``.

Why it matters for MIA (models.md §1.7, §2.6, §3.6): TANGO was trained on AudioCaps train only,
so official val/test are its natural non-members; AudioGen and AudioLDM2 trained on AudioSet,
which contains every AudioCaps clip, so for them val/test may be members too.

Parameters:

- ``root``: the audio folder. ``csv_dir``: where the CSVs are (default: ``root``).
- ``audio_pattern``: how a clip's file is named under ``root``, a Python format string over
  ``youtube_id``, ``audiocap_id``, ``start_time`` (e.g. ``30``), ``end_time`` (start + 10) and
  ``split``. Common layouts:

  - ``{youtube_id}.wav`` (default; most download scripts),
  - ``Y{youtube_id}.wav`` (AudioSet-style names),
  - ``{audiocap_id}.wav`` (downloaders that name files by caption row; every row of a clip is
    tried, the first existing file wins),
  - ``{youtube_id}_{start_time}.wav`` (TANGO's ``location`` field),
  - ``{split}/{youtube_id}.wav`` (one sub-folder per split).

- ``missing``: ``skip`` (default: clips without audio are dropped, with one warning giving the
  count) or ``error`` (DataError listing the first few). If *no* clip of a split is found, it is
  always an error, since the pattern is then almost surely wrong; the message says which of the
  common patterns would have matched.
- ``caption_policy``: ``first`` (default): one sample per clip, captioned by the row with the
  smallest ``audiocap_id``; ``all``: one sample per caption row (val/test have 5 captions per
  clip, train 1), all pointing at the clip's file. Every sample carries all captions of its clip
  in ``metadata["captions"]``.

Which part of a file is the clip: a file no longer than a clip (10 s, with 0.5 s of slack for
encoder padding) *is* the clip; a longer one is taken to be the video's full audio, and the
sample is its ``[start_time, start_time + 10)`` span (``Sample.start`` / ``Sample.duration``),
so every model scores the captioned 10 s rather than the video's first seconds.

Sample id: ``{youtube_id}_{start_time}`` (a clip is a 10 s window of a video, and one video may
give several clips); with ``caption_policy: all``, ``{youtube_id}_{start_time}#{audiocap_id}``.
Samples are ordered by id.
"""

from __future__ import annotations

import csv
import os
import string
import warnings
from pathlib import Path
from typing import Sequence

from harness import hookimpl
from harness.contracts import Dataset, Sample
from harness.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")
COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
#: an AudioCaps clip is 10 s of a video; files up to CLIP_SECONDS + CLIP_SLACK are the clip itself
CLIP_SECONDS = 10.0
CLIP_SLACK = 0.5
PATTERN_FIELDS = ("youtube_id", "audiocap_id", "start_time", "end_time", "split")
COMMON_PATTERNS = ("{youtube_id}.wav", "Y{youtube_id}.wav", "{audiocap_id}.wav",
                   "{youtube_id}_{start_time}.wav", "{split}/{youtube_id}.wav",
                   "{youtube_id}.flac", "Y{youtube_id}.flac", "{youtube_id}.mp3")
_SHOW = 5


def _fmt_time(value: str) -> str:
    """'30', '30.0' → '30'; '12.5' stays '12.5' (the official CSVs use whole seconds)."""
    try:
        f = float(value)
    except ValueError:
        raise DataError(f"audiocaps: start_time '{value}' is not a number") from None
    return str(int(f)) if f.is_integer() else repr(f)


class AudioCaps(Dataset):
    """AudioCaps clips from a local folder, split and captioned by the official CSVs."""

    path_params = ("root", "csv_dir")
    defaults = {
        "root": None,
        "csv_dir": None,
        "audio_pattern": "{youtube_id}.wav",
        "missing": "skip",
        "caption_policy": "first",
    }
    param_docs = {"root": "required: the folder holding the AudioCaps audio files",
                  "csv_dir": "the folder holding the official train.csv, val.csv, test.csv; "
                             "null = root"}
    param_choices = {"missing": ("skip", "error"), "caption_policy": ("first", "all")}

    def validate(self) -> None:
        p = self.params
        if not p["root"]:
            raise ConfigError("audiocaps needs 'root': the folder holding the AudioCaps audio")
        if p["missing"] not in self.param_choices["missing"]:
            raise ConfigError(f"audiocaps: missing must be 'skip' or 'error', got {p['missing']!r}")
        if p["caption_policy"] not in self.param_choices["caption_policy"]:
            raise ConfigError("audiocaps: caption_policy must be 'first' or 'all', got "
                              f"{p['caption_policy']!r}")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(p["audio_pattern"]) if f]
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"audiocaps: audio_pattern {p['audio_pattern']!r} is not a format "
                              f"string: {exc}") from None
        bad = [f for f in fields if f not in PATTERN_FIELDS]
        if bad or not fields:
            raise ConfigError(f"audiocaps: audio_pattern {p['audio_pattern']!r} must use fields "
                              f"among {{{'}, {'.join(PATTERN_FIELDS)}}}; e.g. "
                              f"{', '.join(COMMON_PATTERNS[:4])}")
        self._cache: dict[str, list[Sample]] = {}

    @property
    def root(self) -> Path:
        return Path(self.params["root"]).expanduser()

    @property
    def csv_dir(self) -> Path:
        return Path(self.params["csv_dir"] or self.params["root"]).expanduser()

    def splits(self) -> Sequence[str]:
        return SPLITS

    def prepare(self) -> None:
        """Nothing to render; check the folder and that at least one CSV is there."""
        if not self.root.is_dir():
            raise DataError(f"audiocaps: audio folder '{self.root}' does not exist")
        if not any((self.csv_dir / f"{s}.csv").is_file() for s in SPLITS):
            raise DataError(f"audiocaps: none of train.csv, val.csv, test.csv is in "
                            f"{self.csv_dir}; get them from github.com/cdjkim/audiocaps "
                            "(dataset/) and set csv_dir")

    # ------------------------------------------------------------------

    def _rows(self, split: str) -> list[dict]:
        path = self.csv_dir / f"{split}.csv"
        if not path.is_file():
            raise DataError(f"audiocaps: split '{split}' needs {path}, which does not exist "
                            "(official CSVs: github.com/cdjkim/audiocaps dataset/)")
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            cols = [c.strip() for c in reader.fieldnames or []]
            lacking = [c for c in COLUMNS if c not in cols]
            if lacking:
                raise DataError(f"audiocaps: {path} lacks column(s) {', '.join(lacking)}; "
                                f"expected {', '.join(COLUMNS)}, found {', '.join(cols)}")
            rows = []
            for line, row in enumerate(reader, start=2):
                row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
                try:
                    row["_acid"] = int(row["audiocap_id"])
                except ValueError:
                    raise DataError(f"audiocaps: {path} line {line}: audiocap_id "
                                    f"'{row['audiocap_id']}' is not an integer") from None
                if not row["youtube_id"]:
                    raise DataError(f"audiocaps: {path} line {line} has no youtube_id")
                row["start_time"] = _fmt_time(row["start_time"])
                rows.append(row)
        return rows

    def _path(self, row: dict, split: str, pattern: str) -> Path:
        return self.root / pattern.format(
            youtube_id=row["youtube_id"], audiocap_id=row["audiocap_id"],
            start_time=row["start_time"],
            end_time=_fmt_time(str(float(row["start_time"]) + 10)), split=split)

    def _find_audio(self, rows: list[dict], split: str, pattern: str) -> Path | None:
        for row in rows:  # rows of one clip, by audiocap_id
            f = self._path(row, split, pattern)
            if f.is_file():
                return f
            if "{audiocap_id}" not in pattern:
                return None
        return None

    def samples(self, split: str) -> list[Sample]:
        if split not in SPLITS:
            raise DataError(f"audiocaps has no split '{split}'. Available: {', '.join(SPLITS)}")
        if split in self._cache:
            return list(self._cache[split])
        self.prepare()
        clips: dict[str, list[dict]] = {}
        for row in self._rows(split):
            clips.setdefault(f"{row['youtube_id']}_{row['start_time']}", []).append(row)
        pattern = self.params["audio_pattern"]
        out: list[Sample] = []
        missing: list[str] = []
        for clip_id in sorted(clips):
            rows = sorted(clips[clip_id], key=lambda r: r["_acid"])
            audio = self._find_audio(rows, split, pattern)
            if audio is None:
                missing.append(clip_id)
                continue
            base = {"youtube_id": rows[0]["youtube_id"], "start_time": rows[0]["start_time"],
                    "captions": [r["caption"] for r in rows],
                    "audiocap_ids": [r["_acid"] for r in rows], "split": split}
            chosen = rows[:1] if self.params["caption_policy"] == "first" else rows
            for r in chosen:
                sid = clip_id if self.params["caption_policy"] == "first" \
                    else f"{clip_id}#{r['_acid']}"
                out.append(Sample(id=sid, path=os.fspath(audio), caption=r["caption"],
                                  metadata={**base, "audiocap_id": r["_acid"]},
                                  **self._span(audio, rows[0]["start_time"])))
        if missing:
            self._report_missing(split, missing, len(clips), clips, pattern, found=len(out))
        self._cache[split] = out
        return list(out)

    @staticmethod
    def _span(audio, start_time: str) -> dict:
        """{start, duration} of the clip in ``audio``: the whole file when it is clip-length,
        else ``start_time`` + 10 s of the full-length recording."""
        from harness.segments import file_duration

        try:
            seconds = file_duration(audio)
        except DataError:
            return {}   # unreadable: the model that reads it says so, naming the file
        if seconds <= CLIP_SECONDS + CLIP_SLACK:
            return {}
        return {"start": float(start_time), "duration": CLIP_SECONDS}

    def _report_missing(self, split, missing, total, clips, pattern, found) -> None:
        example = self._path(min(clips[missing[0]], key=lambda r: r["_acid"]), split, pattern)
        if found == 0:
            hint = ""
            probe = [sorted(clips[c], key=lambda r: r["_acid"]) for c in sorted(clips)[:50]]
            fits = [p for p in COMMON_PATTERNS if p != pattern
                    and any(self._find_audio(rows, split, p) for rows in probe)]
            if fits:
                hint = f" Files matching audio_pattern {fits[0]!r} exist: set that."
            raise DataError(f"audiocaps: none of the {total} {split} clips has audio under "
                            f"{self.root} with audio_pattern {pattern!r} (e.g. expected "
                            f"{example}).{hint}")
        msg = (f"audiocaps: {len(missing)} of {total} {split} clips have no audio under "
               f"{self.root} (audio_pattern {pattern!r}), e.g. "
               f"{', '.join(missing[:_SHOW])}")
        if self.params["missing"] == "error":
            raise DataError(msg + "; set missing: skip to use the clips that exist")
        warnings.warn(msg + "; skipped (missing: skip)", stacklevel=3)


@hookimpl
def register_datasets(register):
    register("audiocaps", "plugins.datasets.audiocaps:AudioCaps",
             description="local AudioCaps audio + official train/val/test CSVs "
                         "(id = youtube_id_start)")
