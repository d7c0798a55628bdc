"""The six diffusion-model MIA attacks of the CDI suite (attacks.md §3), on the ``DiffusionModel``
contract: the model provides one latent ``z0`` and one condition encoding per sample, and exposes
``noise_levels(t)`` (alpha_t, sigma_t of a grid timestep; from ``alphas_cumprod`` on a discrete
schedule) and a differentiable ``predict_noise(z_t, t, condition)``. Attacks always speak the
1000-step grid (t = 100 etc.); a continuous-time model maps it to its own schedule
(docs/discrepancies.md, row 17).

Why the defaults are the *released CDI code's*: the audio paper reuses CDI, and the code is what
produced its numbers. Every place where the code, the papers and the PIA code disagree
(attacks.md §9) is a named parameter in the attack's ``defaults``, so a suite can reproduce either
side and a reader sees which one ran:

* ``norm``: "l2" (code: ``||f - eps||_2``) | "squared" (papers: squared L2). Rank-equivalent per
  feature, but not after Denoising Loss averages its repetitions (§9 item 5).
* ``t0``: what t=0 means for the noising. "first-step" (DiT wrapper: ``alphas_cumprod[0]``, a tiny
  noise) | "clean" (U-ViT wrapper: alpha-bar = 1, z_0 itself). The denoiser is called with t=0
  either way (§9 item 16).
* PIA ``p``/``root``: CDI p=5 with the p-th root | PIA code p=4 without root (§9 item 2).
* PIAN ``pian_scale``: "cdi" (eps_0 rescaled so that mean|eps| = sqrt(pi/2)) | "pia-code"
  (mean|eps| = sqrt(2/pi) = E|N(0,1)|); a factor pi/2 apart (§9 item 1).
* Gradient Masking ``unmasked``: "clean" (code: unmasked entries from z_0) | "noised" (paper: from
  z_t); ``target``: "noise-minus-latent" (code: eps - z_0 at masked entries) | "noise" (eps).
* Noise Optimization ``final_loss``: "renoised" (code: the optimised input is noised a second time
  before the final query) | "direct" (the presumably intended loss on z_t + delta) (§9 item 4);
  ``joint``: false (per-sample optimisation, independent of the batch) | true (CDI: one L-BFGS-B
  over the whole batch, so samples share the line search and the numbers depend on the batch).

Sharing (attacks.md §2.1), all through ``ctx.shared`` so that it does not depend on attack order:

* Multiple Loss and Gradient Masking use the same noise draw (purpose "diffusion/multi-t") and the
  same 10 noised inputs, so GM's gradient pass *is* ML's forward pass. The shared entry is computed
  once per batch, with gradients w.r.t. z_t when Gradient Masking is among the batch's attacks
  (the runner lists them in ``ctx.attacks``), otherwise without. If GM asks for the
  entry after it was computed without gradients (a caller that does not set ``ctx.attacks``), GM
  computes the gradients itself and adds them to the entry; ML's numbers were already final. The
  forward values are the same either way (up to float rounding of the autograd-enabled kernels).
* PIA and PIAN share eps_0 = f(z_0, 0, c).
* Denoising Loss draws its own 5 noises (purposes "diffusion/denoising-loss/r"), independent of
  ML's, so its definition does not depend on which other attacks ran; Noise Optimization draws its
  own too, as CDI does.

Noise is drawn per sample (``ctx.randn``) and every quantity is computed per sample (losses are
summed, never averaged, over the batch before a backward pass), so a sample's features do not
depend on the batch it is in (except ``joint: true``).

All attack arithmetic runs in float32 on the latents' device; the model casts its inputs to its own
dtype inside ``predict_noise`` and the result is brought back to float32 here.

Padding (``LATENT_MASK``): a clip shorter than the model's window has latent frames that are pure
zero-padding, the same for members and non-members. Every norm below runs over the entries that
hold audio only, rescaled to the full latent's size (x N / n_valid), so a clip without padding
gets exactly CDI's number and a short clip's number means the same per entry; Gradient Masking
picks its top-k among the audio entries (k = ratio x n_valid) and Noise Optimization perturbs
only them.

Gradient precision (``grad_precision``, Gradient Masking and Noise Optimization): "float32"
(default) runs the attack's denoiser passes, gradient passes included, in float32 through the
model's ``denoiser_precision`` (the suite's weights, float32 arithmetic); "model" runs them in the
model's own dtype. Why: half-precision gradients without loss scaling underflow and saturate, and
GM's top-k mask and NO's L-BFGS steps are taken from raw gradients (issue #9). With a float32
model both are the same. The shared Multiple Loss pass is keyed by the dtype it ran in, so ML's
features never depend on whether GM ran: on a half-precision model, GM (float32) makes its own pass.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import torch

from harness.contracts import CONDITION, LATENT_MASK, LATENTS, Attack, BatchContext, FeatureSpec
from harness.errors import ConfigError

#: CDI's timestep grid for Multiple Loss and Gradient Masking
CDI_TIMESTEPS = [0, 100, 200, 300, 400, 500, 600, 700, 800, 900]
T0_MODES = ("first-step", "clean")
NORMS = ("l2", "squared")
PIAN_SCALES = {"cdi": math.sqrt(math.pi / 2), "pia-code": math.sqrt(2 / math.pi)}
GM_UNMASKED = ("clean", "noised")
GM_TARGETS = ("noise-minus-latent", "noise")
NO_FINAL = ("renoised", "direct")
GRAD_PRECISIONS = ("float32", "model")

#: registered names of attacks that need d loss / d z_t of the shared multi-timestep pass
GRAD_USERS = frozenset({"gradient-masking"})

MULTI_T_PURPOSE = "diffusion/multi-t"
EPS0_KEY = ("diffusion/eps0",)


# --------------------------------------------------------------------------------------------
# small helpers


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _choice(params: dict, key: str, choices, plugin: str) -> None:
    if params[key] not in choices:
        raise ConfigError(f"attack '{plugin}': parameter '{key}' must be one of "
                          f"{', '.join(map(repr, choices))}; got {params[key]!r}")


def _nonneg_int(params: dict, key: str, plugin: str, lo: int = 0) -> None:
    if not _is_int(params[key]) or params[key] < lo:
        raise ConfigError(f"attack '{plugin}': parameter '{key}' must be an integer >= {lo}; "
                          f"got {params[key]!r}")


def latents(ctx: BatchContext) -> torch.Tensor:
    return ctx.output(LATENTS).detach().float()


def audio_mask(ctx: BatchContext) -> torch.Tensor:
    """The model's ``LATENT_MASK`` expanded to the latents' shape (True where z_0 is audio)."""
    z0 = ctx.output(LATENTS)
    return ctx.output(LATENT_MASK).to(device=z0.device, dtype=torch.bool).expand(z0.shape)


def noise_level(ctx: BatchContext, t: int, t0: str = "first-step") -> tuple[float, float]:
    """(alpha_t, sigma_t) of grid timestep ``t`` under the chosen t=0 convention, from the
    model's ``noise_levels`` (a discrete model's sqrt(abar_t), sqrt(1 - abar_t); a
    continuous-time model's own map of the grid to its schedule)."""
    n = int(getattr(ctx.model, "num_train_timesteps", 1000))
    if not 0 <= t < n:
        raise ConfigError(f"timestep {t} is outside the model's schedule [0, {n - 1}]; use "
                          "timesteps on the 0..999 grid of a 1000-step model")
    if t == 0 and t0 == "clean":
        return 1.0, 0.0
    alpha, sigma, _ = ctx.model.noise_levels(torch.tensor([int(t)]))
    return float(alpha[0]), float(sigma[0])


def q_sample(z0: torch.Tensor, level: tuple[float, float], eps: torch.Tensor) -> torch.Tensor:
    """z_t = alpha_t z0 + sigma_t eps."""
    alpha, sigma = level
    return alpha * z0 + sigma * eps


def _rescale(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | float:
    """N / n_valid per sample (1.0 without a mask): a masked sum rescaled to the full latent."""
    if mask is None:
        return 1.0
    m = mask.flatten(1)
    return (m.shape[1] / m.sum(1).clamp_min(1)).to(like.dtype)


def norm(x: torch.Tensor, kind: str, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample L2 norm (CDI code) or squared L2 (papers) over the latent's audio entries
    (``mask``; all when None), rescaled to the full latent: [B]."""
    if mask is not None:
        x = x * mask
    sq = x.flatten(1).pow(2).sum(1) * _rescale(mask, x)
    return sq.sqrt() if kind == "l2" else sq


def take(condition: Any, idx: Sequence[int]):
    """Rows ``idx`` of a batch-first condition structure."""
    if isinstance(condition, torch.Tensor):
        return condition[list(idx)]
    if isinstance(condition, dict):
        return {k: take(v, idx) for k, v in condition.items()}
    if isinstance(condition, (list, tuple)):
        return type(condition)(take(v, idx) for v in condition)
    return condition


def predict(ctx: BatchContext, z_t: torch.Tensor, t: int, condition) -> torch.Tensor:
    tt = torch.full((z_t.shape[0],), int(t), dtype=torch.long, device=z_t.device)
    return ctx.model.predict_noise(z_t, tt, condition).float()


def to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().cpu().numpy()


# --------------------------------------------------------------------------------------------
# shared work


class MultiT:
    """The shared Multiple Loss / Gradient Masking pass: one noise, per-timestep predictions and
    (when computed with gradients) d ||f(z_t) - eps||_2 / d z_t."""

    def __init__(self, eps: torch.Tensor, eps_hat: dict, grad: dict | None):
        self.eps = eps
        self.eps_hat = eps_hat
        self.grad = grad


def _multi_t_pass(ctx: BatchContext, timesteps: Sequence[int], t0: str, with_grad: bool,
                  eps: torch.Tensor | None = None) -> MultiT:
    z0, m = latents(ctx), audio_mask(ctx)
    cond = ctx.output(CONDITION)
    if eps is None:
        eps = ctx.randn(tuple(z0.shape[1:]), MULTI_T_PURPOSE, device=z0.device)
    hats, grads = {}, ({} if with_grad else None)
    for t in timesteps:
        z_t = q_sample(z0, noise_level(ctx, t, t0), eps)
        if with_grad:
            z_t = z_t.detach().requires_grad_(True)
            with torch.enable_grad():
                e = predict(ctx, z_t, t, cond)
                # summed over the batch: each row's gradient is its own sample's (batch-free);
                # the gradient of the L2 norm and of its square differ by a per-sample factor,
                # so the top-k mask is the same for both ``norm`` options.
                (g,) = torch.autograd.grad(norm(e - eps, "l2", m).sum(), z_t)
            grads[t] = g.detach()
            hats[t] = e.detach()
        else:
            with torch.no_grad():
                hats[t] = predict(ctx, z_t, t, cond)
    return MultiT(eps, hats, grads)


def multi_t(ctx: BatchContext, timesteps: Sequence[int], t0: str, need_grad: bool) -> MultiT:
    """The shared pass, in the dtype the model computes in now (``denoiser_dtype``). Computed
    with gradients up front when a gradient user is among the batch's attacks and the pass runs
    in float32 (the gradient attacks' default precision), so they reuse it."""
    dtype = ctx.model.denoiser_dtype()
    key = (MULTI_T_PURPOSE, tuple(int(t) for t in timesteps), t0, dtype)
    cell = ctx.attacks
    with_grad = need_grad or (bool(GRAD_USERS & set(cell)) and dtype == "float32")
    entry = ctx.shared(key, lambda: _multi_t_pass(ctx, timesteps, t0, with_grad))
    if need_grad and entry.grad is None:
        entry.grad = _multi_t_pass(ctx, timesteps, t0, True, eps=entry.eps).grad
    return entry


def eps0(ctx: BatchContext) -> torch.Tensor:
    """eps_0 = f(z_0, 0, c): the denoiser queried on the clean latent at t=0 (PIA, PIAN)."""

    def compute():
        with torch.no_grad():
            return predict(ctx, latents(ctx), 0, ctx.output(CONDITION))

    return ctx.shared(EPS0_KEY + (ctx.model.denoiser_dtype(),), compute)


def grad_precision(ctx: BatchContext, choice: str):
    """The model's ``denoiser_precision`` context for ``grad_precision: float32 | model``."""
    return ctx.model.denoiser_precision(
        ctx.model.denoiser_dtype() if choice == "model" else choice)


# --------------------------------------------------------------------------------------------
# base class


class DiffusionAttack(Attack):
    family = "diffusion"
    #: feature base name when the attack is used without the registry
    default_name: ClassVar[str] = ""
    #: allowed values of the enumerated parameters a subclass has (``harness plugins NAME``)
    param_choices: ClassVar[dict[str, tuple]] = {"norm": NORMS, "t0": T0_MODES}
    param_docs: ClassVar[dict[str, str]] = {
        "t": "the integer timestep queried, 0 .. the model's num_train_timesteps - 1 (the "
             "default is CDI's config for this attack)",
        "timesteps": "distinct integer timesteps >= 0, one feature per timestep (default: CDI's "
                     "grid 0, 100, ..., 900)",
        "norm": "distance between predicted and true noise: l2 (CDI code: ||.||_2) | squared "
                "(paper: ||.||_2^2)",
        "t0": "what t = 0 means (matters only when 0 is queried): first-step (alpha-bar = "
              "alphas_cumprod[0], CDI code) | clean (alpha-bar = 1, z_0 itself)",
    }

    def _name(self) -> str:
        return self.registered_name or self.default_name

    #: 2: padded latent frames masked out (LATENT_MASK); float32 gradient passes
    version = "2"

    def needs(self) -> set[str]:
        return {LATENTS, CONDITION, LATENT_MASK}

    def validate(self) -> None:
        p, name = self.params, self._name()
        if "norm" in p:
            _choice(p, "norm", NORMS, name)
        if "t0" in p:
            _choice(p, "t0", T0_MODES, name)
        if "t" in p:
            _nonneg_int(p, "t", name)
        if "grad_precision" in p:
            _choice(p, "grad_precision", GRAD_PRECISIONS, name)
        if "timesteps" in p:
            ts = p["timesteps"]
            if (not isinstance(ts, (list, tuple)) or not ts
                    or not all(_is_int(t) and t >= 0 for t in ts) or len(set(ts)) != len(ts)):
                raise ConfigError(f"attack '{name}': timesteps must be a non-empty list of "
                                  f"distinct integers >= 0 (e.g. {CDI_TIMESTEPS}); got {ts!r}")
            p["timesteps"] = [int(t) for t in ts]


class _GradientAttack(DiffusionAttack):
    """An attack whose passes run in ``grad_precision`` (float32 by default; see module doc)."""

    def extract(self, ctx: BatchContext) -> dict[str, np.ndarray]:
        with grad_precision(ctx, self.params["grad_precision"]):
            return self._extract(ctx)

    def _extract(self, ctx: BatchContext) -> dict[str, np.ndarray]:
        raise NotImplementedError


class _SweepMixin:
    """Features ``{name}/{t}`` grouped over the timestep grid (best index or LR in the core)."""

    def feature_specs(self) -> list[FeatureSpec]:
        base = self._name()
        return [FeatureSpec(f"{base}/{t}", False, group=base, index=str(t))
                for t in self.params["timesteps"]]


# --------------------------------------------------------------------------------------------
# 3.1 Denoising Loss


class DenoisingLoss(DiffusionAttack):
    """Carlini et al.: mean over ``n_repetitions`` noise draws of ||f(q(z0,t,eps_r),t,c) - eps_r||.

    Lower = member. Each repetition has its own noise (purpose "diffusion/denoising-loss/{r}");
    none is shared with Multiple Loss's t=100 query, so the feature means the same thing whatever
    else runs."""

    default_name = "denoising-loss"
    defaults = {
        "t": 100,              # CDI conf/attack/denoising_loss.yaml
        "n_repetitions": 5,    # independent noise draws, averaged
        "norm": "l2",          # "l2" (CDI code) | "squared" (paper)
        "t0": "first-step",    # only matters with t=0: "first-step" | "clean"
    }

    def validate(self) -> None:
        super().validate()
        _nonneg_int(self.params, "n_repetitions", self._name(), lo=1)

    def feature_specs(self) -> list[FeatureSpec]:
        return [FeatureSpec(self._name(), False)]

    def extract(self, ctx: BatchContext) -> dict[str, np.ndarray]:
        p = self.params
        z0, cond, m = latents(ctx), ctx.output(CONDITION), audio_mask(ctx)
        a = noise_level(ctx, p["t"], p["t0"])
        total = torch.zeros(z0.shape[0], dtype=torch.float64, device=z0.device)
        with torch.no_grad():
            for r in range(p["n_repetitions"]):
                eps = ctx.randn(tuple(z0.shape[1:]), f"diffusion/denoising-loss/{r}",
                                device=z0.device)
                e = predict(ctx, q_sample(z0, a, eps), p["t"], cond)
                total += norm(e - eps, p["norm"], m).double()
        return {self._name(): to_numpy(total / p["n_repetitions"])}


# --------------------------------------------------------------------------------------------
# 3.2 Multiple Loss


class MultipleLoss(_SweepMixin, DiffusionAttack):
    """CDI: ||f(q(z0,t,eps),t,c) - eps|| at each t of ``timesteps`` with ONE noise per sample shared
    across t (and with Gradient Masking). One feature per t, lower = member; the core picks the best
    t or combines them (CDI: cross-fitted logistic regression)."""

    default_name = "multiple-loss"
    defaults = {
        "timesteps": CDI_TIMESTEPS,   # CDI conf/attack/multiple_loss.yaml
        "norm": "l2",                 # "l2" (CDI code) | "squared" (paper)
        "t0": "first-step",           # t=0: "first-step" (alphas_cumprod[0]) | "clean" (z0)
    }

    def extract(self, ctx: BatchContext) -> dict[str, np.ndarray]:
        p = self.params
        mt = multi_t(ctx, p["timesteps"], p["t0"], need_grad=False)
        base, m = self._name(), audio_mask(ctx)
        return {f"{base}/{t}": to_numpy(norm(mt.eps_hat[t] - mt.eps, p["norm"], m))
                for t in p["timesteps"]}


# --------------------------------------------------------------------------------------------
# 3.3 / 3.4 PIA and PIAN


def _lp(d: torch.Tensor, p: float, root: bool, mask: torch.Tensor) -> torch.Tensor:
    """sum |d|^p over the audio entries, rescaled to the full latent (p-th root if ``root``)."""
    d = d.double() * mask
    s = d.abs().pow(p).flatten(1).sum(1) * _rescale(mask, d)
    return s.pow(1.0 / p) if root else s


class PIA(DiffusionAttack):
    """Kong et al.: eps_0 = f(z0, 0, c) on the clean latent; z_t = sqrt(a_t) z0 + sqrt(1-a_t) eps_0;
    feature ||eps_0 - f(z_t, t, c)||_p. Lower = member.

    ``p: 5, root: true`` is CDI; ``p: 4, root: false`` is the PIA code (sum |d|^4), rank-equivalent
    to p=4 with root. The ``t0`` convention does not apply: eps_0 is always queried on z0 itself."""

    default_name = "pia"
    defaults = {
        "t": 200,       # CDI conf/attack/pia.yaml
        "p": 5,         # CDI: 5 | PIA code: 4
        "root": True,   # CDI: (sum |d|^p)^(1/p) | PIA code: sum |d|^p
    }
    param_docs = {"p": "exponent of the distance ||eps_0 - f(z_t, t, c)||_p, a number > 0 "
                       "(CDI: 5, PIA code: 4)",
                  "root": "true: (sum |d|^p)^(1/p) (CDI) | false: sum |d|^p (PIA code; same "
                          "ranking)"}

    def validate(self) -> None:
        super().validate()
        p = self.params
        if not isinstance(p["p"], (int, float)) or isinstance(p["p"], bool) or p["p"] <= 0:
            raise ConfigError(f"attack '{self._name()}': p must be a positive number; "
                              f"got {p['p']!r}")
        if not isinstance(p["root"], bool):
            raise ConfigError(f"attack '{self._name()}': root must be true or false")

    def feature_specs(self) -> list[FeatureSpec]:
        return [FeatureSpec(self._name(), False)]

    def _noise(self, e0: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return e0

    def extract(self, ctx: BatchContext) -> dict[str, np.ndarray]:
        p = self.params
        z0, cond, m = latents(ctx), ctx.output(CONDITION), audio_mask(ctx)
        e = self._noise(eps0(ctx), m)
        a = noise_level(ctx, p["t"], "first-step")
        with torch.no_grad():
            back = predict(ctx, q_sample(z0, a, e), p["t"], cond)
        return {self._name(): to_numpy(_lp(e - back, p["p"], p["root"], m))}


class PIAN(PIA):
    """PIA with eps_0 replaced, both in z_t and as the target, by eps_0 / mean|eps_0| * c:
    c = sqrt(pi/2) for ``pian_scale: cdi`` (CDI code, = N sqrt(pi/2) eps_0 / ||eps_0||_1) or
    c = sqrt(2/pi) = E|N(0,1)| for ``pian_scale: pia-code`` (official PIA code). Lower = member."""

    default_name = "pian"
    defaults = {**PIA.defaults, "pian_scale": "cdi"}
    param_docs = {"pian_scale": "rescaling of eps_0: cdi (mean|eps| = sqrt(pi/2), CDI code) | "
                                "pia-code (mean|eps| = sqrt(2/pi), official PIA code)"}
    param_choices = {"pian_scale": tuple(PIAN_SCALES)}

    def validate(self) -> None:
        super().validate()
        _choice(self.params, "pian_scale", tuple(PIAN_SCALES), self._name())

    def _noise(self, e0: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (e0.dim() - 1)
        mean_abs = e0.abs().mul(mask).flatten(1).mean(1) * _rescale(mask, e0)
        mean_abs = mean_abs.clamp_min(1e-12).view(shape)
        return e0 / mean_abs * PIAN_SCALES[self.params["pian_scale"]]


# --------------------------------------------------------------------------------------------
# 3.5 Gradient Masking


class GradientMasking(_SweepMixin, _GradientAttack):
    """CDI: per t, mask M = top ``masking_ratio`` of |d loss / d z_t| (per sample, flattened);
    query f on z~ = eps at M and z0 (code) or z_t (paper) elsewhere, without further noising;
    feature ||(target - f(z~, t, c))[M]|| with target eps - z0 (code) or eps. Lower = member.

    The gradient pass is Multiple Loss's forward (same noise, same inputs): see ``multi_t``."""

    default_name = "gradient-masking"
    defaults = {
        "timesteps": CDI_TIMESTEPS,     # CDI conf/attack/gradient_masking.yaml
        "masking_ratio": 0.2,           # fraction of latent entries masked, k = int(ratio * N)
        "unmasked": "clean",            # "clean" (code: z0) | "noised" (paper: z_t)
        "target": "noise-minus-latent",  # "noise-minus-latent" (code: eps - z0) | "noise" (eps)
        "norm": "l2",                   # "l2" (code) | "squared"
        "t0": "first-step",             # t=0: "first-step" | "clean"
        "grad_precision": "float32",    # "float32" | "model": dtype of the denoiser passes
    }
    param_choices = {"unmasked": GM_UNMASKED, "target": GM_TARGETS,
                     "grad_precision": GRAD_PRECISIONS}

    def validate(self) -> None:
        super().validate()
        p, name = self.params, self._name()
        r = p["masking_ratio"]
        if not isinstance(r, (int, float)) or isinstance(r, bool) or not 0 < r <= 1:
            raise ConfigError(f"attack '{name}': masking_ratio must be in (0, 1]; got {r!r}")
        _choice(p, "unmasked", GM_UNMASKED, name)
        _choice(p, "target", GM_TARGETS, name)

    def _extract(self, ctx: BatchContext) -> dict[str, np.ndarray]:
        p = self.params
        z0, cond, audio = latents(ctx), ctx.output(CONDITION), audio_mask(ctx)
        mt = multi_t(ctx, p["timesteps"], p["t0"], need_grad=True)
        eps = mt.eps
        n_valid = audio.flatten(1).sum(1).tolist()
        ks = [int(p["masking_ratio"] * n) for n in n_valid]
        if min(ks) < 1:
            raise ConfigError(f"attack '{self._name()}': masking_ratio {p['masking_ratio']} masks "
                              f"no entry of a {min(n_valid)}-element latent; raise it")
        target = eps - z0 if p["target"] == "noise-minus-latent" else eps
        out = {}
        for t in p["timesteps"]:
            # padding entries never enter the top-k (|g| >= 0 > -1)
            g = mt.grad[t].abs().masked_fill(~audio, -1.0).flatten(1)
            mask = torch.zeros_like(g, dtype=torch.bool)
            if len(set(ks)) == 1:
                mask.scatter_(1, g.topk(ks[0], dim=1).indices, True)
            else:
                for i, k in enumerate(ks):
                    mask[i, g[i].topk(k).indices] = True
            mask = mask.view_as(z0)
            if p["unmasked"] == "clean":
                rest = z0
            else:
                rest = q_sample(z0, noise_level(ctx, t, p["t0"]), eps)
            with torch.no_grad():
                e = predict(ctx, torch.where(mask, eps, rest), t, cond)
            out[f"{self._name()}/{t}"] = to_numpy(norm((target - e) * mask, p["norm"], audio))
        return out


# --------------------------------------------------------------------------------------------
# 3.6 Noise Optimization


def lbfgs_lockstep(x0: list[np.ndarray], evaluate: Callable, maxiter: int) -> list[np.ndarray]:
    """Run one independent scipy L-BFGS-B per row of ``x0``, batching their function evaluations.

    Why: per-sample optimisation makes a sample's result independent of its batch, but a loop of
    batch-1 denoiser calls would waste the batch. Each problem runs in its own thread and blocks
    when it needs f(x); the coordinator (this thread, where torch runs) evaluates all waiting
    problems in one call ``evaluate(indices, xs) -> [(f, grad)]`` and hands the results back.
    The optimisers themselves are exactly scipy's, each with its own line search."""
    from scipy.optimize import minimize

    cv = threading.Condition()
    pending: dict[int, np.ndarray] = {}
    results: dict[int, tuple] = {}
    finals: dict[int, np.ndarray] = {}
    state = {"alive": len(x0), "error": None}

    def make_fun(i):
        def fun(x):
            with cv:
                pending[i] = np.array(x, dtype=np.float64)
                cv.notify_all()
                while i not in results and state["error"] is None:
                    cv.wait()
                if state["error"] is not None:
                    raise RuntimeError("aborted")
                return results.pop(i)
        return fun

    def worker(i):
        try:
            res = minimize(make_fun(i), x0[i], jac=True, method="L-BFGS-B",
                           options={"maxiter": maxiter})
            finals[i] = res.x
        except BaseException as exc:  # pragma: no cover - surfaced by the coordinator
            with cv:
                if state["error"] is None:
                    state["error"] = exc
        finally:
            with cv:
                state["alive"] -= 1
                cv.notify_all()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(x0))]
    for th in threads:
        th.start()
    try:
        while True:
            with cv:
                while (len(pending) < state["alive"] and state["error"] is None):
                    cv.wait()
                if state["error"] is not None:
                    raise state["error"]
                if state["alive"] == 0:
                    break
                batch = dict(pending)
                pending.clear()
            idx = sorted(batch)
            out = evaluate(idx, [batch[i] for i in idx])
            with cv:
                results.update(zip(idx, out))
                cv.notify_all()
    except BaseException as exc:
        with cv:
            if state["error"] is None:
                state["error"] = exc
            cv.notify_all()
        for th in threads:
            th.join()
        raise
    for th in threads:
        th.join()
    return [finals[i] for i in range(len(x0))]


class NoiseOptimization(_GradientAttack):
    """CDI: z_t = q(z0, t, eps); minimise J(delta) = ||f(z_t + delta, t, c) - eps|| over an additive
    perturbation (init 0) with scipy L-BFGS-B (``maxiter`` iterations, autograd gradient); features
    the final loss and ||delta*||_2.

    Orientation: the loss is lower for members. The code gives ||delta*|| no direction (CDI uses
    both features only through a logistic regression, which does not care); the audio paper's
    appendix says members need *larger* perturbations, so ``member_norm: larger`` (default) follows
    it, and ``smaller`` is the opposite inference (a member already sits near a minimum, so the
    optimiser moves less), never measured on a reference model (docs/discrepancies.md).
    ``joint: true`` reproduces CDI's one optimisation over the flattened batch with the batch-mean
    objective (results then depend on the batch)."""

    default_name = "noise-optimization"
    defaults = {
        "t": 100,                 # CDI conf/attack/noise_optim.yaml
        "maxiter": 5,             # L-BFGS-B iterations (line search may add evaluations)
        "joint": False,           # False: per sample (batch-independent) | True: CDI batch-joint
        "final_loss": "renoised",  # "renoised" (code: q(z_t + delta, t, eps)) | "direct"
        "norm": "l2",             # objective and final loss: "l2" (code) | "squared"
        "t0": "first-step",       # only matters with t=0
        "member_norm": "larger",  # ||delta*|| of members: "larger" (paper) | "smaller"
        "grad_precision": "float32",  # "float32" | "model": dtype of the denoiser passes
    }
    param_choices = {"final_loss": NO_FINAL, "grad_precision": GRAD_PRECISIONS,
                     "member_norm": ("larger", "smaller")}

    def validate(self) -> None:
        super().validate()
        p, name = self.params, self._name()
        _nonneg_int(p, "maxiter", name, lo=1)
        _choice(p, "member_norm", ("larger", "smaller"), name)
        if not isinstance(p["joint"], bool):
            raise ConfigError(f"attack '{name}': joint must be true or false")
        _choice(p, "final_loss", NO_FINAL, name)

    def feature_specs(self) -> list[FeatureSpec]:
        base = self._name()
        return [FeatureSpec(f"{base}/loss", False, group=base, index="loss"),
                FeatureSpec(f"{base}/norm", self.params["member_norm"] == "larger", group=base,
                            index="norm")]

    def _extract(self, ctx: BatchContext) -> dict[str, np.ndarray]:
        p = self.params
        z0, cond, audio = latents(ctx), ctx.output(CONDITION), audio_mask(ctx)
        B, shape = z0.shape[0], tuple(z0.shape[1:])
        eps = ctx.randn(shape, "diffusion/noise-optimization", device=z0.device)
        a = noise_level(ctx, p["t"], p["t0"])
        z_t = q_sample(z0, a, eps)

        def losses(idx, deltas):
            d = torch.as_tensor(np.stack(deltas), dtype=torch.float32, device=z0.device)
            d = d.view((len(idx),) + shape).requires_grad_(True)
            with torch.enable_grad():
                # only the audio entries move (padding gets a zero gradient, stays at 0)
                e = predict(ctx, z_t[idx] + d * audio[idx], p["t"], take(cond, idx))
                loss = norm(e - eps[idx], p["norm"], audio[idx])
                (g,) = torch.autograd.grad(loss.sum(), d)
            return loss.detach().double().cpu().numpy(), g.double().cpu().numpy()

        n = int(np.prod(shape))
        if p["joint"]:
            from scipy.optimize import minimize

            def fun(x):
                f, g = losses(list(range(B)), list(x.reshape(B, n)))
                return float(f.mean()), g.reshape(-1) / B

            res = minimize(fun, np.zeros(B * n), jac=True, method="L-BFGS-B",
                           options={"maxiter": p["maxiter"]})
            delta = res.x.reshape(B, n)
        else:
            def evaluate(idx, xs):
                f, g = losses(idx, xs)
                return [(float(f[j]), g[j].reshape(-1)) for j in range(len(idx))]

            delta = np.stack(lbfgs_lockstep([np.zeros(n) for _ in range(B)], evaluate,
                                            p["maxiter"]))
        d = torch.as_tensor(delta, dtype=torch.float32, device=z0.device).view((B,) + shape)
        z = z_t + d
        if p["final_loss"] == "renoised":
            z = q_sample(z, a, eps)
        with torch.no_grad():
            e = predict(ctx, z, p["t"], cond)
        base = self._name()
        scale = np.sqrt(to_numpy(torch.as_tensor(_rescale(audio, z0))))
        return {f"{base}/loss": to_numpy(norm(e - eps, p["norm"], audio)),
                f"{base}/norm": np.linalg.norm(delta, axis=1).astype(np.float64) * scale}
