"""``executor: ray``: one Ray task per shard of each (model, data) cell; the driver scores.

Why tasks per shard (not per cell): a cell's samples then spread over every worker, and a
preempted worker loses one shard's batch in flight, not a cell. Shards are cut by a stable hash of
the sample id (``harness.shards``), so a retry or a rerun with another cluster size reuses every
sample already in the feature cache, which all workers must share (one machine: any local path;
a cluster: a shared filesystem). Tasks only write the cache; the driver then runs its ordinary
loop, which reads the cache (no model pass), scores, runs DI and alone writes MLflow.

A worker rebuilds the suite's models from the suite itself. Plugins the driver registered in
code (tests, notebooks) are shipped to the workers by value; installed ones are selected there
as on the driver (``HARNESS_LOAD_PLUGINS``).

Ray is an optional dependency, imported only here and only when a suite asks for it.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from .errors import ConfigError, HarnessError
from .extract import ShardTask, extract_shard, tasks
from .progress import ProgressLine
from .suite import Suite

INSTALL_HINT = "pip install 'audio-mia-harness[ray]'"
#: seconds between the driver's progress lines
PROGRESS_EVERY = 5.0


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "executor 'ray' needs Ray, which is not installed in this environment: "
            f"{INSTALL_HINT} (or pip install 'ray>=2.9'), or set executor: local") from exc
    return ray


def resources(suite: Suite, model_name: str) -> dict[str, float]:
    """num_cpus / num_gpus of one task of ``model_name`` (suite defaults, then its override)."""
    cfg = suite.ray
    over = cfg.models.get(model_name)
    cpus = over.num_cpus if over is not None and over.num_cpus is not None else cfg.num_cpus
    gpus = over.num_gpus if over is not None and over.num_gpus is not None else cfg.num_gpus
    if gpus is None:
        gpus = 1.0 if suite.device.startswith("cuda") else 0.0
    return {"num_cpus": float(cpus), "num_gpus": float(gpus)}


def slots(suite: Suite, cluster: dict) -> int:
    """Tasks the cluster can run at once (for the most demanding model); a request the cluster
    can never grant is a named error instead of a hang."""
    n = None
    for m in suite.models:
        res = resources(suite, m)
        have_cpu, have_gpu = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
        if res["num_cpus"] > have_cpu or res["num_gpus"] > have_gpu:
            raise ConfigError(
                f"model '{m}' asks Ray for num_cpus={res['num_cpus']:g}, "
                f"num_gpus={res['num_gpus']:g} per task but the cluster has {have_cpu:g} CPU(s) "
                f"and {have_gpu:g} GPU(s); lower ray.num_cpus / ray.num_gpus (or "
                f"ray.models.{m}), or use device: cpu with ray.num_gpus: 0")
        k = have_cpu // res["num_cpus"]
        if res["num_gpus"] > 0:
            k = min(k, have_gpu // res["num_gpus"])
        n = k if n is None else min(n, k)
    return max(1, int(n or 1))


# ---------------------------------------------------------------------------------------------
# worker side


class Tally:
    """Samples done per task, as workers report them (a Ray actor on the driver's cluster). A
    retried task starts its count again, so a killed worker's samples are not counted twice:
    the retry finds them in the cache and reports them as cached."""

    def __init__(self):
        self.counts: dict[int, list[int]] = {}

    def begin(self, index: int) -> None:
        self.counts[index] = [0, 0]

    def add(self, index: int, n: int, computed: bool) -> None:
        self.counts.setdefault(index, [0, 0])[1 if computed else 0] += n

    def totals(self) -> tuple[int, int]:
        """(cached, computed) over all tasks."""
        return (sum(c[0] for c in self.counts.values()), sum(c[1] for c in self.counts.values()))


_shipped: dict = {"digest": None, "names": []}


def _setup_worker(env: dict) -> None:
    """Make this worker see the driver's plugins (once per set of shipped plugins)."""
    from . import plugins

    for p in env["sys_path"]:
        if p not in sys.path:
            sys.path.append(p)
    os.environ["HARNESS_LOAD_PLUGINS"] = ",".join(env["distributions"])
    digest = hashlib.blake2b(env["plugins"], digest_size=16).hexdigest()
    if digest == _shipped["digest"]:
        return
    import pickle

    for name in _shipped["names"]:
        plugins.unregister(name)
    _shipped.update(digest=None, names=[])
    try:
        objects = pickle.loads(env["plugins"])
    except Exception as exc:
        raise HarnessError(
            "the plugins registered in the driver's code could not be loaded on a Ray worker "
            f"({type(exc).__name__}: {exc}); make their modules importable there (install "
            "them as a package with a 'harness' entry point)") from exc
    for name, obj in objects:
        if plugins.register(obj, name):
            _shipped["names"].append(name)
    _shipped["digest"] = digest


def _quiet(_msg: str) -> None:
    """Workers do not print: the driver shows one progress line for all of them."""


def run_task(suite_json: dict, task: ShardTask, env: dict, tally, index: int,
             threads: int, cell=None) -> int:
    """The body of one Ray task (also callable in-process, which the tests use)."""
    import torch

    _setup_worker(env)
    torch.set_num_threads(threads)
    suite = Suite.model_validate(suite_json)
    if tally is not None:
        tally.begin.remote(index)

    def progress(n: int, computed: bool) -> None:
        if tally is not None:
            tally.add.remote(index, n, computed)

    extract_shard(suite, task, _quiet, progress, cache_root=Path(env["cache_root"]), cell=cell)
    if tally is not None:  # the driver's last reading then includes every report of this task
        import ray

        ray.get(tally.totals.remote())
    return index


# ---------------------------------------------------------------------------------------------
# driver side


def worker_env(cache_root: Path) -> dict:
    from ray import cloudpickle

    from . import plugins

    objects, dists = plugins.shippable()
    return {"sys_path": [p for p in sys.path if p], "distributions": dists,
            "plugins": cloudpickle.dumps(objects), "cache_root": str(cache_root)}


def _init(ray, suite: Suite) -> bool:
    """Connect to (or start) Ray unless the caller already did; True when this call started it."""
    if ray.is_initialized():
        return False
    address = suite.ray.address
    try:
        ray.init(address=address, include_dashboard=False, logging_level="WARNING",
                 log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at '{address}'" if address else "a local Ray instance"
        raise HarnessError(f"could not start or reach {where}: {exc}; check ray.address "
                           "(auto joins a cluster started with `ray start`, ray://host:10001 a "
                           "remote one, none starts one here)") from exc
    return True


def _collect(ray, ref, task: ShardTask, suite: Suite) -> None:
    from ray.exceptions import RayError, RayTaskError

    try:
        ray.get(ref)
    except RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, HarnessError):
            raise cause from None
        raise HarnessError(
            f"{task} failed on a Ray worker: {type(cause).__name__ if cause else 'error'}: "
            f"{cause if cause is not None else exc}. Samples it finished are cached; fix the "
            "cause and rerun to resume") from exc
    except RayError as exc:
        raise HarnessError(
            f"{task}: its Ray worker died and the task was retried {suite.ray.max_retries} "
            f"time(s) ({type(exc).__name__}: {exc}). Samples it finished are cached; a rerun "
            "resumes (raise ray.max_retries, or check the workers' memory)") from exc


def extract(suite: Suite, cache_root: Path, echo, cells: dict, poll: float = 1.0,
            while_waiting=None) -> None:
    """Extract every cell's features on Ray workers into ``cache_root``; returns when all are
    cached. ``cells``: the driver's checked data per data entry, put in Ray's object store once
    and shared by every shard of it. ``while_waiting``: run on the driver once every task is
    submitted (its model-free work: otherwise the driver idles until the last shard, then does
    it alone while the workers idle). Raises HarnessError naming the failed shard."""
    ray = import_ray()
    started = _init(ray, suite)
    try:
        cluster = ray.cluster_resources()
        count = suite.ray.shards or slots(suite, cluster)
        if suite.ray.shards:
            slots(suite, cluster)  # feasibility check only
        todo = tasks(suite, count)
        total = sum(len(cells[d].members) + len(cells[d].nonmembers)
                    for m in suite.models for d in suite.data_for(m))
        n_cells = len(todo) // count
        echo(f"[ray] {len(todo)} task(s): {n_cells} cell(s) × {count} shard(s) on "
             f"{cluster.get('CPU', 0):g} CPU(s), {cluster.get('GPU', 0):g} GPU(s)")
        env = ray.put(worker_env(cache_root))
        suite_json = suite.model_dump(mode="json")
        cell_refs = {d: ray.put(c) for d, c in cells.items()}
        tally = ray.remote(num_cpus=0)(Tally).remote()
        fn = ray.remote(run_task)
        refs = {}
        for i, t in enumerate(todo):
            res = resources(suite, t.model)
            opts = dict(res, max_retries=suite.ray.max_retries, retry_exceptions=False,
                        name=f"extract {t}")
            ref = fn.options(**opts).remote(suite_json, t, env, tally, i,
                                            max(1, int(res["num_cpus"])), cell_refs[t.data])
            refs[ref] = t
        line = ProgressLine(total, echo, every=PROGRESS_EVERY)
        pending = list(refs)
        try:
            if while_waiting is not None:
                while_waiting()
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=poll)
                for r in ready:
                    _collect(ray, r, refs[r], suite)
                line.set(*ray.get(tally.totals.remote()))
                line.show(extra=f"{len(todo) - len(pending)}/{len(todo)} shards")
        except BaseException:
            for r in pending:
                ray.cancel(r, force=True)
            raise
        line.show(extra=f"{len(todo)}/{len(todo)} shards", force=True)
        ray.kill(tally)
    finally:
        if started:
            ray.shutdown()
