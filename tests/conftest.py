"""Test isolation: never auto-load third-party plugins installed on the machine (the simonw/llm
``sys._called_from_test`` convention), never touch the network, keep every derived file (canaries,
rendered data, feature cache) under a per-session temporary root.

Fixtures (``register_plugin``, ``toy_plugins``) come from the harness's own pytest plugin,
``harness.testing.pytest_plugin``, the one a plugin author's tests use."""

import os
import sys
import tempfile


def pytest_configure(config):
    if not config.pluginmanager.hasplugin("harness"):  # PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
        config.pluginmanager.import_plugin("harness.testing.pytest_plugin")
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
