"""Quiet by default: a real run (two tiny canaries on a local folder, in a subprocess so that the
libraries are imported fresh) prints only the harness's own lines on stderr; ``-v`` shows the
third-party noise again, which proves the filter — not a quiet library version — hid it."""

import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import soundfile as sf

AR_TINY = {"steps": 3, "dim": 16, "num_layers": 1, "num_heads": 2, "card": 16,
           "codec_filters": 2, "codec_dim": 8, "segment_seconds": 2.5, "batch_size": 4,
           "warmup_steps": 1}
DIFF_TINY = {"steps": 3, "n_frames": 64, "latent_channels": 2, "vae_channels": [8, 8],
             "unet_channels": [16, 16], "attention_head_dim": 4, "text_dim": 16,
             "text_layers": 1, "max_text_length": 48, "batch_size": 4, "warmup_steps": 1}
# what the harness itself writes on stderr: tagged progress lines, tqdm bars it labels, warnings
OWN = re.compile(r"^(\[(model|data|extract|score|evaluate|blind|results|log|train)\]|warning: )")


def _clips(root):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for i in range(4):
            sr = 16000
            t = np.arange(int(sr * 2.6)) / sr
            x = 0.3 * np.sin(2 * np.pi * (200 + 70 * i + (split == "test") * 35) * t)
            sf.write(root / split / f"c{i}.wav",
                     (x + 0.05 * rng.standard_normal(t.shape)).astype(np.float32), sr)
            (root / split / f"c{i}.txt").write_text(f"a tone {i}")


def _suite(tmp_path, clips):
    ref = lambda split: json.dumps({"source": "local-folder", "split": split,  # noqa: E731
                                    "params": {"path": str(clips), "subfolders_as_splits": True}})
    return textwrap.dedent(f"""\
        name: quiet
        device: cpu
        batch_size: 4
        cache_dir: {tmp_path}/cache
        models:
          diff: {{plugin: diffusion-canary, params: {json.dumps({"train_data": json.loads(ref("train")), **DIFF_TINY})}}}
          ar: {{plugin: autoregressive-canary, params: {json.dumps({"train_data": json.loads(ref("train")), **AR_TINY})}}}
        data:
          clips: {{members: {ref("train")}, nonmembers: {ref("test")}}}
        attacks:
          - plugin: denoising-loss
          - {{plugin: loss, models: [ar]}}
        mia: {{subsamples: 5}}
        di: {{n_grid: [2], draws: 5}}
        """)


def _run(tmp_path, suite, out, *flags, seed=0):
    cmd = [sys.executable, "-m", "harness.cli", *flags, "run", str(suite), "--no-log",
           "--set", f"output_dir={tmp_path / out}", "--set", f"seed={seed}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return [ln.strip() for ln in re.split(r"[\r\n]", res.stderr) if ln.strip()]


def test_run_prints_no_third_party_lines_unless_verbose(tmp_path):
    clips = tmp_path / "clips"
    _clips(clips)
    suite = tmp_path / "suite.yaml"
    suite.write_text(_suite(tmp_path, clips))
    quiet = _run(tmp_path, suite, "r1")
    foreign = [ln for ln in quiet if not OWN.match(ln)]
    assert not foreign, "third-party lines on stderr:\n" + "\n".join(foreign)
    assert any(ln.startswith("[extract]") and "ETA" in ln or "<" in ln for ln in quiet)
    # the canaries are cached now; another seed makes the features new, so they are loaded
    # again, and loading makes the libraries talk
    loud = _run(tmp_path, suite, "r2", "-v", seed=1)
    assert [ln for ln in loud if not OWN.match(ln)], "expected third-party lines with -v"
