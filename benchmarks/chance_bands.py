"""Benchmark: time of the MIA chance bands (label-permutation null), rank-key implementation in
``harness.metrics`` against the first one (scipy ``rankdata`` on floats per subsample row, kept in
tests/reference_metrics.py), on one cell of 1000 + 1000 samples and 68 features.

Why: the band is computed for every cell of a suite, and its cost grows with n x features; the
first implementation took minutes per cell at this size. Both are run on the same attacks and
seed and must give the same numbers (checked here too; exact equality is tested in
tests/test_metrics.py). Features: 12 attacks of 1-15 columns (68 in all) in the default
best-heldout rule, one in best and one in lr; weak member shift, one column rounded to ties.
Prints both times (wall and CPU) and their ratio old/new.

    python benchmarks/chance_bands.py              # mia defaults: 200 permutations x 50 subsamples
    python benchmarks/chance_bands.py --quick      # 20 permutations (time scales linearly)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import reference_metrics  # noqa: E402

from harness.contracts import FeatureSpec  # noqa: E402
from harness.metrics import chance_bands, prepare  # noqa: E402

SIZES = (1, 1, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15)  # 68 features
SELECTIONS = {4: "best", 6: "lr"}  # attack index -> rule (others: best-heldout)


def attacks(n: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for a, f in enumerate(SIZES):
        feats = {}
        for j in range(f):
            m, u = rng.normal(0.05, 1, n), rng.normal(0, 1, n)
            feats[f"a{a}f{j}"] = (np.round(m * 3), np.round(u * 3)) if j == 1 else (m, u)
        out.append(prepare(feats, [FeatureSpec(k, True) for k in feats],
                           SELECTIONS.get(a, "best-heldout"), seed=seed))
    return out


def timed(fn, cell, kw) -> tuple[dict, float, float]:
    """Result, wall and CPU seconds (CPU time is the steadier figure on shared cores)."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(cell, **kw)
    return out, time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="20 permutations instead of 200")
    ap.add_argument("--n", type=int, default=1000, help="members = non-members per cell")
    args = ap.parse_args()
    perms = 20 if args.quick else 200
    cell = attacks(args.n)
    kw = dict(n_permutations=perms, n_subsamples=50, fraction=0.5, target_fpr=0.01, seed=0)
    print(f"cell: {args.n} + {args.n} samples, {len(SIZES)} attacks, {sum(SIZES)} features; "
          f"{perms} permutations x 50 subsamples")
    new, t_new, c_new = timed(chance_bands, cell, kw)
    old, t_old, c_old = timed(reference_metrics.chance_bands, cell, kw)
    same = (new["attacks"] == old["attacks"] and new["best_auc"] == old["best_auc"]
            and new["best_tpr"] == old["best_tpr"])
    print(f"old (rankdata per row): {t_old:8.1f} s wall, {c_old:8.1f} s CPU")
    print(f"new (pool ranks):       {t_new:8.1f} s wall, {c_new:8.1f} s CPU")
    print(f"ratio old/new: {t_old / t_new:.1f}x wall, {c_old / c_new:.1f}x CPU; "
          f"same numbers: {same}")
    print(f"best-of-cell band: AUC {new['best_auc']:.4f}, TPR@1%FPR {new['best_tpr']:.4f}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
