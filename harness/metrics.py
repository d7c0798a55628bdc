"""MIA evaluation metrics: AUC, TPR at a fixed FPR, their subsampling spread, best-index selection.

Every score given to this module is already oriented, higher = member (``evaluate_features``
does the orientation from each feature's ``FeatureSpec``). Why the rates are computed directly from
the scores instead of being read off ``sklearn.metrics.roc_curve``: with its default
``drop_intermediate=True`` the curve loses the point that lies exactly at FPR = target when many
scores are tied, and the reported TPR comes out too low (validity.md §2).

The ± reported next to each metric is the standard deviation over repeated subsamples drawn
without replacement (attacks.md §5.2), not a bootstrap and not a seed spread; everything is
vectorised over the subsamples.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import rankdata

from .contracts import FeatureSpec
from .errors import ConfigError

__all__ = ["tpr_at_fpr", "auc", "subsampled", "evaluate_features", "roc_points",
           "allowed_false_positives"]


def _as_scores(x, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{what} scores must be a non-empty 1-D array, got shape {a.shape}")
    if np.isnan(a).any():
        raise ValueError(f"{what} scores contain NaN; fill or drop them before computing metrics")
    return a


def allowed_false_positives(target_fpr: float, n_neg: int) -> int:
    """Largest count k of false positives with k / n_neg <= target_fpr.

    The comparison is made exactly as a ROC curve states it (``k / n_neg`` as a float against the
    target), so FPR exactly equal to the target counts as allowed: ``floor(0.29 * 100)`` is 28 in
    floating point, while 29/100 <= 0.29 holds.
    """
    if n_neg <= 0:
        raise ValueError("need at least one non-member score")
    if not 0.0 <= target_fpr <= 1.0:
        raise ValueError(f"target_fpr must be in [0, 1], got {target_fpr}")
    k = int(np.floor(target_fpr * n_neg))
    while k + 1 <= n_neg and (k + 1) / n_neg <= target_fpr:
        k += 1
    while k > 0 and k / n_neg > target_fpr:
        k -= 1
    return k


def _tpr_rows(member: np.ndarray, nonmember: np.ndarray, target_fpr: float) -> np.ndarray:
    """TPR at target FPR for each row of [R, n_m] / [R, n_u] score matrices."""
    n_neg = nonmember.shape[1]
    k = allowed_false_positives(target_fpr, n_neg)
    if k >= n_neg:
        return np.ones(member.shape[0])
    # the (k+1)-th largest non-member score: any threshold strictly above it lets at most k
    # non-members through, and no lower threshold does
    kth = np.partition(nonmember, n_neg - k - 1, axis=1)[:, n_neg - k - 1]
    return (member > kth[:, None]).mean(axis=1)


def tpr_at_fpr(member, nonmember, target_fpr: float = 0.01) -> float:
    """The largest TPR over all thresholds whose FPR is at most ``target_fpr`` (inclusive).

    A sample is called a member when its score is >= the threshold. With ``k`` the largest count
    such that ``k / n_nonmembers <= target_fpr``, the best admissible threshold sits just above
    the (k+1)-th largest non-member score, so TPR = fraction of members strictly above that score
    (TPR = 1 when k covers every non-member). This equals the maximum TPR with FPR <= target on
    ``sklearn.metrics.roc_curve(..., drop_intermediate=False)`` (IAR's convention, attacks.md
    §5.1), and ties at the boundary are never split.
    """
    m = _as_scores(member, "member")
    u = _as_scores(nonmember, "non-member")
    return float(_tpr_rows(m[None], u[None], target_fpr)[0])


def _auc_rows(member: np.ndarray, nonmember: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC (ties count 1/2) for each row of [R, n_m] / [R, n_u]."""
    n_m, n_u = member.shape[1], nonmember.shape[1]
    ranks = rankdata(np.concatenate([member, nonmember], axis=1), axis=1)
    return (ranks[:, :n_m].sum(axis=1) - n_m * (n_m + 1) / 2.0) / (n_m * n_u)


def auc(member, nonmember) -> float:
    """Area under the ROC curve, ties counted one half (equals ``roc_auc_score``)."""
    m = _as_scores(member, "member")
    u = _as_scores(nonmember, "non-member")
    return float(_auc_rows(m[None], u[None])[0])


def roc_points(member, nonmember) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct threshold, for plots (no point dropped)."""
    from sklearn.metrics import roc_curve

    m = _as_scores(member, "member")
    u = _as_scores(nonmember, "non-member")
    y = np.r_[np.ones(m.size), np.zeros(u.size)]
    fpr, tpr, _ = roc_curve(y, np.r_[m, u], drop_intermediate=False)
    return fpr, tpr


# ---------------------------------------------------------------------------------------------
# subsampling


def _subsample_size(n: int, fraction: float) -> int:
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"subsample fraction must be in (0, 1], got {fraction}")
    return max(1, min(n, int(round(fraction * n))))


def _subsample_indices(rng: np.random.Generator, n: int, size: int, reps: int) -> np.ndarray:
    """[reps, size] row indices, each row a uniform subset drawn without replacement."""
    if size == n:
        return np.broadcast_to(np.arange(n), (reps, n))
    keys = rng.random((reps, n))
    return np.argpartition(keys, size - 1, axis=1)[:, :size]


def _metrics_from_indices(member: np.ndarray, nonmember: np.ndarray, im: np.ndarray,
                          iu: np.ndarray, target_fpr: float) -> dict:
    ms, us = member[im], nonmember[iu]
    aucs = _auc_rows(ms, us)
    tprs = _tpr_rows(ms, us, target_fpr)
    return {"auc": float(aucs.mean()), "auc_std": float(aucs.std()),
            "tpr": float(tprs.mean()), "tpr_std": float(tprs.std())}


def subsampled(member, nonmember, target_fpr: float = 0.01, n_subsamples: int = 250,
               fraction: float = 0.5, rng: np.random.Generator | int | None = None) -> dict:
    """Mean and std (ddof=0) of AUC and TPR@target over ``n_subsamples`` subsamples.

    Each subsample takes ``fraction`` of the members and, independently, ``fraction`` of the
    non-members, without replacement (sizes may differ, so index vectors are not shared as in IAR,
    attacks.md §5.2). Defaults are IAR's: 250 subsamples of 50%.
    """
    m = _as_scores(member, "member")
    u = _as_scores(nonmember, "non-member")
    if n_subsamples < 1:
        raise ConfigError(f"n_subsamples must be >= 1, got {n_subsamples}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    im = _subsample_indices(rng, m.size, _subsample_size(m.size, fraction), n_subsamples)
    iu = _subsample_indices(rng, u.size, _subsample_size(u.size, fraction), n_subsamples)
    return _metrics_from_indices(m, u, im, iu, target_fpr)


# ---------------------------------------------------------------------------------------------
# attack-level evaluation


def _fill_nan(m: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN ("undefined" feature) -> the pooled median of that feature, so an undefined sample
    neither looks like a confident member nor like a confident non-member; all-NaN -> 0."""
    pooled = np.r_[m, u]
    bad = np.isnan(pooled)
    if not bad.any():
        return m, u
    fill = float(np.median(pooled[~bad])) if (~bad).any() else 0.0
    return np.where(np.isnan(m), fill, m), np.where(np.isnan(u), fill, u)


def lr_crossfit_scores(member: np.ndarray, nonmember: np.ndarray, folds: int = 5,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold member probabilities of StandardScaler + L2 logistic regression (C=1).

    CDI's per-attack scorer for multi-feature attacks (attacks.md §3.9): every sample is scored by
    a model that never saw it. Folds are assigned independently within members and within
    non-members (a stratified split), so unequal set sizes work; with equal sizes this is CDI's
    "same folds for both arrays". sklearn's default lbfgs solver is used (unpenalised intercept).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    member = np.asarray(member, dtype=np.float64)
    nonmember = np.asarray(nonmember, dtype=np.float64)
    k = min(folds, member.shape[0], nonmember.shape[0])
    if k < 2:
        raise ConfigError("LR-combined scoring needs at least 2 members and 2 non-members")
    rng = np.random.default_rng(seed)
    fm = rng.permutation(member.shape[0]) % k
    fu = rng.permutation(nonmember.shape[0]) % k
    sm, su = np.empty(member.shape[0]), np.empty(nonmember.shape[0])
    for f in range(k):
        X = np.r_[member[fm != f], nonmember[fu != f]]
        y = np.r_[np.ones((fm != f).sum()), np.zeros((fu != f).sum())]
        scaler = StandardScaler().fit(X)
        clf = LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
        clf.fit(scaler.transform(X), y)
        sm[fm == f] = clf.predict_proba(scaler.transform(member[fm == f]))[:, 1]
        su[fu == f] = clf.predict_proba(scaler.transform(nonmember[fu == f]))[:, 1]
    return sm, su


def evaluate_features(features: dict, specs: Sequence[FeatureSpec], selection: str = "best",
                      target_fpr: float = 0.01, n_subsamples: int = 250, fraction: float = 0.5,
                      seed: int = 0) -> dict:
    """Attack-level MIA result from raw per-feature values.

    ``features`` = {name: (member values [n_m], non-member values [n_u])}. Each feature is oriented
    by its spec (negated when lower = member) and NaN is replaced by that feature's pooled median.
    All features are evaluated on the *same* subsample indices, so their means are comparable.

    ``selection``:
    - ``"best"``: IAR's rule (attacks.md §5.3): the feature with the highest mean TPR, ties broken
      by the higher mean AUC, then by spec order; its name is returned in ``selected``. The choice
      is made on the evaluation data itself, so it is optimistic, as in the reference tables.
    - ``"lr"``: CDI's rule (attacks.md §3.9): 5-fold cross-fitted StandardScaler + logistic
      regression over all the attack's features; the out-of-fold probabilities are evaluated like
      one feature and ``selected`` is ``"lr"``.
    An attack with a single feature reports that feature whatever ``selection`` says.
    """
    if selection not in ("best", "lr"):
        raise ConfigError(f"selection must be 'best' or 'lr', got {selection!r}")
    if not specs:
        raise ConfigError("evaluate_features needs at least one feature spec")
    missing = [s.name for s in specs if s.name not in features]
    if missing:
        raise ConfigError(f"features {missing} declared by the attack were not extracted; "
                          f"got {sorted(features)}")
    oriented = {}
    for s in specs:
        m, u = (np.asarray(v, dtype=np.float64).ravel() for v in features[s.name])
        if m.size < 1 or u.size < 1:
            raise ConfigError(f"feature '{s.name}' needs at least one member and one non-member")
        if not s.higher_is_member:
            m, u = -m, -u
        oriented[s.name] = _fill_nan(m, u)
    n_m, n_u = next(iter(oriented.values()))[0].size, next(iter(oriented.values()))[1].size
    if any(m.size != n_m or u.size != n_u for m, u in oriented.values()):
        raise ConfigError("all features of one attack must have the same number of samples")

    rng = np.random.default_rng(seed)
    im = _subsample_indices(rng, n_m, _subsample_size(n_m, fraction), n_subsamples)
    iu = _subsample_indices(rng, n_u, _subsample_size(n_u, fraction), n_subsamples)
    per_feature = []
    for s in specs:
        m, u = oriented[s.name]
        per_feature.append({"name": s.name, **_metrics_from_indices(m, u, im, iu, target_fpr),
                            "higher_is_member": bool(s.higher_is_member)})

    if selection == "lr" and len(specs) > 1:
        M = np.stack([oriented[s.name][0] for s in specs], axis=1)
        U = np.stack([oriented[s.name][1] for s in specs], axis=1)
        sm, su = lr_crossfit_scores(M, U, folds=5, seed=seed)
        res = _metrics_from_indices(sm, su, im, iu, target_fpr)
        return {**res, "selected": "lr", "per_feature": per_feature, "scores": (sm, su)}

    best = 0
    for i, f in enumerate(per_feature):
        b = per_feature[best]
        if f["tpr"] > b["tpr"] or (f["tpr"] == b["tpr"] and f["auc"] > b["auc"]):
            best = i
    chosen = per_feature[best]
    return {"auc": chosen["auc"], "auc_std": chosen["auc_std"], "tpr": chosen["tpr"],
            "tpr_std": chosen["tpr_std"], "selected": chosen["name"], "per_feature": per_feature,
            "scores": oriented[chosen["name"]]}
