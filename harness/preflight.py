"""Checks that need the plugins and the data but no weights: what ``harness run`` would reject on
configuration, found by ``harness validate`` (and by ``run`` itself) before any work.

Why beyond the schema: a missing manifest, ``split: members`` where the manifest says ``member``,
or an attack that needs the null condition on a model without one used to pass validation and
fail only at run time, in the last cell, after the others had run.
"""

from __future__ import annotations

from typing import Mapping

from .errors import ConfigError, DataError
from .suite import Suite

# model parameters that hold a data reference the model trains on (canaries)
TRAIN_REF_KEYS = ("train_data", "vae_data")


def check_needs(suite: Suite) -> None:
    """Every attack that would run on a model gets the outputs it needs from that model.
    Instantiates models and attacks (constructors load no weights; canaries train lazily)."""
    from . import runner

    for model_name in suite.models:
        model, info = runner.make_model(model_name, suite)
        family = info.family if info.family != "any" else model.family
        runner.make_attacks(suite, model_name, model, family)  # raises ConfigError on a gap


def _is_ref(value) -> bool:
    return isinstance(value, Mapping) and "source" in value and "split" in value


def check_data(suite: Suite) -> list[str]:
    """Resolve and check every data reference the way ``run`` does (the runner's own
    ``load_cell_data``: files, manifest columns, split values, counts, unreadable or silent
    audio, member/non-member overlap), plus the canaries' training data. Returns one summary line
    per data entry and any warnings."""
    from .canary import training_samples
    from .runner import load_cell_data

    lines: list[str] = []
    for name in suite.data:
        load_cell_data(suite, name, lambda msg: lines.append(msg.removeprefix("[data] ")))
    for model_name, m in suite.models.items():
        for key in TRAIN_REF_KEYS:
            ref = m.params.get(key)
            if _is_ref(ref):
                try:
                    training_samples(m.plugin, ref, key)
                except (DataError, ConfigError) as exc:
                    raise type(exc)(f"model '{model_name}' {key}: {exc}") from exc
    return lines


def check(suite: Suite) -> list[str]:
    """All preflight checks; returns summary lines. Raises a named error (``DataError``,
    ``ConfigError``) on the first problem."""
    lines = check_data(suite)
    check_needs(suite)
    return lines

