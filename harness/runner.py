"""Run a suite in four visible stages: extract → score → evaluate → log.

- extract: per (model, data) cell, the runner gathers the needs of every attack and asks the model
  for each distinct output once per batch; each attack turns the shared outputs into features,
  written batch by batch to the feature cache (resumable).
- score: features are oriented (higher = member) and each attack becomes one MIA score (best index
  chosen on held-out halves, IAR's in-sample best index, or cross-fitted LR), per-sample scores
  saved.
- evaluate: AUC / TPR@FPR with subsample std and their chance band under label permutation (per
  attack and for the best over the cell's attacks); DI aggregators over all the cell's features, with a
  null control.
- log: ``results.json`` is written first; only then is MLflow touched (single writer), so an
  unreachable tracking server loses nothing.

Extraction can also happen elsewhere first (``harness.executors``: Ray tasks per shard of each
cell, or ``harness run --shard i/k`` under a scheduler, both via ``harness.extract``); the loop
below then finds every feature in the cache and makes no model pass, while this process alone
scores, evaluates and logs.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__, atomic, plugins
from .batching import AutoBatch, batch_size_for, is_oom
from .blind import CONFOUNDED_TEXT, evidence_class
from .cache import FeatureCache, sample_hash
from .contracts import Attack, BatchContext, FeatureSpec, Model, Sample
from .errors import ConfigError, HarnessError
from .progress import stderr_echo as _stderr
from .shards import Shard, canonical_batches
from .suite import DEFAULT_PRIMARY, Suite

Echo = Callable[[str], None]
#: ``progress(n_samples, computed)``: samples found in the cache (False) or just computed (True)
Progress = Callable[[int, bool], None]




@dataclass
class AttackRun:
    label: str
    plugin: str
    attack: Attack
    specs: list[FeatureSpec]
    selection: str
    params: dict


@dataclass
class CellData:
    members: list[Sample]
    nonmembers: list[Sample]
    member_hashes: dict[str, str]
    nonmember_hashes: dict[str, str]
    refs: dict = field(default_factory=dict)


@contextmanager
def _env(key: str, value: str | None):
    old = os.environ.get(key)
    if value is not None:
        os.environ[key] = value
    try:
        yield
    finally:
        if value is not None:
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


# ---------------------------------------------------------------------------------------------
# instantiation


def make_model(name: str, suite: Suite) -> tuple[Model, plugins.PluginInfo]:
    entry = suite.models[name]
    info = plugins.get("model", entry.plugin)
    cls = info.load()
    model = cls(device=suite.device, **entry.params)
    model.registered_name = entry.plugin
    return model, info


def make_attacks(suite: Suite, model_name: str, model: Model, family: str) -> list[AttackRun]:
    runs = []
    provided = model.outputs()
    for entry in suite.attacks:
        if entry.models is not None and model_name not in entry.models:
            continue
        info = plugins.get("attack", entry.plugin)
        if info.family not in ("any", family):
            continue
        attack = info.load()(**entry.params)
        attack.registered_name = entry.plugin
        missing = set(attack.needs()) - provided
        if missing:
            raise ConfigError(
                f"attack '{entry.label}' needs model outputs {sorted(missing)} that model "
                f"'{model.registered_name}' does not provide (it provides {sorted(provided)}). "
                "Check the attack's params (e.g. mode: conditional for models without a null "
                "condition) or restrict the attack to other models with its 'models' key."
            )
        specs = list(attack.feature_specs())
        runs.append(AttackRun(entry.label, entry.plugin, attack, specs,
                              entry.selection or suite.mia.selection, dict(attack.params)))
    return runs


# ---------------------------------------------------------------------------------------------
# data


def _count(entry, side: str, available: int, data_name: str) -> int | None:
    """How many samples of ``side`` to use: the suite's count (an error if the source has
    fewer: a silent shortfall would change what the AUC means), capped by ``--limit``."""
    key = f"n_{side}"
    n = getattr(entry, key)
    if isinstance(n, int) and n > available:
        raise ConfigError(f"data.{data_name}.{key}: {n} requested but the source has "
                          f"{available}; lower it, or write '{key}: all' to use every sample")
    n = None if n in (None, "all") else n
    if entry.limit is not None:
        n = min(entry.limit, n if n is not None else entry.limit)
    return n


def load_cell_data(suite: Suite, data_name: str, echo: Echo) -> CellData:
    """Resolve, subset and check one data entry: every file is read and checked (format,
    truncation, finite, not silent, long enough) here, before any model loads."""
    from .datasets import resolve, subset as _subset
    from .errors import DataError
    from .inputs import check_files

    entry = suite.data[data_name]
    refs = {"members": entry.members.as_ref(), "nonmembers": entry.nonmembers.as_ref()}
    picked = {}
    for side in ("members", "nonmembers"):
        try:
            samples = resolve(refs[side])
        except DataError as exc:
            raise type(exc)(f"data.{data_name}.{side}: {exc}") from None
        picked[side] = _subset(samples, _count(entry, side, len(samples), data_name),
                               suite.seed, side)
    members, nonmembers = picked["members"], picked["nonmembers"]
    if len(members) < 2 or len(nonmembers) < 2:
        raise HarnessError(f"data '{data_name}' has {len(members)} members and {len(nonmembers)} "
                           "non-members; at least 2 of each are needed")
    for side, samples in (("members", members), ("nonmembers", nonmembers)):
        ids = [s.id for s in samples]
        if len(set(ids)) != len(ids):
            raise HarnessError(f"data '{data_name}' {side}: sample ids are not unique")
    t0 = time.perf_counter()
    for side, samples in (("members", members), ("nonmembers", nonmembers)):
        check_files([s.path for s in samples], where=f"data.{data_name}.{side}")
    mh = {s.id: sample_hash(s.path, s.caption, s.start, s.duration) for s in members}
    nh = {s.id: sample_hash(s.path, s.caption, s.start, s.duration) for s in nonmembers}
    overlap = set(mh.values()) & set(nh.values())
    if overlap:
        msg = (f"data.{data_name}: {len(overlap)} identical sample(s) (same file content and "
               "caption) appear among both members and non-members; their MIA labels "
               "contradict each other")
        if not entry.allow_overlap:
            raise ConfigError(msg + ". Use disjoint sources, or set allow_overlap: true on "
                              "the entry to measure it anyway")
        echo(f"warning: {msg} (allow_overlap: true)")
    echo(f"[data] {data_name}: {len(members)} members, {len(nonmembers)} non-members "
         f"(checked and hashed in {time.perf_counter() - t0:.1f} s)")
    return CellData(members, nonmembers, mh, nh, refs)


def load_all_data(suite: Suite, echo: Echo) -> dict[str, CellData]:
    """Every data entry any model uses, checked before the first model loads (a bad file then
    costs seconds and leaves nothing written)."""
    names = list(dict.fromkeys(d for m in suite.models for d in suite.data_for(m)))
    return {name: load_cell_data(suite, name, echo) for name in names}


# ---------------------------------------------------------------------------------------------
# stage 1: extract


def cache_inputs(suite: Suite, model_name: str, model: Model, model_info, identity: dict,
                 run: AttackRun, data_ref: dict) -> dict:
    entry = suite.models[model_name]
    return {
        "harness_version": __version__,
        "model": {"plugin": entry.plugin, "distribution": model_info.distribution,
                  "plugin_version": getattr(model, "version", "1"), "identity": identity,
                  "params": entry.params, "device": suite.device},
        "attack": {"plugin": run.plugin, "plugin_version": getattr(run.attack, "version", "1"),
                   "params": run.params},
        "data": data_ref,
        "seed": suite.seed,
    }


def extract_split(model: Model, runs: list[AttackRun], caches: list[FeatureCache],
                  samples: list[Sample], hashes: dict[str, str], batch_size: int | AutoBatch,
                  seed: int, label: str, echo: Echo, progress: Progress | None = None,
                  shard: Shard | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Features of every attack for ``samples`` (from cache, computing what is missing), or,
    given a ``shard``, only that shard's batches into the cache (then returns {}).

    Batches are always the same consecutive chunks of ``samples`` (``harness.shards``), whatever
    is cached or sharded, so a resumed, sharded or distributed run feeds the model exactly the
    batches one plain run does: bit-identical features even where a model's arithmetic depends
    on the batch it is in. ``progress(n, computed)`` hears of every sample as it is found cached
    or computed."""
    names = [[s.name for s in r.specs] for r in runs]
    found, missing = [], []
    for cache, fnames in zip(caches, names):
        f, m = cache.lookup(hashes, fnames)
        found.append(f)
        missing.append(set(m))
    size = int(batch_size)
    mine = canonical_batches(samples, size, shard)
    todo = [b for b in mine if any(s.id in m for s in b for m in missing)]
    n_todo, n_mine = sum(map(len, todo)), sum(map(len, mine))
    if progress is not None and n_mine > n_todo:
        progress(n_mine - n_todo, False)
    if todo:
        echo(f"[extract] {label}: {n_todo} to compute"
             + (f", {n_mine - n_todo} from cache" if n_mine > n_todo else ""))
    from .progress import bar

    with bar(len(todo), f"[extract] {label}", echo) as pbar:
        b = 0
        while b < len(todo):
            batch = todo[b]
            ids = [s.id for s in batch]
            active = [i for i, m in enumerate(missing) if any(sid in m for sid in ids)]
            needs: set[str] = set()
            for i in active:
                needs |= set(runs[i].attack.needs())
            oom = None
            try:
                ctx = BatchContext(model, batch, seed, attacks={runs[i].plugin for i in active})
                ctx.outputs = dict(model.provide(batch, needs, ctx))
                feats = [runs[i].attack.extract(ctx) for i in active]
            except Exception as exc:
                if not (isinstance(batch_size, AutoBatch) and is_oom(exc)):
                    raise
                oom = f"{type(exc).__name__}: {exc}"
            if oom is not None:  # outside the except: the traceback's tensors are released
                ctx = None
                size = batch_size.shrink(oom, label, echo)  # and cut the rest again at that size
                todo = todo[:b] + [c for c in canonical_batches(samples, size, shard)
                                   if any(s.id in m for s in c for m in missing)]
                pbar.total = len(todo)
                continue
            for i, f in zip(active, feats):
                _check_features(runs[i], f, len(batch))
                caches[i].write(ids, [hashes[s] for s in ids], f)
                missing[i] -= set(ids)
                for j, sid in enumerate(ids):
                    found[i][sid] = {n: float(f[n][j]) for n in names[i]}
            if isinstance(batch_size, AutoBatch):
                batch_size.remember()
            if progress is not None:
                progress(len(batch), True)
            b += 1
            pbar.update(1)
    if shard is not None:
        return {}
    out = {}
    for r, f, fnames in zip(runs, found, names):
        out[r.label] = {n: np.array([f[s.id][n] for s in samples], dtype=np.float64)
                        for n in fnames}
    return out


def _check_features(run: AttackRun, feats: dict, n: int) -> None:
    expected = {s.name for s in run.specs}
    got = set(feats)
    if got != expected:
        raise HarnessError(f"attack '{run.label}' returned features {sorted(got)} but declared "
                           f"{sorted(expected)} in feature_specs()")
    for name, values in feats.items():
        if np.shape(values) != (n,):
            raise HarnessError(f"attack '{run.label}' feature '{name}' has shape "
                               f"{np.shape(values)}, expected ({n},)")


def extract_cell(suite: Suite, model_name: str, model: Model, model_info, identity: dict,
                 runs: list[AttackRun], cell: CellData, batch_size: int | AutoBatch,
                 cache_root: Path, label: str, echo: Echo, progress: Progress | None = None,
                 shard: Shard | None = None) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Stage 1 for one (model, data) cell: {side: {attack label: {feature: values}}}.

    Everything it needs is explicit and its output is also on disk (the feature cache), so a
    ``shard`` of it can run in any process (``harness.extract``) and the driver re-reads the
    cache."""
    feats = {}
    for side, samples, hashes in (("members", cell.members, cell.member_hashes),
                                  ("nonmembers", cell.nonmembers, cell.nonmember_hashes)):
        caches = [FeatureCache(cache_root, cache_inputs(
            suite, model_name, model, model_info, identity, r, cell.refs[side]), echo=echo)
            for r in runs]
        feats[side] = extract_split(model, runs, caches, samples, hashes, batch_size, suite.seed,
                                    f"{label} {side}", echo, progress, shard)
    return feats


def cell_coverage(model: Model, cell: CellData, label: str, echo: Echo) -> dict | None:
    """{side: [coverage record per sample]} under the model's window policy (harness.segments),
    or None for models that score whole files. Warns once with the counts of truncated and
    padded clips, so nobody is surprised that only the first seconds were scored."""
    from . import segments

    out, records = {}, []
    padding = model.padding_policy()
    for side, samples in (("members", cell.members), ("nonmembers", cell.nonmembers)):
        recs = []
        for s in samples:
            wins = model.scoring_windows(s)
            if wins is None:
                return None
            recs.append(segments.coverage(s, wins, padding))
        out[side] = recs
        records += recs
    summary = segments.summarize(records)
    if summary["n_truncated"] or summary["n_short"]:
        echo(f"warning: {label}: {summary['n_truncated']} of {len(records)} clips are longer "
             f"than what the model scores (mean coverage {summary['coverage_mean']:.2f}), "
             f"{summary['n_short']} are shorter than its window (padding {padding}d)")
    out["summary"] = summary
    return out


# ---------------------------------------------------------------------------------------------
# stages 2–3: score and evaluate


def orient(values: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    return values if spec.higher_is_member else -values


def prepare_mia(suite: Suite, run: AttackRun, member_feats: dict, nonmember_feats: dict):
    from .metrics import prepare

    features = {s.name: (member_feats[s.name], nonmember_feats[s.name]) for s in run.specs}
    return prepare(features, run.specs, selection=run.selection, seed=suite.seed)


def score_cell(suite: Suite, model_name: str, data_name: str, family: str,
               runs: list[AttackRun], cell: CellData, feats: dict,
               coverage: dict | None = None) -> tuple[list[dict], dict, dict]:
    """Stages 2–3 (MIA) for one cell: result entries, per-sample score arrays to save, and the
    cell's summary (best attack and the chance band of the best over all attacks)."""
    from .metrics import chance_bands, evaluate_prepared

    entries, files = [], {}
    member_ids = np.array([s.id for s in cell.members])
    nonmember_ids = np.array([s.id for s in cell.nonmembers])
    prepared = [prepare_mia(suite, r, feats["members"][r.label], feats["nonmembers"][r.label])
                for r in runs]
    bands = chance_bands(prepared, target_fpr=suite.mia.target_fpr,
                         n_subsamples=suite.mia.null_subsamples,
                         fraction=suite.mia.subsample_fraction,
                         n_permutations=suite.mia.null_permutations, seed=suite.seed)
    for r, prep, (auc_q, tpr_q) in zip(runs, prepared, bands["attacks"]):
        m_feats, n_feats = feats["members"][r.label], feats["nonmembers"][r.label]
        res = evaluate_prepared(prep, target_fpr=suite.mia.target_fpr,
                                n_subsamples=suite.mia.subsamples,
                                fraction=suite.mia.subsample_fraction, seed=suite.seed)
        m_scores, n_scores = res.pop("scores")
        rel = f"scores/{model_name}__{data_name}__{r.label}.npz"
        files[rel] = dict(
            member_ids=member_ids, nonmember_ids=nonmember_ids,
            member_scores=np.asarray(m_scores), nonmember_scores=np.asarray(n_scores),
            feature_names=np.array([s.name for s in r.specs]),
            member_features=np.stack([m_feats[s.name] for s in r.specs], 1),
            nonmember_features=np.stack([n_feats[s.name] for s in r.specs], 1),
        )
        if coverage is not None:
            for side in ("member", "nonmember"):
                recs = coverage[side + "s"]
                files[rel][f"{side}_coverage"] = np.array([c["coverage"] for c in recs])
                files[rel][f"{side}_padded_fraction"] = np.array(
                    [c["padded_fraction"] for c in recs])
        entries.append({
            "model": model_name, "data": data_name, "attack": r.label, "plugin": r.plugin,
            "family": family, "params": r.params, "auc": res["auc"], "auc_std": res["auc_std"],
            "tpr_at_fpr": res["tpr"], "tpr_at_fpr_std": res["tpr_std"],
            "target_fpr": suite.mia.target_fpr, "selection": r.selection,
            "selected_feature": res["selected"], "n_members": len(cell.members),
            "n_nonmembers": len(cell.nonmembers), "per_feature": res["per_feature"],
            "auc_null_q95": auc_q, "tpr_null_q95": tpr_q,
            "best_of_cell_auc_null_q95": bands["best_auc"],
            "best_of_cell_tpr_null_q95": bands["best_tpr"],
            "null_permutations": bands["permutations"],
            "scores_file": rel,
        })
        if "selected_fraction" in res:
            entries[-1]["selected_fraction"] = res["selected_fraction"]
        if coverage is not None:
            entries[-1]["coverage"] = coverage["summary"]
    best_auc = max(entries, key=lambda e: e["auc"])
    best_tpr = max(entries, key=lambda e: e["tpr_at_fpr"])
    summary = {"model": model_name, "data": data_name, "family": family,
               "n_members": len(cell.members), "n_nonmembers": len(cell.nonmembers),
               "n_attacks": len(entries), "best_auc": best_auc["auc"],
               "best_auc_attack": best_auc["attack"], "best_auc_null_q95": bands["best_auc"],
               "best_tpr_at_fpr": best_tpr["tpr_at_fpr"], "best_tpr_attack": best_tpr["attack"],
               "best_tpr_null_q95": bands["best_tpr"], "null_permutations": bands["permutations"]}
    return entries, files, summary


def run_blind(suite: Suite, cell: CellData) -> dict:
    from .blind import run as _run

    return _run(suite, cell.members, cell.nonmembers)


def di_matrix(runs: list[AttackRun], feats: dict[str, dict[str, np.ndarray]],
              attacks: list[str] | str) -> tuple[np.ndarray, list[str]]:
    cols, names = [], []
    for r in runs:
        if attacks != "all" and r.label not in attacks:
            continue
        for spec in r.specs:
            cols.append(orient(feats[r.label][spec.name], spec))
            names.append(f"{r.label}:{spec.name}")
    return np.stack(cols, axis=1), names


def evaluate_di(suite: Suite, agg_entry, info, runs, member_feats, nonmember_feats,
                primary: bool = False) -> dict:
    """One DI result. ``primary``: this aggregator's test is the pre-declared claim for the
    cell (``Suite.primary_aggregator``), so its one test on all of P against U (or on di.n) is
    run and recorded; the others are exploratory. ``caveat`` comes from the registration (e.g.
    the reference code's over-rejecting ``cdi-crossfit``)."""
    from .di import default_grid, run_di

    cls = info.load()
    params = dict(agg_entry.params)
    if "alternative" in getattr(cls, "defaults", {}) and "alternative" not in params:
        params["alternative"] = suite.di.alternative
    aggregator = cls(**params)
    aggregator.registered_name = agg_entry.plugin
    M, names = di_matrix(runs, member_feats, agg_entry.features)
    U, _ = di_matrix(runs, nonmember_feats, agg_entry.features)
    grid = suite.di.n_grid or default_grid(max(len(M), len(U)))
    res = run_di(aggregator, M, U, n_grid=grid, draws=suite.di.draws, alpha=suite.di.alpha,
                 seed=suite.seed, null_control=suite.di.null_control, workers=suite.di.workers,
                 primary=primary, primary_n=suite.di.n)
    res.update({"aggregator": agg_entry.label, "plugin": agg_entry.plugin, "params":
                dict(aggregator.params), "features": names, "family": info.family,
                "primary": primary, "caveat": info.extra.get("caveat") or ""})
    return res


# ---------------------------------------------------------------------------------------------
# the whole run


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def resolve_cache_root(suite: Suite) -> Path:
    """The feature cache every process of a run shares (an absolute path)."""
    return Path(suite.cache_dir or os.environ.get("HARNESS_CACHE_DIR")
                or ".harness-cache").expanduser().resolve()


def run(suite: Suite, suite_text: str = "", echo: Echo = _stderr, log: bool = True,
        keep_going: bool = True) -> Path:
    """Run every (model, data) cell of the suite; returns the results directory.

    Configuration problems (an attack needing an output its model lacks) stop the run before any
    work. With ``keep_going`` a model that fails at run time (memory, a plugin's bug; not a named
    ``HarnessError`` such as an unreadable or unsafe checkpoint, which stops the run) is
    recorded in ``results["failures"]`` and the other models' cells still run."""
    import torch

    from .preflight import check_needs

    check_needs(suite)

    torch.manual_seed(suite.seed)
    cache_root = resolve_cache_root(suite)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = Path(suite.output_dir) / suite.name / f"{stamp}-{secrets.token_hex(3)}"
    results = {
        "schema": 1, "suite_name": suite.name, "suite_yaml": suite_text,
        "resolved_config": suite.model_dump(mode="json"), "harness_version": __version__,
        "git_commit": _git_commit(), "started": _dt.datetime.now().isoformat(timespec="seconds"),
        "plugins": [p.as_dict() for p in plugins.all_plugins()], "mia": [], "di": [],
        "cells": [], "blind": [], "failures": [], "training": {},
    }
    score_files: dict[str, dict] = {}
    blind_cache: dict[str, dict] = {}  # model-free: once per data entry, whatever the model
    with _env("HARNESS_CACHE_DIR", str(cache_root)):
        data_cache = load_all_data(suite, echo)
        from .executors import extract_elsewhere

        def blind_for(data_name: str) -> dict:
            if data_name not in blind_cache:
                echo(f"[blind] {data_name}: model-free classifier, members vs non-members")
                blind_cache[data_name] = run_blind(suite, data_cache[data_name])
            return blind_cache[data_name]

        def model_free_work() -> None:
            """What needs no model: run by a distributed executor's driver while its workers
            extract (the driver would otherwise sit idle), else lazily by the loop below."""
            if suite.blind.enabled:
                for data_name in dict.fromkeys(d for m in suite.models
                                               for d in suite.data_for(m)):
                    blind_for(data_name)

        # a distributed executor fills the feature cache first; the loop below then only reads it
        extract_elsewhere(suite, cache_root, echo, data_cache, while_waiting=model_free_work)
        for model_name in suite.models:
            try:
                echo(f"[model] loading {model_name}")
                model, model_info = make_model(model_name, suite)
                family = model_info.family if model_info.family != "any" else model.family
                identity = model.identity()
                runs = make_attacks(suite, model_name, model, family)
                if not runs:
                    echo(f"warning: no attack in the suite applies to model '{model_name}' "
                         f"({family})")
                    continue
                batch_size = batch_size_for(suite, model_name, model, model_info, identity,
                                            cache_root)
                for data_name in suite.data_for(model_name):
                    cell = data_cache[data_name]
                    feats = extract_cell(suite, model_name, model, model_info, identity, runs,
                                         cell, batch_size, cache_root,
                                         f"{model_name} × {data_name}", echo)
                    coverage = cell_coverage(model, cell, f"{model_name} × {data_name}", echo)
                    echo(f"[score] {model_name} × {data_name}: {len(runs)} attacks")
                    entries, files, summary = score_cell(suite, model_name, data_name, family,
                                                         runs, cell, feats, coverage)
                    blind = None
                    if suite.blind.enabled:
                        b = blind_for(data_name)
                        m_scores, n_scores = b["scores"]
                        rel = f"scores/{model_name}__{data_name}__blind.npz"
                        files[rel] = dict(
                            member_ids=np.array([s.id for s in cell.members]),
                            nonmember_ids=np.array([s.id for s in cell.nonmembers]),
                            member_scores=m_scores, nonmember_scores=n_scores)
                        blind = {k: v for k, v in b.items() if k != "scores"}
                        blind.update({"model": model_name, "data": data_name,
                                      "family": family, "scores_file": rel})
                        results["blind"].append(blind)
                        if blind["confounded"]:
                            echo(f"warning: {model_name} × {data_name}: the blind baseline "
                                 f"separates members from non-members (AUC {blind['auc']:.3f}, "
                                 f"lower bound {blind['auc_lcb']:.3f} > {blind['gate_auc']:g}); "
                                 f"MIA and DI results are {CONFOUNDED_TEXT}")
                    confounded = bool(blind and blind["confounded"])
                    for e in entries:
                        e["confounded"] = confounded
                    summary.update({"confounded": confounded,
                                    "blind_auc": None if blind is None else blind["auc"],
                                    "blind_auc_lcb": None if blind is None else blind["auc_lcb"]})
                    results["mia"] += entries
                    results["cells"].append(summary)
                    canary = bool(model.training_report())
                    score_files.update(files)
                    for agg in suite.aggregators:
                        info = plugins.get("aggregator", agg.plugin)
                        if info.family not in ("any", family):
                            continue
                        ran = {r.label for r in runs}
                        if agg.features != "all" and not ran & set(agg.features):
                            echo(f"warning: aggregator '{agg.label}': none of its features "
                                 f"{agg.features} ran on {model_name}; skipped")
                            continue
                        echo(f"[evaluate] DI {agg.label} on {model_name} × {data_name}")
                        res = evaluate_di(suite, agg, info, runs, feats["members"],
                                          feats["nonmembers"],
                                          primary=agg.label == suite.primary_aggregator(family))
                        res.update({"model": model_name, "data": data_name,
                                    "model_family": family, "confounded": confounded,
                                    "evidence": evidence_class(blind, canary)})
                        results["di"].append(res)
                    if suite.aggregators and not any(
                            e.get("primary") for e in results["di"]
                            if (e["model"], e["data"]) == (model_name, data_name)):
                        echo(f"warning: no primary DI test for {model_name} × {data_name} "
                             f"({family}): every DI result there is exploratory; add the "
                             f"aggregator '{DEFAULT_PRIMARY.get(family, 'cdi')}' or name one "
                             "in di.primary")
                report = model.training_report()
                if report:
                    from .canary import training_summary

                    results["training"][model_name] = training_summary(report)
                del model
            except Exception as exc:  # noqa: BLE001 (keep-going: one model never stops the rest)
                # a named input problem (an unsafe or broken checkpoint, bad data) is the user's
                # to fix and stops the run with nothing written; keep-going is for the rest
                if not keep_going or isinstance(exc, HarnessError):
                    raise
                msg = f"{type(exc).__name__}: {exc}"
                results["failures"].append({"model": model_name, "error": msg})
                echo(f"warning: model '{model_name}' failed, its cells are skipped: {msg}")
    results["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
    with atomic.directory(out_dir) as tmp:
        for rel, arrays in score_files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, **arrays)
        atomic.write_json(tmp / "results.json", results)
    echo(f"[results] written to {out_dir}")
    if log and suite.mlflow.enabled:
        log_to_mlflow(out_dir, suite, echo)
    return out_dir


def log_to_mlflow(out_dir: Path, suite: Suite, echo: Echo) -> str | None:
    from .tracking import TrackingError, log_results

    try:
        run_id = log_results(out_dir, tracking_uri=suite.mlflow.tracking_uri,
                             experiment=suite.mlflow.experiment or suite.name)
    except TrackingError as exc:
        echo(f"warning: {exc}")
        return None
    echo(f"[log] MLflow run {run_id} at {suite.mlflow.tracking_uri}")
    from .tracking import MARKER, leaderboard_url, ui_command

    marker = json.loads((out_dir / MARKER).read_text())
    if ui_command(suite.mlflow.tracking_uri):
        echo(f"[log] browse: {ui_command(suite.mlflow.tracking_uri)}")
    echo(f"[log] leaderboard: {leaderboard_url(suite.mlflow.tracking_uri, marker['experiment_id'])}")
    return run_id
