"""What the Ray executor buys on one machine, on the demo's two audio cells (diffusion and
autoregressive canaries, every attack and aggregator of their families), with cold feature
caches (the canaries are trained and the tunes rendered once beforehand, outside the timings):

* ``local-1``: the local executor, one torch thread;
* ``local-default``: the local executor at torch's default thread count;
* ``ray-2``: a local Ray instance with 2 CPUs, tasks of one CPU (one torch thread each), the
  cells cut into one shard per worker; Ray's start-up is timed separately (a cluster user pays
  it once per cluster, not per run);
* on a single small cell (the autoregressive canary's), the local executor at one thread
  against ``ray`` with one task: Ray's overhead.

Printed: wall times of whole runs (extract → score → evaluate; MLflow off) and the ratios
``local-1 / ray-2`` (target >= 1.6), ``local-default / ray-2`` (reported) and
``ray / local-1`` on the small cell (target <= 1.15). The machine is shared: the load average is
printed with the figures.

Usage: python benchmarks/executor.py [--n 16] [--steps 100] [--batch 4] [--small-n 16]
[--rounds 2] (configurations interleaved, best of the rounds)
(``--n`` tunes per side; HARNESS_CACHE_DIR is not used: everything lives under a scratch
directory, removed at the end unless ``--keep``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def demo_audio_cells(root: Path, n: int, steps: int, batch_size: int) -> dict:
    """suites/demo.yaml's two audio cells, smaller: ``n`` + ``n`` folk tunes (the canaries are
    trained on the same ``n`` members), canaries trained for ``steps`` steps, quick MIA and DI
    settings, MLflow off, everything under ``root``."""
    import yaml

    raw = yaml.safe_load((REPO / "suites" / "demo.yaml").read_text())
    raw = {k: v for k, v in raw.items() if not k.startswith("x-")}
    del raw["models"]["symbolic-canary"], raw["data"]["folk-midi"]
    raw["attacks"] = [a for a in raw["attacks"] if a.get("models") != ["symbolic-canary"]]
    for side in ("members", "nonmembers"):
        raw["data"]["folk-audio"][side]["params"].update(n_members=n, n_nonmembers=n)
    for m in raw["models"].values():
        m["params"]["train_data"] = raw["data"]["folk-audio"]["members"]
        m["params"]["steps"] = steps
    raw.update(batch_size=batch_size, cache_dir=str(root / "cache"),
               output_dir=str(root / "results"), mia={"subsamples": 50},
               di={"n_grid": [2, 4, 8], "draws": 100}, mlflow={"enabled": False})
    return raw


def _fresh_cache(base: Path, name: str) -> Path:
    """A cache dir sharing the trained canaries and rendered data of ``base``, with no
    features."""
    new = base.parent / name
    new.mkdir()
    for entry in base.iterdir():
        if entry.name not in ("features", "batch-sizes"):
            (new / entry.name).symlink_to(entry)
    return new


def _timed(raw: dict, cache: Path, **changes) -> tuple[float, int]:
    """Wall time of one whole run and the samples its extraction computed (on the driver or,
    for Ray, reported by the workers)."""
    import re

    import yaml

    from harness import runner
    from harness import suite as suite_mod

    s = suite_mod.loads(yaml.safe_dump({**raw, "cache_dir": str(cache), **changes}))
    computed = []

    def echo(msg):
        m = re.match(r"\[extract\] (.+): (\d+) to compute", msg)
        if m:
            computed.append(int(m.group(2)))
        m = re.match(r"\[extract\] (\d+)/(\d+) samples", msg)
        if m and m.group(1) == m.group(2):
            computed.append(int(m.group(1)))

    t0 = time.perf_counter()
    runner.run(s, log=False, echo=echo)
    return time.perf_counter() - t0, sum(computed)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--small-n", type=int, default=16)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    import ray
    import torch

    from harness import runner
    from harness import suite as suite_mod

    work = Path(tempfile.mkdtemp(prefix="harness-bench-executor-"))
    try:
        raw = demo_audio_cells(work, args.n, args.steps, args.batch)
        base = work / "cache"
        print(f"[setup] training the canaries ({args.steps} steps), rendering {args.n}+{args.n} "
              f"tunes (untimed) under {work}", flush=True)
        import yaml

        setup = {**raw, "data": {"folk-audio": {**raw["data"]["folk-audio"], "n_members": 2,
                                                "n_nonmembers": 2}},  # trains on all n
                 "mia": {**raw["mia"], "selection": "best"}}  # 2 samples cannot be halved
        runner.run(suite_mod.loads(yaml.safe_dump(setup)), log=False, echo=lambda m: None)
        default_threads = torch.get_num_threads()
        load0 = os.getloadavg()

        torch.set_num_threads(1)
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
                 log_to_driver=False)
        t_start = time.perf_counter() - t0
        torch.set_num_threads(default_threads)

        small = dict(raw)
        small["models"] = {"autoregressive-canary": raw["models"]["autoregressive-canary"]}
        small["aggregators"] = [{"plugin": "minmax-sum"}]
        small["attacks"] = [a for a in raw["attacks"] if a.get("models")]
        small["data"] = {"folk-audio": {**raw["data"]["folk-audio"],
                                        "n_members": args.small_n,
                                        "n_nonmembers": args.small_n}}
        configs = [  # (name, suite, torch threads of the driver, changes)
            ("local-1", raw, 1, {}),
            ("ray-2", raw, default_threads, {"executor": "ray"}),
            (f"local-{default_threads}", raw, default_threads, {}),
            ("small local-1", small, 1, {}),
            ("small ray-1", small, default_threads, {"executor": "ray", "ray": {"shards": 1}}),
        ]
        best: dict[str, float] = {}
        for r in range(args.rounds):  # interleaved, best of the rounds: load comes and goes
            for name, suite_raw, threads, changes in configs:
                torch.set_num_threads(threads)
                t, n = _timed(suite_raw, _fresh_cache(base, f"c-{r}-{name.replace(' ', '-')}"),
                              **changes)
                best[name] = min(best.get(name, t), t)
                print(f"round {r + 1}: {name:14s} {t:7.1f} s ({n} samples computed; load "
                      f"{os.getloadavg()[0]:.2f})", flush=True)
        torch.set_num_threads(default_threads)
        ray.shutdown()
        load1 = os.getloadavg()
        t_local1, t_ray = best["local-1"], best["ray-2"]
        t_local_def = best[f"local-{default_threads}"]
        t_small_local, t_small_ray = best["small local-1"], best["small ray-1"]

        print()
        print(f"two cells, {2 * args.n} clips each, cold feature cache (best of {args.rounds}; "
              f"Ray start-up of {t_start:.1f} s once, not included):")
        print(f"  local-1 / ray-2       = {t_local1 / t_ray:5.2f}x  (target >= 1.6)")
        print(f"  local-{default_threads} / ray-2       = {t_local_def / t_ray:5.2f}x  (reported)")
        print(f"one small cell ({2 * args.small_n} clips, autoregressive canary):")
        print(f"  local-1 {t_small_local:.1f} s, ray (1 task) {t_small_ray:.1f} s: "
              f"ray / local-1 = {t_small_ray / t_small_local:5.2f}x  (target <= 1.15; Ray "
              f"start-up of {t_start:.1f} s not included)")
        print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f} on {os.cpu_count()} "
              "cores (the machine is shared: other processes skew the ratios)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
