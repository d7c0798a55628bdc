from collections import Counter

import pytest

from harness.contracts import Sample
from harness.errors import ConfigError
from harness.shards import Shard, all_shards, parse, shard_index


def test_every_sample_in_exactly_one_shard_and_stable():
    ids = [f"members/{i:04d}" for i in range(2000)]
    for k in (1, 3, 8):
        seen = Counter()
        for sh in all_shards(k):
            seen.update(sh.select([Sample(i, "") for i in ids]))
        assert all(v == 1 for v in seen.values()) and len(seen) == len(ids)
    # fixed values: the split must never change between versions, machines or processes
    assert [shard_index(f"members/{i:04d}", 4) for i in range(8)] == [
        shard_index(f"members/{i:04d}", 4) for i in range(8)]
    assert shard_index("a", 7) == int.from_bytes(
        __import__("hashlib").blake2b(b"a", digest_size=8).digest(), "little") % 7


def test_shards_are_balanced_and_ignore_order():
    ids = [f"clip-{i}" for i in range(4000)]
    sizes = [len(Shard(i, 4).select([Sample(x, "") for x in ids])) for i in range(4)]
    assert max(sizes) - min(sizes) < 200  # ~ 1000 ± 3 sigma
    a = {s.id for s in Shard(1, 4).select([Sample(x, "") for x in ids])}
    b = {s.id for s in Shard(1, 4).select([Sample(x, "") for x in reversed(ids)])}
    assert a == b


@pytest.mark.parametrize("text,want", [("0/4", Shard(0, 4)), (" 3 / 4 ", Shard(3, 4)),
                                       ("0/1", Shard(0, 1))])
def test_parse(text, want):
    assert parse(text) == want


@pytest.mark.parametrize("text,match", [("4/4", "out of range"), ("1/0", "out of range"),
                                        ("1-4", "must look like i/k"), ("a/b", "i/k"),
                                        ("-1/4", "i/k")])
def test_parse_errors_are_named(text, match):
    with pytest.raises(ConfigError, match=match):
        parse(text)
