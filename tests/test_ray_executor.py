"""``executor: ray`` on a local Ray instance started by the test (no cluster): the same
results.json numbers as the local executor, a worker killed mid-shard retried to identical
numbers, progress on the driver, and named errors for what Ray cannot do."""

import fcntl
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness import hookimpl, runner
from harness import suite as suite_mod
from harness.errors import ConfigError, HarnessError
from harness.testing import ToyAutoregressiveModel, toy_suite

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             object_store_memory=100 * 1024 * 1024)
    yield
    ray.shutdown()


def _log_call(root: Path, ids) -> None:
    with open(root / "provided.log", "a") as fh:  # one line per call, from any process
        fh.write(f"{os.getpid()} {' '.join(ids)}\n")


class FragileAR(ToyAutoregressiveModel):
    """Logs every provide() (pid, sample ids) next to the data; when a ``kill-after`` file holds
    a number, the process serving the provide() call that brings it to 0 dies (os._exit, as a
    preempted node would), so a shard is killed after some of its batches are cached."""

    def provide(self, samples, needs, ctx):
        root = Path(samples[0].path).parents[1]
        kill = root / "kill-after"
        if kill.exists():
            with open(kill, "r+") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                left = int(fh.read() or 0)
                if left > 0:
                    fh.seek(0), fh.truncate(), fh.write(str(left - 1)), fh.flush()
                    if left - 1 == 0:
                        os._exit(1)
        _log_call(root, [s.id for s in samples])
        if (root / "slow").exists():
            time.sleep(0.3)
        return super().provide(samples, needs, ctx)


class Fragile:
    @hookimpl
    def register_models(self, register):
        register("fragile-ar", FragileAR, family="autoregressive")


@pytest.fixture
def fragile(register_plugin, toy_plugins):
    register_plugin(Fragile(), "fragile-toys")


def _suite(root: Path, executor: str, n=16, **ray_cfg) -> suite_mod.Suite:
    s = toy_suite(["loss", "min-k", "zlib"], root / "data", aggregators=["minmax-sum"], n=n,
                  batch_size=3)
    s["models"] = {"ar": {"plugin": "fragile-ar"}}
    s.update(cache_dir=str(root / "cache"), output_dir=str(root / "results"), executor=executor,
             ray=dict(ray_cfg))
    return suite_mod.loads(yaml.safe_dump(s))


def _numbers(out: Path) -> dict:
    res = json.loads((out / "results.json").read_text())
    mia = [{k: r[k] for k in ("model", "attack", "auc", "auc_std", "tpr_at_fpr",
                              "tpr_at_fpr_std", "selected_feature", "per_feature")}
           for r in res["mia"]]
    di = [{k: d[k] for k in ("model", "aggregator", "per_n", "min_n", "null_fpr")}
          for d in res["di"]]
    feats = {}
    for r in res["mia"]:
        with np.load(out / r["scores_file"]) as z:
            feats[r["attack"]] = (z["member_features"].tolist(), z["nonmember_features"].tolist())
    return {"mia": mia, "di": di, "features": feats}


def _cached_ids(root: Path) -> set[str]:
    ids = set()
    for shard in (root / "cache" / "features").glob("*/shard-*.npz"):
        with np.load(shard) as z:
            ids |= set(z["ids"].tolist())
    return ids


def _calls(root: Path) -> list[tuple[int, list[str]]]:
    log = root / "data" / "provided.log"
    if not log.exists():
        return []
    return [(int(p), ids.split()) for p, _, ids in
            (line.partition(" ") for line in log.read_text().splitlines())]


def test_ray_gives_the_local_numbers(tmp_path, fragile, ray_instance):
    local = runner.run(_suite(tmp_path / "local", "local"), log=False, echo=lambda m: None)
    messages = []
    out = runner.run(_suite(tmp_path / "ray", "ray"), log=False, echo=messages.append)
    assert _numbers(out) == _numbers(local)
    assert _numbers(out)["mia"][0]["auc"] > 0.8  # informative numbers, not chance
    calls = _calls(tmp_path / "ray")
    # the work ran on the workers (not the driver), each sample once, in 2 shards (one per CPU)
    assert os.getpid() not in {pid for pid, _ in calls}
    ids = [i for _, batch in calls for i in batch]
    assert len(ids) == len(set(ids)) == 32
    assert any("[ray] 2 task(s): 1 cell(s) × 2 shard(s)" in m for m in messages)
    assert any(m.startswith("[extract] 32/32 samples") and "2/2 shards" in m for m in messages)


def test_driver_runs_the_blind_baseline_while_workers_extract(tmp_path, fragile, ray_instance):
    """The driver's model-free work overlaps the workers' extraction (it would otherwise idle
    until the last shard) and gives the local executor's blind numbers."""
    local = runner.run(_suite(tmp_path / "local", "local"), log=False, echo=lambda m: None)
    (tmp_path / "ray" / "data").mkdir(parents=True)
    (tmp_path / "ray" / "data" / "slow").touch()  # workers still busy when the driver is done
    messages = []
    out = runner.run(_suite(tmp_path / "ray", "ray"), log=False, echo=messages.append)
    blind = [i for i, m in enumerate(messages) if m.startswith("[blind]")]
    last_shard = max(i for i, m in enumerate(messages) if "2/2 shards" in m)
    assert len(blind) == 1 and blind[0] < last_shard, messages  # before the last shard ends

    def blind_of(d):
        return [{k: v for k, v in b.items() if k != "scores_file"}
                for b in json.loads((d / "results.json").read_text())["blind"]]
    assert blind_of(out) == blind_of(local) and blind_of(out)[0]["auc"] is not None


def test_counts_written_as_all_run_under_ray(tmp_path, fragile, ray_instance):
    """The driver's progress total comes from the data it checked (n_members: all used to
    reach a second count rule that compared 'all' with an int)."""
    s = _suite(tmp_path / "all", "ray")
    d = next(iter(s.data.values()))
    d.n_members = d.n_nonmembers = "all"
    messages = []
    runner.run(s, log=False, echo=messages.append)
    assert any(m.startswith("[extract] 32/32 samples") for m in messages)


def test_killed_worker_is_retried_to_identical_numbers(tmp_path, fragile, ray_instance):
    root = tmp_path / "killed"
    s = _suite(root, "ray", shards=2)
    s_local = _suite(tmp_path / "local", "local")
    (root / "data").mkdir(parents=True)
    (root / "data" / "kill-after").write_text("4")  # dies in its 4th batch: mid-shard
    out = runner.run(s, log=False, echo=lambda m: None)
    assert (root / "data" / "kill-after").read_text() == "0"
    calls = _calls(root)
    ids = [i for _, batch in calls for i in batch]
    # the batches cached before the kill were not computed again: no sample twice
    assert len(ids) == len(set(ids)) == 32
    assert len({pid for pid, _ in calls}) >= 2
    assert _numbers(out) == _numbers(runner.run(s_local, log=False, echo=lambda m: None))


def test_worker_that_keeps_dying_is_a_named_error_and_resumable(tmp_path, fragile,
                                                                   ray_instance):
    root = tmp_path / "dies"
    s = _suite(root, "ray", shards=1, max_retries=0)
    (root / "data").mkdir(parents=True)
    (root / "data" / "kill-after").write_text("3")
    with pytest.raises(HarnessError, match=r"ar × toy shard 0/1: its Ray worker died"):
        runner.run(s, log=False, echo=lambda m: None)
    done = [i for _, batch in _calls(root) for i in batch]
    assert len(done) == 2 * 3  # two batches were cached before the kill
    out = runner.run(s, log=False, echo=lambda m: None)  # a rerun resumes
    again = [i for _, batch in _calls(root) for i in batch]
    assert len(again) == 32 and len(set(again)) == 32
    assert _numbers(out)["mia"][0]["auc"] > 0.8


def test_interrupted_driver_resumes_without_recomputing(tmp_path, fragile, ray_instance,
                                                        monkeypatch):
    """The driver stops (Ctrl-C) once some samples are cached: its tasks are cancelled, and a
    rerun computes only the rest, to the numbers of an uninterrupted run."""
    from harness import ray_executor

    monkeypatch.setattr(ray_executor, "PROGRESS_EVERY", 0.0)
    root = tmp_path / "driver"
    s = _suite(root, "ray", shards=2)
    (root / "data").mkdir(parents=True)
    (root / "data" / "slow").write_text("")  # 0.3 s per batch: the stop comes mid-run

    def echo(msg):
        if msg.startswith("[extract] ") and not msg.startswith("[extract] 0/"):
            raise KeyboardInterrupt("driver stopped")

    with pytest.raises(KeyboardInterrupt):
        runner.run(s, log=False, echo=echo)
    time.sleep(1.0)  # let the cancelled tasks die
    cached = _cached_ids(root)
    assert 0 < len(cached) < 32
    before = len(_calls(root))
    out = runner.run(s, log=False, echo=lambda m: None)
    again = [i for _, batch in _calls(root)[before:] for i in batch]
    assert not cached & set(again) and len(cached) + len(set(again)) == 32
    local = runner.run(_suite(tmp_path / "local", "local"), log=False, echo=lambda m: None)
    assert _numbers(out) == _numbers(local)


def test_infeasible_resources_are_a_named_error(tmp_path, fragile, ray_instance):
    s = _suite(tmp_path, "ray", num_gpus=1)
    with pytest.raises(ConfigError, match=r"asks Ray for num_cpus=1, num_gpus=1 .* 0 GPU"):
        runner.run(s, log=False, echo=lambda m: None)


def _demo_audio_cells(root: Path) -> dict:
    """suites/demo.yaml's two audio cells, smaller (8 + 8 tunes, 40-step canaries, batches of 4:
    two per side, so both shards of a cell have work); the benchmark times the same cells."""
    import importlib.util

    path = Path(__file__).parents[1] / "benchmarks" / "executor.py"
    spec = importlib.util.spec_from_file_location("benchmark_executor", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.demo_audio_cells(root, n=8, steps=40, batch_size=4)


@pytest.mark.slow
def test_demo_audio_cells_identical_under_ray_and_local(tmp_path, ray_instance):
    import shutil

    import torch

    raw = _demo_audio_cells(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray task (num_cpus 1): CPU float sums depend on threads
    try:
        local = runner.run(suite_mod.loads(yaml.safe_dump(raw)), log=False, echo=lambda m: None)
    finally:
        torch.set_num_threads(threads)
    shutil.rmtree(tmp_path / "cache" / "features")  # keep the trained canaries, not the features
    raw["executor"] = "ray"
    messages = []
    out = runner.run(suite_mod.loads(yaml.safe_dump(raw)), log=False, echo=messages.append)
    assert any("[ray] 4 task(s): 2 cell(s) × 2 shard(s)" in m for m in messages)
    assert any(m.startswith("[extract] 32/32 samples") for m in messages)
    assert not any(m.startswith("[extract] diffusion-canary") for m in messages)  # not the driver
    got, want = _numbers(out), _numbers(local)
    assert len(got["mia"]) == 13 and len(got["di"]) == 2
    assert got == want
