"""``harness init``: the starter suite written from two folders (or manifests) validates."""

import numpy as np
import soundfile as sf
import yaml
from click.testing import CliRunner

from harness.cli import cli


def _folder(root, n, f0):
    root.mkdir(parents=True)
    t = np.arange(16000 * 3) / 16000
    for i in range(n):
        sf.write(root / f"c{i}.wav", (0.3 * np.sin(2 * np.pi * (f0 + 25 * i) * t))
                 .astype(np.float32), 16000)
        (root / f"c{i}.txt").write_text(f"a tone {i}")
    return root


def test_init_from_two_folders_writes_a_suite_that_validates(tmp_path):
    mem, non = _folder(tmp_path / "mem", 6, 200), _folder(tmp_path / "non", 5, 210)
    out = tmp_path / "suite.yaml"
    res = CliRunner().invoke(cli, ["init", "--members", str(mem), "--nonmembers", str(non),
                                   "--model", "diffusion-canary", "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert text.startswith("# Starter suite") and "harness validate" in text
    suite = yaml.safe_load(text)
    assert suite["models"]["diffusion-canary"]["params"]["train_data"] == \
        suite["data"]["mine"]["members"]
    assert suite["data"]["mine"]["nonmembers"]["params"]["path"] == str(non)
    assert suite["di"]["n_grid"] == [2, 4, 5]
    assert {a["plugin"] for a in suite["attacks"]} >= {"pia", "denoising-loss"}
    val = CliRunner().invoke(cli, ["validate", str(out)])
    assert val.exit_code == 0, val.output
    assert "mine: 6 members, 5 non-members" in val.output
    # an existing file is kept unless --force
    again = CliRunner().invoke(cli, ["init", "--members", str(mem), "--nonmembers", str(non),
                                     "--model", "diffusion-canary", "-o", str(out)])
    assert again.exit_code == 2 and "exists" in again.output


def test_init_from_one_manifest_with_splits_for_a_model_without_null_condition(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    rows = ["path,caption,split"]
    t = np.arange(16000 * 3) / 16000
    for split in ("member", "nonmember"):
        for i in range(4):
            sf.write(d / f"{split}{i}.wav", (0.2 * np.sin(2 * np.pi * (300 + 9 * i) * t))
                     .astype(np.float32), 16000)
            rows.append(f"{split}{i}.wav,clip {i},{split}")
    (d / "clips.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "s.yaml"
    res = CliRunner().invoke(cli, ["init", "--members", str(d / "clips.csv"), "--members-split",
                                   "member", "--nonmembers", str(d / "clips.csv"),
                                   "--nonmembers-split", "nonmember", "--model", "figaro",
                                   "-o", str(out)])
    assert res.exit_code == 0, res.output
    suite = yaml.safe_load(out.read_text())
    assert suite["data"]["mine"]["members"]["split"] == "member"
    # FIGARO has no null condition: every token-stats attack is set to conditional mode
    assert all(a["params"]["mode"] == "conditional" for a in suite["attacks"])


def test_init_names_a_bad_path(tmp_path):
    res = CliRunner().invoke(cli, ["init", "--members", str(tmp_path / "nope"), "--nonmembers",
                                   str(tmp_path), "--model", "diffusion-canary", "-o", "-"])
    assert res.exit_code == 2 and "give a directory of recordings or a CSV" in res.output
