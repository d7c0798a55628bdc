"""Figures logged with each result: ROC curves for MIA, p-value against n for DI.

Pure functions of arrays that write a PNG atomically. They build a bare ``matplotlib.figure.Figure``
on the Agg canvas instead of going through pyplot, so no global backend or figure state is touched
(safe inside a CLI, a test process or a notebook that uses another backend), and matplotlib is
imported only when a figure is drawn (``harness --help`` stays instant).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from . import atomic


def roc_curve(member_scores, nonmember_scores) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) over every distinct threshold, higher score = member, starting at (0, 0).

    Tied scores move both rates at once (one point per distinct threshold), so a constant score
    gives the chance diagonal rather than a staircase that depends on the sample order.
    """
    m = np.asarray(member_scores, dtype=float).ravel()
    u = np.asarray(nonmember_scores, dtype=float).ravel()
    if m.size == 0 or u.size == 0:
        raise ValueError("ROC needs at least one member and one non-member score")
    scores = np.concatenate([m, u])
    labels = np.concatenate([np.ones(m.size), np.zeros(u.size)])
    # NaN scores (a failed feature) rank last: they never count as a confident "member"
    scores = np.where(np.isnan(scores), -np.inf, scores)
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(scores) != 0), scores.size - 1]
    tp = np.cumsum(labels)[last_of_run]
    fp = np.cumsum(1 - labels)[last_of_run]
    return np.r_[0.0, fp / u.size], np.r_[0.0, tp / m.size]


def _figure(ncols: int, width: float = 4.2, height: float = 3.8):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # fixed margins instead of a layout engine: constrained layout measures every tick label and
    # took most of the drawing time (a suite logs one ROC per cell)
    fig = Figure(figsize=(width * ncols, height))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.14 / ncols, right=1 - 0.03 / ncols, bottom=0.13, top=0.86,
                        wspace=0.28)
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic.file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def roc_plot(path: str | os.PathLike, member_scores, nonmember_scores, title: str = "",
             target_fpr: float | None = None) -> Path:
    """ROC in linear axes (overall AUC) and log-log axes (the low-FPR regime where TPR@1%FPR
    lives, as privacy meter and Carlini et al. plot it), side by side in one PNG."""
    fpr, tpr = roc_curve(member_scores, nonmember_scores)
    auc = float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))
    n_m, n_u = np.size(member_scores), np.size(nonmember_scores)
    fig, (lin, log) = _figure(2)
    for ax in (lin, log):
        ax.plot(fpr, tpr, color="C0", lw=1.5, label=f"all samples: AUC {100 * auc:.1f}%")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.grid(True, which="both", alpha=0.3)
    lin.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="chance")
    lin.set_xlim(0, 1)
    lin.set_ylim(0, 1)
    lin.legend(loc="lower right", fontsize=8)
    lin.set_title("linear")
    # log axes cannot show 0: start at the smallest non-zero rate the sample sizes allow
    lo = min(1.0 / n_u, 1.0 / n_m) / 2
    grid = np.logspace(np.log10(lo), 0, 50)
    log.plot(grid, grid, color="grey", ls="--", lw=1, label="chance")
    if target_fpr:
        log.axvline(target_fpr, color="C3", ls=":", lw=1, label=f"FPR = {target_fpr:g}")
    log.set_xscale("log")
    log.set_yscale("log")
    log.set_xlim(lo, 1)
    log.set_ylim(lo, 1)
    log.legend(loc="lower right", fontsize=8)
    log.set_title("log-log")
    fig.suptitle(f"{title}  ({n_m} members, {n_u} non-members)".strip(), fontsize=10)
    return _save(fig, path)


def pvalue_plot(path: str | os.PathLike, per_n: Sequence[dict], alpha: float,
                null_per_n: Sequence[dict] | None = None, title: str = "",
                min_n: int | None = None) -> Path:
    """Mean p-value against the number of suspect samples n (log-log), with the null control
    (suspect set drawn from non-members) that should stay above alpha, and alpha itself."""
    fig, (ax,) = _figure(1, width=5.5, height=4.0)
    curves = [("suspect set (members)", per_n, "C0", "-")]
    if null_per_n:
        curves.append(("null control (non-members)", null_per_n, "C1", "--"))
    values = [r["mean_p"] for _, rows, _, _ in curves for r in rows
              if r.get("mean_p") is not None and r["mean_p"] > 0]
    # p-values of exactly 0 have no place on a log axis: draw them at a floor below everything
    floor = min(values + [alpha]) / 10
    for label, rows, color, ls in curves:
        ns = np.array([r["n"] for r in rows], dtype=float)
        ps = np.array([np.nan if r.get("mean_p") is None else r["mean_p"] for r in rows])
        ax.plot(ns, np.clip(ps, floor, 1.0), color=color, ls=ls, marker="o", ms=3, label=label)
    ax.axhline(alpha, color="C3", ls=":", lw=1, label=f"alpha = {alpha:g}")
    if min_n is not None:
        ax.axvline(min_n, color="grey", ls=":", lw=1, label=f"min n = {min_n}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(floor / 2, 1.5)
    ax.set_xlabel("n (suspect samples)")
    ax.set_ylabel("mean p-value")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def roc_summary_plot(path: str | os.PathLike, curves: Sequence[tuple], title: str = "",
                     target_fpr: float | None = None) -> Path:
    """Every attack of one (model, data) cell on one log-log ROC: the parent run's overview, so
    the cell can be read without opening each child run. ``curves``: (label, member scores,
    non-member scores)."""
    fig, (ax,) = _figure(1, width=5.6, height=4.6)
    lo = 1.0
    for i, (label, m, u) in enumerate(curves):
        fpr, tpr = roc_curve(m, u)
        auc = float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else \
            float(np.trapz(tpr, fpr))
        lo = min(lo, 1.0 / np.size(u), 1.0 / np.size(m))
        ax.plot(fpr, tpr, lw=1.2, color=f"C{i % 10}", ls="-" if i < 10 else "--",
                label=f"{label}: AUC {100 * auc:.1f}%")
    lo /= 2
    grid = np.logspace(np.log10(lo), 0, 50)
    ax.plot(grid, grid, color="grey", ls="--", lw=1, label="chance")
    if target_fpr:
        ax.axvline(target_fpr, color="C3", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, 1)
    ax.set_ylim(lo, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=6)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)
