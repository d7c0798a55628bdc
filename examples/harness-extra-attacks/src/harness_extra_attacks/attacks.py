"""One attack per model family, written against the contracts in docs/plugins.md."""

from __future__ import annotations

import numpy as np
import torch

from harness.contracts import (CONDITION, LATENTS, TOKEN_STATS_CONDITIONAL, TOKEN_STATS_CONTRAST,
                               Attack, FeatureSpec)
from harness.errors import ConfigError

MODES = {"contrast": TOKEN_STATS_CONTRAST, "conditional": TOKEN_STATS_CONDITIONAL}


class Top1Rate(Attack):
    """Fraction of scored tokens whose true token is the model's most likely one (a memorised
    sequence is predicted exactly more often). Higher = member; NaN for an empty sequence."""

    family = "autoregressive"
    version = "1"
    defaults = {"mode": "contrast"}  # contrast (guided models) | conditional (e.g. FIGARO)

    def validate(self):
        if self.params["mode"] not in MODES:
            raise ConfigError(f"attack '{self.registered_name or 'top1-rate'}': mode must be one "
                              f"of {', '.join(MODES)}, got {self.params['mode']!r}")

    def needs(self):
        return {MODES[self.params["mode"]]}

    def feature_specs(self):
        # the feature name is the registered name (a suite may also list this attack under
        # another label with `name:`; features keep the plugin's name)
        return [FeatureSpec(self.registered_name or "top1-rate", higher_is_member=True)]

    def extract(self, ctx):
        stats = ctx.output(MODES[self.params["mode"]])
        values = [float(np.mean(s.logprob > s.max_other_logprob)) if len(s) else np.nan
                  for s in stats]
        return {self.feature_specs()[0].name: np.array(values, dtype=np.float64)}


class NoiseCosine(Attack):
    """Cosine similarity between the denoiser's noise prediction and the true noise at timestep
    ``t``, averaged over ``n_draws`` noise draws: the model reconstructs the noise it added to a
    memorised latent more faithfully. Higher = member."""

    family = "diffusion"
    version = "1"
    defaults = {"t": 100, "n_draws": 2}

    def validate(self):
        t, n = self.params["t"], self.params["n_draws"]
        if not isinstance(t, int) or t < 0:
            raise ConfigError(f"attack 'noise-cosine': t must be an integer >= 0, got {t!r}")
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"attack 'noise-cosine': n_draws must be an integer >= 1, got {n!r}")

    def needs(self):
        return {LATENTS, CONDITION}

    def feature_specs(self):
        return [FeatureSpec(self.registered_name or "noise-cosine", higher_is_member=True)]

    def extract(self, ctx):
        z0 = ctx.output(LATENTS).float()
        cond = ctx.output(CONDITION)
        t = self.params["t"]
        if t >= ctx.model.num_train_timesteps:
            raise ConfigError(f"attack 'noise-cosine': t={t} is outside the model's "
                              f"{ctx.model.num_train_timesteps}-step schedule")
        a = float(ctx.model.alphas_cumprod()[t])
        tt = torch.full((z0.shape[0],), t, dtype=torch.long, device=z0.device)
        total = torch.zeros(z0.shape[0], dtype=torch.float64)
        with torch.no_grad():
            for r in range(self.params["n_draws"]):
                # per-sample noise: the same sample gets the same noise in any batch
                eps = ctx.randn(z0.shape[1:], f"noise-cosine/{r}", device=z0.device)
                z_t = a ** 0.5 * z0 + (1 - a) ** 0.5 * eps
                pred = ctx.model.predict_noise(z_t, tt, cond).float()
                cos = torch.nn.functional.cosine_similarity(pred.flatten(1), eps.flatten(1), dim=1)
                total += cos.double().cpu()
        return {self.feature_specs()[0].name: (total / self.params["n_draws"]).numpy()}
