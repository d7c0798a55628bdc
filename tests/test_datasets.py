"""harness.datasets: id-list filtering of a data reference (include_ids / exclude_ids), the one
mechanism every dataset plugin gets."""

import json

import pytest

from harness.contracts import Sample
from harness.datasets import filter_ids, read_ids, resolve
from harness.errors import DataError, MissingSampleError
from harness.testing import toy_data, toys_registered

SAMPLES = [Sample(id=i, path=f"/x/{i}.wav") for i in
           ("abc_30", "def_0", "ghi_10#7", "ghi_10#8", "jkl_5")]


def ids(samples):
    return [s.id for s in samples]


def test_read_ids_text_json_and_tango_jsonl(tmp_path):
    txt = tmp_path / "ids.txt"
    txt.write_text("# members\nabc_30\n\n  def_0  \n")
    assert read_ids(txt) == ["abc_30", "def_0"]
    arr = tmp_path / "ids.json"
    arr.write_text(json.dumps(["abc_30", {"id": "jkl_5"}]))
    assert read_ids(arr) == ["abc_30", "jkl_5"]
    # TANGO's data/train_audiocaps.json: JSON lines, the id is the stem of ``location``
    tango = tmp_path / "train_audiocaps.json"
    tango.write_text("\n".join(json.dumps({"dataset": "audiocaps", "captions": "a dog barks",
                                           "location": f"/data/deep/audioset/data/{i}.wav"})
                               for i in ("abc_30", "ghi_10")) + "\n")
    assert read_ids(tango) == ["abc_30", "ghi_10"]


def test_bad_id_files_are_named_errors(tmp_path):
    with pytest.raises(DataError, match="is not a file"):
        read_ids(tmp_path / "nope.txt")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"captions": "no id"}\n')
    with pytest.raises(DataError, match="item 1: expected an id string or an object"):
        read_ids(bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(DataError, match="lists no ids"):
        filter_ids(SAMPLES, empty, None)


def test_include_then_exclude_keeps_order_and_caption_rows(tmp_path):
    inc, exc = tmp_path / "inc.txt", tmp_path / "exc.txt"
    inc.write_text("jkl_5\nghi_10\nabc_30\n")
    exc.write_text("abc_30\n")
    assert ids(filter_ids(SAMPLES, inc, None)) == ["abc_30", "ghi_10#7", "ghi_10#8", "jkl_5"]
    assert ids(filter_ids(SAMPLES, inc, exc)) == ["ghi_10#7", "ghi_10#8", "jkl_5"]
    assert ids(filter_ids(SAMPLES, None, exc)) == ["def_0", "ghi_10#7", "ghi_10#8", "jkl_5"]


def test_an_id_the_split_lacks_is_a_named_error_or_one_warning(tmp_path):
    inc = tmp_path / "inc.txt"
    inc.write_text("abc_30\nzzz_1\n")
    with pytest.raises(MissingSampleError, match=r"names 1 of 2 ids .*zzz_1.*missing_ids: warn"):
        filter_ids(SAMPLES, inc, None, where="audiocaps:train")
    with pytest.warns(UserWarning, match="zzz_1"):
        assert ids(filter_ids(SAMPLES, inc, None, missing="warn")) == ["abc_30"]
    with pytest.raises(MissingSampleError, match="exclude_ids"):
        filter_ids(SAMPLES, None, inc)


def test_a_data_entry_filters_through_resolve_and_the_suite(tmp_path):
    import yaml

    from harness import suite as suite_mod
    from harness.runner import load_cell_data

    (tmp_path / "keep.txt").write_text("members/001\nmembers/003\nmembers/004\n")
    with toys_registered():
        data = toy_data(tmp_path / "clips", n=6)
        ref = dict(data["members"], include_ids=str(tmp_path / "keep.txt"))
        assert ids(resolve(ref)) == ["members/001", "members/003", "members/004"]
        data["members"]["include_ids"] = "keep.txt"  # relative to the suite file's folder
        (tmp_path / "s.yaml").write_text(yaml.safe_dump({
            "name": "ids", "models": {"m": {"plugin": "toy-autoregressive"}},
            "data": {"d": data}, "attacks": [{"plugin": "loss"}]}))
        suite, _ = suite_mod.load(tmp_path / "s.yaml")
        cell = load_cell_data(suite, "d", lambda *a, **k: None)
        assert ids(cell.members) == ["members/001", "members/003", "members/004"]
        assert cell.refs["members"]["include_ids"] == str(tmp_path / "keep.txt")
        assert "include_ids" not in cell.refs["nonmembers"]  # unfiltered refs keep their keys
        (tmp_path / "keep.txt").write_text("members/001\nmembers/099\n")
        with pytest.raises(MissingSampleError, match="members/099"):
            load_cell_data(suite, "d", lambda *a, **k: None)
