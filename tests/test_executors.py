"""Choosing the executor: local by default; ray without Ray installed is a named error that says
what to install; Ray is never imported unless a suite asks for it."""

import subprocess
import sys

import pytest
import yaml

from harness import runner
from harness import suite as suite_mod
from harness.errors import ConfigError, SuiteError
from harness.testing import toy_suite


def _suite(tmp_path, **extra):
    s = toy_suite(["loss"], tmp_path / "data", n=6)
    s.update(cache_dir=str(tmp_path / "cache"), output_dir=str(tmp_path / "results"), **extra)
    return suite_mod.loads(yaml.safe_dump(s))


def test_local_is_the_default(tmp_path):
    assert _suite(tmp_path).executor == "local"


def test_ray_without_ray_installed_says_what_to_install(tmp_path, toy_plugins, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    s = _suite(tmp_path, executor="ray")
    with pytest.raises(ConfigError, match=r"pip install 'audio-mia-harness\[ray\]'"):
        runner.run(s, log=False, echo=lambda m: None)
    assert not (tmp_path / "results").exists()


def test_unknown_executor_and_ray_keys_are_suite_errors(tmp_path):
    with pytest.raises(SuiteError, match="executor"):
        _suite(tmp_path, executor="slurm")
    with pytest.raises(SuiteError, match=r"Unknown model entry 'nope'"):
        _suite(tmp_path, executor="ray", ray={"models": {"nope": {"num_gpus": 0.5}}})
    with pytest.raises(SuiteError, match="num_gpu"):
        _suite(tmp_path, ray={"num_gpu": 1})


def test_core_does_not_import_ray():
    code = ("import sys, harness.runner, harness.cli, harness.extract, harness.executors; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
