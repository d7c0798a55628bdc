"""A console summary of one run, read from its results.json (works without MLflow)."""

from __future__ import annotations

import json
from pathlib import Path


def _pct(mean, std) -> str:
    return f"{100 * mean:5.1f} ± {100 * std:4.1f}"


def console_summary(results_dir: str | Path) -> str:
    res = json.loads((Path(results_dir) / "results.json").read_text())
    lines = [f"Suite '{res['suite_name']}' — results in {results_dir}", ""]
    if res["mia"]:
        lines.append("MIA (percent, mean ± std over subsamples; higher = stronger attack)")
        head = f"{'model':24} {'data':12} {'attack':22} {'AUC':>13} {'TPR@' + format(100 * res['mia'][0]['target_fpr'], 'g') + '%FPR':>13}  selected"
        lines += [head, "-" * len(head)]
        for r in res["mia"]:
            lines.append(f"{r['model']:24} {r['data']:12} {r['attack']:22} "
                         f"{_pct(r['auc'], r['auc_std']):>13} "
                         f"{_pct(r['tpr_at_fpr'], r['tpr_at_fpr_std']):>13}  {r['selected_feature']}")
        lines.append("")
    if res["di"]:
        lines.append("Dataset inference (minimum n with mean p <= alpha; null control = P drawn "
                     "from non-members)")
        head = f"{'model':24} {'data':12} {'aggregator':14} {'min n':>7} {'alpha':>6} {'null FPR':>9}"
        lines += [head, "-" * len(head)]
        for r in res["di"]:
            min_n = "never" if r.get("min_n") is None else str(r["min_n"])
            null = "-" if r.get("null_fpr") is None else f"{r['null_fpr']:.3f}"
            lines.append(f"{r['model']:24} {r['data']:12} {r['aggregator']:14} {min_n:>7} "
                         f"{r['alpha']:>6g} {null:>9}")
    return "\n".join(lines)
