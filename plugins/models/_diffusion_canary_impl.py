"""``diffusion-canary``: a small text-to-audio latent diffusion model of the AudioLDM family, trained
here on CPU on a known member split, so the diffusion attacks have a target whose membership
ground truth is exact.

Architecture (all diffusers / transformers classes, saved with ``save_pretrained`` and reloaded
with ``from_pretrained`` from the cache, the path a user's diffusers checkpoint takes):

* mel: the AudioLDM2 front-end of ``plugins.models._audio`` (TacotronSTFT-equivalent log-mel, 64
  bins, hop 10 ms, AudioLDM2's 10.24 s waveform preparation), of which the first ``n_frames``
  frames are kept (default 256 = 2.56 s instead of 1024) to make CPU training fast;
* ``vae``: ``AutoencoderKL`` (1 mel channel in, ``latent_channels`` out, 4x down-sampling in time
  and frequency, like AudioLDM's). Default ``vae_steps: 0``: a *fixed-seed random* VAE, never
  trained, whose posterior mean is a deterministic convolutional projection of the mel. Why: a VAE
  trained on the members would itself see the members, and latent statistics that differ between
  members and non-members would be a membership signal that is not the denoiser's; with a random
  VAE every membership signal comes from the diffusion training alone, as for a real model whose
  VAE was trained on other data. ``vae_steps: N`` trains it first for N steps on ``vae_data``
  (L1 reconstruction + ``vae_kl_weight`` KL) for users who want a meaningful decoder; then choose
  ``vae_data`` disjoint from the evaluation non-members.
* latent scaling: ``scaling_factor = 1 / std`` of the training latents (AudioLDM's
  ``scale_by_std``), written into the VAE config.
* ``text_encoder``: a frozen fixed-seed ``CLIPTextModel`` over a character-level tokenizer (built
  locally with ``tokenizers``; lower-cased ASCII), captions padded to ``max_text_length`` so a
  caption's encoding never depends on its batch. Frozen like AudioLDM's pretrained encoders.
* ``unet``: ``UNet2DConditionModel`` (cross-attention on the text states with a padding mask).
* ``scheduler``: ``DDPMScheduler`` with AudioLDM2's schedule (scaled_linear 0.0015→0.0195, 1000
  steps, epsilon prediction).

Training objective = AudioLDM2's (models.md §2.2): t ~ U{0..999} per sample, ``MSE(f(q(z0,t,eps),
t, c), eps)`` averaged over latent dims, condition dropout ``cond_dropout`` (the caption replaced
by "" — the model's null condition, so ``null_condition`` is what the model was trained with).
Training latents are the VAE posterior *means* by default (``train_latents: mean``): AudioLDM
samples the posterior, but a random VAE's posterior variance is not meaningful;
``train_latents: sample`` samples it as AudioLDM does.

Caching: ``harness.paths.cache_dir("canaries")/diffusion-<key>``, key = hash of the training
parameters, the training data's manifest hash (file contents, captions) and ``CODE_VERSION``,
written atomically (``harness.atomic.directory``). A second instantiation only loads, strictly
(``_diffusers_shared.load_pretrained_strict``, as AudioLDM2, TANGO and Stable Audio Open load):
a cached component with a missing, unexpected or mis-shaped weight is a ``StrictLoadError`` naming
the component and the keys, never a randomly filled weight.
"""

from __future__ import annotations

import json
import string
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from harness import dtypes
from harness.canary import shuffled_batches, train_steps, training_samples
from harness.contracts import CONDITION, LATENT_MASK, LATENTS, NULL_CONDITION, DiffusionModel
from harness.errors import ConfigError, ModelLoadError
from harness.segments import PADDING_POLICIES

from . import _audio
from ._diffusers_shared import (DTYPES, UNetDenoiser, freeze, load_pretrained_strict,
                                scheduler_alphas)

#: bump when training or the saved format changes (part of the cache key)
CODE_VERSION = "1"
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")

DEFAULT_TRAIN_DATA = {"source": "folk-tunes", "split": "members", "params": {}}

#: parameters that change the trained weights (the others only change scoring)
TRAIN_PARAMS = ("train_data", "steps", "seed", "lr", "batch_size", "cond_dropout", "n_frames",
                "latent_channels", "vae_channels", "vae_steps", "vae_data", "vae_kl_weight",
                "unet_channels", "layers_per_block", "attention_head_dim", "text_dim",
                "text_layers", "max_text_length", "train_latents", "warmup_steps", "padding")

#: characters the tokenizer knows (after lower-casing); anything else becomes [UNK]
ALPHABET = string.ascii_lowercase + string.digits + " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
SPECIALS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]


def build_tokenizer(max_length: int):
    """Character-level tokenizer ([BOS] chars [EOS]), lower-cased: every caption is encodable."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for ch in ALPHABET:
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.StripAccents(),
                                          normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 2), ("[EOS]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   bos_token="[BOS]", eos_token="[EOS]",
                                   model_max_length=max_length)


class DiffusionCanary(UNetDenoiser, DiffusionModel):
    """Latent diffusion canary trained lazily on ``train_data`` (members)."""

    version = "1"
    data_ref_params = ("train_data", "vae_data")
    defaults = {
        "train_data": DEFAULT_TRAIN_DATA,  # {source, split, params}: the members it trains on
        "steps": 600,            # UNet steps: more steps, more memorisation (600: demo, AUC ~0.9)
        "seed": 0,
        "lr": 1e-3,              # AdamW, constant after a linear warm-up
        "warmup_steps": 50,
        "batch_size": 16,
        "cond_dropout": 0.1,     # caption -> "" (the null condition), as AudioLDM's 10 %
        "n_frames": 256,         # mel frames kept (10 ms each); AudioLDM uses 1024
        "latent_channels": 4,    # AudioLDM: 8
        "vae_channels": [16, 32, 32, 32],  # 8x down-sampling (AudioLDM: 4x)
        "vae_steps": 0,          # 0: fixed-seed random VAE (see module doc) | N: train N steps
        "vae_data": None,        # data reference for VAE training (None: train_data)
        "vae_kl_weight": 1e-4,
        "unet_channels": [32, 64],
        "layers_per_block": 1,
        "attention_head_dim": 8,
        "text_dim": 64,
        "text_layers": 2,
        "max_text_length": 128,  # characters incl. [BOS]/[EOS]; captions are padded to it
        "train_latents": "mean",  # "mean" (posterior mean) | "sample" (AudioLDM)
        "threads": 1,            # torch CPU threads while training (not in the cache key)
        "padding": "exclude",    # exclude | include: zero-padded latent frames of clips shorter
                                 # than n_frames, in the training loss and in every score
        # scoring
        "dtype": "float32",      # UNet/VAE dtype at scoring time (float16 on GPU)
    }
    param_docs = {
        "lr": "AdamW learning rate in (0, 1), constant after a linear warm-up",
        "latent_channels": "channels of the VAE latent the UNet denoises (AudioLDM: 8)",
        "vae_channels": "VAE block widths, multiples of 8; each level after the first halves "
                        "the resolution (default 8x down-sampling; AudioLDM: 4x)",
        "seed": "integer seeding initialisation, noise and batch order (part of the cache key)",
        "warmup_steps": "linear learning-rate warm-up steps (>= 0)",
        "batch_size": "training clips per step (>= 1)",
        "vae_kl_weight": "KL weight of VAE training, in [0, 1) (only with vae_steps > 0)",
        "unet_channels": "UNet block widths, multiples of 8; each extra level halves the "
                         "resolution (n_frames must stay divisible)",
        "layers_per_block": "ResNet layers per UNet block (>= 1)",
        "attention_head_dim": "UNet cross-attention head width (>= 1)",
        "text_dim": "width of the character-level text encoder, a multiple of 4",
        "text_layers": "transformer layers of the text encoder (>= 1)",
    }
    param_choices = {"train_latents": ("mean", "sample"), "dtype": dtypes.NAMES,
                     "padding": PADDING_POLICIES}

    # -- parameters ------------------------------------------------------------------------

    def validate(self) -> None:
        p = self.params
        ints = {"steps": 1, "seed": 0, "warmup_steps": 0, "batch_size": 1, "n_frames": 8,
                "latent_channels": 1, "vae_steps": 0, "layers_per_block": 1,
                "attention_head_dim": 1, "text_dim": 8, "text_layers": 1,
                "max_text_length": 8, "threads": 1}
        for k, lo in ints.items():
            v = p[k]
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ConfigError(f"diffusion-canary: {k} must be an integer >= {lo}, got {v!r}")
        for k in ("vae_channels", "unet_channels"):
            v = p[k]
            if (not isinstance(v, (list, tuple)) or not v
                    or not all(isinstance(c, int) and c >= 8 and c % 8 == 0 for c in v)):
                raise ConfigError(f"diffusion-canary: {k} must be a list of multiples of 8 "
                                  f"(GroupNorm groups), got {v!r}")
            p[k] = list(v)
        down = 2 ** (len(p["vae_channels"]) - 1) * 2 ** (len(p["unet_channels"]) - 1)
        if p["n_frames"] % down or _audio.N_MELS % down:
            raise ConfigError(f"diffusion-canary: n_frames ({p['n_frames']}) and the 64 mel bins "
                              f"must be divisible by the total down-sampling {down}; use fewer "
                              "vae_channels/unet_channels levels or another n_frames")
        if p["n_frames"] > _audio.N_FRAMES:
            raise ConfigError(f"diffusion-canary: n_frames must be <= {_audio.N_FRAMES}")
        if p["text_dim"] % 4:
            raise ConfigError("diffusion-canary: text_dim must be a multiple of 4 (4 heads)")
        for k, lo, hi in (("lr", 0, 1), ("cond_dropout", 0, 1), ("vae_kl_weight", 0, 1)):
            v = p[k]
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v < hi:
                raise ConfigError(f"diffusion-canary: {k} must be in [{lo}, {hi}), got {v!r}")
        if p["lr"] == 0:
            raise ConfigError("diffusion-canary: lr must be > 0")
        if p["train_latents"] not in ("mean", "sample"):
            raise ConfigError("diffusion-canary: train_latents must be 'mean' or 'sample'")
        if p["padding"] not in PADDING_POLICIES:
            raise ConfigError(f"diffusion-canary: padding must be one of {PADDING_POLICIES}, "
                              f"got {p['padding']!r}")
        if p["dtype"] not in DTYPES:
            raise ConfigError(f"diffusion-canary: dtype must be one of {', '.join(DTYPES)}")
        for k in ("train_data", "vae_data"):
            ref = p[k]
            if ref is None and k == "vae_data":
                continue
            if not isinstance(ref, dict) or "source" not in ref or "split" not in ref:
                raise ConfigError(f"diffusion-canary: {k} must be a data reference "
                                  "{source, split, params, n}, e.g. {source: local-folder, "
                                  "split: member, params: {manifest: clips.csv}, n: 48} or "
                                  "{source: folk-tunes, split: members}")
        self._m: dict | None = None
        self._dir: Path | None = None
        self._alphas = None
        self.trained_now = False

    # -- training data and cache -----------------------------------------------------------

    @staticmethod
    def _resolve(ref: dict, what: str):
        return training_samples("diffusion-canary", ref, what)

    def training_report(self) -> dict:
        """What ``training.json`` recorded (time, steps, losses), training first if needed."""
        return json.loads((self.checkpoint_dir() / "training.json").read_text())

    def cache_key(self, samples, vae_samples) -> str:
        from harness import canary
        from harness.datasets import manifest_hash

        return canary.key(
            "diffusion-canary", CODE_VERSION, {k: self.params[k] for k in TRAIN_PARAMS}, samples,
            vae_data=manifest_hash(vae_samples) if vae_samples is not None else None,
            mel=[_audio.SAMPLE_RATE, _audio.N_FFT, _audio.HOP_LENGTH, _audio.N_MELS])

    def checkpoint_dir(self) -> Path:
        """The cached diffusers folders, training them first if absent."""
        if self._dir is None:
            from harness.paths import cache_dir

            samples = self._resolve(self.params["train_data"], "train_data")
            vae_samples = None
            if self.params["vae_steps"] > 0:
                vae_samples = (self._resolve(self.params["vae_data"], "vae_data")
                               if self.params["vae_data"] is not None else samples)
            path = cache_dir("canaries") / f"diffusion-{self.cache_key(samples, vae_samples)}"
            if not (path / "training.json").is_file():
                import torch

                with torch.enable_grad():  # first use may come from inside provide()'s no_grad
                    self._train(samples, vae_samples, path)
                self.trained_now = True
            self._dir = path
        return self._dir

    def identity(self) -> dict:
        return {"plugin": "diffusion-canary", "code": CODE_VERSION,
                "checkpoint": self.checkpoint_dir().name,
                "train": {k: self.params[k] for k in TRAIN_PARAMS}}

    # -- components ------------------------------------------------------------------------

    def _configs(self):
        p = self.params
        vae_cfg = dict(in_channels=1, out_channels=1, latent_channels=p["latent_channels"],
                       down_block_types=["DownEncoderBlock2D"] * len(p["vae_channels"]),
                       up_block_types=["UpDecoderBlock2D"] * len(p["vae_channels"]),
                       block_out_channels=p["vae_channels"], layers_per_block=1,
                       norm_num_groups=8, sample_size=p["n_frames"])
        n = len(p["unet_channels"])
        down = ["DownBlock2D"] + ["CrossAttnDownBlock2D"] * (n - 1)
        up = ["CrossAttnUpBlock2D"] * (n - 1) + ["UpBlock2D"]
        lat = 2 ** (len(p["vae_channels"]) - 1)
        unet_cfg = dict(sample_size=[p["n_frames"] // lat, _audio.N_MELS // lat],
                        in_channels=p["latent_channels"], out_channels=p["latent_channels"],
                        down_block_types=down, up_block_types=up,
                        block_out_channels=p["unet_channels"],
                        layers_per_block=p["layers_per_block"],
                        cross_attention_dim=p["text_dim"],
                        attention_head_dim=p["attention_head_dim"], norm_num_groups=8)
        return vae_cfg, unet_cfg

    def _new_text_encoder(self, tokenizer):
        from transformers import CLIPTextConfig, CLIPTextModel

        p = self.params
        cfg = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=p["text_dim"],
                             intermediate_size=2 * p["text_dim"], num_hidden_layers=p["text_layers"],
                             num_attention_heads=4, max_position_embeddings=p["max_text_length"],
                             pad_token_id=0, bos_token_id=2, eos_token_id=3)
        return CLIPTextModel(cfg)

    @staticmethod
    def _scheduler():
        from diffusers import DDPMScheduler

        return DDPMScheduler(num_train_timesteps=1000, beta_start=0.0015, beta_end=0.0195,
                             beta_schedule="scaled_linear", prediction_type="epsilon",
                             clip_sample=False)

    @property
    def m(self) -> dict:
        if self._m is None:
            self._m = self.load(self.checkpoint_dir())
        return self._m

    def load(self, path: Path) -> dict:
        """Load the saved components through diffusers / transformers ``from_pretrained``, the
        weighted ones strictly (a cache entry is refused, not patched, if any weight is off)."""
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, PreTrainedTokenizerFast

        from harness import safeload

        dtype = DTYPES[self.params["dtype"]]
        weighted = {"unet": UNet2DConditionModel, "vae": AutoencoderKL,
                    "text_encoder": CLIPTextModel}
        retrain = f"; delete the folder {path} to retrain the canary"
        try:
            for part in weighted:  # every folder checked before any is unpickled
                safeload.check_folder(path / part, what=f"diffusion canary {part} weights")
            m = {part: load_pretrained_strict(cls, path / part, f"diffusion-canary {part}")
                 for part, cls in weighted.items()}
            m["tokenizer"] = PreTrainedTokenizerFast.from_pretrained(path / "tokenizer")
            m["scheduler"] = DDPMScheduler.from_pretrained(path / "scheduler")
        except ModelLoadError as exc:  # StrictLoadError included: keep its type and wording
            raise type(exc)(f"{exc}{retrain}") from exc
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"diffusion-canary: cached canary {path} is unreadable "
                                 f"({exc}){retrain}") from exc
        for k in ("unet", "vae"):
            m[k] = freeze(m[k].to(self.device, dtype))
        m["text_encoder"] = freeze(m["text_encoder"].to(self.device))
        return m

    # -- audio and text --------------------------------------------------------------------

    def mels(self, paths: Sequence[str]) -> torch.Tensor:
        """[B, 1, n_frames, 64]: AudioLDM2 log-mel, first ``n_frames`` frames."""
        n = self.params["n_frames"]
        return torch.cat([_audio.mel_for("audioldm2", p)[:, :n] for p in paths])[:, None]

    def encode_text(self, texts: Sequence[str], tokenizer=None, encoder=None) -> dict:
        tok = tokenizer or self.m["tokenizer"]
        enc = encoder or self.m["text_encoder"]
        b = tok(list(texts), padding="max_length", max_length=self.params["max_text_length"],
                truncation=True, return_tensors="pt")
        dev = next(enc.parameters()).device
        ids, mask = b["input_ids"].to(dev), b["attention_mask"].to(dev)
        h = enc(input_ids=ids, attention_mask=mask).last_hidden_state
        return {"encoder_hidden_states": h, "encoder_attention_mask": mask}

    # -- contract --------------------------------------------------------------------------

    def alphas_cumprod(self) -> torch.Tensor:
        if self._alphas is None:
            self._alphas = scheduler_alphas(self.m["scheduler"].betas)
        return self._alphas

    #: the canary's scheduler (``_scheduler``) predicts ε
    prediction_type = "epsilon"

    def window_seconds(self) -> float:
        return self.params["n_frames"] * _audio.HOP_LENGTH / _audio.SAMPLE_RATE

    def provide(self, samples, needs, ctx) -> dict:
        out: dict = {}
        dtype = DTYPES[self.params["dtype"]]
        with torch.no_grad():
            if LATENTS in needs or LATENT_MASK in needs:
                vae = self.m["vae"]
                mel = self.mels([s.path for s in samples]).to(self.device, dtype)
                mean = vae.encode(mel).latent_dist.mean.float()
                if LATENTS in needs:
                    out[LATENTS] = mean * float(vae.config.scaling_factor)
                if LATENT_MASK in needs:
                    out[LATENT_MASK] = self.latent_mask(samples, mean)
            if CONDITION in needs:
                out[CONDITION] = self.encode_text([s.caption for s in samples])
            if NULL_CONDITION in needs:
                out[NULL_CONDITION] = self.encode_text([""] * len(samples))
        return out

    # -- training --------------------------------------------------------------------------

    def _train_vae(self, vae, mels: torch.Tensor, g: torch.Generator) -> dict:
        p = self.params
        opt = torch.optim.AdamW(vae.parameters(), lr=p["lr"])
        vae.train()
        losses = []
        for _ in range(p["vae_steps"]):
            idx = torch.randint(0, mels.shape[0], (min(p["batch_size"], mels.shape[0]),),
                                generator=g)
            x = mels[idx]
            dist = vae.encode(x).latent_dist
            z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=g)
            rec = vae.decode(z).sample
            kl = dist.kl().mean() / x[0].numel()
            loss = (rec - x).abs().mean() + p["vae_kl_weight"] * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        vae.eval()
        return {"vae_loss_first": float(np.mean(losses[:10])),
                "vae_loss_last": float(np.mean(losses[-10:]))}

    def _train(self, samples, vae_samples, target: Path) -> None:
        from diffusers import AutoencoderKL, UNet2DConditionModel

        from harness import atomic

        p = self.params
        t_start = time.time()
        old_threads = torch.get_num_threads()
        torch.set_num_threads(p["threads"])
        try:
            torch.manual_seed(p["seed"])
            g = torch.Generator().manual_seed(p["seed"])
            vae_cfg, unet_cfg = self._configs()
            tokenizer = build_tokenizer(p["max_text_length"])
            text_encoder = self._new_text_encoder(tokenizer).eval().requires_grad_(False)
            vae = AutoencoderKL(**vae_cfg)
            unet = UNet2DConditionModel(**unet_cfg)
            scheduler = self._scheduler()

            mels = self.mels([s.path for s in samples])
            info: dict = {}
            if vae_samples is not None:
                vmels = mels if vae_samples is samples else self.mels([s.path for s in vae_samples])
                info.update(self._train_vae(vae, vmels, g))
            vae.eval().requires_grad_(False)
            with torch.no_grad():
                dist = vae.encode(mels).latent_dist
                mean, std = dist.mean.float(), dist.std.float()
                frames = self.latent_mask(samples, mean)  # [n, 1, T, 1]: False on padding
                scale = float(1.0 / mean[frames.expand_as(mean)].std())
                vae.register_to_config(scaling_factor=scale)
                cond = self.encode_text([s.caption for s in samples], tokenizer, text_encoder)
                null = self.encode_text([""], tokenizer, text_encoder)
            prep_s = time.time() - t_start

            acp = torch.cumprod(1.0 - scheduler.betas.float(), 0)
            opt = torch.optim.AdamW(unet.parameters(), lr=p["lr"], weight_decay=0.01)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: min(1.0, (s + 1) / max(1, p["warmup_steps"])))
            unet.train()
            n, B = mean.shape[0], min(p["batch_size"], mean.shape[0])
            batches, losses = shuffled_batches(n, B, g), []
            t1 = time.time()
            for step, idx in train_steps("diffusion-canary", p["steps"], batches, losses):
                z0 = mean[idx]
                if p["train_latents"] == "sample":
                    z0 = z0 + std[idx] * torch.randn(z0.shape, generator=g)
                z0 = z0 * scale
                t = torch.randint(0, 1000, (B,), generator=g)
                eps = torch.randn(z0.shape, generator=g)
                a = acp[t].view(-1, 1, 1, 1)
                z_t = a.sqrt() * z0 + (1 - a).sqrt() * eps
                drop = (torch.rand(B, generator=g) < p["cond_dropout"]).view(-1, 1, 1)
                h = torch.where(drop, null["encoder_hidden_states"], cond["encoder_hidden_states"][idx])
                am = torch.where(drop.view(-1, 1), null["encoder_attention_mask"],
                                 cond["encoder_attention_mask"][idx])
                pred = unet(z_t, t, encoder_hidden_states=h, encoder_attention_mask=am,
                            return_dict=False)[0]
                m = frames[idx]
                if bool(m.all()):
                    loss = torch.nn.functional.mse_loss(pred, eps)
                else:  # MSE over the latent frames that hold audio
                    m = m.expand_as(pred)
                    loss = (pred - eps).pow(2).mul(m).sum() / m.sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
            train_s = time.time() - t1
        finally:
            torch.set_num_threads(old_threads)
        unet.eval()
        with atomic.directory(target) as tmp:
            unet.save_pretrained(tmp / "unet")
            vae.save_pretrained(tmp / "vae")
            text_encoder.save_pretrained(tmp / "text_encoder")
            tokenizer.save_pretrained(tmp / "tokenizer")
            scheduler.save_pretrained(tmp / "scheduler")
            (tmp / "training.json").write_text(json.dumps({
                "members": [s.id for s in samples],
                "vae_members": [s.id for s in vae_samples] if vae_samples is not None else None,
                "prep_seconds": prep_s, "train_seconds": train_s,
                "loss_first": float(np.mean(losses[:20])), "loss_last": float(np.mean(losses[-20:])),
                "scaling_factor": scale, **info,
                "params": {k: p[k] for k in TRAIN_PARAMS}, "code": CODE_VERSION,
            }, indent=2, default=str))
