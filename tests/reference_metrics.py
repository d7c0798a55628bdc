"""The label-permutation chance band as first written (scipy ``rankdata`` on float scores per
subsample row), frozen here so the rank-key implementation in ``harness.metrics`` can be checked
against it number for number (tests/test_metrics.py) and timed against it (benchmarks/
chance_bands.py). Not used by the harness.

Selection rules, random draws and chunking are the harness's own (``_pick``, ``_halves``,
``NullDraws``, ``band_summary``, ``allowed_false_positives``), so any difference is in how a
row's AUC and TPR are computed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import rankdata

from harness.metrics import (NullDraws, Prepared, _halves, _pick, allowed_false_positives,
                             band_summary)


def tpr_rows(member: np.ndarray, nonmember: np.ndarray, target_fpr: float) -> np.ndarray:
    n_neg = nonmember.shape[1]
    k = allowed_false_positives(target_fpr, n_neg)
    if k >= n_neg:
        return np.ones(member.shape[0])
    kth = np.partition(nonmember, n_neg - k - 1, axis=1)[:, n_neg - k - 1]
    return (member > kth[:, None]).mean(axis=1)


def auc_rows(member: np.ndarray, nonmember: np.ndarray) -> np.ndarray:
    n_m, n_u = member.shape[1], nonmember.shape[1]
    ranks = rankdata(np.concatenate([member, nonmember], axis=1), axis=1)
    return (ranks[:, :n_m].sum(axis=1) - n_m * (n_m + 1) / 2.0) / (n_m * n_u)


def rows_per_column(M, U, im, iu, target_fpr):
    lead = im.shape[:-1]
    aucs, tprs = [], []
    for f in range(M.shape[1]):
        ms = M[:, f][im].reshape(-1, im.shape[-1])
        us = U[:, f][iu].reshape(-1, iu.shape[-1])
        aucs.append(auc_rows(ms, us).reshape(lead))
        tprs.append(tpr_rows(ms, us, target_fpr).reshape(lead))
    return np.stack(aucs), np.stack(tprs)


def reported(p: Prepared, im, iu, target_fpr, split_rng) -> dict:
    M, U = p.columns()
    rule = p.effective
    if rule == "best-heldout":
        ima, imb = _halves(split_rng, im)
        iua, iub = _halves(split_rng, iu)
        auc_a, tpr_a = rows_per_column(M, U, ima, iua, target_fpr)
        auc_b, tpr_b = rows_per_column(M, U, imb, iub, target_fpr)
        chosen = _pick(tpr_a, auc_a)
        auc_r = np.take_along_axis(auc_b, chosen[None], 0)[0]
        tpr_r = np.take_along_axis(tpr_b, chosen[None], 0)[0]
        return {"auc": auc_r.mean(-1), "tpr": tpr_r.mean(-1)}
    aucs, tprs = rows_per_column(M, U, im, iu, target_fpr)
    mean_auc, mean_tpr = aucs.mean(-1), tprs.mean(-1)
    chosen = _pick(mean_tpr, mean_auc)
    auc_r = np.take_along_axis(aucs, chosen[None, ..., None], 0)[0]
    tpr_r = np.take_along_axis(tprs, chosen[None, ..., None], 0)[0]
    return {"auc": auc_r.mean(-1), "tpr": tpr_r.mean(-1)}


def chance_bands(attacks: Sequence[Prepared], target_fpr: float = 0.01, n_subsamples: int = 50,
                 fraction: float = 0.5, n_permutations: int = 200, seed: int = 0,
                 q: float = 0.95, max_elements: int = 4_000_000) -> dict:
    n_m, n_u = attacks[0].M.shape[0], attacks[0].U.shape[0]
    draws = NullDraws(n_m, n_u, fraction, n_subsamples, n_permutations, seed, max_elements)
    auc = np.empty((len(attacks), n_permutations))
    tpr = np.empty((len(attacks), n_permutations))
    for a, p in enumerate(attacks):
        M, U = p.columns()
        X = np.r_[M, U]
        split_rng = draws.split_rng(a)
        for cols, jm, ju in draws.chunks():
            pseudo = Prepared(p.names, p.specs, p.selection, X, X,
                              None if p.lr is None else (X[:, 0], X[:, 0]))
            rep = reported(pseudo, jm, ju, target_fpr, split_rng)
            auc[a, cols] = rep["auc"]
            tpr[a, cols] = rep["tpr"]
    return {**band_summary(auc, tpr, q), "auc_all": auc, "tpr_all": tpr}
