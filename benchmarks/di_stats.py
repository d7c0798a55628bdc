"""Benchmark: minimum-n search of dataset inference, vectorised engine versus a per-draw loop.

Setting (the paper's scale): 10,000 members + 10,000 non-members x 25 features (synthetic
Gaussians, members shifted by a small amount), the paper's grid of n up to 10,000 (36 sizes),
1,000 draws per n, for ``cdi`` (held-out scaler + logistic regression + Welch) and ``minmax-sum``
(pooled min-max, sum, Welch).

The straightforward version runs one scikit-learn / scipy call chain per draw (StandardScaler +
LogisticRegression + ttest_ind, or MinMaxScaler + sum + ttest_ind). It is timed on a few draws
per n and extrapolated linearly to all draws (the printed output says so). ``run_di`` spreads the
grid over its default number of threads (one per core); the loop is the single-threaded script
a user would write.

    python benchmarks/di_stats.py            # full: 1,000 draws per n
    python benchmarks/di_stats.py --quick    # 100 draws per n, for a smoke run
    python benchmarks/di_stats.py --null     # also time the null control the runner adds
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.di import _workers, default_grid, run_di  # noqa: E402
from plugins.aggregators._dataset_inference_impl import CDIHeldOut, MinMaxSum  # noqa: E402

TARGETS = {"cdi": 60.0, "minmax-sum": 5.0}


def loop_cdi(P: np.ndarray, U: np.ndarray) -> float:
    from scipy.stats import ttest_ind
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    h = P.shape[0] // 2
    X = np.r_[P[:h], U[:h]]
    y = np.r_[np.ones(h), np.zeros(h)]
    sc = StandardScaler().fit(X)
    clf = LogisticRegression(C=1.0, max_iter=1000).fit(sc.transform(X), y)
    sp = clf.predict_proba(sc.transform(P[h:]))[:, 1]
    su = clf.predict_proba(sc.transform(U[h:]))[:, 1]
    return ttest_ind(sp, su, equal_var=False, alternative="greater").pvalue


def loop_minmax(P: np.ndarray, U: np.ndarray) -> float:
    from scipy.stats import ttest_ind
    from sklearn.preprocessing import MinMaxScaler

    s = MinMaxScaler().fit_transform(np.r_[P, U]).sum(axis=1)
    n = P.shape[0]
    return ttest_ind(s[:n], s[n:], equal_var=False, alternative="greater").pvalue


def time_loop(fn, M, U, grid, draws, per_n, rng) -> tuple[float, int]:
    """Seconds for ``per_n`` draws per n, scaled to ``draws`` draws per n."""
    total = 0.0
    for n in grid:
        k = min(per_n, draws)
        t0 = time.perf_counter()
        for _ in range(k):
            if n < 4 and fn is loop_cdi:  # the held-out test needs 2 test samples per set
                continue
            fn(M[rng.choice(len(M), n, replace=False)], U[rng.choice(len(U), n, replace=False)])
        total += (time.perf_counter() - t0) * draws / k
    return total, per_n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 draws per n instead of 1,000")
    ap.add_argument("--null", action="store_true", help="also time run_di with its null control")
    ap.add_argument("--loop-draws", type=int, default=None,
                    help="draws per n actually run by the per-draw loop (default 5; quick 2)")
    ap.add_argument("--shift", type=float, default=0.02, help="member shift per feature")
    args = ap.parse_args(argv)
    draws = 100 if args.quick else 1000
    loop_draws = args.loop_draws or (2 if args.quick else 5)
    rng = np.random.default_rng(0)
    N, d = 10_000, 25
    M = rng.normal(size=(N, d)) + args.shift
    U = rng.normal(size=(N, d))
    grid = default_grid(N)
    print(f"DI benchmark: {N:,} + {N:,} samples x {d} features, {len(grid)} n values "
          f"({grid[0]}..{grid[-1]}), {draws} draws per n, member shift {args.shift}")
    print(f"cores: {os.cpu_count()}, run_di threads: {_workers(None)} (its default; the loop "
          "runs on one), load average at start: "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    rows = []
    for name, agg, loop in (("minmax-sum", MinMaxSum(), loop_minmax),
                            ("cdi", CDIHeldOut(), loop_cdi)):
        t0 = time.perf_counter()
        res = run_di(agg, M, U, grid, draws=draws, alpha=0.01, seed=0, null_control=False)
        fast = time.perf_counter() - t0
        null_time = None
        if args.null:
            t0 = time.perf_counter()
            run_di(agg, M, U, grid, draws=draws, alpha=0.01, seed=0, null_control=True)
            null_time = time.perf_counter() - t0
        slow, k = time_loop(loop, M, U, grid, draws, loop_draws, np.random.default_rng(1))
        rows.append((name, fast, slow, res["min_n"], res["min_n_frac"], null_time))
        print(f"\n[{name}] vectorised run_di: {fast:8.1f} s   min_n={res['min_n']}  "
              f"min_n_frac={res['min_n_frac']}")
        if null_time is not None:
            print(f"[{name}] with null control:  {null_time:8.1f} s")
        print(f"[{name}] per-draw loop:      {slow:8.1f} s   (EXTRAPOLATED: {k} draws per n "
              f"timed, scaled linearly to {draws})")
        print(f"[{name}] speed-up: {slow / fast:6.1f}x   target "
              f"{'(full run) ' if not args.quick else '(quick: not comparable) '}"
              f"<= {TARGETS[name]:.0f} s on 2 cores: "
              f"{'met' if fast <= TARGETS[name] else 'NOT met'}")
    print(f"\nload average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
          "(other jobs on the machine inflate all timings)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
