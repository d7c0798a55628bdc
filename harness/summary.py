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
        from .di import null_mark

        lines.append("Dataset inference: primary = the one pre-declared test on all of P against "
                     "U (the claim); min n = smallest n with mean p <= alpha over the grid "
                     "(exploratory); null control = P drawn from non-members")
        head = (f"{'model':24} {'data':12} {'aggregator':14} {'role':11} {'min n':>7} "
                f"{'alpha':>6} {'null FPR':>9}")
        lines += [head, "-" * len(head)]
        notes = []
        for r in res["di"]:
            min_n = "never" if r.get("min_n") is None else str(r["min_n"])
            null = "none" if r.get("null_fpr") is None else f"{r['null_fpr']:.3f}"
            role = "primary" if r.get("primary") else "exploratory"
            mark = null_mark(r.get("null_fpr"), r.get("null_valid"), r["alpha"])
            lines.append(f"{r['model']:24} {r['data']:12} {r['aggregator']:14} {role:11} "
                         f"{min_n:>7} {r['alpha']:>6g} {null:>9}" + (f"  {mark}" if mark else ""))
            where = f"{r['model']} × {r['data']} × {r['aggregator']}"
            first = r.get("primary_test") if r.get("primary") else None
            if first:
                p = first.get("p_value")
                verdict = "undefined" if p is None else \
                    f"p = {p:.3g}, {'rejects' if first['rejects'] else 'does not reject'}"
                fpr = first.get("null_fpr")
                null_at = "no valid null test" if fpr is None else \
                    f"null FPR {fpr:.3f} at n = {first['null_n']} (<= {first['null_fpr_upper']:.3f})"
                mark = null_mark(fpr, first.get("null_valid"), r["alpha"])
                notes.append(f"  primary {where}: n = {first['n']}, {verdict}; {null_at}"
                             + (f"  {mark}" if mark else ""))
            if r.get("caveat"):
                notes.append(f"  {where}: {r['caveat']}")
            if r.get("null_note"):
                notes.append(f"  {where}: {r['null_note']}")
        lines += notes
    return "\n".join(lines)
