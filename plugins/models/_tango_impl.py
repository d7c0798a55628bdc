"""TANGO (``declare-lab/tango``) from its official files, as a ``DiffusionModel``.

Why not TANGO's own loader: ``tango.Tango`` always calls ``snapshot_download``, its
``AudioDiffusion`` fetches FLAN-T5 and the SD-2.1 scheduler from the hub in ``__init__``, its
``models.py`` no longer imports on current diffusers (``diffusers.utils.randn_tensor``) and its
STFT breaks on librosa ≥ 0.10 (models.md §3.1). So we read the same files into current
diffusers/transformers modules:

* ``main_config.json``, ``vae_config.json``, ``stft_config.json`` — the three JSON configs.
* ``pytorch_model_main.bin`` — a pickled state dict of the whole ``AudioDiffusion``:
  ``unet.*`` (diffusers ``UNet2DConditionModel`` names, loaded as they are) and
  ``text_encoder.*`` (the FLAN-T5-large encoder, transformers ``T5EncoderModel`` names).
* ``pytorch_model_vae.bin`` — the AudioLDM-v1 VAE in the original LDM naming (``encoder.down.0
  .block.0.norm1``, ``mid.attn_1.q`` ...) plus ``vocoder.*`` (TANGO's HiFi-GAN). The VAE keys
  are renamed to diffusers ``AutoencoderKL`` names by ``map_vae_key``; every ``vocoder.*`` key is
  ignored by an explicit prefix rule (attacks never decode); any other key that does not map, and
  any diffusers parameter left unset, is a ``StrictLoadError`` naming the keys
  and the component (``_diffusers_shared.load_state_strict``, the check SAO and AudioLDM2 use).
* ``pytorch_model_stft.bin`` — ``TacotronSTFT`` buffers. We check ``stft_fn.forward_basis`` is
  the Hann-windowed Fourier basis our ``torch.stft`` computes, and use the shipped
  ``mel_basis`` for the mel (it is the matrix the model was trained with).

Three things the hub repo does not ship, and where they come from:

* the UNet config: ``main_config.unet_model_config_path`` is ``configs/diffusion_model_config.json``,
  relative to TANGO's *GitHub* checkout. Looked up as the ``unet_config`` param, then
  ``<checkpoint>/<that relative path>``, then ``<checkpoint>/diffusion_model_config.json``, then
  the official file's contents built in below (declare-lab/tango@34ecd38). Strict loading of
  ``unet.*`` catches a config that does not fit the weights.
* the scheduler: SD-2.1's ``scheduler_config.json`` (v-prediction, scaled_linear
  0.00085–0.012, 1000 steps). Looked up as the ``scheduler_config`` param (a file, or a directory
  holding ``scheduler_config.json`` or ``scheduler/scheduler_config.json``), then
  ``<checkpoint>/scheduler/scheduler_config.json``, then the built-in SD-2.1 values.
* the tokenizer: pass ``tokenizer`` = a local copy of ``google/flan-t5-large`` (a directory with
  ``tokenizer.json`` or ``spiece.model`` and ``tokenizer_config.json``; its ``config.json``, if
  present, is used as the T5 encoder config) or the hub id if it is in the local HF cache.
  Default: ``main_config.text_encoder_name`` resolved from the cache. Without a ``config.json``
  there, the built-in FLAN-T5-large encoder config is used.

TANGO is a v-prediction model (models.md §3.2); ``predict_noise`` returns
ε = sqrt(ᾱ_t)·v + sqrt(1−ᾱ_t)·z_t. Latents are ``posterior.mean × 0.9227914`` (the
``scale_factor`` of vae_config.json), or a seeded posterior draw with ``latent_sampling: sample``
(what training used). Null condition: ``t5-empty`` = T5("") padded to the caption length with
T5's own mask, as TANGO's CFG inference builds it; ``zeros`` = zeroed hidden states with the
caption's mask, the ``--uncondition`` training-dropout form.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from harness import dtypes
from harness.contracts import DiffusionModel
from harness.errors import ModelLoadError
from harness.segments import PADDING_POLICIES

from . import _audio
from ._diffusers_shared import (DTYPES, StrictLoadError, check_choice, freeze, key_mismatch,
                                load_state_strict, posterior_latents, resolve_checkpoint,
                                UNetDenoiser, scheduler_alphas)

FILES = ("main_config.json", "vae_config.json", "stft_config.json", "pytorch_model_main.bin",
         "pytorch_model_vae.bin", "pytorch_model_stft.bin")
EXPECTED = "the declare-lab/tango files " + ", ".join(FILES)

#: declare-lab/tango: configs/diffusion_model_config.json (the UNet main_config points to)
OFFICIAL_UNET_CONFIG = {
    "_class_name": "UNet2DConditionModel", "act_fn": "silu",
    "attention_head_dim": [5, 10, 20, 20], "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False, "cross_attention_dim": 1024,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                         "DownBlock2D"],
    "downsample_padding": 1, "dual_cross_attention": False, "flip_sin_to_cos": True,
    "freq_shift": 0, "in_channels": 8, "layers_per_block": 2, "mid_block_scale_factor": 1,
    "norm_eps": 1e-05, "norm_num_groups": 32, "num_class_embeds": None,
    "only_cross_attention": False, "out_channels": 8, "sample_size": [32, 2],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                       "CrossAttnUpBlock2D"],
    "use_linear_projection": True, "upcast_attention": True,
}
#: stabilityai/stable-diffusion-2-1: scheduler/scheduler_config.json (schedule-relevant keys)
SD21_SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                  "beta_schedule": "scaled_linear", "prediction_type": "v_prediction",
                  "clip_sample": False, "steps_offset": 1}
#: google/flan-t5-large config.json, encoder-relevant keys
FLAN_T5_LARGE = {"vocab_size": 32128, "d_model": 1024, "d_kv": 64, "d_ff": 2816,
                 "num_layers": 24, "num_heads": 16, "relative_attention_num_buckets": 32,
                 "relative_attention_max_distance": 128, "dropout_rate": 0.1,
                 "layer_norm_epsilon": 1e-6, "feed_forward_proj": "gated-gelu",
                 "tie_word_embeddings": False, "pad_token_id": 0, "eos_token_id": 1,
                 "decoder_start_token_id": 0}

#: prefix of TANGO's HiFi-GAN inside pytorch_model_vae.bin: not needed by attacks, ignored
VOCODER_PREFIX = "vocoder."


# ---------------------------------------------------------------------------------------------
# original AudioLDM VAE names -> diffusers AutoencoderKL names

_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2",
           "nin_shortcut": "conv_shortcut"}
_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def map_vae_key(key: str, n_levels: int) -> str | None:
    """Diffusers name of an original AudioLDM VAE key, or None if it is not part of the VAE."""
    if key.split(".")[0] in ("quant_conv", "post_quant_conv"):
        return key if re.fullmatch(r"(post_)?quant_conv\.(weight|bias)", key) else None
    m = re.fullmatch(r"(encoder|decoder)\.(.+)\.(weight|bias)", key)
    if not m:
        return None
    part, body, leaf = m.groups()
    if body in ("conv_in", "conv_out"):
        return f"{part}.{body}.{leaf}"
    if body == "norm_out":
        return f"{part}.conv_norm_out.{leaf}"
    mm = re.fullmatch(r"mid\.block_([12])\.(\w+)", body)
    if mm and mm.group(2) in _RESNET:
        return f"{part}.mid_block.resnets.{int(mm.group(1)) - 1}.{_RESNET[mm.group(2)]}.{leaf}"
    mm = re.fullmatch(r"mid\.attn_1\.(\w+)", body)
    if mm and mm.group(1) in _ATTN:
        return f"{part}.mid_block.attentions.0.{_ATTN[mm.group(1)]}.{leaf}"
    kind = "down" if part == "encoder" else "up"
    mm = re.fullmatch(rf"{kind}\.(\d+)\.(.+)", body)
    if not mm:
        return None
    level, rest = int(mm.group(1)), mm.group(2)
    if level >= n_levels:
        return None
    # the original decoder lists levels from the lowest resolution up; diffusers the reverse
    new_level = level if part == "encoder" else n_levels - 1 - level
    blocks = "down_blocks" if part == "encoder" else "up_blocks"
    mm = re.fullmatch(r"block\.(\d+)\.(\w+)", rest)
    if mm and mm.group(2) in _RESNET:
        return f"{part}.{blocks}.{new_level}.resnets.{mm.group(1)}.{_RESNET[mm.group(2)]}.{leaf}"
    sampler = {"encoder": ("downsample.conv", "downsamplers"),
               "decoder": ("upsample.conv", "upsamplers")}[part]
    if rest == sampler[0]:
        return f"{part}.{blocks}.{new_level}.{sampler[1]}.0.conv.{leaf}"
    return None


def vae_kwargs(vae_config: dict) -> dict:
    """diffusers AutoencoderKL arguments for TANGO's vae_config.json (AudioLDM-v1 VAE)."""
    dd = vae_config.get("ddconfig") or {}
    problems = []
    if int(vae_config.get("subband", 1)) != 1:
        problems.append("subband != 1")
    if dd.get("attn_resolutions"):
        problems.append("attention blocks at attn_resolutions (diffusers' VAE has none there)")
    if dd.get("downsample_time") or dd.get("downsample_time_stride4_levels"):
        problems.append("time-stride-4 downsampling")
    if not dd.get("double_z", True):
        problems.append("double_z = false")
    if vae_config.get("embed_dim") != dd.get("z_channels"):
        problems.append("embed_dim != z_channels")
    missing = [k for k in ("ch", "ch_mult", "num_res_blocks", "in_channels", "out_ch",
                           "z_channels") if k not in dd]
    if missing:
        problems.append("ddconfig lacks " + ", ".join(missing))
    if problems:
        raise ModelLoadError("vae_config.json describes a VAE this loader cannot map to "
                             "diffusers' AutoencoderKL: " + "; ".join(problems))
    n = len(dd["ch_mult"])
    return dict(in_channels=dd["in_channels"], out_channels=dd["out_ch"],
                latent_channels=dd["z_channels"],
                block_out_channels=[dd["ch"] * m for m in dd["ch_mult"]],
                layers_per_block=dd["num_res_blocks"], norm_num_groups=32,
                down_block_types=["DownEncoderBlock2D"] * n,
                up_block_types=["UpDecoderBlock2D"] * n,
                scaling_factor=float(vae_config.get("scale_factor", 1.0)),
                sample_size=int(dd.get("resolution", 256)))


def read_state_dict(path: Path) -> dict:
    """A plain state dict (name -> tensor), read through ``harness.safeload`` (weights only,
    memory-mapped)."""
    from harness import safeload

    state = safeload.load(path, what="TANGO weights file", mmap=True)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ModelLoadError(f"{path} is not a plain state dict (name -> tensor)")
    return dict(state)


class Tango(UNetDenoiser, DiffusionModel):
    """TANGO text-to-audio LDM (v-prediction, SD-2.1 schedule, FLAN-T5-large conditioning)."""

    path_params = ("checkpoint",)
    path_or_hub_params = ("tokenizer",)
    defaults = {
        "checkpoint": None,
        "tokenizer": None,
        "unet_config": None,
        "scheduler_config": None,
        "dtype": "float32",
        "latent_sampling": "mean",
        "null_condition": "t5-empty",
        "padding": "exclude",    # exclude | include: the zero-padded latent frames of a short clip
    }
    param_docs = {
        "checkpoint": "required: a local copy of declare-lab/tango (main_config.json, "
                      "vae_config.json, stft_config.json, pytorch_model_{main,vae,stft}.bin) or "
                      "a hub id in the local HF cache",
        "tokenizer": "a local google/flan-t5-large folder or its hub id; null = the "
                     "checkpoint's text_encoder_name from the HF cache",
        "unet_config": "the UNet's diffusion_model_config.json; null = looked up beside the "
                       "checkpoint, else TANGO's official config (built in)",
        "scheduler_config": "a scheduler_config.json (or a folder holding one); null = the "
                            "checkpoint's scheduler/ folder, else SD-2.1's values (built in)",
        "dtype": "UNet/VAE dtype (text encoder always float32); float16/bfloat16 as on GPU",
        "latent_sampling": "mean: posterior mean x 0.9228 | sample: one posterior draw "
                           "seeded per sample (what training used)",
        "null_condition": "t5-empty: T5(\"\") padded to the caption length, as TANGO's CFG "
                          "inference | zeros: zeroed hidden states, the training-dropout form",
    }
    param_choices = {"dtype": dtypes.NAMES, "latent_sampling": ("mean", "sample"),
                     "padding": PADDING_POLICIES,
                     "null_condition": ("t5-empty", "zeros")}
    #: 2: identity by the weights' content (was: names and sizes); 3: padded frames masked
    version = "3"

    # -- configuration -----------------------------------------------------------------------

    def _name(self) -> str:
        return self.registered_name or "tango"

    def validate(self) -> None:
        p, name = self.params, self._name()
        check_choice("dtype", p["dtype"], DTYPES, name)
        check_choice("latent_sampling", p["latent_sampling"], ("mean", "sample"), name)
        check_choice("null_condition", p["null_condition"], ("t5-empty", "zeros"), name)
        check_choice("padding", p["padding"], PADDING_POLICIES, name)
        self.root = resolve_checkpoint(p["checkpoint"], name, EXPECTED)
        missing = [f for f in FILES if not (self.root / f).is_file()]
        if missing:
            raise ModelLoadError(f"model '{name}': {self.root} lacks {', '.join(missing)}; "
                                 f"expected {EXPECTED}")
        self.configs = {k: self._json(self.root / f"{k}_config.json")
                        for k in ("main", "vae", "stft")}
        main = self.configs["main"]
        if main.get("unet_model_name"):
            raise ModelLoadError(f"model '{name}': main_config.json uses unet_model_name (a "
                                 "UNet initialised from Stable Diffusion with group_in/out "
                                 "layers); only the released configuration "
                                 "(unet_model_config_path) is supported")
        if "t5" not in str(main.get("text_encoder_name", "")).lower():
            raise ModelLoadError(f"model '{name}': text_encoder_name "
                                 f"{main.get('text_encoder_name')!r} is not a T5 model; only "
                                 "FLAN-T5 conditioning is supported")
        stft = self.configs["stft"]
        want = {"filter_length": _audio.N_FFT, "hop_length": _audio.HOP_LENGTH,
                "win_length": _audio.WIN_LENGTH, "n_mel_channels": _audio.N_MELS,
                "sampling_rate": _audio.SAMPLE_RATE, "mel_fmin": 0, "mel_fmax": 8000}
        bad = {k: stft.get(k) for k, v in want.items() if stft.get(k) != v}
        if bad:
            raise ModelLoadError(f"model '{name}': stft_config.json differs from the TANGO "
                                 f"front-end this plugin reproduces ({want}): {bad}")
        self.vae_kwargs = vae_kwargs(self.configs["vae"])
        self.unet_config, self.unet_config_source = self._unet_config()
        self.scheduler_cfg, self.scheduler_source = self._scheduler_config()
        check_choice("scheduler prediction_type", self.scheduler_cfg.get("prediction_type",
                     "epsilon"), ("epsilon", "v_prediction"), name)
        self.tokenizer_dir = self._tokenizer_dir()
        self._m: dict | None = None
        self._alphas = None
        self._identity = None

    def _json(self, path: Path) -> dict:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"model '{self._name()}': cannot read {path} as JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ModelLoadError(f"model '{self._name()}': {path} is not a JSON object")
        return data

    def _unet_config(self) -> tuple[dict, str]:
        param = self.params["unet_config"]
        if param:
            path = Path(param).expanduser()
            if not path.is_file():
                raise ModelLoadError(f"model '{self._name()}': unet_config {param} is not a file "
                                     "(expected TANGO's configs/diffusion_model_config.json)")
            return self._json(path), str(path)
        rel = self.configs["main"].get("unet_model_config_path") or ""
        candidates = ([self.root / rel] if rel else []) + [self.root / "diffusion_model_config.json"]
        for path in candidates:
            if path.is_file():
                return self._json(path), str(path.relative_to(self.root))
        return dict(OFFICIAL_UNET_CONFIG), "built-in declare-lab/tango configs/diffusion_model_config.json"

    def _scheduler_config(self) -> tuple[dict, str]:
        param = self.params["scheduler_config"]
        if param:
            p = Path(param).expanduser()
            for cand in (p, p / "scheduler_config.json", p / "scheduler" / "scheduler_config.json"):
                if cand.is_file():
                    return self._json(cand), str(cand)
            raise ModelLoadError(f"model '{self._name()}': scheduler_config {param} holds no "
                                 "scheduler_config.json (pass SD-2.1's scheduler folder or file)")
        local = self.root / "scheduler" / "scheduler_config.json"
        if local.is_file():
            return self._json(local), "scheduler/scheduler_config.json"
        return dict(SD21_SCHEDULER), "built-in stabilityai/stable-diffusion-2-1 scheduler"

    def _tokenizer_dir(self) -> Path:
        param = self.params["tokenizer"] or self.configs["main"].get("text_encoder_name")
        how = ("Pass the parameter 'tokenizer': a local copy of google/flan-t5-large (a folder "
               "with tokenizer.json or spiece.model and tokenizer_config.json, e.g. from "
               "`huggingface-cli download google/flan-t5-large --local-dir DIR`)")
        try:
            path = resolve_checkpoint(param, self._name(), "a FLAN-T5 tokenizer")
        except ModelLoadError as exc:
            raise ModelLoadError(f"{exc}\n{how}") from exc
        if not any((path / f).is_file() for f in ("tokenizer.json", "spiece.model")):
            raise ModelLoadError(f"model '{self._name()}': tokenizer folder {path} has neither "
                                 f"tokenizer.json nor spiece.model. {how}")
        return path

    # -- identity ----------------------------------------------------------------------------

    def identity(self) -> dict:
        if self._identity is None:
            tok_files = [f for f in sorted(self.tokenizer_dir.iterdir()) if f.is_file()
                         and f.suffix in (".json", ".model", ".txt")]
            from harness.checkpoints import files_hash

            h = files_hash([self.root / f for f in FILES], self.root)
            tok = files_hash(tok_files, self.tokenizer_dir)
            extra = json.dumps([self.unet_config, self.scheduler_cfg], sort_keys=True)
            import hashlib

            combined = hashlib.sha256(f"{h}\0{tok}\0{extra}".encode()).hexdigest()
            self._identity = {
                "format": "declare-lab/tango (main/vae/stft state dicts)",
                "checkpoint": str(self.params["checkpoint"]),
                "content_hash": combined,
                "hashed": "all bytes of the weights and tokenizer files; resolved UNet and "
                          "scheduler configs",
                "unet_config": self.unet_config_source,
                "scheduler_config": self.scheduler_source,
            }
        return self._identity

    # -- loading -----------------------------------------------------------------------------

    @property
    def m(self) -> dict:
        if self._m is None:
            self._m = self._load()
        return self._m

    def _load(self) -> dict:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import AutoTokenizer, T5Config, T5EncoderModel

        dtype, dev = DTYPES[self.params["dtype"]], self.device
        # STFT buffers: check the basis, keep the trained mel filterbank
        stft = read_state_dict(self.root / "pytorch_model_stft.bin")
        keys = {"stft_fn.forward_basis", "stft_fn.inverse_basis", "mel_basis"}
        if set(stft) != keys:
            raise StrictLoadError(f"{self.root}: the STFT buffers (pytorch_model_stft.bin) are "
                                  "not TacotronSTFT's ("
                                  + key_mismatch(keys - set(stft), set(stft) - keys, ()) + ")")
        mel_basis = stft["mel_basis"].float()
        if tuple(mel_basis.shape) != (_audio.N_MELS, _audio.N_FFT // 2 + 1):
            raise ModelLoadError(f"mel_basis has shape {tuple(mel_basis.shape)}, expected "
                                 f"({_audio.N_MELS}, {_audio.N_FFT // 2 + 1})")
        expect_basis = windowed_fourier_basis()
        fb = stft["stft_fn.forward_basis"].float()
        if fb.shape != expect_basis.shape or not torch.allclose(fb, expect_basis, atol=1e-4):
            raise ModelLoadError(f"{self.root / 'pytorch_model_stft.bin'}: forward_basis is not "
                                 "the Hann-windowed 1024-point Fourier basis of TacotronSTFT")

        # VAE: rename, ignore the vocoder, strict
        raw = read_state_dict(self.root / "pytorch_model_vae.bin")
        n_levels = len(self.vae_kwargs["block_out_channels"])
        vae = AutoencoderKL(**self.vae_kwargs)
        mapped, unmapped = {}, []
        for k, v in raw.items():
            if k.startswith(VOCODER_PREFIX):
                continue
            new = map_vae_key(k, n_levels)
            if new is None:
                unmapped.append(k)
                continue
            if new.endswith(("to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight")) \
                    and v.dim() == 4:
                v = v[:, :, 0, 0]  # 1x1 conv -> linear
            mapped[new] = v
        # keys that are neither AudioLDM VAE keys nor vocoder.* are reported as unexpected
        load_state_strict(vae, mapped, "the VAE (pytorch_model_vae.bin)", self.root,
                          unexpected=unmapped)

        # main: unet.* + text_encoder.*
        main = read_state_dict(self.root / "pytorch_model_main.bin")
        groups: dict[str, dict] = {"unet": {}, "text_encoder": {}}
        other = []
        for k, v in main.items():
            head, _, rest = k.partition(".")
            (groups[head].__setitem__(rest, v) if head in groups else other.append(k))
        if other:
            raise StrictLoadError(f"{self.root}: pytorch_model_main.bin holds keys outside unet.* "
                                  "and text_encoder.* (" + key_mismatch((), other, ()) + ")")
        unet = UNet2DConditionModel.from_config(self.unet_config)
        load_state_strict(unet, groups["unet"], f"the UNet (unet.* in pytorch_model_main.bin, config "
                    f"{self.unet_config_source})", self.root)
        cfg_path = self.tokenizer_dir / "config.json"
        t5_cfg = (T5Config.from_pretrained(self.tokenizer_dir) if cfg_path.is_file()
                  else T5Config(**FLAN_T5_LARGE))
        t5 = T5EncoderModel(t5_cfg)
        te = groups["text_encoder"]
        # the input embedding is tied: old and new transformers store it under one or both names
        if "shared.weight" in te and "encoder.embed_tokens.weight" not in te:
            te["encoder.embed_tokens.weight"] = te["shared.weight"]
        if "encoder.embed_tokens.weight" in te and "shared.weight" not in te:
            te["shared.weight"] = te["encoder.embed_tokens.weight"]
        load_state_strict(t5, te, "the FLAN-T5 encoder (text_encoder.* in pytorch_model_main.bin)",
                    self.root)
        tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_dir)
        return {"vae": freeze(vae.to(dev, dtype)), "unet": freeze(unet.to(dev, dtype)),
                "text_encoder": freeze(t5.to(dev, torch.float32)), "tokenizer": tokenizer,
                "mel_basis": mel_basis}

    # -- contract ----------------------------------------------------------------------------

    def alphas_cumprod(self) -> torch.Tensor:
        if self._alphas is None:
            from diffusers import DDPMScheduler

            keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule",
                    "trained_betas")
            sched = DDPMScheduler(**{k: self.scheduler_cfg[k] for k in keys
                                     if k in self.scheduler_cfg})
            self._alphas = scheduler_alphas(sched.betas)
            if self._alphas.shape[0] != self.num_train_timesteps:
                raise ModelLoadError(f"scheduler has {self._alphas.shape[0]} train timesteps; "
                                     f"expected {self.num_train_timesteps}")
        return self._alphas

    @property
    def prediction_type(self) -> str:
        return self.scheduler_cfg.get("prediction_type", "epsilon")

    def window_seconds(self) -> float:
        return _audio.SECONDS

    def encode_audio(self, paths, ctx=None) -> torch.Tensor:
        vae, basis = self.m["vae"], self.m["mel_basis"]
        mel = torch.cat([_audio.mel_for("tango", p, mel_basis=basis) for p in paths])
        dist = vae.encode(mel[:, None].to(self.device, vae.dtype)).latent_dist
        return posterior_latents(dist, float(vae.config.scaling_factor),
                                 self.params["latent_sampling"], ctx, "tango/vae-posterior")

    def _t5(self, texts, pad_to: int | None = None):
        tok, enc = self.m["tokenizer"], self.m["text_encoder"]
        if pad_to is None:
            b = tok(list(texts), max_length=tok.model_max_length, padding=True, truncation=True,
                    return_tensors="pt")
        else:
            b = tok(list(texts), max_length=pad_to, padding="max_length", truncation=True,
                    return_tensors="pt")
        b = b.to(self.device)
        hidden = enc(input_ids=b.input_ids, attention_mask=b.attention_mask)[0]
        return hidden.to(DTYPES[self.params["dtype"]]), b.attention_mask == 1

    def encode_text(self, captions) -> dict:
        hidden, mask = self._t5(captions)
        return {"encoder_hidden_states": hidden, "encoder_attention_mask": mask}

    def null_condition(self, cond: dict) -> dict:
        hidden, mask = cond["encoder_hidden_states"], cond["encoder_attention_mask"]
        if self.params["null_condition"] == "zeros":
            return {"encoder_hidden_states": torch.zeros_like(hidden),
                    "encoder_attention_mask": mask.clone()}
        h0, m0 = self._t5([""], pad_to=hidden.shape[1])
        b = hidden.shape[0]
        return {"encoder_hidden_states": h0.expand(b, -1, -1).contiguous(),
                "encoder_attention_mask": m0.expand(b, -1).contiguous()}


def windowed_fourier_basis() -> torch.Tensor:
    """TacotronSTFT's forward basis [1026, 1, 1024]: real/imag DFT rows × periodic Hann."""
    n = _audio.N_FFT
    k = torch.arange(n // 2 + 1, dtype=torch.float64)[:, None]
    t = torch.arange(n, dtype=torch.float64)[None]
    ang = 2 * torch.pi * k * t / n
    window = torch.hann_window(_audio.WIN_LENGTH, periodic=True, dtype=torch.float64)
    basis = torch.cat([torch.cos(ang), -torch.sin(ang)]) * window
    return basis[:, None, :].float()
