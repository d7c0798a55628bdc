"""The one checkpoint hasher: what a model's weights *are*, by content.

Why content and nothing less: a fine-tune saved into the folder of its base model has the same
file names and sizes, and a cache keyed on those silently serves the base model's features
(issue #9). Why memoised: a 3.7 GB checkpoint takes tens of seconds to hash, so the digest is
remembered on disk under the harness cache, keyed by (resolved path, size, mtime_ns); any
rewrite of the file changes its mtime and is hashed again. Paths never enter a digest, only
contents (and, for a folder, the relative names), so a copied checkpoint or a copied cache
(canaries live inside it) keeps its identity.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Iterable

from .errors import ModelLoadError

_MEMO: dict = {}
_LOCK = threading.Lock()


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, memoised by (resolved path, size, mtime_ns)."""
    from . import atomic
    from .paths import cache_dir

    p = Path(path).resolve()
    try:
        st = p.stat()
    except OSError as exc:
        raise ModelLoadError(f"cannot read checkpoint file '{path}': {exc}") from exc
    stamp = f"{p}\x00{st.st_size}\x00{st.st_mtime_ns}"
    with _LOCK:
        if stamp in _MEMO:
            return _MEMO[stamp]
    key = hashlib.blake2b(stamp.encode(), digest_size=16).hexdigest()
    memo = cache_dir("file-hashes") / f"{key}.json"
    try:
        digest = json.loads(memo.read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        digest = h.hexdigest()
        atomic.write_json(memo, {"sha256": digest, "size": st.st_size})
    with _LOCK:
        _MEMO[stamp] = digest
    return digest


def files_hash(files: Iterable[str | os.PathLike], root: str | os.PathLike) -> str:
    """One SHA-256 over files named relative to ``root``: (relative name, content hash) pairs
    in name order."""
    root = Path(root)
    h = hashlib.sha256()
    for f in sorted((Path(f) for f in files), key=lambda f: f.relative_to(root).as_posix()):
        h.update(f.relative_to(root).as_posix().encode() + b"\x00")
        h.update(file_hash(f).encode() + b"\x00")
    return h.hexdigest()


def dir_hash(path: str | os.PathLike) -> str:
    """``files_hash`` of every file under a folder."""
    path = Path(path)
    return files_hash([p for p in path.rglob("*") if p.is_file()], path)
