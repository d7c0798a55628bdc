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
from .errors import ConfigError, DataError


REF_KEYS = ("source", "split", "params", "n", "seed", "include_ids", "exclude_ids", "missing_ids")


def training_samples(plugin: str, ref: Mapping, what: str = "train_data") -> list[Sample]:
    """The samples of a data reference ``{source, split, params, n, seed}``; refuses an empty one.

    ``n`` caps the training set with the same seeded rule as a data entry's ``n_members`` (salt
    "members", ``seed`` default 0): without it, a suite that audits ``n_members: 48`` of a split
    would silently train on the whole split. With equal seeds, the ``n`` clips trained on are the
    ``n_members`` clips audited."""
    from .datasets import resolve, subset
    from .inputs import check_files

    unknown = sorted(set(ref) - set(REF_KEYS))
    if unknown:
        raise ConfigError(f"{plugin}: {what} has unknown key(s) {unknown}; a data reference "
                          f"takes {', '.join(REF_KEYS)}")
    n, seed = ref.get("n"), ref.get("seed", 0)
    for key, value, low in (("n", n, 1), ("seed", seed, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < low):
            raise ConfigError(f"{plugin}: {what}.{key} must be an integer >= {low}, got {value!r}")
    samples = resolve(ref)
    if not samples:
        raise DataError(f"{plugin}: {what} {dict(ref)} has no samples")
    if n is not None and n > len(samples):
        raise DataError(f"{plugin}: {what}.n is {n} but {ref['source']} split '{ref['split']}' "
                        f"has only {len(samples)} sample(s); lower n")
    samples = subset(samples, n, seed, "members")
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


def train_steps(plugin: str, steps: int, batches: Iterator, losses: list) -> Iterator:
    """``(step, batch)`` for ``steps`` steps, with a progress bar (ETA, running loss: the mean of
    the last 20 entries the caller appends to ``losses``). Training a canary takes minutes on a
    CPU; without the bar the run looked hung."""
    import numpy as np

    from .progress import bar, stderr_echo

    with bar(steps, f"[train] {plugin}", stderr_echo, unit="step", every=max(1, steps // 10)) as pb:
        for step, idx in zip(range(steps), batches):
            yield step, idx
            if losses and (step % 10 == 0 or step == steps - 1):
                pb.set_postfix_str(f"loss {np.mean(losses[-20:]):.4f}")
            pb.update(1)


def training_summary(report: Mapping) -> dict:
    """What the model's MLflow runs carry about its training (from its ``training.json``):
    steps, members trained on, training seconds, first and last loss."""
    params = report.get("params") or {}
    out = {"steps": params.get("steps"), "n_train": len(report.get("members") or []) or None,
           "train_seconds": report.get("train_seconds"), "loss_first": report.get("loss_first"),
           "loss_last": report.get("loss_last")}
    return {k: v for k, v in out.items() if v is not None}


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
