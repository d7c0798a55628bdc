"""The five hooks a plugin may implement. Each receives a ``register`` callback, so the host keeps
control of naming, collisions and provenance (the simonw/llm pattern)."""

import pluggy

hookspec = pluggy.HookspecMarker("harness")


@hookspec
def register_models(register):
    """Register model plugins: ``register(name, factory, family=..., description=...)``."""


@hookspec
def register_attacks(register):
    """Register attack plugins: ``register(name, factory, family=..., description=...)``."""


@hookspec
def register_aggregators(register):
    """Register dataset-inference aggregators: ``register(name, factory, description=...)``."""


@hookspec
def register_datasets(register):
    """Register dataset sources: ``register(name, factory, description=...)``."""


@hookspec
def register_baselines(register):
    """Register model-free baselines (features of the samples alone, for the blind check):
    ``register(name, factory, description=...)``."""
