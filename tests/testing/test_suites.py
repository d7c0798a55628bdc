"""run_suite goes through validation, plugin checks and the runner into a scratch directory."""

import pytest
import yaml

from harness.errors import SuiteError
from harness.testing import run_suite, toy_suite


def test_run_suite_from_a_dict_on_both_toy_families(tmp_path, toy_plugins):
    suite = toy_suite(["loss", "denoising-loss"], tmp_path / "data", family="both", n=8,
                      aggregators=["minmax-sum"])
    res = run_suite(suite, tmp_path / "work")
    assert res.path.is_relative_to(tmp_path / "work" / "results")
    assert (tmp_path / "work" / "cache" / "features").is_dir()
    loss = res.mia_result("loss")
    assert loss["model"] == "toy-autoregressive" and loss["auc"] > 0.8
    assert res.mia_result("denoising-loss", model="toy-diffusion")["auc"] > 0.8
    di = res.di_result("minmax-sum")
    assert di["model"] == "toy-autoregressive" and di["null_fpr"] is not None
    feats = res.features("loss")
    assert set(feats) == {"loss"} and len(feats["loss"]["members"]) == 8
    assert all(k.startswith("members/") for k in feats["loss"]["members"])
    assert any(m.startswith("[results]") for m in res.messages)
    with pytest.raises(KeyError, match="the run has"):
        res.mia_result("min-k")


def test_run_suite_from_yaml_text_and_path_with_overrides(tmp_path, toy_plugins):
    text = yaml.safe_dump(toy_suite(["loss"], tmp_path / "data", n=4))
    res = run_suite(text, tmp_path / "a", overrides=["attacks[0].params.mode=conditional"])
    assert res.mia_result("loss")["params"]["mode"] == "conditional"
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    assert run_suite(path, tmp_path / "b").mia_result("loss")["auc"] is not None
    with pytest.raises(SuiteError, match=r"Unknown key 'atacks'"):
        run_suite(text.replace("attacks:", "atacks:"), tmp_path / "c")


def test_run_suite_refuses_unknown_plugins_like_harness_run(tmp_path, toy_plugins):
    suite = toy_suite(["no-such-attack"], tmp_path / "data", n=4)
    with pytest.raises(SuiteError,
                       match=r"Unknown attack 'no-such-attack'.*not loaded under tests"):
        run_suite(suite, tmp_path)
