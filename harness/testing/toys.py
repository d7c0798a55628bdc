"""Tiny models and data with a known member signal, for testing attacks and aggregators in seconds.

Why toys and not the canaries: a plugin author's test must run in a second on any machine, and a
contract check runs the same attack several times (batch sizes, sample orders, parameters). The
toys go through exactly the contracts a real model does (``AutoregressiveModel`` builds its
``TokenStats`` with ``harness.tokenstats.summarize`` from padded, masked logits;
``DiffusionModel`` encodes latents and conditions and exposes a differentiable
``predict_noise``), so a bug an attack has on a real model it mostly has here too.

- ``toy-data``: white-noise clips of mixed lengths (by default 800–2400 samples at 16 kHz, so
  batches are padded); split ``members`` is louder (peak 0.6) than ``nonmembers`` (0.4).
- ``toy-autoregressive``: "has learnt" that louder clips are more likely: the true token's logit
  is shifted in proportion to the clip's peak amplitude minus 0.5 (a generalising signal, no
  memory of individual clips). Tokens per clip: its length // ``hop``. Provides both token-stats
  outputs.
- ``toy-diffusion``: memorises exactly the clips of ``train_data``: its denoiser is the ideal
  (posterior-mean) denoiser of a prior that mixes those clips' latents with N(0, I), so members
  have a lower denoising error at every t. The null condition memorises less (``null_strength``).

Nothing here imports torch at import time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import dtypes, hookimpl
from ..contracts import (TOKEN_STATS_CONDITIONAL, TOKEN_STATS_CONTRAST, AutoregressiveModel,
                         BatchContext, Dataset, DiffusionModel, Sample)
from ..errors import ConfigError, DataError

SPLITS = ("members", "nonmembers")
DTYPES = dtypes.NAMES  # the harness-wide table (harness.dtypes)


def _digest(*parts) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=6).hexdigest()


def _read(path: str) -> np.ndarray:
    import soundfile as sf

    try:
        wav, _ = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:
        raise DataError(f"toy model cannot read {path}: {exc}") from exc
    return wav.mean(axis=1)


def _content_seed(wav: np.ndarray) -> int:
    return int.from_bytes(hashlib.blake2b(wav.tobytes(), digest_size=8).digest(), "little")


class ToyDataset(Dataset):
    """Seeded white-noise clips; ``members`` are louder than ``nonmembers``."""

    path_params = ("root",)
    defaults = {
        "root": None,                 # directory the clips are written to (required)
        "n": 24,                      # clips per split
        "member_amplitude": 0.6,
        "nonmember_amplitude": 0.4,
        "lengths": [1600, 800, 2400, 1200],  # clip lengths in samples, cycled over the clips
        "sample_rate": 16000,
        "shuffle": None,              # None: clips in index order; an int: a seeded permutation
    }

    def validate(self):
        p = self.params
        if not p["root"]:
            raise ConfigError("dataset 'toy-data' needs params.root: a directory to write its "
                              "clips to (e.g. the test's tmp_path)")
        if not isinstance(p["n"], int) or p["n"] < 1:
            raise ConfigError(f"dataset 'toy-data': n must be a positive integer, got {p['n']!r}")
        lengths = p["lengths"]
        if not isinstance(lengths, (list, tuple)) or not lengths or not all(
                isinstance(x, int) and x > 0 for x in lengths):
            raise ConfigError("dataset 'toy-data': lengths must be a non-empty list of positive "
                              f"sample counts, got {lengths!r}")

    def splits(self):
        return list(SPLITS)

    def _path(self, split: str, i: int) -> Path:
        p = self.params
        amp = p["member_amplitude" if split == "members" else "nonmember_amplitude"]
        length = p["lengths"][i % len(p["lengths"])]
        tag = _digest(amp, length, p["sample_rate"])
        return Path(p["root"]) / split / f"{i:03d}-{tag}.wav"

    def prepare(self):
        import soundfile as sf

        p = self.params
        for split in SPLITS:
            amp = p["member_amplitude" if split == "members" else "nonmember_amplitude"]
            for i in range(p["n"]):
                path = self._path(split, i)
                if path.exists():
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                rng = np.random.default_rng([i, split == "members"])
                length = p["lengths"][i % len(p["lengths"])]
                wav = (amp * rng.uniform(-1, 1, length)).astype(np.float32)
                tmp = path.with_name(f".tmp-{path.name}")
                sf.write(tmp, wav, p["sample_rate"], format="WAV")
                tmp.replace(path)

    def samples(self, split):
        if split not in SPLITS:
            raise DataError(f"dataset 'toy-data' has no split '{split}'. Available: "
                            f"{', '.join(SPLITS)}")
        order = list(range(self.params["n"]))
        if self.params["shuffle"] is not None:
            order = np.random.default_rng(self.params["shuffle"]).permutation(order).tolist()
        out = []
        for i in order:
            path = self._path(split, i)
            if not path.exists():
                raise DataError(f"toy clip {path} is missing; call prepare() first")
            out.append(Sample(id=f"{split}/{i:03d}", path=str(path), caption=f"toy clip {i}"))
        return out


class ToyAutoregressiveModel(AutoregressiveModel):
    """Louder clips are more likely; both ``token_stats`` outputs, from padded and masked logits.

    Per clip (seeded by its content, so independent of the batch): ``length // hop`` tokens over a
    ``vocab``-token vocabulary; each position has random logits at a random sharpness (so some
    positions are confident, some not), and the true token's logit is shifted by
    ``strength * 8 * (peak amplitude - 0.5)`` plus N(0, 1) noise: up for toy-data's members
    (peak 0.6), down for its non-members (0.4), so the true token is more likely than a typical
    token for members and less likely for non-members. The null-condition logits are the same
    without that shift (plus noise), so the guidance contrast keeps the signal.
    """

    defaults = {"strength": 1.0, "hop": 25, "vocab": 32}

    def validate(self):
        p = self.params
        for key in ("hop", "vocab"):
            if not isinstance(p[key], int) or p[key] < 2:
                raise ConfigError(f"model 'toy-autoregressive': {key} must be an integer >= 2, "
                                  f"got {p[key]!r}")

    def identity(self):
        return {"toy": "autoregressive", **self.params}

    def _clip(self, path: str):
        wav = _read(path)
        rng = np.random.default_rng(_content_seed(wav))
        n = max(1, len(wav) // self.params["hop"])
        V = self.params["vocab"]
        targets = rng.integers(0, V, n)
        logits = rng.normal(0.0, 1.0, (n, V)) * rng.uniform(0.5, 5.0, (n, 1))
        shift = self.params["strength"] * 8.0 * (float(np.abs(wav).max()) - 0.5)
        boost = np.zeros((n, V))
        boost[np.arange(n), targets] = shift + rng.normal(0.0, 1.0, n)
        null = 0.5 * logits + rng.normal(0.0, 0.3, (n, V))
        return logits + boost, null, targets

    def provide(self, samples: Sequence[Sample], needs: set, ctx: BatchContext) -> dict:
        import torch

        from ..tokenstats import summarize

        clips = [self._clip(s.path) for s in samples]
        B, T, V = len(clips), max(len(c[2]) for c in clips), self.params["vocab"]
        # padded positions hold NaN, as audiocraft's do: summarize must never read them
        logits = torch.full((B, T, V), float("nan"))
        null = torch.full((B, T, V), float("nan"))
        targets = torch.zeros((B, T), dtype=torch.long)
        mask = torch.zeros((B, T), dtype=torch.bool)
        for b, (lc, ln, tg) in enumerate(clips):
            n = len(tg)
            logits[b, :n], null[b, :n] = torch.from_numpy(lc), torch.from_numpy(ln)
            targets[b, :n], mask[b, :n] = torch.from_numpy(tg), True
        out = {}
        if TOKEN_STATS_CONDITIONAL in needs:
            out[TOKEN_STATS_CONDITIONAL] = summarize(logits, targets, mask)
        if TOKEN_STATS_CONTRAST in needs and self.has_null_condition:
            out[TOKEN_STATS_CONTRAST] = summarize(logits, targets, mask, null_logits=null)
        return out


class ToyDiffusionModel(DiffusionModel):
    """The ideal denoiser of a prior that has memorised ``train_data``.

    Latent of a clip: its waveform, resampled to 256 points and divided by its RMS, projected by a
    fixed Gaussian matrix to ``latent_shape`` (about N(0, 1) per entry, whatever the clip length).
    ``predict_noise(z_t, t, c)`` returns ``s * eps_mem + (1 - s) * eps_gauss``: ``eps_mem`` is the
    posterior-mean noise when z_0 is one of the memorised latents, ``eps_gauss = sqrt(1 - a_t) z_t``
    the one for a N(0, I) prior; ``s`` is ``strength`` for a caption's condition and
    ``null_strength`` for the null condition (all zeros). ``dtype`` rounds the denoiser's inputs
    and output as a half-precision network on a GPU would (the arithmetic inside stays float32);
    the prediction is returned in ``z_t``'s dtype, as the built-in diffusion models do.
    """

    data_ref_params = ("train_data",)
    defaults = {
        "train_data": None,          # data reference {source, split, params}: the memorised clips
        "strength": 0.8,
        "null_strength": 0.4,
        "latent_shape": [2, 8],
        "dtype": "float32",          # float32 | float16 | bfloat16
    }
    num_train_timesteps = 1000
    _memory = None  # latents of train_data, computed on first use

    def validate(self):
        p = self.params
        ref = p["train_data"]
        if not isinstance(ref, dict) or "source" not in ref or "split" not in ref:
            raise ConfigError("model 'toy-diffusion' needs params.train_data: the data reference "
                              "it memorises, e.g. {source: toy-data, split: members, params: "
                              "{root: ...}}")
        for key in ("strength", "null_strength"):
            if not isinstance(p[key], (int, float)) or not 0 <= p[key] <= 1:
                raise ConfigError(f"model 'toy-diffusion': {key} must be in [0, 1], "
                                  f"got {p[key]!r}")
        if p["dtype"] not in DTYPES:
            raise ConfigError(f"model 'toy-diffusion': dtype must be one of {', '.join(DTYPES)}, "
                              f"got {p['dtype']!r}")
        shape = p["latent_shape"]
        if not isinstance(shape, (list, tuple)) or not shape or not all(
                isinstance(x, int) and x > 0 for x in shape):
            raise ConfigError("model 'toy-diffusion': latent_shape must be a list of positive "
                              f"integers, got {shape!r}")

    # -- the model's own pieces

    switchable_precision = True

    def _torch_dtype(self):
        import torch

        return getattr(torch, self.denoiser_dtype())

    def _latent(self, wav: np.ndarray) -> np.ndarray:
        shape = tuple(self.params["latent_shape"])
        d = int(np.prod(shape))
        x = np.interp(np.linspace(0, len(wav) - 1, 256), np.arange(len(wav)), wav)
        x = x / (np.sqrt(np.mean(x * x)) + 1e-8)
        W = np.random.default_rng(0).normal(0.0, 1.0 / 16.0, (d, 256))  # fixed "encoder"
        return (W @ x).reshape(shape).astype(np.float32)

    def memory(self):
        """Latents of the memorised clips [M, *latent_shape] (float32, on the model's device)."""
        if self._memory is None:
            import torch

            from ..datasets import resolve

            samples = resolve(self.params["train_data"])
            if not samples:
                raise DataError("model 'toy-diffusion': train_data has no samples")
            lat = np.stack([self._latent(_read(s.path)) for s in samples])
            self._memory = torch.from_numpy(lat).to(self.device)
        return self._memory

    def identity(self):
        from ..datasets import manifest_hash, resolve

        return {"toy": "diffusion", "train_data": manifest_hash(resolve(self.params["train_data"])),
                **{k: v for k, v in self.params.items() if k != "train_data"}}

    # -- the DiffusionModel contract

    def encode_audio(self, paths, ctx):
        import torch

        lat = np.stack([self._latent(_read(p)) for p in paths])
        return torch.from_numpy(lat).to(self.device)

    def encode_text(self, captions):
        import torch

        rows = []
        for c in captions:
            v = np.random.default_rng(int(_digest(c), 16)).normal(0.0, 1.0, 8)
            rows.append(v / np.linalg.norm(v))
        return {"embedding": torch.tensor(np.stack(rows), dtype=torch.float32, device=self.device)}

    def null_condition(self, condition):
        import torch

        return {"embedding": torch.zeros_like(condition["embedding"])}

    def alphas_cumprod(self):
        import torch

        betas = torch.linspace(1e-4, 0.02, self.num_train_timesteps, dtype=torch.float64)
        return torch.cumprod(1.0 - betas, dim=0)

    def predict_noise(self, z_t, t, condition):
        import torch

        dt = self._torch_dtype()
        if t.shape != (z_t.shape[0],):
            raise ValueError(f"t must have shape [B] = ({z_t.shape[0]},), got {tuple(t.shape)}")
        z = z_t.to(dt).float()  # what a half-precision network would see
        a = self.alphas_cumprod().to(z.device)[t.long()].float().view(-1, *[1] * (z.dim() - 1))
        mem = self.memory().to(z.device)
        zf, mf = z.flatten(1), mem.flatten(1)
        sa, s1 = a.flatten(1)[:, :1].sqrt(), (1.0 - a.flatten(1)[:, :1]).sqrt()
        d2 = (zf[:, None, :] - sa[:, :, None] * mf[None]).pow(2).sum(-1) / (2.0 * s1.pow(2))
        x0 = torch.softmax(-d2, dim=1) @ mf                       # posterior mean of z_0
        eps_mem = (zf - sa * x0) / s1
        eps_gauss = s1 * zf
        is_null = (condition["embedding"].abs().sum(1) == 0).to(z.device)
        s = torch.where(is_null, float(self.params["null_strength"]),
                        float(self.params["strength"])).view(-1, 1)
        eps = s * eps_mem + (1.0 - s) * eps_gauss
        return eps.view_as(z).to(dt).to(z_t.dtype)  # rounded as the network's output would be


class ToyPlugin:
    """Registers ``toy-data``, ``toy-autoregressive`` and ``toy-diffusion`` (tests only: the
    harness's own entry points never register them, so users never see them)."""

    @hookimpl
    def register_datasets(self, register):
        register("toy-data", ToyDataset, description="seeded noise clips, louder members (tests)")

    @hookimpl
    def register_models(self, register):
        register("toy-autoregressive", ToyAutoregressiveModel, family="autoregressive",
                 description="token model that favours louder clips (tests)")
        register("toy-diffusion", ToyDiffusionModel, family="diffusion",
                 description="ideal denoiser that memorised its train_data (tests)")


#: the one instance to register (registering it twice is then a no-op)
TOY_PLUGIN = ToyPlugin()
#: its registration name
TOY_PLUGIN_NAME = "harness-testing-toys"
