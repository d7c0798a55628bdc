"""local-folder: directory and CSV-manifest modes, caption sources, splits, and the errors a
user pointing it at the wrong place should get."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from harness.errors import ConfigError, DataError
from plugins.datasets.local_folder import LocalFolder


def _wav(path, seconds=0.1, sr=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(str(path), 0.1 * np.sin(2 * np.pi * 440 * t), sr)
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "recordings"
    _wav(root / "train" / "dog_bark.wav")
    (root / "train" / "dog_bark.json").write_text(json.dumps({"description": "a dog barks"}))
    _wav(root / "train" / "rain-on-roof.wav")
    (root / "train" / "rain-on-roof.txt").write_text("rain on a tin roof\n")
    _wav(root / "test" / "b_engine.wav")
    _wav(root / "loose.wav")
    (root / "notes.md").write_text("not audio")
    _wav(root / ".hidden" / "skip.wav")
    return root


def test_folder_sidecar_captions_and_stable_ids(folder):
    ds = LocalFolder(path=str(folder))
    ds.prepare()
    assert ds.splits() == ["all"]
    got = {s.id: s.caption for s in ds.samples("all")}
    assert got == {"loose.wav": "", "test/b_engine.wav": "",
                   "train/dog_bark.wav": "a dog barks", "train/rain-on-roof.wav": "rain on a tin roof"}
    assert [s.id for s in ds.samples("all")] == sorted(got)
    assert all(s.path.startswith(str(folder.resolve())) for s in ds.samples("all"))


def test_folder_filename_captions_and_subfolder_splits(folder):
    ds = LocalFolder(path=str(folder), captions="filename", subfolders_as_splits=True)
    assert ds.splits() == ["all", "test", "train"]
    assert [s.caption for s in ds.samples("train")] == ["dog bark", "rain on roof"]
    assert [s.id for s in ds.samples("test")] == ["test/b_engine.wav"]
    assert len(ds.samples("all")) == 4
    with pytest.raises(DataError, match="Available: all, test, train"):
        ds.samples("val")
    assert all(s.caption == "" for s in LocalFolder(path=str(folder), captions="none")
               .samples("all"))


def test_folder_extensions_filter(folder):
    _wav(folder / "x.flac")
    (folder / "tune.MID").write_bytes(b"MThd")
    ids = [s.id for s in LocalFolder(path=str(folder), extensions="mid,flac").samples("all")]
    assert ids == ["tune.MID", "x.flac"]


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        LocalFolder(path=str(tmp_path / "nope")).prepare()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="found no files with extensions flac, mid, midi, mp3, "
                                        "ogg, wav under"):
        LocalFolder(path=str(tmp_path / "empty")).prepare()
    with pytest.raises(ConfigError, match="exactly one of"):
        LocalFolder()
    with pytest.raises(ConfigError, match="exactly one of"):
        LocalFolder(path="a", manifest="b.csv")
    with pytest.raises(ConfigError, match="captions"):
        LocalFolder(path="a", captions="sidecars")
    with pytest.raises(ConfigError, match="Did you mean 'extensions'"):
        LocalFolder(path="a", extension=["wav"])


def test_manifest_relative_paths_ids_splits_and_metadata(folder, tmp_path):
    csv = folder / "meta.csv"
    csv.write_text("path,caption,split,label\n"
                   "train/dog_bark.wav,a dog,member,1\n"
                   "test/b_engine.wav,an engine,nonmember,0\n"
                   "loose.wav,something,member,1\n")
    ds = LocalFolder(manifest=str(csv))
    assert ds.splits() == ["member", "nonmember"]
    mem = ds.samples("member")
    assert [s.id for s in mem] == ["loose.wav", "train/dog_bark.wav"]
    assert [s.caption for s in mem] == ["something", "a dog"]
    assert mem[1].metadata["label"] == "1"
    # run from elsewhere: paths still resolve against the CSV's directory
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    import shutil

    shutil.copytree(folder, moved / "copy")
    ds2 = LocalFolder(manifest=str(moved / "copy" / "meta.csv"))
    assert [s.id for s in ds2.samples("member")] == [s.id for s in mem]


def test_manifest_id_column_custom_split_and_no_split(folder):
    csv = folder / "m.csv"
    csv.write_text("id,path,caption,fold\nb,loose.wav,x,a\na,train/dog_bark.wav,y,a\n")
    ds = LocalFolder(manifest=str(csv), split_column="fold")
    assert ds.splits() == ["a"]
    assert [s.id for s in ds.samples("a")] == ["a", "b"]
    plain = folder / "plain.csv"
    plain.write_text("path,caption\nloose.wav,x\n")
    assert LocalFolder(manifest=str(plain)).splits() == ["all"]


def test_manifest_errors(folder):
    bad = folder / "bad.csv"
    bad.write_text("file,text\nloose.wav,x\n")
    with pytest.raises(DataError, match="lacks column\\(s\\) path, caption; it has: file, text"):
        LocalFolder(manifest=str(bad)).prepare()
    miss = folder / "miss.csv"
    miss.write_text("path,caption\n" + "".join(f"gone{i}.wav,x\n" for i in range(8))
                    + "loose.wav,y\n")
    with pytest.raises(DataError, match=r"lists 8 file\(s\) that do not exist.*gone0.wav, "
                                        r"gone1.wav, gone2.wav, gone3.wav, gone4.wav$"):
        LocalFolder(manifest=str(miss)).prepare()
    dup = folder / "dup.csv"
    dup.write_text("id,path,caption\nx,loose.wav,a\nx,train/dog_bark.wav,b\n")
    with pytest.raises(DataError, match="same id 'x'"):
        LocalFolder(manifest=str(dup)).prepare()
    with pytest.raises(DataError, match="no split column 'fold'"):
        LocalFolder(manifest=str(folder / "dup.csv"), split_column="fold").prepare()
    with pytest.raises(DataError, match="does not exist"):
        LocalFolder(manifest=str(folder / "none.csv")).prepare()
    nocap = folder / "nocap.csv"
    nocap.write_text("path\nloose.wav\n")
    assert [s.caption for s in LocalFolder(manifest=str(nocap), captions="none")
            .samples("all")] == [""]


def test_registered_and_resolvable(folder):
    from harness import datasets, plugins

    plugins.load_plugins()
    assert plugins.get("dataset", "local-folder").factory == \
        "plugins.datasets.local_folder:LocalFolder"
    got = datasets.resolve({"source": "local-folder", "split": "train",
                            "params": {"path": str(folder), "subfolders_as_splits": True}})
    assert [s.id for s in got] == ["train/dog_bark.wav", "train/rain-on-roof.wav"]
    assert len(datasets.manifest_hash(got)) == 32
