"""The contract checks pass built-in plugins and fail deliberately broken ones, each with a
message that names the problem and the fix."""

import numpy as np
import pytest
from scipy.stats import chi2, ttest_ind

from harness.contracts import TOKEN_STATS_CONTRAST, Aggregator, Attack, FeatureSpec
from harness.errors import PluginContractError
from harness.testing import check_aggregator, check_attack


class MeanLogprob(Attack):
    """A correct attack: mean true-token log-prob of each sample."""

    family = "autoregressive"
    defaults = {"scale": 1.0}

    def needs(self):
        return {TOKEN_STATS_CONTRAST}

    def feature_specs(self):
        return [FeatureSpec("mean-lp", higher_is_member=True)]

    def extract(self, ctx):
        stats = ctx.output(TOKEN_STATS_CONTRAST)
        return {"mean-lp": np.array([self.params["scale"] * s.logprob.mean() for s in stats])}


class BatchNormalised(MeanLogprob):
    """Broken: standardises over the batch, so a sample's value depends on its neighbours."""

    def extract(self, ctx):
        v = super().extract(ctx)["mean-lp"]
        return {"mean-lp": v - v.mean()}


class NoOrientation(MeanLogprob):
    def feature_specs(self):
        return [FeatureSpec("mean-lp", higher_is_member=None)]


class PoppedParam(MeanLogprob):
    """Broken: keeps 'scale' outside self.params, so the cache key ignores it."""

    def __init__(self, **params):
        self.scale = params.pop("scale", 1.0)
        super().__init__(**params)

    def extract(self, ctx):
        stats = ctx.output(TOKEN_STATS_CONTRAST)
        return {"mean-lp": np.array([self.scale * s.logprob.mean() for s in stats])}


class Infinite(MeanLogprob):
    def extract(self, ctx):
        v = super().extract(ctx)["mean-lp"]
        v[0] = -np.inf
        return {"mean-lp": v}


class WrongShape(MeanLogprob):
    def extract(self, ctx):
        return {"mean-lp": super().extract(ctx)["mean-lp"][:, None]}


def test_a_correct_attack_passes_every_check(tmp_path):
    rep = check_attack(MeanLogprob, expect_signal=True, workdir=tmp_path)
    assert rep.ok and rep.name == "mean-logprob"
    for check in ("orientation", "batch independence [toy-autoregressive]",
                  "finite or NaN [toy-autoregressive]", "cache key", "family", "needs"):
        assert check in rep.passed, rep
    assert "scale" in rep.passed["cache key"]


def test_batch_dependent_feature_fails_with_the_fix():
    with pytest.raises(PluginContractError) as exc:
        check_attack(BatchNormalised, vary=None)
    msg = str(exc.value)
    assert "FAIL batch independence [toy-autoregressive]" in msg
    assert "batches of 1" in msg and "no mean, max or normalisation over the batch" in msg
    assert "ctx.randn" in msg


def test_missing_orientation_fails_with_the_fix():
    rep = check_attack(NoOrientation, vary=None, raise_on_failure=False)
    assert set(rep.failed) == {"orientation"}
    assert "higher_is_member = [None]" in rep.failed["orientation"]
    assert "FeatureSpec(name, higher_is_member=True)" in rep.failed["orientation"]


def test_parameter_outside_params_fails_the_cache_key_check():
    rep = check_attack(PoppedParam, raise_on_failure=False)
    assert "cache key" in rep.failed, rep
    assert "changing scale=0.5 did not change the feature-cache key" in rep.failed["cache key"]
    assert "Keep every setting in self.params" in rep.failed["cache key"]


def test_infinite_value_and_wrong_shape_fail():
    rep = check_attack(Infinite, vary=None, raise_on_failure=False)
    assert "infinite value" in rep.failed["finite or NaN [toy-autoregressive]"]
    assert "NaN where the feature is undefined" in rep.failed["finite or NaN [toy-autoregressive]"]
    rep = check_attack(WrongShape, vary=None, raise_on_failure=False)
    assert "has shape (8, 1), expected (8,)" in rep.failed["extract"]
    assert "float array [len(ctx.samples)]" in rep.failed["extract"]


def test_registered_family_must_match_the_class(register_plugin):
    from harness import hookimpl

    class P:
        @hookimpl
        def register_attacks(self, register):
            register("mislabelled", MeanLogprob, family="diffusion")

    register_plugin(P(), "mislabelled-plugin")
    rep = check_attack("mislabelled", vary=None, raise_on_failure=False)
    assert "registered with family='diffusion' but the class says family='autoregressive'" in \
        rep.failed["family"]


def test_builtin_diffusion_attack_passes():
    rep = check_attack("pia", expect_signal=True)
    assert "batch independence [toy-diffusion]" in rep.passed
    assert "t" in rep.passed["cache key"]


class Fisher(Aggregator):
    """Mis-calibrated: Fisher's combination assumes independent per-feature p-values."""

    def pvalues(self, P, U, rng):
        p = ttest_ind(P, U, axis=1, equal_var=False, alternative="greater").pvalue
        return chi2.sf(-2 * np.log(np.clip(p, 1e-300, 1)).sum(1), 2 * p.shape[1])


class Bonferroni(Aggregator):
    """Calibrated under any dependence: d times the smallest per-feature p-value."""

    def pvalues(self, P, U, rng):
        p = ttest_ind(P, U, axis=1, equal_var=False, alternative="greater").pvalue
        return np.minimum(1.0, p.shape[1] * np.nanmin(p, axis=1))


class GlobalRandom(Bonferroni):
    def pvalues(self, P, U, rng):
        return np.random.random(P.shape[0])


class OneValue(Bonferroni):
    def pvalues(self, P, U, rng):
        return np.array([0.5])


def test_fisher_over_correlated_features_fails_null_calibration():
    rep = check_aggregator(Fisher, raise_on_failure=False)
    assert set(rep.failed) == {"null calibration"}
    msg = rep.failed["null calibration"]
    assert "exceeds the bound 0.02" in msg and "Fisher or Stouffer" in msg
    fpr = float(msg.split("false-positive rate ")[1].split()[0])
    assert fpr > 0.03  # 3000 draws at alpha = 0.01: a calibrated test gives about 0.01


def test_calibrated_aggregators_pass():
    rep = check_aggregator(Bonferroni)
    assert rep.ok and "within the bound" in rep.passed["null calibration"]
    assert check_aggregator("minmax-sum").ok


def test_null_calibration_message_states_the_bounds_it_computes(monkeypatch):
    """The message's bounds are the ones computed: Chernoff over the check's draws (the first
    step of the DI null bound) and, per n, the pool-aware null_bound DI results report; no
    Clopper-Pearson bound is quoted."""
    import re

    import harness.di as di

    runs = []
    real = di.run_di
    monkeypatch.setattr(di, "run_di", lambda *a, **kw: runs.append(real(*a, **kw)) or runs[-1])
    msg = check_aggregator(Bonferroni).passed["null calibration"]
    res = runs[0]
    assert "Clopper" not in msg and "Chernoff over the draws" in msg
    k, total = map(int, re.search(r"\((\d+) of (\d+) draws", msg).groups())
    assert f"95% upper bound {di.kl_upper(k / total, total, 0.05):.4f} on this pool" in msg
    for r in res["null_per_n"]:
        bound = di.null_bound(r["rejects"], r["valid"], r["draws"], r["independent"])
        assert f"n={r['n']}: {bound:.3f} (K={r['independent']})" in msg
    assert len(res["null_per_n"]) == 3


def test_reproduction_only_crossfit_cdi_is_flagged():
    """cdi-crossfit is documented to over-reject under the null; the check must see it."""
    rep = check_aggregator("cdi-crossfit", raise_on_failure=False)
    assert "null calibration" in rep.failed


def test_randomness_outside_rng_and_wrong_shape_fail():
    rep = check_aggregator(GlobalRandom, raise_on_failure=False)
    assert "draw all randomness from the rng argument" in rep.failed["determinism"]
    rep = check_aggregator(OneValue, raise_on_failure=False)
    assert "returned shape (1,)" in rep.failed["pvalues"]
