"""``symbolic-canary``: a small FIGARO (figaro-expert flavour) trained here, on CPU, on known
member MIDI files, so the whole FIGARO pipeline has a model with a known membership ground truth.

Why it goes through the official format: the canary is written as a Lightning-style ``.ckpt``
(``hyper_parameters`` + ``state_dict`` with the official key names) and scored by *loading that
file* with the ``figaro`` plugin's loader and scoring code. So every number the canary produces
also exercises the path a user's real ``figaro-expert.ckpt`` takes.

Training reproduces FIGARO's objective on FIGARO's inputs: the same REMI events and expert
description, the same filters and ``context+1`` windows, cross-entropy over non-pad targets
(``Seq2SeqModule.get_loss``), AdamW (weight decay 0.01), gradient clipping at 1.0, a constant
learning rate after a linear warm-up. Differences, all about size and time: tiny widths, few
steps, and no dropout (a 3-minute canary has to memorise its members to be a useful canary).

Caching: ``harness.paths.cache_dir("canaries", key)``, key = hash of the training parameters,
the training data's manifest hash (file contents) and ``CODE_VERSION``; written atomically.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from harness import dtypes
from harness.canary import shuffled_batches, train_steps
from harness.errors import ConfigError, DataError

from . import _figaro_remi as remi
from ._figaro_impl import FigaroModel

#: bump when training changes (part of the cache key)
CODE_VERSION = "1"
CKPT_NAME = "symbolic-canary.ckpt"

#: parameters that change the trained weights (the others only change scoring)
TRAIN_PARAMS = ("train_data", "steps", "seed", "d_model", "encoder_layers", "decoder_layers",
                "num_attention_heads", "intermediate_size", "context_size", "lr",
                "warmup_steps", "batch_size")

DEFAULT_TRAIN_DATA = {"source": "folk-tunes", "split": "members",
                      "params": {"kind": "midi", "n_members": 64, "n_nonmembers": 64}}


class SymbolicCanary(FigaroModel):
    """A FIGARO-architecture canary trained lazily on ``train_data`` (members)."""

    version = "1"
    data_ref_params = ("train_data",)
    defaults = {
        "train_data": DEFAULT_TRAIN_DATA,
        "steps": 300,
        "seed": 0,
        "d_model": 64,
        "encoder_layers": 1,
        "decoder_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "context_size": 256,
        "lr": 2e-3,
        "warmup_steps": 40,
        "batch_size": 16,
        "threads": 2,            # torch CPU threads while training (does not change the key)
        # scoring (as the figaro plugin)
        "dtype": "float32",
        "max_windows": None,
        "dedupe_overlap": True,
        "batch_windows": 16,
    }
    param_docs = {
        "train_data": "data reference {source, split, params, n} of the member MIDI files it "
                      "trains on (n: a seeded subset); default 64 folk tunes as MIDI",
        "steps": "optimiser steps, >= 1 (more steps, more memorisation)",
        "seed": "integer seeding initialisation and batch order (part of the cache key)",
        "d_model": "transformer width, a multiple of num_attention_heads",
        "encoder_layers": "encoder layers (>= 1)",
        "decoder_layers": "decoder layers (>= 1)",
        "num_attention_heads": "attention heads (>= 1)",
        "intermediate_size": "feed-forward width (>= 1)",
        "context_size": "tokens per training/scoring window, in [8, 1023] (FIGARO: 256)",
        "lr": "AdamW learning rate in (0, 1), constant after the warm-up",
        "warmup_steps": "linear warm-up steps (>= 0)",
        "batch_size": "training windows per step (>= 1)",
        "dtype": "dtype of scoring (training is float32); float16/bfloat16 as on GPU",
        "max_windows": "cap on windows per file when scoring; null = all (as the figaro "
                       "plugin)",
        "dedupe_overlap": "count the tokens of the end-aligned last window once (as the figaro "
                          "plugin)",
        "batch_windows": "windows per forward pass when scoring (does not change the numbers)",
    }

    def validate(self) -> None:
        p = self.params
        ints = ("steps", "seed", "d_model", "encoder_layers", "decoder_layers",
                "num_attention_heads", "intermediate_size", "context_size", "warmup_steps",
                "batch_size", "threads", "batch_windows")
        for k in ints:
            v = p[k]
            lo = 0 if k in ("seed", "warmup_steps") else 1
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ConfigError(f"symbolic-canary: {k} must be an integer >= {lo}, got {v!r}")
        if p["d_model"] % p["num_attention_heads"]:
            raise ConfigError("symbolic-canary: d_model must be a multiple of num_attention_heads")
        dtypes.check(p["dtype"], "symbolic-canary")
        if not 8 <= p["context_size"] <= 1023:
            raise ConfigError("symbolic-canary: context_size must be in [8, 1023]")
        if not isinstance(p["lr"], (int, float)) or not 0 < p["lr"] < 1:
            raise ConfigError(f"symbolic-canary: lr must be in (0, 1), got {p['lr']!r}")
        td = p["train_data"]
        if not isinstance(td, dict) or "source" not in td or "split" not in td:
            raise ConfigError("symbolic-canary: train_data must be a data reference "
                              "{source, split, params, n}, e.g. {source: local-folder, "
                              "split: member, params: {manifest: tunes.csv}, n: 48} (MIDI "
                              "files) or {source: folk-tunes, split: members, params: "
                              "{kind: midi}}")
        self.params["checkpoint"] = None
        self.params["vae_checkpoint"] = None
        self.params["window"] = None
        self._model = None
        self._vae = None
        self._ckpt_dir: Path | None = None

    # -- training data and cache key -----------------------------------------------------------

    def _train_samples(self):
        from harness.canary import training_samples

        return training_samples("symbolic-canary", self.params["train_data"])

    def training_report(self) -> dict:
        """What ``training.json`` recorded (time, steps, losses), training first if needed."""
        return json.loads((self.checkpoint_dir() / "training.json").read_text())

    def cache_key(self, samples) -> str:
        from harness import canary

        return canary.key("symbolic-canary", CODE_VERSION,
                          {k: self.params[k] for k in TRAIN_PARAMS}, samples)

    def checkpoint_dir(self) -> Path:
        if self._ckpt_dir is None:
            from harness.paths import cache_dir

            samples = self._train_samples()
            path = cache_dir("canaries") / f"symbolic-{self.cache_key(samples)}"
            if not (path / CKPT_NAME).is_file():
                self._train(samples, path)
            self._ckpt_dir = path
        return self._ckpt_dir

    def checkpoint_paths(self):
        return str(self.checkpoint_dir() / CKPT_NAME), None

    def identity(self) -> dict:
        """The trained checkpoint's content hash (``FigaroModel.identity``), not its path in
        the cache, so a copied cache is reused."""
        return super().identity()

    # -- training ---------------------------------------------------------------------------------

    def hyper_parameters(self) -> dict:
        from . import _figaro_model as fm

        p = self.params
        return {**fm.SEQ2SEQ_HPARAMS, "d_model": p["d_model"], "context_size": p["context_size"],
                "lr": p["lr"], "lr_schedule": "const", "warmup_steps": p["warmup_steps"],
                "max_steps": p["steps"], "encoder_layers": p["encoder_layers"],
                "decoder_layers": p["decoder_layers"], "intermediate_size": p["intermediate_size"],
                "num_attention_heads": p["num_attention_heads"],
                "description_flavor": "description"}

    def _train(self, samples, target: Path) -> None:
        import torch

        from harness import atomic

        from . import _figaro_model as fm

        p = self.params
        C = p["context_size"]
        t0 = time.time()
        wins, skipped = [], []
        for s in samples:
            try:
                enc = remi.encode_midi(s.path)
            except remi.InvalidMidi as exc:
                skipped.append([s.id, str(exc)])
                continue
            why = remi.filter_reason(enc, C)
            if why:
                skipped.append([s.id, why])
                continue
            wins += remi.windows(enc, C)
        if not wins:
            raise DataError("symbolic-canary: no training file passes FIGARO's filters "
                            f"(skipped: {skipped[:3]})")
        X = np.zeros((len(wins), C + 1), dtype=np.int64)  # pad id 0
        BAR = np.zeros_like(X)
        POS = np.zeros_like(X)
        D = np.zeros((len(wins), C), dtype=np.int64)
        DB = np.zeros_like(D)
        for i, w in enumerate(wins):
            X[i, :len(w.ids)] = w.ids
            BAR[i, :len(w.ids)] = w.bar_ids
            POS[i, :len(w.ids)] = w.position_ids
            d = w.description[:C]
            D[i, :len(d)] = d
            DB[i, :len(d)] = w.desc_bar_ids[:C]
        X, BAR, POS, D, DB = (torch.as_tensor(a) for a in (X, BAR, POS, D, DB))
        prep_s = time.time() - t0

        old_threads = torch.get_num_threads()
        torch.set_num_threads(p["threads"])
        try:
            g = torch.Generator().manual_seed(p["seed"])
            torch.manual_seed(p["seed"])
            hp = self.hyper_parameters()
            model = fm.Seq2Seq(hp, len(remi.remi_vocab()), len(remi.description_vocab()),
                               dropout=0.0)
            opt = torch.optim.AdamW(model.parameters(), lr=p["lr"], weight_decay=0.01)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda step: min(1.0, (step + 1) / max(1, p["warmup_steps"])))
            loss_fn = torch.nn.CrossEntropyLoss(ignore_index=0)
            model.train()
            n = X.shape[0]
            batches, losses = shuffled_batches(n, p["batch_size"], g), []
            t1, c1 = time.time(), time.process_time()
            for step, idx in train_steps("symbolic-canary", p["steps"], batches, losses):
                x, bars, pos = X[idx, :C], BAR[idx, :C], POS[idx, :C]
                logits = model(x, bars, pos, description=D[idx], desc_bar_ids=DB[idx])
                loss = loss_fn(logits.reshape(-1, logits.shape[-1]), X[idx, 1:].reshape(-1))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
            train_s, train_cpu_s = time.time() - t1, time.process_time() - c1
        finally:
            torch.set_num_threads(old_threads)
        model.eval()
        with atomic.directory(target) as tmp:
            torch.save({"hyper_parameters": hp, "state_dict": model.state_dict(),
                        "epoch": int(p["steps"] * p["batch_size"] // n), "global_step": p["steps"],
                        "pytorch-lightning_version": None},
                       tmp / CKPT_NAME)
            (tmp / "training.json").write_text(json.dumps({
                "members": [s.id for s in samples], "skipped": skipped, "windows": n,
                "prep_seconds": prep_s, "train_seconds": train_s, "train_cpu_seconds": train_cpu_s,
                "threads": p["threads"],
                "loss_first": float(np.mean(losses[:10])), "loss_last": float(np.mean(losses[-10:])),
                "params": {k: self.params[k] for k in TRAIN_PARAMS}, "code": CODE_VERSION,
            }, indent=2, default=str))
