"""A run's batches, and how shards split them.

Why batches are fixed: on CPU and GPU a network's float arithmetic depends on the batch a
sample is in (kernel choice by batch size, reduction order). Measured on the diffusion canary at
one thread: features of the same clips differ by up to 4e-6 between one batch of 8 and the
batches of a hash-of-id split. So the
harness never forms batches from "what is left to compute": a cell's batches are always the
same consecutive chunks of its sample list (the dataset's order, then the suite's seeded
subset), whether a run is fresh, resumed after a kill, split into ``--shard i/k`` jobs or spread
over Ray workers, and each computes exactly the batches one plain run would: bit-identical
features and results.

Why shards take batches round-robin (batch b goes to shard b mod k) and not by worker: every
shard gets an equal share of a cell, and the feature cache is per sample, so rerunning with
another number of shards (more workers, a resized Slurm array) recomputes nothing that is cached
— only the split of the remaining work changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence, TypeVar

from .errors import ConfigError

T = TypeVar("T")

_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


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


def canonical_batches(samples: Sequence[T], batch_size: int,
                      shard: Shard | None = None) -> list[list[T]]:
    """The cell's batches (consecutive chunks of ``samples``), or those of ``shard``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batches = [list(samples[i:i + batch_size]) for i in range(0, len(samples), batch_size)]
    if shard is None:
        return batches
    return [b for i, b in enumerate(batches) if i % shard.count == shard.index]


def parse(text: str) -> Shard:
    """``"2/8"`` → Shard(2, 8); anything else is a ConfigError that shows the expected form."""
    m = _SHARD_RE.match(str(text))
    if m is None:
        raise ConfigError(f"--shard '{text}' must look like i/k, e.g. 0/4 for the first of four "
                          "shards (i counts from 0)")
    return Shard(int(m.group(1)), int(m.group(2)))


def all_shards(count: int) -> list[Shard]:
    return [Shard(i, count) for i in range(count)]
