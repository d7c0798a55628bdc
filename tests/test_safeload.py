"""``harness.safeload``: checkpoints never run code. Each model plugin is handed a checkpoint whose
pickle writes a marker file when unpickled (torch zip, legacy torch and raw pickle); the load must
fail with a named ``ModelLoadError`` and the marker must not exist."""

from __future__ import annotations

import pickle
import subprocess
import sys

import hostile
import pytest
import torch

from harness import safeload
from harness.errors import ModelLoadError


@pytest.mark.parametrize("kind", hostile.PICKLE_KINDS)
def test_code_in_a_checkpoint_never_runs(tmp_path, kind):
    marker = tmp_path / "ran"
    path = hostile.code_pickle(tmp_path / "x.ckpt", marker, kind)
    with pytest.raises(ModelLoadError) as err:
        safeload.load(path)
    assert not marker.exists()
    msg = str(err.value)
    assert "\n" not in msg and path in msg and "python -m harness.safeload" in msg
    if kind != "raw":  # torch names the refused global; a raw pickle fails on its magic number
        assert "exec" in msg
    # the payload really runs code under plain pickle: the test can fail
    with open(path, "rb") as fh:
        if kind == "raw":
            pickle.load(fh)
        else:
            torch.load(fh, weights_only=False)
    assert marker.exists()


def test_plain_checkpoints_load(tmp_path):
    obj = {"state_dict": {"w": torch.arange(3.0)}, "hyper_parameters": {"a": [1, 2.0, "x"]},
           "epoch": 3}
    for legacy in (False, True):
        p = tmp_path / f"ok{legacy}.ckpt"
        torch.save(obj, p, _use_new_zipfile_serialization=not legacy)
        out = safeload.load(p, mmap=True)
        assert torch.equal(out["state_dict"]["w"], obj["state_dict"]["w"])
        assert out["hyper_parameters"] == obj["hyper_parameters"]


def test_empty_truncated_missing_and_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="empty"):
        safeload.load(hostile.empty_file(tmp_path / "e.ckpt"))
    p = tmp_path / "t.ckpt"
    torch.save({"w": torch.zeros(1000)}, p)
    p.write_bytes(p.read_bytes()[:500])
    with pytest.raises(ModelLoadError, match="unreadable") as err:
        safeload.load(p)
    assert "\n" not in str(err.value)
    with pytest.raises(ModelLoadError, match="not found"):
        safeload.load(tmp_path / "nope.ckpt")
    with pytest.raises(ModelLoadError, match="directory"):
        safeload.load(tmp_path)


def test_conversion_needs_trust_and_keeps_tensors(tmp_path):
    o = hostile.TrustedObject()
    o.x = torch.ones(2)
    src = tmp_path / "trusted.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "obj": o}, src)
    with pytest.raises(ModelLoadError):
        safeload.load(src)
    assert safeload.main([str(src), str(tmp_path / "out.ckpt")]) == 2
    assert not (tmp_path / "out.ckpt").exists()
    assert safeload.main([str(src), str(tmp_path / "out.ckpt"), "--trust"]) == 0
    out = safeload.load(tmp_path / "out.ckpt")
    assert torch.equal(out["obj"]["x"], torch.ones(2))


def test_only_safeload_calls_torch_load():
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    out = subprocess.run(["grep", "-rnF", "torch.load(", "harness", "plugins"], cwd=root,
                         capture_output=True, text=True).stdout.splitlines()
    assert out and all(line.startswith("harness/safeload.py") for line in out), out


def test_converter_runs_as_a_module(tmp_path):
    out = subprocess.run([sys.executable, "-m", "harness.safeload", "a", "b"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "--trust" in out.stderr
