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
    """Resolve every data reference (audit data and canaries' training data): files, manifest
    columns and split values are checked by the dataset plugin; counts against ``n_members`` /
    ``n_nonmembers`` here. Returns one summary line per data entry."""
    from .canary import training_samples
    from .datasets import resolve

    def samples(ref: Mapping, where: str) -> list:
        try:
            return resolve(ref)
        except (DataError, ConfigError) as exc:
            raise type(exc)(f"{where}: {exc}") from exc

    lines = []
    for name, entry in suite.data.items():
        counts = {}
        for side, want in (("members", entry.n_members), ("nonmembers", entry.n_nonmembers)):
            got = len(samples(getattr(entry, side).model_dump(), f"data '{name}' {side}"))
            if want is not None and got < want:
                raise DataError(f"data '{name}' {side}: n_{side} is {want} but the reference has "
                                f"only {got} sample(s); lower n_{side} or add recordings")
            if min(got, want or got) < 2:
                raise DataError(f"data '{name}' {side}: {got} sample(s); at least 2 are needed")
            counts[side] = min(got, want or got)
        lines.append(f"data '{name}': {counts['members']} members, "
                     f"{counts['nonmembers']} non-members")
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

