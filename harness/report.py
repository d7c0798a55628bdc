"""``harness report``: the paper's tables, read back from MLflow.

Layout follows the paper (Tables 2–4 of "Membership and Dataset Inference Attacks on Large Audio
Generative Models"): rows are attacks, columns are models (``model (data)`` when a table mixes
data sets), cells are percentages with two decimals, "mean ± std" over the MIA subsamples —
"52.85 ± 0.54" — because TPR@1%FPR values such as 0.12% need the second decimal. Numbered as in
the paper: Table 2 MIA on autoregressive models, Table 3 on diffusion models (each "a": AUC, "b":
TPR at the target FPR, 1% unless the suite says otherwise), Table 4
the smallest number of suspect samples n at which dataset inference rejects the null hypothesis,
next to the false positive rate of the null control (suspect set drawn from non-members), which
says whether that n can be trusted.

``fmt="csv"`` gives the same results as one tidy table (one row per MIA cell or DI result) with
the raw logged values (fractions, not percentages) and the run id, for spreadsheets and pandas.

Reads only; mlflow is imported inside functions.
"""

from __future__ import annotations

import csv
import io

from .blind import CONFOUNDED_TEXT
from .errors import HarnessError, did_you_mean
from .tracking import fpr_key, normalize_uri, _sqlite_path


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _search(client, exp_ids: list[str], filter_string: str, order_by=None, max_results=None):
    """Every matching run (MLflow pages search results)."""
    out, token = [], None
    while True:
        page = client.search_runs(exp_ids, filter_string=filter_string,
                                  max_results=min(max_results or 1000, 1000),
                                  order_by=order_by or ["attributes.start_time ASC"],
                                  page_token=token)
        out += list(page)
        token = page.token
        if not token or (max_results and len(out) >= max_results):
            return out[:max_results] if max_results else out


_FINISHED_SUITE = "tags.kind = 'suite' AND attributes.status = 'FINISHED'"


def _pick_experiment(client, uri: str, experiment: str | None):
    experiments = client.search_experiments()
    if experiment is not None:
        for e in experiments:
            if e.name == experiment:
                return e
        raise HarnessError(did_you_mean("experiment", experiment, [e.name for e in experiments])
                           + f" (tracking URI {uri})")
    latest = _search(client, [e.experiment_id for e in experiments], _FINISHED_SUITE,
                     order_by=["attributes.start_time DESC"], max_results=1) if experiments else []
    if not latest:
        raise HarnessError(f"No finished harness run in the MLflow store {uri}. Run a suite "
                           "(`harness run SUITE`) or log a results directory (`harness log DIR`), "
                           "or pass the right --tracking-uri.")
    exp_id = latest[0].info.experiment_id
    return next(e for e in experiments if e.experiment_id == exp_id)


def _scope(client, exp, run: str | None) -> tuple[str, str]:
    """The filter that selects the child runs to report, and a line saying what they are."""
    if run == "all":
        return ("attributes.status = 'FINISHED'",
                f"every finished run of experiment '{exp.name}', newest result per cell")
    if run is None:
        parents = _search(client, [exp.experiment_id], _FINISHED_SUITE,
                          order_by=["attributes.start_time DESC"], max_results=1)
        if not parents:
            raise HarnessError(f"Experiment '{exp.name}' has no finished harness run; log one "
                               "with `harness log DIR` (or use --all-runs).")
        parent = parents[0]
    else:
        try:
            parent = client.get_run(run)
        except Exception as exc:
            raise HarnessError(f"No MLflow run '{run}': {exc}") from exc
        if parent.info.experiment_id != exp.experiment_id:
            raise HarnessError(f"Run '{run}' is not in experiment '{exp.name}'")
    pid = parent.info.run_id
    name = parent.data.tags.get("mlflow.runName", "")
    return (f"tags.`mlflow.parentRunId` = '{pid}'",
            f"experiment '{exp.name}', suite run {pid} ({name})")


def _newest_per(runs, key) -> list:
    """One run per cell: the most recently started (runs come sorted oldest first)."""
    best = {}
    for r in runs:
        best[key(r)] = r
    return sorted(best.values(), key=lambda r: r.info.start_time)


def _float(v):
    try:
        return None if v is None or v == "" else float(v)
    except ValueError:
        return None


def _mia_rows(runs) -> list[dict]:
    rows = []
    runs = _newest_per(runs, lambda r: (r.data.tags.get("model"), r.data.tags.get("data"),
                                        r.data.tags.get("attack")))
    for r in runs:
        t, m, p = r.data.tags, r.data.metrics, r.data.params
        target = _float(p.get("target_fpr")) or 0.01
        k = fpr_key(target)
        rows.append({"kind": "mia", "model": t.get("model"), "data": t.get("data"),
                     "family": t.get("family") or "",
                     "attack": t.get("attack"), "aggregator": "", "auc": m.get("auc"),
                     "auc_std": m.get("auc_std"), "tpr_at_fpr": m.get(k),
                     "tpr_at_fpr_std": m.get(f"{k}_std"), "target_fpr": target,
                     "selected_feature": t.get("selected_feature", ""),
                     "auc_null_q95": m.get("auc_null_q95"), "tpr_null_q95": m.get("tpr_null_q95"),
                     "best_auc_null_q95": m.get("best_of_cell_auc_null_q95"),
                     "best_tpr_null_q95": m.get("best_of_cell_tpr_null_q95"),
                     "auc_lcb": None, "gate_auc": None,
                     "confounded": t.get("confounded") == "true", "evidence": "",
                     "min_n": None, "max_n": None, "alpha": None, "null_fpr": None,
                     "null_fpr_upper": None, "run_id": r.info.run_id})
    return rows


def _di_rows(runs) -> list[dict]:
    rows = []
    runs = _newest_per(runs, lambda r: (r.data.tags.get("model"), r.data.tags.get("data"),
                                        r.data.tags.get("aggregator")))
    for r in runs:
        t, m, p = r.data.tags, r.data.metrics, r.data.params
        min_n = m.get("min_n")
        max_n = m.get("max_n")
        # runs logged before the primary test kept the pooled null rate under ``null_fpr``
        new = "primary" in t
        primary_n = m.get("primary_n")
        rows.append({"kind": "di", "model": t.get("model"), "data": t.get("data"), "attack": "",
                     "aggregator": t.get("aggregator"), "auc": None, "auc_std": None,
                     "tpr_at_fpr": None, "tpr_at_fpr_std": None, "target_fpr": None,
                     "selected_feature": "", "auc_null_q95": None, "tpr_null_q95": None,
                     "best_auc_null_q95": None, "best_tpr_null_q95": None,
                     "auc_lcb": None, "gate_auc": None,
                     "confounded": t.get("confounded") == "true",
                     "evidence": t.get("evidence", ""),
                     "min_n": None if min_n is None else int(min_n),
                     "max_n": None if max_n is None else int(max_n),
                     "alpha": _float(p.get("alpha")),
                     "null_fpr": m.get("null_fpr_pooled") if new else m.get("null_fpr"),
                     "null_fpr_upper": (m.get("null_fpr_pooled_upper") if new
                                        else m.get("null_fpr_upper")),
                     "null_valid": None if m.get("null_valid_total") is None
                     else int(m["null_valid_total"]),
                     "null_note": t.get("null_note", ""),
                     "primary": {"true": True, "false": False}.get(t.get("primary", "")),
                     "primary_p_value": m.get("primary_p_value"),
                     "primary_n": None if primary_n is None else int(primary_n),
                     "primary_rejects": None if m.get("primary_rejects") is None
                     else bool(m["primary_rejects"]),
                     "primary_null_n": None if m.get("primary_null_n") is None
                     else int(m["primary_null_n"]),
                     "primary_null_fpr": m.get("primary_null_fpr"),
                     "primary_null_valid": None if m.get("primary_null_valid") is None
                     else int(m["primary_null_valid"]),
                     "primary_null_fpr_upper": m.get("primary_null_fpr_upper"),
                     "caveat": t.get("caveat", ""), "run_id": r.info.run_id})
    return rows


def _blind_rows(runs) -> list[dict]:
    rows = []
    runs = _newest_per(runs, lambda r: (r.data.tags.get("model"), r.data.tags.get("data")))
    for r in runs:
        t, m, p = r.data.tags, r.data.metrics, r.data.params
        target = _float(p.get("target_fpr")) or 0.01
        rows.append({"kind": "blind", "model": t.get("model"), "data": t.get("data"),
                     "family": t.get("family") or "", "attack": "blind", "aggregator": "",
                     "auc": m.get("auc"), "auc_std": None, "auc_lcb": m.get("auc_lcb"),
                     "tpr_at_fpr": m.get(fpr_key(target)), "tpr_at_fpr_std": None,
                     "target_fpr": target, "selected_feature": "",
                     "auc_null_q95": m.get("auc_null_q95"), "tpr_null_q95": m.get("tpr_null_q95"),
                     "best_auc_null_q95": None, "best_tpr_null_q95": None,
                     "gate_auc": _float(p.get("gate_auc")),
                     "confounded": t.get("confounded") == "true", "evidence": "",
                     "min_n": None, "max_n": None, "alpha": None, "null_fpr": None,
                     "null_fpr_upper": None, "run_id": r.info.run_id})
    return rows


def pct(mean, std) -> str:
    """Paper cell: percent, two decimals, "mean ± std"."""
    if mean is None:
        return "–"
    return f"{100 * mean:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")


def with_chance(mean, std, q95) -> str:
    """A paper cell with its chance band: "61.20 ± 3.10 (chance 63.50)"; a value at or below
    the band is what label permutation alone produces at this sample size."""
    cell = pct(mean, std)
    return cell if mean is None or q95 is None else f"{cell} (chance {100 * q95:.2f})"


def _best_row(rows: list[dict], value: str, band: str, cols: list[tuple]) -> list[str]:
    """The last row of an MIA table: per column, the best attack's value beside the chance band
    of the best of that many attacks (a best-of-13 needs its own yardstick)."""
    out = ["Best attack (chance of the best)"]
    for col in cols:
        sub = [r for r in rows if (r["model"], r["data"]) == col and r[value] is not None]
        if not sub:
            out.append("–")
            continue
        top = max(sub, key=lambda r: r[value])
        q = sub[0][band]
        out.append(f"{100 * top[value]:.2f} {top['attack']}"
                   + ("" if q is None else f" (chance {100 * q:.2f})"))
    return out


def _blind_row(blind: dict, cols: list[tuple], value: str) -> list[str]:
    """The model-free baseline beside the attacks: what the sets' difference alone achieves."""
    out = ["Blind baseline, no model (lower bound)" if value == "auc"
           else "Blind baseline, no model"]
    for col in cols:
        b = blind.get(col)
        if b is None or b[value] is None:
            out.append("–")
        elif value == "auc":
            lcb = "" if b["auc_lcb"] is None else f" ({100 * b['auc_lcb']:.2f})"
            out.append(f"{100 * b['auc']:.2f}{lcb}")
        else:
            out.append(f"{100 * b[value]:.2f}")
    return out


def _md_table(header: list[str], body: list[list[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header))] + [line(r) for r in body])


def _columns(rows: list[dict]) -> list[tuple]:
    return list(dict.fromkeys((r["model"], r["data"]) for r in rows))


def _pivot(rows: list[dict], value) -> tuple[list[str], list[list[str]]]:
    several_data = len({r["data"] for r in rows}) > 1
    cols: list[tuple] = []
    attacks: list[str] = []
    cells = {}
    for r in rows:
        col = (r["model"], r["data"])
        if col not in cols:
            cols.append(col)
        if r["attack"] not in attacks:
            attacks.append(r["attack"])
        cells[(r["attack"], col)] = value(r)
    confounded = {(r["model"], r["data"]) for r in rows if r.get("confounded")}
    header = ["Attack"] + [(f"{m} ({d})" if several_data else m)
                           + (" [confounded]" if (m, d) in confounded else "") for m, d in cols]
    body = [[a] + [cells.get((a, c), "–") for c in cols] for a in attacks]
    return header, body


def _min_n_cell(r: dict) -> str:
    if r["min_n"] is not None:
        return str(r["min_n"])
    return f"> {r['max_n']}" if r["max_n"] is not None else "not reached"


def _evidence_cell(r: dict) -> str:
    """canary / iid-assumed / untested, or the confounded mark in words."""
    if r.get("confounded") or r.get("evidence") == "confounded":
        return "confounded: " + CONFOUNDED_TEXT
    return r.get("evidence") or "–"


def _null_cell(r: dict) -> str:
    """The pooled null rate with its pool-aware bound, the over-rejection mark, and what could
    not be measured; never a bare rate when no valid null test ran."""
    from .di import null_mark

    note = r.get("null_note") or ""
    if r["null_fpr"] is None:
        if r.get("primary") is None and not note:
            return "–"  # logged before the null control said why
        return note if "null control off" in note else f"**no valid null test ran** ({note})"
    upper = "" if r["null_fpr_upper"] is None else f" (≤ {r['null_fpr_upper']:.3f})"
    valid = "" if r.get("null_valid") is None else f", {r['null_valid']} tests"
    mark = null_mark(r["null_fpr"], r.get("null_valid"), r["alpha"])
    parts = [f"{r['null_fpr']:.3f}{upper}{valid}"] + ([mark] if mark else [])
    if note:
        parts.append(note)
    return "; ".join(parts)


def _role_cell(r: dict) -> str:
    if r.get("primary") is None:
        role = "–"  # logged before primary tests existed
    else:
        role = "**primary**" if r["primary"] else "exploratory"
    return role + (f" ({r['caveat']})" if r.get("caveat") else "")


def _primary_cell(r: dict) -> str:
    """The pre-declared test: p-value, n, decision, and the null rate at its n."""
    from .di import null_mark

    if not r.get("primary"):
        return "–"
    if r.get("primary_n") is None:
        return "not run"
    p = r.get("primary_p_value")
    if p is None:
        return f"undefined at n = {r['primary_n']} (does not reject)"
    verdict = "rejects" if r.get("primary_rejects") else "does not reject"
    cell = f"p = {p:.3g} at n = {r['primary_n']}, {verdict}"
    fpr = r.get("primary_null_fpr")
    if fpr is None:
        cell += "; no valid null test at this n"
    else:
        at = "" if r.get("primary_null_n") == r["primary_n"] else \
            f" (measured at n = {r.get('primary_null_n')})"
        upper = r.get("primary_null_fpr_upper")
        cell += f"; null FPR {fpr:.3f}{at}" + ("" if upper is None else f" ≤ {upper:.3f}")
        mark = null_mark(fpr, r.get("primary_null_valid"), r["alpha"])
        if mark:
            cell += f" {mark}"
    return cell


#: table numbers of the paper: MIA on autoregressive models (2), on diffusion models (3); DI is 4
FAMILY_TABLE = {"autoregressive": 2, "diffusion": 3}
DI_TABLE = 4


def _markdown(mia: list[dict], di: list[dict], source: str, blind: list[dict] = ()) -> str:
    parts = [f"Source: {source}."]
    by_cell = {(b["model"], b["data"]): b for b in blind}
    bad = [b for b in blind if b["confounded"]]
    if bad:
        parts += ["", "[confounded]: " + CONFOUNDED_TEXT + " — a classifier that never sees the "
                  "model separates members from non-members (blind AUC lower bound above the "
                  "gate): " + "; ".join(
                      f"{b['model']} ({b['data']}): AUC {100 * b['auc']:.2f}, lower bound "
                      f"{100 * b['auc_lcb']:.2f} > {100 * (b['gate_auc'] or 0.6):g}"
                      for b in bad) + ". Their MIA and DI results measure the split, not the "
                  "model."]
    # the paper's numbering: Table 2 autoregressive models, Table 3 diffusion models (AUC and
    # TPR at the target FPR each), Table 4 dataset inference; other families follow
    families = sorted({r.get("family") or "" for r in mia},
                      key=lambda f: (FAMILY_TABLE.get(f, 99), f))
    next_number = max(FAMILY_TABLE.values()) + 1
    for fam in families:
        number = FAMILY_TABLE.get(fam)
        if number is None:
            number, next_number = next_number, next_number + 1
        rows = [r for r in mia if (r.get("family") or "") == fam]
        what = f"{fam} models" if fam else "models"
        h, b = _pivot(rows, lambda r: with_chance(r["auc"], r["auc_std"], r["auc_null_q95"]))
        b.append(_best_row(rows, "auc", "best_auc_null_q95", _columns(rows)))
        if by_cell:
            b.append(_blind_row(by_cell, _columns(rows), "auc"))
        parts += ["", f"Table {number}a: MIA on {what}, AUC (%), mean ± std over subsamples; "
                      "(chance q) = 95th percentile of the same statistic under label "
                      "permutation at this sample size (50 = no signal on average)", "",
                  _md_table(h, b)]
        for target in sorted({r["target_fpr"] for r in rows}):
            sub = [r for r in rows if r["target_fpr"] == target]
            h, b = _pivot(sub, lambda r: with_chance(r["tpr_at_fpr"], r["tpr_at_fpr_std"],
                                                     r["tpr_null_q95"]))
            b.append(_best_row(sub, "tpr_at_fpr", "best_tpr_null_q95", _columns(sub)))
            if by_cell:
                b.append(_blind_row(by_cell, _columns(sub), "tpr_at_fpr"))
            parts += ["", f"Table {number}b: MIA on {what}, TPR@{100 * target:g}%FPR (%), "
                          f"mean ± std over subsamples; (chance q) as in {number}a "
                          f"({100 * target:g} = no signal on average)", "",
                      _md_table(h, b)]
    if di:
        # the primary (pre-declared) test of each cell first
        di = sorted(di, key=lambda r: (r["model"], r["data"], not r.get("primary")))
        body = [[r["model"], r["data"], r["aggregator"], _role_cell(r), _primary_cell(r),
                 _min_n_cell(r), "–" if r["alpha"] is None else f"{r['alpha']:g}",
                 _null_cell(r), _evidence_cell(r)] for r in di]
        parts += ["", f"Table {DI_TABLE}: dataset inference. Primary test = the one "
                      "pre-declared test on all of P against U (or on di.n): the claim. "
                      "Min n = smallest n of the grid with mean p-value ≤ alpha, a search "
                      "over many tests (exploratory, the paper's figure). Null FPR = rejection "
                      "rate with non-members as the suspect set, pooled over n (should be ≤ "
                      "alpha), with its upper 95% bound over pools", "",
                  _md_table(["Model", "Data", "Aggregator", "Role", "Primary test",
                             "# Samples (min n)", "alpha", "Null FPR", "Evidence"], body)]
    if not mia and not di:
        parts += ["", "(no MIA or DI results)"]
    return "\n".join(parts) + "\n"


CSV_COLUMNS = ["kind", "model", "data", "attack", "aggregator", "auc", "auc_std", "tpr_at_fpr",
               "tpr_at_fpr_std", "target_fpr", "selected_feature", "auc_null_q95",
               "tpr_null_q95", "best_auc_null_q95", "best_tpr_null_q95", "min_n", "max_n", "alpha",
               "null_fpr", "null_fpr_upper", "null_valid", "null_note", "primary",
               "primary_p_value", "primary_n", "primary_rejects", "primary_null_n",
               "primary_null_fpr", "primary_null_fpr_upper", "caveat", "auc_lcb", "gate_auc",
               "confounded", "evidence", "run_id"]


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if r.get(k) is None else
                    (repr(r[k]) if isinstance(r[k], float) else r[k]) for k in CSV_COLUMNS})
    return buf.getvalue()


def report(tracking_uri: str = "sqlite:///mlflow.db", experiment: str | None = None,
           fmt: str = "md", run: str | None = None) -> str:
    """Tables for one experiment (default: the one with the most recent finished harness run).

    ``run=None`` reads the latest finished suite run of the experiment, ``run="all"`` every
    finished child run (the newest per (model, data, attack) or (model, data, aggregator)), and
    any other value is taken as a parent (suite) run id.
    """
    if fmt not in ("md", "csv"):
        raise HarnessError(f"Unknown report format '{fmt}'. Available: csv, md")
    uri = normalize_uri(tracking_uri)
    db = _sqlite_path(uri)
    if db is not None and not db.is_file():  # MLflow would silently create an empty database
        raise HarnessError(f"No MLflow database at {db}. Pass --tracking-uri (the suite's "
                           "mlflow.tracking_uri), or log results first with `harness log DIR`.")
    client = _client(uri)
    exp = _pick_experiment(client, uri, experiment)
    scope, source = _scope(client, exp, run)
    ids = [exp.experiment_id]
    mia = _mia_rows(_search(client, ids, f"tags.kind = 'mia' AND {scope}"))
    di = _di_rows(_search(client, ids, f"tags.kind = 'di' AND {scope}"))
    blind = _blind_rows(_search(client, ids, f"tags.kind = 'blind' AND {scope}"))
    # no trailing newline: the CLI's echo adds one
    return (_csv(mia + di + blind) if fmt == "csv"
            else _markdown(mia, di, source, blind)).rstrip("\n")
