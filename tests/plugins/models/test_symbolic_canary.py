"""``symbolic-canary``: trained lazily, cached atomically, saved in the official FIGARO format and
scored by the ``figaro`` plugin's own loader and scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness import hookimpl
from harness.contracts import Dataset, Sample
from harness.errors import ConfigError
from plugins.models import _figaro_impl as fi
from plugins.models._symbolic_canary_impl import CKPT_NAME, SymbolicCanary


def melody(path, seed, n_bars=6):
    import pretty_midi

    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=100)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(3, 4, 0))
    inst = pretty_midi.Instrument(73)
    t = 0.0
    while t < n_bars * 1.8 - 0.3:
        d = float(rng.choice([0.3, 0.6]))
        inst.notes.append(pretty_midi.Note(90, int(rng.integers(60, 84)), t, t + d))
        t += d
    pm.instruments.append(inst)
    pm.write(str(path))


class TinyMelodies(Dataset):
    defaults = {"root": None, "n": 8}

    def splits(self):
        return ["members", "nonmembers"]

    def prepare(self):
        root = Path(self.params["root"])
        for side, offset in (("members", 0), ("nonmembers", 1000)):
            (root / side).mkdir(parents=True, exist_ok=True)
            for i in range(self.params["n"]):
                p = root / side / f"{i}.mid"
                if not p.exists():
                    melody(p, offset + i)

    def samples(self, split):
        return [Sample(f"{split}/{i}", str(Path(self.params["root"]) / split / f"{i}.mid"))
                for i in range(self.params["n"])]


class Plugin:
    @hookimpl
    def register_datasets(self, register):
        register("tiny-melodies", TinyMelodies)


@pytest.fixture
def data(tmp_path, register_plugin):
    register_plugin(Plugin(), name="tiny-melodies-test")
    ref = {"source": "tiny-melodies", "split": "members", "params": {"root": str(tmp_path / "d")}}
    ds = TinyMelodies(root=str(tmp_path / "d"))
    ds.prepare()
    return ref, ds


TINY = dict(d_model=32, encoder_layers=1, decoder_layers=1, num_attention_heads=2,
            intermediate_size=48, context_size=64, batch_size=8, warmup_steps=5, lr=3e-3)


def test_trains_once_saves_official_format_and_scores_with_figaro(data):
    ref, ds = data
    canary = SymbolicCanary(train_data=ref, steps=3, **TINY)
    ckpt, vae = canary.checkpoint_paths()
    assert vae is None and Path(ckpt).name == CKPT_NAME
    assert Path(ckpt).parent.parent.name == "canaries"
    raw = torch.load(ckpt, weights_only=True)
    assert set(raw) >= {"hyper_parameters", "state_dict", "global_step"}
    assert raw["hyper_parameters"]["description_flavor"] == "description"
    assert raw["hyper_parameters"]["context_size"] == 64
    net, _ = fi.load_seq2seq(ckpt)  # strict load through the figaro loader
    assert net.context_size == 64
    mtime = Path(ckpt).stat().st_mtime_ns
    again = SymbolicCanary(train_data=ref, steps=3, **TINY)
    assert again.checkpoint_paths()[0] == ckpt and Path(ckpt).stat().st_mtime_ns == mtime
    assert SymbolicCanary(train_data=ref, steps=3, seed=1, **TINY).checkpoint_paths()[0] != ckpt
    samples = ds.samples("members")[:2]
    mine = canary.provide(samples, {"token_stats/conditional"})["token_stats/conditional"]
    theirs = fi.FigaroModel(checkpoint=ckpt).provide(
        samples, {"token_stats/conditional"})["token_stats/conditional"]
    for a, b in zip(mine, theirs):
        np.testing.assert_array_equal(a.logprob, b.logprob)
    # identity by content: the same as the checkpoint loaded by the figaro plugin, no cache path
    assert canary.identity() == fi.FigaroModel(checkpoint=ckpt).identity()
    assert str(Path(ckpt).parent) not in str(canary.identity())
    assert not list(Path(ckpt).parent.parent.glob(".tmp-*"))


@pytest.mark.slow
def test_members_get_lower_loss(data):
    ref, ds = data
    canary = SymbolicCanary(train_data=ref, steps=60, **TINY)
    need = {"token_stats/conditional"}
    m = canary.provide(ds.samples("members"), need)["token_stats/conditional"]
    n = canary.provide(ds.samples("nonmembers"), need)["token_stats/conditional"]
    lm = np.array([-s.logprob.mean() for s in m])
    ln = np.array([-s.logprob.mean() for s in n])
    assert lm.mean() < ln.mean() - 0.2
    assert (lm[:, None] < ln[None, :]).mean() > 0.8  # AUC of the loss


def test_bad_params():
    with pytest.raises(ConfigError, match="num_attention_heads"):
        SymbolicCanary(d_model=30, num_attention_heads=4)
    with pytest.raises(ConfigError, match="train_data"):
        SymbolicCanary(train_data={"source": "folk-tunes"})
    with pytest.raises(ConfigError):
        SymbolicCanary(checkpoint="x")
