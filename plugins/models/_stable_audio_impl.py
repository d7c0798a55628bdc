"""``stable-audio-open``: Stable Audio Open (diffusers ``StableAudioPipeline`` folders) as a
``DiffusionModel``.

Why each step is the way it is (stable-audio-tools trained it; diffusers runs it):

* Loading: the hub folder's components (``vae`` AutoencoderOobleck, ``text_encoder`` T5,
  ``tokenizer``, ``projection_model`` StableAudioProjectionModel, ``transformer``
  StableAudioDiTModel) each by the class ``model_index.json`` declares, **strictly**: a missing,
  unexpected or wrongly shaped weight is a ``StrictLoadError`` naming the keys
  (``_diffusers_shared.load_pretrained_strict``, shared with AudioLDM2 and TANGO; diffusers and
  transformers would initialise a missing weight at random and only log it). The scheduler is
  read as its JSON config: the attacks need the schedule, not diffusers' DPM-solver object.
* Audio (stable-audio-tools ``PadCrop_Normalized_T``): the whole file resampled to the VAE's rate,
  made stereo (mono duplicated, more than two channels: the first two), the first
  ``segment_seconds`` kept (default: the DiT's window, sample_size × hop / rate = 47.55 s for
  SAO 1.0) and zero-padded at the end, encoded by the VAE. Training crops at a random offset and
  flips the phase at random; we take the start, unflipped, so scores are deterministic.
  ``latent_sampling``: the posterior mean (default) or one draw seeded per sample (training
  encodes with a draw; docs/discrepancies.md row 15). No scaling factor: the pipeline feeds VAE
  latents to the DiT as they are.
* Timing conditioning, from each clip's real duration as in training: ``seconds_start`` =
  floor(window start) = 0, ``seconds_total`` = ceil(file length / rate) of the *whole* file
  (not the window), through the projection model's number conditioners.
* Condition (``StableAudioPipeline.encode_prompt`` + ``encode_duration``): T5 on the caption
  padded to the tokenizer's max length, projected, zeroed at padded positions; cross-attention
  input [T5 tokens, seconds_start, seconds_total]; global input [seconds_start | seconds_total].
  Null condition: the pipeline's unconditional branch (no negative prompt): the cross-attention
  input all zeros (what training's condition dropout feeds), the global timing input kept.
* Noise levels: the model is trained on a continuous cosine schedule (v-objective): at time
  tau in [0, 1], z = alpha z0 + sigma eps with alpha = cos(tau pi/2), sigma = sin(tau pi/2), and
  the DiT is called on that z at time tau (diffusers' EDM form is the same thing: sigma_EDM =
  tan(tau pi/2), c_in = 1/sqrt(1 + sigma_EDM^2), tau = atan(sigma_EDM) 2/pi, sigma_data 1).
  An attack's grid timestep t (0..999) is mapped to tau by ``time_map``: ``linear``, tau = t/1000
  (the same fraction of the training time range, which training samples uniformly), or
  ``audioldm2-snr``, the tau whose alpha^2 equals AudioLDM2's abar_t (the same signal-to-noise
  ratio as the paper's diffusion models at that t). docs/discrepancies.md row 17.
* epsilon from the v-prediction: eps = sigma z_t + alpha v (v = alpha eps - sigma z0).

T5 and the projection run in float32; the VAE and the DiT in ``dtype``.
"""

from __future__ import annotations

import json
import math
from typing import Sequence

import torch

from harness import dtypes
from harness.checkpoints import files_hash
from harness.contracts import CONDITION, LATENT_MASK, LATENTS, NULL_CONDITION, DiffusionModel
from harness.errors import ConfigError, ModelLoadError
from harness.segments import PADDING_POLICIES

from . import _audio
from ._diffusers_shared import (check_choice, component_class, denoiser_in, freeze,
                                load_pretrained_strict, posterior_latents, read_model_index,
                                resolve_checkpoint)

#: components read (the scheduler as its config only)
NEEDED = ("vae", "text_encoder", "tokenizer", "projection_model", "transformer", "scheduler")
WEIGHTED = ("vae", "text_encoder", "projection_model", "transformer")
EXPECTED = ("a diffusers StableAudioPipeline folder: model_index.json and the subfolders "
            + ", ".join(NEEDED) + " (StableAudioPipeline.save_pretrained, or the hub's "
            "stabilityai/stable-audio-open-1.0)")
TIME_MAPS = ("linear", "audioldm2-snr")
GRID = 1000


def cosine_levels(tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha, sigma of the v-objective's cosine schedule at continuous time ``tau``."""
    half_pi = math.pi / 2
    return torch.cos(tau * half_pi), torch.sin(tau * half_pi)


def audioldm2_abar() -> torch.Tensor:
    """AudioLDM2's discrete abar table (scaled-linear betas 0.0015..0.0195, 1000 steps)."""
    betas = torch.linspace(0.0015 ** 0.5, 0.0195 ** 0.5, GRID, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0)


class StableAudioOpen(DiffusionModel):
    """Stable Audio Open 1.0 (or a fine-tune saved in the same diffusers layout)."""

    num_train_timesteps = GRID
    #: gradient attacks may run the DiT in float32 on half-precision weights (denoiser_in)
    switchable_precision = True
    path_or_hub_params = ("checkpoint",)
    defaults = {
        "checkpoint": None,          # diffusers StableAudioPipeline folder, or hub id stabilityai/stable-audio-open-1.0
        "dtype": "float32",          # float32 | float16 | bfloat16: the VAE and the DiT (T5 and the projection stay float32)
        "latent_sampling": "mean",   # mean: VAE posterior mean | sample: one draw seeded per sample (training drew one)
        "segment_seconds": None,     # null: the DiT's window (sample_size x hop / rate: 47.55 s for SAO 1.0); a number crops to the first seconds
        "time_map": "linear",        # grid t -> model time: linear (tau = t/1000) | audioldm2-snr (alpha^2 = AudioLDM2's abar_t)
        "padding": "exclude",        # exclude | include: the zero-padded latent frames after a clip shorter than the window
    }
    param_choices = {"dtype": dtypes.NAMES, "time_map": TIME_MAPS, "latent_sampling": ("mean", "sample"),
                     "padding": PADDING_POLICIES}

    def validate(self) -> None:
        p = self.params
        name = self.registered_name or "stable-audio-open"
        dtypes.check(p["dtype"], name)
        check_choice("latent_sampling", p["latent_sampling"], ("mean", "sample"), name)
        check_choice("time_map", p["time_map"], TIME_MAPS, name)
        check_choice("padding", p["padding"], PADDING_POLICIES, name)
        s = p["segment_seconds"]
        if s is not None and (isinstance(s, bool) or not isinstance(s, (int, float)) or s <= 0):
            raise ConfigError(f"model '{name}': segment_seconds must be a positive number or "
                              f"null (the model's window), got {s!r}")
        self.root = resolve_checkpoint(p["checkpoint"], name, EXPECTED)
        self.index = read_model_index(self.root, NEEDED, EXPECTED, name)
        if self.index.get("_class_name") not in (None, "StableAudioPipeline"):
            raise ModelLoadError(f"model '{name}': {self.root / 'model_index.json'} describes a "
                                 f"{self.index.get('_class_name')}, not a StableAudioPipeline")
        sched_path = self.root / "scheduler" / "scheduler_config.json"
        try:
            sched = json.loads(sched_path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"model '{name}': cannot read {sched_path}: {exc}") from exc
        if sched.get("prediction_type", "v_prediction") != "v_prediction" or \
                float(sched.get("sigma_data", 1.0)) != 1.0:
            raise ModelLoadError(
                f"model '{name}': {sched_path} has prediction_type "
                f"{sched.get('prediction_type')!r}, sigma_data {sched.get('sigma_data')!r}; this "
                "plugin converts Stable Audio Open's v-prediction with sigma_data 1 (the "
                "released schedule)")
        self._m: dict | None = None
        self._identity: dict | None = None
        self._rope: dict = {}

    @property
    def _name(self) -> str:
        return self.registered_name or "stable-audio-open"

    # -- identity --------------------------------------------------------------------------

    def identity(self) -> dict:
        if self._identity is None:
            files = [self.root / "model_index.json"] + [
                f for c in NEEDED for f in sorted(p for p in (self.root / c).rglob("*")
                                                  if p.is_file())]
            self._identity = {"format": "diffusers/StableAudioPipeline",
                              "checkpoint": str(self.params["checkpoint"]),
                              "content_hash": files_hash(files, self.root)}
        return self._identity

    # -- loading ---------------------------------------------------------------------------

    def _component(self, name: str):
        cls = component_class(self.index, name, "stable_audio", self._name)
        if name == "tokenizer":
            try:
                return cls.from_pretrained(self.root / name)
            except Exception as exc:
                raise ModelLoadError(f"model '{self._name}': cannot load the tokenizer from "
                                     f"{self.root / name}: {type(exc).__name__}: {exc}") from exc
        return load_pretrained_strict(cls, self.root / name, f"model '{self._name}' {name}")

    @property
    def m(self) -> dict:
        if self._m is None:
            from harness.dtypes import table

            dtype, dev = table()[self.params["dtype"]], self.device
            m = {n: self._component(n) for n in NEEDED if n != "scheduler"}
            for n in ("text_encoder", "projection_model"):
                m[n] = freeze(m[n].to(dev, torch.float32))
            for n in ("vae", "transformer"):
                m[n] = freeze(m[n].to(dev, dtype))
            self._m = m
        return self._m

    @property
    def dtype(self) -> torch.dtype:
        from harness.dtypes import table

        return table()[self.params["dtype"]]

    @property
    def sample_rate(self) -> int:
        return int(self.m["vae"].config.sampling_rate)

    def window_samples(self) -> int:
        """Audio samples the model sees: the DiT's window, or ``segment_seconds`` of it."""
        vae = self.m["vae"]
        full = int(self.m["transformer"].config.sample_size) * int(vae.hop_length)
        s = self.params["segment_seconds"]
        if s is None:
            return full
        n = int(round(float(s) * self.sample_rate))
        n -= n % int(vae.hop_length)
        if n < int(vae.hop_length):
            raise ConfigError(f"model '{self._name}': segment_seconds {s} is shorter than one "
                              f"latent frame ({vae.hop_length} samples at {self.sample_rate} Hz)")
        return min(n, full)

    def window_seconds(self) -> float:
        return self.window_samples() / self.sample_rate

    # -- audio -----------------------------------------------------------------------------

    def waveform(self, path: str) -> torch.Tensor:
        """The model's input [2, window] at its rate."""
        x, sr = _audio.read_audio(path)
        x = _audio._resample(x, sr, self.sample_rate)
        if x.shape[0] == 1:
            x = x.repeat(2, 1)
        elif x.shape[0] > 2:
            x = x[:2]
        return _audio._fit(x, self.window_samples())

    @staticmethod
    def seconds_total(path: str) -> float:
        """ceil(length / rate) of the whole file, as ``PadCrop_Normalized_T`` computes it (on
        the resampled signal, whose length rounds up to the same whole second)."""
        from harness.segments import file_duration

        return float(math.ceil(file_duration(path)))

    def encode_audio(self, paths: Sequence[str], ctx=None) -> torch.Tensor:
        vae = self.m["vae"]
        wav = torch.stack([self.waveform(p) for p in paths]).to(self.device, vae.dtype)
        dist = vae.encode(wav).latent_dist
        return posterior_latents(dist, 1.0, self.params["latent_sampling"], ctx,
                                 "stable-audio-open/vae-posterior")

    # -- conditions ------------------------------------------------------------------------

    def encode_prompt(self, captions: Sequence[str]) -> torch.Tensor:
        """Projected T5 states [B, max_length, D], zero at padded positions (encode_prompt)."""
        tok, enc = self.m["tokenizer"], self.m["text_encoder"]
        b = tok(list(captions), padding="max_length", max_length=tok.model_max_length,
                truncation=True, return_tensors="pt").to(self.device)
        h = enc(b.input_ids, attention_mask=b.attention_mask)[0]
        h = self.m["projection_model"](text_hidden_states=h).text_hidden_states
        return h * b.attention_mask[..., None].to(h.dtype)

    def encode_timing(self, starts: Sequence[float], totals: Sequence[float]):
        """(seconds_start states [B, 1, D], seconds_total states [B, 1, D]) (encode_duration)."""
        out = self.m["projection_model"](
            start_seconds=torch.tensor([float(s) for s in starts], device=self.device),
            end_seconds=torch.tensor([float(t) for t in totals], device=self.device))
        return out.seconds_start_hidden_states, out.seconds_end_hidden_states

    def condition_for(self, captions: Sequence[str], totals: Sequence[float]) -> dict:
        text = self.encode_prompt(captions)
        start, end = self.encode_timing([0.0] * len(captions), totals)
        return {"encoder_hidden_states": torch.cat([text, start, end], 1).to(self.dtype),
                "global_hidden_states": torch.cat([start, end], 2).to(self.dtype)}

    def null_condition(self, condition: dict) -> dict:
        """The pipeline's unconditional branch: zero cross-attention input, timing kept."""
        return {"encoder_hidden_states": torch.zeros_like(condition["encoder_hidden_states"]),
                "global_hidden_states": condition["global_hidden_states"]}

    def provide(self, samples, needs: set[str], ctx) -> dict:
        # the contract's provide checks the samples are whole files and encodes the latents
        out = super().provide(samples, set(needs) & {LATENTS, LATENT_MASK}, ctx)
        if CONDITION in needs or NULL_CONDITION in needs:
            with torch.no_grad():
                totals = [self.seconds_total(s.path) for s in samples]
                cond = self.condition_for([s.caption for s in samples], totals)
            if CONDITION in needs:
                out[CONDITION] = cond
            if NULL_CONDITION in needs:
                out[NULL_CONDITION] = self.null_condition(cond)
        return out

    # -- schedule and denoiser -------------------------------------------------------------

    def model_time(self, t) -> torch.Tensor:
        """Continuous time tau in [0, 1) of grid timesteps ``t`` (float64)."""
        t = torch.as_tensor(t, dtype=torch.long).cpu().reshape(-1)
        if self.params["time_map"] == "linear":
            return t.double() / GRID
        abar = audioldm2_abar()[t]
        return torch.arccos(abar.sqrt().clamp(max=1.0)) * (2 / math.pi)

    def noise_levels(self, t):
        tau = self.model_time(t)
        alpha, sigma = cosine_levels(tau)
        return alpha, sigma, tau

    def alphas_cumprod(self) -> torch.Tensor:
        alpha, _, _ = self.noise_levels(torch.arange(GRID))
        return alpha ** 2

    def rotary(self, length: int):
        """The pipeline's rotary embedding for ``length`` latent frames plus the global token."""
        if length not in self._rope:
            from diffusers.models.embeddings import get_1d_rotary_pos_embed

            dim = self.m["transformer"].config.attention_head_dim // 2
            cos, sin = get_1d_rotary_pos_embed(dim, length + 1, use_real=True,
                                               repeat_interleave_real=False)
            self._rope[length] = (cos.to(self.device), sin.to(self.device))
        return self._rope[length]

    def predict_v(self, z_t: torch.Tensor, tau: torch.Tensor, condition: dict) -> torch.Tensor:
        """The DiT's raw output (v) at continuous times ``tau`` [B], computed in
        ``denoiser_dtype()``."""
        dit, dtype = denoiser_in(self, "transformer")
        return dit(z_t.to(self.device, dtype), tau.to(self.device, torch.float32),
                   encoder_hidden_states=condition["encoder_hidden_states"].to(self.device,
                                                                               dtype),
                   global_hidden_states=condition["global_hidden_states"].to(self.device, dtype),
                   rotary_embedding=self.rotary(int(z_t.shape[-1])), return_dict=False)[0]

    def predict_noise(self, z_t: torch.Tensor, t, condition: dict) -> torch.Tensor:
        t = torch.as_tensor(t).reshape(-1)
        if t.numel() == 1:
            t = t.expand(z_t.shape[0])
        alpha, sigma, tau = self.noise_levels(t)
        v = self.predict_v(z_t, tau, condition)
        shape = (-1,) + (1,) * (z_t.dim() - 1)
        a = alpha.to(self.device, v.dtype).view(shape)
        s = sigma.to(self.device, v.dtype).view(shape)
        return (s * z_t.to(v.dtype) + a * v).to(z_t.dtype)
