"""The ``harness`` pytest plugin (entry point group ``pytest11``): fixtures for plugin tests.

Loaded by pytest in every session of an environment where the harness is installed, so it only
defines fixtures: no hooks that change other projects' sessions, and nothing heavy imported.
Disable with ``-p no:harness``.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def register_plugin():
    """``register_plugin(obj, name=None)`` registers a plugin object (your entry-point module, or
    an object with ``@hookimpl`` methods) for one test. Registering an object that is already
    registered — your module, when your package is installed and its entry point loaded it — is
    a no-op, so the same test works installed or not. Returns the object."""
    from harness import plugins

    mine: list[str] = []

    def _register(obj, name: str | None = None):
        name = name or getattr(obj, "__name__", None) or type(obj).__name__
        if plugins.register(obj, name):
            mine.append(name)
        return obj

    yield _register
    for name in reversed(mine):
        plugins.unregister(name)


@pytest.fixture
def toy_plugins(register_plugin):
    """Registers ``toy-data``, ``toy-autoregressive`` and ``toy-diffusion`` for one test (see
    ``harness.testing.toys``)."""
    from harness.testing.toys import TOY_PLUGIN, TOY_PLUGIN_NAME

    register_plugin(TOY_PLUGIN, TOY_PLUGIN_NAME)
