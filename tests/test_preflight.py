"""``harness validate`` rejects before any work what ``harness run`` would reject on
configuration: data references (files, manifest columns, split values, counts, a canary's
training data) and attack needs against model outputs. Plus ``--keep-going``."""

import json

import numpy as np
import pytest
import soundfile as sf
import yaml
from click.testing import CliRunner

from harness import hookimpl, preflight
from harness import suite as suite_mod
from harness.cli import cli
from harness.errors import ConfigError, DataError
from harness.testing import ToyAutoregressiveModel
from harness.testing.suites import toy_suite


def _manifest(root, n=4, split_values=("member", "nonmember"), columns=("path", "caption",
                                                                        "split")):
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for split in split_values:
        for i in range(n):
            name = f"{split}{i}.wav"
            t = np.arange(16000) / 16000
            tone = 0.3 * np.sin(2 * np.pi * (220 + 20 * i) * t) * (1 if split == "member" else .8)
            sf.write(root / name, tone.astype(np.float32), 16000)
            rows.append({"path": name, "caption": f"clip {i}", "split": split})
    lines = [",".join(columns)] + [",".join(r[c] for c in columns) for r in rows]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


def _suite(tmp_path, manifest, members="member", nonmembers="nonmember", **entry):
    ref = lambda split: {"source": "local-folder", "split": split,  # noqa: E731
                         "params": {"manifest": str(manifest)}}
    s = toy_suite(["loss"], tmp_path)
    s["data"] = {"mine": {"members": ref(members), "nonmembers": ref(nonmembers), **entry}}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(s))
    return path


def _validate(path):
    return CliRunner().invoke(cli, ["validate", str(path)])


def test_valid_manifest_suite_passes_and_prints_counts(tmp_path, toy_plugins):
    res = _validate(_suite(tmp_path, _manifest(tmp_path / "d"), n_members=3))
    assert res.exit_code == 0, res.output
    assert "mine: 3 members, 4 non-members" in res.output


def test_missing_manifest_is_rejected(tmp_path, toy_plugins):
    res = _validate(_suite(tmp_path, tmp_path / "nowhere.csv"))
    assert res.exit_code == 2
    assert "data.mine.members" in res.output and "does not exist" in res.output


def test_split_value_absent_from_manifest_is_rejected(tmp_path, toy_plugins):
    res = _validate(_suite(tmp_path, _manifest(tmp_path / "d"), members="members"))
    assert res.exit_code == 2
    assert "no split 'members'" in res.output and "member" in res.output


def test_manifest_without_caption_column_is_rejected(tmp_path, toy_plugins):
    m = _manifest(tmp_path / "d", columns=("path", "split"))
    res = _validate(_suite(tmp_path, m))
    assert res.exit_code == 2 and "caption" in res.output


def test_too_few_samples_for_requested_count_is_rejected(tmp_path, toy_plugins):
    res = _validate(_suite(tmp_path, _manifest(tmp_path / "d"), n_nonmembers=10))
    assert res.exit_code == 2
    assert "n_nonmembers: 10 requested but the source has 4" in res.output


def test_canary_training_data_is_resolved(tmp_path, toy_plugins):
    s = toy_suite(["denoising-loss"], tmp_path, family="diffusion")
    s["models"]["toy-diffusion"]["params"]["train_data"] = {
        "source": "local-folder", "split": "all", "params": {"path": str(tmp_path / "none")}}
    suite = suite_mod.loads(yaml.safe_dump(s))
    with pytest.raises(DataError, match="model 'toy-diffusion' train_data"):
        preflight.check_data(suite)


class NoNullModel(ToyAutoregressiveModel):
    has_null_condition = False


class BrokenModel(ToyAutoregressiveModel):
    def provide(self, samples, needs, ctx):
        raise RuntimeError("out of memory (simulated)")


class Plugin:
    @hookimpl
    def register_models(self, register):
        register("no-null", NoNullModel, family="autoregressive", description="test")
        register("broken", BrokenModel, family="autoregressive", description="test")


def test_attack_needing_null_condition_is_rejected_by_validate(tmp_path, toy_plugins,
                                                                register_plugin):
    register_plugin(Plugin(), "preflight-test")
    s = toy_suite(["loss"], tmp_path)  # loss's default mode needs the guidance contrast
    s["models"]["plain"] = {"plugin": "no-null"}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(s))
    res = _validate(path)
    assert res.exit_code == 2
    assert "attack 'loss' needs model outputs ['token_stats/contrast']" in res.output
    assert "no-null" in res.output


def test_keep_going_runs_other_models_and_lists_failures(tmp_path, toy_plugins, register_plugin):
    register_plugin(Plugin(), "preflight-test")
    s = toy_suite(["loss"], tmp_path, n=8)
    s["models"] = {"bad": {"plugin": "broken"}, **s["models"]}
    s.update(output_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(s))
    res = CliRunner().invoke(cli, ["run", str(path)])
    assert res.exit_code == 1, res.output
    assert "bad: RuntimeError: out of memory (simulated)" in res.output
    (results,) = (tmp_path / "out").rglob("results.json")
    data = json.loads(results.read_text())
    assert [f["model"] for f in data["failures"]] == ["bad"]
    assert {e["model"] for e in data["mia"]} == {"toy-autoregressive"}
    res = CliRunner().invoke(cli, ["run", str(path), "--fail-fast"])
    assert res.exit_code != 0 and isinstance(res.exception, RuntimeError)
