"""Plugin discovery and the registry.

Every plugin, built-in or third-party, is a module behind an entry point in the ``harness`` group
and implements ``register_*`` hooks (see ``hookspecs``). Registration stores a *factory reference*
("module:attr"), not the class, so listing plugins never imports torch.

Rules (issue #5): a duplicate name fails naming both distributions; an unknown name gets
"Did you mean"; a plugin that fails to import becomes a warning and leaves the others working;
``HARNESS_LOAD_PLUGINS`` (comma-separated distribution names, empty = built-ins only) selects
third-party distributions; under pytest only this project's own entry points load.

Tests (this project's and a plugin author's, through ``harness.testing``) register plugin objects
with ``register``/``unregister``: registering an object that is already registered (a module
its installed entry point loaded) is a no-op, so the same test works whether or not the
author's package is installed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from . import hookspecs
from .errors import DuplicatePluginError, PluginLoadError, UnknownNameError, did_you_mean

ENTRY_POINT_GROUP = "harness"
OWN_DISTRIBUTION = "audio-mia-harness"
KINDS = ("model", "attack", "aggregator", "dataset", "baseline")
FAMILIES = ("autoregressive", "diffusion", "any")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")

pm = pluggy.PluginManager("harness")
pm.add_hookspecs(hookspecs)

_provenance: dict[str, tuple[str, str | None]] = {}
load_problems: list[str] = []
#: installed third-party distributions left unloaded by HARNESS_LOAD_PLUGINS or by the test guard
skipped: list[str] = []
_loaded = False


class PluginLoadWarning(UserWarning):
    """A plugin distribution could not be imported; the others still load."""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def load_plugins() -> None:
    """Import every selected entry point once (idempotent)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    env = os.environ.get("HARNESS_LOAD_PLUGINS")
    selected = None if env is None else {_canonical(s) for s in env.split(",") if s.strip()}
    in_tests = getattr(sys, "_called_from_test", False)
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        dist_name = _canonical(dist.metadata["Name"] or "")
        if dist_name in seen:
            continue
        eps = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
        if not eps:
            continue
        seen.add(dist_name)
        if dist_name != OWN_DISTRIBUTION:
            if in_tests or (selected is not None and dist_name not in selected):
                skipped.append(f"{dist_name} {dist.version}")
                continue
        for ep in eps:
            plugin_name = f"{dist_name}:{ep.name}"
            if pm.has_plugin(plugin_name):
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                msg = f"plugin '{ep.name}' from {dist_name} {dist.version} failed to import: {exc!r}"
                load_problems.append(msg)
                warnings.warn(msg, PluginLoadWarning, stacklevel=2)
                continue
            if pm.is_registered(module):  # a test registered it first: keep it, add provenance
                plugin_name = pm.get_name(module)
            else:
                pm.register(module, name=plugin_name)
            _provenance[plugin_name] = (dist_name, dist.version)


def register(obj: Any, name: str) -> bool:
    """Register a plugin object (a module or an instance with ``@hookimpl`` methods) in this
    process. Returns False, changing nothing, when ``obj`` is already registered (e.g. the module
    an installed entry point loaded), True when this call registered it; only then should the
    caller ``unregister`` it. A different object under a taken name is a DuplicatePluginError."""
    load_plugins()
    if pm.is_registered(obj):
        return False
    if pm.has_plugin(name):
        raise DuplicatePluginError(
            f"plugin name '{name}' is already taken by {pm.get_plugin(name)!r}; register "
            f"{obj!r} under another name"
        )
    pm.register(obj, name=name)
    return True


def unregister(name: str) -> None:
    """Remove a plugin registered with ``register`` (by the name it was registered under)."""
    if pm.has_plugin(name):
        pm.unregister(name=name)
        _provenance.pop(name, None)


def restricted_note() -> str:
    """Why a name might be unknown: third-party loading is off or narrowed ('' when it is not)."""
    if getattr(sys, "_called_from_test", False):
        why = "third-party plugins are not loaded under tests, where sys._called_from_test is set"
    elif os.environ.get("HARNESS_LOAD_PLUGINS") is not None:
        env = os.environ["HARNESS_LOAD_PLUGINS"]
        why = (f"third-party plugins are limited by HARNESS_LOAD_PLUGINS={env!r}" if env.strip()
               else "third-party plugins are not loaded: HARNESS_LOAD_PLUGINS is set and empty")
    else:
        return ""
    if skipped:
        why += (f"; installed but not loaded: {', '.join(sorted(set(skipped)))}; add the "
                "distribution to HARNESS_LOAD_PLUGINS, or unset it to load all")
    return f". Note: {why}."


def unknown_message(kind: str, name: str, available) -> str:
    """"Unknown X 'y'. Did you mean ...? Available: ..." plus ``restricted_note``."""
    return did_you_mean(kind, name, available) + restricted_note()


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin. ``factory`` is a callable or a lazy "module:attr" reference."""

    kind: str
    name: str
    factory: Any
    family: str = "any"
    description: str = ""
    distribution: str = ""
    version: str | None = None
    module: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def load(self) -> Callable:
        """Import and return the factory (class or callable)."""
        if not isinstance(self.factory, str):
            return self.factory
        mod_name, _, attr = self.factory.partition(":")
        try:
            obj = importlib.import_module(mod_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:
            raise PluginLoadError(
                f"{self.kind} '{self.name}' (from {self.distribution}) could not be imported from "
                f"'{self.factory}': {exc!r}. Check that its dependencies are installed."
            ) from exc
        return obj

    def create(self, **params):
        return self.load()(**params)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "family": self.family,
            "distribution": self.distribution,
            "version": self.version,
            "description": self.description,
            "module": self.module,
        }


def _collect(kind: str) -> dict[str, PluginInfo]:
    load_plugins()
    hook = getattr(pm.hook, f"register_{kind}s")
    found: dict[str, PluginInfo] = {}
    for impl in reversed(hook.get_hookimpls()):  # registration order
        dist, version = _provenance.get(impl.plugin_name, (impl.plugin_name, None))
        module = getattr(impl.plugin, "__name__", impl.plugin_name)

        def register(name, factory, *, family="any", description="", _d=dist, _v=version,
                     _m=module, **extra):
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise PluginLoadError(
                    f"{kind} name {name!r} from {_d} is invalid: use lower-case letters, digits, "
                    "'-', '_' or '.'"
                )
            if family not in FAMILIES:
                raise PluginLoadError(
                    f"{kind} '{name}' from {_d} declares family {family!r}; use one of {FAMILIES}"
                )
            if name in found:
                other = found[name]
                raise DuplicatePluginError(
                    f"{kind} '{name}' is registered twice: by {other.distribution} "
                    f"({other.module}) and by {_d} ({_m}). Uninstall one, or select distributions "
                    "with HARNESS_LOAD_PLUGINS."
                )
            found[name] = PluginInfo(kind, name, factory, family, description, _d, _v, _m, extra)

        try:
            impl.function(**{a: register for a in impl.argnames if a == "register"})
        except DuplicatePluginError:
            raise
        except Exception as exc:
            msg = f"plugin {impl.plugin_name} failed in register_{kind}s: {exc!r}"
            load_problems.append(msg)
            warnings.warn(msg, PluginLoadWarning, stacklevel=2)
    return found


def registry(kind: str) -> dict[str, PluginInfo]:
    """All plugins of one kind, by name."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return _collect(kind)


def get(kind: str, name: str) -> PluginInfo:
    """Look one plugin up; an unknown name raises with suggestions."""
    reg = registry(kind)
    if name not in reg:
        raise UnknownNameError(unknown_message(kind, name, reg))
    return reg[name]


def all_plugins() -> list[PluginInfo]:
    return [info for kind in KINDS for info in registry(kind).values()]


def shippable() -> tuple[list[tuple[str, Any]], list[str]]:
    """What another process needs to see the plugins this one sees: the objects registered with
    ``register`` (not from entry points), by name, and the third-party distributions loaded from
    entry points (for ``HARNESS_LOAD_PLUGINS`` there)."""
    load_plugins()
    objects = [(name, obj) for name, obj in pm.list_name_plugin() if name not in _provenance]
    dists = sorted({d for d, _ in _provenance.values() if d != OWN_DISTRIBUTION})
    return objects, dists
