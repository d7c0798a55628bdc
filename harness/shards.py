"""Split a (model, data) cell into shards by a stable hash of each sample's id.

Why the id's hash and not a position or the worker count: a sample lands in the same shard on
every machine and in every run, whatever order a dataset lists its files in, and the feature
cache is per sample, so rerunning with a different number of shards (more workers, a resized
Slurm array) recomputes nothing that is already cached — only the split of the remaining work
changes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Sequence, TypeVar

from .errors import ConfigError

T = TypeVar("T")

_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def shard_index(sample_id: str, count: int) -> int:
    """The shard (0-based, of ``count``) that ``sample_id`` belongs to."""
    digest = hashlib.blake2b(sample_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % count


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based, as Slurm's ``$SLURM_ARRAY_TASK_ID``)."""

    index: int
    count: int

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard {self.index}/{self.count} is out of range: write i/k with "
                              f"k >= 1 and 0 <= i < k (e.g. 0/4 ... 3/4)")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, sample_id: str) -> bool:
        return shard_index(sample_id, self.count) == self.index

    def select(self, samples: Sequence[T]) -> list[T]:
        """The samples of this shard, in their original order (each needs an ``id``)."""
        return [s for s in samples if self.holds(s.id)]


def parse(text: str) -> Shard:
    """``"2/8"`` → Shard(2, 8); anything else is a ConfigError that shows the expected form."""
    m = _SHARD_RE.match(str(text))
    if m is None:
        raise ConfigError(f"--shard '{text}' must look like i/k, e.g. 0/4 for the first of four "
                          "shards (i counts from 0)")
    return Shard(int(m.group(1)), int(m.group(2)))


def all_shards(count: int) -> list[Shard]:
    return [Shard(i, count) for i in range(count)]
