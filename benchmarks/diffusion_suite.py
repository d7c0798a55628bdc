"""Overhead of the six diffusion attacks over their denoiser work, on the diffusion canary.

Measures (a) the full six-attack extraction of ``--n`` samples in batches of ``--batch`` (the
model's latents and conditions are provided once per batch, outside the timing, as the runner
does), recording every denoiser call (batch size, timestep, with/without gradient); then (b) a
bare loop replaying exactly those calls on random inputs: the same forwards, and a backward
w.r.t. the input wherever the attacks needed one. The ratio (a)/(b) is what the attacks cost on
top of the denoiser (noise drawing, masks, L-BFGS-B bookkeeping, norms). Target: <= 1.2.

Usage: python benchmarks/diffusion_suite.py [--n 16] [--batch 8] [--steps 600] [--threads 1]
(the canary is trained first if it is not cached yet; ``--steps`` picks which one).
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    import torch

    from harness.contracts import BatchContext
    from harness.datasets import resolve
    from plugins.attacks import _diffusion_impl as D
    from plugins.attacks.diffusion import ATTACKS
    from plugins.models._diffusion_canary_impl import DiffusionCanary

    torch.set_num_threads(args.threads)
    canary = DiffusionCanary(steps=args.steps)
    samples = resolve(canary.params["train_data"])[:args.n]
    attacks = []
    for name, (cls, _) in ATTACKS.items():
        a = getattr(D, cls)()
        a.registered_name = name
        attacks.append(a)
    needs = set().union(*(a.needs() for a in attacks))
    batches = []
    for i in range(0, len(samples), args.batch):
        b = samples[i:i + args.batch]
        ctx = BatchContext(canary, b, 0)
        batches.append((b, canary.provide(b, needs, ctx)))

    calls: list = []
    original = canary.predict_noise

    def recording(z_t, t, condition):
        calls.append((z_t.shape, torch.as_tensor(t).clone(), condition,
                      torch.is_grad_enabled() and z_t.requires_grad))
        return original(z_t, t, condition)

    def run_attacks() -> float:
        t0 = time.perf_counter()
        for b, outputs in batches:
            ctx = BatchContext(canary, b, 0)
            ctx.outputs = dict(outputs)
            ctx.attacks = frozenset(ATTACKS)
            for a in attacks:
                a.extract(ctx)
        return time.perf_counter() - t0

    canary.predict_noise = recording
    run_attacks()  # warm-up + record the denoiser workload
    canary.predict_noise = original
    workload = list(calls)

    def run_bare() -> float:
        t0 = time.perf_counter()
        for shape, t, cond, grad in workload:
            z = torch.randn(shape)
            if grad:
                z.requires_grad_(True)
                with torch.enable_grad():
                    e = original(z, t, cond)
                    torch.autograd.grad(e.float().pow(2).sum(), z)
            else:
                with torch.no_grad():
                    original(z, t, cond)
        return time.perf_counter() - t0

    att = min(run_attacks() for _ in range(args.repeats))
    bare = min(run_bare() for _ in range(args.repeats))
    n_grad = sum(1 for c in workload if c[3])
    print(f"samples={len(samples)} batch={args.batch} threads={args.threads} "
          f"denoiser calls={len(workload)} (with backward: {n_grad})")
    print(f"six-attack extraction: {att:.3f} s ({att / len(samples) * 1000:.1f} ms/sample)")
    print(f"bare denoiser loop:    {bare:.3f} s ({bare / len(samples) * 1000:.1f} ms/sample)")
    print(f"ratio: {att / bare:.3f}")


if __name__ == "__main__":
    main()
