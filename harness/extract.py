"""Feature extraction as a unit of work any process can run: (model, data, shard) → feature cache.

A Slurm array task (``harness run SUITE --shard i/k``), a Ray worker and the driver's own loop
share nothing but the suite and the cache directory: each unit rebuilds the model and the cell's
samples from the suite, so its cache keys are exactly those the driver computes later, and the
driver scores from the cache without a model pass. Scoring, DI and MLflow stay with the driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import runner
from .batching import batch_size_for
from .cache import canonical_json
from .shards import Shard, all_shards
from .suite import Suite


@dataclass(frozen=True)
class ShardTask:
    """Extract shard ``shard`` of the cell (``model``, ``data``)."""

    model: str
    data: str
    shard: Shard

    def __str__(self) -> str:
        return f"{self.model} × {self.data} shard {self.shard}"


def tasks(suite: Suite, count: int) -> list[ShardTask]:
    """Every cell of the suite split into ``count`` shards, cell by cell."""
    return [ShardTask(m, d, sh) for m in suite.models for d in suite.data_for(m)
            for sh in all_shards(count)]


# One prepared model per process: a Ray worker that runs several shards of the same model in a
# row loads it once. Keyed by everything that makes it a different model or attack set.
_prepared: dict[str, tuple] = {}


def _prepare(suite: Suite, model_name: str, cache_root: Path) -> tuple:
    # the cache root too: a model may keep paths under it (a canary's trained checkpoint)
    key = canonical_json({"model": suite.models[model_name].model_dump(mode="json"),
                          "device": suite.device, "cache_root": str(cache_root),
                          "attacks": [a.model_dump(mode="json") for a in suite.attacks]})
    if key not in _prepared:
        _prepared.clear()  # free the previous model before loading the next
        model, info = runner.make_model(model_name, suite)
        family = info.family if info.family != "any" else model.family
        runs = runner.make_attacks(suite, model_name, model, family)
        _prepared[key] = (model, info, model.identity(), runs)
    return _prepared[key]


def extract_shard(suite: Suite, task: ShardTask, echo: runner.Echo,
                  progress: runner.Progress | None = None, cache_root: Path | None = None,
                  cell: runner.CellData | None = None) -> None:
    """Fill the feature cache for one shard of one cell (computing only what is missing).
    ``cell``: the cell's data, already checked (else it is resolved and checked here, before
    the model loads)."""
    import torch

    torch.manual_seed(suite.seed)
    root = cache_root or runner.resolve_cache_root(suite)
    with runner._env("HARNESS_CACHE_DIR", str(root)):
        if cell is None:
            cell = runner.load_cell_data(suite, task.data, echo)
        model, info, identity, runs = _prepare(suite, task.model, root)
        if not runs:
            return
        batch_size = batch_size_for(suite, task.model, model, info, identity, root)
        runner.extract_cell(suite, task.model, model, info, identity, runs, cell, batch_size,
                            root, str(task), echo, progress, task.shard)


def run_shard(suite: Suite, shard: Shard, echo: runner.Echo = runner._stderr) -> int:
    """``harness run SUITE --shard i/k``: extract shard i of every cell; no scoring, no results
    directory, no MLflow. Returns the number of cells visited."""
    count = 0
    with runner._env("HARNESS_CACHE_DIR", str(runner.resolve_cache_root(suite))):
        cells = runner.load_all_data(suite, echo)  # every data file checked before any model
    for model_name in suite.models:
        for data_name in suite.data_for(model_name):
            extract_shard(suite, ShardTask(model_name, data_name, shard), echo,
                          cell=cells[data_name])
            count += 1
    _prepared.clear()
    echo(f"[shard {shard}] features of {count} cell(s) are in "
         f"{runner.resolve_cache_root(suite) / 'features'}; run without --shard to score them")
    return count
