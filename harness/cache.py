"""Content-addressed feature cache: extraction is the only expensive stage, so it is written
batch by batch and reused across runs.

Layout: ``<root>/features/<key>/meta.json`` holds the key's inputs (model plugin, version and
checkpoint identity, attack and params, data source, seed, harness version); ``shard-*.npz`` hold
per-sample rows: sample ids, each sample's content hash, and one array per feature. A row is reused
only when the sample's content hash still matches, so replacing a file under the same name
recomputes it, and changing how many samples a suite uses reuses the rest.

Every write is atomic (``harness.atomic``); a killed run loses at most the batch in flight, and a
rerun with the same suite resumes from the shards (per-sample seeds make the numbers identical).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from . import atomic
from .errors import CacheMismatchError, DataError


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (set, tuple)):
        return sorted(o) if isinstance(o, set) else list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable in a cache key: {o!r}")


def make_key(inputs: Mapping) -> str:
    return hashlib.blake2b(canonical_json(inputs).encode(), digest_size=16).hexdigest()


def sample_hash(path: str, caption: str = "", start: float = 0.0,
                duration: float | None = None) -> str:
    """Content hash of one sample (file bytes + caption, + its span when it is not the whole
    file: two clips cut from one recording are two samples)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(caption.encode())
    h.update(b"\x00")
    if start or duration is not None:
        h.update(f"span {float(start)!r} {duration!r}".encode())
        h.update(b"\x00")
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise DataError(f"cannot read sample file {path}: {exc}") from exc
    return h.hexdigest()


def quarantine(path: Path, why: str, echo: Callable[[str], None] | None = None) -> Path:
    """Move a damaged cache file aside as ``<name>.corrupt-<timestamp>`` (kept for inspection,
    ignored by every reader) so the entry is recomputed instead of failing every rerun."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while dest.exists():
        n += 1
        dest = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, dest)
    msg = (f"warning: cache file {path} is damaged ({why}); moved aside to {dest.name}, "
           "its rows will be recomputed")
    (echo or _stderr)(msg)
    return dest


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class FeatureCache:
    """The cached features of one (model, attack, data source, seed) key. ``echo`` receives
    the warning when a damaged file is quarantined."""

    def __init__(self, root: str | Path, inputs: Mapping,
                 echo: Callable[[str], None] | None = None):
        self.inputs = json.loads(canonical_json(inputs))
        self.key = make_key(self.inputs)
        self.dir = Path(root) / "features" / self.key
        self.echo = echo
        self._check_meta()
        self._sweep()

    #: a temporary file of an atomic write older than this was left by a killed process
    STALE_SECONDS = 3600

    def _sweep(self) -> None:
        """Remove what a ``kill -9`` mid-write left behind (``.tmp-*`` of ``atomic.file``);
        recent ones may belong to a run still writing and are kept."""
        if not self.dir.is_dir():
            return
        now = time.time()
        for tmp in self.dir.glob(".tmp-*"):
            try:
                if now - tmp.stat().st_mtime > self.STALE_SECONDS:
                    tmp.unlink()
            except OSError:
                pass

    def _check_meta(self) -> None:
        meta = self.dir / "meta.json"
        if meta.exists():
            try:
                stored = json.loads(meta.read_text())
                if not isinstance(stored, dict):
                    raise ValueError(f"holds a {type(stored).__name__}, not an object")
            except (OSError, ValueError) as exc:
                why = "empty" if meta.is_file() and meta.stat().st_size == 0 else \
                    f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}"
                quarantine(meta, why, self.echo)
                atomic.write_json(meta, {"key": self.key, "inputs": self.inputs})
                return
            if stored.get("inputs") != self.inputs:
                raise CacheMismatchError(
                    f"cache entry {self.dir} was written for different inputs than its key says "
                    f"(stored {stored.get('inputs')!r}); delete that directory to recompute"
                )

    def load(self, feature_names: Iterable[str]) -> dict[str, tuple[str, dict[str, float]]]:
        """{sample id: (content hash, {feature: value})} for every cached row."""
        names = list(feature_names)
        rows: dict[str, tuple[str, dict[str, float]]] = {}
        if not self.dir.exists():
            return rows
        for shard in sorted(self.dir.glob("shard-*.npz")):
            try:
                with np.load(shard, allow_pickle=False) as z:
                    if any(f"f:{n}" not in z.files for n in names):
                        continue  # written by an attack version with other features
                    ids, hashes = z["ids"], z["hashes"]
                    cols = {n: z[f"f:{n}"] for n in names}
                if any(len(a) != len(ids) for a in (hashes, *cols.values())):
                    raise ValueError("its arrays have different lengths")
            except Exception as exc:  # BadZipFile, EOFError, zlib.error, ValueError, KeyError...
                quarantine(shard, f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}",
                           self.echo)
                continue
            for i, sid in enumerate(ids.tolist()):
                rows[sid] = (str(hashes[i]), {n: float(cols[n][i]) for n in names})
        return rows

    def lookup(self, samples_hashes: Mapping[str, str], feature_names: Iterable[str]):
        """Split samples into cached values and ids still to compute."""
        rows = self.load(feature_names)
        found, missing = {}, []
        for sid, h in samples_hashes.items():
            row = rows.get(sid)
            if row is not None and row[0] == h:
                found[sid] = row[1]
            else:
                missing.append(sid)
        return found, missing

    def write(self, ids: list[str], hashes: list[str], features: Mapping[str, np.ndarray]) -> Path:
        """Write one batch (atomically)."""
        if not (self.dir / "meta.json").exists():
            atomic.write_json(self.dir / "meta.json", {"key": self.key, "inputs": self.inputs})
        name = hashlib.blake2b("\x00".join(f"{i}:{h}" for i, h in zip(ids, hashes)).encode(),
                               digest_size=8).hexdigest()
        arrays = {"ids": np.asarray(ids, dtype=str), "hashes": np.asarray(hashes, dtype=str)}
        for fname, values in features.items():
            arrays[f"f:{fname}"] = np.asarray(values, dtype=np.float64)
        path = self.dir / f"shard-{name}.npz"
        with atomic.file(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        return path
