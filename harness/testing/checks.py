"""Contract checks a plugin author runs on their attack or aggregator, with messages that say
what to fix.

Why run the real runner rather than call ``extract`` directly: the runner is what will run the
plugin (context, shared outputs, feature cache, shape checks); a check that re-implemented it
could pass while the runner fails. So ``check_attack`` runs small suites on the toy models
(``harness.testing.toys``) and compares what the runner wrote; ``check_aggregator`` runs
``harness.di.run_di``, the engine that computes every DI result and its null control.
"""

from __future__ import annotations

import math
import re
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import hookimpl, plugins
from ..contracts import (CONDITION, LATENT_MASK, LATENTS, NULL_CONDITION, TOKEN_STATS_CONDITIONAL,
                         TOKEN_STATS_CONTRAST, Attack, FeatureSpec)
from ..errors import ConfigError, HarnessError, PluginContractError
from .suites import registered, run_suite, toy_suite, toys_registered

#: toy model per attack family, and the outputs the family's contract provides
TOY_MODELS = {"autoregressive": "toy-autoregressive", "diffusion": "toy-diffusion"}
PROVIDED = {"autoregressive": {TOKEN_STATS_CONDITIONAL, TOKEN_STATS_CONTRAST},
            "diffusion": {LATENTS, CONDITION, NULL_CONDITION, LATENT_MASK}}


# --------------------------------------------------------------------------------------------
# report


@dataclass
class CheckReport:
    """Outcome of the contract checks of one plugin: check name -> message."""

    kind: str
    name: str
    passed: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def __str__(self) -> str:
        head = (f"{self.kind} '{self.name}': "
                + (f"{len(self.failed)} contract check(s) failed" if self.failed
                   else f"all {len(self.passed)} contract checks passed"))
        lines = [head]
        lines += [f"  FAIL {k}: {v}" for k, v in self.failed.items()]
        lines += [f"  ok   {k}: {v}" for k, v in self.passed.items()]
        lines += [f"  skip {k}: {v}" for k, v in self.skipped.items()]
        return "\n".join(lines)

    def raise_if_failed(self) -> "CheckReport":
        if self.failed:
            raise PluginContractError(str(self))
        return self


def _where(exc: BaseException) -> str:
    """' (raised at file:line in func)' for the innermost frame of an exception."""
    tb = traceback.extract_tb(exc.__traceback__)
    if not tb:
        return ""
    f = tb[-1]
    return f" (raised at {f.filename}:{f.lineno} in {f.name})"


# --------------------------------------------------------------------------------------------
# resolving the plugin under test


class _OnePlugin:
    """Registers one class under one name, so an unregistered class can be checked."""

    def __init__(self, kind: str, name: str, factory: Any, family: str):
        self.kind, self.name, self.factory, self.family = kind, name, factory, family

    def _register(self, kind, register):
        if kind == self.kind:
            register(self.name, self.factory, family=self.family)

    @hookimpl
    def register_attacks(self, register):
        self._register("attack", register)

    @hookimpl
    def register_aggregators(self, register):
        self._register("aggregator", register)


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _resolve(kind: str, plugin, name: str | None):
    """(registered name, PluginInfo, plugin object to register or None)."""
    if isinstance(plugin, str):
        return plugin, plugins.get(kind, plugin), None
    if isinstance(plugin, type):
        reg_name = name or _kebab(plugin.__name__)
        fam = getattr(plugin, "family", "any")
        obj = _OnePlugin(kind, reg_name, plugin, fam)
        return reg_name, None, obj
    raise TypeError(f"pass the {kind}'s registered name or its class, not {plugin!r}")


# --------------------------------------------------------------------------------------------
# attacks


def _static_attack(rep: CheckReport, cls, inst: Attack, info) -> list[FeatureSpec] | None:
    fam = getattr(cls, "family", None)
    if fam not in plugins.FAMILIES:
        rep.failed["family"] = (f"class attribute family = {fam!r}; set it to one of "
                                f"{', '.join(plugins.FAMILIES)}")
    elif info.family != fam:
        rep.failed["family"] = (
            f"registered with family={info.family!r} but the class says family={fam!r}; the "
            f"runner picks models by the registered family, so pass family={fam!r} to "
            "register(...) in your register_attacks hook")
    else:
        rep.passed["family"] = f"{fam} (registered and class agree)"
    if not isinstance(getattr(cls, "version", None), str):
        rep.failed["version"] = (f"class attribute version = {getattr(cls, 'version', None)!r}; "
                                 "make it a string, e.g. version = \"1\", and bump it when a "
                                 "change alters the numbers")
    else:
        rep.passed["version"] = repr(cls.version)
    try:
        specs = list(inst.feature_specs())
    except Exception as exc:
        rep.failed["feature_specs"] = f"feature_specs() raised {exc!r}{_where(exc)}"
        return None
    problems = []
    if not specs:
        problems.append("feature_specs() returned no feature; return one FeatureSpec per feature "
                        "that extract() emits")
    names = [getattr(s, "name", None) for s in specs]
    for s in specs:
        if not isinstance(s, FeatureSpec):
            problems.append(f"{s!r} is not a harness.contracts.FeatureSpec")
        elif not isinstance(s.name, str) or not s.name:
            problems.append(f"a FeatureSpec has name {s.name!r}; give every feature a non-empty "
                            "string name")
    dup = sorted({n for n in names if names.count(n) > 1 and n is not None})
    if dup:
        problems.append(f"feature names {dup} appear more than once; names must be unique")
    if problems:
        rep.failed["feature_specs"] = "; ".join(problems)
        return None
    rep.passed["feature_specs"] = f"{len(specs)} feature(s)"
    unoriented = [s.name for s in specs if not isinstance(s.higher_is_member, (bool, np.bool_))]
    if unoriented:
        rep.failed["orientation"] = (
            f"feature(s) {unoriented} have higher_is_member = "
            f"{[s.higher_is_member for s in specs if s.name in unoriented]}; declare "
            "FeatureSpec(name, higher_is_member=True) if larger raw values mean 'member', False if "
            "smaller ones do (a loss). Return the raw value; the core orients it.")
    else:
        rep.passed["orientation"] = "every feature declares higher_is_member"
    return specs


def _variants(cls, params: dict, vary) -> tuple[dict, dict]:
    """({param: other value}, {param: why not varied}) for the cache-key check."""
    if vary is not None and vary != "auto":
        return dict(vary), {}
    out, skipped = {}, {}
    current = {**getattr(cls, "defaults", {}), **params}
    for key, v in current.items():
        if isinstance(v, bool):
            new = not v
        elif isinstance(v, int):
            new = v + 1
        elif isinstance(v, float):
            new = v / 2 if v else 0.5
        else:
            skipped[key] = f"{type(v).__name__} value (pass vary={{{key!r}: ...}} to check it)"
            continue
        try:
            cls(**{**params, key: new})
        except Exception as exc:
            skipped[key] = f"{key}={new!r} is refused: {exc}"
            continue
        out[key] = new
    return out, skipped


def _feature_table(res) -> dict[str, dict[str, float]]:
    """{feature: {sample id: value}} over members and non-members of the single attack."""
    (entry,) = res.mia
    table = {}
    for name, sides in res.features(entry["attack"]).items():
        table[name] = {**sides["members"], **sides["nonmembers"]}
    return table


def _count_keys(cache: Path) -> int:
    d = cache / "features"
    return len([p for p in d.iterdir() if p.is_dir()]) if d.exists() else 0


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    pos, neg = pos[~np.isnan(pos)], neg[~np.isnan(neg)]
    if not len(pos) or not len(neg):
        return float("nan")
    with np.errstate(invalid="ignore"):  # inf - inf: counted as a tie
        diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def check_attack(attack: str | type, params: Mapping | None = None, *, name: str | None = None,
                 vary: Mapping | str | None = "auto", n: int = 8, rtol: float = 1e-5,
                 atol: float = 1e-6, expect_signal: bool = False,
                 workdir: str | Path | None = None, raise_on_failure: bool = True) -> CheckReport:
    """Run the attack contract checks on the toy model(s) of its family.

    ``attack``: its registered name, or the class (then registered as ``name``, default the
    class name in kebab case, for the duration of the checks). ``params``: as in a suite.

    Checks: family declared and equal to the registered one; ``version`` a string; feature
    specs well formed with ``higher_is_member`` declared; ``needs()`` provided by the toy model;
    the runner accepts every batch (declared names, one float per sample); values finite or NaN
    (not all NaN); the same sample gets the same features in batches of ``n`` (``n`` members and
    ``n`` non-members), of 1 and shuffled batches of 3 (within ``rtol``/``atol``); changing a
    parameter changes the feature-cache key (``vary``: {param: other value}; "auto" tries every
    bool/int/float parameter; None skips). ``expect_signal``: also require an oriented AUC above
    0.5 on the toy's known member signal (a sign check).

    Raises ``PluginContractError`` listing every failed check (unless ``raise_on_failure`` is
    False); returns the ``CheckReport`` otherwise.
    """
    params = dict(params or {})
    reg_name, info, obj = _resolve("attack", attack, name)
    rep = CheckReport("attack", reg_name)
    root = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="harness-check-"))
    with toys_registered(), _maybe_registered(obj, f"contract-check:{reg_name}"):
        info = info or plugins.get("attack", reg_name)
        _check_attack(rep, info, reg_name, params, vary, n, rtol, atol, expect_signal, root)
    return rep.raise_if_failed() if raise_on_failure else rep


def _maybe_registered(obj, name):
    import contextlib

    return registered(obj, name) if obj is not None else contextlib.nullcontext()


def _check_attack(rep, info, reg_name, params, vary, n, rtol, atol, expect_signal, root):
    cls = info.load()
    try:
        inst = cls(**params)
    except Exception as exc:
        rep.failed["construct"] = f"{cls.__name__}(**{params!r}) raised {exc!r}{_where(exc)}"
        return
    inst.registered_name = reg_name
    specs = _static_attack(rep, cls, inst, info)
    if specs is None:
        return
    try:
        needs = set(inst.needs())
    except Exception as exc:
        rep.failed["needs"] = f"needs() raised {exc!r}{_where(exc)}"
        return
    fam = info.family
    families = [fam] if fam in TOY_MODELS else list(TOY_MODELS)
    runnable = [f for f in families if needs <= PROVIDED[f]]
    if not runnable:
        rep.failed["needs"] = (
            f"needs() = {sorted(needs)} but the {' / '.join(families)} model contract provides "
            f"{sorted(set().union(*(PROVIDED[f] for f in families)))}; use the output names from "
            "harness.contracts (TOKEN_STATS_CONTRAST, TOKEN_STATS_CONDITIONAL, LATENTS, "
            "CONDITION, NULL_CONDITION, LATENT_MASK)")
        return
    toys = ", ".join(TOY_MODELS[f] for f in runnable)
    rep.passed["needs"] = f"{sorted(needs)} provided by {toys}"
    data_root = root / "data"
    for fam_ in runnable:
        _dynamic(rep, reg_name, specs, params, fam_, n, rtol, atol, expect_signal, data_root,
                 root / fam_)
        if "extract" in rep.failed:
            return
    if vary is None:
        rep.skipped["cache key"] = "vary=None"
        return
    variants, why_not = _variants(cls, params, vary)
    for k, why in why_not.items():
        rep.skipped[f"cache key: {k}"] = why
    _cache_key(rep, reg_name, params, variants, runnable[0], n, data_root, root / runnable[0])


def _suite(reg_name, params, fam, n, batch_size, data_root, shuffle=None) -> dict:
    s = toy_suite([{"plugin": reg_name, "params": dict(params)}], data_root, family=fam, n=n,
                  batch_size=batch_size, data_params={"shuffle": shuffle})
    s["mia"]["subsamples"] = 2
    if fam == "diffusion":  # the memorised set must not change with the listing order
        s["models"]["toy-diffusion"]["params"]["train_data"] = toy_suite(
            [], data_root, family=fam, n=n)["data"]["toy"]["members"]
    return s


def _run(rep, label, suite, workdir):
    try:
        return _feature_table(run_suite(suite, workdir))
    except HarnessError as exc:
        rep.failed["extract"] = f"{label}: {exc}"
    except Exception as exc:
        rep.failed["extract"] = f"{label}: the attack raised {exc!r}{_where(exc)}"
    return None


def _dynamic(rep, reg_name, specs, params, fam, n, rtol, atol, expect_signal, data_root, work):
    tag = f" [{TOY_MODELS[fam]}]"
    layouts = {f"batches of {n}": (n, None), "batches of 1": (1, None),
               "shuffled batches of 3": (3, 1234)}
    tables = {}
    for i, (label, (bs, shuffle)) in enumerate(layouts.items()):
        t = _run(rep, label + tag, _suite(reg_name, params, fam, n, bs, data_root, shuffle),
                 work / f"layout{i}")
        if t is None:
            rep.failed["extract"] += (
                " — extract() must return {name: float array [len(ctx.samples)]} with exactly "
                "the names of feature_specs(), for every batch size")
            return
        tables[label] = t
    rep.passed["extract" + tag] = f"the runner accepted batches of 1, 2, 3 and {n} samples"
    ref_label = next(iter(tables))
    ref = tables[ref_label]
    # finite or NaN
    bad = {}
    for fname, vals in ref.items():
        v = np.array(list(vals.values()), dtype=np.float64)
        if np.isinf(v).any():
            bad[fname] = f"{int(np.isinf(v).sum())} infinite value(s)"
        elif np.isnan(v).all():
            bad[fname] = f"NaN for all {v.size} toy samples"
    if bad:
        rep.failed["finite or NaN" + tag] = (
            f"{bad}: return a finite float per sample, or NaN where the feature is undefined "
            "(the core replaces NaN by the pooled median); never ±inf (ROC and DI code cannot "
            "rank it). A feature NaN everywhere carries no information: check its inputs.")
    else:
        nan = sum(int(np.isnan(list(v.values())).sum()) for v in ref.values())
        rep.passed["finite or NaN" + tag] = f"{nan} NaN value(s), no infinity"
    # independence from batch size and order
    worst = None
    for label, table in tables.items():
        if label == ref_label:
            continue
        for fname, vals in ref.items():
            for sid, a in vals.items():
                b = table[fname][sid]
                if not np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
                    gap = abs(a - b) if np.isfinite(a) and np.isfinite(b) else math.inf
                    if worst is None or gap > worst[0]:
                        worst = (gap, fname, sid, a, label, b)
    if worst:
        _, fname, sid, a, label, b = worst
        rep.failed["batch independence" + tag] = (
            f"feature '{fname}' of sample '{sid}' is {a!r} in {ref_label} but {b!r} in {label}. "
            "A sample's features must not depend on the other samples of its batch or on their "
            "order: compute per sample (no mean, max or normalisation over the batch; mask "
            "padding), and draw randomness with ctx.randn(shape, purpose) or ctx.seeds(purpose), "
            f"which are seeded per sample (tolerance rtol={rtol}, atol={atol}).")
    else:
        rep.passed["batch independence" + tag] = (
            f"the same features (rtol={rtol}, atol={atol}) in batches of 1, 3 (shuffled) "
            f"and {n}")
    # orientation on the toy's known signal
    for s in specs:
        vals = ref[s.name]
        m = np.array([v for k, v in vals.items() if k.startswith("members/")])
        u = np.array([v for k, v in vals.items() if k.startswith("nonmembers/")])
        auc = _auc(m if s.higher_is_member else -m, u if s.higher_is_member else -u)
        chance = math.sqrt((len(m) + len(u) + 1) / (12 * len(m) * len(u)))
        msg = f"oriented AUC {auc:.2f} on the toy (a null gives 0.50 ± {chance:.2f})"
        key = f"signal {s.name}{tag}"
        if expect_signal and not auc > 0.5:
            rep.failed[key] = (msg + ": the toy has a known member signal, so an AUC at or below "
                               "chance suggests higher_is_member is inverted (or the feature "
                               "ignores the signal)")
        elif expect_signal:
            rep.passed[key] = msg
        else:
            rep.skipped[key] = msg + " (informational; expect_signal=True to require > 0.5)"


def _cache_key(rep, reg_name, params, variants, fam, n, data_root, work):
    if not variants:
        rep.skipped["cache key"] = "no parameter to vary"
        return
    shared = work / "cache-key"
    base = _run(rep, "cache-key base run", _suite(reg_name, params, fam, n, n, data_root),
                shared)
    if base is None:
        return
    stale = []
    for key, value in variants.items():
        before = _count_keys(shared / "cache")
        got = _run(rep, f"{key}={value!r}",
                   _suite(reg_name, {**params, key: value}, fam, n, n, data_root), shared)
        if got is None:
            return
        if _count_keys(shared / "cache") == before:
            stale.append(f"{key}={value!r}")
    if stale:
        rep.failed["cache key"] = (
            f"changing {', '.join(stale)} did not change the feature-cache key, so a cached run "
            "with the old value would be reused silently. Keep every setting in self.params "
            "(declared in defaults, never popped or copied to attributes before "
            "Configurable.__init__), and bump the class attribute version when the code's "
            "numbers change.")
    else:
        rep.passed["cache key"] = f"a new key for each of {sorted(variants)}"


# --------------------------------------------------------------------------------------------
# aggregators


def null_features(n_rows: int, seed: int = 0) -> np.ndarray:
    """A realistic null feature matrix [n_rows, 6]: strongly correlated (rho = 0.9 through one
    shared factor, as attack features of one model are), with a skewed, a heavy-tailed, a
    negatively correlated, a tied (rounded) column and 5 % NaN in one column."""
    rng = np.random.default_rng([seed, 0xC0DE])
    f = rng.normal(size=(n_rows, 1))
    x = 0.9 * f + math.sqrt(1 - 0.81) * rng.normal(size=(n_rows, 6))
    x[:, 1] = np.exp(x[:, 1])
    x[:, 2] = x[:, 2] / np.sqrt(rng.chisquare(3, n_rows) / 3)
    x[:, 3] = -x[:, 3]
    x[:, 4] = np.round(x[:, 4], 1)
    x[rng.random(n_rows) < 0.05, 5] = np.nan
    return x


def check_aggregator(aggregator: str | type, params: Mapping | None = None, *,
                     name: str | None = None, alpha: float = 0.01, max_fpr: float | None = None,
                     n_grid=(10, 25, 50), draws: int = 500, features: np.ndarray | None = None,
                     seed: int = 0, raise_on_failure: bool = True) -> CheckReport:
    """Run the aggregator contract checks.

    ``aggregator``: its registered name, or the class (then registered as ``name`` for the
    checks). Checks: family declared; ``pvalues(P [R, n, d], U [R, n, d], rng)`` returns R values
    in [0, 1] (or NaN); the same seed gives the same p-values whatever the number of threads
    ``run_di`` uses; and **null calibration**: with P and U drawn from the same pool
    (``features``, default ``null_features``: correlated, skewed, tied, with NaN), the fraction
    of draws with p <= ``alpha`` over ``n_grid`` (``draws`` per n, main and null-control draws
    pooled) must not exceed ``max_fpr`` (default 2 * alpha). With the defaults that is 3000
    draws, so a calibrated test exceeds 2 * alpha with probability below 1e-4.
    """
    from ..di import kl_upper, run_di

    params = dict(params or {})
    max_fpr = 2 * alpha if max_fpr is None else float(max_fpr)
    reg_name, info, obj = _resolve("aggregator", aggregator, name)
    rep = CheckReport("aggregator", reg_name)
    with _maybe_registered(obj, f"contract-check:{reg_name}"):
        info = info or plugins.get("aggregator", reg_name)
        cls = info.load()
    fam = getattr(cls, "family", None)
    if fam not in plugins.FAMILIES or info.family != fam:
        rep.failed["family"] = (
            f"registered family {info.family!r}, class family {fam!r}: set the class attribute "
            f"family to one of {', '.join(plugins.FAMILIES)} and register with the same family "
            "(it selects the models whose features the aggregator sees; 'any' = every model)")
    else:
        rep.passed["family"] = fam
    try:
        agg = cls(**params)
    except Exception as exc:
        rep.failed["construct"] = f"{cls.__name__}(**{params!r}) raised {exc!r}{_where(exc)}"
        return rep.raise_if_failed() if raise_on_failure else rep
    agg.registered_name = reg_name
    # shape and range
    rng = np.random.default_rng(seed)
    X = null_features(4 * 10, seed)
    X = np.where(np.isnan(X), 0.0, X)
    P, U = X[:30].reshape(3, 10, -1), X[10:40].reshape(3, 10, -1)
    try:
        p = np.asarray(agg.pvalues(P, U, rng), dtype=np.float64)
    except Exception as exc:
        rep.failed["pvalues"] = (f"pvalues(P[3, 10, 6], U[3, 10, 6], rng) raised "
                                 f"{exc!r}{_where(exc)}")
        return rep.raise_if_failed() if raise_on_failure else rep
    if p.shape != (3,):
        rep.failed["pvalues"] = (f"pvalues(P[3, 10, 6], U[3, 10, 6], rng) returned shape "
                                 f"{p.shape}; return one p-value per draw: shape [R] = (3,)")
    elif np.any((p[~np.isnan(p)] < 0) | (p[~np.isnan(p)] > 1)):
        rep.failed["pvalues"] = (f"p-values {p.tolist()} outside [0, 1]; return probabilities "
                                 "(NaN where the test is undefined: it counts as no rejection)")
    else:
        rep.passed["pvalues"] = "one p-value in [0, 1] per draw"
    if rep.failed:
        return rep.raise_if_failed() if raise_on_failure else rep
    # null calibration
    grid = sorted({int(k) for k in n_grid})
    if features is None:
        pool = null_features(2 * max(4 * grid[-1], 200), seed)
    else:
        pool = np.asarray(features, dtype=np.float64)
        if pool.ndim != 2 or pool.shape[0] < 4 * grid[-1]:
            raise ConfigError(f"features must be [N, d] with N >= 4 * max(n_grid) = "
                              f"{4 * grid[-1]}; got shape {pool.shape}")
    perm = np.random.default_rng([seed, 1]).permutation(pool.shape[0])
    A, B = pool[perm[: len(perm) // 2]], pool[perm[len(perm) // 2:]]
    try:
        res = run_di(agg, A, B, n_grid=grid, draws=draws, alpha=alpha, seed=seed)
    except Exception as exc:
        rep.failed["null calibration"] = f"run_di raised {exc!r}{_where(exc)}"
        return rep.raise_if_failed() if raise_on_failure else rep
    rows = res["per_n"] + res["null_per_n"]
    k = sum(int(round(r["frac_reject"] * r["draws"])) for r in rows)
    total = sum(r["draws"] for r in rows)
    # the draws are independent given this pool, so Chernoff over them bounds the pool's rate
    # (null_bound's first step); a fresh pool's rate is bounded per n as DI results state it
    fpr, upper = k / total, kl_upper(k / total, total, 0.05)
    per_n = ", ".join(f"n={r['n']}: {r['frac_reject']:.3f}" for r in res["per_n"])
    fresh = ", ".join(f"n={r['n']}: {r['fpr_upper']:.3f} (K={r['independent']})"
                      for r in res["null_per_n"] if r.get("fpr_upper") is not None)
    msg = (f"false-positive rate {fpr:.4f} ({k} of {total} draws of identical P/U rejected at "
           f"alpha={alpha}; per n: {per_n})")
    bounds = (f"95% upper bound {upper:.4f} on this pool: Chernoff over the draws, independent "
              "given the pool; pool-aware 95% bound of the null control per n, as DI results "
              f"report it (null_bound, K disjoint pairs): {fresh or 'none'}")
    if fpr > max_fpr:
        rep.failed["null calibration"] = (
            msg + f" exceeds the bound {max_fpr:g} ({bounds}): the test rejects sets that do "
            "not differ, so "
            "its p-values are not valid. Usual causes: combining per-feature p-values as if they "
            "were independent (Fisher or Stouffer over correlated features; use a combination "
            "valid under dependence such as Bonferroni or Simes, or one statistic over a fixed "
            "combination of features), fitting a scorer and testing on the same rows (use a "
            "held-out split), or a one-sided test on features not oriented higher = member.")
    else:
        rep.passed["null calibration"] = msg + f" within the bound {max_fpr:g} ({bounds})"
    # determinism (and thread safety as far as a rerun can show it)
    small = grid[:2]
    try:
        r1 = run_di(agg, A, B, n_grid=small, draws=100, alpha=alpha, seed=seed + 1, workers=1)
        r2 = run_di(agg, A, B, n_grid=small, draws=100, alpha=alpha, seed=seed + 1, workers=4)
    except Exception as exc:
        rep.failed["determinism"] = f"run_di raised {exc!r}{_where(exc)}"
    else:
        if r1["per_n"] != r2["per_n"] or r1["null_per_n"] != r2["null_per_n"]:
            rep.failed["determinism"] = (
                "the same seed gave different p-values on 1 and 4 threads: draw all randomness "
                "from the rng argument of pvalues (never np.random.* or a generator kept on "
                "self), and set the class attribute thread_safe = False if pvalues mutates state")
        else:
            rep.passed["determinism"] = "same p-values on 1 and 4 threads"
    return rep.raise_if_failed() if raise_on_failure else rep
