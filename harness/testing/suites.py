"""Run a suite from a test and read its results, without touching the working directory.

``run_suite`` goes through the same path as ``harness run`` (suite validation, plugin and
parameter checks, the runner's extract → score → evaluate stages), with the cache, the results
and MLflow under a scratch directory unless the suite names its own.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import yaml

from .. import plugins


@contextlib.contextmanager
def registered(obj: Any, name: str) -> Iterator[bool]:
    """Register a plugin object for the duration of a ``with`` block (a no-op when it is already
    registered, e.g. by its installed entry point). Yields whether this block registered it."""
    mine = plugins.register(obj, name)
    try:
        yield mine
    finally:
        if mine:
            plugins.unregister(name)


@contextlib.contextmanager
def toys_registered() -> Iterator[None]:
    """``toy-data``, ``toy-autoregressive`` and ``toy-diffusion`` for a ``with`` block."""
    from .toys import TOY_PLUGIN, TOY_PLUGIN_NAME

    with registered(TOY_PLUGIN, TOY_PLUGIN_NAME):
        yield


def toy_data(root: str | Path, n: int = 24, **params) -> dict:
    """A suite ``data`` entry on ``toy-data`` clips under ``root``."""
    p = {"root": str(root), "n": n, **params}
    return {"members": {"source": "toy-data", "split": "members", "params": p},
            "nonmembers": {"source": "toy-data", "split": "nonmembers", "params": dict(p)}}


def toy_suite(attacks: Sequence, root: str | Path, *, family: str = "autoregressive",
              aggregators: Sequence = (), n: int = 24, batch_size: int = 8, seed: int = 0,
              data_params: Mapping | None = None, model_params: Mapping | None = None) -> dict:
    """A complete suite (as a dict) auditing the toy model of ``family`` ("autoregressive",
    "diffusion" or "both") on ``toy-data`` under ``root``. ``attacks`` / ``aggregators`` are
    plugin names or full entries ({plugin, name, params, ...}). Quick settings: 20 MIA
    subsamples, DI over n = 2..n with 200 draws, MLflow off. Edit the dict for anything else."""
    data = toy_data(root, n, **dict(data_params or {}))
    models: dict = {}
    if family in ("autoregressive", "both"):
        models["toy-autoregressive"] = {"plugin": "toy-autoregressive",
                                        "params": dict(model_params or {})}
    if family in ("diffusion", "both"):
        models["toy-diffusion"] = {"plugin": "toy-diffusion", "params": {
            "train_data": data["members"], **dict(model_params or {})}}
    if not models:
        raise ValueError(f"family must be 'autoregressive', 'diffusion' or 'both', not {family!r}")

    def entry(x):
        return {"plugin": x} if isinstance(x, str) else dict(x)

    return {
        "name": "toy", "seed": seed, "batch_size": batch_size,
        "models": models, "data": {"toy": data},
        "attacks": [entry(a) for a in attacks],
        "aggregators": [entry(a) for a in aggregators],
        "mia": {"subsamples": 20},
        "di": {"n_grid": sorted({k for k in (2, 4, 8, 16, 32, n) if k <= n}), "draws": 200},
        "mlflow": {"enabled": False},
    }


@dataclass
class SuiteResult:
    """What a run wrote: ``path`` (the results directory), ``results`` (results.json), the runner's
    progress ``messages`` and the suite-check ``warnings``."""

    path: Path
    results: dict
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def mia(self) -> list[dict]:
        return self.results["mia"]

    @property
    def di(self) -> list[dict]:
        return self.results["di"]

    def _one(self, rows: list[dict], key: str, value: str, model, data) -> dict:
        hits = [r for r in rows if r[key] == value and model in (None, r["model"])
                and data in (None, r["data"])]
        if len(hits) != 1:
            have = sorted({(r["model"], r["data"], r[key]) for r in rows})
            raise KeyError(f"{len(hits)} results for {key}={value!r} model={model!r} "
                           f"data={data!r}; the run has (model, data, {key}): {have}")
        return hits[0]

    def mia_result(self, attack: str, model: str | None = None, data: str | None = None) -> dict:
        """The MIA entry of one attack label (AUC, TPR@FPR, selected feature, per feature...)."""
        return self._one(self.mia, "attack", attack, model, data)

    def di_result(self, aggregator: str, model: str | None = None,
                  data: str | None = None) -> dict:
        """The DI entry of one aggregator label (per_n, min_n, null_fpr, ...)."""
        return self._one(self.di, "aggregator", aggregator, model, data)

    def features(self, attack: str, model: str | None = None,
                 data: str | None = None) -> dict[str, dict[str, np.ndarray]]:
        """Raw (not oriented) features of one attack: {feature: {"members": {id: value},
        "nonmembers": {id: value}}}, as the attack returned them."""
        entry = self.mia_result(attack, model, data)
        with np.load(self.path / entry["scores_file"]) as z:
            names = [str(n) for n in z["feature_names"]]
            out = {}
            for j, name in enumerate(names):
                out[name] = {side: dict(zip((str(i) for i in z[f"{side[:-1]}_ids"]),
                                            z[f"{side[:-1]}_features"][:, j].tolist()))
                             for side in ("members", "nonmembers")}
        return out


def _as_text(suite: Mapping | str | Path) -> tuple[str, str]:
    if isinstance(suite, Mapping):
        return yaml.safe_dump(dict(suite), sort_keys=False), "<suite dict>"
    if isinstance(suite, Path) or (isinstance(suite, str) and "\n" not in suite
                                   and suite.endswith((".yaml", ".yml"))):
        return Path(suite).read_text(), str(suite)
    return str(suite), "<suite text>"


def run_suite(suite: Mapping | str | Path, workdir: str | Path | None = None, *,
              overrides: Sequence[str] = (), log: bool = False,
              echo=None, keep_going: bool = False) -> SuiteResult:
    """Validate and run a suite given as a dict, YAML text or a ``.yaml`` path; return its results.

    ``workdir`` (default: a new temporary directory) holds the feature cache, the results and the
    MLflow store unless the suite sets ``cache_dir``, ``output_dir`` or ``mlflow.tracking_uri``.
    ``overrides`` are ``--set`` strings. ``log=True`` logs to MLflow as ``harness run`` does.
    Raises the same named errors as ``harness run`` (``SuiteError`` naming the bad key...).
    A plugin's own exception propagates (``keep_going=False``, unlike the CLI's default), so an
    author's test sees its traceback.
    """
    from .. import runner
    from .. import suite as suite_mod

    text, source = _as_text(suite)
    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="harness-"))
    raw = yaml.safe_load(text) or {}
    extra = []
    if isinstance(raw, dict):
        if "cache_dir" not in raw:
            extra.append(f"cache_dir={workdir / 'cache'}")
        if "output_dir" not in raw:
            extra.append(f"output_dir={workdir / 'results'}")
        if "tracking_uri" not in (raw.get("mlflow") or {}):
            extra.append(f"mlflow.tracking_uri=sqlite:///{workdir / 'mlflow.db'}")
    s = suite_mod.loads(text, source=source, overrides=extra + list(overrides))
    warnings = suite_mod.check_plugins(s, text, source)
    messages: list[str] = []

    def _echo(msg: str) -> None:
        messages.append(msg)
        if echo is not None:
            echo(msg)

    out = runner.run(s, text, echo=_echo, log=log, keep_going=keep_going)
    results = json.loads((out / "results.json").read_text())
    return SuiteResult(out, results, messages, warnings)
