"""A toy model, dataset and attack registered by tests through the same hooks a third-party
plugin uses. The toy "model" has memorised its members: token log-probs of member clips are
higher on average, so attacks have real (not hard-coded) signal that the statistics must find."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from harness import hookimpl
from harness.contracts import (TOKEN_STATS_CONDITIONAL, TOKEN_STATS_CONTRAST, Attack,
                               AutoregressiveModel, Dataset, FeatureSpec, Sample, TokenStats)


class ToyDataset(Dataset):
    defaults = {"root": None, "n": 24, "member_amplitude": 0.6, "other_amplitude": 0.4}

    def splits(self):
        return ["in", "out"]

    def prepare(self):
        import soundfile as sf

        root = Path(self.params["root"])
        for split in self.splits():
            amp = self.params["member_amplitude" if split == "in" else "other_amplitude"]
            for i in range(self.params["n"]):
                path = root / split / f"{i:03d}.wav"
                if path.exists():
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                rng = np.random.default_rng([i, split == "in"])
                sf.write(path, (amp * rng.uniform(-1, 1, 1600)).astype(np.float32), 16000)

    def samples(self, split):
        root = Path(self.params["root"]) / split
        return [Sample(id=f"{split}/{p.stem}", path=str(p), caption=f"clip {p.stem}")
                for p in sorted(root.glob("*.wav"))]


class ToyModel(AutoregressiveModel):
    defaults = {"strength": 1.0, "tokens": 64}
    calls = 0  # provide() calls, across instances (tests reset it)
    fail_after = None  # simulate a kill after this many calls (not a param: params key the cache)

    def identity(self):
        return {"toy": True, "strength": self.params["strength"]}

    def provide(self, samples, needs, ctx):
        import soundfile as sf

        type(self).calls += 1
        if self.fail_after is not None and type(self).calls > self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        out = {}
        stats = []
        for s in samples:
            wav, _ = sf.read(s.path)
            amp = float(np.abs(wav).max())
            seed = int.from_bytes(hashlib.blake2b(wav.tobytes(), digest_size=8).digest(), "little")
            rng = np.random.default_rng(seed)
            n = self.params["tokens"]
            lp = -np.abs(rng.normal(1.5 - self.params["strength"] * amp, 0.5, n))
            stats.append(TokenStats(lp, lp - np.abs(rng.normal(0, 1, n)), lp - 0.1, lp**2 + 0.1,
                                    rng.integers(0, 50, n)))
        for name in needs & {TOKEN_STATS_CONDITIONAL, TOKEN_STATS_CONTRAST}:
            out[name] = stats
        return out


class ToyAttack(Attack):
    """A third-party-style attack: mean log-prob of the first half of the tokens."""

    family = "autoregressive"
    defaults = {"fraction": 0.5}

    def needs(self):
        return {TOKEN_STATS_CONTRAST}

    def feature_specs(self):
        return [FeatureSpec("toy-head", higher_is_member=True)]

    def extract(self, ctx):
        stats = ctx.output(TOKEN_STATS_CONTRAST)
        k = [max(1, int(len(s) * self.params["fraction"])) for s in stats]
        return {"toy-head": np.array([s.logprob[:kk].mean() for s, kk in zip(stats, k)])}


class ToyPlugin:
    @hookimpl
    def register_models(self, register):
        register("toy-model", ToyModel, family="autoregressive", description="test model")

    @hookimpl
    def register_datasets(self, register):
        register("toy-data", ToyDataset, description="test data")

    @hookimpl
    def register_attacks(self, register):
        register("toy-attack", ToyAttack, family="autoregressive", description="test attack")
