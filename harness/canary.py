"""Shared machinery of the canaries: small models the harness trains itself on a known member
split, so attacks and DI can be checked against ground truth.

Every canary resolves its training data through the dataset plugins, keys its cached weights by
everything that changes them (training parameters, the training data's content, the code
version), and trains on shuffled mini-batches. Keeping that here means the three families cannot
drift apart in what "the same canary" means.
"""

from __future__ import annotations

import hashlib
from typing import Iterator, Mapping

from .contracts import Sample
from .errors import DataError


def training_samples(plugin: str, ref: Mapping, what: str = "train_data") -> list[Sample]:
    """The samples of a data reference ``{source, split, params}``; refuses an empty one."""
    from .datasets import resolve

    from .inputs import check_files

    samples = resolve(ref)
    if not samples:
        raise DataError(f"{plugin}: {what} {dict(ref)} has no samples")
    check_files([s.path for s in samples], where=f"{plugin} {what}")
    return samples


def key(plugin: str, code_version: str, train_params: Mapping, samples: list[Sample],
        **extra) -> str:
    """Cache key of a trained canary: parameters, training-data content and code version."""
    from .cache import canonical_json
    from .datasets import manifest_hash

    inputs = {"plugin": plugin, "code": code_version, "train": dict(train_params),
              "data": manifest_hash(samples), **extra}
    return hashlib.blake2b(canonical_json(inputs).encode(), digest_size=16).hexdigest()


def shuffled_batches(n: int, batch_size: int, generator) -> Iterator:
    """Endless mini-batches of indices: a fresh permutation (from ``generator``) each epoch, the
    incomplete tail of an epoch dropped. Permutations are drawn lazily, so the generator's other
    draws keep their order."""
    import torch

    cursor = n  # forces a permutation on the first batch
    order = None
    while True:
        if cursor + batch_size > n:
            order, cursor = torch.randperm(n, generator=generator), 0
        yield order[cursor:cursor + batch_size]
        cursor += batch_size
