"""The log stage: a results directory in the runner's format goes into MLflow as one parent run
with nested MIA/DI children, exactly once, and never at the cost of the results on disk."""

import json
import socket

import numpy as np
import pytest

from harness import atomic
from harness.errors import DataError, HarnessError
from harness.tracking import (TrackingError, flatten_params, log_results, metric_key,
                              pending)

N_GRID = [2, 5, 10, 20, 50, 100]


def make_results_dir(root, suite="demo", cells=None, di=None, started="2026-11-22T10:00:00"):
    """A results directory exactly as the runner writes it (results.json + score .npz files).

    ``cells``: list of (model, data, attack, auc, tpr); ``di``: list of
    (model, data, aggregator, min_n) — min_n None means the null hypothesis is never rejected.
    """
    cells = cells if cells is not None else [
        ("diffusion-canary", "folk", "pia", 0.71, 0.05),
        ("diffusion-canary", "folk", "loss", 0.66, 0.03),
        ("ar-canary", "folk", "loss", 0.52, 0.011),
    ]
    di = di if di is not None else [("diffusion-canary", "folk", "cdi", 20),
                                    ("ar-canary", "folk", "cdi", None)]
    rng = np.random.default_rng(0)
    mia = []
    for model, data, attack, auc, tpr in cells:
        rel = f"scores/{model}__{data}__{attack}.npz"
        m, u = rng.normal(1.0, 1.0, 30), rng.normal(0.0, 1.0, 40)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, member_ids=np.array([f"m{i}" for i in range(30)]),
                 nonmember_ids=np.array([f"u{i}" for i in range(40)]),
                 member_scores=m, nonmember_scores=u,
                 feature_names=np.array(["loss", "min-k:k=0.2%"]),
                 member_features=np.stack([m, -m], 1), nonmember_features=np.stack([u, -u], 1))
        mia.append({
            "model": model, "data": data, "attack": attack, "plugin": attack,
            "family": "diffusion" if "diffusion" in model else "autoregressive",
            "params": {"t": 100, "schedule": {"kind": "linear", "steps": [1, 2, 3]},
                       "long": "x" * 2000},
            "auc": auc, "auc_std": 0.02, "tpr_at_fpr": tpr, "tpr_at_fpr_std": 0.01,
            "target_fpr": 0.01, "selected_feature": "min-k:k=0.2%", "n_members": 30,
            "n_nonmembers": 40,
            "per_feature": [
                {"name": "loss", "auc": auc - 0.01, "auc_std": 0.02, "tpr": tpr, "tpr_std": 0.01,
                 "higher_is_member": False},
                {"name": "min-k:k=0.2%", "auc": auc, "auc_std": 0.02, "tpr": tpr,
                 "tpr_std": 0.01, "higher_is_member": True}],
            "scores_file": rel})
    di_entries = []
    for model, data, agg, min_n, *extra in di:
        def rows(reject_from):
            return [{"n": n, "mean_p": (0.001 if reject_from and n >= reject_from else 0.3) / n,
                     "median_p": 0.2 / n, "frac_reject": 1.0 if reject_from and n >= reject_from
                     else 0.0, "draws": 50, "undefined": 0} for n in N_GRID]
        null_rows = [dict(r, valid=50, rejects=0, fpr=0.0, independent=8, fpr_upper=0.35)
                     for r in rows(None)]
        primary = "diffusion" in model  # the family's default aggregator: the claim
        di_entries.append({
            "model": model, "data": data, "aggregator": agg, "plugin": agg,
            "family": "any", "params": {"test": "t-test"}, "alpha": 0.01,
            "model_family": "diffusion" if "diffusion" in model else "autoregressive",
            "features": ["pia", "loss"], "min_n": min_n, "min_n_frac": min_n,
            "per_n": rows(min_n), "null_per_n": null_rows, "null_fpr": 0.008,
            "null_fpr_upper": 0.02, "null_valid": 250, "null_skipped": [], "null_note": "",
            "draws": 50, "primary": primary, "caveat": "",
            **({"primary_test": {
                "n": 40, "p_value": 0.0004, "rejects": True, "undefined": False, "alpha": 0.01,
                "null_n": 20, "null_fpr": 0.006, "null_valid": 50, "null_draws": 50,
                "null_fpr_upper": 0.3, "null_independent": 1,
                "null_note": "no null at n = 40 (n = 40 needs 2n = 80 non-members, 40 "
                             "available); measured at the largest n that fits, 20"}}
               if primary else {}),
            **(extra[0] if extra else {})})
    atomic.write_json(root / "results.json", {
        "schema": 1, "suite_name": suite, "suite_yaml": f"name: {suite}\n",
        "resolved_config": {"name": suite, "seed": 0}, "harness_version": "0.1.0",
        "git_commit": "abc123", "started": started,
        "plugins": [{"name": "pia", "kind": "attack", "family": "diffusion",
                     "distribution": "audio-mia-harness", "version": "0.1.0"},
                    {"name": "cdi", "kind": "aggregator", "family": "any",
                     "distribution": "audio-mia-harness", "version": "0.1.0"},
                    {"name": "toy", "kind": "model", "family": "any",
                     "distribution": "toy-plugin", "version": None}],
        "mia": mia, "di": di_entries,
        "training": {"diffusion-canary": {"steps": 600, "n_train": 48, "train_seconds": 91.5,
                                          "loss_first": 0.9, "loss_last": 0.12}}})
    return root


def search(uri, experiment, filter_string=""):
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=[experiment], filter_string=filter_string,
                              output_format="list")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One database for the module (creating one costs ~4 s); each test uses its own experiment."""
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@pytest.fixture(scope="module")
def logged(store, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("logged")
    uri = store
    d = make_results_dir(tmp / "results" / "demo" / "r1")
    run_id = log_results(d, tracking_uri=uri)
    return uri, d, run_id


def test_parent_run(logged):
    uri, d, run_id = logged
    parents = search(uri, "demo", "tags.kind = 'suite'")
    assert [p.info.run_id for p in parents] == [run_id]
    p = parents[0]
    assert p.info.status == "FINISHED"
    assert p.data.tags["suite"] == "demo" and p.data.tags["harness_version"] == "0.1.0"
    assert p.data.tags["mlflow.source.git.commit"] == "abc123"
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    arts = {a.path for a in client.list_artifacts(run_id)}
    assert {"suite.yaml", "resolved_config.json", "plugins.txt"} <= arts
    reqs = open(client.download_artifacts(run_id, "plugins.txt", str(d / ".." / "dl"))).read()
    assert reqs.splitlines() == ["audio-mia-harness==0.1.0", "toy-plugin"]
    marker = json.loads((d / "mlflow.json").read_text())
    assert marker["parent_run_id"] == run_id and marker["experiment"] == "demo"
    assert marker["tracking_uri"] == uri and marker["logged_at"]


def test_mia_children(logged):
    uri, d, run_id = logged
    kids = search(uri, "demo", "tags.kind = 'mia'")
    assert len(kids) == 3
    assert all(k.data.tags["mlflow.parentRunId"] == run_id for k in kids)
    pia = next(k for k in kids if k.data.tags["attack"] == "pia")
    assert {t: pia.data.tags[t] for t in ("model", "attack", "family", "data", "plugin",
                                          "selected_feature")} == {
        "model": "diffusion-canary", "attack": "pia", "family": "diffusion", "data": "folk",
        "plugin": "pia", "selected_feature": "min-k:k=0.2%"}
    m = pia.data.metrics
    assert m["auc"] == 0.71 and m["auc_std"] == 0.02
    assert m["tpr_at_fpr_0.01"] == 0.05 and m["tpr_at_fpr_0.01_std"] == 0.01
    # a feature name with ':', '=' and '%' is sanitised into a valid metric name
    assert m["feature/min-k_k_0.2_/auc"] == 0.71 and m["feature/loss/tpr_at_fpr_0.01"] == 0.05
    assert set(m) == {"auc", "auc_std", "tpr_at_fpr_0.01", "tpr_at_fpr_0.01_std"} | {
        f"feature/{f}/{s}" for f in ("loss", "min-k_k_0.2_")
        for s in ("auc", "auc_std", "tpr_at_fpr_0.01", "tpr_at_fpr_0.01_std")} | {
        f"train.{k}" for k in ("steps", "n_train", "train_seconds", "loss_first", "loss_last")}
    p = pia.data.params
    assert p["n_members"] == "30" and p["n_nonmembers"] == "40" and p["target_fpr"] == "0.01"
    assert p["t"] == "100" and p["schedule.steps"] == "[1, 2, 3]"
    assert len(p["long"]) <= 500 and p["long"].endswith("…")

    from mlflow import MlflowClient

    client = MlflowClient(uri)
    rid = pia.info.run_id
    assert {"roc.png", "scores.csv", "params.json", "per_feature.json"} <= {
        a.path for a in client.list_artifacts(rid)}
    dl = d.parent / "dl-mia"
    full = json.loads(open(client.download_artifacts(rid, "params.json", str(dl))).read())
    assert full["long"] == "x" * 2000  # the full parameters survive in the artifact
    lines = open(client.download_artifacts(rid, "scores.csv", str(dl))).read().splitlines()
    assert lines[0] == "id,membership,score,loss,min-k:k=0.2%"
    assert len(lines) == 1 + 30 + 40 and lines[1].startswith("m0,1,")
    assert lines[31].startswith("u0,0,")
    png = open(client.download_artifacts(rid, "roc.png", str(dl)), "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_di_children(logged):
    uri, d, run_id = logged
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    kids = {k.data.tags["model"]: k for k in search(uri, "demo", "tags.kind = 'di'")}
    assert set(kids) == {"diffusion-canary", "ar-canary"}
    rej, never = kids["diffusion-canary"], kids["ar-canary"]
    assert {t: rej.data.tags[t] for t in ("model", "aggregator", "family", "data")} == {
        "model": "diffusion-canary", "aggregator": "cdi", "family": "diffusion", "data": "folk"}
    # family is the model's family on every child run, not the (general) aggregator's
    assert never.data.tags["family"] == "autoregressive"
    assert never.data.tags["aggregator_family"] == "any"
    # a canary's training summary is on each of its runs; a model without one has none
    assert rej.data.metrics["train.steps"] == 600 and rej.data.metrics["train.loss_last"] == 0.12
    assert rej.data.metrics["train.train_seconds"] == 91.5
    assert not [k for k in never.data.metrics if k.startswith("train.")]
    assert rej.data.tags["mlflow.parentRunId"] == run_id
    assert rej.data.metrics["min_n"] == 20
    assert "min_n" not in never.data.metrics  # never rejected: no fake number
    for k in (rej, never):
        m = k.data.metrics
        assert m["null_fpr_pooled"] == 0.008 and m["null_fpr_pooled_upper"] == 0.02
        assert m["null_valid_total"] == 250
        for name in ("p_value", "frac_reject", "null_p_value", "null_fpr", "null_valid",
                     "null_fpr_upper"):
            hist = client.get_metric_history(k.info.run_id, name)
            assert sorted(h.step for h in hist) == N_GRID
    # the pre-declared primary test is on the primary aggregator's run only
    assert rej.data.tags["primary"] == "true" and never.data.tags["primary"] == "false"
    assert rej.data.metrics["primary_p_value"] == 0.0004 and rej.data.metrics["primary_n"] == 40
    assert rej.data.metrics["primary_null_fpr"] == 0.006
    assert rej.data.metrics["primary_null_n"] == 20
    assert "measured at the largest n that fits, 20" in rej.data.tags["primary_null_note"]
    assert "null_note" not in rej.data.tags  # the grid's null control lacked nothing
    assert not [k for k in never.data.metrics if k.startswith("primary_")]
    assert {h.step: h.value for h in client.get_metric_history(
        rej.info.run_id, "null_valid")} == {n: 50 for n in N_GRID}
    hist = {h.step: h.value for h in client.get_metric_history(rej.info.run_id, "p_value")}
    assert hist[20] == pytest.approx(0.001 / 20) and hist[10] == pytest.approx(0.03)
    arts = {a.path for a in client.list_artifacts(rej.info.run_id)}
    assert {"pvalue_vs_n.png", "per_n.json"} <= arts


def test_logging_twice_does_not_duplicate(tmp_path, store):
    uri = store
    d = make_results_dir(tmp_path / "r", suite="twice")
    first = log_results(d, tracking_uri=uri)
    assert log_results(d, tracking_uri=uri) == first
    # lost marker (crash after logging): the store itself knows this results directory
    (d / "mlflow.json").unlink()
    assert log_results(d, tracking_uri=uri) == first
    assert len(search(uri, "twice", "tags.kind = 'suite'")) == 1
    assert len(search(uri, "twice", "tags.kind = 'mia'")) == 3
    # another experiment in the same store is not a duplicate
    other = log_results(d, tracking_uri=uri, experiment="twice-copy")
    assert other != first and len(search(uri, "twice-copy", "tags.kind = 'suite'")) == 1
    # force logs a new copy
    again = log_results(d, tracking_uri=uri, force=True)
    assert again != first and len(search(uri, "twice", "tags.kind = 'suite'")) == 2
    assert json.loads((d / "mlflow.json").read_text())["parent_run_id"] == again


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("bad", ["missing-dir", "file-as-dir", "http"])
def test_unreachable_store_keeps_results(tmp_path, bad):
    d = make_results_dir(tmp_path / "r")
    before = sorted(p.relative_to(d) for p in d.rglob("*"))
    (tmp_path / "afile").write_text("")
    uri = {"missing-dir": f"sqlite:///{tmp_path}/no/such/dir/mlflow.db",
           "file-as-dir": f"sqlite:///{tmp_path}/afile/mlflow.db",
           "http": f"http://127.0.0.1:{_closed_port()}"}[bad]
    with pytest.raises(TrackingError) as err:
        log_results(d, tracking_uri=uri)
    msg = str(err.value)
    assert isinstance(err.value, HarnessError)
    assert f"kept at {d}" in msg and f"harness log {d}" in msg
    assert not (d / "mlflow.json").exists()
    assert sorted(p.relative_to(d) for p in d.rglob("*")) == before
    assert not (tmp_path / "no").exists()  # no database created in a directory that was missing
    assert pending(tmp_path) == [d]


def test_failure_midway_marks_parent_failed_and_relog_works(tmp_path, monkeypatch, store):
    uri = store
    d = make_results_dir(tmp_path / "r", suite="midway")
    import harness.plots

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(harness.plots, "pvalue_plot", boom)
    with pytest.raises(TrackingError, match="disk full"):
        log_results(d, tracking_uri=uri)
    assert not (d / "mlflow.json").exists()
    parents = search(uri, "midway", "tags.kind = 'suite'")
    assert [p.info.status for p in parents] == ["FAILED"]
    monkeypatch.undo()
    run_id = log_results(d, tracking_uri=uri)
    finished = search(uri, "midway", "tags.kind = 'suite' AND attributes.status = 'FINISHED'")
    assert [p.info.run_id for p in finished] == [run_id]


def test_bad_results_dir_is_a_data_error(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with pytest.raises(DataError, match="results.json"):
        log_results(tmp_path, tracking_uri=uri)
    d = make_results_dir(tmp_path / "r")
    (d / "scores" / "ar-canary__folk__loss.npz").unlink()
    with pytest.raises(DataError, match="ar-canary__folk__loss.npz"):
        log_results(d, tracking_uri=uri)
    assert not (tmp_path / "mlflow.db").exists()  # checked before MLflow is touched


def test_pending_lists_unlogged_dirs(tmp_path):
    a = make_results_dir(tmp_path / "demo" / "a")
    b = make_results_dir(tmp_path / "demo" / "b")
    make_results_dir(tmp_path / "demo" / ".tmp-c-123")  # half-written by the atomic writer
    atomic.write_json(b / "mlflow.json", {"parent_run_id": "x"})
    assert pending(tmp_path) == [a]


def test_metric_keys_are_valid_mlflow_names():
    from mlflow.utils.validation import _validate_metric_name

    for raw in ["min-k:k=0.2%", "a/b", "..", ".", "", "tpr@1%fpr", "x" * 400, "ünï cödé"]:
        key = metric_key("feature", raw, "auc")
        _validate_metric_name(key)
        assert len(key) <= 250
    assert metric_key("feature", "loss", "auc") == "feature/loss/auc"


def test_flatten_params():
    flat = flatten_params({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None, "f": "x" * 600,
                           "g:h": True})
    assert flat == {"a.b": "1", "a.c.d": "[1, 2]", "e": "None", "f": "x" * 499 + "…",
                    "g_h": "True"}


def test_roc_curve_and_plot(tmp_path):
    from harness.plots import pvalue_plot, roc_curve, roc_plot

    fpr, tpr = roc_curve([3, 2, 2], [2, 1])
    # thresholds 3, 2, 1: the tie at 2 moves both rates in one step
    assert fpr.tolist() == [0, 0, 0.5, 1] and tpr.tolist() == [0, 1 / 3, 1, 1]
    fpr, tpr = roc_curve(np.ones(5), np.ones(5))
    assert fpr.tolist() == [0, 1] and tpr.tolist() == [0, 1]
    out = roc_plot(tmp_path / "roc.png", [3, 2, 2], [2, 1], title="t", target_fpr=0.01)
    assert out.read_bytes()[:4] == b"\x89PNG"
    rows = [{"n": n, "mean_p": p} for n, p in [(2, 0.5), (4, 0.0), (8, 1e-5)]]
    out = pvalue_plot(tmp_path / "p.png", rows, alpha=0.01, null_per_n=rows, min_n=8)
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".tmp-*"))


def test_experiment_opens_on_runs_and_leaderboard_url(logged):
    import json
    from urllib.parse import parse_qs, urlsplit

    from mlflow import MlflowClient

    from harness.tracking import (EXPERIMENT_KIND, LEADERBOARD_KEY, SHARED_VIEW_PREFIX,
                                  leaderboard_url, ui_command)

    uri, d, run_id = logged
    exp = MlflowClient(uri).get_experiment_by_name("demo")
    assert exp.tags[EXPERIMENT_KIND[0]] == "custom_model_development"
    url = leaderboard_url(uri, exp.experiment_id)
    assert url.startswith(f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs?")
    # only the share key: MLflow's UI ignores a stored view when the URL carries filters too
    q = parse_qs(urlsplit(url.split("#", 1)[1]).query)
    assert q == {"viewStateShareKey": [LEADERBOARD_KEY]}
    view = json.loads(exp.tags[SHARED_VIEW_PREFIX + LEADERBOARD_KEY])
    assert view["orderByKey"] == "metrics.`auc`" and view["orderByAsc"] is False
    # the columns a user would otherwise pick by hand, chance levels included
    assert view["selectedColumns"][:4] == ["metrics.`auc`", "metrics.`tpr_at_fpr_0.01`",
                                           "metrics.`auc_null_q95`", "metrics.`tpr_null_q95`"]
    # every column names something the MIA runs carry, and the filter finds exactly them
    runs = search(uri, "demo", view["searchFilter"])
    assert len(runs) == 3
    r = runs[0].data
    have = {f"metrics.`{k}`" for k in r.metrics} | {f"params.`{k}`" for k in r.params} | \
        {f"tags.`{k}`" for k in r.tags}
    assert {"metrics.`auc`", "metrics.`tpr_at_fpr_0.01`", "tags.`family`", "tags.`model`",
            "params.`n_members`"} <= have
    assert ui_command(uri) == f"mlflow ui --backend-store-uri '{uri}' --port 5000"
    assert leaderboard_url("http://mlflow.example:8080/", "7").startswith(
        "http://mlflow.example:8080/#/experiments/7/runs?")


def test_parent_run_carries_report_and_summary_figures(logged, tmp_path):
    from mlflow import MlflowClient

    uri, d, run_id = logged
    client = MlflowClient(uri)
    arts = {a.path for a in client.list_artifacts(run_id)}
    assert {"report", "figures"} <= arts
    assert {a.path for a in client.list_artifacts(run_id, "report")} == {
        "report/report.md", "report/report.csv"}
    md = open(client.download_artifacts(run_id, "report/report.md", str(tmp_path))).read()
    from harness.report import report

    assert md.rstrip("\n") == report(uri, "demo", run=run_id)
    figs = sorted(a.path for a in client.list_artifacts(run_id, "figures"))
    # one ROC per (model, data) cell with scores, one p-value plot per DI result
    assert sum("/roc " in f for f in figs) >= 1 and sum("/pvalue " in f for f in figs) == 2
    png = open(client.download_artifacts(run_id, figs[0], str(tmp_path)), "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
