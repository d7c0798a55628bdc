"""``batch_size: auto`` on CPU with an injected CUDA OOM (a toy model that raises
torch.cuda.OutOfMemoryError above a batch size): halves, retries the same samples, remembers the
size per model and device, and gives the numbers of a fixed batch size of that value. Not checked
on a real GPU here (none on this machine)."""

import json

import numpy as np
import pytest
import torch
import yaml

from harness import hookimpl, runner
from harness import suite as suite_mod
from harness.batching import START, AutoBatch
from harness.errors import HarnessError, SuiteError
from harness.testing import ToyAutoregressiveModel, toy_suite

SEEN: list[int] = []  # batch sizes handed to provide()


class SmallCard(ToyAutoregressiveModel):
    """Runs out of CUDA memory above ``fits`` samples per batch (not a param: params key the
    cache and the remembered size)."""

    fits = 12

    def provide(self, samples, needs, ctx):
        SEEN.append(len(samples))
        if len(samples) > self.fits:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().provide(samples, needs, ctx)


class P:
    @hookimpl
    def register_models(self, register):
        register("small-card", SmallCard, family="autoregressive")


@pytest.fixture
def small_card(register_plugin, toy_plugins):
    register_plugin(P(), "small-card-plugin")
    SEEN.clear()
    SmallCard.fits = 12


def _suite(root, batch_size, n=40):
    s = toy_suite(["loss", "min-k"], root / "data", n=n, aggregators=["minmax-sum"])
    s["models"] = {"m": {"plugin": "small-card"}}
    s.update(batch_size=batch_size, cache_dir=str(root / "cache"),
             output_dir=str(root / "results"))
    return suite_mod.loads(yaml.safe_dump(s))


def _mia(out):
    res = json.loads((out / "results.json").read_text())
    return [(r["auc"], r["auc_std"], r["tpr_at_fpr"]) for r in res["mia"]], res["di"][0]["per_n"]


def test_auto_halves_on_oom_remembers_and_matches_the_fixed_size(tmp_path, small_card):
    messages = []
    out = runner.run(_suite(tmp_path / "a", "auto"), log=False, echo=messages.append)
    # the first batch (all 40 members at 64) OOMs, then 32 and 16 do; 8 fits
    assert START == 64 and SEEN[:4] == [40, 32, 16, 8] and max(SEEN[3:]) == 8
    assert sum("CUDA out of memory; batch_size auto" in m for m in messages) == 3
    (stored,) = (tmp_path / "a" / "cache" / "batch-sizes").glob("*.json")
    assert json.loads(stored.read_text())["batch_size"] == 8
    # a later run of the same model and device starts at 8: no OOM, no probing
    SEEN.clear()
    messages.clear()
    runner.run(_suite(tmp_path / "a", "auto", n=44), log=False, echo=messages.append)
    assert SEEN and max(SEEN) == 8
    assert not any("out of memory" in m for m in messages)
    fixed = runner.run(_suite(tmp_path / "b", 8), log=False, echo=lambda m: None)
    assert _mia(out) == _mia(fixed)
    assert _mia(out)[0][0][0] > 0.8  # informative, not chance


def test_oom_at_batch_size_one_is_a_named_error(tmp_path, small_card):
    SmallCard.fits = 0
    with pytest.raises(HarnessError, match="CUDA out of memory even with batch_size 1"):
        runner.run(_suite(tmp_path, "auto"), log=False, echo=lambda m: None)


def test_fixed_batch_size_does_not_swallow_oom(tmp_path, small_card):
    with pytest.raises(torch.cuda.OutOfMemoryError):
        runner.run(_suite(tmp_path, 16), log=False, echo=lambda m: None, keep_going=False)


def test_remembered_per_model_and_device(tmp_path):
    a = AutoBatch({"plugin": "x", "identity": {"w": 1}}, "cpu", tmp_path)
    assert a.value == START and not a.remembered
    a.value = 4
    a.remember()
    assert AutoBatch({"plugin": "x", "identity": {"w": 1}}, "cpu", tmp_path).value == 4
    assert AutoBatch({"plugin": "x", "identity": {"w": 2}}, "cpu", tmp_path).value == START
    assert AutoBatch({"plugin": "x", "identity": {"w": 1}}, "cuda:7", tmp_path).value == START


def test_batch_size_must_be_positive_or_auto(tmp_path):
    with pytest.raises(SuiteError, match="batch_size"):
        _suite(tmp_path, "big")
    with pytest.raises(SuiteError, match="batch_size"):
        _suite(tmp_path, 0)
    assert np.isscalar(_suite(tmp_path, "auto").batch_size)
