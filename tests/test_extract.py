"""Sharded extraction (the Slurm-array path): ``harness run --shard i/k`` for every i, then a
plain run, gives the numbers of one plain run, and the plain run makes no model pass."""

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from harness import hookimpl
from harness.cli import cli
from harness.testing import ToyAutoregressiveModel, toy_suite
from harness.testing.toys import ToyDiffusionModel

PROVIDED: list[str] = []  # sample ids handed to provide(), in order


class CountingAR(ToyAutoregressiveModel):
    def provide(self, samples, needs, ctx):
        PROVIDED.extend(s.id for s in samples)
        return super().provide(samples, needs, ctx)


class CountingDiffusion(ToyDiffusionModel):
    def provide(self, samples, needs, ctx):
        PROVIDED.extend(s.id for s in samples)
        return super().provide(samples, needs, ctx)


class Counting:
    @hookimpl
    def register_models(self, register):
        register("count-ar", CountingAR, family="autoregressive")
        register("count-diffusion", CountingDiffusion, family="diffusion")


def _suite(root, n=14):
    s = toy_suite(["loss", "min-k", "zlib", "denoising-loss", "pia"], root / "data",
                  family="both", aggregators=["minmax-sum", "cdi"], n=n, batch_size=3)
    s["models"] = {"ar": {"plugin": "count-ar"},
                   "diff": {"plugin": "count-diffusion",
                            "params": s["models"]["toy-diffusion"]["params"]}}
    s.update(cache_dir=str(root / "cache"), output_dir=str(root / "results"))
    path = root / "suite.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(s))
    return path


def _invoke(*args):
    res = CliRunner().invoke(cli, ["run", *map(str, args), "--no-log"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def _results(root):
    (out,) = (root / "results" / "toy").iterdir()
    return json.loads((out / "results.json").read_text()), out


@pytest.fixture
def counting(register_plugin, toy_plugins):
    register_plugin(Counting(), "counting-toys")
    PROVIDED.clear()


def test_all_shards_then_plain_run_equals_one_plain_run(tmp_path, counting):
    sharded = _suite(tmp_path / "sharded")
    for i in range(3):
        before = len(PROVIDED)
        res = _invoke(sharded, "--shard", f"{i}/3")
        assert "run without --shard to score" in res.output
        assert len(PROVIDED) > before  # each shard extracted something ...
    assert not (tmp_path / "sharded" / "results").exists()  # ... and scored nothing
    # every sample was computed exactly once per model (14 members + 14 non-members, two models)
    assert len(PROVIDED) == 2 * 2 * 14 and len(set(PROVIDED)) == 2 * 14
    PROVIDED.clear()
    _invoke(sharded)
    assert PROVIDED == []  # scored from the cache: no model pass
    a, out_a = _results(tmp_path / "sharded")

    plain = _suite(tmp_path / "plain")
    _invoke(plain)
    b, out_b = _results(tmp_path / "plain")
    assert len(a["mia"]) == 3 + 2  # 3 AR attacks, 2 diffusion attacks
    assert [(r["model"], r["attack"], r["auc"], r["auc_std"], r["tpr_at_fpr"],
             r["selected_feature"], r["per_feature"]) for r in a["mia"]] == \
           [(r["model"], r["attack"], r["auc"], r["auc_std"], r["tpr_at_fpr"],
             r["selected_feature"], r["per_feature"]) for r in b["mia"]]
    assert [d["per_n"] for d in a["di"]] == [d["per_n"] for d in b["di"]] and len(a["di"]) == 2
    for ra, rb in zip(a["mia"], b["mia"]):
        za, zb = np.load(out_a / ra["scores_file"]), np.load(out_b / rb["scores_file"])
        assert np.array_equal(za["member_features"], zb["member_features"])
        assert np.array_equal(za["nonmember_scores"], zb["nonmember_scores"])
    # the toys leak: the comparison is between informative numbers, not two chance-level runs
    assert max(r["auc"] for r in a["mia"]) > 0.8


def test_resharding_reuses_finished_samples(tmp_path, counting):
    path = _suite(tmp_path)
    _invoke(path, "--shard", "0/2")
    first = set(PROVIDED)
    PROVIDED.clear()
    for i in range(5):  # another shard count: only what shard 0/2 did not do is computed
        _invoke(path, "--shard", f"{i}/5")
    assert not first & set(PROVIDED) and len(first) + len(set(PROVIDED)) == 2 * 14


def test_bad_shard_is_a_named_error(tmp_path, counting):
    path = _suite(tmp_path)
    res = CliRunner().invoke(cli, ["run", str(path), "--shard", "3/3"])
    assert res.exit_code == 2 and "out of range" in res.output
    res = CliRunner().invoke(cli, ["run", str(path), "--shard", "0/2", "--executor", "ray"])
    assert res.exit_code == 2 and "does not combine with executor ray" in res.output
    assert PROVIDED == []
