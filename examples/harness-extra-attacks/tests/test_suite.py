"""The plugins in a whole suite, on the toy models of both families (next to built-ins)."""

from harness.testing import run_suite, toy_suite


def test_suite_with_both_families(tmp_path, toy_plugins):
    suite = toy_suite(
        ["top1-rate", "noise-cosine", "loss"], tmp_path / "data", family="both", n=16,
        aggregators=[{"plugin": "bonferroni-welch", "features": "all"}])
    res = run_suite(suite, tmp_path / "run")
    # chance level at 16 + 16 samples: AUC 0.5 +- 0.10 (one standard deviation)
    assert res.mia_result("top1-rate")["auc"] > 0.8
    assert res.mia_result("noise-cosine")["auc"] > 0.8
    # family "any": one DI result per model, over every attack that ran on it
    ar = res.di_result("bonferroni-welch", model="toy-autoregressive")
    assert ar["features"] == ["top1-rate:top1-rate", "loss:loss"]
    diff = res.di_result("bonferroni-welch", model="toy-diffusion")
    assert diff["features"] == ["noise-cosine:noise-cosine"]
    assert ar["min_n"] is not None and diff["min_n"] is not None
    assert ar["null_fpr"] <= 0.05 and diff["null_fpr"] <= 0.05
