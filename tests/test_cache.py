import copy

import numpy as np
import pytest

from harness.cache import FeatureCache, make_key, sample_hash
from harness.errors import CacheMismatchError

INPUTS = {
    "harness_version": "0.1.0",
    "model": {"plugin": "m", "plugin_version": "1", "identity": {"sha": "abc"}, "params": {"x": 1},
              "device": "cpu", "distribution": "d"},
    "attack": {"plugin": "loss", "plugin_version": "1", "params": {"mode": "contrast"}},
    "data": {"source": "s", "split": "members", "params": {}},
    "seed": 0,
}


@pytest.mark.parametrize("path,value", [
    (("harness_version",), "0.2.0"),
    (("model", "plugin"), "other"),
    (("model", "plugin_version"), "2"),
    (("model", "identity", "sha"), "def"),
    (("model", "params", "x"), 2),
    (("model", "device"), "cuda"),
    (("attack", "plugin"), "zlib"),
    (("attack", "plugin_version"), "2"),
    (("attack", "params", "mode"), "conditional"),
    (("data", "split"), "nonmembers"),
    (("data", "params"), {"n": 3}),
    (("seed",), 1),
])
def test_key_changes_with_every_input(path, value):
    changed = copy.deepcopy(INPUTS)
    node = changed
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    assert make_key(changed) != make_key(INPUTS)


def test_key_is_order_independent():
    reordered = dict(reversed(list(INPUTS.items())))
    assert make_key(reordered) == make_key(INPUTS)


def test_roundtrip_and_content_hash(tmp_path):
    f = tmp_path / "a.wav"
    f.write_bytes(b"one")
    g = tmp_path / "b.wav"
    g.write_bytes(b"two")
    hashes = {"a": sample_hash(str(f)), "b": sample_hash(str(g))}
    cache = FeatureCache(tmp_path / "c", INPUTS)
    found, missing = cache.lookup(hashes, ["loss"])
    assert found == {} and missing == ["a", "b"]
    cache.write(["a"], [hashes["a"]], {"loss": np.array([1.5])})
    found, missing = cache.lookup(hashes, ["loss"])
    assert found == {"a": {"loss": 1.5}} and missing == ["b"]
    # a changed file under the same id is recomputed
    f.write_bytes(b"ONE")
    hashes["a"] = sample_hash(str(f))
    found, missing = cache.lookup(hashes, ["loss"])
    assert found == {} and set(missing) == {"a", "b"}
    # a caption change is a content change
    assert sample_hash(str(g), "x") != sample_hash(str(g), "y")
    # other feature names (a new attack version) are not mixed in
    assert cache.lookup({"a": hashes["a"]}, ["zlib"])[1] == ["a"]


def test_meta_mismatch_detected(tmp_path):
    cache = FeatureCache(tmp_path, INPUTS)
    cache.write(["a"], ["h"], {"loss": np.array([1.0])})
    meta = cache.dir / "meta.json"
    meta.write_text(meta.read_text().replace('"loss"', '"zlib"'))
    with pytest.raises(CacheMismatchError, match="delete that directory"):
        FeatureCache(tmp_path, INPUTS)


def test_no_partial_files_left(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path, INPUTS)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        cache.write(["a"], ["h"], {"loss": np.array([1.0])})
    leftovers = [p.name for p in cache.dir.iterdir() if p.name != "meta.json"]
    assert leftovers == []


def test_unreadable_sample_is_a_named_error(tmp_path):
    from harness.errors import DataError

    with pytest.raises(DataError, match="cannot read sample file"):
        sample_hash(str(tmp_path / "missing.wav"))


def test_stale_temporary_files_of_a_killed_writer_are_removed(tmp_path):
    import os
    import time

    c = FeatureCache(tmp_path, {"a": 1})
    c.write(["s"], ["h"], {"f": np.array([1.0])})
    old, new = c.dir / ".tmp-shard-old-x.npz", c.dir / ".tmp-shard-new-y.npz"
    old.write_bytes(b"partial")
    new.write_bytes(b"partial")
    past = time.time() - FeatureCache.STALE_SECONDS - 10
    os.utime(old, (past, past))
    again = FeatureCache(tmp_path, {"a": 1})
    assert not old.exists() and new.exists()
    assert again.lookup({"s": "h"}, ["f"])[0] == {"s": {"f": 1.0}}
