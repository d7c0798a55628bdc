"""Throughput and peak GPU memory of each attack suite on the released architectures at full size.

For MusicGen (small / medium / large) and Stable Audio Open 1.0, a checkpoint folder is written in
the released on-disk layout with **random weights** at the released configuration (audiocraft's
model scales; diffusers' StableAudioPipeline component defaults, which are SAO 1.0's), loaded by
the harness plugin exactly as a user's download would be, and the family's whole attack suite is
run on synthetic clips of the data the suite uses (10 s MusicCaps-like clips for MusicGen; 20 s
stereo clips, inside the 47.55 s window, for SAO): the model's ``provide`` plus every registered
attack's ``extract`` on one shared ``BatchContext``, as a runner cell does.

Printed per model: samples/s of the suite (after one warm-up batch) and the peak GPU memory
(``torch.cuda.max_memory_allocated``) in GiB. Random weights give the released cost, not the
released numbers: attack AUCs are not measured here.

Without a CUDA device it says so and exits 0 (nothing is timed). ``--scale tiny --allow-cpu``
runs the same code path with tiny widths on the CPU: a smoke test of the script, not a
measurement.

Usage: ``python benchmarks/released_scale.py [--models musicgen-small,stable-audio-open]
[--clips 16] [--batch 8] [--dtype float16] [--scale released|tiny] [--allow-cpu]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "plugins" / "models"))  # the format writers' configs
os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: audiocraft config/model/lm/model_scale/{small,medium,large}.yaml
MUSICGEN_SCALES = {"musicgen-small": (1024, 16, 24), "musicgen-medium": (1536, 24, 48),
                   "musicgen-large": (2048, 32, 48)}
MODELS = (*MUSICGEN_SCALES, "stable-audio-open")


def _clips(root: Path, n: int, seconds: float, rate: int, channels: int) -> list:
    import numpy as np
    import soundfile as sf

    from harness.contracts import Sample

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        t = np.arange(int(seconds * rate)) / rate
        x = 0.2 * np.sin(2 * np.pi * (110 + 37 * i) * t) + 0.05 * rng.standard_normal(t.size)
        x = np.stack([x] * channels, 1).astype("float32")
        p = root / f"clip{i:03d}.wav"
        sf.write(p, x, rate)
        out.append(Sample(id=f"c{i}", path=str(p), caption=f"a test clip number {i}, 120 bpm"))
    return out


def _t5(path: Path, tiny: bool) -> Path:
    """A t5-base-shaped encoder (random weights) with a small local tokenizer."""
    import torch
    from audiocraft_fixtures import tiny_t5_tokenizer
    from transformers import T5Config, T5EncoderModel

    tok = tiny_t5_tokenizer()
    cfg = (T5Config(vocab_size=len(tok), d_model=768, d_ff=32, d_kv=8, num_heads=2,
                    num_layers=1) if tiny else
           T5Config(vocab_size=32128, d_model=768, d_ff=3072, d_kv=64, num_heads=12,
                    num_layers=12))
    torch.manual_seed(0)
    T5EncoderModel(cfg).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def write_musicgen(root: Path, name: str, tiny: bool) -> dict:
    """A MusicGen folder in the released layout (``export_lm`` state dict + a compression
    package naming facebook/encodec_32khz) plus the T5 and codec folders it needs."""
    import audiocraft
    import torch
    from audiocraft.models import builders
    from audiocraft_fixtures import ENCODEC_NAME, musicgen_cfg
    from omegaconf import OmegaConf
    from transformers import EncodecConfig, EncodecModel

    from plugins.models._audiocraft_lm import t5_from

    dim, heads, layers = (64, 4, 2) if tiny else MUSICGEN_SCALES[name]
    t5 = _t5(root / "t5-base", tiny)
    enc = root / "encodec_32khz"
    EncodecModel(EncodecConfig(
        sampling_rate=32000, audio_channels=1, target_bandwidths=[2.2],
        upsampling_ratios=[8, 5, 4, 4], codebook_size=2048, normalize=False,
        chunk_length_s=None, overlap=None, use_causal_conv=False,
        **({"hidden_size": 16, "num_filters": 4, "num_lstm_layers": 1} if tiny else
           {"hidden_size": 128, "num_filters": 64, "num_lstm_layers": 2}))).save_pretrained(enc)
    ck = root / name
    ck.mkdir()
    cfg = OmegaConf.create(musicgen_cfg(dim=dim, num_layers=layers, lm={"num_heads": heads}))
    with t5_from(t5):
        lm = builders.get_lm_model(cfg)
    torch.save({"best_state": lm.state_dict(), "xp.cfg": OmegaConf.to_yaml(cfg),
                "version": audiocraft.__version__, "exported": True}, ck / "state_dict.bin")
    torch.save({"pretrained": ENCODEC_NAME, "exported": True, "version": audiocraft.__version__},
               ck / "compression_state_dict.bin")
    n_params = sum(p.numel() for p in lm.parameters())
    return {"checkpoint": str(ck), "t5": str(t5), "encodec": str(enc), "lm_params": n_params}


def write_stable_audio(root: Path, tiny: bool) -> dict:
    """A StableAudioPipeline folder at the released component configuration."""
    import torch
    from audiocraft_fixtures import tiny_t5_tokenizer
    from diffusers import (AutoencoderOobleck, CosineDPMSolverMultistepScheduler,
                           StableAudioDiTModel, StableAudioPipeline)
    from diffusers.pipelines.stable_audio import StableAudioProjectionModel
    from stable_audio_fixtures import write_tiny_stable_audio
    from transformers import T5EncoderModel

    path = root / "stable-audio-open"
    if tiny:
        write_tiny_stable_audio(path)
        return {"checkpoint": str(path)}
    torch.manual_seed(0)
    t5 = T5EncoderModel.from_pretrained(str(_t5(root / "t5-base", False)))
    pipe = StableAudioPipeline(
        vae=AutoencoderOobleck(), text_encoder=t5, tokenizer=tiny_t5_tokenizer(),
        projection_model=StableAudioProjectionModel(768, 768, 0, 512),
        transformer=StableAudioDiTModel(),
        scheduler=CosineDPMSolverMultistepScheduler(sigma_min=0.3, sigma_max=500,
                                                    prediction_type="v_prediction"))
    pipe.tokenizer.model_max_length = 128
    n_params = sum(p.numel() for p in pipe.transformer.parameters())
    pipe.save_pretrained(str(path))
    return {"checkpoint": str(path), "dit_params": n_params}


def run_suite(model, family: str, samples: list, batch: int, device: str) -> dict:
    """samples/s and peak memory of provide + every attack of ``family`` over ``samples``."""
    import torch

    from harness import plugins
    from harness.contracts import BatchContext

    reg = {"autoregressive": "plugins.attacks.autoregressive",
           "diffusion": "plugins.attacks.diffusion"}[family]
    from importlib import import_module

    names = list(import_module(reg).ATTACKS)
    attacks = [plugins.get("attack", n).load()() for n in names]
    needs = set().union(*(a.needs() for a in attacks))

    def one(b):
        ctx = BatchContext(model, b, 0, attacks=names)
        ctx.outputs = model.provide(b, needs, ctx)
        for a in attacks:
            a.extract(ctx)

    batches = [samples[i:i + batch] for i in range(0, len(samples), batch)]
    one(batches[0])  # warm-up (kernels, caches)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for b in batches:
        one(b)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if device.startswith("cuda") else float("nan")
    return {"attacks": len(names), "samples_per_s": len(samples) / wall, "peak_gib": peak}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--scale", choices=("released", "tiny"), default="released")
    ap.add_argument("--allow-cpu", action="store_true",
                    help="run without a GPU (only sensible with --scale tiny: a smoke test)")
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print("released_scale: no CUDA device here; nothing timed (the released-size "
              "architectures need a GPU). Run it on a GPU machine, or `--scale tiny "
              "--allow-cpu` to smoke-test the script.")
        return 0
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tiny = args.scale == "tiny"
    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(wanted) - set(MODELS))
    if unknown:
        ap.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    from plugins.models._musicgen_impl import MusicGenModel
    from plugins.models._stable_audio_impl import StableAudioOpen

    print(f"device={device} ({torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}) "
          f"scale={args.scale} dtype={args.dtype} clips={args.clips} batch={args.batch}")
    with tempfile.TemporaryDirectory(prefix="released-scale-") as tmp:
        tmp = Path(tmp)
        for name in wanted:
            work = tmp / name
            work.mkdir()
            if device == "cuda":
                torch.cuda.empty_cache()
            if name.startswith("musicgen"):
                info = write_musicgen(work, name, tiny)
                samples = _clips(work, args.clips, 10.0, 32000, 1)
                model = MusicGenModel(device=device, dtype=args.dtype, **{
                    k: info[k] for k in ("checkpoint", "t5", "encodec")},
                    **({"segment_seconds": 2.0} if tiny else {}))
                res = run_suite(model, "autoregressive", samples, args.batch, device)
                size = f"LM {info['lm_params'] / 1e6:.0f}M params"
            else:
                info = write_stable_audio(work, tiny)
                samples = _clips(work, args.clips, 20.0, 44100, 2)
                model = StableAudioOpen(device=device, dtype=args.dtype,
                                        checkpoint=info["checkpoint"])
                res = run_suite(model, "diffusion", samples, args.batch, device)
                size = (f"DiT {info['dit_params'] / 1e6:.0f}M params" if "dit_params" in info
                        else "tiny")
            print(f"{name:18s} {size:22s} {res['attacks']} attacks: "
                  f"{res['samples_per_s']:.3f} samples/s, peak {res['peak_gib']:.2f} GiB")
            del model
    return 0


if __name__ == "__main__":
    sys.exit(main())
