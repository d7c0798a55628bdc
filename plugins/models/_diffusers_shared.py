"""What every diffusers-based model plugin (AudioLDM2, TANGO, the diffusion canary, and later
ones) shares: checkpoint resolution, parameter checks, the timestep and ε conventions of the
``DiffusionModel`` contract, latents from a VAE posterior, and the UNet call.

Why one module: TANGO used to import these from ``_audioldm2_impl`` and the canary had its own
copies; a fix to one (e.g. the v→ε conversion or how a scalar timestep is broadcast) must reach
every diffusion model, and a new plugin should build on a module named for what it holds rather
than on another model's implementation.

torch is imported at module level (this module is itself imported only when a model is built,
never by ``harness --help``); diffusers/huggingface_hub only inside the functions that need them.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Iterable

import torch

from harness import dtypes
from harness.errors import ConfigError, ModelLoadError

DTYPES = dtypes.table()  # the harness-wide table (harness.dtypes)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


class StrictLoadError(ModelLoadError):
    """A component's weights do not match its architecture key for key."""


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:12]) + (f" ... (+{len(keys) - 12})" if len(keys) > 12 else "")


def key_mismatch(missing, unexpected, mismatched) -> str:
    """The one wording of a weights/architecture mismatch (``""`` when there is none)."""
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected),
                        ("shape-mismatched", mismatched)):
        keys = sorted(map(str, keys or []))
        if keys:
            parts.append(f"{label} {len(keys)} key(s): {_few(keys)}")
    return "; ".join(parts)


def load_pretrained_strict(cls, folder: Path, what: str):
    """``cls.from_pretrained(folder)`` that refuses missing, unexpected or mismatched weights.

    Why: diffusers and transformers initialise a missing weight at random and only log it, so an
    incomplete or foreign folder would be scored as if it were the model. Both libraries report
    the keys through ``output_loading_info``; ``what`` names the component in the error."""
    from harness import safeload

    safeload.check_folder(folder, what=f"{what} weights")
    try:
        model, info = cls.from_pretrained(folder, output_loading_info=True)
    except Exception as exc:
        kind = StrictLoadError if "size mismatch" in str(exc) else ModelLoadError
        raise kind(f"{what}: cannot load {cls.__name__} from {folder}: "
                   f"{type(exc).__name__}: {exc}") from exc
    mismatched = [" ".join(map(str, m)) if isinstance(m, (tuple, list)) else m
                  for m in info.get("mismatched_keys") or []]
    detail = key_mismatch(info.get("missing_keys"), info.get("unexpected_keys"), mismatched)
    if detail:
        raise StrictLoadError(f"{what}: the weights in {folder} do not match {cls.__name__}'s "
                              f"architecture ({detail}); the folder is incomplete or from "
                              "another model")
    return model


def load_state_strict(module, state: dict, what: str, source: Path,
                      unexpected: Iterable[str] = ()) -> None:
    """``module.load_state_dict(state, strict=True)`` for a plugin that reads the weight files
    itself (TANGO), with the same error as ``load_pretrained_strict``: every missing, unexpected
    or mis-shaped key named, and ``what`` naming the component and the file. ``unexpected``: keys
    of the file the caller could not even map to the module's names (reported with the rest)."""
    own = module.state_dict()
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
              for k in set(own) & set(state) if tuple(state[k].shape) != tuple(own[k].shape)]
    detail = key_mismatch(set(own) - set(state), (set(state) - set(own)) | set(unexpected),
                          shapes)
    if detail:
        raise StrictLoadError(f"{source}: {what} does not match its {type(module).__name__} "
                              f"architecture ({detail}); the file is incomplete or from another "
                              "model")
    module.load_state_dict(state, strict=True)


def check_choice(name: str, value, choices: Iterable, plugin: str) -> None:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"model '{plugin}': parameter '{name}' must be one of "
                          f"{', '.join(map(repr, choices))}; got {value!r}")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_checkpoint(checkpoint, plugin: str, expected: str) -> Path:
    """A local directory, or a hub id resolved through the Hugging Face cache (download only when
    online). ``expected`` describes the files the directory must hold, for the error message."""
    if checkpoint is None or str(checkpoint).strip() == "":
        raise ConfigError(f"model '{plugin}' needs the parameter 'checkpoint': a local directory "
                          f"holding {expected}, or a hub id")
    path = Path(os.path.expanduser(str(checkpoint)))
    if path.is_dir():
        return path
    text = str(checkpoint)
    if not HUB_ID.match(text):
        raise ModelLoadError(f"model '{plugin}': checkpoint directory '{checkpoint}' does not "
                             f"exist. It must hold {expected}.")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=text, local_files_only=hub_offline()))
    except Exception as exc:
        raise ModelLoadError(
            f"model '{plugin}': '{checkpoint}' is not a local directory and could not be resolved "
            f"as a hub id ({type(exc).__name__}: {exc}). Download it once (e.g. "
            f"`huggingface-cli download {checkpoint} --local-dir DIR`) and pass DIR; it must hold "
            f"{expected}.") from exc


def read_model_index(root: Path, needed, expected: str, plugin: str) -> dict:
    """A diffusers pipeline folder's ``model_index.json``, checked to declare every component of
    ``needed`` and to hold its subfolder (a ``ModelLoadError`` naming what lacks otherwise)."""
    import json

    index_path = root / "model_index.json"
    if not index_path.is_file():
        raise ModelLoadError(f"model '{plugin}': {root} has no model_index.json; expected "
                             f"{expected}")
    try:
        index = json.loads(index_path.read_text())
    except ValueError as exc:
        raise ModelLoadError(f"model '{plugin}': {index_path} is not valid JSON: {exc}") from exc
    if not isinstance(index, dict):
        raise ModelLoadError(f"model '{plugin}': {index_path} is not a JSON object")
    missing = [c for c in needed
               if not isinstance(index.get(c), list) or not (root / c).is_dir()]
    if missing:
        raise ModelLoadError(f"model '{plugin}': {root} lacks the components "
                             f"{', '.join(missing)} (in model_index.json and as subfolders); "
                             f"expected {expected}")
    return index


def component_class(index: dict, name: str, pipeline: str, plugin: str):
    """The class ``model_index.json`` declares for component ``name`` of a diffusers pipeline
    folder: from diffusers, transformers, or the pipeline's own module
    (``diffusers.pipelines.<pipeline>``); an unknown tokenizer class falls back to
    ``AutoTokenizer``."""
    import importlib

    import diffusers
    import transformers

    library, cls_name = index[name][0], index[name][1]
    source = {"diffusers": diffusers, "transformers": transformers}.get(library)
    if source is None and library == pipeline:
        source = importlib.import_module(f"diffusers.pipelines.{pipeline}")
    cls = getattr(source, cls_name, None) if source is not None else None
    if cls is None and name.startswith("tokenizer"):
        cls = transformers.AutoTokenizer
    if cls is None:
        raise ModelLoadError(f"model '{plugin}': component {name} declares an unknown class "
                             f"{library}.{cls_name}")
    return cls


def to_epsilon(pred: torch.Tensor, z_t: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor,
               prediction_type: str) -> torch.Tensor:
    """ε from a model output: identity for ε-prediction; ε = sqrt(ᾱ)·v + sqrt(1−ᾱ)·z_t for v."""
    if prediction_type == "epsilon":
        return pred
    if prediction_type == "v_prediction":
        a = alphas_cumprod.to(device=z_t.device)[t.long()]
        shape = (-1,) + (1,) * (z_t.dim() - 1)
        sa = a.sqrt().to(pred.dtype).view(shape)
        sb = (1 - a).sqrt().to(pred.dtype).view(shape)
        return sa * pred + sb * z_t.to(pred.dtype)
    raise ModelLoadError(f"unsupported scheduler prediction_type '{prediction_type}' "
                         "(epsilon and v_prediction are supported)")


def timesteps(t, batch: int, device) -> torch.Tensor:
    """Integer timesteps [batch] from a scalar or a [batch] tensor (the contract allows both)."""
    t = torch.as_tensor(t, device=device)
    if t.dim() == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"timesteps must be a scalar or have shape [{batch}], got {tuple(t.shape)}")
    return t.long()


def posterior_latents(dist, scaling: float, mode: str, ctx, purpose: str) -> torch.Tensor:
    """Scaled VAE latent: posterior mean, or one draw seeded per sample (``ctx.randn``)."""
    mean = dist.mean.float()
    if mode == "mean":
        return mean * scaling
    noise = ctx.randn(tuple(mean.shape[1:]), purpose, device=mean.device)
    return (mean + dist.std.float() * noise) * scaling


def freeze(module):
    module.eval()
    module.requires_grad_(False)
    return module


def scheduler_alphas(betas: torch.Tensor) -> torch.Tensor:
    """ᾱ_t = Π(1 − β) in float64 on CPU, as the contract's ``alphas_cumprod`` returns it."""
    return torch.cumprod(1.0 - betas.double().cpu(), 0)


def unet_epsilon(unet, z_t: torch.Tensor, t, condition: dict, *, dtype, device,
                 alphas_cumprod: torch.Tensor | None = None,
                 prediction_type: str = "epsilon") -> torch.Tensor:
    """The contract's ``predict_noise`` for a diffusers ``UNet2DConditionModel``: inputs cast to
    the model's dtype, every tensor of ``condition`` passed as a UNet keyword (float tensors in
    ``dtype``, masks as they are), the output turned into ε and returned in ``z_t``'s dtype (so
    attacks computing in float32 get float32 back from a half-precision UNet)."""
    tt = timesteps(t, z_t.shape[0], device)
    kwargs = {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device))
              for k, v in condition.items()}
    out = unet(z_t.to(device, dtype), tt, return_dict=False, **kwargs)[0]
    if prediction_type != "epsilon":
        out = to_epsilon(out, z_t, tt, alphas_cumprod, prediction_type)
    return out.to(z_t.dtype)


def denoiser_in(model, key: str):
    """(``model.m[key]``, torch dtype) in the model's current ``denoiser_dtype()``: the module
    itself in the suite's ``dtype``, otherwise a copy of it cast to the asked dtype (the suite's
    weights, another arithmetic), built once and kept (a second copy in memory)."""
    name = model.denoiser_dtype()
    if name == model.params["dtype"]:
        return model.m[key], DTYPES[name]
    copies = model.__dict__.setdefault("_denoiser_copies", {})
    if (key, name) not in copies:
        copies[key, name] = freeze(copy.deepcopy(model.m[key]).to(DTYPES[name]))
    return copies[key, name], DTYPES[name]


class UNetDenoiser:
    """``predict_noise`` and ``switchable_precision`` for a ``DiffusionModel`` whose denoiser is
    ``self.m["unet"]`` loaded in ``params["dtype"]`` (with ``alphas_cumprod`` and
    ``prediction_type``). Inside ``denoiser_precision(name)`` another dtype runs a copy of the
    same UNet cast to ``name``: the suite's (possibly half-precision) weights, float32
    arithmetic, built once and kept (a second copy of the UNet in memory)."""

    switchable_precision = True

    def denoiser(self):
        """(UNet, torch dtype) for the current ``denoiser_dtype()``."""
        return denoiser_in(self, "unet")

    def predict_noise(self, z_t: torch.Tensor, t, condition: dict) -> torch.Tensor:
        unet, dtype = self.denoiser()
        return unet_epsilon(unet, z_t, t, condition, dtype=dtype, device=self.device,
                            alphas_cumprod=self.alphas_cumprod(),
                            prediction_type=self.prediction_type)
