"""A dataset-inference aggregator that holds its level whatever the correlation between
features (attack features of one model are strongly correlated, so a Fisher combination of
per-feature p-values would reject far too often under the null)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import ttest_ind

from harness.contracts import Aggregator


class BonferroniWelch(Aggregator):
    """Per feature, a one-sided Welch t-test of P > U (features arrive oriented higher =
    member); the draw's p-value is min(1, d * smallest p). NaN when no feature varies."""

    family = "any"
    version = "1"
    defaults = {}

    def pvalues(self, P, U, rng):
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # constant features in tiny draws
            p = ttest_ind(P, U, axis=1, equal_var=False, alternative="greater").pvalue  # [R, d]
            p = np.asarray(p, dtype=np.float64)
            best = np.nanmin(np.where(np.isnan(p), np.inf, p), axis=1)
        out = np.minimum(1.0, p.shape[1] * best)
        return np.where(np.isinf(best), np.nan, out)
