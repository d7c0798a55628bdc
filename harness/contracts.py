"""The contracts between the core and its plugins (models, attacks, aggregators, datasets).

Why these shapes:
- Attacks never see a model's internals, only *named outputs* that the model ``provide``s once per
  batch for every attack of the cell (one conditional+null pass for all autoregressive attacks; one
  latent and condition encoding for all diffusion attacks).
- Every feature declares ``higher_is_member``; the core orients scores once, so no downstream code
  guesses a sign (attacks.md §1, §5.1: the reference "divide by max" trick silently flips some).
- Randomness is derived per *sample* (suite seed, sample id, purpose), so results do not depend on
  batch size or on which batch a killed run resumed from.

This module stays import-light: torch is imported inside the methods that need it.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Sequence

import numpy as np

from .errors import ConfigError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    import torch


# --------------------------------------------------------------------------------------------
# Parameters


class Configurable:
    """Base for every plugin class: ``defaults`` lists the accepted parameters and their values.

    Unknown parameters are refused with a suggestion, so a typo in a suite never silently runs
    the default.
    """

    #: accepted parameters and their defaults; subclasses override
    defaults: ClassVar[dict[str, Any]] = {}
    #: bump when a change alters the numbers this plugin produces (part of every cache key)
    version: ClassVar[str] = "1"
    #: used in error messages ("attack", "model", ...)
    plugin_kind: ClassVar[str] = "plugin"
    #: parameters holding a local path: a relative one written in a suite is resolved against
    #: the suite file's folder (``harness.suite.load``)
    path_params: ClassVar[tuple[str, ...]] = ()
    #: like ``path_params``, for parameters that also accept a hub id: resolved only when the
    #: path exists next to the suite
    path_or_hub_params: ClassVar[tuple[str, ...]] = ()
    #: parameters holding a data reference ``{source, split, params}`` (a canary's train_data):
    #: the dataset's own path parameters inside it are resolved the same way
    data_ref_params: ClassVar[tuple[str, ...]] = ()
    #: the registered name, set by the runner when it instantiates the plugin
    registered_name: str = ""

    def __init__(self, **params: Any):
        unknown = [k for k in params if k not in self.defaults]
        if unknown:
            name = self.registered_name or type(self).__name__
            msg = did_you_mean(f"parameter for {self.plugin_kind} '{name}'", unknown[0],
                               self.defaults)
            raise ConfigError(msg)
        self.params: dict[str, Any] = {**copy.deepcopy(self.defaults), **params}
        self.validate()

    def validate(self) -> None:
        """Check ``self.params``; raise ConfigError naming the parameter and the fix."""


# --------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Sample:
    """One audio clip or MIDI file. ``id`` must be unique and stable within its source.

    ``start`` / ``duration`` (seconds) name the span of the file that *is* the sample, for
    sources whose files hold more than the clip (AudioCaps' full YouTube audio with a
    ``start_time``); ``duration=None`` means to the end of the file. How much of that span a
    model actually scores is its window policy (``harness.segments``).
    """

    id: str
    path: str
    caption: str = ""
    metadata: dict = field(default_factory=dict, compare=False, hash=False)
    start: float = 0.0
    duration: float | None = None


class Dataset(Configurable):
    """A source of samples, organised in named splits (e.g. ``train`` / ``test``)."""

    plugin_kind = "dataset"

    def splits(self) -> Sequence[str]:
        raise NotImplementedError

    def samples(self, split: str) -> list[Sample]:
        """Samples of ``split``, in a deterministic order. Raise DataError for an unknown split or
        missing files, naming what to fix."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Create or check local data (e.g. render audio). Called once before ``samples``."""


# --------------------------------------------------------------------------------------------
# Models


class Model(Configurable):
    """A generative model under audit. ``family`` selects which attacks can run on it."""

    plugin_kind = "model"
    family: ClassVar[str] = "any"

    def __init__(self, device: str = "cpu", **params: Any):
        self.device = device
        super().__init__(**params)

    def identity(self) -> dict:
        """What checkpoint this is, as a JSON-able dict (e.g. path + content hash, or hub id +
        revision). Part of every feature-cache key: two different weights must never share one."""
        raise NotImplementedError

    def outputs(self) -> set[str]:
        """Names of the outputs ``provide`` can compute."""
        raise NotImplementedError

    def training_report(self) -> dict | None:
        """For models the harness trains (canaries): their ``training.json`` (``params.steps``,
        ``members``, ``train_seconds``, ``loss_first``, ``loss_last``), logged on the model's
        MLflow runs. Released checkpoints: None."""
        return None

    def provide(self, samples: Sequence[Sample], needs: set[str], ctx: "BatchContext") -> dict:
        """Compute every requested output for one batch, sharing work between them."""
        raise NotImplementedError

    def scoring_windows(self, sample: Sample) -> "list | None":
        """The ``harness.segments.Window``s of ``sample`` this model scores, under its declared
        window policy; None for models that score the whole file (MIDI). The runner records
        what they cover per sample (results.json ``coverage``)."""
        return None

    def padding_policy(self) -> str:
        """``exclude`` (padding never scored) or ``include`` (see harness.segments)."""
        return str(getattr(self, "params", {}).get("padding", "exclude"))


@dataclass
class TokenStats:
    """Per-token summaries of one sample's teacher-forced pass (never full-vocabulary logits).

    All arrays have one entry per scored token, flattened in time-major order (for multi-codebook
    models: time, then codebook), over valid positions only. Under the distribution ``p`` of the
    chosen mode (conditional, or the guidance contrast softmax(l_cond - l_null)):
    ``logprob`` = log p(true token), ``max_other_logprob`` = max over other tokens of log p,
    ``mean_logprob`` = sum_v p_v log p_v, ``var_logprob`` = sum_v p_v (log p_v - mean_logprob)^2
    (the centred second moment: forming it as E[(log p)^2] - mean^2 cancels away its digits when
    the distribution is flat, issue #9).
    """

    logprob: np.ndarray
    max_other_logprob: np.ndarray
    mean_logprob: np.ndarray
    var_logprob: np.ndarray
    token_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.logprob.shape[0])


#: output names an autoregressive model provides (values: list[TokenStats], one per sample)
TOKEN_STATS_CONDITIONAL = "token_stats/conditional"
TOKEN_STATS_CONTRAST = "token_stats/contrast"


class AutoregressiveModel(Model):
    """Token model scored by teacher forcing.

    Implementations provide ``token_stats/conditional`` and, when trained with condition dropout
    (``has_null_condition``), ``token_stats/contrast`` from one conditional and one null-condition
    pass batched together. ``harness.tokenstats.summarize`` turns logits into TokenStats.
    """

    family = "autoregressive"
    has_null_condition: bool = True

    def outputs(self) -> set[str]:
        out = {TOKEN_STATS_CONDITIONAL}
        if self.has_null_condition:
            out.add(TOKEN_STATS_CONTRAST)
        return out


#: output names a diffusion model provides for one batch
LATENTS = "latents"          # torch.Tensor [B, ...]: deterministic latent (posterior mean default)
CONDITION = "condition"      # dict[str, Tensor], batch-first: the caption's encoding
NULL_CONDITION = "null_condition"  # same structure: the model's own null condition
LATENT_MASK = "latent_mask"  # torch.bool, broadcastable to the latents: True where z_0 is audio


class DiffusionModel(Model):
    """Latent diffusion model, addressed by the attacks on a grid of ``num_train_timesteps``
    integer timesteps (the CDI grid 0, 100, ..., 900 of a 1000-step model).

    Noise levels: ``noise_levels(t)`` gives, for grid timesteps t, the (alpha_t, sigma_t) of
    z_t = alpha_t z_0 + sigma_t eps and the time the model's own denoiser is called with. A
    discrete-schedule model (DDPM/DDIM tables: AudioLDM2, TANGO) only gives ``alphas_cumprod``:
    alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t), model time t. A continuous-time model
    (Stable Audio Open's cosine schedule) overrides ``noise_levels`` with its own map from the
    grid to its time; its ``alphas_cumprod`` is then alpha_t^2 on the grid (the same
    variance-preserving view, for code that reads the table).

    ``predict_noise`` takes grid timesteps and always returns an epsilon prediction
    (v-prediction models convert with their own alpha_t, sigma_t), with gradients available, so
    the attacks see one interface.
    """

    family = "diffusion"
    num_train_timesteps: int = 1000

    #: axis of the latents that is time ([B, C, T, F] for the mel-spectrogram LDMs)
    latent_time_axis: int = 2

    def outputs(self) -> set[str]:
        return {LATENTS, CONDITION, NULL_CONDITION, LATENT_MASK}

    def window_seconds(self) -> float | None:
        """Seconds of audio the latent's time axis spans (its input window); None for a model
        whose latents have no time axis or that does not pad (every latent entry is audio)."""
        return None

    def scoring_windows(self, sample: Sample) -> "list | None":
        """The first ``window_seconds()`` of the sample (diffusion models score one window)."""
        w = self.window_seconds()
        if w is None:
            return None
        from . import segments

        return segments.plan(sample, float(w), "first")

    def latent_mask(self, samples: Sequence[Sample], latents: "torch.Tensor") -> "torch.Tensor":
        """``LATENT_MASK`` for ``latents`` [B, ...]: False on the latent frames that lie wholly in
        the zero-padding after a clip shorter than the window (a frame holding any audio is kept),
        all True under ``padding: include`` or for models that do not pad. Why: the padding is
        the same for members and non-members, and scored it dilutes the denoising error of a
        short clip (the autoregressive path's lesson, issue #9)."""
        import math

        import torch

        shape = [latents.shape[0]] + [1] * (latents.dim() - 1)
        w, axis = self.window_seconds(), self.latent_time_axis
        if w is None or self.padding_policy() == "include":
            return torch.ones(shape, dtype=torch.bool, device=latents.device)
        frames = latents.shape[axis]
        shape[axis] = frames
        mask = torch.ones(shape, dtype=torch.bool)
        for i, s in enumerate(samples):
            win = self.scoring_windows(s)[0]
            n = min(frames, max(1, math.ceil(win.seconds / win.length * frames - 1e-6)))
            mask.select(0, i).narrow(axis - 1, n, frames - n).fill_(False)
        return mask.to(latents.device)

    def provide(self, samples: Sequence[Sample], needs: set[str], ctx: "BatchContext") -> dict:
        """Encode each sample once for all the cell's attacks: its latent (``encode_audio``), its
        caption (``encode_text``) and, from that, the null condition (``null_condition``).
        Models whose outputs are not built that way override this."""
        import torch

        from .errors import DataError

        spans = [s.id for s in samples if s.start or s.duration is not None]
        if spans:
            # encode_audio reads whole files; scoring the file's start instead of the sample's
            # span would be silently wrong (e.g. AudioCaps full-length recordings)
            raise DataError(
                f"model '{self.registered_name or type(self).__name__}' reads whole files but "
                f"sample '{spans[0]}' is a span of its file (start/duration, e.g. audiocaps "
                "with full-length recordings); cut the clips to their own files first")
        out: dict = {}
        with torch.no_grad():
            if LATENTS in needs or LATENT_MASK in needs:
                z0 = self.encode_audio([s.path for s in samples], ctx)
                if LATENTS in needs:
                    out[LATENTS] = z0
                if LATENT_MASK in needs:
                    out[LATENT_MASK] = self.latent_mask(samples, z0)
            if CONDITION in needs or NULL_CONDITION in needs:
                cond = self.encode_text([s.caption for s in samples])
                if CONDITION in needs:
                    out[CONDITION] = cond
                if NULL_CONDITION in needs:
                    out[NULL_CONDITION] = self.null_condition(cond)
        return out

    def encode_audio(self, paths: Sequence[str], ctx: "BatchContext") -> "torch.Tensor":
        """Latents [B, ...] of the audio files (for the default ``provide``)."""
        raise NotImplementedError

    def encode_text(self, captions: Sequence[str]) -> dict:
        """The captions' condition, batch-first tensors (for the default ``provide``)."""
        raise NotImplementedError

    def null_condition(self, condition: dict) -> dict:
        """The model's own null condition, shaped like ``condition`` (for the default
        ``provide``)."""
        raise NotImplementedError

    def alphas_cumprod(self) -> "torch.Tensor":
        """Cumulative product of alphas, shape [num_train_timesteps], float64 on CPU."""
        raise NotImplementedError

    def noise_levels(self, t) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
        """(alpha_t, sigma_t, model_time) for grid timesteps ``t`` (int tensor [B]), float64 on
        CPU. Default: the discrete table, alpha = sqrt(abar_t), sigma = sqrt(1 - abar_t), the
        model called at t itself. The roots are Python's (correctly rounded; torch's float64
        sqrt is off by an ulp now and then), so the noised inputs are bit for bit those of the
        table-based code this generalises."""
        import math

        import torch

        t = torch.as_tensor(t, dtype=torch.long).cpu().reshape(-1)
        table = self.alphas_cumprod().double().cpu()
        a = [float(table[i]) for i in t.tolist()]
        return (torch.tensor([math.sqrt(x) for x in a], dtype=torch.float64),
                torch.tensor([math.sqrt(1.0 - x) for x in a], dtype=torch.float64), t.double())

    def predict_noise(self, z_t: "torch.Tensor", t: "torch.Tensor", condition: dict) -> "torch.Tensor":
        """Epsilon prediction of the denoiser at integer timesteps ``t`` [B], in ``z_t``'s dtype,
        computed in ``denoiser_dtype()``."""
        raise NotImplementedError

    #: True when ``predict_noise`` computes in ``denoiser_dtype()``, so ``denoiser_precision``
    #: can switch it (models that always run in float32 need not say so)
    switchable_precision: ClassVar[bool] = False

    def denoiser_dtype(self) -> str:
        """Name (harness.dtypes) of the dtype ``predict_noise`` computes in right now: the
        suite's ``dtype``, or the one a ``denoiser_precision`` block asked for."""
        return (self.__dict__.get("_denoiser_override")
                or str(getattr(self, "params", {}).get("dtype", "float32")))

    def denoiser_precision(self, name: str):
        """A context in which ``predict_noise`` computes in dtype ``name`` (the same weights,
        another arithmetic). Why: gradient attacks on a half-precision model take their gradients
        in float32 (fp16 gradients, without loss scaling, underflow and saturate; issue #9)."""
        import contextlib

        from . import dtypes

        dtypes.check(name, f"model '{self.registered_name or type(self).__name__}'")
        if name == self.denoiser_dtype():
            return contextlib.nullcontext()
        if not self.switchable_precision:
            raise ConfigError(
                f"model '{self.registered_name or type(self).__name__}' runs its denoiser in "
                f"{self.denoiser_dtype()} and cannot switch it to {name}; give the attack "
                "grad_precision: model")

        @contextlib.contextmanager
        def switched():
            old = self.__dict__.get("_denoiser_override")
            self._denoiser_override = name
            try:
                yield
            finally:
                self._denoiser_override = old

        return switched()


# --------------------------------------------------------------------------------------------
# Attacks


@dataclass(frozen=True)
class FeatureSpec:
    """One per-sample feature an attack emits.

    ``group`` ties features that are one attack swept over an index (Min-K% over k, Multiple Loss
    over t): MIA reporting picks the best index of a group (recorded) or combines it (``lr``).
    """

    name: str
    higher_is_member: bool
    group: str = ""
    index: str = ""


class Attack(Configurable):
    """Turns model outputs into named per-sample features."""

    plugin_kind = "attack"
    family: ClassVar[str] = "any"

    def needs(self) -> set[str]:
        """Model outputs (names from the model's ``outputs``) this attack reads from the context."""
        raise NotImplementedError

    def feature_specs(self) -> list[FeatureSpec]:
        raise NotImplementedError

    def extract(self, ctx: "BatchContext") -> dict[str, np.ndarray]:
        """Features for ``ctx.samples``: {spec.name: float array [B]}. NaN marks "undefined"."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# Dataset inference


class Aggregator(Configurable):
    """A dataset-inference test: from feature matrices of a suspect set P and a validation set U
    (features already oriented so that higher = member) to one p-value per draw.

    ``pvalues`` is vectorised over draws: P and U are [R, n, d]; return p-values [R]. The core
    owns the grid of n, the draws, the null control and the minimum-n rule, and spreads the grid
    over threads: ``pvalues`` may run in several threads at once (each call with its own rng),
    so an aggregator that mutates state in it sets ``thread_safe = False``.
    """

    plugin_kind = "aggregator"
    family: ClassVar[str] = "any"
    thread_safe: ClassVar[bool] = True

    def pvalues(self, P: np.ndarray, U: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# Blind (model-free) baselines


class Baseline(Configurable):
    """Model-free features of each sample (its audio or MIDI file and its caption), for the blind
    check: if a classifier that never sees the model separates members from non-members on
    these, every MIA and DI result on those sets measures the split, not the model (issue #10).

    ``featurize`` gets all samples of a cell at once, without labels, so unsupervised steps
    (a vocabulary) may look at all of them; the core does the cross-fitted classification."""

    plugin_kind = "baseline"

    def featurize(self, samples: Sequence[Sample]) -> tuple[np.ndarray, list[str]]:
        """A float matrix [len(samples), d] (NaN = undefined for that sample) and its d names."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# Per-batch context


def sample_seed(seed: int, sample_id: str, purpose: str) -> int:
    """A 63-bit seed that depends only on (suite seed, sample, purpose)."""
    h = hashlib.blake2b(f"{seed}\x00{sample_id}\x00{purpose}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little") >> 1


class BatchContext:
    """What an attack sees for one batch: the samples, the model, the outputs the model provided
    for the whole cell's needs, the registered names of the attacks that share this batch
    (``attacks``: so one attack can compute, once, what another will need, e.g. gradients), and
    a memo for work shared between attacks."""

    def __init__(self, model: Model, samples: Sequence[Sample], seed: int, outputs: dict | None = None,
                 attacks: Iterable[str] = ()):
        self.model = model
        self.samples = list(samples)
        self.seed = int(seed)
        self.outputs: dict = dict(outputs or {})
        self.attacks: frozenset[str] = frozenset(attacks)
        self._memo: dict = {}

    def __len__(self) -> int:
        return len(self.samples)

    def output(self, name: str):
        if name not in self.outputs:
            raise KeyError(
                f"model output '{name}' was not provided; the attack must list it in needs()"
            )
        return self.outputs[name]

    def shared(self, key: Any, compute: Callable[[], Any]):
        """Compute ``compute()`` once per batch for ``key`` and hand the same result to every
        attack asking for it (e.g. PIA and PIAN share eps_0)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def seeds(self, purpose: str) -> list[int]:
        return [sample_seed(self.seed, s.id, purpose) for s in self.samples]

    def randn(self, shape_per_sample: Iterable[int], purpose: str, device=None, dtype=None):
        """Standard normal noise [B, *shape], each row drawn from its sample's own generator."""
        import torch

        rows = []
        for s in self.seeds(purpose):
            g = torch.Generator(device="cpu").manual_seed(s)
            rows.append(torch.randn(tuple(shape_per_sample), generator=g, dtype=torch.float32))
        out = torch.stack(rows)
        if dtype is not None or device is not None:
            out = out.to(device=device or "cpu", dtype=dtype or torch.float32)
        return out
