"""MIA metrics: TPR at a fixed FPR (inclusive, ties never split), AUC with ties, subsampling
spread, best-index and LR selection, orientation."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from harness.contracts import FeatureSpec
from harness.errors import ConfigError
from harness.metrics import (allowed_false_positives, auc, evaluate_features, roc_points,
                             subsampled, tpr_at_fpr)


def sklearn_tpr(member, nonmember, target):
    y = np.r_[np.ones(len(member)), np.zeros(len(nonmember))]
    fpr, tpr, _ = roc_curve(y, np.r_[member, nonmember], drop_intermediate=False)
    return tpr[fpr <= target].max()


def test_tpr_at_exactly_the_target_fpr():
    # 100 non-members, target 1%: one false positive is allowed. Threshold just above the 2nd
    # largest non-member (0.0): members 6, 5, 3 pass, so TPR = 3/5 (FPR = 1/100 exactly).
    neg = np.r_[5.0, np.zeros(99)]
    pos = np.array([6.0, 5.0, 3.0, 0.0, -1.0])
    assert tpr_at_fpr(pos, neg, 0.01) == pytest.approx(0.6)
    assert sklearn_tpr(pos, neg, 0.01) == pytest.approx(0.6)


def test_ties_at_the_boundary_are_not_split():
    # two non-members tied at 5: a threshold at 5 gives FPR 2%, so only scores above 5 count;
    # the member tied with them at 5 does not
    neg = np.r_[5.0, 5.0, np.zeros(98)]
    pos = np.array([6.0, 5.0, 3.0, 0.0, -1.0])
    assert tpr_at_fpr(pos, neg, 0.01) == pytest.approx(0.2)
    assert tpr_at_fpr(pos, neg, 0.02) == pytest.approx(0.6)


def test_k_zero_means_above_every_nonmember():
    neg = np.linspace(0, 1, 50)  # 1% of 50 allows no false positive
    pos = np.array([1.5, 1.0, 0.99, 2.0])
    assert allowed_false_positives(0.01, 50) == 0
    assert tpr_at_fpr(pos, neg, 0.01) == pytest.approx(0.5)


def test_fpr_equal_to_target_counts_despite_float_rounding():
    # floor(0.29 * 100) == 28 in floating point, but 29/100 <= 0.29
    assert allowed_false_positives(0.29, 100) == 29
    neg = np.arange(100.0)
    pos = neg + 0.5
    assert tpr_at_fpr(pos, neg, 0.29) == pytest.approx(sklearn_tpr(pos, neg, 0.29)) == 0.3


def test_perfect_separation_and_full_budget():
    assert tpr_at_fpr([3.0, 4.0], [1.0, 2.0], 0.01) == 1.0
    assert auc([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert tpr_at_fpr([0.0, 0.0], [1.0, 2.0], 1.0) == 1.0


def test_agrees_with_sklearn_on_random_tied_data():
    rng = np.random.default_rng(0)
    for _ in range(300):
        nm, nu = rng.integers(1, 120, size=2)
        pos = rng.integers(0, 6, nm).astype(float) + rng.integers(0, 2)
        neg = rng.integers(0, 6, nu).astype(float)
        target = float(rng.choice([0.0, 0.01, 0.05, 0.1, 0.29, 0.5]))
        assert tpr_at_fpr(pos, neg, target) == pytest.approx(sklearn_tpr(pos, neg, target))
        y = np.r_[np.ones(nm), np.zeros(nu)]
        assert auc(pos, neg) == pytest.approx(roc_auc_score(y, np.r_[pos, neg]))


def test_auc_with_ties_counts_half():
    assert auc([1.0], [1.0]) == 0.5
    assert auc([2.0, 1.0], [1.0, 0.0]) == pytest.approx(0.875)


def test_nan_scores_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        tpr_at_fpr([np.nan, 1.0], [0.0, 1.0])


def test_roc_points_keep_every_threshold():
    fpr, tpr = roc_points([1.0, 1.0, 2.0], [1.0, 0.0, 0.0])
    assert fpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert len(fpr) == 4  # (0,0) + one point per distinct score


def test_subsampled_spread_is_positive_and_seeded():
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(0.5, 1, 400), rng.normal(0, 1, 300)
    a = subsampled(pos, neg, 0.05, n_subsamples=100, fraction=0.5, rng=7)
    b = subsampled(pos, neg, 0.05, n_subsamples=100, fraction=0.5, rng=7)
    c = subsampled(pos, neg, 0.05, n_subsamples=100, fraction=0.5, rng=8)
    assert a == b and a != c
    assert a["auc_std"] > 0 and a["tpr_std"] > 0
    assert abs(a["auc"] - auc(pos, neg)) < 0.02
    full = subsampled(pos, neg, 0.05, n_subsamples=3, fraction=1.0, rng=0)
    assert full["auc_std"] == 0 and full["auc"] == pytest.approx(auc(pos, neg))


def _features(rng, n=300):
    return {
        "noise": (rng.normal(0, 1, n), rng.normal(0, 1, n)),
        "strong": (rng.normal(3, 1, n), rng.normal(0, 1, n)),
        "medium": (rng.normal(1, 1, n), rng.normal(0, 1, n)),
        # a loss: members LOWER
        "loss": (rng.normal(-2, 1, n), rng.normal(0, 1, n)),
    }


def test_best_index_picks_highest_mean_tpr_and_records_it():
    rng = np.random.default_rng(2)
    feats = _features(rng)
    specs = [FeatureSpec("noise", True), FeatureSpec("medium", True), FeatureSpec("strong", True)]
    res = evaluate_features(feats, specs, "best", 0.01, n_subsamples=50, seed=0)
    assert res["selected"] == "strong"
    by_name = {f["name"]: f for f in res["per_feature"]}
    assert res["tpr"] == by_name["strong"]["tpr"] == max(f["tpr"] for f in res["per_feature"])
    assert res["auc"] == by_name["strong"]["auc"]
    np.testing.assert_array_equal(res["scores"][0], feats["strong"][0])


def test_tpr_tie_is_broken_by_auc_then_order():
    rng = np.random.default_rng(3)
    n = 200
    weak_m, strong_m = rng.normal(0.3, 1, n), rng.normal(1.5, 1, n)
    nonm = np.r_[rng.normal(0, 1, n - 1), 1e9]  # no threshold below 1e9: TPR@0% is 0 for both
    feats = {"weak": (weak_m, nonm), "strong": (strong_m, nonm), "twin": (strong_m, nonm)}
    specs = [FeatureSpec("weak", True), FeatureSpec("strong", True), FeatureSpec("twin", True)]
    res = evaluate_features(feats, specs, "best", target_fpr=0.0, n_subsamples=20, fraction=1.0)
    assert all(f["tpr"] == 0 for f in res["per_feature"])
    assert res["selected"] == "strong"


def test_orientation_makes_lower_is_member_features_score_above_chance():
    rng = np.random.default_rng(4)
    feats = _features(rng)
    res = evaluate_features(feats, [FeatureSpec("loss", False)], "best", 0.01, n_subsamples=30)
    assert res["selected"] == "loss" and res["auc"] > 0.85
    assert res["per_feature"][0]["higher_is_member"] is False
    wrong = evaluate_features(feats, [FeatureSpec("loss", True)], "best", 0.01, n_subsamples=30)
    assert wrong["auc"] < 0.15


def test_nan_becomes_the_pooled_median():
    rng = np.random.default_rng(5)
    m, u = rng.normal(1, 1, 100), rng.normal(0, 1, 100)
    m[:10] = np.nan
    res = evaluate_features({"f": (m, u)}, [FeatureSpec("f", True)], n_subsamples=20)
    med = np.nanmedian(np.r_[m, u])
    assert np.isfinite(res["auc"]) and np.all(res["scores"][0][:10] == med)


def test_lr_selection_combines_features_out_of_fold():
    rng = np.random.default_rng(6)
    n = 300
    # two features each weakly informative; together better than either
    m = rng.normal(0, 1, (n, 2)) + [0.6, 0.6]
    u = rng.normal(0, 1, (n, 2))
    feats = {"a": (m[:, 0], u[:, 0]), "b": (-m[:, 1], -u[:, 1])}
    specs = [FeatureSpec("a", True), FeatureSpec("b", False)]
    res = evaluate_features(feats, specs, "lr", 0.05, n_subsamples=50, seed=0)
    assert res["selected"] == "lr"
    sm, su = res["scores"]
    assert sm.shape == (n,) and su.shape == (n,) and 0 < sm.min() and sm.max() < 1
    assert res["auc"] > max(f["auc"] for f in res["per_feature"])
    single = evaluate_features({"a": feats["a"]}, specs[:1], "lr", n_subsamples=10)
    assert single["selected"] == "a"


def test_bad_selection_and_missing_features_are_named():
    with pytest.raises(ConfigError, match="selection"):
        evaluate_features({}, [FeatureSpec("a", True)], "max")
    with pytest.raises(ConfigError, match="not extracted"):
        evaluate_features({}, [FeatureSpec("a", True)], "best")


# ---------------------------------------------------------------------------------------------
# held-out selection and chance bands (issue #10)


def _noise_attack(rng, n_features, n=48):
    feats = {f"f{j}": (rng.normal(size=n), rng.normal(size=n)) for j in range(n_features)}
    return feats, [FeatureSpec(f"f{j}", True) for j in range(n_features)]


def test_best_heldout_is_the_default_and_finds_a_real_signal():
    rng = np.random.default_rng(11)
    feats = _features(rng)
    specs = [FeatureSpec("noise", True), FeatureSpec("medium", True), FeatureSpec("strong", True)]
    res = evaluate_features(feats, specs, n_subsamples=50, seed=0)
    assert res["selected"] == "strong" and res["selected_fraction"]["strong"] > 0.9
    assert res["auc"] > 0.95
    np.testing.assert_array_equal(res["scores"][0], feats["strong"][0])


def test_best_heldout_is_not_inflated_by_selection_where_best_is():
    """20 pure-noise features, 48 + 48: choosing on the reported data lifts the mean AUC above
    0.5; choosing on the other half of each subsample does not."""
    ins, held = [], []
    for s in range(12):
        feats, specs = _noise_attack(np.random.default_rng(100 + s), 20)
        ins.append(evaluate_features(feats, specs, "best", n_subsamples=40, seed=s)["auc"])
        held.append(evaluate_features(feats, specs, "best-heldout", n_subsamples=40,
                                      seed=s)["auc"])
    assert np.mean(ins) > 0.55
    assert abs(np.mean(held) - 0.5) < 0.03


def test_best_heldout_needs_two_samples_per_half():
    feats = {"a": (np.arange(2.0), np.arange(2.0)), "b": (np.arange(2.0), np.arange(2.0))}
    specs = [FeatureSpec("a", True), FeatureSpec("b", True)]
    with pytest.raises(ConfigError, match="best-heldout"):
        evaluate_features(feats, specs, "best-heldout", n_subsamples=5, fraction=0.5)
    assert evaluate_features(feats, specs, "best", n_subsamples=5)["selected"] in ("a", "b")


def test_chance_band_matches_the_mann_whitney_null_and_grows_with_the_number_of_attacks():
    from harness.metrics import chance_bands, prepare

    rng = np.random.default_rng(12)
    one = prepare(*_noise_attack(rng, 1))
    bands = chance_bands([one], n_permutations=400, seed=0)
    # full-sample Mann-Whitney AUC sd at 48 + 48: sqrt(97 / (12 * 48 * 48)) = 0.0593
    auc_q, tpr_q = bands["attacks"][0]
    assert 0.56 < auc_q < 0.64 and 0 < tpr_q < 0.3
    many = [prepare(*_noise_attack(rng, 1)) for _ in range(13)]
    b13 = chance_bands(many, n_permutations=200, seed=0)
    assert b13["best_auc"] > max(q for q, _ in b13["attacks"]) > 0.55
    assert b13["best_tpr"] >= max(t for _, t in b13["attacks"])


@pytest.mark.parametrize("selection,n_features", [("best-heldout", 1), ("best-heldout", 5),
                                                  ("best", 5)])
def test_chance_band_holds_its_level_on_true_nulls(selection, n_features):
    """Over independent null data sets, the reported AUC exceeds its own 95% band about 5% of
    the time (for best, the band includes the in-sample selection)."""
    from harness.metrics import chance_bands, evaluate_prepared, prepare

    over = []
    for s in range(150):
        p = prepare(*_noise_attack(np.random.default_rng(1000 + s), n_features, n=30),
                    selection=selection)
        value = evaluate_prepared(p, n_subsamples=60, seed=s)["auc"]
        band = chance_bands([p], n_subsamples=30, n_permutations=100, seed=s)["attacks"][0][0]
        over.append(value > band)
    assert 0.01 <= np.mean(over) <= 0.11


def _awkward_columns(rng, n, n_features):
    """Columns as features come: continuous, rounded (many ties), a few distinct values, a
    constant, signed zeros and infinities, a weak member shift on some."""
    kinds = [lambda: rng.normal(size=n), lambda: np.round(rng.normal(size=n) * 2),
             lambda: rng.integers(0, 3, size=n).astype(float), lambda: np.full(n, 0.25),
             lambda: rng.choice([-0.0, 0.0, np.inf, -np.inf, 1.5], size=n),
             lambda: np.exp(rng.normal(size=n) * 3)]
    return np.stack([kinds[j % len(kinds)]() for j in range(n_features)], 1)


def _awkward_attack(rng, n_m, n_u, n_features, selection):
    from harness.metrics import prepare

    X = _awkward_columns(rng, n_m + n_u, n_features)
    X[:n_m, ::2] += 0.3 * (np.isfinite(X[:n_m, ::2]))
    feats = {f"f{j}": (X[:n_m, j], X[n_m:, j]) for j in range(n_features)}
    return prepare(feats, [FeatureSpec(f"f{j}", j % 3 != 1) for j in range(n_features)],
                   selection=selection, seed=3)


@pytest.mark.parametrize("n_m,n_u,fraction,target_fpr", [(40, 40, 0.5, 0.01), (37, 52, 0.5, 0.1),
                                                        (60, 23, 1.0, 0.29), (25, 31, 0.7, 1.0)])
def test_chance_bands_equal_the_float_rankdata_implementation(n_m, n_u, fraction, target_fpr):
    """The integer-rank chance band is the first (scipy rankdata per row) one, number for number:
    same seeds, every selection rule, ties, unequal sets, several chunks."""
    import reference_metrics as ref
    from harness.metrics import chance_bands

    rng = np.random.default_rng([n_m, n_u])
    attacks = [_awkward_attack(rng, n_m, n_u, f, sel)
               for f, sel in [(1, "best-heldout"), (6, "best-heldout"), (5, "best"), (4, "lr"),
                              (7, "best-heldout")]]
    for q in (0.0, 0.5, 0.95, 1.0):
        kw = dict(target_fpr=target_fpr, n_subsamples=7, fraction=fraction, n_permutations=23,
                  seed=5, q=q, max_elements=9 * (n_m + n_u) * 7)  # several chunks
        new, old = chance_bands(attacks, **kw), ref.chance_bands(attacks, **kw)
        assert new["attacks"] == old["attacks"]
        assert (new["best_auc"], new["best_tpr"]) == (old["best_auc"], old["best_tpr"])


@pytest.mark.parametrize("s_m,s_u", [(1, 1), (9, 4), (50, 50), (3, 70)])
def test_rank_rows_equal_float_rows(s_m, s_u):
    """Every row's AUC and TPR from pool ranks equal scipy rankdata / float partition on the
    values, bit for bit, tied or not."""
    import reference_metrics as ref
    from harness.metrics import _pool_ranks, _rows_per_column

    rng = np.random.default_rng([s_m, s_u])
    X = _awkward_columns(rng, 120, 12)
    R = _pool_ranks(X)
    jm = np.stack([rng.choice(120, s_m + s_u, replace=False) for _ in range(30)])
    jm, ju = jm[:, :s_m], jm[:, s_m:]
    for fpr in (0.0, 0.01, 0.3, 1.0):
        new = _rows_per_column(R, jm, ju, fpr)
        old = ref.rows_per_column(X, X, jm, ju, fpr)
        assert np.array_equal(new[0], old[0]) and np.array_equal(new[1], old[1])
