"""Membership- and dataset-inference benchmark harness for audio generative models.

Kept import-light on purpose: `harness --help` and `harness plugins` must not pay for torch,
diffusers, audiocraft or mlflow. Heavy modules are imported inside the functions that use them.
"""

import pluggy

__version__ = "0.1.0"

#: Decorator for plugin hook implementations: ``@hookimpl def register_attacks(register): ...``
hookimpl = pluggy.HookimplMarker("harness")

__all__ = ["__version__", "hookimpl"]
