"""Test isolation: never auto-load third-party plugins installed on the machine (the simonw/llm
``sys._called_from_test`` convention), never touch the network, keep every derived file (canaries,
rendered data, feature cache) under a per-session temporary root."""

import os
import sys
import tempfile

import pytest


def pytest_configure(config):
    sys._called_from_test = True
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("MPLBACKEND", "Agg")
    # HARNESS_TEST_CACHE_DIR lets a developer reuse trained canaries across test sessions.
    root = os.environ.get("HARNESS_TEST_CACHE_DIR") or tempfile.mkdtemp(prefix="harness-tests-")
    os.environ["HARNESS_CACHE_DIR"] = root


def pytest_unconfigure(config):
    if hasattr(sys, "_called_from_test"):
        del sys._called_from_test


@pytest.fixture
def register_plugin():
    """Register a plugin object for the duration of one test:
    ``register_plugin(obj, name="my-test-plugin")``."""
    from harness import plugins

    names = []

    def _register(obj, name):
        plugins.load_plugins()
        plugins.pm.register(obj, name=name)
        names.append(name)
        return obj

    yield _register
    for name in names:
        plugins.pm.unregister(name=name)
