"""audiocaps: a tiny fake AudioCaps folder (generated WAVs + CSVs in the official layout, columns
audiocap_id, youtube_id, start_time, caption) read through the plugin as a user would."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf

from harness.errors import ConfigError, DataError
from plugins.datasets.audiocaps import AudioCaps

HEADER = ["audiocap_id", "youtube_id", "start_time", "caption"]
TRAIN = [
    (91139, "r1nicOVtvkQ", 130, "A woman talks nearby as water pours"),
    (58146, "UDGBjjwyaqE", 20, "Multiple clanging and clanking sounds"),
    (11542, "7fmOlUlwoNg", 20, "The wind is blowing, insects are singing, and rustling occurs"),
    (60000, "MISSINGclip", 30, "A clip whose audio was never downloaded"),
]
# val/test: 5 captions per clip, rows not sorted by audiocap_id (as in the official files)
VAL = [(97151, "rqfQRErjfk8", 170, "A large crowd cheers and applauds"),
       (97152, "rqfQRErjfk8", 170, "A crowd is cheering and shouting"),
       (97148, "rqfQRErjfk8", 170, "An audience cheers"),
       (97149, "rqfQRErjfk8", 170, "Crowd applause"),
       (97150, "rqfQRErjfk8", 170, "People cheer loudly"),
       (97200, "a_b-c_d", 0, "A dog barks"),
       (97199, "a_b-c_d", 0, "Dog barking in the distance")]


def _wav(path, sr=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), 0.1 * np.random.default_rng(0).standard_normal(sr // 10), sr)


def _csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(rows)


@pytest.fixture
def ac(tmp_path):
    root = tmp_path / "audiocaps"
    _csv(tmp_path / "csv" / "train.csv", TRAIN)
    _csv(tmp_path / "csv" / "val.csv", VAL)
    for _, yt, _, _ in TRAIN[:3] + VAL:
        _wav(root / f"{yt}.wav")
    return root, tmp_path / "csv"


def test_train_ids_captions_and_missing_skipped_with_warning(ac):
    root, csv_dir = ac
    ds = AudioCaps(root=str(root), csv_dir=str(csv_dir))
    ds.prepare()
    assert ds.splits() == ("train", "val", "test")
    with pytest.warns(UserWarning, match="1 of 4 train clips have no audio.*MISSINGclip_30"):
        got = ds.samples("train")
    assert [s.id for s in got] == ["7fmOlUlwoNg_20", "UDGBjjwyaqE_20", "r1nicOVtvkQ_130"]
    assert got[2].caption == "A woman talks nearby as water pours"
    assert got[2].path == str(root / "r1nicOVtvkQ.wav")
    assert got[2].metadata["audiocap_id"] == 91139


def test_val_first_caption_by_audiocap_id(ac):
    root, csv_dir = ac
    got = AudioCaps(root=str(root), csv_dir=str(csv_dir)).samples("val")
    assert [s.id for s in got] == ["a_b-c_d_0", "rqfQRErjfk8_170"]
    assert got[1].caption == "An audience cheers"          # audiocap_id 97148, the smallest
    assert got[1].metadata["audiocap_ids"] == [97148, 97149, 97150, 97151, 97152]
    assert len(got[1].metadata["captions"]) == 5


def test_val_all_captions(ac):
    root, csv_dir = ac
    got = AudioCaps(root=str(root), csv_dir=str(csv_dir), caption_policy="all").samples("val")
    assert len(got) == 7 and len({s.id for s in got}) == 7
    assert [s.id for s in got][:2] == ["a_b-c_d_0#97199", "a_b-c_d_0#97200"]
    assert {s.path for s in got if s.id.startswith("rqf")} == {str(root / "rqfQRErjfk8.wav")}


def test_missing_error_mode_and_missing_csv(ac):
    root, csv_dir = ac
    with pytest.raises(DataError, match="1 of 4 train clips.*set missing: skip"):
        AudioCaps(root=str(root), csv_dir=str(csv_dir), missing="error").samples("train")
    with pytest.raises(DataError, match="test.csv, which does not exist"):
        AudioCaps(root=str(root), csv_dir=str(csv_dir)).samples("test")
    with pytest.raises(DataError, match="Available: train, val, test"):
        AudioCaps(root=str(root), csv_dir=str(csv_dir)).samples("validation")
    with pytest.raises(DataError, match="none of train.csv"):
        AudioCaps(root=str(root)).prepare()  # csv_dir defaults to root, which has no CSVs
    with pytest.raises(DataError, match="does not exist"):
        AudioCaps(root=str(root / "nope"), csv_dir=str(csv_dir)).prepare()


def test_alternative_patterns(tmp_path):
    root = tmp_path / "a"
    _csv(root / "val.csv", VAL)                             # csv_dir defaults to root
    for acid, yt, start, _ in VAL:
        if acid in (97149, 97199):                          # only one row file per clip exists
            _wav(root / "by_id" / f"{acid}.wav")
        _wav(root / f"Y{yt}.wav")
        _wav(root / "val" / f"{yt}_{start}.wav")
    got = AudioCaps(root=str(root), audio_pattern="by_id/{audiocap_id}.wav").samples("val")
    assert [s.path for s in got] == [str(root / "by_id/97199.wav"), str(root / "by_id/97149.wav")]
    got = AudioCaps(root=str(root), audio_pattern="{split}/{youtube_id}_{start_time}.wav")
    assert len(got.samples("val")) == 2
    # wrong pattern: nothing found at all is an error that names the pattern that would work
    with pytest.raises(DataError, match="none of the 2 val clips.*'Y\\{youtube_id\\}.wav' exist"):
        AudioCaps(root=str(root)).samples("val")


def test_bad_inputs(tmp_path):
    with pytest.raises(ConfigError, match="needs 'root'"):
        AudioCaps()
    with pytest.raises(ConfigError, match="audio_pattern"):
        AudioCaps(root="x", audio_pattern="{ytid}.wav")
    with pytest.raises(ConfigError, match="caption_policy"):
        AudioCaps(root="x", caption_policy="random")
    (tmp_path / "train.csv").write_text("youtube_id,caption\nabc,x\n")
    with pytest.raises(DataError, match="lacks column\\(s\\) audiocap_id, start_time"):
        AudioCaps(root=str(tmp_path)).samples("train")
    (tmp_path / "train.csv").write_text("audiocap_id,youtube_id,start_time,caption\n"
                                        "1,abc,thirty,x\n")
    with pytest.raises(DataError, match="start_time 'thirty' is not a number"):
        AudioCaps(root=str(tmp_path)).samples("train")


def test_registered_and_resolvable(ac):
    from harness import datasets, plugins

    root, csv_dir = ac
    plugins.load_plugins()
    assert plugins.get("dataset", "audiocaps").factory == "plugins.datasets.audiocaps:AudioCaps"
    got = datasets.resolve({"source": "audiocaps", "split": "val",
                            "params": {"root": str(root), "csv_dir": str(csv_dir)}})
    assert [s.id for s in got] == ["a_b-c_d_0", "rqfQRErjfk8_170"]


def test_full_length_recordings_are_cut_at_start_time(tmp_path):
    """Issue #9: a user whose files are the videos' full audio must get the captioned 10 s
    (start_time), not the first seconds; a clip-length file is the clip itself."""
    from harness import segments

    root = tmp_path / "audiocaps"
    _csv(tmp_path / "csv" / "train.csv", TRAIN[:2])
    sr = 8000
    sf.write(str(root.mkdir() or root / "r1nicOVtvkQ.wav"), np.zeros(sr * 150, np.float32), sr)
    sf.write(str(root / "UDGBjjwyaqE.wav"), np.zeros(sr * 10, np.float32), sr)
    got = {s.id: s for s in AudioCaps(root=str(root), csv_dir=str(tmp_path / "csv"))
           .samples("train")}
    full, clip = got["r1nicOVtvkQ_130"], got["UDGBjjwyaqE_20"]
    assert (full.start, full.duration) == (130.0, 10.0)
    assert (clip.start, clip.duration) == (0.0, None)
    (w,) = segments.plan(full, 10.24)
    assert (w.start, w.seconds) == (130.0, 10.0)
