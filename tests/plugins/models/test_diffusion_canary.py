"""``diffusion-canary``: trained lazily on a data reference, cached atomically in diffusers format,
reloaded without retraining, and it memorises its members."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from harness import hookimpl
from harness.contracts import CONDITION, LATENTS, NULL_CONDITION, BatchContext, Dataset, Sample
from harness.errors import ConfigError
from plugins.models import diffusion_canary as entry
from plugins.models._diffusion_canary_impl import DiffusionCanary, build_tokenizer


def tone(path, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(16000 * 2) / 16000
    f = rng.uniform(200, 2000, 3)
    x = sum(np.sin(2 * np.pi * fi * t * (1 + 0.1 * np.sin(t * rng.uniform(1, 5))))
            for fi in f) / 6
    sf.write(path, x.astype(np.float32), 16000)


class TinyTones(Dataset):
    defaults = {"root": None, "n": 4}

    def splits(self):
        return ["members", "nonmembers"]

    def prepare(self):
        for side, off in (("members", 0), ("nonmembers", 100)):
            d = Path(self.params["root"]) / side
            d.mkdir(parents=True, exist_ok=True)
            for i in range(self.params["n"]):
                if not (d / f"{i}.wav").exists():
                    tone(d / f"{i}.wav", off + i)

    def samples(self, split):
        return [Sample(f"{split}/{i}", str(Path(self.params["root"]) / split / f"{i}.wav"),
                       caption=f"a tone number {i} on {split}") for i in range(self.params["n"])]


class Plugin:
    @hookimpl
    def register_datasets(self, register):
        register("tiny-tones", TinyTones)


TINY = dict(n_frames=64, latent_channels=2, vae_channels=[8, 8], unet_channels=[16, 16],
            attention_head_dim=4, text_dim=16, text_layers=1, max_text_length=48,
            batch_size=4, warmup_steps=5)


@pytest.fixture
def ref(tmp_path, register_plugin):
    register_plugin(Plugin(), name="tiny-tones-test")
    return {"source": "tiny-tones", "split": "members", "params": {"root": str(tmp_path / "d")}}


def test_registration():
    got = []
    entry.register_models(lambda *a, **k: got.append((a, k)))
    assert got[0][0][0] == "diffusion-canary" and got[0][1]["family"] == "diffusion"


def test_trains_once_caches_and_reloads_through_diffusers(ref, monkeypatch):
    c = DiffusionCanary(train_data=ref, steps=3, **TINY)
    path = c.checkpoint_dir()
    assert c.trained_now and path.parent.name == "canaries"
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (path / sub).is_dir()
    meta = json.loads((path / "training.json").read_text())
    assert meta["members"] == [f"members/{i}" for i in range(4)]
    assert not any(p.name.startswith(".tmp-") for p in path.parent.iterdir())

    # second instantiation: load only
    monkeypatch.setattr(DiffusionCanary, "_train", lambda *a: pytest.fail("retrained"))
    c2 = DiffusionCanary(train_data=ref, steps=3, **TINY)
    assert c2.checkpoint_dir() == path and not c2.trained_now
    samples = TinyTones(root=ref["params"]["root"]).samples("members")[:2]
    ctx = BatchContext(c2, samples, 0)
    out = c2.provide(samples, {LATENTS, CONDITION, NULL_CONDITION}, ctx)
    assert out[LATENTS].shape == (2, 2, 32, 32)
    assert c2.alphas_cumprod().shape == (1000,)
    eps = c2.predict_noise(out[LATENTS].requires_grad_(True), torch.tensor([0, 500]), out[CONDITION])
    eps.sum().backward()
    assert eps.shape == out[LATENTS].shape
    # the null condition is the encoding of "" (what condition dropout trained with)
    assert out[NULL_CONDITION]["encoder_attention_mask"].sum(1).tolist() == [2, 2]
    # the identity names the cached checkpoint; other params -> another cache entry
    assert c2.identity()["checkpoint"] == path.name
    assert DiffusionCanary(train_data=ref, steps=4, **TINY).cache_key(
        TinyTones(**ref["params"]).samples("members"), None) != path.name.split("-", 1)[1]


def test_tokenizer_is_character_level_and_total():
    tok = build_tokenizer(32)
    ids = tok("A jig é")["input_ids"]
    assert ids[0] == 2 and ids[-1] == 3 and len(ids) == len("a jig e") + 2
    assert 1 not in ids  # no unknown: NFKD strips the accent
    assert tok("€")["input_ids"][1] == 1


@pytest.mark.parametrize("params", [dict(n_frames=60), dict(vae_channels=[12]),
                                    dict(train_latents="mode"), dict(steps=0),
                                    dict(train_data={"split": "members"}), dict(lr=0)])
def test_bad_params(params):
    with pytest.raises(ConfigError):
        DiffusionCanary(**params)


@pytest.mark.slow
def test_overfit_canary_separates_members(ref):
    from plugins.attacks._diffusion_impl import DenoisingLoss

    c = DiffusionCanary(train_data=ref, steps=150, lr=3e-3, **TINY)
    ds = TinyTones(root=ref["params"]["root"])
    a = DenoisingLoss(n_repetitions=8)
    losses = {}
    for split in ("members", "nonmembers"):
        s = ds.samples(split)
        ctx = BatchContext(c, s, 0)
        ctx.outputs = c.provide(s, a.needs(), ctx)
        losses[split] = a.extract(ctx)["denoising-loss"]
    assert losses["members"].mean() < losses["nonmembers"].mean()


def test_code_pickled_into_a_cached_component_never_runs(ref, tmp_path):
    import hostile

    from harness.errors import ModelLoadError

    canary = DiffusionCanary(train_data=ref, **TINY)
    folder = tmp_path / "canary"
    for part in ("unet", "vae", "text_encoder"):
        (folder / part).mkdir(parents=True)
        (folder / part / "config.json").write_text("{}")
    marker = tmp_path / "ran"
    hostile.code_pickle(folder / "vae" / "diffusion_pytorch_model.bin", marker, "legacy")
    with pytest.raises(ModelLoadError, match="diffusion canary vae weights"):
        canary.load(folder)
    assert not marker.exists()


def test_a_cached_canary_with_a_missing_or_foreign_weight_is_refused_by_name(ref, monkeypatch):
    """Loading is strict (the shared ``load_pretrained_strict``): from_pretrained alone would
    fill a dropped weight at random and ignore a foreign one. The refusal names the component and
    the keys, retrains nothing and leaves the cache entry as it was."""
    import hashlib
    import re
    import shutil

    from safetensors.torch import load_file, save_file

    from plugins.models._diffusers_shared import StrictLoadError

    path = DiffusionCanary(train_data=ref, steps=1, **TINY).checkpoint_dir()
    intact = path.parent / "intact"
    shutil.copytree(path, intact)
    monkeypatch.setattr(DiffusionCanary, "_train", lambda *a: pytest.fail("retrained"))

    def digest():
        return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
                for f in sorted(path.rglob("*")) if f.is_file()}

    for part, gone in (("unet", "conv_out.weight"), ("vae", "decoder.conv_out.weight"),
                       ("text_encoder", "final_layer_norm.weight")):
        shutil.rmtree(path)
        shutil.copytree(intact, path)
        (f,) = (path / part).glob("*.safetensors")
        state = load_file(f)
        del state[gone]
        state["mystery_block.weight"] = torch.zeros(2)
        save_file(state, f)
        before = digest()
        canary = DiffusionCanary(train_data=ref, steps=1, **TINY)
        with pytest.raises(StrictLoadError) as err:
            canary.m
        msg = str(err.value)
        assert f"diffusion-canary {part}:" in msg
        # transformers may name the missing key with its module prefix (text_model.)
        assert re.search(rf"missing 1 key\(s\): [\w.]*{re.escape(gone)}\b", msg), msg
        assert "unexpected 1 key(s): mystery_block.weight" in msg
        assert f"delete the folder {path} to retrain" in msg
        assert canary._m is None and digest() == before
    shutil.rmtree(path)
    shutil.copytree(intact, path)
    assert set(DiffusionCanary(train_data=ref, steps=1, **TINY).m) >= {"unet", "vae"}
