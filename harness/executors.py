"""Where a run's features are extracted: ``local`` (the driver's own loop, the default) or
``ray`` (one task per shard of each cell on Ray workers). Whatever the executor, the driver then
scores from the shared feature cache, runs DI and is the only MLflow writer."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .suite import Suite


def extract_elsewhere(suite: Suite, cache_root: Path, echo, cells: dict,
                      while_waiting: Callable[[], None] | None = None) -> None:
    """Fill the feature cache before the driver's loop, unless extraction is local (then the
    loop extracts as it goes). ``cells``: the driver's checked data per data entry
    (``runner.load_all_data``), handed to the workers so that they do not list, check and hash
    every file again for each shard. ``while_waiting``: the driver's model-free work, run once
    the workers have their tasks (the local executor leaves it to the loop)."""
    if suite.executor == "local":
        return
    if suite.executor == "ray":
        from .ray_executor import extract

        extract(suite, cache_root, echo, cells, while_waiting=while_waiting)
        return
    raise AssertionError(f"unhandled executor {suite.executor!r}")  # the schema lists them
