"""Benchmark: false-positive rate of each DI aggregator on fresh samples, P and U identical.

Why: a DI answer may back a copyright claim, so the rate at which a test rejects when P and U come
from the same distribution is the number that decides which test may be primary (validity.md
§1, §3). Every draw here is a fresh i.i.d. sample (no shared pool), so the draws are independent
and the binomial standard error is the right yardstick: a test holding its level lands within
alpha ± 2σ.

Features: d correlated, skewed Gaussian-derived columns (as attack features are), identical for
P and U. Prints, per aggregator, n and alpha: the rejection rate, alpha and 2σ.

    python benchmarks/di_null.py            # 4,000 fresh draws per cell
    python benchmarks/di_null.py --quick    # 1,000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugins.aggregators._dataset_inference_impl import (CDICrossFit, CDIHeldOut,  # noqa: E402
                                                         MinMaxSum)


def features(rng: np.random.Generator, shape: tuple[int, ...], d: int) -> np.ndarray:
    z = rng.standard_normal(shape + (d,))
    mix = np.linalg.cholesky(0.5 * np.eye(d) + 0.5)  # pairwise correlation 0.5
    x = z @ mix.T
    x[..., : d // 2] = np.exp(x[..., : d // 2] / 2)  # half of the columns skewed
    return x


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--d", type=int, default=12)
    args = ap.parse_args()
    draws = 1000 if args.quick else 4000
    aggs = {"cdi": CDIHeldOut(), "cdi-crossfit (two-sided)": CDICrossFit(alternative="two-sided"),
            "cdi-crossfit (greater)": CDICrossFit(alternative="greater"), "minmax-sum": MinMaxSum()}
    print(f"fresh i.i.d. draws per cell: {draws}; P and U identical ({args.d} features)")
    print(f"{'aggregator':26} {'n':>5} {'alpha':>6} {'rate':>7} {'alpha ± 2σ':>16}")
    for name, agg in aggs.items():
        for n in (30, 100, 300):
            rng = np.random.default_rng([n, 7])
            p = np.empty(draws)
            step = max(1, min(draws, 2**22 // (2 * n * args.d)))
            for s in range(0, draws, step):
                c = min(step, draws - s)
                p[s:s + c] = agg.pvalues(features(rng, (c, n), args.d),
                                         features(rng, (c, n), args.d), rng)
            q = np.where(np.isnan(p), 1.0, p)
            for alpha in (0.05, 0.01):
                rate = float((q <= alpha).mean())
                two = 2 * np.sqrt(alpha * (1 - alpha) / draws)
                flag = "" if abs(rate - alpha) <= two else "  <- outside"
                print(f"{name:26} {n:>5} {alpha:>6g} {rate:>7.4f} "
                      f"{alpha - two:>7.4f}–{alpha + two:.4f}{flag}", flush=True)


if __name__ == "__main__":
    main()
