"""``lakh-midi``: FIGARO's split lists over a local lmd_full folder, with FIGARO's filters."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError, DataError
from plugins.datasets.lakh_midi import LakhMidi


def midi(path, n_bars, with_notes=True):
    import pretty_midi

    path.parent.mkdir(parents=True, exist_ok=True)
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0))
    inst = pretty_midi.Instrument(0)
    if with_notes:
        for i in range(n_bars * 4):
            inst.notes.append(pretty_midi.Note(90, 60 + i % 7, i * 0.5, i * 0.5 + 0.4))
    pm.instruments.append(inst)
    pm.write(str(path))


@pytest.fixture
def lmd(tmp_path):
    root = tmp_path / "lmd_full"
    midi(root / "a" / "aaa.mid", 4)
    midi(root / "a" / "bbb.mid", 20)           # too many bars for max_bars=8
    midi(root / "b" / "ccc.mid", 3, with_notes=False)  # no notes: FIGARO skips it
    midi(root / "b" / "ddd.mid", 2)
    midi(root / "9" / "eee.mid", 5)
    (root / "b" / "junk.mid").write_bytes(b"not midi")
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "train.txt").write_text("a/aaa.mid\na/bbb.mid\nb/ccc.mid\nb/ddd.mid\nb/junk.mid\n")
    (splits / "val.txt").write_text("")
    (splits / "test.txt").write_text("9/eee.mid\n")
    return root, splits


def test_members_are_train_files_that_pass_figaros_filters(lmd):
    root, splits = lmd
    ds = LakhMidi(root=str(root), splits_dir=str(splits), max_bars=8)
    ds.prepare()
    assert ds.splits() == ["train", "val", "test"]
    train = ds.samples("train")
    assert [s.id for s in train] == ["a/aaa", "b/ddd"]
    assert train[0].path == str(root / "a" / "aaa.mid")
    assert [s.id for s in ds.samples("test")] == ["9/eee"]
    assert ds.samples("val") == []
    # the filter results are cached; a second call gives the same members
    assert [s.id for s in ds.samples("train")] == ["a/aaa", "b/ddd"]
    unfiltered = LakhMidi(root=str(root), splits_dir=str(splits), apply_filters=False)
    assert len(unfiltered.samples("train")) == 5
    assert [s.id for s in LakhMidi(root=str(root), splits_dir=str(splits), max_bars=8,
                                   max_files=1).samples("train")] == ["a/aaa"]
    # the default max_bars (256, the released models' context) keeps the 20-bar file
    assert "a/bbb" in [s.id for s in LakhMidi(root=str(root),
                                              splits_dir=str(splits)).samples("train")]


def test_clear_errors(lmd, tmp_path):
    root, splits = lmd
    with pytest.raises(ConfigError, match="root"):
        LakhMidi(splits_dir=str(splits))
    with pytest.raises(DataError, match="lmd_full"):
        LakhMidi(root=str(tmp_path / "nope"), splits_dir=str(splits)).prepare()
    with pytest.raises(DataError, match="not a folder"):
        LakhMidi(root=str(root), splits_dir=str(tmp_path / "nosplits")).prepare()
    (splits / "val.txt").unlink()
    with pytest.raises(DataError, match="val.txt"):
        LakhMidi(root=str(root), splits_dir=str(splits)).samples("val")
    with pytest.raises(DataError, match="no split"):
        LakhMidi(root=str(root), splits_dir=str(splits)).samples("valid")
    (splits / "test.txt").write_text("9/eee.mid\n9/missing.mid\n")
    with pytest.raises(DataError, match="missing"):
        LakhMidi(root=str(root), splits_dir=str(splits)).samples("test")
    ok = LakhMidi(root=str(root), splits_dir=str(splits), on_missing="skip").samples("test")
    assert [s.id for s in ok] == ["9/eee"]
    with pytest.raises(ConfigError):
        LakhMidi(root=str(root), splits_dir=str(splits), on_missing="ignore")
