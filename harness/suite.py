"""Suite files: schema, validation with the offending key's path and line, CLI overrides.

A suite says which models are audited on which member / non-member data with which attacks and
DI aggregators, and how results are evaluated and logged. Validation happens before any model is
loaded, so a typo fails in a second, not after an hour of feature extraction.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PositiveInt, ValidationError,
                      field_validator)

from .errors import SuiteError, did_you_mean

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataRef(_Strict):
    """One split of one dataset source, optionally filtered by id list files (``include_ids``:
    keep only the listed samples, e.g. a model's published training list; ``exclude_ids``: drop
    them). An id the split lacks is an error unless ``missing_ids: warn``
    (harness.datasets.filter_ids)."""

    source: str
    split: str
    params: dict[str, Any] = Field(default_factory=dict)
    include_ids: str | None = None
    exclude_ids: str | None = None
    missing_ids: Literal["error", "warn"] = "error"

    def as_ref(self) -> dict:
        """The ``{source, split, params}`` dict ``harness.datasets.resolve`` takes; the id-list
        keys only when set, so references without them keep their cache keys."""
        out = self.model_dump(exclude={"include_ids", "exclude_ids", "missing_ids"})
        out.update({k: v for k in ("include_ids", "exclude_ids")
                    if (v := getattr(self, k)) is not None})
        if self.include_ids or self.exclude_ids:
            out["missing_ids"] = self.missing_ids
        return out


class DataEntry(_Strict):
    """Members and non-members of one audit. Counts pick a seeded subset of each side; a count
    larger than the source is an error (``all``, or leaving it out, uses every sample)."""

    members: DataRef
    nonmembers: DataRef
    n_members: Annotated[int, Field(gt=0)] | Literal["all"] | None = None
    n_nonmembers: Annotated[int, Field(gt=0)] | Literal["all"] | None = None
    #: cap per side that is never an error (what ``--limit`` sets)
    limit: int | None = Field(default=None, gt=0)
    #: identical samples on both sides are an error unless this is true
    allow_overlap: bool = False


class ModelEntry(_Strict):
    plugin: str
    params: dict[str, Any] = Field(default_factory=dict)
    #: names of ``data`` entries to audit this model on (default: all)
    data: list[str] | None = None
    #: "auto": the largest that fits on the CUDA card (halved on OOM, remembered in the cache)
    batch_size: PositiveInt | Literal["auto"] | None = None


class AttackEntry(_Strict):
    plugin: str
    #: the name results are reported under (default: the plugin name); lets one plugin appear
    #: several times with different params
    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    #: how a multi-feature attack becomes one MIA score (default: the suite's mia.selection)
    selection: Literal["best-heldout", "best", "lr"] | None = None
    #: restrict to these model entries (default: every model of the attack's family), e.g. to run
    #: contrast-mode attacks on guided models and conditional-mode ones on FIGARO in one suite
    models: list[str] | None = None

    @property
    def label(self) -> str:
        return self.name or self.plugin


class AggregatorEntry(_Strict):
    plugin: str
    name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    #: attack names whose features enter the test, or "all" attacks of the model's family
    features: Literal["all"] | list[str] = "all"

    @property
    def label(self) -> str:
        return self.name or self.plugin


class MIAConfig(_Strict):
    target_fpr: float = Field(default=0.01, gt=0, lt=1)
    subsamples: int = Field(default=250, ge=1)
    subsample_fraction: float = Field(default=0.5, gt=0, le=1)
    #: best index chosen on half of each subsample and reported on the other (default), IAR's
    #: best index chosen on the reported data ("best", to reproduce the paper), or cross-fitted LR
    selection: Literal["best-heldout", "best", "lr"] = "best-heldout"
    #: label permutations behind every MIA result's chance band (95th percentile under the null)
    null_permutations: int = Field(default=200, ge=20)
    #: subsamples per permutation (the reported statistic's mean over subsamples, recomputed)
    null_subsamples: int = Field(default=50, ge=1)


#: the primary DI aggregator of each model family: the tests that hold their nominal alpha
#: (``cdi`` held-out for diffusion; ``minmax-sum`` for autoregressive models, which include the
#: symbolic ones such as FIGARO)
DEFAULT_PRIMARY = {"diffusion": "cdi", "autoregressive": "minmax-sum"}


class DIConfig(_Strict):
    #: sample sizes n to test; default: the paper's grid up to the available pool size
    n_grid: list[int] | None = None
    draws: int = Field(default=1000, ge=1)
    alpha: float = Field(default=0.01, gt=0, lt=1)
    #: "greater" = P scores higher (features are oriented higher = member); "two-sided" = the
    #: reference code's test
    alternative: Literal["greater", "two-sided"] = "greater"
    null_control: bool = True
    #: the pre-declared primary test: an aggregator name (for every model it applies to) or a
    #: mapping model family -> aggregator name; default ``DEFAULT_PRIMARY`` by the model's family
    #: (the first aggregator entry of that plugin). Its one test on all of P against U is the
    #: claim; every other aggregator and the min-n search are exploratory
    primary: str | dict[str, str] | None = None
    #: the primary test's n, fixed in advance; default all of P against U (the smaller set's size)
    n: int | None = Field(default=None, ge=2)
    #: threads the grid of n is spread over; default one per available core (at most 8). The
    #: numbers do not depend on it (every n has its own random stream)
    workers: int | None = Field(default=None, ge=1)

    @field_validator("n_grid")
    @classmethod
    def _positive(cls, v):
        if v is not None and (not v or any(n < 2 for n in v)):
            raise ValueError("n_grid needs sample sizes >= 2")
        return sorted(set(v)) if v is not None else v


class BlindConfig(_Strict):
    """The blind baseline (``harness.blind``): model-free features, cross-fitted classifier, and
    the gate that marks a cell's MIA and DI results confounded by a shift between the sets."""

    #: on by default: an audit should always say whether the sets differ without the model
    enabled: bool = True
    #: a ``baseline`` plugin (model-free features of each sample)
    plugin: str = "model-free"
    params: dict[str, Any] = Field(default_factory=dict)
    classifier: Literal["forest", "logistic"] = "forest"
    folds: int = Field(default=5, ge=2)
    #: fold assignments whose out-of-fold scores are averaged (one is a lottery at small n)
    repeats: int = Field(default=3, ge=1)
    #: the cell is confounded when the blind AUC's lower confidence bound exceeds this
    gate_auc: float = Field(default=0.6, ge=0.5, lt=1)
    #: one-sided confidence of that bound
    confidence: float = Field(default=0.95, gt=0.5, lt=1)


class MLflowConfig(_Strict):
    enabled: bool = True
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str | None = None


class Resources(_Strict):
    """What one Ray task of a model reserves (fractional GPUs let small models share a card)."""

    num_cpus: float | None = Field(default=None, gt=0)
    num_gpus: float | None = Field(default=None, ge=0)


class RayConfig(_Strict):
    """``executor: ray``: one task per shard of each (model, data) cell; the driver scores."""

    #: None starts a Ray instance on this machine; "auto" joins a running cluster; ray://host:port
    address: str | None = None
    #: per task; also its torch threads
    num_cpus: float = Field(default=1, gt=0)
    #: per task; default 1 when the suite's device is CUDA, else 0
    num_gpus: float | None = Field(default=None, ge=0)
    #: how often a task whose worker died (preempted, killed) is rerun; finished samples are cached
    max_retries: int = Field(default=3, ge=0)
    #: shards per cell; default one per task slot of the cluster
    shards: int | None = Field(default=None, ge=1)
    #: per-model overrides of num_cpus / num_gpus, by model entry name
    models: dict[str, Resources] = Field(default_factory=dict)


class Suite(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    description: str = ""
    seed: int = 0
    device: str = "cpu"
    #: samples per model call; "auto" as for a model entry
    batch_size: PositiveInt | Literal["auto"] = 8
    #: feature cache, trained canaries, rendered data; default $HARNESS_CACHE_DIR or ./.harness-cache
    cache_dir: str | None = None
    output_dir: str = "results"
    models: dict[str, ModelEntry]
    data: dict[str, DataEntry]
    attacks: list[AttackEntry]
    aggregators: list[AggregatorEntry] = Field(default_factory=list)
    mia: MIAConfig = Field(default_factory=MIAConfig)
    di: DIConfig = Field(default_factory=DIConfig)
    blind: BlindConfig = Field(default_factory=BlindConfig)
    mlflow: MLflowConfig = Field(default_factory=MLflowConfig)
    #: where features are extracted: in this process, or on Ray workers (the cache_dir must then
    #: be a path every worker shares)
    executor: Literal["local", "ray"] = "local"
    ray: RayConfig = Field(default_factory=RayConfig)

    def primary_aggregator(self, family: str) -> str | None:
        """Name (label) of the aggregator entry whose test is primary for models of ``family``."""
        want = self.di.primary
        if isinstance(want, str):
            return want
        if isinstance(want, dict):
            return want.get(family)
        plugin = DEFAULT_PRIMARY.get(family)
        return next((g.label for g in self.aggregators if g.plugin == plugin), None)

    def data_for(self, model_name: str) -> list[str]:
        entry = self.models[model_name]
        return list(entry.data) if entry.data is not None else list(self.data)


# ---------------------------------------------------------------------------------------------
# loading


def _locate(node: yaml.Node | None, path: tuple) -> int | None:
    """1-based line of the YAML node at ``path`` (the deepest existing prefix)."""
    line = None
    for part in path:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == str(part):
                    line = k.start_mark.line + 1
                    nxt = v
                    break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
    else:
        if node is not None:
            line = node.start_mark.line + 1
    return line


def _dotted(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _fields_at(path: tuple) -> list[str]:
    """The allowed keys of the schema object at ``path`` (for did-you-mean)."""
    model: Any = Suite
    for part in path:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            if model in (Suite,):
                return []
            # a dict of entries (models/data): the next key is a user-chosen name
            continue
        ann = field.annotation
        model = _entry_model(ann)
    return list(getattr(model, "model_fields", {}))


def _entry_model(ann) -> Any:
    import typing

    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in typing.get_args(ann):
        m = _entry_model(arg)
        if m is not None:
            return m
    return None


def _format_error(err: dict, root: yaml.Node | None, source: str) -> SuiteError:
    loc = tuple(err["loc"])
    line = _locate(root, loc)
    where = _dotted(loc)
    if err["type"] == "extra_forbidden":
        key = str(loc[-1])
        allowed = _fields_at(loc[:-1])
        msg = did_you_mean("key", key, allowed).replace("Available:", "Allowed here:")
    elif err["type"] == "missing":
        msg = f"required key '{loc[-1]}' is missing"
    else:
        msg = f"{err['msg']} (got {err.get('input')!r})"
    if line:
        msg += f" [line {line}]"
    return SuiteError(msg, path=where, source=source)


_SEGMENT_RE = re.compile(r"^([^\[\]]*)((?:\[\d+\])*)$")


def parse_override(text: str) -> tuple[list, Any]:
    """``models.canary.params.steps=500`` → (["models","canary","params","steps"], 500). List
    items are addressed as ``attacks[2].params.t`` or ``attacks.2.params.t``."""
    if "=" not in text:
        raise SuiteError(f"override '{text}' must look like key.path=value")
    key, _, raw = text.partition("=")
    parts: list = []
    for seg in key.strip().split("."):
        m = _SEGMENT_RE.match(seg)
        if m is None:
            raise SuiteError(f"override '{text}': cannot read key segment '{seg}'; write e.g. "
                             "attacks[0].params.t=200 or attacks.0.params.t=200")
        if m.group(1):
            parts.append(int(m.group(1)) if m.group(1).isdigit() else m.group(1))
        parts += [int(i) for i in re.findall(r"\d+", m.group(2))]
    if not parts:
        raise SuiteError(f"override '{text}' has an empty key")
    return parts, yaml.safe_load(raw) if raw.strip() else ""


def apply_override(raw: dict, parts: list, value: Any) -> None:
    node: Any = raw
    for i, p in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(node, list):
            if not isinstance(p, int) or p >= len(node):
                raise SuiteError(f"override: index {p} out of range", path=_dotted(tuple(parts[:i + 1])))
            node = node[p]
            continue
        if p not in node or node[p] is None:
            node[p] = [] if isinstance(nxt, int) else {}
        node = node[p]
    last = parts[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last >= len(node):
            raise SuiteError("override: index out of range", path=_dotted(tuple(parts)))
    node[last] = value


#: limits checked before a suite is parsed or validated: a suite names models, data and attacks;
#: anything larger is a mistake (or an attack on the parser) and would hang validation
MAX_SUITE_BYTES = 1_000_000
#: YAML nodes after alias expansion (so "billion laughs" anchors count what they expand to)
MAX_YAML_NODES = 100_000
#: entries per section
MAX_ENTRIES = {"models": 100, "data": 1000, "attacks": 1000, "aggregators": 1000}


def load(path: str | Path, overrides: list[str] = (), limit: int | None = None,
         device: str | None = None) -> tuple[Suite, str]:
    """Read, override and validate a suite file. Relative paths written in it (``cache_dir``,
    ``output_dir``, plugins' path parameters) resolve against the file's folder, so a suite
    runs the same from any working directory. Returns the suite and the file's text."""
    path = Path(path)
    if not path.exists():
        raise SuiteError(f"suite file not found: {path}")
    if not path.is_file():
        raise SuiteError(f"suite file {path} is a directory, not a YAML file")
    size = path.stat().st_size
    if size > MAX_SUITE_BYTES:
        raise SuiteError(f"suite file is {size:,} bytes; the limit is {MAX_SUITE_BYTES:,}. A "
                         "suite lists models, data and attacks; long file lists belong in a "
                         "data manifest (local-folder's manifest: CSV)", source=str(path))
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise SuiteError("is not a text file (not UTF-8); a suite is a YAML file",
                         source=str(path)) from None
    suite = loads(text, source=str(path), overrides=overrides, limit=limit, device=device)
    resolve_relative(suite, path.resolve().parent)
    return suite, text


def _yaml_error(exc: yaml.YAMLError, source: str) -> SuiteError:
    """One line: where and what (PyYAML's own message spans several lines with a caret)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" [line {mark.line + 1}, column {mark.column + 1}]" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    tag = re.search(r"tag '([^']*)'", problem or "")
    if isinstance(exc, yaml.constructor.ConstructorError) and tag:
        msg = (f"the YAML tag '{tag.group(1)}' is not allowed{where}: suites are plain YAML "
               "(mappings, lists, strings, numbers, booleans)")
    else:
        msg = f"not valid YAML{where}: {' '.join(str(problem).split())}"
    return SuiteError(msg, source=source)


def _check_size(root: yaml.Node | None, source: str) -> None:
    """Count nodes as a parser would expand them (aliases count every time they are used)."""
    if root is None:
        return
    count, stack = 0, [root]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_YAML_NODES:
            raise SuiteError(f"the suite expands to more than {MAX_YAML_NODES:,} YAML nodes "
                             "(counting each use of an alias); a suite this large is refused",
                             source=source)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                stack += (k, v)
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value


def loads(text: str, source: str = "<suite>", overrides: list[str] = (), limit: int | None = None,
          device: str | None = None) -> Suite:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SUITE_BYTES:
        raise SuiteError(f"suite text is larger than {MAX_SUITE_BYTES:,} bytes; refused",
                         source=source)
    try:
        root = yaml.compose(text)
        _check_size(root, source)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    except RecursionError:
        raise SuiteError("the suite nests too deeply to parse", source=source) from None
    if not isinstance(raw, dict):
        raise SuiteError("a suite must be a mapping with keys name, models, data, attacks... "
                         f"(this file holds a {type(raw).__name__})", source=source)
    for section, cap in MAX_ENTRIES.items():
        entries = raw.get(section)
        if isinstance(entries, (list, dict)) and len(entries) > cap:
            raise SuiteError(f"{len(entries):,} entries; at most {cap:,} are allowed",
                             path=section, source=source)
    # top-level "x-..." keys hold YAML anchors for reuse (the docker-compose convention)
    raw = {k: v for k, v in copy.deepcopy(raw).items() if not str(k).startswith("x-")}
    for ov in overrides:
        parts, value = parse_override(ov)
        apply_override(raw, parts, value)
    if device is not None:
        raw["device"] = device
    if limit is not None:
        if limit < 1:
            raise SuiteError("--limit must be a positive number of samples per side")
        for entry in (raw.get("data") or {}).values():
            if isinstance(entry, dict):
                entry["limit"] = min(limit, entry.get("limit") or limit)
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        # a misspelt key also shows up as a missing required one: report the misspelling
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        err = _format_error(errors[0], root, source)
        if len(errors) > 1:
            err.args = (f"{err.args[0]} (and {len(errors) - 1} more problem(s))",)
        raise err from None
    _check_references(suite, root, source)
    _check_dirs(suite, root, source)
    return suite


def _check_dirs(suite: Suite, root, source: str) -> None:
    """A relative ``cache_dir``/``output_dir`` stays inside the folder it is relative to (the
    suite's): one that climbs out with ``..`` would write outside the working tree unnoticed.
    Elsewhere needs an explicit absolute path."""
    for key in ("cache_dir", "output_dir"):
        value = getattr(suite, key)
        if not value or Path(value).expanduser().is_absolute():
            continue
        norm = os.path.normpath(value)
        if norm == ".." or norm.startswith(".." + os.sep):
            line = _locate(root, (key,))
            raise SuiteError(f"'{value}' climbs out of the suite's folder; write an absolute "
                             f"path to keep the {key.replace('_', ' ')} elsewhere"
                             + (f" [line {line}]" if line else ""), path=key, source=source)


def _absolute(value, base: Path, must_exist: bool = False):
    if not isinstance(value, str) or not value or "://" in value:
        return value
    p = Path(value).expanduser()
    if p.is_absolute():
        return value
    full = base / p
    if must_exist and not full.exists():
        return value  # a hub id such as facebook/audiogen-medium
    return os.path.normpath(full)


def _resolve_params(kind: str, plugin: str, params: dict, base: Path) -> None:
    from . import plugins

    try:
        cls = plugins.get(kind, plugin).load()
    except Exception:  # unknown or broken plugin: check_plugins reports it
        return
    for key in getattr(cls, "path_params", ()):
        if key in params:
            value = params[key]  # a path, or a mapping of names to paths
            params[key] = ({k: _absolute(v, base) for k, v in value.items()}
                           if isinstance(value, dict) else _absolute(value, base))
    for key in getattr(cls, "path_or_hub_params", ()):
        if key in params:
            params[key] = _absolute(params[key], base, must_exist=True)
    for key in getattr(cls, "data_ref_params", ()):
        ref = params.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("source"), str):
            ref["params"] = dict(ref.get("params") or {})
            _resolve_params("dataset", ref["source"], ref["params"], base)
            for ids in ("include_ids", "exclude_ids"):
                if ref.get(ids):
                    ref[ids] = _absolute(ref[ids], base)


def resolve_relative(suite: Suite, base: Path) -> None:
    """Make the relative paths written in a suite absolute against ``base`` (the suite file's
    folder): ``cache_dir``, ``output_dir`` and every plugin parameter the plugin declares a
    path (``path_params``, ``path_or_hub_params``, data references in ``data_ref_params``).
    Defaults that were not written (``output_dir: results``) stay relative to the working
    directory."""
    for key in ("cache_dir", "output_dir"):
        if key in suite.model_fields_set and getattr(suite, key):
            setattr(suite, key, _absolute(getattr(suite, key), base))
    for entry in suite.models.values():
        _resolve_params("model", entry.plugin, entry.params, base)
    for entry in suite.data.values():
        for ref in (entry.members, entry.nonmembers):
            _resolve_params("dataset", ref.source, ref.params, base)
            for key in ("include_ids", "exclude_ids"):
                if getattr(ref, key):
                    setattr(ref, key, _absolute(getattr(ref, key), base))


def _check_references(suite: Suite, root, source: str) -> None:
    def fail(msg, loc):
        line = _locate(root, loc)
        raise SuiteError(msg + (f" [line {line}]" if line else ""), path=_dotted(loc), source=source)

    if not suite.models:
        fail("at least one model is required", ("models",))
    if not suite.attacks:
        fail("at least one attack is required", ("attacks",))
    for mname, entry in suite.models.items():
        for d in entry.data or []:
            if d not in suite.data:
                fail(did_you_mean("data entry", d, suite.data), ("models", mname, "data"))
    for dname, d in suite.data.items():
        if d.members == d.nonmembers and not d.allow_overlap:
            fail("members and nonmembers are the same source, split and params, so every "
                 "sample would carry both labels; point them at disjoint splits (or set "
                 "allow_overlap: true to measure it anyway)", ("data", dname, "nonmembers"))
    for mname in suite.ray.models:
        if mname not in suite.models:
            fail(did_you_mean("model entry", mname, suite.models), ("ray", "models", mname))
    seen: dict[str, int] = {}
    for i, a in enumerate(suite.attacks):
        for m in a.models or []:
            if m not in suite.models:
                fail(did_you_mean("model entry", m, suite.models), ("attacks", i, "models"))
        if a.label in seen:
            fail(f"attack name '{a.label}' is used twice (entries {seen[a.label]} and {i}); give "
                 "one a distinct 'name'", ("attacks", i))
        seen[a.label] = i
    seen_agg: dict[str, int] = {}
    for i, g in enumerate(suite.aggregators):
        if g.label in seen_agg:
            fail(f"aggregator name '{g.label}' is used twice; give one a distinct 'name'",
                 ("aggregators", i))
        seen_agg[g.label] = i
        if g.features != "all":
            for f in g.features:
                if f not in seen:
                    fail(did_you_mean("attack", f, seen), ("aggregators", i, "features"))
    primary = suite.di.primary
    named = {primary: ("di", "primary")} if isinstance(primary, str) else \
        {v: ("di", "primary", k) for k, v in (primary or {}).items()}
    for label, loc in named.items():
        if label not in seen_agg:
            fail("di.primary: " + did_you_mean("aggregator", label, seen_agg), loc)


def check_plugins(suite: Suite, text: str = "", source: str = "<suite>") -> list[str]:
    """Resolve every plugin name and parameter key (imports plugin classes, loads no weights).
    Returns warnings (e.g. an attack that matches no model's family)."""
    from . import plugins

    root = yaml.compose(text) if text else None
    warnings: list[str] = []

    def fail(exc_msg, loc):
        line = _locate(root, loc)
        raise SuiteError(exc_msg + (f" [line {line}]" if line else ""), path=_dotted(loc),
                         source=source)

    def check(kind, name, params, loc):
        reg = plugins.registry(kind)
        if name not in reg:
            fail(plugins.unknown_message(kind, name, reg),
                 loc + ("plugin",) if kind != "dataset" else loc + ("source",))
        cls = reg[name].load()
        defaults = getattr(cls, "defaults", None)
        if isinstance(defaults, dict):
            for key in params:
                if key not in defaults:
                    fail(did_you_mean(f"parameter for {kind} '{name}'", key, defaults),
                         loc + ("params", key))
        return reg[name]

    families = set()
    for mname, m in suite.models.items():
        info = check("model", m.plugin, m.params, ("models", mname))
        fam = getattr(info.load(), "family", info.family)
        families.add(fam)
    for dname, d in suite.data.items():
        for side in ("members", "nonmembers"):
            ref = getattr(d, side)
            check("dataset", ref.source, ref.params, ("data", dname, side))
    for i, a in enumerate(suite.attacks):
        info = check("attack", a.plugin, a.params, ("attacks", i))
        if info.family != "any" and info.family not in families:
            warnings.append(f"attack '{a.label}' ({info.family}) matches no model in the suite")
    for i, g in enumerate(suite.aggregators):
        info = check("aggregator", g.plugin, g.params, ("aggregators", i))
        if info.family != "any" and info.family not in families:
            warnings.append(f"aggregator '{g.label}' ({info.family}) matches no model in the suite")
    if suite.blind.enabled:
        check("baseline", suite.blind.plugin, suite.blind.params, ("blind",))
    return warnings
