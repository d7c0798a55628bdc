import numpy as np

from harness.testing import check_aggregator


def test_bonferroni_welch_holds_its_level_on_correlated_null_features():
    report = check_aggregator("bonferroni-welch")
    print(report)  # shows the measured false-positive rate next to alpha


def test_bonferroni_welch_detects_a_shift():
    from harness_extra_attacks.aggregators import BonferroniWelch

    rng = np.random.default_rng(0)
    U = rng.normal(size=(50, 40, 3))
    P = U[::-1] + np.array([0.0, 0.0, 1.0])  # only the third feature carries the signal
    p = BonferroniWelch().pvalues(P, U, rng)
    assert p.shape == (50,) and (p < 0.01).mean() > 0.9
