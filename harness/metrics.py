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

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .contracts import FeatureSpec
from .errors import ConfigError

__all__ = ["tpr_at_fpr", "auc", "subsampled", "evaluate_features", "roc_points",
           "allowed_false_positives", "prepare", "evaluate_prepared", "chance_bands",
           "SELECTIONS", "DEFAULT_SELECTION"]


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


def _pool_ranks(X: np.ndarray) -> np.ndarray:
    """For each value of every column of ``X`` ([n] or [n, F]), how many values of its column are
    strictly smaller: integers that order and tie exactly as the values do.

    Why: a subsample row then sorts small integers (numpy radix-sorts 16-bit keys) instead of
    floats, and the pool is sorted once per column rather than once per row; AUC and TPR only
    depend on order and ties, so they come out identical to the float computation."""
    X = np.asarray(X, dtype=np.float64)
    cols = X.reshape(X.shape[0], -1)
    S = np.sort(cols, axis=0)
    dtype = np.int16 if 2 * cols.shape[0] < np.iinfo(np.int16).max else np.int64
    R = np.empty(cols.shape, dtype)
    for f in range(cols.shape[1]):
        R[:, f] = np.searchsorted(S[:, f], cols[:, f], side="left")
    return R.reshape(X.shape)


def _sorted_membership(rm: np.ndarray, ru: np.ndarray, members_first: bool) -> np.ndarray:
    """Each row of [R, s_m] / [R, s_u] pool ranks as one row of flags (True = member) in
    ascending rank order, tied members before tied non-members if ``members_first``, after
    otherwise: the row is sorted as keys 2r + flag (numpy radix-sorts 16-bit keys)."""
    m_flag = 0 if members_first else 1
    s_m, s_u = rm.shape[1], ru.shape[1]
    keys = np.empty((rm.shape[0], s_m + s_u), rm.dtype)
    np.multiply(rm, 2, out=keys[:, :s_m])
    keys[:, :s_m] += m_flag
    np.multiply(ru, 2, out=keys[:, s_m:])
    keys[:, s_m:] += 1 - m_flag
    keys.sort(axis=1, kind="stable")
    return (keys & 1) == m_flag


def _auc_tpr_rows(rm: np.ndarray, ru: np.ndarray, target_fpr: float,
                  ties: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Mann-Whitney AUC (ties count 1/2) and TPR at ``target_fpr`` for each row of [R, s_m] /
    [R, s_u] pool ranks (:func:`_pool_ranks`); ``ties=False`` promises no two ranks are equal
    (one sort instead of two).

    In a sorted row a member's index counts the non-members below it (at or below it when tied
    members sort last) plus the members before it; over the members the latter sum to
    0 + 1 + ... + (s_m - 1). Those index sums are exact integers in float64 (einsum's own loop
    takes them; a BLAS product spins its threads on busy cores), so AUC = U / (s_m s_u) comes
    out as the float rank-sum formula gives it. The TPR threshold sits just above the (k+1)-th largest
    non-member (k = allowed false positives): with tied members sorted first, the members above
    it are exactly the elements after it in the row that are not the k larger non-members."""
    s_m, s_u = rm.shape[1], ru.shape[1]
    first = _sorted_membership(rm, ru, members_first=True)
    last = _sorted_membership(rm, ru, members_first=False) if ties else first
    pos = np.arange(s_m + s_u, dtype=np.float64)
    before = s_m * (s_m - 1) / 2
    below = np.einsum("ij,j->i", first, pos) - before
    at_or_below = np.einsum("ij,j->i", last, pos) - before
    auc = ((below + at_or_below) / 2.0) / (s_m * s_u)
    k = allowed_false_positives(target_fpr, s_u)
    if k >= s_u:
        return auc, np.ones(rm.shape[0])
    # read from the top; the (k+1)-th non-member lies within the top s_m + k + 1 places
    top = ~first[:, ::-1][:, :s_m + k + 1]
    after = np.argmax(np.cumsum(top, axis=1, dtype=np.int32) == k + 1, axis=1)
    return auc, (after - k) / s_m


def _pooled(member, nonmember) -> tuple[np.ndarray, np.ndarray]:
    """One member row and one non-member row of pool ranks."""
    m = _as_scores(member, "member")
    u = _as_scores(nonmember, "non-member")
    r = _pool_ranks(np.r_[m, u])
    return r[None, :m.size], r[None, m.size:]


def tpr_at_fpr(member, nonmember, target_fpr: float = 0.01) -> float:
    """The largest TPR over all thresholds whose FPR is at most ``target_fpr`` (inclusive).

    A sample is called a member when its score is >= the threshold. With ``k`` the largest count
    such that ``k / n_nonmembers <= target_fpr``, the best admissible threshold sits just above
    the (k+1)-th largest non-member score, so TPR = fraction of members strictly above that score
    (TPR = 1 when k covers every non-member). This equals the maximum TPR with FPR <= target on
    ``sklearn.metrics.roc_curve(..., drop_intermediate=False)`` (IAR's convention, attacks.md
    §5.1), and ties at the boundary are never split.
    """
    return float(_auc_tpr_rows(*_pooled(member, nonmember), target_fpr)[1][0])


def auc(member, nonmember) -> float:
    """Area under the ROC curve, ties counted one half (equals ``roc_auc_score``)."""
    return float(_auc_tpr_rows(*_pooled(member, nonmember), 0.0)[0][0])


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
    r = _pool_ranks(np.r_[member, nonmember])
    rm, ru = r[:member.size][im], r[member.size:][iu]
    aucs, tprs = _auc_tpr_rows(rm, ru, target_fpr, _has_ties(r))
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


#: how a multi-feature attack becomes one MIA result (``mia.selection``)
SELECTIONS = ("best-heldout", "best", "lr")
DEFAULT_SELECTION = "best-heldout"


@dataclass
class Prepared:
    """One attack's oriented, NaN-filled features ([n_m, F] members, [n_u, F] non-members), and
    for ``lr`` the cross-fitted scores that stand in for them as one column."""

    names: list[str]
    specs: list
    selection: str
    M: np.ndarray
    U: np.ndarray
    lr: tuple[np.ndarray, np.ndarray] | None = None

    def columns(self) -> tuple[np.ndarray, np.ndarray]:
        """The columns the reported statistic is computed from (one per candidate)."""
        if self.lr is not None:
            return self.lr[0][:, None], self.lr[1][:, None]
        return self.M, self.U

    @property
    def effective(self) -> str:
        """The rule that actually applies: one feature is reported as itself."""
        if self.lr is not None:
            return "lr"
        return "single" if self.M.shape[1] == 1 else self.selection


def prepare(features: dict, specs: Sequence[FeatureSpec], selection: str = DEFAULT_SELECTION,
            seed: int = 0) -> Prepared:
    """Orient (negated when lower = member), fill NaN with the pooled median, check shapes, and
    for ``lr`` fit the cross-fitted scorer once."""
    if selection not in SELECTIONS:
        raise ConfigError(f"selection must be one of {', '.join(SELECTIONS)}; got {selection!r}")
    if not specs:
        raise ConfigError("evaluate_features needs at least one feature spec")
    missing = [s.name for s in specs if s.name not in features]
    if missing:
        raise ConfigError(f"features {missing} declared by the attack were not extracted; "
                          f"got {sorted(features)}")
    ms, us = [], []
    for s in specs:
        m, u = (np.asarray(v, dtype=np.float64).ravel() for v in features[s.name])
        if m.size < 1 or u.size < 1:
            raise ConfigError(f"feature '{s.name}' needs at least one member and one non-member")
        if ms and (m.size != ms[0].size or u.size != us[0].size):
            raise ConfigError("all features of one attack must have the same number of samples")
        if not s.higher_is_member:
            m, u = -m, -u
        m, u = _fill_nan(m, u)
        ms.append(m)
        us.append(u)
    p = Prepared([s.name for s in specs], list(specs), selection, np.stack(ms, 1),
                 np.stack(us, 1))
    if selection == "lr" and len(specs) > 1:
        p.lr = lr_crossfit_scores(p.M, p.U, folds=5, seed=seed)
    return p


def _has_ties(ranks: np.ndarray) -> bool:
    """Whether two values of one pool column are equal (its ranks are then not 0..n-1)."""
    return bool(np.bincount(ranks).max() > 1)


def _rows_per_column(R: np.ndarray, jm: np.ndarray, ju: np.ndarray,
                     target_fpr: float) -> tuple[np.ndarray, np.ndarray]:
    """AUC and TPR of every column of the pool ranks ``R`` [n, F] on every subsample row: two
    [F, ...rows] arrays. ``jm``/``ju`` (pool rows of the members / non-members) may have any
    leading shape (rows, or permutations x rows); the last axis indexes samples."""
    lead = jm.shape[:-1]
    aucs, tprs = [], []
    for f in range(R.shape[1]):
        col = R[:, f]
        rm = col[jm].reshape(-1, jm.shape[-1])
        ru = col[ju].reshape(-1, ju.shape[-1])
        a, t = _auc_tpr_rows(rm, ru, target_fpr, _has_ties(col))
        aucs.append(a.reshape(lead))
        tprs.append(t.reshape(lead))
    return np.stack(aucs), np.stack(tprs)


def _pick(tpr: np.ndarray, auc: np.ndarray) -> np.ndarray:
    """Index (axis 0) of the best column: highest TPR, ties broken by the higher AUC, then by
    spec order (IAR's rule, attacks.md §5.3), for every position of the remaining axes."""
    top = tpr == tpr.max(axis=0, keepdims=True)
    a = np.where(top, auc, -np.inf)
    return np.argmax(a == a.max(axis=0, keepdims=True), axis=0)


def _halves(rng: np.random.Generator, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``idx`` shuffled and cut in two: (selection half, report half)."""
    if idx.shape[-1] < 2:
        raise ConfigError(
            f"selection best-heldout splits every subsample in halves, but a subsample holds "
            f"{idx.shape[-1]} sample(s) of one side; use more samples, a larger "
            "mia.subsample_fraction, or selection: best")
    order = np.argsort(rng.random(idx.shape), axis=-1)
    idx = np.take_along_axis(idx, order, axis=-1)
    h = idx.shape[-1] // 2
    return idx[..., :h], idx[..., h:]


def _reported(R: np.ndarray, jm: np.ndarray, ju: np.ndarray, rule: str, target_fpr: float,
              split_rng: np.random.Generator) -> dict:
    """An attack's reported statistic on subsample rows [..., R, s] of its pooled columns' ranks
    ``R`` (``jm``/``ju``: pool rows of members / non-members): AUC and TPR per leading position
    (averaged over R), and which column each position reported.

    ``best`` picks the column with the best mean over the rows and reports that mean (chosen on
    the same data); ``best-heldout`` picks, within every row, the best column on a random half
    of the row's members and non-members and reports it on the other half; ``single`` / ``lr``
    report their one column (``rule`` is :attr:`Prepared.effective`)."""
    if rule == "best-heldout":
        jma, jmb = _halves(split_rng, jm)
        jua, jub = _halves(split_rng, ju)
        auc_a, tpr_a = _rows_per_column(R, jma, jua, target_fpr)
        auc_b, tpr_b = _rows_per_column(R, jmb, jub, target_fpr)
        chosen = _pick(tpr_a, auc_a)  # [..., R]
        auc_r = np.take_along_axis(auc_b, chosen[None], 0)[0]
        tpr_r = np.take_along_axis(tpr_b, chosen[None], 0)[0]
        return {"auc": auc_r.mean(-1), "tpr": tpr_r.mean(-1), "auc_rows": auc_r,
                "tpr_rows": tpr_r, "chosen": chosen}
    aucs, tprs = _rows_per_column(R, jm, ju, target_fpr)  # [F, ..., R]
    mean_auc, mean_tpr = aucs.mean(-1), tprs.mean(-1)
    chosen = _pick(mean_tpr, mean_auc)  # [...]
    auc_r = np.take_along_axis(aucs, chosen[None, ..., None], 0)[0]
    tpr_r = np.take_along_axis(tprs, chosen[None, ..., None], 0)[0]
    return {"auc": auc_r.mean(-1), "tpr": tpr_r.mean(-1), "auc_rows": auc_r, "tpr_rows": tpr_r,
            "chosen": chosen}


def evaluate_prepared(p: Prepared, target_fpr: float = 0.01, n_subsamples: int = 250,
                      fraction: float = 0.5, seed: int = 0) -> dict:
    """Attack-level MIA result of a :func:`prepare`d attack (see :func:`evaluate_features`)."""
    if n_subsamples < 1:
        raise ConfigError(f"n_subsamples must be >= 1, got {n_subsamples}")
    n_m, n_u = p.M.shape[0], p.U.shape[0]
    rng = np.random.default_rng(seed)
    im = _subsample_indices(rng, n_m, _subsample_size(n_m, fraction), n_subsamples)
    iu = _subsample_indices(rng, n_u, _subsample_size(n_u, fraction), n_subsamples)
    per_feature = []
    for j, s in enumerate(p.specs):
        per_feature.append({"name": s.name, **_metrics_from_indices(p.M[:, j], p.U[:, j], im, iu,
                                                                     target_fpr),
                            "higher_is_member": bool(s.higher_is_member)})
    M, U = p.columns()
    rep = _reported(_pool_ranks(np.r_[M, U]), im, iu + n_m, p.effective, target_fpr,
                    np.random.default_rng([seed, 1]))
    out = {"auc": float(rep["auc"]), "auc_std": float(rep["auc_rows"].std()),
           "tpr": float(rep["tpr"]), "tpr_std": float(rep["tpr_rows"].std()),
           "per_feature": per_feature}
    rule = p.effective
    if rule == "lr":
        return {**out, "selected": "lr", "scores": p.lr}
    if rule == "best-heldout":
        counts = np.bincount(rep["chosen"].ravel(), minlength=len(p.names)) / rep["chosen"].size
        top = int(np.argmax(counts))
        out["selected_fraction"] = {n: float(c) for n, c in zip(p.names, counts) if c > 0}
    else:
        top = int(rep["chosen"])
    return {**out, "selected": p.names[top], "scores": (p.M[:, top], p.U[:, top])}


def evaluate_features(features: dict, specs: Sequence[FeatureSpec],
                      selection: str = DEFAULT_SELECTION, target_fpr: float = 0.01,
                      n_subsamples: int = 250, fraction: float = 0.5, seed: int = 0) -> dict:
    """Attack-level MIA result from raw per-feature values.

    ``features`` = {name: (member values [n_m], non-member values [n_u])}. Each feature is oriented
    by its spec (negated when lower = member) and NaN is replaced by that feature's pooled median.
    All features are evaluated on the *same* subsample indices, so their means are comparable.

    ``selection``:
    - ``"best-heldout"`` (default): within each subsample, the best feature (highest TPR, ties by
      AUC, then spec order) is chosen on a random half of its members and non-members and its
      AUC / TPR are measured on the other half; reported: the mean over subsamples. Choosing on
      the data it is reported on inflates near-chance signals (issue #10); this does not.
      ``selected`` is the feature chosen most often, ``selected_fraction`` how often each was.
    - ``"best"``: IAR's rule (attacks.md §5.3): the feature with the highest mean TPR, ties broken
      by the higher mean AUC, then by spec order, chosen and reported on the same subsamples
      (optimistic, as in the reference tables; kept to reproduce them).
    - ``"lr"``: CDI's rule (attacks.md §3.9): 5-fold cross-fitted StandardScaler + logistic
      regression over all the attack's features; the out-of-fold probabilities are evaluated like
      one feature and ``selected`` is ``"lr"``.
    An attack with a single feature reports that feature whatever ``selection`` says.
    ``scores`` are the oriented per-sample scores of ``selected`` (the LR probabilities for lr).
    """
    p = prepare(features, specs, selection, seed)
    return evaluate_prepared(p, target_fpr, n_subsamples, fraction, seed)


# ---------------------------------------------------------------------------------------------
# chance level: label permutation


def chance_bands(attacks: Sequence[Prepared], target_fpr: float = 0.01, n_subsamples: int = 50,
                 fraction: float = 0.5, n_permutations: int = 200, seed: int = 0,
                 q: float = 0.95, max_elements: int = 4_000_000) -> dict:
    """The ``q`` quantile of each attack's reported AUC and TPR when membership labels are
    permuted, and of the best AUC / best TPR over all of them (one cell).

    Why: at small n a true null already shows AUCs far from 0.5, and more so for the best of many
    features or attacks (validity.md §3: 48 + 48 samples, 13 attacks, best AUC 0.61 with no
    signal at all). Every permutation relabels the pooled samples once for *all* attacks, so the
    best-over-attacks band keeps the correlation between attacks, and each attack's own
    selection rule (best, best-heldout) is rerun on the relabelled data. The statistic is the
    same mean over subsamples as the reported one, with ``n_subsamples`` (fewer than the 250 of
    the report: the band comes out very slightly wider, never narrower). For ``lr`` the
    cross-fitted scores are permuted as one fixed score (refitting per permutation would cost
    5 fits each). Vectorised over permutations and subsamples, in chunks of ``max_elements``;
    every column is ranked once over the pool, and each subsample row sorts integer ranks.
    Returns {"attacks": [(auc_q, tpr_q) per attack], "best_auc": q, "best_tpr": q,
    "permutations": n}.
    """
    if not attacks:
        raise ConfigError("chance_bands needs at least one attack")
    n_m, n_u = attacks[0].M.shape[0], attacks[0].U.shape[0]
    if any(a.M.shape[0] != n_m or a.U.shape[0] != n_u for a in attacks):
        raise ConfigError("all attacks of one cell must score the same samples")
    if n_permutations < 1:
        raise ConfigError(f"null permutations must be >= 1, got {n_permutations}")
    draws = NullDraws(n_m, n_u, fraction, n_subsamples, n_permutations, seed, max_elements)
    auc = np.empty((len(attacks), n_permutations))
    tpr = np.empty((len(attacks), n_permutations))
    for a, p in enumerate(attacks):
        M, U = p.columns()
        R = _pool_ranks(np.r_[M, U])  # ranked once; a permutation only relabels pool rows
        split_rng = draws.split_rng(a)
        for cols, jm, ju in draws.chunks():
            rep = _reported(R, jm, ju, p.effective, target_fpr, split_rng)
            auc[a, cols] = rep["auc"]
            tpr[a, cols] = rep["tpr"]
    return band_summary(auc, tpr, q)


class NullDraws:
    """The chance band's random draws: subsample rows of each set, pool permutations, and the
    chunking over permutations. One definition, so the frozen reference implementation
    (tests/reference_metrics.py) draws exactly the same."""

    STREAM = 0x6E756C6C  # "null": the band's random stream, apart from the reported figures'

    def __init__(self, n_m: int, n_u: int, fraction: float, n_subsamples: int,
                 n_permutations: int, seed: int, max_elements: int):
        rng = np.random.default_rng([seed, self.STREAM])
        self.seed, self.n_m = seed, n_m
        self.im = _subsample_indices(rng, n_m, _subsample_size(n_m, fraction), n_subsamples)
        self.iu = _subsample_indices(rng, n_u, _subsample_size(n_u, fraction), n_subsamples)
        self.perms = np.argsort(rng.random((n_permutations, n_m + n_u)), axis=1)
        per_perm = n_subsamples * (self.im.shape[1] + self.iu.shape[1]) * 2
        self.chunk = max(1, max_elements // max(per_perm, 1))

    def split_rng(self, attack_index: int) -> np.random.Generator:
        """The held-out selection's halves for one attack."""
        return np.random.default_rng([self.seed, self.STREAM, attack_index])

    def chunks(self):
        """(permutation columns, member rows, non-member rows) per chunk: pseudo-members are the
        pool rows perm[:n_m], indexed directly through the permutation ([P, R, s] pool rows)."""
        for c in range(0, len(self.perms), self.chunk):
            pc = self.perms[c:c + self.chunk]
            members, nonmembers = pc[:, :self.n_m], pc[:, self.n_m:]
            yield slice(c, c + self.chunk), members[:, self.im], nonmembers[:, self.iu]


def band_summary(auc: np.ndarray, tpr: np.ndarray, q: float) -> dict:
    """Quantile ``q`` of each attack's and of the best attack's null statistics
    (``auc``/``tpr``: [attacks, permutations])."""
    return {"attacks": [(float(np.quantile(auc[a], q)), float(np.quantile(tpr[a], q)))
                        for a in range(auc.shape[0])],
            "best_auc": float(np.quantile(auc.max(0), q)),
            "best_tpr": float(np.quantile(tpr.max(0), q)),
            "permutations": int(auc.shape[1]), "quantile": q}
