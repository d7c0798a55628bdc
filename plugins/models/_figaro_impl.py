"""The ``figaro`` model plugin: official FIGARO checkpoints, scored by teacher forcing.

Loading follows ``src/generate.py load_old_or_new_checkpoint``: read ``hyper_parameters``
(dropping the legacy ``flavor`` and ``vae_run``), build the module from them, drop the
``*embeddings.position_ids`` buffers older transformers saved, and load the ``state_dict``
strictly. Cross-attention with or without relative position embeddings (transformers < / >=
4.13) is recognised from the keys, which is what the official try/except does.

Scoring follows training (``MidiDataset`` + ``SeqCollator``): ``<bos>`` + REMI events + ``<eos>``,
cut into non-overlapping windows of ``context+1`` tokens (the last aligned to the end), inputs
``[:context]`` and labels ``[1:]``, the description slice from the window's first bar; every
window's description and input are padded to ``context`` (what a full training batch of 128
windows looks like, and independent of which other files share a batch). Token statistics of a
file's windows are concatenated; with ``dedupe_overlap`` (default) the tokens of the end-aligned
last window that an earlier window already scored are not counted twice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness import dtypes
from harness.contracts import TOKEN_STATS_CONDITIONAL, AutoregressiveModel, Sample
from harness.errors import ConfigError, DataError, ModelLoadError

from . import _figaro_remi as remi

DTYPES = dtypes.NAMES  # the harness-wide table (harness.dtypes)


# ---------------------------------------------------------------------------------------------
# reading a Lightning checkpoint without Lightning


def read_checkpoint(path: str | os.PathLike, what: str = "checkpoint") -> dict:
    """A Lightning ``.ckpt`` with ``hyper_parameters`` and ``state_dict``, read through
    ``harness.safeload`` (weights only: a checkpoint never runs code, and the Lightning names
    it may reference load as inert stand-ins, so pytorch_lightning need not be installed)."""
    from harness import safeload

    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"FIGARO {what} not found: {p}. Download the official checkpoints "
                             "(README of dvruette/figaro: checkpoints.zip) and pass the .ckpt path")
    ckpt = safeload.load(p, what=f"FIGARO {what}")
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        keys = sorted(map(str, ckpt))[:10] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ModelLoadError(f"FIGARO {what} {p} is not a Lightning checkpoint: it needs "
                             f"'hyper_parameters' and 'state_dict', found {keys}")
    if not isinstance(ckpt["hyper_parameters"], dict) or not isinstance(ckpt["state_dict"], dict):
        raise ModelLoadError(f"FIGARO {what} {p}: 'hyper_parameters' and 'state_dict' must be "
                             "dicts")
    return ckpt


def _hparams(ckpt: dict, allowed: dict, path, what: str) -> dict:
    hp = dict(ckpt["hyper_parameters"])
    for k in ("flavor", "vae_run"):
        hp.pop(k, None)
    unknown = sorted(k for k in hp if k not in allowed)
    if unknown:
        raise ModelLoadError(f"FIGARO {what} {path}: unknown hyper_parameters {unknown} "
                             f"(the official constructor accepts {sorted(allowed)})")
    return {**allowed, **hp}


def _fmt_keys(keys) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:12])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > 12 else "")


def load_state_strict(module, state_dict: dict, path, what: str) -> None:
    """Strict loading with an error that names the keys (torch's message is truncated)."""
    sd = {k: v for k, v in state_dict.items() if not k.endswith("embeddings.position_ids")}
    expected = set(module.state_dict())
    missing, unexpected = expected - set(sd), set(sd) - expected
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_fmt_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_fmt_keys(unexpected)}")
        raise ModelLoadError(f"FIGARO {what} {path} does not match the architecture its "
                             f"hyper_parameters describe; " + "; ".join(parts))
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"FIGARO {what} {path}: {exc}") from exc


def _cross_relative(state_dict: dict, prefix: str) -> bool:
    return any(k.startswith(prefix) and ".crossattention.self.distance_embedding." in k
               for k in state_dict)


def load_seq2seq(path, vae_path=None):
    """(Seq2Seq, VqVae | None), both in eval mode, from official checkpoint files."""
    from . import _figaro_model as fm

    ckpt = read_checkpoint(path)
    hp = _hparams(ckpt, fm.SEQ2SEQ_HPARAMS, path, "checkpoint")
    sd = ckpt["state_dict"]
    try:
        model = fm.Seq2Seq(hp, len(remi.remi_vocab()), len(remi.description_vocab()),
                           cross_relative=_cross_relative(sd, "transformer.decoder."))
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelLoadError(f"FIGARO checkpoint {path}: invalid hyper_parameters: {exc}") from exc
    load_state_strict(model, sd, path, "checkpoint")
    model.eval()
    vae = None
    if hp["description_flavor"] in ("latent", "both"):
        if not vae_path:
            raise ModelLoadError(
                f"FIGARO checkpoint {path} has description_flavor "
                f"'{hp['description_flavor']}' (learned VQ-VAE codes): pass vae_checkpoint, the "
                "official vq-vae.ckpt")
        vckpt = read_checkpoint(vae_path, "VQ-VAE checkpoint")
        vhp = _hparams(vckpt, fm.VQVAE_HPARAMS, vae_path, "VQ-VAE checkpoint")
        vsd = vckpt["state_dict"]
        try:
            vae = fm.VqVae(vhp, len(remi.remi_vocab()),
                           cross_relative=_cross_relative(vsd, "transformer.decoder."))
        except (ValueError, TypeError, KeyError) as exc:
            raise ModelLoadError(f"VQ-VAE checkpoint {vae_path}: invalid hyper_parameters: "
                                 f"{exc}") from exc
        load_state_strict(vae, vsd, vae_path, "VQ-VAE checkpoint")
        vae.eval()
        if (hp["use_pretrained_latent_embeddings"] and vhp["d_latent"] != hp["d_latent"]):
            raise ModelLoadError(f"VQ-VAE {vae_path} has d_latent {vhp['d_latent']} but "
                                 f"{path} expects {hp['d_latent']}: use the VQ-VAE it was "
                                 "trained with")
    return model, vae


# ---------------------------------------------------------------------------------------------
# the plugin


class FigaroModel(AutoregressiveModel):
    """FIGARO (von Rütte et al., ICLR 2023) from its official Lightning checkpoints.

    ``figaro-expert.ckpt`` needs only ``checkpoint``; ``figaro.ckpt`` (description flavour
    'both') also ``vae_checkpoint`` (``vq-vae.ckpt``), whose per-bar codes it reads. FIGARO has
    no classifier-free guidance, so only ``token_stats/conditional`` exists: run the
    autoregressive attacks with ``mode: conditional``.
    """

    version = "1"
    has_null_condition = False
    path_params = ("checkpoint", "vae_checkpoint")
    defaults = {
        "checkpoint": None,
        "vae_checkpoint": None,
        "dtype": "float32",
        "max_windows": None,     # cap on windows per file (official max_contexts_per_file)
        "window": None,          # tokens per window; None = the checkpoint's context_size (256)
        "dedupe_overlap": True,  # count tokens of the end-aligned last window once
        "batch_windows": 16,     # windows per forward pass (does not change the numbers)
    }
    param_docs = {
        "checkpoint": "required: path of the official figaro-expert.ckpt or figaro.ckpt "
                      "(Lightning checkpoint)",
        "vae_checkpoint": "path of vq-vae.ckpt, needed by figaro.ckpt (description flavour "
                          "'both'); null for figaro-expert.ckpt",
        "dtype": "dtype of the forward pass; float16/bfloat16 as on GPU",
    }
    param_choices = {"dtype": DTYPES}

    def validate(self) -> None:
        p = self.params
        if not p["checkpoint"]:
            raise ConfigError("figaro: 'checkpoint' is required: the path of figaro-expert.ckpt "
                              "or figaro.ckpt (with vae_checkpoint: vq-vae.ckpt)")
        if p["dtype"] not in DTYPES:
            raise ConfigError(f"figaro: dtype must be one of {DTYPES}, got {p['dtype']!r}")
        for k in ("max_windows", "window"):
            v = p[k]
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ConfigError(f"figaro: {k} must be a positive integer or null, got {v!r}")
        if p["window"] is not None and p["window"] > 1023:
            raise ConfigError("figaro: window must be <= 1023 (relative position range)")
        if not isinstance(p["batch_windows"], int) or p["batch_windows"] < 1:
            raise ConfigError("figaro: batch_windows must be a positive integer")
        self._model = None
        self._vae = None

    # -- identity / loading ----------------------------------------------------------------

    def checkpoint_paths(self) -> tuple[str, str | None]:
        return self.params["checkpoint"], self.params["vae_checkpoint"]

    def identity(self) -> dict:
        from harness.checkpoints import file_hash

        ckpt, vae = self.checkpoint_paths()
        for what, path in (("checkpoint", ckpt), ("vae_checkpoint", vae)):
            if path and not Path(path).is_file():
                raise ModelLoadError(f"figaro: {what} not found: {path}")
        # contents only: a copied checkpoint (or a copied cache holding a canary) is the same
        return {"checkpoint_sha256": file_hash(ckpt),
                "vae_sha256": file_hash(vae) if vae else None,
                "dtype": self.params["dtype"], "window": self.params["window"],
                "max_windows": self.params["max_windows"],
                "dedupe_overlap": self.params["dedupe_overlap"]}

    def load(self):
        if self._model is None:
            import torch

            ckpt, vae_path = self.checkpoint_paths()
            model, vae = load_seq2seq(ckpt, vae_path)
            dtype = getattr(torch, self.params["dtype"])
            self._model = model.to(device=self.device, dtype=dtype)
            self._vae = vae.to(self.device) if vae is not None else None
        return self._model

    @property
    def context(self) -> int:
        return self.params["window"] or self.load().context_size

    # -- inputs -----------------------------------------------------------------------------

    def encode_sample(self, sample: Sample) -> remi.Encoded:
        model = self.load()
        try:
            enc = remi.encode_midi(sample.path)
        except remi.InvalidMidi as exc:
            raise DataError(f"figaro: sample '{sample.id}' ({sample.path}) is skipped by "
                            f"FIGARO's training loader: {exc}. Keep only files that pass its "
                            "filters (lakh-midi apply_filters: true)") from exc
        why = remi.filter_reason(enc, model.max_bars)
        if why:
            raise DataError(f"figaro: sample '{sample.id}' ({sample.path}) is skipped by "
                            f"FIGARO's training loader ({why}); drop it from the data")
        opts = model.hp.get("description_options")
        if opts:
            keys = {k: opts[k] for k in ("instruments", "chords", "meta") if k in opts}
            enc.description = remi.filter_description(enc.description, **keys)
        return enc

    def _latents(self, enc: remi.Encoded):
        """Per-bar VQ-VAE vectors (``get_latent_representation``): one pass per bar over
        ``<bos>`` + bar tokens + ``<eos>`` cut to the VAE's context."""
        import torch

        vocab = remi.remi_vocab()
        bos, eos = vocab.to_i(remi.BOS), vocab.to_i(remi.EOS)
        zs = []
        with torch.no_grad():
            for bar in remi.bar_token_groups(enc):
                x = np.concatenate([[bos], bar, [eos]])[: self._vae.context_size]
                x = torch.as_tensor(x, dtype=torch.long, device=self.device)[None]
                zs.append(self._vae.encode(x)["z"].float())
        return torch.cat(zs)

    def _batch(self, items):
        """Tensors for a list of (Window, latents|None), padded to ``context``."""
        import torch

        model = self.load()
        C = self.context
        pad = remi.remi_vocab().to_i(remi.PAD)
        dpad = remi.description_vocab().to_i(remi.PAD)
        B = len(items)
        x = np.full((B, C), pad, dtype=np.int64)
        y = np.full((B, C), pad, dtype=np.int64)
        bars = np.zeros((B, C), dtype=np.int64)
        pos = np.zeros((B, C), dtype=np.int64)
        desc = np.full((B, C), dpad, dtype=np.int64)
        dbar = np.zeros((B, C), dtype=np.int64)
        for i, (w, _) in enumerate(items):
            n = len(w.ids)
            x[i, :n - 1] = w.ids[:-1][:C]
            y[i, :n - 1] = w.ids[1:][:C]
            bars[i, :n - 1] = w.bar_ids[:-1][:C]
            pos[i, :n - 1] = w.position_ids[:-1][:C]
            d = w.description[:C]
            desc[i, :len(d)] = d
            dbar[i, :len(d)] = w.desc_bar_ids[:C]
        t = lambda a: torch.as_tensor(a, device=self.device)  # noqa: E731
        batch = {"x": t(x), "bar_ids": t(bars), "position_ids": t(pos), "labels": t(y)}
        if model.flavor in ("description", "both"):
            batch["description"] = t(desc)
            batch["desc_bar_ids"] = t(dbar)
        if model.flavor in ("latent", "both"):
            # SeqCollator: the file's latents from its first bar, zero-padded, cut to context
            lat = torch.zeros(B, C, items[0][1].shape[-1], device=self.device)
            for i, (_, z) in enumerate(items):
                z = z[:C]
                lat[i, :len(z)] = z
            batch["latents"] = lat.to(next(model.parameters()).dtype)
        return batch

    def logits(self, batch):
        import torch

        model = self.load()
        with torch.no_grad():
            return model(batch["x"], batch["bar_ids"], batch["position_ids"],
                         description=batch.get("description"),
                         desc_bar_ids=batch.get("desc_bar_ids"), latents=batch.get("latents"))

    # -- provide ------------------------------------------------------------------------------

    def provide(self, samples: Sequence[Sample], needs: set[str], ctx: Any = None) -> dict:
        import torch

        from harness.tokenstats import concatenate, summarize

        model = self.load()
        C = self.context
        pad = remi.remi_vocab().to_i(remi.PAD)
        items, owners, keep_masks = [], [], []
        for si, s in enumerate(samples):
            enc = self.encode_sample(s)
            lat = self._latents(enc) if model.flavor in ("latent", "both") else None
            wins = remi.windows(enc, C, self.params["max_windows"])
            scored = np.zeros(len(enc.event_ids) + 2, dtype=bool)
            for w in wins:
                keep = np.zeros(C, dtype=bool)
                n = len(w.ids) - 1
                absolute = w.start + 1 + np.arange(n)
                keep[:n] = ~scored[absolute] if self.params["dedupe_overlap"] else True
                scored[absolute] = True
                items.append((w, lat))
                owners.append(si)
                keep_masks.append(keep)
        per_sample: list[list] = [[] for _ in samples]
        bw = self.params["batch_windows"]
        for b in range(0, len(items), bw):
            batch = self._batch(items[b:b + bw])
            logits = self.logits(batch)
            keep = torch.as_tensor(np.stack(keep_masks[b:b + bw]), device=logits.device)
            mask = (batch["labels"] != pad) & keep
            for j, st in enumerate(summarize(logits, batch["labels"], mask)):
                per_sample[owners[b + j]].append(st)
        stats = [concatenate(parts) for parts in per_sample]
        return {TOKEN_STATS_CONDITIONAL: stats} if TOKEN_STATS_CONDITIONAL in needs or not needs \
            else {}
