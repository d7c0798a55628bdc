"""``batch_size: auto``: the largest batch that fits on the card, found once and remembered.

Why: the right batch size depends on the model, the attacks' gradient passes and the card's
memory, so a fixed number is either wasteful on a large card or an OOM crash on a small one. The
first run starts at ``START`` and halves on a CUDA out-of-memory error (retrying the same
samples); the size that worked is stored in the cache per model (plugin, checkpoint identity,
params) and device (CUDA card name and memory), so later runs, shards and Ray workers start from
it without probing again — and so cut the same batches, which keeps their numbers identical
(``harness.shards``). A run that had to halve mid-way computed its earlier batches at the larger
size; those stay cached as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import atomic
from .cache import make_key
from .errors import HarnessError

START = 64


def is_oom(exc: BaseException) -> bool:
    """A CUDA out-of-memory error (the only OOM torch raises instead of being killed)."""
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError)


def device_identity(device: str) -> str:
    """The card behind ``device``: two different cards never share a remembered size."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        idx = torch.device(device).index
        idx = torch.cuda.current_device() if idx is None else idx
        props = torch.cuda.get_device_properties(idx)
        return f"cuda:{props.name}:{props.total_memory}"
    return device


class AutoBatch:
    """A batch size that halves on CUDA OOM and remembers what fitted."""

    def __init__(self, model_key: dict, device: str, cache_root: Path, start: int = START):
        self.inputs = {"model": model_key, "device": device_identity(device)}
        self.path = Path(cache_root) / "batch-sizes" / f"{make_key(self.inputs)}.json"
        self.value = start
        if self.path.exists():
            self.value = int(json.loads(self.path.read_text())["batch_size"])
        self.remembered = self.path.exists()

    def __int__(self) -> int:
        return self.value

    def shrink(self, error: str, label: str, echo) -> int:
        """Halve after an OOM (``error`` describes it) and remember it; at 1 the OOM is a named
        error."""
        if self.value <= 1:
            raise HarnessError(
                f"{label}: CUDA out of memory even with batch_size 1 ({error}); use a card with "
                "more memory, a lower precision (the model's dtype parameter) or fewer "
                "gradient-based attacks")
        try:
            import torch

            torch.cuda.empty_cache()
        except Exception:  # no CUDA: nothing to release
            pass
        self.value //= 2
        echo(f"[batch] {label}: CUDA out of memory; batch_size auto -> {self.value}")
        self.remember()
        return self.value

    def remember(self) -> None:
        if self.remembered and json.loads(self.path.read_text())["batch_size"] == self.value:
            return
        atomic.write_json(self.path, {"batch_size": self.value, **self.inputs})
        self.remembered = True


def batch_size_for(suite, model_name: str, model, model_info, identity: dict,
                   cache_root: Path) -> int | AutoBatch:
    """The model entry's batch size, the suite's, or an AutoBatch for ``auto``."""
    entry = suite.models[model_name]
    value = entry.batch_size or suite.batch_size
    if value != "auto":
        return value
    key = {"plugin": entry.plugin, "distribution": model_info.distribution,
           "plugin_version": getattr(model, "version", "1"), "identity": identity,
           "params": entry.params}
    return AutoBatch(key, suite.device, cache_root)
