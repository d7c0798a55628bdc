"""`harness report`: paper-layout tables read back from MLflow runs logged by the log stage."""

import csv
import io

import pytest

from harness.errors import HarnessError
from harness.report import report
from harness.tracking import log_results

from test_tracking import make_results_dir


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """demo: an older run (every cell) and a newer one (the pia cell re-run with a new AUC, and a
    second data set); multi: one run; other: logged last (the default experiment)."""
    tmp = tmp_path_factory.mktemp("report")
    uri = f"sqlite:///{tmp}/mlflow.db"
    log_results(make_results_dir(tmp / "old"), tracking_uri=uri)
    log_results(make_results_dir(tmp / "new", cells=[
        ("diffusion-canary", "folk", "pia", 0.80, 0.125),
        ("diffusion-canary", "clips", "pia", 0.55, 0.0)], di=[]), tracking_uri=uri)
    log_results(make_results_dir(tmp / "other", suite="other", cells=[
        ("m", "d", "loss", 0.5, 0.01)], di=[]), tracking_uri=uri)
    return uri


def test_markdown_latest_run(store):
    md = report(store, "demo")
    # the newest suite run only: two data sets, so columns say which
    assert "| Attack | diffusion-canary (folk) | diffusion-canary (clips) |" in md
    assert "| pia | 80.00 ± 2.00 | 55.00 ± 2.00 |" in md
    assert "| pia | 12.50 ± 1.00 | 0.00 ± 1.00 |" in md
    assert "TPR@1%FPR" in md
    assert "loss" not in md and "Table 4" not in md  # not in that run
    assert "Table 3a: MIA on diffusion models, AUC" in md and "Table 3b" in md
    assert "Table 2" not in md  # no autoregressive model in that run


def test_markdown_all_runs_newest_per_cell(store):
    md = report(store, "demo", run="all")
    # numbered as in the paper: Table 2 autoregressive, Table 3 diffusion, Table 4 DI
    t2, t3 = md.index("Table 2a: MIA on autoregressive"), md.index("Table 3a: MIA on diffusion")
    assert t2 < md.index("Table 2b") < t3 < md.index("Table 3b") < md.index("Table 4: dataset")
    assert "| Attack | ar-canary |\n| --- | --- |\n| loss | 52.00 ± 2.00 |" in md[t2:t3]
    assert "| Attack | diffusion-canary (folk) | diffusion-canary (clips) |" in md[t3:]
    # pia/folk comes from the newer run, loss cells from the older one, missing cells are dashes
    assert "| pia | 80.00 ± 2.00 | 55.00 ± 2.00 |" in md[t3:]
    assert "| loss | 66.00 ± 2.00 | – |" in md[t3:]
    assert "| loss | 3.00 ± 1.00 | – |" in md[t3:]
    assert "| loss | 1.10 ± 1.00 |" in md[t2:t3]
    # DI: the primary test first, min n (exploratory), or "> largest n tried" when never
    # rejected, and the null control's FPR with its bound and count of valid tests
    assert ("| diffusion-canary | folk | cdi | **primary** | p = 0.0004 at n = 40, rejects; "
            "null FPR 0.006 (measured at n = 20) ≤ 0.300 | 20 | 0.01 | 0.008 (≤ 0.020), "
            "250 tests |") in md
    assert "| ar-canary | folk | cdi | exploratory | – | > 100 | 0.01 | 0.008 (≤ 0.020), " \
           "250 tests |" in md
    assert "⚠" not in md


def test_csv(store):
    rows = list(csv.DictReader(io.StringIO(report(store, "demo", fmt="csv", run="all"))))
    mia = {(r["model"], r["data"], r["attack"]): r for r in rows if r["kind"] == "mia"}
    assert set(mia) == {("diffusion-canary", "folk", "pia"), ("diffusion-canary", "folk", "loss"),
                        ("ar-canary", "folk", "loss"), ("diffusion-canary", "clips", "pia")}
    r = mia[("diffusion-canary", "folk", "pia")]
    assert float(r["auc"]) == 0.80 and float(r["tpr_at_fpr"]) == 0.125
    assert float(r["target_fpr"]) == 0.01 and r["selected_feature"] == "min-k:k=0.2%"
    di = {r["model"]: r for r in rows if r["kind"] == "di"}
    assert di["diffusion-canary"]["min_n"] == "20" and di["ar-canary"]["min_n"] == ""
    assert di["ar-canary"]["max_n"] == "100" and float(di["ar-canary"]["null_fpr"]) == 0.008
    assert di["diffusion-canary"]["primary"] == "True" and di["ar-canary"]["primary"] == "False"
    assert float(di["diffusion-canary"]["primary_p_value"]) == 0.0004
    assert di["diffusion-canary"]["primary_n"] == "40" and di["ar-canary"]["primary_n"] == ""


def test_di_marks_over_rejecting_null_and_missing_null(tmp_path):
    """Any DI result whose null FPR exceeds alpha (beyond its draws' noise) is marked, whatever
    the aggregator; a result whose null control ran no valid test says so (never "0.000")."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    log_results(make_results_dir(tmp_path / "r", cells=[], di=[
        ("diffusion-canary", "folk", "cdi", 20),
        ("diffusion-canary", "folk", "third-party", 10, {
            "null_fpr": 0.18, "null_valid": 550, "null_fpr_upper": 0.3, "primary": False,
            "caveat": "reproduction of the reference code; over-rejects"}),
        ("ar-canary", "folk", "minmax-sum", None, {
            "null_fpr": None, "null_valid": 0, "null_fpr_upper": None, "null_per_n": [],
            "null_note": "no valid null test ran (n = 2: 50 of 50 undefined)"})]),
        tracking_uri=uri)
    md = report(uri, "demo")
    rows = {line.split(" | ")[2]: line for line in md.splitlines() if line.startswith("| ")
            and " | folk | " in line}
    assert "⚠ null FPR 0.180 > α 0.01" in rows["third-party"]
    assert "exploratory (reproduction of the reference code; over-rejects)" in rows["third-party"]
    assert "⚠" not in rows["cdi"]
    assert "**no valid null test ran** (no valid null test ran (n = 2" in rows["minmax-sum"]
    assert "0.000" not in rows["minmax-sum"]


def test_default_experiment_is_the_latest(store):
    md = report(store)
    assert "experiment 'other'" in md and "| loss | 50.00 ± 2.00 |" in md


def test_specific_parent_run(store):
    import mlflow

    mlflow.set_tracking_uri(store)
    parents = mlflow.search_runs(experiment_names=["demo"], filter_string="tags.kind = 'suite'",
                                 order_by=["attributes.start_time ASC"], output_format="list")
    md = report(store, "demo", run=parents[0].info.run_id)
    assert "| pia | 71.00 ± 2.00 |" in md and "| loss | 66.00 ± 2.00 |" in md
    assert "| loss | 52.00 ± 2.00 |" in md  # ar-canary, in Table 2a


def test_unknown_experiment(store):
    with pytest.raises(HarnessError, match=r"Unknown experiment 'dem'\. Did you mean 'demo'\? "
                                           r"Available: Default, demo, other"):
        report(store, "dem")


def test_missing_database_is_not_created(tmp_path):
    with pytest.raises(HarnessError, match="No MLflow database"):
        report(f"sqlite:///{tmp_path}/mlflow.db")
    assert not (tmp_path / "mlflow.db").exists()
