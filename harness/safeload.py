"""The one way a checkpoint file is read: ``torch.load(weights_only=True)``, always.

Why: auditors load checkpoints they did not make, and a pickle can run any code while it is read
(a ``__reduce__`` that calls ``os.system``). ``weights_only`` restricts the unpickler to tensors and
plain containers; the few extra names Lightning/FIGARO checkpoints reference are listed below,
each mapped to an inert stand-in, so even an allowed name cannot execute anything. A file that
needs any other global is refused with a ``ModelLoadError`` naming it and giving the command that
converts a *trusted* file once (``python -m harness.safeload IN OUT --trust``).

Every model plugin reads ``.ckpt``/``.bin``/``.pt`` files through :func:`load`;
``grep -rn "torch.load" harness plugins`` shows only this module.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

from .errors import ModelLoadError


class _LightningClassKey:
    """Inert stand-in for a Lightning callback class that PyTorch-Lightning < 1.5 used as a dict
    key in ``checkpoint["callbacks"]`` (the class object itself, never an instance). Calling it
    makes an empty object; it has no behaviour to trigger."""

    __slots__ = ()


#: globals a checkpoint may reference besides torch's own tensor/storage/container types, and
#: the inert object each one is loaded as. AttributeDict is Lightning's ``dict`` subclass for
#: ``hyper_parameters``; loading it as a plain dict keeps its items.
ALLOWED_GLOBALS: dict[str, Any] = {
    "pytorch_lightning.utilities.parsing.AttributeDict": dict,
    "lightning_fabric.utilities.data.AttributeDict": dict,
    "lightning.fabric.utilities.data.AttributeDict": dict,
    **{f"{pkg}.callbacks.{mod}.{cls}": _LightningClassKey
       for pkg in ("pytorch_lightning", "lightning.pytorch")
       for mod, cls in (("model_checkpoint", "ModelCheckpoint"),
                        ("early_stopping", "EarlyStopping"),
                        ("lr_monitor", "LearningRateMonitor"))},
}

_GLOBAL_RE = re.compile(r"GLOBAL (\S+) was not an allowed global")
_WEIGHTS_RE = re.compile(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|\nCheck the documentation|$)",
                         re.S)


def convert_command(path: str | os.PathLike) -> str:
    p = str(path)
    stem = p[: -len(Path(p).suffix)] if Path(p).suffix else p
    return f"python -m harness.safeload {p} {stem}.safe{Path(p).suffix or '.pt'} --trust"


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load(path: str | os.PathLike, what: str = "checkpoint", mmap: bool = False) -> Any:
    """The object ``torch.save`` wrote to ``path``, on the CPU, read without running code.

    ``what`` names the file in errors ("FIGARO checkpoint", "AudioGen state_dict.bin").
    ``mmap`` memory-maps tensors of zip-format files (large state dicts); legacy files are read
    normally."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"{what} not found: {p}" if not p.exists()
                             else f"{what} {p} is a directory, not a checkpoint file")
    size = p.stat().st_size
    if size == 0:
        raise ModelLoadError(f"{what} {p} is empty (0 bytes): the download or copy was cut "
                             "short; fetch the file again")
    safe = [(obj, name) for name, obj in ALLOWED_GLOBALS.items()]
    is_zip = zipfile.is_zipfile(p)
    try:
        with torch.serialization.safe_globals(safe), warnings.catch_warnings():
            # a raw pickle's protocol makes torch warn before it refuses the file: the error
            # below says all there is to say
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(p, map_location="cpu", weights_only=True,
                              mmap=bool(mmap and is_zip))
    except pickle.UnpicklingError as exc:
        text = str(exc)
        g = _GLOBAL_RE.search(text)
        if g:
            raise ModelLoadError(
                f"{what} {p} references '{g.group(1)}', which a weights-only load does not allow "
                "(unpickling it could run code). Checkpoints must hold only tensors and plain "
                "containers. If you trust the file, convert it once with: "
                f"{convert_command(p)}") from None
        detail = _WEIGHTS_RE.search(text)
        raise ModelLoadError(
            f"{what} {p} cannot be read as weights only ("
            f"{_one_line(detail.group(1) if detail else text)}). If you trust the file, convert "
            f"it once with: {convert_command(p)}") from None
    except (EOFError, RuntimeError, ValueError, OSError, zipfile.BadZipFile) as exc:
        kind = "a truncated torch zip archive" if is_zip else "not a torch.save file or truncated"
        raise ModelLoadError(f"{what} {p} ({size} bytes) is unreadable: {kind} "
                             f"({type(exc).__name__}: {_one_line(exc, 160)}). Fetch or export "
                             "the file again") from None


PICKLED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def check_folder(folder: str | os.PathLike, what: str = "weights") -> None:
    """For a folder another library loads (diffusers/transformers ``from_pretrained``): every
    pickled weight file it may read is first read here, weights only, so a file that would need
    code is refused by name whatever that library's own ``torch.load`` settings are. Folders with
    ``.safetensors`` weights (no pickle involved) cost nothing."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    if any(f.suffix == ".safetensors" for f in folder.iterdir()):
        return
    for f in sorted(folder.iterdir()):
        if f.suffix in PICKLED_SUFFIXES and f.is_file():
            load(f, what=what, mmap=True)


# ---------------------------------------------------------------------------------------------
# conversion of a trusted file


def _plain(obj: Any, depth: int = 0) -> Any:
    """Tensors and plain containers only; objects become dicts of their attributes, classes and
    functions their dotted names."""
    import torch

    if depth > 100:
        raise ModelLoadError("checkpoint nests deeper than 100 levels; refusing to convert")
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, torch.Tensor,
                                       torch.dtype, torch.device, torch.Size)):
        return obj
    if isinstance(obj, dict):
        return {_plain_key(k): _plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = [_plain(v, depth + 1) for v in obj]
        return tuple(items) if isinstance(obj, tuple) else items
    if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__"):
        return _plain_key(obj)
    if hasattr(obj, "__dict__"):
        return {k: _plain(v, depth + 1) for k, v in vars(obj).items()}
    return repr(obj)


def _plain_key(k: Any) -> Any:
    if isinstance(k, (str, int, float, bool, bytes)) or k is None:
        return k
    if hasattr(k, "__qualname__"):
        return f"{getattr(k, '__module__', '')}.{k.__qualname__}"
    return repr(k)


def convert(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Re-save a TRUSTED pickle as tensors and plain containers, loadable by :func:`load`.
    This unpickles ``src`` with full pickle: it runs whatever code the file holds."""
    import torch

    from . import atomic

    class _Tolerant(pickle.Unpickler):
        def find_class(self, module, name):
            try:
                return super().find_class(module, name)
            except (ImportError, AttributeError):  # a package that is not installed here
                return type(name, (dict,), {"__module__": module,
                                            "__setstate__": lambda s, st: s.update(
                                                st if isinstance(st, dict) else {"state": st})})

    import types

    module = types.SimpleNamespace(Unpickler=_Tolerant, load=pickle.load, __name__="tolerant")
    obj = torch.load(src, map_location="cpu", weights_only=False, pickle_module=module)
    with atomic.file(dst) as tmp:
        torch.save(_plain(obj), tmp)
    load(dst, what="converted checkpoint")


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m harness.safeload",
        description="Convert a TRUSTED pickled checkpoint to tensors and plain containers, so "
                    "the harness can read it with torch.load(weights_only=True).")
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--trust", action="store_true",
                    help="required: reading SRC runs any code it contains")
    args = ap.parse_args(argv)
    if not args.trust:
        print("Error: converting unpickles SRC with full pickle, which runs any code it holds. "
              "Pass --trust only for a file from a source you trust.", file=sys.stderr)
        return 2
    if Path(args.dst).exists():
        print(f"Error: {args.dst} exists; choose a new output path", file=sys.stderr)
        return 2
    try:
        convert(args.src, args.dst)
    except ModelLoadError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.src} -> {args.dst}: tensors and plain containers only")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
