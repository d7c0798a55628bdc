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
    samples = ds.samples(ref["split"])
    if ref.get("include_ids") or ref.get("exclude_ids"):
        samples = filter_ids(samples, ref.get("include_ids"), ref.get("exclude_ids"),
                             ref.get("missing_ids") or "error",
                             where=f"{ref['source']}:{ref['split']}")
    return samples


def read_ids(path) -> list[str]:
    """Sample ids from an id list file, in its order.

    * text: one id per line; blank lines and lines starting with ``#`` are skipped;
    * ``.json`` / ``.jsonl``: a JSON array or JSON lines whose items are ids (strings) or
      objects with an ``id`` field, or else a ``location`` field whose file stem is the id.
      TANGO's ``data/train_audiocaps.json`` is such a file: ``location`` ends in
      ``<youtube_id>_<start_time>.wav``, which is the ``audiocaps`` sample id."""
    import os
    from pathlib import Path

    p = Path(os.path.expanduser(str(path)))
    if not p.is_file():
        raise DataError(f"id list '{path}' is not a file (include_ids / exclude_ids take a text "
                        "file with one sample id per line, or a JSON / JSON-lines file)")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() not in (".json", ".jsonl"):
        return [ln.strip() for ln in text.splitlines()
                if ln.strip() and not ln.strip().startswith("#")]
    try:
        stripped = text.lstrip()
        items = (json.loads(text) if stripped.startswith("[")
                 else [json.loads(ln) for ln in text.splitlines() if ln.strip()])
    except ValueError as exc:
        raise DataError(f"id list '{path}' is not valid JSON / JSON lines: {exc}") from None
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and isinstance(item.get("id"), str):
            out.append(item["id"])
        elif isinstance(item, dict) and isinstance(item.get("location"), str):
            out.append(Path(item["location"].replace("\\", "/")).stem)
        else:
            raise DataError(f"id list '{path}', item {i + 1}: expected an id string or an object "
                            f"with 'id' or 'location'; got {str(item)[:80]}")
    return out


def filter_ids(samples: list[Sample], include, exclude, missing: str = "error",
               where: str = "data") -> list[Sample]:
    """Keep the samples whose id is in ``include`` (a path; all when None), then drop those in
    ``exclude``. A listed id also selects its per-caption samples ``id#...``. Ids the split does
    not have are a ``MissingSampleError`` (a wrong list or id format would otherwise filter
    silently), or one warning with ``missing == "warn"`` (e.g. clips a YouTube download lost)."""
    import warnings

    from .errors import MissingSampleError

    def base(sid: str) -> str:
        return sid.split("#", 1)[0]

    have = {base(s.id) for s in samples} | {s.id for s in samples}
    out = samples
    for what, path in (("include_ids", include), ("exclude_ids", exclude)):
        if not path:
            continue
        ids = set(read_ids(path))
        if not ids:
            raise DataError(f"{where}: {what} file '{path}' lists no ids")
        absent = sorted(ids - have)
        if absent:
            msg = (f"{where}: {what} file '{path}' names {len(absent)} of {len(ids)} ids that "
                   f"the split does not have (e.g. {', '.join(absent[:5])})")
            if missing != "warn":
                raise MissingSampleError(
                    msg + ". Check that the list's ids are this dataset's sample ids, or set "
                    "missing_ids: warn on the data reference if clips are known to be absent")
            warnings.warn(msg, stacklevel=2)
        keep = what == "include_ids"
        out = [s for s in out if ((s.id in ids or base(s.id) in ids) == keep)]
    return out


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
