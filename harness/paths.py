"""Where the harness keeps derived files (feature cache, trained canaries, rendered data).

One root, overridable per run (suite ``cache_dir``) or per machine (``HARNESS_CACHE_DIR``), so a
CI machine, a laptop and a GPU box each keep their own without configuration.
"""

import os
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("HARNESS_CACHE_DIR")
    if root:
        return Path(root).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "audio-mia-harness"


def cache_dir(*parts: str) -> Path:
    """A sub-directory of the cache root, created on demand."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
