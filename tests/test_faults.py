"""State that survives faults (issue #15): kill -9 and SIGTERM mid-run, an unreachable MLflow,
two first runs on one new sqlite store at once, damaged cache files. Each ends with nothing
lost: a rerun (or ``harness log``) completes with the numbers an uninterrupted run gives."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness import tracking
from harness.cli import cli

#: `harness` with the toy plugins and a slowed toy model registered, for subprocess runs
CLI = textwrap.dedent("""\
    import os, sys, time
    from harness import hookimpl
    from harness.testing.suites import registered, toys_registered
    from harness.testing.toys import ToyAutoregressiveModel

    class Slow(ToyAutoregressiveModel):
        def provide(self, samples, needs, ctx):
            time.sleep(float(os.environ.get("SLOW", "0")))
            return super().provide(samples, needs, ctx)

    class P:
        @hookimpl
        def register_models(self, register):
            register("toy-slow", Slow, family="autoregressive", description="slowed toy")

    from harness.cli import main
    with toys_registered(), registered(P(), "toy-slow-plugin"):
        sys.argv = ["harness"] + sys.argv[1:]
        main()
    """)


def _suite(tmp: Path, name: str = "faults", seed: int = 0, uri: str | None = None,
           experiment: str | None = None, model: str = "toy-slow") -> Path:
    mlflow = f"sqlite:///{tmp}/mlflow.db" if uri is None else uri
    exp = f", experiment: {experiment}" if experiment else ""
    path = tmp / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        seed: {seed}
        batch_size: 2
        cache_dir: {tmp}/cache
        output_dir: {tmp}/results
        mlflow: {{tracking_uri: "{mlflow}"{exp}}}
        models:
          toy: {{plugin: {model}}}
        data:
          clips:
            members: {{source: toy-data, split: members, params: {{root: {tmp}/data, n: 12}}}}
            nonmembers: {{source: toy-data, split: nonmembers, params: {{root: {tmp}/data, n: 12}}}}
        attacks:
          - plugin: loss
          - plugin: min-k
        mia: {{subsamples: 5}}
        """))
    return path


def _spawn(args, tmp: Path, slow: float = 0.0) -> subprocess.Popen:
    env = dict(os.environ, SLOW=str(slow), HARNESS_LOAD_PLUGINS="")
    return subprocess.Popen([sys.executable, "-c", CLI, *args], cwd=tmp, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_shards(cache: Path, n: int, proc: subprocess.Popen, timeout: float = 120.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if len(list(cache.glob("features/*/shard-*.npz"))) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no shards appeared")


def _numbers(results_dir: Path) -> list:
    res = json.loads((results_dir / "results.json").read_text())
    return sorted((r["attack"], r["auc"], r["tpr_at_fpr"], r["selected_feature"])
                  for r in res["mia"])


def _only_results(root: Path) -> Path:
    dirs = [d for d in root.rglob("results.json")]
    assert len(dirs) == 1, dirs
    return dirs[0].parent


def _reference(tmp_path: Path) -> list:
    ref = tmp_path / "ref"
    ref.mkdir()
    p = _spawn(["run", str(_suite(ref)), "--no-log"], ref)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return _numbers(_only_results(ref / "results"))


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_numbers_of_an_uninterrupted_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    suite = _suite(run)
    p = _spawn(["run", str(suite), "--no-log"], run, slow=0.2)
    _wait_for_shards(run / "cache", 3, p)
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL
    assert not (run / "results").exists() or not list((run / "results").rglob("results.json"))
    again = _spawn(["run", str(suite), "--no-log"], run)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "from cache" in err  # resumed, not recomputed
    assert _numbers(_only_results(run / "results")) == _reference(tmp_path)
    assert not [p for p in (run / "results").rglob(".tmp-*")]


@pytest.mark.slow
def test_sigterm_unwinds_like_ctrl_c(tmp_path):
    suite = _suite(tmp_path)
    p = _spawn(["run", str(suite), "--no-log"], tmp_path, slow=0.2)
    _wait_for_shards(tmp_path / "cache", 2, p)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    assert len(err.strip().splitlines()[-1:]) == 1
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*"))
    assert not list((tmp_path / "cache").rglob(".tmp-*"))


def _results_dir(tmp: Path, toy_plugins, **kw) -> Path:
    suite = _suite(tmp, model="toy-autoregressive", **kw)
    res = CliRunner().invoke(cli, ["run", str(suite), "--no-log"])
    assert res.exit_code == 0, res.output
    return sorted((tmp / "results").rglob("results.json"))[-1].parent


def _runs(db: Path) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exps = client.search_experiments()
    return [r for r in client.search_runs([e.experiment_id for e in exps])]


def test_sigterm_while_logging_ends_runs_failed_and_removes_staging(tmp_path, toy_plugins,
                                                                    monkeypatch):
    results = _results_dir(tmp_path, toy_plugins)
    staging_root = tmp_path / "tmp"
    staging_root.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(staging_root))
    real = tracking._log_mia
    calls = []

    def log_mia_then_sigterm(*args, **kwargs):
        calls.append(1)
        run_id = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        return run_id

    monkeypatch.setattr(tracking, "_log_mia", log_mia_then_sigterm)
    db = tmp_path / "mlflow.db"
    res = CliRunner().invoke(cli, ["log", str(results), "--tracking-uri", f"sqlite:///{db}"])
    assert res.exit_code == 143, res.output
    assert "terminated (SIGTERM)" in res.stderr and calls == [1]
    runs = _runs(db)
    parents = [r for r in runs if r.data.tags.get("kind") == "suite"]
    assert len(parents) == 1 and parents[0].info.status == "FAILED"
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert not list(staging_root.glob("harness-mlflow-*"))
    assert not (results / tracking.MARKER).exists()  # still pending
    monkeypatch.setattr(tracking, "_log_mia", real)
    res = CliRunner().invoke(cli, ["log", "--pending", str(tmp_path / "results"),
                                   "--tracking-uri", f"sqlite:///{db}"])
    assert res.exit_code == 0, res.output
    runs = _runs(db)
    done = [r for r in runs if r.data.tags.get("kind") == "suite" and r.info.status == "FINISHED"]
    assert len(done) == 1 and not [r for r in runs if r.info.status == "RUNNING"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == done[0].info.run_id]
    # two MIA children and the blind baseline
    assert sorted(r.data.tags.get("kind") for r in children) == ["blind", "mia", "mia"]
    assert all(r.info.status == "FINISHED" for r in children)


def test_unreachable_mlflow_keeps_results_and_log_pending_uses_the_suite_experiment(
        tmp_path, toy_plugins, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suite = _suite(tmp_path, model="toy-autoregressive", uri="http://127.0.0.1:9",
                   experiment="my-exp")
    res = CliRunner().invoke(cli, ["run", str(suite)])
    assert res.exit_code == 0, res.output
    assert "Could not log to MLflow" in res.stderr and "harness log" in res.stderr
    results = _only_results(tmp_path / "results")
    assert not (results / tracking.MARKER).exists()
    db = tmp_path / "later.db"
    res = CliRunner().invoke(cli, ["log", "--pending", str(tmp_path / "results"),
                                   "--tracking-uri", f"sqlite:///{db}"])
    assert res.exit_code == 0, res.output
    marker = json.loads((results / tracking.MARKER).read_text())
    assert marker["experiment"] == "my-exp"
    from mlflow import MlflowClient

    assert MlflowClient(f"sqlite:///{db}").get_experiment_by_name("my-exp") is not None
    assert MlflowClient(f"sqlite:///{db}").get_experiment_by_name("faults") is None


@pytest.mark.slow
def test_two_first_runs_at_once_on_a_new_store(tmp_path, toy_plugins):
    dirs = [_results_dir(tmp_path / f"s{i}", toy_plugins, seed=i)
            for i in range(2) if (tmp_path / f"s{i}").mkdir() is None]
    db = tmp_path / "shared" / "mlflow.db"
    db.parent.mkdir()
    procs = [_spawn(["log", str(d), "--tracking-uri", f"sqlite:///{db}"], tmp_path)
             for d in dirs]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    tables = [r[0] for r in sqlite3.connect(db).execute(
        "select name from sqlite_master where type='table'")]
    assert not [t for t in tables if t.startswith("_alembic_tmp")], tables
    runs = _runs(db)
    # per store write: the parent, one MIA, one DI and one blind-baseline run
    assert len(runs) == 2 * 4 and all(r.info.status == "FINISHED" for r in runs)
    # the store stays usable
    third = _results_dir(tmp_path / "s0", toy_plugins, seed=5)
    assert tracking.log_results(third, tracking_uri=f"sqlite:///{db}")


def test_a_held_lock_makes_the_second_writer_wait_then_give_up(tmp_path, toy_plugins,
                                                               monkeypatch):
    from filelock import FileLock

    results = _results_dir(tmp_path, toy_plugins)
    db = tmp_path / "mlflow.db"
    monkeypatch.setattr(tracking, "LOCK_TIMEOUT", 0.3)
    with FileLock(str(db) + ".lock"):
        with pytest.raises(tracking.TrackingError, match="another process has been logging"):
            tracking.log_results(results, tracking_uri=f"sqlite:///{db}")
    assert tracking.log_results(results, tracking_uri=f"sqlite:///{db}")


def test_damaged_cache_files_are_quarantined_and_recomputed(tmp_path, toy_plugins):
    first = _numbers(_results_dir(tmp_path, toy_plugins))
    shards = sorted((tmp_path / "cache").glob("features/*/shard-*.npz"))
    metas = sorted((tmp_path / "cache").glob("features/*/meta.json"))
    assert len(shards) > 2 and len(metas) >= 2
    shards[0].write_bytes(shards[0].read_bytes()[:40])      # truncated zip
    shards[1].write_bytes(b"")                               # 0 bytes
    metas[0].write_bytes(b"")                                # 0-byte meta.json
    metas[1].write_text("{not json")
    suite = tmp_path / "faults.yaml"
    res = CliRunner().invoke(cli, ["run", str(suite), "--no-log"])
    assert res.exit_code == 0, res.output
    for f in (shards[0], shards[1], metas[0], metas[1]):
        assert f"cache file {f} is damaged" in res.stderr
        assert list(f.parent.glob(f.name + ".corrupt-*"))
    assert "to compute" in res.stderr  # the lost rows were recomputed
    latest = sorted((tmp_path / "results").rglob("results.json"))[-1].parent
    assert _numbers(latest) == first
    # the next run is clean: nothing left to quarantine
    res = CliRunner().invoke(cli, ["run", str(suite), "--no-log"])
    assert res.exit_code == 0 and "is damaged" not in res.stderr
