"""The log stage: copy a results directory written by the runner into MLflow.

Why a separate stage reading files, rather than logging while the suite runs:

- *No loss.* ``results.json`` and the score files are on disk before MLflow is touched. If the
  tracking store is unreachable or fails midway, the parent run is ended as FAILED, the results
  stay where they are, and :class:`TrackingError` says how to log them later (``harness log``).
  ``<results_dir>/mlflow.json`` is written only once everything is logged, so ``pending()`` (and
  ``harness log --pending``) finds every directory that still has to go in.
- *Single writer.* Only the process that calls :func:`log_results` writes to MLflow. A scale-out
  (Ray or a cluster) must keep it that way: workers write results directories, one driver logs
  them. Several processes opening one ``sqlite:///`` file race on schema migration and lock the
  database (mlflow#6490, hydraflow#245).
- *Idempotent.* Logging an already-logged directory does nothing unless ``force=True``; each parent
  run carries a content hash of ``results.json`` (tag ``harness.results_id``), so a crash between
  the last MLflow call and writing ``mlflow.json`` does not produce a duplicate on retry either.

Layout: one parent run per results directory (tag ``kind=suite``; suite YAML, resolved config and
plugin versions as artifacts), one nested child per MIA cell (``kind=mia``), per DI result
(``kind=di``) and per cell's blind baseline (``kind=blind``). Tag names are the dimensions
``harness report`` pivots on.

mlflow is imported inside functions only: importing it costs seconds.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import posixpath
import re
import socket
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

from . import atomic
from .errors import DataError, HarnessError

MARKER = "mlflow.json"

# Limits of mlflow.utils.validation (3.x). Params are cut at 500 characters, not at 3.x's 6000,
# because older tracking servers and clients reject anything longer; the full parameters are
# always logged as a JSON artifact as well.
_PARAM_VALUE_MAX = 500
_TAG_VALUE_MAX = 5000
_KEY_MAX = 250
_PARAMS_TAGS_PER_BATCH = 100
_METRICS_PER_BATCH = 1000
_NAME_OK = re.compile(r"^[/\w.\- ]*$")
_NAME_BAD_CHARS = re.compile(r"[^\w.\- ]")  # "/" is bad inside a component: it would nest


class TrackingError(HarnessError):
    """Logging to MLflow failed; the results are still on disk and can be logged later."""


# ---------------------------------------------------------------------------------------------
# names and values MLflow accepts


def _path_ambiguous(key: str) -> bool:
    norm = posixpath.normpath(key)
    return norm != key or norm == "." or norm.startswith("..") or norm.startswith("/")


def sanitize_component(name: str) -> str:
    """One path component of a metric/param key: characters outside ``[\\w.\\- ]`` (``:``, ``%``,
    ``=``, ``@``, ``/``...) become ``_``; "." and ".." (which would make the key path-ambiguous)
    get a leading ``_``."""
    out = _NAME_BAD_CHARS.sub("_", str(name)).strip()
    if out in ("", ".", ".."):
        out = "_" + out
    return out


def _fit_key(key: str) -> str:
    """Keys over MLflow's length limit keep their start and get a short hash of the full key."""
    if len(key) <= _KEY_MAX:
        return key
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return key[: _KEY_MAX - 9].rstrip("/") + "-" + digest


def metric_key(*parts: str) -> str:
    """``feature/<name>/auc`` with every part sanitised and the whole key checked against MLflow's
    rules, so a feature called ``min-k:k=0.2`` can never fail a log call halfway through a run."""
    key = _fit_key("/".join(sanitize_component(p) for p in parts))
    if not _NAME_OK.match(key) or _path_ambiguous(key):  # pragma: no cover - by construction
        raise ValueError(f"cannot build a valid MLflow key from {parts!r}")
    return key


def _truncate(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _param_value(value) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, (bool, int, float)) or value is None:
        text = str(value)
    else:
        text = json.dumps(value, sort_keys=True, default=str)
    return _truncate(text, _PARAM_VALUE_MAX)


def flatten_params(params: dict, prefix: str = "") -> dict[str, str]:
    """Nested dicts become dotted keys (``schedule.t_max``); lists and other values are
    stringified (JSON for containers) and cut to a length every MLflow server accepts."""
    flat: dict[str, str] = {}
    for k, v in (params or {}).items():
        key = f"{prefix}{sanitize_component(k)}"
        if isinstance(v, dict) and v:
            flat.update(flatten_params(v, prefix=key + "."))
        else:
            flat[_fit_key(key)] = _param_value(v)
    return flat


def _unique_names(names: list[str]) -> list[str]:
    """Sanitised names, with ``_2``, ``_3``... when two originals sanitise to the same text."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        s = sanitize_component(n)
        if s in seen:
            seen[s] += 1
            s = f"{s}_{seen[s]}"
        seen.setdefault(s, 1)
        out.append(s)
    return out


def fpr_key(target_fpr: float) -> str:
    """``tpr_at_fpr_0.01``: ``tpr@1%fpr`` is not a valid MLflow name (``@``, ``%``)."""
    return f"tpr_at_fpr_{target_fpr:g}"


# ---------------------------------------------------------------------------------------------
# tracking URI handling


def normalize_uri(tracking_uri: str) -> str:
    """Make relative sqlite paths absolute: ``sqlite:///mlflow.db`` means a different database in
    every working directory, and ``mlflow.json`` must say which one was used."""
    if tracking_uri.startswith("sqlite:///") and not tracking_uri.startswith("sqlite:////"):
        rel = unquote(tracking_uri[len("sqlite:///"):])
        if rel and rel != ":memory:":
            return "sqlite:///" + str(Path(rel).resolve())
    return tracking_uri


def _sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        rel = unquote(uri[len("sqlite:///"):])
        return None if rel in ("", ":memory:") else Path(rel)
    return None


def _preflight(uri: str) -> None:
    """Fail in seconds, with a message that says what to fix, where MLflow would either create a
    database in a directory that is not there (a network share that is not mounted: the runs
    would land in a local shadow copy) or retry an unreachable server for minutes."""
    db = _sqlite_path(uri)
    if db is not None:
        if not db.parent.is_dir():
            raise OSError(f"the directory of the sqlite database, {db.parent}, does not exist "
                          "(create it, or fix the tracking URI)")
        if db.exists() and not db.is_file():
            raise OSError(f"{db} is not a file")
        return
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname, port), timeout=5).close()
        except OSError as exc:
            raise OSError(f"cannot reach the MLflow server {parsed.hostname}:{port} ({exc}); "
                          "start it (`mlflow server --port …`) or fix the tracking URI") from exc


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts of a sqlite store go next to the database file (``<db dir>/mlartifacts``), not
    into ``./mlruns`` of whatever directory the process happened to start in (MLflow's default),
    which would scatter them and can make ``mlflow ui`` mistake the folder for a file store."""
    db = _sqlite_path(uri)
    if db is None:
        return None
    return (db.resolve().parent / "mlartifacts" / sanitize_component(experiment)).as_uri()


#: MLflow 3's UI opens an experiment on the GenAI overview ("Traces 0") unless this tag says
#: what kind of work it holds; "custom_model_development" opens it on the runs table.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
UI_PORT = 5000


def _experiment_id(client, uri: str, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise HarnessError(
                f"MLflow experiment '{name}' is deleted; restore it (`mlflow experiments restore "
                f"--experiment-id {exp.experiment_id}`) or log under another name (--experiment)")
        if EXPERIMENT_KIND[0] not in exp.tags:
            client.set_experiment_tag(exp.experiment_id, *EXPERIMENT_KIND)
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=_artifact_location(uri, name),
                                        tags=dict([EXPERIMENT_KIND]))
    except Exception:
        exp = client.get_experiment_by_name(name)  # created meanwhile by another process
        if exp is None:
            raise
        return exp.experiment_id


def ui_command(uri: str, port: int = UI_PORT) -> str:
    """The command that serves this store's UI (artifacts are read from beside the store)."""
    uri = normalize_uri(uri)
    if uri.startswith(("http://", "https://")):
        return ""
    return f"mlflow ui --backend-store-uri '{uri}' --port {port}"


#: MLflow's UI opens a runs table with stored filters, sort and columns when its URL carries
#: ``viewStateShareKey=KEY`` and the experiment has the tag ``mlflow.sharedViewState.KEY`` (what
#: its "Share" button writes). Columns cannot be chosen by URL parameters, so the leaderboard is
#: such a stored view, written by every ``log_results``.
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
LEADERBOARD_KEY = "harness-leaderboard"


def leaderboard_view(target_fpr: float = 0.01) -> dict:
    """The stored view: MIA cells, best AUC first, the metrics with their chance levels."""
    tkey = fpr_key(target_fpr)
    cols = [f"metrics.`{m}`" for m in ("auc", tkey, "auc_null_q95", "tpr_null_q95")]
    cols += [f"tags.`{t}`" for t in ("family", "model", "data", "attack")]
    cols += [f"params.`{p}`" for p in ("n_members", "n_nonmembers")]
    return {"searchFilter": 'tags.kind = "mia"', "orderByKey": "metrics.`auc`",
            "orderByAsc": False, "startTime": "ALL", "lifecycleFilter": "Active",
            "selectedColumns": cols}


def _set_leaderboard_view(client, exp_id: str, res: dict) -> None:
    target = float(next((e.get("target_fpr") for e in res["mia"] if e.get("target_fpr")), 0.01))
    client.set_experiment_tag(exp_id, SHARED_VIEW_PREFIX + LEADERBOARD_KEY,
                              json.dumps(leaderboard_view(target)))


def leaderboard_url(uri: str, experiment_id: str, port: int = UI_PORT) -> str:
    """The experiment's runs table opened on the stored leaderboard view (``leaderboard_view``);
    only the share key is in the URL, since the UI ignores a stored view when the URL also
    carries filters."""
    uri = normalize_uri(uri)
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else \
        f"http://127.0.0.1:{port}"
    return f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey={LEADERBOARD_KEY}"


# ---------------------------------------------------------------------------------------------
# reading a results directory


def _load_results(results_dir: Path) -> dict:
    path = results_dir / "results.json"
    if not path.is_file():
        raise DataError(f"{results_dir} is not a results directory: {path} is missing "
                        "(`harness run` writes it)")
    try:
        res = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if res.get("schema") != 1:
        raise DataError(f"{path}: schema {res.get('schema')!r} is not supported by this harness "
                        "version (expected 1); log it with the harness version that wrote it")
    for key in ("suite_name", "mia", "di"):
        if key not in res:
            raise DataError(f"{path}: required key '{key}' is missing")
    for entry in res["mia"]:
        rel = entry.get("scores_file")
        if rel and not (results_dir / rel).is_file():
            raise DataError(f"{path}: MIA result {entry.get('model')}/{entry.get('data')}/"
                            f"{entry.get('attack')} refers to {rel}, which is missing in "
                            f"{results_dir}")
    return res


def _results_id(results_dir: Path) -> str:
    return hashlib.sha256((results_dir / "results.json").read_bytes()).hexdigest()[:20]


def _read_marker(results_dir: Path) -> dict | None:
    try:
        return json.loads((results_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None


def pending(output_root: str | os.PathLike) -> list[Path]:
    """Results directories under ``output_root`` (searched recursively) not yet logged to MLflow.
    Half-written directories of the atomic writer (``.tmp-*``, ``.old-*``) are skipped."""
    root = Path(output_root)
    found = []
    for res in root.rglob("results.json"):
        d = res.parent
        if any(part.startswith(".") for part in d.relative_to(root).parts):
            continue
        if not (d / MARKER).is_file():
            found.append(d)
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# writing


def _now_ms() -> int:
    return int(time.time() * 1000)


def _log_batch(client, run_id: str, metrics=(), params=None, tags=None) -> None:
    """MLflow caps one batch at 100 params+tags and 1000 metrics; split accordingly."""
    from mlflow.entities import Metric, Param, RunTag

    items = [Param(k, v) for k, v in (params or {}).items()]
    items += [RunTag(k, _truncate(str(v), _TAG_VALUE_MAX)) for k, v in (tags or {}).items()]
    for i in range(0, len(items), _PARAMS_TAGS_PER_BATCH):
        chunk = items[i:i + _PARAMS_TAGS_PER_BATCH]
        client.log_batch(run_id, params=[x for x in chunk if isinstance(x, Param)],
                         tags=[x for x in chunk if isinstance(x, RunTag)])
    ts = _now_ms()
    ms = [Metric(k, float(v), ts, int(step)) for k, v, step in metrics]
    for i in range(0, len(ms), _METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=ms[i:i + _METRICS_PER_BATCH])


def _num(v) -> float | None:
    """A loggable metric value, or None for absent ones (never log None as 0)."""
    if v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _requirements(plugins: list[dict]) -> str:
    """``distribution==version`` lines, one per installed distribution that provides plugins (like
    ``datasette plugins --requirements``), so ``pip install -r`` rebuilds the plugin set."""
    lines = set()
    for p in plugins:
        dist = p.get("distribution") or p.get("name")
        if not dist:
            continue
        lines.add(f"{dist}=={p['version']}" if p.get("version") else str(dist))
    return "".join(f"{line}\n" for line in sorted(lines))


def _scores_csv(path: Path, scores: dict) -> None:
    """id, membership (1 = member), score, then the per-feature scores when the runner kept them."""
    import csv
    import io

    names = [str(n) for n in scores.get("feature_names", [])] if "member_features" in scores else []
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "membership", "score"] + names)
    for label, prefix in ((1, "member"), (0, "nonmember")):
        ids = scores[f"{prefix}_ids"]
        vals = scores[f"{prefix}_scores"]
        feats = scores.get(f"{prefix}_features") if names else None
        for i in range(len(ids)):
            sample_id = ids[i].item() if hasattr(ids[i], "item") else ids[i]
            row = [sample_id, label, repr(float(vals[i]))]
            if feats is not None:
                row += [repr(float(x)) for x in feats[i]]
            w.writerow(row)
    atomic.write_text(path, buf.getvalue())


def _load_scores(path: Path) -> dict:
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            scores = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read the score file {path}: {exc}") from exc
    missing = {"member_ids", "nonmember_ids", "member_scores", "nonmember_scores"} - set(scores)
    if missing:
        raise DataError(f"score file {path} lacks arrays {sorted(missing)}")
    return scores


def _child_tags(parent_id: str, **tags) -> dict:
    out = {"mlflow.parentRunId": parent_id}
    out.update({k: "" if v is None else str(v) for k, v in tags.items()})
    return out


@contextlib.contextmanager
def _child_run(client, exp_id: str, name: str, tags: dict, stage: Path):
    """A nested run that ends FINISHED after the block, or FAILED (and re-raises) if it fails.
    Yields (run id, an empty staging folder whose files are logged as its artifacts)."""
    run_id = client.create_run(exp_id, run_name=name, tags=tags).info.run_id
    try:
        art = stage / run_id
        art.mkdir()
        yield run_id, art
        client.log_artifacts(run_id, str(art))
    except BaseException:
        _fail(client, run_id)
        raise
    client.set_terminated(run_id, "FINISHED")


def _training_metrics(training: dict, model: str) -> list:
    """The model's training summary (canaries) as ``train.*`` metrics of each of its runs."""
    return [(f"train.{k}", _num(v), 0) for k, v in (training.get(model) or {}).items()
            if _num(v) is not None]


def _log_mia(client, exp_id: str, parent_id: str, results_dir: Path, entry: dict,
             stage: Path, training: dict | None = None) -> str:
    target = float(entry.get("target_fpr", 0.01))
    tkey = fpr_key(target)
    name = f"{entry['model']} × {entry['data']} × {entry['attack']}"
    tags = _child_tags(parent_id, kind="mia", model=entry["model"], attack=entry["attack"],
                       family=entry.get("family"), data=entry["data"], plugin=entry.get("plugin"),
                       selected_feature=entry.get("selected_feature"),
                       **_confounded_tag(entry))
    with _child_run(client, exp_id, name, tags, stage) as (run_id, art):
        params = {k: str(entry.get(k)) for k in ("n_members", "n_nonmembers", "target_fpr")}
        if entry.get("selection") is not None:  # how selected_feature was chosen
            params["selection"] = _param_value(entry["selection"])
        if entry.get("null_permutations") is not None:
            params["null_permutations"] = str(entry["null_permutations"])
        for k, v in flatten_params(entry.get("params") or {}).items():
            params[k if k not in params else f"attack.{k}"] = v
        metrics = [(k, _num(entry.get(src)), 0) for k, src in (
            ("auc", "auc"), ("auc_std", "auc_std"), (tkey, "tpr_at_fpr"),
            (f"{tkey}_std", "tpr_at_fpr_std"), ("auc_null_q95", "auc_null_q95"),
            ("tpr_null_q95", "tpr_null_q95"),
            ("best_of_cell_auc_null_q95", "best_of_cell_auc_null_q95"),
            ("best_of_cell_tpr_null_q95", "best_of_cell_tpr_null_q95"))]
        metrics += _training_metrics(training or {}, entry["model"])
        cov = entry.get("coverage") or {}
        metrics += [(k, _num(cov.get(k)), 0) for k in ("coverage_mean", "padded_fraction")
                    if k in cov]
        per_feature = entry.get("per_feature") or []
        safe = _unique_names([f["name"] for f in per_feature])
        for f, s in zip(per_feature, safe):
            for suffix, src in (("auc", "auc"), ("auc_std", "auc_std"), (tkey, "tpr"),
                                (f"{tkey}_std", "tpr_std")):
                metrics.append((metric_key("feature", s, suffix), _num(f.get(src)), 0))
        _log_batch(client, run_id, [m for m in metrics if m[1] is not None], params=params)

        atomic.write_json(art / "params.json", entry.get("params") or {})
        atomic.write_json(art / "per_feature.json",
                          [dict(f, metric_name=s) for f, s in zip(per_feature, safe)])
        if entry.get("scores_file"):
            from .plots import roc_plot

            scores = _load_scores(results_dir / entry["scores_file"])
            roc_plot(art / "roc.png", scores["member_scores"], scores["nonmember_scores"],
                     title=name, target_fpr=target)
            _scores_csv(art / "scores.csv", scores)
    return run_id


def _di_tags(entry: dict) -> dict:
    """Primary (the pre-declared test, the claim) or exploratory; the plugin's caveat (e.g. the
    reference code's over-rejecting test); what the null control could not measure."""
    tags = {"primary": "true" if entry.get("primary") else "false"}
    if entry.get("caveat"):
        tags["caveat"] = str(entry["caveat"])[:1000]
    if entry.get("null_note"):
        tags["null_note"] = str(entry["null_note"])[:1000]
    first = entry.get("primary_test") or {}
    if first.get("null_note"):
        tags["primary_null_note"] = str(first["null_note"])[:1000]
    return tags


def _di_null_metrics(entry: dict, null_per_n: list[dict]) -> list:
    """The null control per n (``null_fpr``, ``null_valid``, ``null_fpr_upper`` with step = n;
    only n where a valid test ran have a rate), pooled over n (``null_fpr_pooled``,
    ``null_valid_total``, ``null_fpr_pooled_upper``), and the primary test with the null at its
    n (``primary_*``)."""
    out = [("null_fpr_pooled", _num(entry.get("null_fpr")), 0),
           ("null_fpr_pooled_upper", _num(entry.get("null_fpr_upper")), 0),
           ("null_valid_total", _num(entry.get("null_valid")), 0)]
    for r in null_per_n:
        out += [("null_valid", _num(r.get("valid")), r["n"]),
                ("null_fpr", _num(r.get("fpr")), r["n"]),
                ("null_fpr_upper", _num(r.get("fpr_upper")), r["n"])]
    first = entry.get("primary_test")
    if first:
        out += [("primary_p_value", _num(first.get("p_value")), 0),
                ("primary_n", _num(first.get("n")), 0),
                ("primary_rejects", float(bool(first.get("rejects"))), 0),
                ("primary_null_n", _num(first.get("null_n")), 0),
                ("primary_null_fpr", _num(first.get("null_fpr")), 0),
                ("primary_null_valid", _num(first.get("null_valid")), 0),
                ("primary_null_fpr_upper", _num(first.get("null_fpr_upper")), 0)]
    return out


def _log_di(client, exp_id: str, parent_id: str, entry: dict, stage: Path,
            training: dict | None = None) -> str:
    name = f"{entry['model']} × {entry['data']} × DI {entry['aggregator']}"
    # ``family`` is the model's family on every child run (MIA and DI alike); the aggregator's
    # own family ("any" for a general one) is its own tag
    tags = _child_tags(parent_id, kind="di", model=entry["model"], aggregator=entry["aggregator"],
                       family=entry.get("model_family") or entry.get("family"),
                       aggregator_family=entry.get("family"), data=entry["data"],
                       plugin=entry.get("plugin"), **_di_tags(entry), **_confounded_tag(entry),
                       **({"evidence": entry["evidence"]} if entry.get("evidence") else {}))
    with _child_run(client, exp_id, name, tags, stage) as (run_id, art):
        per_n = entry.get("per_n") or []
        null_per_n = entry.get("null_per_n") or []
        params = {"alpha": str(entry.get("alpha")), "draws": str(entry.get("draws")),
                  "n_grid": _param_value([r["n"] for r in per_n]),
                  "features": _param_value(list(entry.get("features") or []))}
        for k, v in flatten_params(entry.get("params") or {}).items():
            params[k if k not in params else f"aggregator.{k}"] = v
        metrics = [(k, _num(entry.get(k)), 0) for k in ("min_n", "min_n_frac")]
        metrics += _di_null_metrics(entry, null_per_n)
        if per_n:
            metrics.append(("max_n", max(r["n"] for r in per_n), 0))
        metrics += _training_metrics(training or {}, entry["model"])
        for rows, prefix in ((per_n, ""), (null_per_n, "null_")):
            for r in rows:
                metrics += [(f"{prefix}p_value", _num(r.get("mean_p")), r["n"]),
                            (f"{prefix}median_p_value", _num(r.get("median_p")), r["n"]),
                            (f"{prefix}frac_reject", _num(r.get("frac_reject")), r["n"])]
        _log_batch(client, run_id, [m for m in metrics if m[1] is not None], params=params)

        atomic.write_json(art / "params.json", entry.get("params") or {})
        atomic.write_json(art / "per_n.json", {
            "alpha": entry.get("alpha"), "per_n": per_n, "null_per_n": null_per_n,
            "null_skipped": entry.get("null_skipped") or [], "null_note": entry.get("null_note"),
            "primary_test": entry.get("primary_test")})
        if per_n:
            from .plots import pvalue_plot

            pvalue_plot(art / "pvalue_vs_n.png", per_n, alpha=float(entry.get("alpha", 0.01)),
                        null_per_n=null_per_n, title=name, min_n=entry.get("min_n"))
    return run_id


def _confounded_tag(entry: dict) -> dict:
    """``confounded=true|false`` where the blind baseline ran (absent otherwise)."""
    c = entry.get("confounded")
    return {} if c is None else {"confounded": "true" if c else "false"}


def _log_blind(client, exp_id: str, parent_id: str, results_dir: Path, entry: dict,
               stage: Path) -> str:
    """One child run per cell for the model-free baseline (``kind=blind``)."""
    target = float(entry.get("target_fpr", 0.01))
    tkey = fpr_key(target)
    name = f"{entry['model']} × {entry['data']} × blind"
    tags = _child_tags(parent_id, kind="blind", model=entry["model"], data=entry["data"],
                       family=entry.get("family"), plugin=entry.get("plugin"),
                       **_confounded_tag(entry))
    with _child_run(client, exp_id, name, tags, stage) as (run_id, art):
        params = {k: str(entry.get(k)) for k in ("n_members", "n_nonmembers", "target_fpr",
                                                  "classifier", "folds", "repeats", "gate_auc",
                                                  "confidence", "n_features")}
        for k, v in flatten_params(entry.get("params") or {}).items():
            params[k if k not in params else f"baseline.{k}"] = v
        metrics = [(k, _num(entry.get(src)), 0) for k, src in (
            ("auc", "auc"), ("auc_se", "auc_se"), ("auc_lcb", "auc_lcb"), (tkey, "tpr_at_fpr"),
            ("auc_null_q95", "auc_null_q95"), ("tpr_null_q95", "tpr_null_q95"))]
        _log_batch(client, run_id, [m for m in metrics if m[1] is not None], params=params)
        atomic.write_json(art / "top_features.json", entry.get("top_features") or [])
        if entry.get("scores_file"):
            from .plots import roc_plot

            scores = _load_scores(results_dir / entry["scores_file"])
            roc_plot(art / "roc.png", scores["member_scores"], scores["nonmember_scores"],
                     title=name, target_fpr=target)
    return run_id


def _log_overview(client, parent_id: str, uri: str, experiment: str, results_dir: Path,
                  res: dict, stage: Path) -> None:
    """The parent run's own artifacts: the report (markdown and CSV, as `harness report` prints
    it for this run) and summary figures (one ROC per cell with every attack, one p-value vs n
    per DI result), so the suite's outcome is on the run the UI lists first."""
    from .plots import pvalue_plot, roc_summary_plot
    from .report import report

    art = stage / f"{parent_id}-overview"
    for fmt in ("md", "csv"):
        atomic.write_text(art / "report" / f"report.{fmt}",
                          report(uri, experiment, fmt=fmt, run=parent_id) + "\n")
    cells: dict[tuple, list] = {}
    for entry in res["mia"]:
        if entry.get("scores_file"):
            cells.setdefault((entry["model"], entry["data"]), []).append(entry)
    for (model, data), entries in cells.items():
        curves = []
        for e in entries:
            sc = _load_scores(results_dir / e["scores_file"])
            curves.append((e["attack"], sc["member_scores"], sc["nonmember_scores"]))
        roc_summary_plot(art / "figures" / f"roc {sanitize_component(model)} × "
                         f"{sanitize_component(data)}.png", curves, title=f"{model} × {data}",
                         target_fpr=float(entries[0].get("target_fpr", 0.01)))
    for e in res["di"]:
        if e.get("per_n"):
            pvalue_plot(art / "figures" / f"pvalue {sanitize_component(e['model'])} × "
                        f"{sanitize_component(e['data'])} × "
                        f"{sanitize_component(e['aggregator'])}.png", e["per_n"],
                        alpha=float(e.get("alpha", 0.01)), null_per_n=e.get("null_per_n"),
                        title=f"{e['model']} × {e['data']} × DI {e['aggregator']}",
                        min_n=e.get("min_n"))
    client.log_artifacts(parent_id, str(art))


def _find_logged(client, exp_id: str, results_id: str) -> str | None:
    runs = client.search_runs(
        [exp_id], filter_string=f"tags.kind = 'suite' AND tags.`harness.results_id` = "
                                f"'{results_id}' AND attributes.status = 'FINISHED'",
        max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id if runs else None


#: seconds a process waits for another one logging to the same sqlite store
LOCK_TIMEOUT = 600.0


@contextlib.contextmanager
def store_lock(uri: str):
    """Exclusive access to a sqlite store while logging (a lock file next to the database).
    Two first runs creating one database at once otherwise both run MLflow's schema migration
    and can leave it half-migrated (``_alembic_tmp_*`` tables), failing every later log. The
    lock is an OS file lock: a killed process releases it."""
    db = _sqlite_path(uri)
    if db is None:
        yield
        return
    from filelock import FileLock, Timeout

    lock = FileLock(str(db) + ".lock", timeout=LOCK_TIMEOUT)
    try:
        lock.acquire()
    except Timeout:
        raise TrackingError(f"another process has been logging to {db} for more than "
                            f"{LOCK_TIMEOUT:g} s (lock file {lock.lock_file}); wait for it to "
                            "finish") from None
    try:
        yield
    finally:
        lock.release()


def _suite_experiment(res: dict) -> str:
    """The experiment a run's suite asked for (``mlflow.experiment``), else the suite name."""
    cfg = (res.get("resolved_config") or {}).get("mlflow") or {}
    return cfg.get("experiment") or res["suite_name"]


def log_results(results_dir: str | os.PathLike, tracking_uri: str = "sqlite:///mlflow.db",
                experiment: str | None = None, force: bool = False) -> str:
    """Log one results directory (one ``harness run``) to MLflow; returns the parent run id.

    Does nothing (returns the recorded run id) when ``mlflow.json`` says the directory is already
    in this store and experiment, or when the store already holds a finished parent run with the
    same ``results.json`` content; ``force=True`` logs another copy (e.g. after deleting the
    database).

    The tracking URI is always the one given here (relative sqlite paths resolved against the
    working directory), never MLflow's environment default. ``experiment`` defaults to the
    suite's ``mlflow.experiment``, else its name. Writers to one sqlite store take turns
    (:func:`store_lock`).
    Raises :class:`TrackingError` (results kept on disk) when the store cannot be written, and
    :class:`~harness.errors.DataError` when the directory itself is not a valid results directory.
    """
    results_dir = Path(results_dir)
    res = _load_results(results_dir)
    uri = normalize_uri(tracking_uri)
    experiment = experiment or _suite_experiment(res)
    marker = _read_marker(results_dir)
    if (marker and not force and marker.get("parent_run_id")
            and normalize_uri(marker.get("tracking_uri", "")) == uri
            and marker.get("experiment") == experiment):
        return marker["parent_run_id"]

    results_id = _results_id(results_dir)
    later = f"harness log {results_dir} --tracking-uri '{tracking_uri}'"
    if experiment != _suite_experiment(res):
        later += f" --experiment '{experiment}'"
    parent_id = None
    client = None
    quiet = _quiet_urls()
    try:
        _preflight(uri)
        with store_lock(uri):
            client = _client(uri)
            exp_id = _experiment_id(client, uri, experiment)
            existing = None if force else _find_logged(client, exp_id, results_id)
            if existing:
                parent_id = existing
            else:
                stamp = res.get("started") or ""
                run_name = f"{res['suite_name']} {stamp}".strip()
                tags = {"kind": "suite", "suite": res["suite_name"],
                        "harness_version": res.get("harness_version") or "",
                        "harness.results_id": results_id,
                        "results_dir": str(results_dir.resolve()),
                        "mlflow.note.content": (
                            f"Suite '{res['suite_name']}' run by audio-mia-harness "
                            f"{res.get('harness_version')}, started {res.get('started')}. Results "
                            f"directory: {results_dir.resolve()}. Child runs: one per MIA cell "
                            "(kind=mia) and per dataset-inference result (kind=di).")}
                if res.get("git_commit"):
                    tags["mlflow.source.git.commit"] = res["git_commit"]
                parent = client.create_run(exp_id, run_name=run_name, tags=tags)
                parent_id = parent.info.run_id
                _log_batch(client, parent_id, params={
                    "n_mia": str(len(res["mia"])), "n_di": str(len(res["di"])),
                    "started": str(res.get("started")), "finished": str(res.get("finished"))})
                with tempfile.TemporaryDirectory(prefix="harness-mlflow-") as tmp:
                    stage = Path(tmp)
                    suite_art = stage / "suite"
                    atomic.write_text(suite_art / "suite.yaml", res.get("suite_yaml") or "")
                    atomic.write_json(suite_art / "resolved_config.json",
                                      res.get("resolved_config") or {})
                    atomic.write_text(suite_art / "plugins.txt",
                                      _requirements(res.get("plugins", [])))
                    atomic.write_json(suite_art / "plugins.json", res.get("plugins", []))
                    (suite_art / "results.json").write_bytes((results_dir / "results.json")
                                                             .read_bytes())
                    client.log_artifacts(parent_id, str(suite_art))
                    for entry in res["mia"]:
                        _log_mia(client, exp_id, parent_id, results_dir, entry, stage,
                                 res.get("training"))
                    for entry in res["di"]:
                        _log_di(client, exp_id, parent_id, entry, stage, res.get("training"))
                    for entry in res.get("blind") or []:
                        _log_blind(client, exp_id, parent_id, results_dir, entry, stage)
                    _log_overview(client, parent_id, uri, experiment, results_dir, res, stage)
                client.set_terminated(parent_id, "FINISHED")
            _set_leaderboard_view(client, exp_id, res)
    except DataError:
        _fail(client, parent_id)
        raise
    except Exception as exc:
        _fail(client, parent_id)
        if isinstance(exc, HarnessError) and not isinstance(exc, TrackingError):
            detail = str(exc)
        else:
            detail = f"{type(exc).__name__}: {_first_line(exc)}"
        raise TrackingError(
            f"Could not log to MLflow at {tracking_uri}: {detail}\n"
            f"The results are kept at {results_dir}; log them later with `{later}`.") from exc
    except BaseException:  # KeyboardInterrupt: never leave a RUNNING parent behind
        _fail(client, parent_id)
        raise
    finally:
        quiet()
    atomic.write_json(results_dir / MARKER, {
        "tracking_uri": uri, "experiment": experiment, "experiment_id": exp_id,
        "parent_run_id": parent_id,
        "logged_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    return parent_id


def _quiet_urls():
    """MLflow prints "View run ... at <url>" to stdout for every run it ends on a tracking server:
    one line per cell would bury the console summary of ``harness run``. Silenced while logging
    (unless the user set the variable); returns the function that restores the environment."""
    key = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
    if key in os.environ:
        return lambda: None
    os.environ[key] = "true"
    return lambda: os.environ.pop(key, None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else ""


def _fail(client, run_id: str | None) -> None:
    """End a run as FAILED so that it never shows as RUNNING (nor in ``harness report``)."""
    if client is None or run_id is None:
        return
    try:
        client.set_terminated(run_id, "FAILED")
    except Exception:  # the store is what failed: nothing more to do, the message says so
        pass
