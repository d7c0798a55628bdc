import pytest

from harness.errors import ConfigError
from harness.shards import Shard, all_shards, canonical_batches, parse


def test_batches_are_fixed_chunks_and_shards_take_them_round_robin():
    samples = list(range(23))
    batches = canonical_batches(samples, 5)
    assert batches == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14],
                       [15, 16, 17, 18, 19], [20, 21, 22]]
    for k in (1, 2, 3, 7):
        parts = [canonical_batches(samples, 5, sh) for sh in all_shards(k)]
        # every batch in exactly one shard, unchanged (a shard never re-cuts batches)
        assert sorted(b for p in parts for b in p) == batches
        sizes = [len(p) for p in parts]
        assert max(sizes) - min(sizes) <= 1
    assert canonical_batches(samples, 5, Shard(1, 2)) == [batches[1], batches[3]]
    assert canonical_batches([], 5, Shard(0, 2)) == []
    with pytest.raises(ValueError):
        canonical_batches(samples, 0)


@pytest.mark.parametrize("text,want", [("0/4", Shard(0, 4)), (" 3 / 4 ", Shard(3, 4)),
                                       ("0/1", Shard(0, 1))])
def test_parse(text, want):
    assert parse(text) == want and str(want) == text.replace(" ", "")


@pytest.mark.parametrize("text,match", [("4/4", "out of range"), ("1/0", "out of range"),
                                        ("1-4", "must look like i/k"), ("a/b", "i/k"),
                                        ("-1/4", "i/k")])
def test_parse_errors_are_named(text, match):
    with pytest.raises(ConfigError, match=match):
        parse(text)
