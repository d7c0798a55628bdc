"""End to end: a suite with a model plugin registered by the test (the toy autoregressive model
of ``harness.testing``, counting its calls), real built-in attacks and DI aggregator, logged to
MLflow and read back by `harness report`; plus resume after a kill."""

import json
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from harness import hookimpl, runner
from harness import suite as suite_mod
from harness.cli import cli
from harness.contracts import TOKEN_STATS_CONTRAST, Attack, FeatureSpec
from harness.testing import ToyAutoregressiveModel


class ToyModel(ToyAutoregressiveModel):
    calls = 0  # provide() calls, across instances (tests reset it)
    fail_after = None  # simulate a kill after this many calls (not a param: params key the cache)

    def provide(self, samples, needs, ctx):
        type(self).calls += 1
        if self.fail_after is not None and type(self).calls > self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        return super().provide(samples, needs, ctx)


class ToyAttack(Attack):
    """A third-party-style attack: mean log-prob of the first half of the tokens."""

    family = "autoregressive"
    defaults = {"fraction": 0.5}

    def needs(self):
        return {TOKEN_STATS_CONTRAST}

    def feature_specs(self):
        return [FeatureSpec("toy-head", higher_is_member=True)]

    def extract(self, ctx):
        stats = ctx.output(TOKEN_STATS_CONTRAST)
        k = [max(1, int(len(s) * self.params["fraction"])) for s in stats]
        return {"toy-head": np.array([s.logprob[:kk].mean() for s, kk in zip(stats, k)])}


class ToyPlugin:
    @hookimpl
    def register_models(self, register):
        register("toy-model", ToyModel, family="autoregressive", description="test model")

    @hookimpl
    def register_attacks(self, register):
        register("toy-attack", ToyAttack, family="autoregressive", description="test attack")


def _suite_text(tmp_path):
    text = textwrap.dedent(f"""\
        name: toy-suite
        seed: 1
        batch_size: 5
        cache_dir: {tmp_path}/cache
        output_dir: {tmp_path}/results
        mlflow:
          tracking_uri: sqlite:///{tmp_path}/mlflow.db
        models:
          toy:
            plugin: toy-model
            params: {{strength: 1.0}}
        data:
          clips:
            members: {{source: toy-data, split: members, params: {{root: {tmp_path}/data}}}}
            nonmembers: {{source: toy-data, split: nonmembers, params: {{root: {tmp_path}/data}}}}
        attacks:
          - plugin: loss
          - plugin: min-k
          - plugin: toy-attack
            name: my-attack
        aggregators:
          - plugin: minmax-sum
        mia: {{subsamples: 20}}
        di: {{n_grid: [2, 4, 8, 12], draws: 200}}
        """)
    return text


@pytest.fixture
def toy(register_plugin, toy_plugins):
    register_plugin(ToyPlugin(), "toy-plugin")
    ToyModel.calls = 0
    yield


def test_run_end_to_end(tmp_path, toy, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "suite.yaml"
    path.write_text(_suite_text(tmp_path))
    result = CliRunner().invoke(cli, ["run", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out_dirs = list((tmp_path / "results" / "toy-suite").iterdir())
    assert len(out_dirs) == 1
    res = json.loads((out_dirs[0] / "results.json").read_text())
    mia = {r["attack"]: r for r in res["mia"]}
    assert set(mia) == {"loss", "min-k", "my-attack"}
    # the toy model memorised its members: the attacks must find it
    assert mia["loss"]["auc"] > 0.8 and mia["my-attack"]["auc"] > 0.8
    assert mia["min-k"]["selected_feature"].startswith("min-k")
    assert 0 <= mia["loss"]["auc_std"] < 0.2
    di = res["di"][0]
    assert di["aggregator"] == "minmax-sum" and di["min_n"] is not None
    assert len(di["features"]) >= 3
    # minmax-sum is the autoregressive family's primary test: one test on all 24 vs 24
    first = di["primary"] and di["primary_test"]
    assert first["n"] == 24 and first["rejects"] and first["p_value"] < 0.01
    assert first["null_n"] == 12 and first["null_valid"] == 200  # 2n > 24: nearest that fits
    assert [r["n"] for r in di["null_per_n"]] == [2, 4, 8, 12]
    # every MIA result has its chance band; the cell has the band of its best attack
    assert all(0.5 < r["auc_null_q95"] < 0.8 and r["tpr_null_q95"] >= 0 for r in res["mia"])
    cell = res["cells"][0]
    assert cell["best_auc_null_q95"] >= max(r["auc_null_q95"] for r in res["mia"])
    assert mia["min-k"]["selection"] == "best-heldout"
    # toy-data's members are louder than its non-members: the blind baseline sees that without
    # the model, and marks the cell's results
    (b,) = res["blind"]
    assert b["auc"] > 0.9 and b["confounded"] and cell["confounded"]
    assert any(f["name"].startswith(("rms", "peak")) for f in b["top_features"])
    assert di["evidence"] == "confounded" and all(r["confounded"] for r in res["mia"])
    scores = np.load(out_dirs[0] / mia["loss"]["scores_file"])
    assert scores["member_scores"].shape == (24,)
    # one provide() per batch for all attacks together: 24 + 24 samples in batches of 5
    assert ToyModel.calls == 5 + 5
    # logged to MLflow and readable by `harness report`
    assert (out_dirs[0] / "mlflow.json").exists()
    rep = CliRunner().invoke(cli, ["report", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
                                   "--experiment", "toy-suite"], catch_exceptions=False)
    assert rep.exit_code == 0, rep.output
    assert "loss" in rep.output and "toy" in rep.output
    assert "| minmax-sum | **primary** | p = " in rep.output
    assert "(chance " in rep.output and "Best attack (chance of the best)" in rep.output
    assert "Blind baseline, no model" in rep.output and "toy [confounded]" in rep.output
    assert "confounded: confounded by a distribution shift between the sets" in rep.output
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.get_experiment_by_name("toy-suite")
    (brun,) = client.search_runs([exp.experiment_id], "tags.kind = 'blind'")
    assert brun.data.tags["confounded"] == "true" and brun.data.tags["model"] == "toy"
    assert brun.data.metrics["auc"] == pytest.approx(b["auc"])
    assert "tpr_at_fpr_0.01" in brun.data.metrics and "auc_lcb" in brun.data.metrics
    (drun,) = client.search_runs([exp.experiment_id], "tags.kind = 'di'")
    assert drun.data.tags["evidence"] == "confounded"
    mruns = client.search_runs([exp.experiment_id], "tags.kind = 'mia'")
    assert all(0.5 < r.data.metrics["auc_null_q95"] < 0.8 and "tpr_null_q95" in r.data.metrics
               for r in mruns)
    # given the suite, the report reads its store (and experiment) from it, from any directory
    monkeypatch.chdir(tmp_path.parent)
    rep2 = CliRunner().invoke(cli, ["report", str(path)], catch_exceptions=False)
    assert rep2.exit_code == 0 and rep2.output == rep.output
    # the run says how to browse the store and where the leaderboard is
    assert "[log] browse: mlflow ui --backend-store-uri 'sqlite:///" in result.output
    assert "[log] leaderboard: http://127.0.0.1:5000/#/experiments/" in result.output
    monkeypatch.chdir(tmp_path)
    # a second run reuses every cached feature: no model call
    ToyModel.calls = 0
    result = CliRunner().invoke(cli, ["run", str(path), "--no-log"], catch_exceptions=False)
    assert result.exit_code == 0 and ToyModel.calls == 0


def test_resume_after_kill_gives_identical_numbers(tmp_path, toy):
    killed = suite_mod.loads(_suite_text(tmp_path / "a"))
    ToyModel.fail_after = 3
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run(killed, log=False, echo=lambda m: None)
    finally:
        ToyModel.fail_after = None
    ToyModel.calls = 0
    resumed = suite_mod.loads(_suite_text(tmp_path / "a"))
    out_a = runner.run(resumed, log=False, echo=lambda m: None)
    # 3 batches were done before the kill; only the rest (10 - 3) are computed again
    assert ToyModel.calls == 10 - 3
    fresh = suite_mod.loads(_suite_text(tmp_path / "b"))
    out_b = runner.run(fresh, log=False, echo=lambda m: None)
    a = json.loads((out_a / "results.json").read_text())
    b = json.loads((out_b / "results.json").read_text())
    for ra, rb in zip(a["mia"], b["mia"]):
        assert ra["auc"] == rb["auc"] and ra["tpr_at_fpr"] == rb["tpr_at_fpr"]
        assert ra["auc_std"] == rb["auc_std"]
    assert a["di"][0]["per_n"] == b["di"][0]["per_n"]


def test_batch_size_does_not_change_features(tmp_path, toy):
    s1 = suite_mod.loads(_suite_text(tmp_path / "x"), overrides=["batch_size=3"])
    s2 = suite_mod.loads(_suite_text(tmp_path / "y"), overrides=["batch_size=24"])
    r1 = json.loads((runner.run(s1, log=False, echo=lambda m: None) / "results.json").read_text())
    r2 = json.loads((runner.run(s2, log=False, echo=lambda m: None) / "results.json").read_text())
    assert [r["auc"] for r in r1["mia"]] == [r["auc"] for r in r2["mia"]]


def test_attack_needing_missing_output_is_a_clear_error(tmp_path, toy, register_plugin):
    class NoContrast(ToyModel):
        has_null_condition = False

    class P:
        @hookimpl
        def register_models(self, register):
            register("toy-no-null", NoContrast, family="autoregressive")

    register_plugin(P(), "toy-no-null")
    s = suite_mod.loads(_suite_text(tmp_path), overrides=["models.toy.plugin=toy-no-null"])
    with pytest.raises(Exception, match=r"needs model outputs \['token_stats/contrast'\]"):
        runner.run(s, log=False, echo=lambda m: None)


def test_mlflow_unreachable_keeps_results(tmp_path, toy, capsys):
    text = _suite_text(tmp_path).replace(f"sqlite:///{tmp_path}/mlflow.db",
                                         f"sqlite:///{tmp_path}/no/such/dir/mlflow.db")
    s = suite_mod.loads(text)
    messages = []
    out = runner.run(s, log=True, echo=messages.append)
    assert (out / "results.json").exists() and not (out / "mlflow.json").exists()
    assert any("harness log" in m for m in messages)


def test_aggregator_without_features_for_a_model_is_skipped(tmp_path, toy):
    s = suite_mod.loads(_suite_text(tmp_path), overrides=["aggregators.0.features=[my-attack]",
                                                          "attacks.2.models=[]"])
    messages = []
    out = runner.run(s, log=False, echo=messages.append)
    res = json.loads((out / "results.json").read_text())
    assert res["di"] == [] and any("skipped" in m for m in messages)
