"""Test support for plugin authors (and for the harness's own tests).

Installed with the harness and active in every pytest session as the ``harness`` pytest plugin
(fixtures ``register_plugin`` and ``toy_plugins``); everything else is imported from here:

- ``check_attack`` / ``check_aggregator``: contract checks with messages that say what to fix.
- ``run_suite``: run a suite (dict, YAML text or path) into a scratch directory, get its results.
- ``toy_suite`` / ``toy_data``: suites on the toy models and data (``toys_registered`` registers
  them outside pytest); ``ToyDataset``, ``ToyAutoregressiveModel``, ``ToyDiffusionModel``.
- ``registered``: register a plugin object for a ``with`` block.

Import-light: importing this package (or collecting tests that do) does not import torch.
"""

from .checks import CheckReport, check_aggregator, check_attack, null_features
from .suites import SuiteResult, registered, run_suite, toy_data, toy_suite, toys_registered
from .toys import ToyAutoregressiveModel, ToyDataset, ToyDiffusionModel, ToyPlugin

__all__ = [
    "CheckReport", "SuiteResult", "ToyAutoregressiveModel", "ToyDataset", "ToyDiffusionModel",
    "ToyPlugin", "check_aggregator", "check_attack", "null_features", "registered", "run_suite",
    "toy_data", "toy_suite", "toys_registered",
]
