"""Resolve a data reference ``{source, split, params}`` (as written in a suite, or in a canary's
training parameters) into samples, through the dataset plugins."""

from __future__ import annotations

import hashlib
import json
from typing import Mapping

from . import plugins
from .contracts import Sample
from .errors import ConfigError, DataError


def open_source(source: str, params: Mapping | None = None):
    info = plugins.get("dataset", source)
    ds = info.load()(**dict(params or {}))
    ds.registered_name = source
    return ds


def resolve(ref: Mapping) -> list[Sample]:
    """Samples for ``{"source": name, "split": split, "params": {...}}``."""
    missing = [k for k in ("source", "split") if k not in ref]
    if missing:
        raise ConfigError(f"data reference {dict(ref)} lacks {missing}; write e.g. "
                          "{source: folk-tunes, split: members}")
    ds = open_source(ref["source"], ref.get("params"))
    if ref["split"] not in ds.splits():
        raise DataError(f"dataset '{ref['source']}' has no split '{ref['split']}'. "
                        f"Available: {', '.join(ds.splits())}")
    ds.prepare()
    return ds.samples(ref["split"])


def subset(samples: list[Sample], n: int | None, seed: int, salt: str) -> list[Sample]:
    """A seeded subset of ``n`` samples, in their original order (all of them when ``n`` is None
    or not smaller). One rule for a data entry's ``n_members``/``n_nonmembers`` (salt: the side)
    and a canary's ``train_data: {n}`` (salt "members"), so equal seeds pick equal clips."""
    import numpy as np

    if n is None or n >= len(samples):
        return samples
    salt_int = int.from_bytes(salt.encode()[:8].ljust(8, b"\0"), "little")
    rng = np.random.default_rng([seed, salt_int])
    keep = np.sort(rng.permutation(len(samples))[:n])
    return [samples[i] for i in keep]


def manifest_hash(samples: list[Sample]) -> str:
    """Hash of ids, captions and file contents: the view of a dataset split that keys a trained
    canary. Content hashing (per sample, as the feature cache does) is what keeps the cache
    safe when a user re-renders or replaces files under the same names."""
    from .cache import sample_hash

    h = hashlib.blake2b(digest_size=16)
    for s in samples:
        h.update(json.dumps([s.id, sample_hash(s.path, s.caption, s.start, s.duration)], ensure_ascii=False).encode())
    return h.hexdigest()
