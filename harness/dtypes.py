"""The one dtype table every model plugin uses: names a suite may give, the torch dtype each
means, and whether a model's forward pass runs under autocast for it.

Why one table: each plugin had its own tuple or dict, with the same three names but different
validation and error messages, and one (AudioGen) autocast only when the name was not float32,
which broke when the loader itself had cast part of the model (issue #9). Policy: a model runs
*end to end* in the suite's dtype (cast after loading), and autocasts only where its official
pipeline autocasts (``autocast``); torch is imported lazily so the core stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: accepted names, in the order error messages list them
NAMES = ("float32", "float16", "bfloat16")


def check(name, where: str) -> str:
    """``name`` if it is a known dtype name, else a ConfigError that lists the choices."""
    if name not in NAMES:
        raise ConfigError(f"{where}: dtype must be one of {', '.join(NAMES)}, got {name!r}")
    return name


def table() -> dict:
    """{name: torch dtype} for every accepted name (imports torch)."""
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def torch_dtype(name: str) -> "torch.dtype":
    return table()[check(name, "dtype")]


def autocast(name: str, device: str):
    """The autocast context of a reduced-precision forward pass (disabled for float32)."""
    import torch

    dtype = torch_dtype(name)
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype,
                          enabled=dtype != torch.float32)


def module_dtypes(module) -> set[str]:
    """Names of the floating dtypes of a module's parameters and buffers (what it really runs
    in; a loader may have cast only part of it)."""
    out = set()
    for t in list(module.parameters()) + list(module.buffers()):
        if t.is_floating_point():
            out.add(str(t.dtype).replace("torch.", ""))
    return out
