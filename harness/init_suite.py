"""``harness init``: a commented starter suite for auditing one's own recordings.

Why: the first hour of a rights holder with a folder of clips went into learning the suite's
keys from error messages. The written suite names every choice it made (data references, the
attacks of the model's family, the DI aggregator, the null control) with a comment saying what
to change, and it validates as written (``harness validate``), so the next step is ``run``.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError
from .suite import DEFAULT_PRIMARY as AGGREGATOR  # the primary DI aggregator per model family


def data_ref(where: str, split: str | None) -> dict:
    """A local-folder reference for a directory or a CSV manifest."""
    path = Path(where).expanduser()
    if path.is_dir():
        return {"source": "local-folder", "split": split or "all",
                "params": {"path": str(path.resolve())}}
    if path.is_file() and path.suffix.lower() == ".csv":
        return {"source": "local-folder", "split": split or "all",
                "params": {"manifest": str(path.resolve())}}
    raise ConfigError(f"{where}: give a directory of recordings or a CSV manifest (columns "
                      "path, caption, optional split)")


def _flow(value) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip()


def starter_suite(members: str, nonmembers: str, model: str, *, name: str = "my-audit",
                  members_split: str | None = None, nonmembers_split: str | None = None) -> str:
    """The text of a starter suite (YAML with comments)."""
    from . import plugins

    info = plugins.get("model", model)
    cls = info.load()
    family = info.family if info.family != "any" else getattr(cls, "family", "any")
    if family not in AGGREGATOR:
        raise ConfigError(f"model '{model}' has family '{family}'; harness init knows the "
                          f"{' and '.join(AGGREGATOR)} families")
    mref, nref = data_ref(members, members_split), data_ref(nonmembers, nonmembers_split)
    from .datasets import resolve

    n_min = min(len(resolve(mref)), len(resolve(nref)))  # names a bad folder or split now
    n_grid = [n for n in (2, 4, 8, 16, 32, 64, 128) if n < n_min] + [n_min]
    defaults = getattr(cls, "defaults", {}) or {}
    is_canary = "train_data" in defaults
    no_null = getattr(cls, "has_null_condition", True) is False
    attacks = [a for a in plugins.registry("attack").values() if a.family == family]
    lines = [
        f"# Starter suite written by `harness init` for model '{model}' ({family}).",
        "# Check it: harness validate THIS_FILE    Run it: harness run THIS_FILE",
        "# Every plugin's parameters: harness plugins NAME",
        f"name: {name}",
        "seed: 0",
        "device: cpu            # cuda for a GPU",
        "batch_size: 8",
        "",
        "x-refs:",
        "  # members: recordings the model was (or is suspected to have been) trained on",
        f"  members: &members {_flow(mref)}",
        "  # non-members: recordings of the same kind it cannot have seen",
        f"  nonmembers: &nonmembers {_flow(nref)}",
        "",
        "models:",
        f"  {model}:",
        f"    plugin: {model}",
    ]
    if is_canary:
        lines += [
            "    # a canary trained here on your members: checks the pipeline on your data with",
            "    # a known answer. Add n: N to train_data to train on a seeded subset of N clips",
            "    # (the same clips as the data entry's n_members: N, with the same seed).",
            "    params: {train_data: *members}",
        ]
    else:
        lines += [
            "    # a released model: see `harness plugins " + model + "` for its parameters",
            "    params: {}",
        ]
    lines += [
        "",
        "data:",
        "  mine:",
        "    members: *members",
        "    nonmembers: *nonmembers",
        "    # n_members: 48      # a seeded subset; default: every clip of the split",
        "    # n_nonmembers: 48",
        "",
        f"attacks:   # every {family} attack; delete the ones you do not want",
    ]
    for a in sorted(attacks, key=lambda a: a.name):
        adef = getattr(a.load(), "defaults", {}) or {}
        if no_null and "mode" in adef:
            lines.append(f"  - {{plugin: {a.name}, params: {{mode: conditional}}}}"
                         "   # the model has no null condition")
        else:
            lines.append(f"  - plugin: {a.name}")
    lines += [
        "",
        "aggregators:",
        f"  - plugin: {AGGREGATOR[family]}",
        "",
        "# MIA: AUC and TPR at this FPR (chance: AUC 0.5, TPR = FPR)",
        "mia: {target_fpr: 0.01, subsamples: 250, subsample_fraction: 0.5}",
        "# DI: the claim is one pre-declared test of all members against all non-members",
        "# (the aggregator above; di.n fixes a smaller n in advance). The smallest n at which",
        "# the test rejects is exploratory. The null control (non-members vs non-members) must",
        "# reject at about alpha, or the p-values cannot be trusted",
        f"di: {{n_grid: {_flow(n_grid)}, draws: 500, alpha: 0.01}}   # n up to your smaller side",
        "mlflow: {tracking_uri: sqlite:///mlflow.db, experiment: " + name + "}",
        "",
    ]
    return "\n".join(lines)
