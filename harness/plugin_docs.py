"""``harness plugins NAME``: one plugin in full, so that a suite can be written without reading
the plugin's source (description, family, needs/provides, every parameter with its default and
one line of doc, an example suite entry).

Where a parameter's line comes from, first found wins: the class's ``param_docs`` mapping (merged
along the class hierarchy), the inline comment after the key in the class's ``defaults`` literal,
then a ``key``: line in the class's or its module's docstring. Plugins already document their
parameters in one of those ways; none has to repeat itself. Enumerated parameters also list
their allowed values in ``param_choices`` (merged the same way), the tuple the plugin's
``validate`` checks against where it can, so the shown choices are the accepted ones. Every
built-in plugin documents every parameter (``tests/test_plugin_docs.py`` fails otherwise).
"""

from __future__ import annotations

import copy
import inspect
import re
import sys

import yaml

from .plugins import PluginInfo

_INLINE = re.compile(r'^\s*["\']([A-Za-z0-9_]+)["\']\s*:\s*.*?#\s*(.+?)\s*$')
_DOCLINE = re.compile(r"``([A-Za-z0-9_]+)``\s*(?:\([^)]*\))?\s*:\s*(.+)")


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    m = re.match(r"(.+?[.;])(\s|$)", text)
    return (m.group(1) if m else text)[:160]


def param_docs(cls) -> dict[str, str]:
    """One line of doc per parameter name (missing: not documented anywhere)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        docs.update(getattr(klass, "__dict__", {}).get("param_docs", {}) or {})
    found: dict[str, str] = {}
    for klass in cls.__mro__:
        try:
            src = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        block = re.search(r"defaults\s*(?::[^=]*)?=\s*\{(.*?)\n\s*\}", src, re.S)
        for line in (block.group(1).splitlines() if block else []):
            m = _INLINE.match(line)
            if m and m.group(1) not in found:
                found[m.group(1)] = m.group(2)
    texts = [cls.__doc__ or "", getattr(sys.modules.get(cls.__module__), "__doc__", "") or ""]
    for text in texts:
        for para in re.split(r"\n\s*(?:\n|- )", text):
            m = _DOCLINE.search(" ".join(para.split()))
            if m and m.group(1) not in found:
                found[m.group(1)] = _first_sentence(m.group(2))
    return {k: docs.get(k) or found.get(k, "") for k in getattr(cls, "defaults", {}) or {}}


def param_choices(cls) -> dict[str, tuple]:
    """Allowed values of the enumerated parameters (only keys the plugin accepts)."""
    out: dict[str, tuple] = {}
    for klass in reversed(cls.__mro__):
        out.update(getattr(klass, "__dict__", {}).get("param_choices", {}) or {})
    accepted = getattr(cls, "defaults", {}) or {}
    return {k: tuple(v) for k, v in out.items() if k in accepted}


def undocumented(cls) -> list[str]:
    """Parameters with no line of doc anywhere (a built-in plugin must have none)."""
    return [k for k, v in param_docs(cls).items() if not v]


def parameters(cls) -> list[dict]:
    """Every parameter as ``{name, default, doc, choices}`` (``harness plugins NAME --json``)."""
    docs, choices = param_docs(cls), param_choices(cls)
    return [{"name": k, "default": v, "doc": docs[k],
             "choices": list(choices[k]) if k in choices else None}
            for k, v in (getattr(cls, "defaults", {}) or {}).items()]


def _needs_provides(info: PluginInfo, cls) -> list[str]:
    """What an attack needs / a model provides, from a default-constructed instance (no weights
    are loaded by constructors); when the defaults alone are not a valid configuration, say so."""
    if info.kind not in ("attack", "model"):
        return []
    what = "needs" if info.kind == "attack" else "provides"
    try:
        obj = cls(**({"device": "cpu"} if info.kind == "model" else {}))
        got = obj.needs() if info.kind == "attack" else obj.outputs()
    except Exception as exc:  # noqa: BLE001 (shown to the user, not hidden)
        got = _outputs_unchecked(cls) if info.kind == "model" else None
        if got is None:
            return [f"{what}: depends on the parameters ({type(exc).__name__}: {exc})"]
    line = f"{what}: {', '.join(sorted(got)) or '(nothing)'}"
    if info.kind == "attack" and "mode" in (getattr(cls, "defaults", {}) or {}):
        line += "  (with the default parameters; e.g. mode: conditional changes it)"
    return [line]


def _outputs_unchecked(cls) -> set[str] | None:
    """A model's outputs when its defaults are not a valid configuration (a required checkpoint):
    ``outputs()`` of the built-in families reads class attributes only, so it is asked of an
    instance that skipped ``validate``; None when that is not enough."""
    try:
        obj = object.__new__(cls)
        obj.params = copy.deepcopy(getattr(cls, "defaults", {}) or {})
        obj.device = "cpu"
        return set(obj.outputs())
    except Exception:  # noqa: BLE001 (the caller shows the constructor's error instead)
        return None


def _example(info: PluginInfo, cls) -> str:
    params = dict(getattr(cls, "defaults", {}) or {})
    entry: dict = {"plugin": info.name}
    if params:
        entry["params"] = params
    if info.kind == "model":
        doc = {"models": {f"my-{info.name}": entry}}
    elif info.kind == "dataset":
        ref = {"source": info.name, "split": "<split>", **({"params": params} if params else {})}
        doc = {"data": {"mine": {"members": ref, "nonmembers": copy.deepcopy(ref)}}}
    elif info.kind == "baseline":
        doc = {"blind": entry}
    else:
        doc = {f"{info.kind}s": [entry]}
    return yaml.dump(doc, Dumper=_NoAliases, sort_keys=False, default_flow_style=None, width=100)


class _NoAliases(yaml.SafeDumper):
    """Writes repeated values out in full: an example is read by people, not by YAML."""

    def ignore_aliases(self, data):
        return True


def describe(info: PluginInfo) -> str:
    """The full text view of one registered plugin."""
    cls = info.load()
    lines = [f"{info.name} ({info.kind}, family {info.family})",
             f"  from {info.distribution} {info.version or ''}".rstrip() + f", module {info.module}",
             ""]
    doc = inspect.cleandoc(cls.__doc__ or "") or info.description
    lines += ["  " + ln if ln else "" for ln in doc.splitlines()] + [""]
    lines += _needs_provides(info, cls)
    if lines[-1]:
        lines.append("")
    defaults = getattr(cls, "defaults", {}) or {}
    docs = param_docs(cls)
    choices = param_choices(cls)
    if defaults:
        lines += ["parameters (default — doc [allowed values]):"]
        width = max(len(k) for k in defaults)
        for k, v in defaults.items():
            shown = yaml.safe_dump(v, default_flow_style=True, width=10**6).strip()
            shown = shown.removesuffix("\n...").removesuffix("...").strip()
            allowed = f" [one of: {', '.join(map(str, choices[k]))}]" if k in choices else ""
            doc = (docs[k] + allowed).strip()
            lines.append(f"  {k.ljust(width)}  {shown}" + (f"  — {doc}" if doc else ""))
    else:
        lines += ["parameters: none"]
    lines += ["", "example suite entry:"]
    lines += ["  " + ln for ln in _example(info, cls).rstrip().splitlines()]
    return "\n".join(lines)
