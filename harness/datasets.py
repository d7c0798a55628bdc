"""Resolve a data reference ``{source, split, params}`` (as written in a suite, or in a canary's
training parameters) into samples, through the dataset plugins."""

from __future__ import annotations

import hashlib
import json
import os
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


def manifest_hash(samples: list[Sample], content: bool = True) -> str:
    """Hash of ids, captions and file contents: the cache key's view of a dataset split.

    Content hashing (blake2b of every file) is what makes the cache safe when a user re-renders or
    replaces files under the same names."""
    h = hashlib.blake2b(digest_size=16)
    for s in samples:
        h.update(json.dumps([s.id, s.caption], ensure_ascii=False).encode())
        if content:
            try:
                with open(s.path, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
            except OSError as exc:
                raise DataError(f"sample '{s.id}': cannot read {s.path}: {exc}") from exc
        else:
            st = os.stat(s.path)
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()
