"""``autoregressive-canary``: a small AudioGen trained here, on CPU, on known member clips, so the
autoregressive attacks have a model with a known membership ground truth.

What is AudioGen about it (models.md §1.2–1.4), built with audiocraft's own builders from an
``xp.cfg`` of the same keys and values as the released model's, except sizes:

* LM: ``LMModel`` with the delay pattern [0, 1, 2, 3] over 4 codebooks, pre-norm transformer,
  no biases, gaussian/depthwise init, ``memory_efficient`` attention, cross-attention to a
  ``description`` condition from a frozen ``T5Conditioner`` (its ``output_proj`` is trained), CFG
  condition dropout ``cond_dropout`` (0.1, one draw per batch as ``ClassifierFreeGuidanceDropout``)
  so the null condition is a trained input and the contrast feature means what it means for
  AudioGen.
* Captions attend unpadded in training, as they are scored (``training_predictions``):
  audiocraft pads a batch's captions to the longest with zero keys and its cross-attention has
  no key mask, so in its own training a short caption shares its attention with up to dozens of
  zero keys that the scorer (one caption, unpadded) never shows it. The canary was trained that
  way until CODE_VERSION 3 and the mismatch hit exactly the short captions: on the
  variable-length speech test (short clips have short captions) the contrast Loss AUC on clips
  shorter than the segment was 0.45 ± 0.10 padded in training and 0.87 ± 0.07 unpadded (all
  clips 0.66 → 0.93, clips >= 3 s 0.97 → 1.00; chance 0.5). A released AudioGen was trained the
  padded way by audiocraft; its batches are unknown, so the scorer keeps the one-caption form.
* Objective: the solver's (``MusicGenSolver``): ``compute_predictions`` on the delay pattern,
  cross-entropy per codebook over the valid mask, averaged over codebooks; AdamW with AudioGen's
  betas (0.9, 0.95) and weight decay 0.1, gradient clipping at 1.0, linear warm-up.
* Tokenizer: an ``EncodecModel`` (SEANet, hop 320 = 50 frames/s at 16 kHz, RVQ with 4 codebooks)
  built with a fixed seed. No pretrained codec ships offline (data.md §5) and training one is not
  worth the CPU time here: the SEANet stays at its seeded random initialisation and the RVQ
  codebooks are initialised by audiocraft's own k-means (``kmeans_init``) on the *training clips'*
  latents, so the codes spread over the codebooks (measured code usage is written to
  ``training.json``). What the LM must memorise is the token sequence of each member clip; a
  random-feature codec keeps that sequence a deterministic function of the audio, which is all a
  canary needs. The codec is part of the "trained on members" model, as EnCodec is part of
  AudioGen.
* Text encoder: a tiny T5 encoder (1 layer, d_model 512 as ``t5-small``'s name requires, random
  seeded weights, character-level unigram tokenizer) written next to the checkpoint in ``t5/``.

Size and time differences, all deliberate: small widths, few steps, no dropout, and
``segment_seconds`` (default 3 s, must exceed 2 s, AudioGen's ``extend_stride``) instead of 10 s;
every training step uses each clip's *first* ``segment_seconds`` (AudioGen seeks at random), the
same crop the scorer reads, so a member is scored on exactly what it was trained on.

After training, the folder is written atomically in the official format (``state_dict.bin`` and
``compression_state_dict.bin`` with ``xp.cfg`` / ``best_state``) and scored by loading it with the
``audiogen`` plugin's code (``AudioGenModel``, whose ``load`` calls ``AudioGen.get_pretrained``).

Measured (32 folk-tune members vs 32 non-members, defaults but 150/400 steps, 2 shared cores):
the codec uses 25/156/145/131 of 256 codes per codebook (perplexity 8/75/77/80) and 70 % of
frames are distinct 4-tuples; training loss 5.5 -> 0.7 (150 steps) -> 0.006 (400 steps). The
conditional Loss feature separates members perfectly (AUC 1.00 at both lengths). The CFG
*contrast* features were weak then (CODE_VERSION 1: best CAMIA 0.66, contrast Loss 0.35-0.39);
the demo's 48-member canary has since read contrast Loss 0.996 (README), and with captions
trained unpadded (CODE_VERSION 3) the contrast Loss of the variable-length regression tests is
1.00 on folk tunes cut to 1-8 s and 0.93 on mixed-length speech. Wall times vary 2-3x with
machine load: 400 steps took 166 s (train) + 14 s (codec), 150 steps took 421 s under load.

Cache: ``harness.paths.cache_dir("canaries")/autoregressive-<key>``, key = hash of the training
parameters, the training data's manifest hash (file contents) and ``CODE_VERSION``.
"""

from __future__ import annotations

import json
import logging
import string
import time
from pathlib import Path

import numpy as np

from harness.canary import shuffled_batches, train_steps
from harness.errors import ConfigError, DataError

from ._audiocraft_lm import (COMPRESSION_FILE, LM_FILE, masked_cross_attention, null_keys,
                            t5_from, unpadded_key_mask)
from ._audiogen_impl import AudioGenModel

log = logging.getLogger(__name__)

#: bump when training changes (part of the cache key)
#: 3: captions attend unpadded in training (``training_predictions``), as the scorer scores
CODE_VERSION = "3"
T5_DIR = "t5"
T5_NAME = "t5-small"
#: training frames (at most) the RVQ k-means initialisation sees
KMEANS_FRAMES = 2048

#: parameters that change the trained weights (the others only change scoring)
TRAIN_PARAMS = ("train_data", "steps", "seed", "dim", "num_layers", "num_heads", "card",
                "codec_filters", "codec_dim", "segment_seconds", "cond_dropout", "lr",
                "warmup_steps", "batch_size", "weight_decay", "padding")

DEFAULT_TRAIN_DATA = {"source": "folk-tunes", "split": "members",
                      "params": {"n_members": 32, "n_nonmembers": 32}}


def t5_tokenizer():
    """Character-level unigram T5 tokenizer (pad 0, eos 1, unk 2): every caption tokenises, with
    no vocabulary learnt from (and so no dependence on) the training captions."""
    from transformers import T5Tokenizer

    chars = string.ascii_letters + string.digits + string.punctuation
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(c, -3.0) for c in chars] + [("▁" + c, -3.5) for c in chars]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def write_t5(path: Path, seed: int) -> None:
    import torch
    from transformers import T5Config, T5EncoderModel

    tok = t5_tokenizer()
    g_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        cfg = T5Config(vocab_size=len(tok), d_model=512, d_ff=128, d_kv=32, num_heads=4,
                       num_layers=1, feed_forward_proj="relu", pad_token_id=0, eos_token_id=1,
                       decoder_start_token_id=0)
        T5EncoderModel(cfg).save_pretrained(str(path))
    finally:
        torch.random.set_rng_state(g_state)
    tok.save_pretrained(str(path))


def training_predictions(lm, codes, attrs, n_null: int):
    """The solver's teacher-forced forward on a training batch (``compute_predictions`` on the
    LM's own condition tensors) with each caption's padded keys masked out of cross-attention:
    every row is computed as that caption alone, which is how the scorer
    (``AudiocraftLM._masked_predictions``) computes it. Without the mask a short caption is
    trained diluted by the zero keys of its batch neighbours' padding and scored undiluted."""
    provider = lm.condition_provider
    tensors = provider(provider.tokenize(attrs))
    ((_, mask),) = tensors.values()
    with masked_cross_attention(lm, unpadded_key_mask(mask, n_null)):
        return lm.compute_predictions(codes, [], tensors)


def xp_cfg(p: dict) -> dict:
    """The canary's merged config, with the keys audiocraft's builders read (AudioGen's values
    except the sizes)."""
    return {
        "device": "cpu", "dtype": "float32", "sample_rate": 16000, "channels": 1,
        "dataset": {"segment_duration": float(p["segment_seconds"]), "sample_rate": 16000,
                    "channels": 1},
        "compression_model": "encodec",
        "encodec": {"autoencoder": "seanet", "quantizer": "rvq", "sample_rate": 16000,
                    "channels": 1, "causal": False, "renormalize": False},
        "seanet": {"dimension": p["codec_dim"], "channels": 1, "causal": False,
                   "n_filters": p["codec_filters"], "n_residual_layers": 1,
                   "ratios": [8, 5, 4, 2], "activation": "ELU",
                   "activation_params": {"alpha": 1.0}, "norm": "weight_norm", "norm_params": {},
                   "kernel_size": 7, "residual_kernel_size": 3, "last_kernel_size": 7,
                   "dilation_base": 2, "pad_mode": "constant", "true_skip": True, "compress": 2,
                   "lstm": 2, "disable_norm_outer_blocks": 0,
                   "decoder": {"trim_right_ratio": 1.0, "final_activation": None,
                               "final_activation_params": None},
                   "encoder": {}},
        "rvq": {"n_q": 4, "q_dropout": False, "bins": p["card"], "decay": 0.99,
                "kmeans_init": True, "kmeans_iters": 20, "threshold_ema_dead_code": 2,
                "orthogonal_reg_weight": 0.0, "orthogonal_reg_active_codes_only": False},
        "no_quant": {},
        "lm_model": "transformer_lm",
        "codebooks_pattern": {"modeling": "delay",
                              "delay": {"delays": [0, 1, 2, 3], "flatten_first": 0,
                                        "empty_initial": 0}},
        "transformer_lm": {
            "dim": p["dim"], "num_heads": p["num_heads"], "num_layers": p["num_layers"],
            "hidden_scale": 4, "n_q": 4, "card": p["card"], "dropout": 0.0, "emb_lr": None,
            "activation": "gelu", "norm_first": True, "bias_ff": False, "bias_attn": False,
            "bias_proj": False, "past_context": None, "causal": True, "custom": False,
            "memory_efficient": True, "attention_as_float32": False, "layer_scale": None,
            "positional_embedding": "sin", "xpos": False, "checkpointing": "none",
            "weight_init": "gaussian", "depthwise_init": "current", "zero_bias_init": True,
            "norm": "layer_norm", "cross_attention": False, "qk_layer_norm": False,
            "qk_layer_norm_cross": False, "attention_dropout": None, "kv_repeat": 1,
            "two_step_cfg": False},
        "classifier_free_guidance": {"training_dropout": float(p["cond_dropout"]),
                                     "inference_coef": 3.0},
        "attribute_dropout": {},
        "fuser": {"cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1,
                  "sum": [], "prepend": [], "cross": ["description"], "input_interpolate": []},
        "conditioners": {"description": {
            "model": "t5", "t5": {"name": T5_NAME, "finetune": False, "word_dropout": 0.0,
                                  "normalize_text": False}}},
    }


class AutoregressiveCanary(AudioGenModel):
    """An AudioGen-architecture canary trained lazily on ``train_data`` (members)."""

    #: 2: scored with the audiogen plugin's batched masked cross-attention
    #: 3: padded frames neither trained on nor scored (``padding``), clips encoded alone
    version = "3"
    data_ref_params = ("train_data",)
    defaults = {
        "train_data": DEFAULT_TRAIN_DATA,
        "steps": 300,
        "seed": 0,
        "dim": 128,
        "num_layers": 3,
        "num_heads": 4,
        "card": 256,              # bins per RVQ codebook
        "codec_filters": 8,       # SEANet n_filters
        "codec_dim": 32,          # SEANet latent dimension
        "segment_seconds": 3.0,   # training crop = scoring crop (first seconds of each clip)
        "cond_dropout": 0.1,
        "lr": 2e-3,
        "warmup_steps": 50,
        "batch_size": 16,
        "weight_decay": 0.1,
        "threads": 2,             # torch CPU threads while training (not part of the key)
        # scoring, as the audiogen plugin
        "dtype": "float32",
        "contrast": "logit",
        "windows": "first",
        "padding": "exclude",     # exclude: padded frames are neither trained on nor scored
    }
    param_docs = {
        "card": "codebook size (bins per RVQ codebook) of the canary's codec, >= 2",
        "codec_filters": "SEANet n_filters of the canary's codec (>= 1)",
        "codec_dim": "SEANet latent dimension of the canary's codec (>= 2)",
        "train_data": "data reference {source, split, params, n} of the member clips it trains "
                      "on (n: a seeded subset); default the folk-tunes members",
        "steps": "LM optimiser steps, >= 1 (more steps, more memorisation)",
        "seed": "integer seeding initialisation, codec and batch order (part of the cache key)",
        "dim": "transformer width (>= 8), a multiple of num_heads",
        "num_layers": "transformer layers (>= 1)",
        "num_heads": "attention heads (>= 1)",
        "cond_dropout": "probability in [0, 1) that a caption is replaced by the null "
                        "condition in training (AudioGen: 0.1); 0 = no null condition learnt",
        "lr": "AdamW learning rate in [1e-7, 1), constant after the warm-up",
        "warmup_steps": "linear warm-up steps (>= 0)",
        "batch_size": "training clips per step (>= 1)",
        "weight_decay": "AdamW weight decay in [0, 10)",
    }

    def validate(self) -> None:
        p = self.params
        ints = {"steps": 1, "seed": 0, "dim": 8, "num_layers": 1, "num_heads": 1, "card": 2,
                "codec_filters": 1, "codec_dim": 2, "warmup_steps": 0, "batch_size": 1,
                "threads": 1}
        for k, lo in ints.items():
            v = p[k]
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ConfigError(f"autoregressive-canary: {k} must be an integer >= {lo}, "
                                  f"got {v!r}")
        if p["dim"] % p["num_heads"]:
            raise ConfigError("autoregressive-canary: dim must be a multiple of num_heads")
        s = p["segment_seconds"]
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 2 < s <= 30:
            raise ConfigError("autoregressive-canary: segment_seconds must be in (2, 30] "
                              "(AudioGen's loader needs a segment longer than its 2 s "
                              f"extend_stride), got {s!r}")
        for k, lo, hi in (("cond_dropout", 0.0, 1.0), ("lr", 1e-7, 1.0),
                          ("weight_decay", 0.0, 10.0)):
            v = p[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v < hi:
                raise ConfigError(f"autoregressive-canary: {k} must be in [{lo}, {hi}), "
                                  f"got {v!r}")
        td = p["train_data"]
        if not isinstance(td, dict) or "source" not in td or "split" not in td:
            raise ConfigError("autoregressive-canary: train_data must be a data reference "
                              "{source, split, params, n}, e.g. {source: local-folder, "
                              "split: member, params: {manifest: clips.csv}, n: 48} or "
                              "{source: folk-tunes, split: members}")
        self.params["checkpoint"] = None
        self.params["t5"] = None
        super().validate()
        self._ckpt_dir: Path | None = None

    # -- where the checkpoint comes from ------------------------------------------------------

    def _checkpoint_is_derived(self) -> bool:
        return True

    def _train_samples(self):
        from harness.canary import training_samples

        return training_samples("autoregressive-canary", self.params["train_data"])

    def cache_key(self, samples) -> str:
        from harness import canary

        return canary.key("autoregressive-canary", CODE_VERSION,
                          {k: self.params[k] for k in TRAIN_PARAMS}, samples)

    def checkpoint_dir(self) -> Path:
        if self._ckpt_dir is None:
            from harness.paths import cache_dir

            samples = self._train_samples()
            path = cache_dir("canaries") / f"autoregressive-{self.cache_key(samples)}"
            if not ((path / LM_FILE).is_file() and (path / COMPRESSION_FILE).is_file()):
                self._train(samples, path)
            self._ckpt_dir = path
        return self._ckpt_dir

    def checkpoint_source(self) -> str:
        return str(self.checkpoint_dir())

    def t5_source(self) -> str:
        return str(self.checkpoint_dir() / T5_DIR)

    def identity(self) -> dict:
        """The trained weights' content hashes (``AudioGenModel.identity``): not the cache path
        nor the training-data paths, so a copied cache is reused."""
        return super().identity()

    # -- training -------------------------------------------------------------------------------

    def _read_clips(self, samples):
        """([N, 1, segment] waveforms, [N] audio samples in each): audiocraft's reading of each
        sample's first window, exactly what the scorer reads."""
        import torch
        import torch.nn.functional as F
        from audiocraft.data.audio import audio_read
        from audiocraft.data.audio_utils import convert_audio

        from harness import segments

        seconds = float(self.params["segment_seconds"])
        target = int(seconds * 16000)
        out, lengths = [], []
        for s in samples:
            try:
                w = segments.plan(s, seconds, "first", 0.02)[0]
                wav, sr = audio_read(s.path, w.start, w.seconds, pad=False)
            except DataError:
                raise
            except Exception as exc:
                raise DataError(f"autoregressive-canary: cannot read '{s.path}' (sample "
                                f"{s.id}): {type(exc).__name__}: {exc}") from exc
            wav = convert_audio(wav, sr, 16000, 1)[..., :target]
            lengths.append(int(wav.shape[-1]))
            out.append(F.pad(wav, (0, target - wav.shape[-1])))
        return torch.stack(out), lengths

    def _train(self, samples, target: Path) -> None:
        import audiocraft
        import torch
        from audiocraft.models import builders
        from omegaconf import OmegaConf

        from harness import atomic

        p = self.params
        t0, c0 = time.time(), time.process_time()
        old_threads = torch.get_num_threads()
        torch.set_num_threads(p["threads"])
        try:
            with atomic.directory(target) as tmp:
                write_t5(tmp / T5_DIR, p["seed"])
                cfg = OmegaConf.create(xp_cfg(p))
                torch.manual_seed(p["seed"])
                comp = builders.get_compression_model(cfg)
                with t5_from(tmp / T5_DIR):
                    lm = builders.get_lm_model(cfg)

                # codec: seeded SEANet, RVQ codebooks by k-means on the training latents
                wav, lengths = self._read_clips(samples)
                with torch.no_grad():
                    latents = torch.cat([comp.encoder(wav[i:i + 1]) for i in range(len(wav))])
                    # k-means init (layer by layer, on the residuals) on a seeded subsample
                    # of the training frames: audiocraft's kmeans holds [frames, bins, dim]
                    hop = int(round(16000 / comp.frame_rate))
                    valid = torch.tensor([n // hop for n in lengths])
                    real = torch.arange(latents.shape[-1])[None, :] < valid[:, None]
                    if p["padding"] == "include":
                        real[:] = True
                    frames = latents.permute(0, 2, 1)[real]
                    g_frames = torch.Generator().manual_seed(p["seed"])
                    pick = torch.randperm(frames.shape[0], generator=g_frames)[:KMEANS_FRAMES]
                    comp.quantizer.train()
                    comp.quantizer(frames[pick].T[None].contiguous(), comp.frame_rate)
                    comp.eval()
                    codes = torch.cat([comp.encode(wav[i:i + 1])[0] for i in range(len(wav))])
                usage = []
                for k in range(codes.shape[1]):
                    counts = torch.bincount(codes[:, k][real], minlength=p["card"]).double()
                    q = counts[counts > 0] / counts.sum()
                    usage.append({"used": int((counts > 0).sum()),
                                  "perplexity": float(torch.exp(-(q * q.log()).sum()))})
                tuples = codes.permute(0, 2, 1)[real]
                distinct = int(torch.unique(tuples, dim=0).shape[0]) / tuples.shape[0]
                codec_s = time.time() - t0

                # LM: the solver's objective
                captions = [s.caption for s in samples]
                opt = torch.optim.AdamW(lm.parameters(), lr=p["lr"], betas=(0.9, 0.95),
                                        weight_decay=p["weight_decay"])
                sched = torch.optim.lr_scheduler.LambdaLR(
                    opt, lambda step: min(1.0, (step + 1) / max(1, p["warmup_steps"])))
                g = torch.Generator().manual_seed(p["seed"])
                n = codes.shape[0]
                bs = min(p["batch_size"], n)
                batches, losses = shuffled_batches(n, bs, g), []
                n_null = null_keys(lm, self.condition_attributes([None]))
                lm.train()
                t1 = time.time()
                for step, idx in train_steps("autoregressive-canary", p["steps"], batches,
                                             losses):
                    attrs = self.condition_attributes([captions[i] for i in idx.tolist()])
                    attrs = lm.cfg_dropout(attrs)
                    attrs = lm.att_dropout(attrs)
                    x = codes[idx]
                    out = training_predictions(lm, x, attrs, n_null)
                    loss = 0.0
                    for k in range(x.shape[1]):
                        m = out.mask[:, k] & real[idx]
                        loss = loss + torch.nn.functional.cross_entropy(
                            out.logits[:, k][m], x[:, k][m])
                    loss = loss / x.shape[1]
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
                    opt.step()
                    sched.step()
                    losses.append(float(loss.detach()))
                    if (step + 1) % 100 == 0 or step + 1 == p["steps"]:
                        log.info("autoregressive-canary: step %d/%d, loss %.3f, %.0f s",
                                 step + 1, p["steps"], np.mean(losses[-20:]), time.time() - t1)
                train_s = time.time() - t1
                lm.eval()

                yaml = OmegaConf.to_yaml(cfg)
                for fname, model in ((LM_FILE, lm), (COMPRESSION_FILE, comp)):
                    torch.save({"best_state": model.state_dict(), "xp.cfg": yaml,
                                "version": audiocraft.__version__, "exported": True},
                               tmp / fname)
                (tmp / "training.json").write_text(json.dumps({
                    "members": [s.id for s in samples], "frames": int(codes.shape[-1]),
                    # (clip, frame) positions the loss and the k-means saw: the clips' real
                    # frames under padding: exclude, every frame of the segment under include
                    "trained_frames": int(real.sum()),
                    "codec_seconds": codec_s, "train_seconds": train_s,
                    "total_seconds": time.time() - t0, "threads": p["threads"],
                    # CPU seconds of this process: wall time on an idle machine is about
                    # cpu_seconds / threads, whatever else was running
                    "cpu_seconds": time.process_time() - c0,
                    "code_usage": usage, "distinct_frame_fraction": distinct,
                    "loss_first": float(np.mean(losses[:10])),
                    "loss_last": float(np.mean(losses[-10:])),
                    "params": {k: self.params[k] for k in TRAIN_PARAMS}, "code": CODE_VERSION,
                }, indent=2, default=str))
        finally:
            torch.set_num_threads(old_threads)

    def training_report(self) -> dict:
        """What ``training.json`` recorded (time, losses, code usage)."""
        return json.loads((self.checkpoint_dir() / "training.json").read_text())
