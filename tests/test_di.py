"""Dataset-inference engine: grid, sampling, minimum n, null control, level of the default tests."""

import numpy as np
import pytest
from scipy.stats import binom

from harness.contracts import Aggregator
from harness.di import default_grid, run_di, sample_masks, sample_subsets
from harness.errors import ConfigError
from plugins.aggregators._dataset_inference_impl import CDIHeldOut, MinMaxSum


def binomial_band(p, draws, level=0.999):
    lo, hi = binom.interval(level, draws, p)
    return lo / draws, hi / draws


def test_default_grid_is_the_papers():
    g = default_grid(10_000)
    assert g[:9] == list(range(2, 11)) and g[9:18] == list(range(20, 101, 10))
    assert g[18:27] == list(range(200, 1001, 100)) and g[27:] == list(range(2000, 10001, 1000))
    assert default_grid(250) == [n for n in g if n <= 250]


@pytest.mark.parametrize("N,n", [(100, 12), (1000, 100), (1000, 600), (10_000, 20)])
def test_subsets_are_uniform_without_repeats(N, n):
    rng = np.random.default_rng(0)
    s = sample_subsets(rng, N, n, 4000)
    assert s.shape == (4000, n)
    assert all(len(set(row)) == n for row in s)
    counts = np.bincount(s.ravel(), minlength=N)
    expected = 4000 * n / N
    z = (counts - expected) / np.sqrt(expected * (1 - n / N))
    assert np.abs(z).max() < 5 and 0.8 < z.std() < 1.2


def test_masks_are_disjoint_with_exact_sizes():
    rng = np.random.default_rng(1)
    a, b = sample_masks(rng, 60, (20, 25), 5000)
    assert (a.sum(1) == 20).all() and (b.sum(1) == 25).all() and not (a & b).any()
    # each row equally likely in each mask
    assert np.abs(a.mean(0) - 20 / 60).max() < 0.03 and np.abs(b.mean(0) - 25 / 60).max() < 0.03
    (big,) = sample_masks(rng, 60, (55,), 1000)
    assert (big.sum(1) == 55).all()


def subset_counts(masks, N):
    """How often each assignment of rows to the masks occurred (one key per draw)."""
    codes = sum(m.astype(np.int64) * (i + 1) for i, m in enumerate(masks))
    keys = codes @ (len(masks) + 1) ** np.arange(N, dtype=np.int64)
    return np.unique(keys, return_counts=True)[1]


@pytest.mark.parametrize("N,sizes,cells", [
    (40, (2,), 780),          # rejection (a small mask)
    (40, (38,), 780),         # rejection of the complement
    (12, (3,), 220),          # Bernoulli draw, then surplus removed / shortfall added
    (12, (4, 5), 27720),      # null-control shape: the second mask from the rows left free
    (9, (3, 3, 3), 1680),
])
def test_masks_are_uniform_over_subsets(N, sizes, cells):
    """Every subset (every disjoint assignment) equally likely, by a chi-square test on whole
    assignments, for each of the sampler's paths."""
    from scipy.stats import chisquare

    rng = np.random.default_rng(11)
    counts = subset_counts(sample_masks(rng, N, sizes, 100 * cells), N)
    assert counts.size == cells
    assert chisquare(counts).pvalue > 1e-4


def test_index_draws_are_uniform_over_subsets():
    """Small n (below N / 64) is drawn as indices with repeats redrawn: every pair equally
    likely."""
    from scipy.stats import chisquare

    from harness.di import _as_masks

    N, n = 129, 2
    assert not _as_masks(n, N)
    idx = np.sort(sample_subsets(np.random.default_rng(15), N, n, 100 * 8256), axis=1)
    assert (idx[:, 0] < idx[:, 1]).all()
    counts = np.unique(idx[:, 0] * N + idx[:, 1], return_counts=True)[1]
    assert counts.size == 8256 and chisquare(counts).pvalue > 1e-4


def test_pick_is_uniform_when_few_rows_are_eligible():
    """``_pick``'s sized rounds (acceptance below 2/3) keep the first distinct acceptances."""
    from scipy.stats import chisquare

    from harness.di import _pick

    rng = np.random.default_rng(12)
    eligible = np.zeros((60000, 50), dtype=bool)
    eligible[:, [3, 17, 18, 30, 49]] = True
    picked = _pick(rng, eligible, np.full(60000, 2))
    assert (picked.sum(1) == 2).all() and not (picked & ~eligible).any()
    counts = subset_counts([picked], 50)
    assert counts.size == 10 and chisquare(counts).pvalue > 1e-4


def test_threads_do_not_change_the_answer():
    rng = np.random.default_rng(13)
    M, U = gaussians(rng, 1500, 5, 0.1)
    grid = [5, 40, 200, 700]
    one = run_di(MinMaxSum(), M, U, n_grid=grid, draws=100, seed=2, workers=1)
    two = run_di(MinMaxSum(), M, U, n_grid=grid, draws=100, seed=2, workers=2)
    assert one == two
    with pytest.raises(ConfigError, match="workers"):
        run_di(MinMaxSum(), M, U, n_grid=grid, draws=10, workers=0)


def test_an_aggregator_that_is_not_thread_safe_runs_in_the_callers_thread():
    import threading

    seen = set()

    class Stateful(Aggregator):
        defaults = {}
        thread_safe = False

        def pvalues(self, P, U, rng):
            seen.add(threading.get_ident())
            return MinMaxSum().pvalues(P, U, rng)

    rng = np.random.default_rng(14)
    M, U = gaussians(rng, 200, 3, 0.1)
    run_di(Stateful(), M, U, n_grid=[4, 8, 16], draws=20, workers=4)
    assert seen == {threading.get_ident()}


def gaussians(rng, n, d, shift):
    return rng.normal(size=(n, d)) + shift, rng.normal(size=(n, d))


@pytest.mark.parametrize("agg", [MinMaxSum(), CDIHeldOut()], ids=["minmax-sum", "cdi"])
def test_shifted_gaussians_reject_at_small_n(agg):
    rng = np.random.default_rng(2)
    M, U = gaussians(rng, 400, 6, 0.8)
    res = run_di(agg, M, U, n_grid=[2, 4, 8, 16, 32, 64], draws=200, alpha=0.01, seed=0)
    assert res["min_n"] is not None and res["min_n"] <= 32
    assert res["min_n_frac"] is not None and res["min_n_frac"] <= 64
    means = [r["mean_p"] for r in res["per_n"]]
    assert means[-1] < means[1] and res["per_n"][-1]["frac_reject"] > 0.9
    assert [r["n"] for r in res["null_per_n"]] == [2, 4, 8, 16, 32, 64]


def test_no_signal_gives_no_min_n():
    rng = np.random.default_rng(3)
    M, U = gaussians(rng, 300, 4, 0.0)
    res = run_di(MinMaxSum(), M, U, n_grid=[10, 50, 100], draws=200, alpha=0.01)
    assert res["min_n"] is None and res["min_n_frac"] is None


@pytest.mark.parametrize("agg,grid", [(MinMaxSum(), [60, 500]), (CDIHeldOut(), [60])],
                         ids=["minmax-sum", "cdi"])
def test_default_aggregators_hold_their_level(agg, grid):
    """Null control (P and U disjoint draws from one pool, so exchangeable): the per-draw
    rejection rate must sit in the 99.9% binomial band of alpha. Draws from two *different*
    finite pools are not a clean null: the two pools' own sample means differ, which moves the
    rate (seen: 0.033 at alpha 0.05 with pools of 3000), so only the null control is tested.
    For MinMaxSum n = 500 exercises the pooled (mask) path, n = 60 the gathered one."""
    rng = np.random.default_rng(4)
    M, U = gaussians(rng, 3000, 25, 0.0)
    draws, alpha = 2000, 0.05
    res = run_di(agg, M, U, n_grid=grid, draws=draws, alpha=alpha, seed=1)
    lo, hi = binomial_band(alpha, draws * len(grid))
    assert lo <= res["null_fpr"] <= hi, res["null_per_n"]
    assert res["null_fpr_upper"] >= res["null_fpr"]
    assert res["null_draws"] == draws * len(grid)
    assert all(r["undefined"] == 0 for r in res["per_n"])


def test_null_control_needs_two_disjoint_sets():
    rng = np.random.default_rng(5)
    M, U = gaussians(rng, 100, 3, 0.5)
    res = run_di(MinMaxSum(), M, U, n_grid=[10, 50, 80, 200], draws=50)
    assert res["n_grid"] == [10, 50, 80]  # 200 > pool size: skipped
    assert [r["n"] for r in res["null_per_n"]] == [10, 50]  # 2n <= 100
    assert res["null_draws"] == 100
    off = run_di(MinMaxSum(), M, U, n_grid=[10], draws=50, null_control=False)
    assert off["null_per_n"] == [] and off["null_fpr"] is None


def test_seeded_and_each_n_has_its_own_stream():
    rng = np.random.default_rng(6)
    M, U = gaussians(rng, 200, 3, 0.2)
    a = run_di(MinMaxSum(), M, U, n_grid=[4, 8], draws=100, seed=3)
    b = run_di(MinMaxSum(), M, U, n_grid=[8], draws=100, seed=3)
    c = run_di(MinMaxSum(), M, U, n_grid=[8], draws=100, seed=4)
    assert a["per_n"][1] == b["per_n"][0] and a["null_per_n"][1] == b["null_per_n"][0]
    assert b["per_n"][0] != c["per_n"][0]


def test_pooled_path_gives_the_same_answers_as_gathering():
    """MinMaxSum switches to masks over the pools at large n; the answers must not change."""
    rng = np.random.default_rng(7)
    M, U = gaussians(rng, 400, 5, 0.15)

    class Plain(Aggregator):
        defaults = {}

        def pvalues(self, P, U, rng):
            return MinMaxSum().pvalues(P, U, rng)

    # n >= N/8 takes the pooled path for MinMaxSum; both paths draw the same subsets from the
    # same stream, so the p-values agree to rounding
    a = run_di(MinMaxSum(), M, U, n_grid=[20, 100, 400], draws=300)
    b = run_di(Plain(), M, U, n_grid=[20, 100, 400], draws=300)
    for rows in ("per_n", "null_per_n"):
        for x, y in zip(a[rows], b[rows]):
            assert x["frac_reject"] == y["frac_reject"]
            assert x["mean_p"] == pytest.approx(y["mean_p"], rel=1e-9)


def test_nan_features_are_filled_and_undefined_tests_count_as_p1():
    rng = np.random.default_rng(8)
    M, U = gaussians(rng, 100, 3, 1.0)
    M[::7, 1] = np.nan
    U[:, 2] = np.nan
    res = run_di(CDIHeldOut(), M, U, n_grid=[2, 10], draws=50, alpha=0.01)
    n2, n10 = res["per_n"]
    assert n2["undefined"] == 50 and n2["mean_p"] == 1.0 and n2["frac_reject"] == 0.0
    assert n10["undefined"] == 0 and np.isfinite(n10["mean_p"])


def test_bad_inputs_are_named():
    M = np.zeros((10, 3))
    with pytest.raises(ConfigError, match="same d"):
        run_di(MinMaxSum(), M, np.zeros((10, 4)), [2])
    with pytest.raises(ConfigError, match=">= 2"):
        run_di(MinMaxSum(), M, M, [1])

    class Broken(Aggregator):
        defaults = {}

        def pvalues(self, P, U, rng):
            return np.zeros(3)

    with pytest.raises(ConfigError, match="shape"):
        run_di(Broken(), M, M, [2], draws=5)


def test_cdi_splits_each_draw_afresh_even_when_the_draw_is_the_whole_pool():
    """Draws made as masks come back in pool order; at n = N every draw is the whole pool, so
    without a per-draw permutation ``cdi`` would split all draws identically (one p-value)."""
    from harness.di import _pvalues

    rng = np.random.default_rng(21)
    M, U = gaussians(rng, 200, 5, 0.2)
    p = _pvalues(CDIHeldOut(), M, U, 200, 40, np.random.default_rng(0))
    assert np.isfinite(p).all()
    assert np.unique(p).size > 30, p

    seen = []

    class FirstRow(Aggregator):
        defaults = {}

        def pvalues(self, P, U, rng):
            seen.extend(P[:, 0, 0].tolist())
            return np.full(P.shape[0], 0.5)

    # feature = row id, so the first row of each draw shows where a position split would start
    ids = np.arange(200.0)[:, None]
    run_di(FirstRow(), ids, ids.copy(), n_grid=[50, 200], draws=40, null_control=True)
    assert len(set(seen)) > 40


@pytest.mark.parametrize("agg", [MinMaxSum(), CDIHeldOut()], ids=["minmax-sum", "cdi"])
def test_primary_test_holds_alpha_over_fresh_pools(agg):
    """The one pre-declared test, over repeated independent pools with P and U from the same
    distribution: its rejection rate is within alpha ± 2 sigma (sigma = binomial over pools)."""
    from harness.di import primary_test

    pools, alpha, n = 500, 0.05, 60
    rng = np.random.default_rng(31)
    rejects = 0
    for k in range(pools):
        M, U = gaussians(rng, n, 8, 0.0)
        M[:, :4] = np.exp(M[:, :4])  # skewed features, as attack features are
        U[:, :4] = np.exp(U[:, :4])
        res = primary_test(agg, M, U, None, alpha, seed=k)
        assert res["n"] == n and res["p_value"] is not None
        rejects += res["rejects"]
    sigma = np.sqrt(alpha * (1 - alpha) / pools)
    assert abs(rejects / pools - alpha) <= 2 * sigma, rejects / pools


def test_primary_test_uses_all_rows_or_the_declared_n():
    seen = []

    class Sizes(Aggregator):
        defaults = {}

        def pvalues(self, P, U, rng):
            seen.append((P.shape, U.shape))
            return np.full(P.shape[0], 0.001)

    rng = np.random.default_rng(32)
    M, U = gaussians(rng, 80, 3, 0.0)
    res = run_di(Sizes(), M, U[:50], n_grid=[10], draws=5, primary=True)
    assert seen[0] == ((1, 50, 3), (1, 50, 3))  # all of the smaller set, exactly one test
    first = res["primary_test"]
    assert first["n"] == 50 and first["p_value"] == 0.001 and first["rejects"]
    # no null fits at n = 50 with 50 non-members: measured at 25, and said so
    assert first["null_n"] == 25 and "no null at n = 50" in first["null_note"]
    assert first["null_valid"] == 5
    res = run_di(Sizes(), M, U, n_grid=[10], draws=5, primary=True, primary_n=20)
    assert res["primary_test"]["n"] == 20 and res["primary_test"]["null_n"] == 20
    assert res["primary_test"]["null_note"] == ""
    assert "primary_test" not in run_di(Sizes(), M, U, n_grid=[10], draws=5)
    with pytest.raises(ConfigError, match="di.n = 90 exceeds"):
        run_di(Sizes(), M, U, n_grid=[10], draws=5, primary=True, primary_n=90)


def test_null_control_with_five_nonmembers_says_no_valid_null_ran():
    rng = np.random.default_rng(33)
    M, U = gaussians(rng, 60, 4, 0.5)
    res = run_di(CDIHeldOut(), M, U[:5], n_grid=[2, 3, 4, 5], draws=50, primary=True)
    assert res["null_fpr"] is None and res["null_valid"] == 0 and res["null_fpr_upper"] is None
    assert res["null_note"].startswith("no valid null test ran")
    assert "n = 2: 50 of 50 undefined" in res["null_note"]
    assert [s["n"] for s in res["null_skipped"]] == [3, 4, 5]
    first = res["primary_test"]
    assert first["null_fpr"] is None and first["null_valid"] == 0
    assert "no valid null test ran" in first["null_note"]
    # a test that is defined at n = 2 runs its null there, and the rest is named as missing
    res = run_di(MinMaxSum(), M, U[:5], n_grid=[2, 3, 4, 5], draws=50)
    assert res["null_valid"] == 50 and "no null for n >= 3" in res["null_note"]


def test_null_rate_leaves_undefined_tests_out_and_bounds_by_disjoint_pairs():
    class HalfUndefined(Aggregator):
        """Undefined on every other draw, rejects on the others."""
        defaults = {}

        def pvalues(self, P, U, rng):
            p = np.full(P.shape[0], 0.001)
            p[::2] = np.nan
            return p

    rng = np.random.default_rng(34)
    M, U = gaussians(rng, 100, 2, 0.0)
    res = run_di(HalfUndefined(), M, U, n_grid=[10], draws=100)
    (row,) = res["null_per_n"]
    assert row["valid"] == 50 and row["fpr"] == 1.0 and res["null_fpr"] == 1.0
    assert row["independent"] == 5  # 100 non-members hold 5 disjoint (P, U) pairs of 10

    from harness.di import null_bound

    # 0 of 10,000 draws rejected, but a pool of 100 holds only 5 independent tests at n = 10:
    # the bound reflects the pool, not the number of draws
    assert null_bound(0, 10_000, 10_000, 5) > 0.4
    assert null_bound(0, 10_000, 10_000, 5000) < 0.002
    assert null_bound(0, 10_000, 10_000, 0) == 1.0
    # more pairs, a tighter bound; never below the observed rate
    b = [null_bound(50, 1000, 1000, k) for k in (10, 100, 1000)]
    assert b[0] > b[1] > b[2] > 0.05


def test_null_bound_covers_the_rate_over_fresh_pools():
    """Coverage of the pool-aware bound: a test whose false-positive rate is known (p-values
    uniform given the data: a rank test of one fixed feature) is run on many fresh pools; the
    95% bound must lie above the true rate in at least 95% of them. A Clopper-Pearson bound over
    the draws of one pool covers far less often (validity.md §3)."""
    from scipy.stats import binomtest

    def clopper_pearson_upper(k, total):  # what a bound over one pool's draws would claim
        return binomtest(k, total, alternative="less").proportion_ci(0.95).high

    class MeanTest(Aggregator):
        defaults = {}

        def pvalues(self, P, U, rng):
            from scipy.stats import norm

            z = (P[..., 0].mean(1) - U[..., 0].mean(1)) / np.sqrt(2 / P.shape[1])
            return norm.sf(z)  # exact for unit-variance Gaussians

    alpha, covered, naive = 0.1, 0, 0
    pools = 60
    for k in range(pools):
        rng = np.random.default_rng([35, k])
        U = rng.normal(size=(60, 1))
        res = run_di(MeanTest(), U, U, n_grid=[10], draws=400, alpha=alpha, seed=k)
        row = res["null_per_n"][0]
        covered += row["fpr_upper"] >= alpha
        naive += clopper_pearson_upper(row["rejects"], row["valid"]) >= alpha
    assert covered >= 0.95 * pools
    assert naive < covered
