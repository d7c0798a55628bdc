"""``attribution-list`` on small CSVs in the released lists' layout (id, url, title, author,
license as a third-party parser of freesound_dataset_attribution2.csv reads them) and a folder of
downloads named as Freesound and the FMA dataset name them."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import yaml

from harness.errors import ConfigError, DataError

HEADER = ["id", "url", "title", "author", "license"]


def _write_csv(path, rows, header=HEADER):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _wav(path, seconds=0.2):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(8000 * seconds), np.float32), 8000)


@pytest.fixture
def layout(tmp_path):
    fs = _write_csv(tmp_path / "freesound_dataset_attribution2.csv", [
        ["1234", "https://freesound.org/people/alice/sounds/1234/", "dog bark.wav", "alice",
         "http://creativecommons.org/publicdomain/zero/1.0/"],
        ["", "https://freesound.org/people/bob/sounds/98765/", "rain.flac", "bob",
         "http://creativecommons.org/licenses/by/4.0/"],          # id only in the url
        ["555", "https://freesound.org/people/carol/sounds/555/", "never downloaded.wav",
         "carol", "CC0"],
    ])
    fma = _write_csv(tmp_path / "fma_dataset_attribution2.csv", [
        ["2", "https://freemusicarchive.org/music/AWOL/AWOL_-_A_Way_Of_Life/Food", "Food",
         "AWOL", "CC BY-NC-SA"],
    ])
    rec, non = tmp_path / "downloads", tmp_path / "after_cutoff"
    _wav(rec / "freesound" / "1234__alice__dog-bark.wav")
    (rec / "freesound" / "1234__alice__dog-bark.json").write_text(
        json.dumps({"description": "a dog barks twice"}))
    _wav(rec / "freesound" / "98765__bob__rain.wav")
    _wav(rec / "freesound" / "42__dave__unlisted.wav")
    _wav(rec / "fma" / "000002.wav")
    _wav(non / "freesound" / "700001__erin__new-upload.wav")
    _wav(non / "fma" / "155000.wav")
    return {"lists": {"freesound": str(fs), "fma": str(fma)}, "recordings": str(rec),
            "nonmembers": str(non)}


def _ds(**params):
    from plugins.datasets.attribution_list import AttributionList

    return AttributionList(**params)


def test_members_nonmembers_and_unlisted(layout):
    ds = _ds(**layout)
    assert ds.splits() == ["members", "nonmembers", "unlisted"]
    members = ds.samples("members")
    assert [s.id for s in members] == ["fma:2", "freesound:1234", "freesound:98765"]
    dog = members[1]
    assert dog.caption == "a dog barks twice"
    assert dog.metadata["list_author"] == "alice" and dog.metadata["listed"] is True
    assert dog.metadata["source"] == "freesound" and dog.metadata["list_title"] == "dog bark.wav"
    assert members[0].metadata["list_license"] == "CC BY-NC-SA"       # FMA track 000002 -> 2
    assert [s.id for s in ds.samples("nonmembers")] == ["fma:155000", "freesound:700001"]
    assert all(not s.metadata["listed"] for s in ds.samples("nonmembers"))
    assert [s.id for s in ds.samples("unlisted")] == ["freesound:42"]
    with pytest.raises(DataError, match="no split 'train'"):
        ds.samples("train")


def test_a_listed_recording_among_the_nonmembers_is_an_error(layout, tmp_path):
    _wav(tmp_path / "after_cutoff" / "freesound" / "555__carol__never-downloaded.wav")
    with pytest.raises(DataError, match="on the attribution lists.*555__carol"):
        _ds(**layout).samples("nonmembers")


def test_named_errors(layout, tmp_path):
    with pytest.raises(ConfigError, match="'lists' must map"):
        _ds(**{**layout, "lists": str(tmp_path / "x.csv")})
    with pytest.raises(ConfigError, match="'nonmembers'"):
        _ds(**{**layout, "nonmembers": None})
    with pytest.raises(ConfigError, match="id_pattern"):
        _ds(**layout, id_pattern="(")
    bad = _write_csv(tmp_path / "bad.csv", [["x", "y"]], header=["name", "licence"])
    with pytest.raises(DataError, match="neither an 'id' nor a 'url' column.*name, licence"):
        _ds(**{**layout, "lists": {"freesound": str(bad), "fma": layout["lists"]["fma"]}}
            ).samples("members")
    _wav(tmp_path / "downloads" / "jamendo" / "1.wav")
    with pytest.raises(DataError, match="jamendo.*name no list"):
        _ds(**layout).samples("members")


def test_no_id_in_a_file_name_is_named(layout, tmp_path):
    _wav(tmp_path / "downloads" / "fma" / "untitled.wav")
    with pytest.raises(DataError, match="no id matching id_pattern.*untitled.wav"):
        _ds(**layout).samples("members")


def test_suite_entry_resolves_relative_list_paths(layout, tmp_path, toy_plugins):
    """A suite written next to the data names the lists relative to itself."""
    from harness.suite import load as load_suite

    suite = {"name": "sao", "models": {"m": {"plugin": "toy-autoregressive"}},
             "attacks": [{"plugin": "loss"}], "data": {"sao": {
        side: {"source": "attribution-list", "split": side, "params": {
            "lists": {"freesound": "freesound_dataset_attribution2.csv",
                      "fma": "fma_dataset_attribution2.csv"},
            "recordings": "downloads", "nonmembers": "after_cutoff"}}
        for side in ("members", "nonmembers")}}}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    loaded, _ = load_suite(path)
    params = loaded.data["sao"].members.params
    assert params["lists"]["fma"] == str(tmp_path / "fma_dataset_attribution2.csv")
    assert params["recordings"] == str(tmp_path / "downloads")
    ds = _ds(**params)
    assert len(ds.samples("members")) == 3


def test_every_parameter_is_documented():
    from harness import plugins
    from harness.plugin_docs import param_docs

    cls = plugins.get("dataset", "attribution-list").load()
    docs = param_docs(cls)
    assert set(docs) == set(cls.defaults) and all(docs.values()), docs
