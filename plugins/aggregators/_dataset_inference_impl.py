"""Dataset-inference aggregators, vectorised over draws.

Each ``pvalues(P[R, n, d], U[R, n, d], rng)`` returns one p-value per draw. Features arrive
oriented (higher = member), so the one-sided alternative is always "greater": P scores higher.
Rows within a draw are in random order (``harness.di`` permutes every draw), so splitting a draw
by position is a random split.

The logistic regressions of CDI are fitted for all draws of a chunk at once by a damped Newton
method in numpy (d is about 25, so the [d+1, d+1] systems are tiny and the cost is the batched
X^T W X products); one sklearn call per draw would be ~1000 times slower.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.special import expit, log_expit
from scipy.stats import ttest_ind, ttest_ind_from_stats

from harness.contracts import Aggregator
from harness.errors import ConfigError

_ALTERNATIVES = ("greater", "two-sided")


def welch(sp: np.ndarray, su: np.ndarray, alternative: str) -> np.ndarray:
    """Welch t-test p-values row by row ([R, a] vs [R, b]); NaN where undefined (no variance)."""
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        # near-identical scores in a tiny draw: scipy warns, the p-value is still returned
        warnings.simplefilter("ignore", RuntimeWarning)
        res = ttest_ind(sp, su, axis=1, equal_var=False, alternative=alternative)
    return np.asarray(res.pvalue, dtype=np.float64)


def _matvec(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """X [R, m, d] times w [R, d] -> [R, m]."""
    return np.matmul(X, w[..., None])[..., 0]


def _vecmat(r: np.ndarray, X: np.ndarray) -> np.ndarray:
    """r [R, m] times X [R, m, d] -> [R, d]."""
    return np.matmul(r[:, None, :], X)[:, 0, :]


class _LogReg:
    """StandardScaler + L2 logistic regression fitted for every draw at once, on P rows (label 1)
    and U rows (label 0) given as separate raw arrays [R, m_p, d], [R, m_u, d].

    Why it looks like this: the draws are many (1000 per n) and small (d ~ 25), so the cost is
    the passes over the gathered rows. The standardised problem is solved in its own coordinates
    (theta~ = weights on standardised features, as sklearn reports them) but never materialised:
    ``z = x @ (w~ / sd) + (b~ - mu @ (w~ / sd))`` on the raw rows, with the scaler's mean and sd
    taken from one Gram pass. Objective: ``sum(logloss) + |w~|^2 / (2C)`` (sklearn's, divided
    by C); the intercept is unpenalised like sklearn's lbfgs, or penalised like liblinear's
    (intercept_scaling 1). The logistic Hessian is bounded by X~^T X~ / 4, so steps with that
    fixed bound (Böhning's MM algorithm) decrease the objective monotonically and need no new
    Gram matrix; for weak member signals they converge in a few passes. Draws not converged after
    ``MM_STEPS`` of them finish with damped Newton (strong signals, where the bound is loose).
    Convergence: every standardised coefficient moved by less than ``tol`` (1e-6; sklearn's
    default tolerance is 1e-4).
    """

    MM_STEPS = 8

    def __init__(self, P: np.ndarray, U: np.ndarray, C: float, penalize_intercept: bool,
                 max_iter: int = 100, tol: float = 1e-6):
        self.P, self.U = P, U
        R, mp, d = P.shape
        m = mp + U.shape[1]
        self.shift = P[0].mean(axis=0)  # any constant works; it only conditions the moments
        G, s = np.empty((R, d, d)), np.empty((R, d))
        for r in range(R):
            a, b = P[r] - self.shift, U[r] - self.shift
            G[r] = a.T @ a + b.T @ b
            s[r] = a.sum(axis=0) + b.sum(axis=0)
        mc = s / m
        cov = G / m - mc[:, :, None] * mc[:, None, :]
        var = np.diagonal(cov, axis1=1, axis2=2).copy()
        const = var <= 1e-12 * (mc * mc) + 1e-300  # numerically constant column: scale 1
        sd = np.where(const, 1.0, np.sqrt(np.where(const, 1.0, var)))
        self.mu, self.sd, self.m = mc + self.shift, sd, m
        self.corr = m * cov / (sd[:, :, None] * sd[:, None, :])  # X~^T X~ (feature block)
        self.lw = 1.0 / C
        self.lb = 1.0 / C if penalize_intercept else 0.0
        self.max_iter, self.tol = int(max_iter), float(tol)

    def _raw(self, th, idx):
        sl = slice(None) if idx is None else idx
        w = th[:, :-1] / self.sd[sl]
        return w, th[:, -1] - (w * self.mu[sl]).sum(axis=1)

    def _residuals(self, th, idx):
        w, b = self._raw(th, idx)
        P, U = (self.P, self.U) if idx is None else (self.P[idx], self.U[idx])
        zp, zu = _matvec(P, w) + b[:, None], _matvec(U, w) + b[:, None]
        return P, U, zp, zu

    def _objective(self, th, idx):
        _, _, zp, zu = self._residuals(th, idx)
        loss = -log_expit(zp).sum(axis=1) - log_expit(-zu).sum(axis=1)
        return loss + 0.5 * (self.lw * (th[:, :-1] ** 2).sum(axis=1) + self.lb * th[:, -1] ** 2)

    def _gradient(self, th, idx):
        """Gradient in standardised coordinates, and the logits (for Newton weights)."""
        P, U, zp, zu = self._residuals(th, idx)
        rp, ru = expit(zp) - 1.0, expit(zu)
        gx = _vecmat(rp, P) + _vecmat(ru, U)
        gs = rp.sum(axis=1) + ru.sum(axis=1)
        sl = slice(None) if idx is None else idx
        gw = (gx - self.mu[sl] * gs[:, None]) / self.sd[sl] + self.lw * th[:, :-1]
        return np.concatenate([gw, (gs + self.lb * th[:, -1])[:, None]], axis=1), zp, zu

    def fit(self) -> "_LogReg":
        R, d = self.mu.shape
        th = np.zeros((R, d + 1))
        A = self.corr / 4.0
        A[:, np.arange(d), np.arange(d)] += self.lw + 1e-12
        Ainv = np.linalg.inv(A)
        hb = self.m / 4.0 + self.lb
        # every draw steps until all have converged: restricting the pass to the unconverged
        # draws would copy their rows, which costs more than the pass itself
        for _ in range(min(self.MM_STEPS, self.max_iter)):
            g, _, _ = self._gradient(th, None)
            step = np.concatenate([np.einsum("cij,cj->ci", Ainv, g[:, :-1]), g[:, -1:] / hb],
                                  axis=1)
            th -= step
            active = np.flatnonzero(np.abs(step).max(axis=1) >= self.tol)
            if active.size == 0:
                break
        if active.size:
            th[active] = self._newton(th[active], active)
        self.theta = th
        return self

    def _newton(self, th, idx):
        d = th.shape[1] - 1
        obj = self._objective(th, idx)
        active = np.arange(idx.size)
        for _ in range(self.max_iter):
            sub = idx[active]
            g, zp, zu = self._gradient(th[active], sub)
            H = self._hessian(sub, zp, zu)
            H[:, np.arange(d + 1), np.arange(d + 1)] += np.r_[np.full(d, self.lw), self.lb] + 1e-12
            step = np.linalg.solve(H, g[..., None])[..., 0]
            t = np.ones(active.size)
            cur = obj[active]
            for _ in range(30):
                cand = th[active] - t[:, None] * step
                new = self._objective(cand, sub)
                bad = new > cur + 1e-12 * np.abs(cur)
                if not bad.any():
                    break
                t = np.where(bad, t / 2, t)
            th[active] = cand
            obj[active] = new
            active = active[np.abs(t[:, None] * step).max(axis=1) >= self.tol]
            if active.size == 0:
                break
        return th

    def _hessian(self, idx, zp, zu):
        """X~^T diag(p(1-p)) X~ in standardised coordinates, from per-draw weighted Grams."""
        d = self.mu.shape[1]
        H = np.empty((idx.size, d + 1, d + 1))
        sp, su = expit(zp) * expit(-zp), expit(zu) * expit(-zu)
        for k, r in enumerate(idx):
            a = (self.P[r] - self.mu[r]) / self.sd[r]
            b = (self.U[r] - self.mu[r]) / self.sd[r]
            H[k, :d, :d] = a.T @ (a * sp[k][:, None]) + b.T @ (b * su[k][:, None])
            H[k, :d, d] = H[k, d, :d] = sp[k] @ a + su[k] @ b
            H[k, d, d] = sp[k].sum() + su[k].sum()
        return H

    def coef(self) -> tuple[np.ndarray, np.ndarray]:
        """(w~ [R, d], b~ [R]) on standardised features, comparable to sklearn's coef_."""
        return self.theta[:, :-1], self.theta[:, -1]

    def proba(self, X: np.ndarray) -> np.ndarray:
        """Member probability of rows X [R, k, d] under each draw's fitted scaler + model."""
        w, b = self._raw(self.theta, None)
        return expit(_matvec(X, w) + b[:, None])


def fit_logreg(P, U, C: float = 1.0, penalize_intercept: bool = False, max_iter: int = 100,
               tol: float = 1e-6) -> _LogReg:
    """Fit scaler + logistic regression of P (label 1) against U (label 0) for every draw."""
    return _LogReg(np.asarray(P, np.float64), np.asarray(U, np.float64), C, penalize_intercept,
                   max_iter, tol).fit()


def _check_alternative(alt):
    if alt not in _ALTERNATIVES:
        raise ConfigError(f"alternative must be one of {_ALTERNATIVES}, got {alt!r}")


def _check_inputs(P, U):
    P = np.asarray(P, dtype=np.float64)
    U = np.asarray(U, dtype=np.float64)
    if P.ndim != 3 or P.shape != U.shape:
        raise ConfigError(f"aggregators need P and U of equal shape [draws, n, d]; got "
                          f"{P.shape} and {U.shape}")
    return P, U


class _LogRegAggregator(Aggregator):
    family = "diffusion"
    param_docs = {
        "alternative": "Welch t-test on the scores of P against U: greater (one-sided, P scores "
                       "higher: 'trained on P') | two-sided",
        "C": "inverse L2 regularisation strength of the logistic regression, > 0 (sklearn's C)",
        "penalize_intercept": "true: the intercept is penalised too, as liblinear does (the "
                              "released CDI code) | false: unpenalised intercept",
        "max_iter": "Newton iterations of the logistic-regression fit per draw, >= 1",
        "folds": "cross-fitting folds (same fold positions for P and U), >= 2; a draw with "
                 "fewer samples than folds gives NaN",
    }
    param_choices = {"alternative": _ALTERNATIVES}

    def validate(self) -> None:
        _check_alternative(self.params["alternative"])
        if not float(self.params["C"]) > 0:
            raise ConfigError(f"C must be > 0, got {self.params['C']}")
        if int(self.params["max_iter"]) < 1:
            raise ConfigError(f"max_iter must be >= 1, got {self.params['max_iter']}")

    def _fit_score(self, P_tr, U_tr, *tests):
        """Fit scaler + LR on (P_tr label 1, U_tr label 0); member probabilities of ``tests``."""
        lr = fit_logreg(P_tr, U_tr, C=float(self.params["C"]),
                        penalize_intercept=bool(self.params["penalize_intercept"]),
                        max_iter=int(self.params["max_iter"]))
        return [lr.proba(t) for t in tests]


class CDIHeldOut(_LogRegAggregator):
    """CDI as the paper describes it (attacks.md §6.1): each draw's P and U are split into a
    control half and a disjoint test half; StandardScaler + L2 logistic regression (C=1) are
    fitted on the control halves only; the test halves are scored and compared by a Welch t-test.

    Why this and not the released code's cross-fitting: the held-out scores are independent given
    the fitted scorer, so the test holds its nominal alpha when P and U come from one distribution
    (validity.md §1); a false "trained on your data" is the failure that matters. Default
    alternative "greater" (paper: one-sided). With n odd the extra sample goes to the test half;
    n = 2 leaves one test sample per set, so the test is undefined (NaN, counted as p = 1).
    """

    defaults = {"alternative": "greater", "C": 1.0, "penalize_intercept": False,
                "max_iter": 100}

    def pvalues(self, P, U, rng=None):
        P, U = _check_inputs(P, U)
        n = P.shape[1]
        h = n // 2
        if h < 1 or n - h < 2:
            return np.full(P.shape[0], np.nan)
        sp, su = self._fit_score(P[:, :h], U[:, :h], P[:, h:], U[:, h:])
        return welch(sp, su, self.params["alternative"])


class CDICrossFit(_LogRegAggregator):
    """CDI as the released code runs it (attacks.md §6.2): 5-fold cross-fitting (same fold
    positions for P and U), fold-wise StandardScaler + L2 logistic regression (C=1, intercept
    penalised as liblinear does), Welch t-test on all n out-of-fold scores of P against U;
    two-sided by default as in the code, "greater" optional.

    For reproducing the paper only: it OVER-REJECTS under the null. Every fold's model has seen
    the labels of the other folds, so out-of-fold scores are not independent and the t statistic
    is over-dispersed. Measured with ``harness.di.run_di``'s null control (identical 25-d
    Gaussians, P and U disjoint draws from one pool of 3,000, 2,000 draws per n, seed 5):
    two-sided, alpha 0.05: 0.140 / 0.156 / 0.171 at n = 10 / 60 / 500 (pooled 0.155);
    alpha 0.01: 0.053 / 0.061 / 0.076 (pooled 0.063); one-sided "greater" at n = 60: 0.099 at
    alpha 0.05 and 0.032 at alpha 0.01. Same setting, ``cdi``: 0.052 and 0.011; ``minmax-sum``:
    0.048 and 0.009. The mean p-value (about 0.40 two-sided) looks harmless, as in the CDI
    paper's "both sets non-members" row, which is why the rate is measured per draw
    (validity.md §1).
    """

    defaults = {"alternative": "two-sided", "folds": 5, "C": 1.0, "penalize_intercept": True,
                "max_iter": 100}

    def validate(self) -> None:
        super().validate()
        if int(self.params["folds"]) < 2:
            raise ConfigError(f"folds must be >= 2, got {self.params['folds']}")

    def pvalues(self, P, U, rng=None):
        P, U = _check_inputs(P, U)
        R, n, _ = P.shape
        k = int(self.params["folds"])
        if n < k:
            return np.full(R, np.nan)
        fold = np.arange(n) % k
        sp, su = np.empty((R, n)), np.empty((R, n))
        for f in range(k):
            te, tr = fold == f, fold != f
            sp[:, te], su[:, te] = self._fit_score(P[:, tr], U[:, tr], P[:, te], U[:, te])
        return welch(sp, su, self.params["alternative"])


class MinMaxSum(Aggregator):
    """IAR's dataset inference (attacks.md §7): per draw, every feature is min-max scaled on the
    pooled P ∪ U (labels unused), the scaled features are summed, and the sums of P and U are
    compared by a Welch t-test. No learned weights, so nothing is fitted on the tested samples
    and the test holds its level. Features arrive oriented higher = member, hence the default
    one-sided "greater" (the reference code is two-sided: ``alternative="two-sided"``). A feature
    constant within a draw contributes 0, as sklearn's MinMaxScaler does.
    """

    family = "autoregressive"
    defaults = {"alternative": "greater"}
    param_docs = {"alternative": "Welch t-test on the summed scaled features of P against U: "
                                 "greater (one-sided, as features are oriented higher = member) | "
                                 "two-sided (the reference code)"}
    param_choices = {"alternative": _ALTERNATIVES}

    def validate(self) -> None:
        _check_alternative(self.params["alternative"])

    def pvalues(self, P, U, rng=None):
        P, U = _check_inputs(P, U)
        lo = np.minimum(P.min(axis=1), U.min(axis=1))
        span = np.maximum(P.max(axis=1), U.max(axis=1)) - lo
        a = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 0.0)
        shift = (lo * a).sum(axis=1, keepdims=True)
        sp = np.matmul(P, a[..., None])[..., 0] - shift
        su = np.matmul(U, a[..., None])[..., 0] - shift
        return welch(sp, su, self.params["alternative"])

    def pooled(self, A: np.ndarray, B: np.ndarray) -> "_MinMaxPools":
        """Fast path for ``harness.di`` at large n: the same p-values from masks over the pools."""
        return _MinMaxPools(A, B, self.params["alternative"])


def _masked_extreme(X: np.ndarray, order: np.ndarray, mask: np.ndarray, reduce) -> np.ndarray:
    """Per draw and feature, the extreme of X over the masked rows: the first masked row in the
    feature's sorted ``order`` [N, d]. Only the first K rows of the order are looked at, K chosen
    so that a miss is rare (P(miss) ~ (1 - n/N)^K); misses are computed exactly."""
    c, N = mask.shape
    d = X.shape[1]
    q = mask[0].sum() / N
    K = 1 if q >= 1 else int(min(N, np.ceil(np.log(1e-3 / (c * d)) / np.log1p(-q)) + 1))
    cand = order[:K]                              # [K, d] row ids
    sel = mask[:, cand]                           # [c, K, d]
    first = sel.argmax(axis=1)                    # [c, d]
    cols = np.arange(d)
    val = X[cand[first, cols], cols]              # [c, d]
    hit = np.take_along_axis(sel, first[:, None, :], axis=1)[:, 0, :]
    for r, f in zip(*np.nonzero(~hit)):
        val[r, f] = reduce(X[mask[r], f])
    return val


#: ``_MinMaxPools`` gathers the rows a draw leaves out, rather than scaling every pool row,
#: when they are at most this fraction of the pool (measured on 10,000 x 25: the full pass
#: costs about as much as gathering a tenth of the rows)
LEFT_OUT_FRACTION = 0.1


class _MinMaxPools:
    """MinMaxSum on masks over fixed pools. Per draw: min and max of each feature over the
    masked rows (from sorted orders, see ``_masked_extreme``), the scaled sum for every pool row
    in one BLAS product, then masked sums and sums of squares give the Welch statistics (when
    nearly all the pool is selected: pool totals minus the rows left out). The
    pools are centred per feature first (min-max scaling makes the test shift-invariant), so the
    sums of squares lose no precision."""

    def __init__(self, A: np.ndarray, B: np.ndarray, alternative: str):
        same = A is B
        centre = np.concatenate([A, B]).mean(axis=0) if not same else A.mean(axis=0)
        self.XA = np.ascontiguousarray(A - centre)
        self.XB = self.XA if same else np.ascontiguousarray(B - centre)
        self.oA = np.argsort(self.XA, axis=0, kind="stable")
        self.oB = self.oA if same else np.argsort(self.XB, axis=0, kind="stable")
        self.gA, self.cA = self.XA.T @ self.XA, self.XA.sum(axis=0)
        self.gB, self.cB = (self.gA, self.cA) if same else (self.XB.T @ self.XB,
                                                            self.XB.sum(axis=0))
        self.alternative = alternative

    def _moments(self, X, mask, a, gram, colsum):
        """Mean and sd (ddof 1) of the scaled sums over the masked rows of each draw."""
        N = X.shape[0]
        n = np.count_nonzero(mask, axis=1)
        if LEFT_OUT_FRACTION * N >= N - n[0]:
            # nearly all rows selected: totals over the pool (from its Gram matrix) minus the
            # few rows left out, gathered
            c = mask.shape[0]
            out = X[np.nonzero(~mask)[1].reshape(c, N - n[0])]        # [c, N - n, d]
            so = np.matmul(out, a[..., None])[..., 0]
            s1 = a @ colsum - so.sum(axis=1)
            s2 = np.einsum("ci,ij,cj->c", a, gram, a) - (so * so).sum(axis=1)
        else:
            S = a @ X.T                                   # [c, N]: scaled sum of every pool row
            Sm = S * mask
            s1 = Sm.sum(axis=1)
            s2 = np.einsum("ij,ij->i", Sm, S)
        mean = s1 / n
        var = np.maximum(s2 - n * mean * mean, 0.0) / (n - 1)
        return mean, np.sqrt(var), n

    def pvalues(self, mP: np.ndarray, mU: np.ndarray, rng=None) -> np.ndarray:
        lo = np.minimum(_masked_extreme(self.XA, self.oA, mP, np.min),
                        _masked_extreme(self.XB, self.oB, mU, np.min))
        hi = np.maximum(_masked_extreme(self.XA, self.oA[::-1], mP, np.max),
                        _masked_extreme(self.XB, self.oB[::-1], mU, np.max))
        span = hi - lo
        a = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 0.0)
        m1, s1, n1 = self._moments(self.XA, mP, a, self.gA, self.cA)
        m2, s2, n2 = self._moments(self.XB, mU, a, self.gB, self.cB)
        with np.errstate(divide="ignore", invalid="ignore"):
            res = ttest_ind_from_stats(m1, s1, n1, m2, s2, n2, equal_var=False,
                                       alternative=self.alternative)
        return np.asarray(res.pvalue, dtype=np.float64)
