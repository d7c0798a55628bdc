"""AudioLDM2 (``cvssp/audioldm2`` and its diffusers-format siblings) as a ``DiffusionModel``.

Why the components are loaded one by one instead of through ``AudioLDM2Pipeline.from_pretrained``:
the released checkpoints declare ``language_model`` as ``GPT2Model``, and the current pipeline's
``generate_language_model`` calls generation helpers that ``GPT2Model`` no longer has in
transformers ≥ 4.5x (diffusers issue #12630). We load each component with the class its
``model_index.json`` declares (``GPT2Model`` or ``GPT2LMHeadModel`` both work) and run the
8-step hidden-state generation ourselves: a plain full-sequence forward per step, which is what
the cached loop computes. Attacks only need the VAE encoder, the UNet, the scheduler's schedule
and the text-conditioning stack, so the vocoder and the CLAP feature extractor are not loaded.

Conditioning choices (models.md §2.3):

* ``condition`` — as the diffusers pipeline builds it for one prompt: CLAP text embedding and
  FLAN-T5 hidden states → projection → GPT-2 generates ``max_new_tokens`` hidden states
  (``encoder_hidden_states`` [B, 8, 768]); T5 hidden states and mask go to the second
  cross-attention (``encoder_hidden_states_1``, ``encoder_attention_mask_1``). GPT-2 runs per
  caption, unpadded, because its positions ignore the attention mask: padding a short caption to
  the batch's longest would change its generated tokens, and features would depend on the batch.
* ``null_condition: trained`` (default) — the unconditional input the original model was trained
  with under its 10% condition dropout: zeros [B, 8, 768] for the GPT-2 stream and T5("") with an
  all-ones mask. ``null_condition: diffusers`` — the pipeline's negative prompt: "" through the
  whole CLAP → T5 → projection → GPT-2 path, with T5("") padded to the caption's T5 length as the
  pipeline does.
* The T5 stream of the null condition is padded (masked) to the batch's condition length so that
  condition and null condition can be concatenated along the batch; masked positions receive an
  additive −10000 bias before the softmax, i.e. exactly zero weight in float32.

Text encoders always run in float32 (T5 is known to overflow in float16); their outputs are cast
to ``dtype``, which applies to the VAE and the UNet.

Loading is strict (``_diffusers_shared.load_pretrained_strict``): a missing, unexpected or
mis-shaped weight in any weighted component is a ``StrictLoadError`` naming the keys and the
component, where ``from_pretrained`` alone would initialise a missing weight at random.

Checkpoint identity: ``harness.checkpoints.files_hash`` over every file the pipeline reads,
weights included, by content (a fine-tune saved into the same folder has the same names and
sizes); the digests are memoised by (path, size, mtime), so only the first run reads the GBs.

What every diffusers-based plugin shares (checkpoint resolution, parameter checks, timesteps,
v→ε, the UNet call) lives in ``_diffusers_shared``.
"""

from __future__ import annotations

from typing import Sequence

import torch

from harness import dtypes
from harness.checkpoints import files_hash
from harness.contracts import DiffusionModel
from harness.errors import ConfigError, ModelLoadError
from harness.segments import PADDING_POLICIES

from . import _audio
from ._diffusers_shared import (DTYPES, UNetDenoiser, check_choice, component_class, freeze,
                                load_pretrained_strict, posterior_latents, read_model_index,
                                resolve_checkpoint, scheduler_alphas)

# ---------------------------------------------------------------------------------------------
# AudioLDM2

#: components attacks use (the vocoder and feature extractor are only needed for generation)
NEEDED = ("vae", "unet", "scheduler", "text_encoder", "text_encoder_2", "projection_model",
          "language_model", "tokenizer", "tokenizer_2")
EXPECTED = ("a diffusers AudioLDM2 pipeline: model_index.json and the subfolders "
            + ", ".join(NEEDED) + " (as written by AudioLDM2Pipeline.save_pretrained or "
            "downloaded from cvssp/audioldm2)")
LANGUAGE_MODELS = ("GPT2Model", "GPT2LMHeadModel")


class AudioLDM2(UNetDenoiser, DiffusionModel):
    """AudioLDM2 text-to-audio latent diffusion model (ε-prediction, 1000 DDPM steps)."""

    path_or_hub_params = ("checkpoint",)
    defaults = {
        "checkpoint": None,
        "dtype": "float32",
        "latent_sampling": "mean",
        "null_condition": "trained",
        "max_new_tokens": 8,
        "padding": "exclude",    # exclude | include: the zero-padded latent frames of a short clip
    }
    param_docs = {
        "checkpoint": "required: a diffusers AudioLDM2 folder (model_index.json + vae, unet, "
                      "scheduler, text encoders, projection, GPT-2 subfolders) or a hub id such "
                      "as cvssp/audioldm2 in the local HF cache",
        "dtype": "VAE/UNet dtype (text encoders always float32); float16/bfloat16 as on GPU",
        "latent_sampling": "mean: VAE posterior mean | sample: one posterior draw seeded per "
                           "sample (what training used)",
        "null_condition": "trained: zeros for the GPT-2 stream and T5(\"\"), the 10 % dropout "
                          "input the model was trained with | diffusers: the pipeline's \"\" "
                          "negative prompt through the whole text stack",
        "max_new_tokens": "hidden states GPT-2 generates for the condition, a positive integer "
                          "(the pipeline's 8)",
    }
    param_choices = {"dtype": dtypes.NAMES, "latent_sampling": ("mean", "sample"),
                     "padding": PADDING_POLICIES,
                     "null_condition": ("trained", "diffusers")}
    #: 2: identity by the weights' content (was: names and sizes); 3: padded frames masked
    version = "3"

    def validate(self) -> None:
        p = self.params
        name = self.registered_name or "audioldm2"
        check_choice("dtype", p["dtype"], DTYPES, name)
        check_choice("latent_sampling", p["latent_sampling"], ("mean", "sample"), name)
        check_choice("null_condition", p["null_condition"], ("trained", "diffusers"), name)
        check_choice("padding", p["padding"], PADDING_POLICIES, name)
        if not isinstance(p["max_new_tokens"], int) or p["max_new_tokens"] < 1:
            raise ConfigError(f"model '{name}': max_new_tokens must be a positive integer")
        self.root = resolve_checkpoint(p["checkpoint"], name, EXPECTED)
        self.index = read_model_index(self.root, NEEDED, EXPECTED, name)
        lm = self.index["language_model"][1]
        if lm not in LANGUAGE_MODELS:
            raise ModelLoadError(f"model '{name}': language_model class {lm} is not supported "
                                 f"(expected one of {', '.join(LANGUAGE_MODELS)})")
        te2 = self.index["text_encoder_2"][1]
        if te2 != "T5EncoderModel":
            raise ModelLoadError(f"model '{name}': text_encoder_2 is {te2}; only the text-to-audio "
                                 "checkpoints (T5EncoderModel) are supported, not the TTS variant")
        self._m: dict | None = None
        self._scheduler = None
        self._identity: dict | None = None

    # -- identity --------------------------------------------------------------------------

    def identity(self) -> dict:
        if self._identity is None:
            files = [f for c in ("model_index.json",) + NEEDED
                     for f in ([self.root / c] if c.endswith(".json") else
                               sorted(p for p in (self.root / c).rglob("*") if p.is_file()))]
            self._identity = {
                "format": "diffusers/AudioLDM2Pipeline",
                "checkpoint": str(self.params["checkpoint"]),
                "content_hash": files_hash(files, self.root),
            }
        return self._identity

    # -- loading ---------------------------------------------------------------------------

    @property
    def scheduler(self):
        if self._scheduler is None:
            import diffusers

            cls = getattr(diffusers, self.index["scheduler"][1], None)
            if cls is None:
                raise ModelLoadError(f"unknown scheduler class {self.index['scheduler'][1]}")
            self._scheduler = cls.from_pretrained(self.root / "scheduler")
        return self._scheduler

    def _component(self, name: str):
        from harness import safeload

        library, cls_name = self.index[name][0], self.index[name][1]
        cls = component_class(self.index, name, "audioldm2", self.registered_name or "audioldm2")
        if not name.startswith("tokenizer"):
            return load_pretrained_strict(cls, self.root / name, f"AudioLDM2 {name}")

        safeload.check_folder(self.root / name, what=f"AudioLDM2 {name} weights")
        try:
            return cls.from_pretrained(self.root / name)
        except Exception as exc:
            raise ModelLoadError(f"model '{self.registered_name or 'audioldm2'}': cannot load "
                                 f"{name} ({library}.{cls_name}) from {self.root / name}: "
                                 f"{type(exc).__name__}: {exc}") from exc

    @property
    def m(self) -> dict:
        if self._m is None:
            dtype, dev = DTYPES[self.params["dtype"]], self.device
            m = {n: self._component(n) for n in NEEDED if n != "scheduler"}
            for n in ("text_encoder", "text_encoder_2", "projection_model", "language_model"):
                m[n] = freeze(m[n].to(dev, torch.float32))
            for n in ("vae", "unet"):
                m[n] = freeze(m[n].to(dev, dtype))
            self._m = m
        return self._m

    # -- contract --------------------------------------------------------------------------

    def alphas_cumprod(self) -> torch.Tensor:
        if getattr(self, "_alphas", None) is None:
            self._alphas = scheduler_alphas(self.scheduler.betas)
        return self._alphas

    @property
    def prediction_type(self) -> str:
        return self.scheduler.config.prediction_type

    def window_seconds(self) -> float:
        return _audio.SECONDS

    def encode_audio(self, paths: Sequence[str], ctx=None) -> torch.Tensor:
        vae = self.m["vae"]
        mel = torch.cat([_audio.mel_for("audioldm2", p) for p in paths])  # [B, 1024, 64]
        mel = mel[:, None].to(self.device, vae.dtype)
        dist = vae.encode(mel).latent_dist
        return posterior_latents(dist, float(vae.config.scaling_factor),
                                 self.params["latent_sampling"], ctx, "audioldm2/vae-posterior")

    # text ---------------------------------------------------------------------------------

    def _clap(self, texts: list[str]) -> torch.Tensor:
        tok, enc = self.m["tokenizer"], self.m["text_encoder"]
        max_len = tok.model_max_length if tok.model_max_length < 100_000 else None
        b = tok(texts, padding="max_length" if max_len else True, max_length=max_len,
                truncation=True, return_tensors="pt").to(self.device)
        feats = enc.get_text_features(b.input_ids, attention_mask=b.attention_mask)
        if hasattr(feats, "pooler_output"):  # transformers 5 returns a model output
            feats = feats.pooler_output
        return feats[:, None, :]

    def _t5(self, texts: list[str], pad_to: int | None = None):
        tok, enc = self.m["tokenizer_2"], self.m["text_encoder_2"]
        if pad_to is None:
            b = tok(texts, padding=True, max_length=tok.model_max_length, truncation=True,
                    return_tensors="pt")
        else:
            b = tok(texts, padding="max_length", max_length=pad_to, truncation=True,
                    return_tensors="pt")
        b = b.to(self.device)
        return enc(b.input_ids, attention_mask=b.attention_mask)[0], b.attention_mask

    def _generate(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lm, n = self.m["language_model"], self.params["max_new_tokens"]
        for _ in range(n):
            out = lm(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=True,
                     use_cache=False, return_dict=True)
            embeds = torch.cat([embeds, out.hidden_states[-1][:, -1:]], 1)
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], 1)
        return embeds[:, -n:]

    def _loa(self, clap: torch.Tensor, t5: torch.Tensor, t5_mask: torch.Tensor) -> torch.Tensor:
        """GPT-2 generated hidden states for ONE prompt ([1, ...] inputs)."""
        proj = self.m["projection_model"](
            hidden_states=clap, hidden_states_1=t5,
            attention_mask=torch.ones(clap.shape[:2], dtype=t5_mask.dtype, device=self.device),
            attention_mask_1=t5_mask)
        return self._generate(proj.hidden_states, proj.attention_mask)

    def encode_text(self, captions: Sequence[str]) -> dict:
        captions = list(captions)
        dtype = DTYPES[self.params["dtype"]]
        clap = self._clap(captions)
        t5, t5_mask = self._t5(captions)
        lens = t5_mask.sum(1).tolist()
        loa = torch.cat([self._loa(clap[i:i + 1], t5[i:i + 1, :n], t5_mask[i:i + 1, :n])
                         for i, n in enumerate(lens)])
        return {"encoder_hidden_states": loa.to(dtype),
                "encoder_hidden_states_1": t5.to(dtype),
                "encoder_attention_mask_1": t5_mask}

    def null_condition(self, cond: dict, batch: int | None = None) -> dict:
        batch = cond["encoder_hidden_states"].shape[0] if batch is None else batch
        dtype = DTYPES[self.params["dtype"]]
        length = cond["encoder_hidden_states_1"].shape[1]
        if self.params["null_condition"] == "trained":
            t5, _ = self._t5([""])  # original: T5("") with an all-ones mask
            n = t5.shape[1]
            t5 = torch.nn.functional.pad(t5, (0, 0, 0, max(length - n, 0)))
            mask = torch.zeros(1, t5.shape[1], dtype=torch.long, device=self.device)
            mask[:, :n] = 1
            loa = torch.zeros_like(cond["encoder_hidden_states"])
            return {"encoder_hidden_states": loa.to(dtype),
                    "encoder_hidden_states_1": t5.expand(batch, -1, -1).to(dtype),
                    "encoder_attention_mask_1": mask.expand(batch, -1).contiguous()}
        # diffusers: the pipeline's negative prompt "" through the whole path; T5("") padded to
        # each caption's own T5 length, as the pipeline does for a single prompt.
        clap = self._clap([""])
        lens = cond["encoder_attention_mask_1"].sum(1).tolist()
        loas, cache = [], {}
        for n in lens:
            if n not in cache:
                t5, mask = self._t5([""], pad_to=n)
                cache[n] = self._loa(clap, t5, mask)
            loas.append(cache[n])
        t5, mask = self._t5([""], pad_to=max(length, 1))
        return {"encoder_hidden_states": torch.cat(loas).to(dtype),
                "encoder_hidden_states_1": t5.expand(batch, -1, -1).to(dtype),
                "encoder_attention_mask_1": mask.expand(batch, -1).contiguous()}

