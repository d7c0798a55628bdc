"""Overhead of the autoregressive attack suite over the model's bare forward passes.

On the autoregressive canary (trained first if not cached), for the same batches of members and
non-members:

* ``suite``: what a cell of the runner pays for all seven IAR attacks — the model's ``provide``
  for ``token_stats/contrast`` (audio reading, EnCodec tokens, condition encoding, the
  conditional + null ``compute_predictions`` calls, ``summarize``) plus every autoregressive
  attack's ``extract`` on one shared ``BatchContext``.
* ``bare``: ``lm.compute_predictions`` only, conditional and null rows in one call per batch, on
  tokens computed beforehand (audiocraft's own batching: captions padded to the batch's longest).

Printed: both times, their ratio (target <= 1.15), and a breakdown (tokens, the plugin's forward
call per batch with the padded caption keys masked out of the cross-attention, summarize +
attacks), so a ratio above target says where the time goes. Tokenizing is work ``bare`` does
not do (its tokens are computed beforehand) and that the harness cannot share or skip: the
printed floor ``1 + tokens / bare`` is the lowest ratio this definition allows on this model.
On the canary (a 128-wide, 3-layer LM behind a full-rate SEANet encoder) that floor is far
above 1.15; on a released AudioGen the 1.5B-parameter LM outweighs its EnCodec by orders of
magnitude. The ratio against ``bare`` plus tokenization is printed as well, and
``--proportioned`` times a canary whose LM outweighs its codec as a released model's does
(``PROPORTIONED``: 512 wide, 8 layers, ~25M parameters, still ~60x smaller than
audiogen-medium), trained for one step because only its timing is of interest.

Usage: ``python benchmarks/autoregressive_suite.py [--members 24] [--batch 8] [--repeats 5]
[--params '{"steps": 600}'] [--proportioned]`` (HARNESS_CACHE_DIR chooses where the canary is
cached).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


#: canary sizes for ``--proportioned`` (timing only: one training step)
PROPORTIONED = {"dim": 512, "num_layers": 8, "num_heads": 8, "steps": 1}


def _attacks():
    """Every registered autoregressive attack (plugins.attacks.autoregressive), defaults."""
    from importlib import import_module

    try:
        reg = import_module("plugins.attacks.autoregressive")
    except ImportError:
        return None
    impl = import_module(reg._IMPL)
    return {name: getattr(impl, cls)() for name, (cls, _) in reg.ATTACKS.items()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", type=int, default=24, help="members and non-members each")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5, help="best of N timings")
    ap.add_argument("--params", default="{}", help="canary params as JSON")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--proportioned", action="store_true",
                    help="time a canary whose LM outweighs its codec (see PROPORTIONED)")
    args = ap.parse_args(argv)

    import torch

    from harness.contracts import TOKEN_STATS_CONTRAST, BatchContext
    from harness.datasets import resolve
    from plugins.models._autoregressive_canary_impl import AutoregressiveCanary

    torch.set_num_threads(args.threads)
    params = {**(PROPORTIONED if args.proportioned else {}), **json.loads(args.params)}
    model = AutoregressiveCanary(**params)
    t = time.perf_counter()
    model.checkpoint_dir()
    print(f"canary ready in {time.perf_counter() - t:.1f} s: {model.checkpoint_dir()}")
    print(f"canary params: {params or 'defaults (the demo-size LM)'}")
    td = model.params["train_data"]
    samples = (resolve(td)[:args.members]
               + resolve({**td, "split": "nonmembers"})[:args.members])
    batches = [samples[i:i + args.batch] for i in range(0, len(samples), args.batch)]
    attacks = _attacks()
    if attacks is None:
        print("autoregressive attack plugins not found: timing provide() only")
        attacks = {}
    needs = {TOKEN_STATS_CONTRAST}
    lm = model.load().lm
    codes = [model.tokens(b) for b in batches]
    attrs = [model.condition_attributes([s.caption for s in b])
             + model.condition_attributes([None] * len(b)) for b in batches]

    def suite():
        for b in batches:
            out = model.provide(b, needs, None)
            ctx = BatchContext(model, b, 0, out)
            for a in attacks.values():
                a.extract(ctx)

    def bare():
        with torch.no_grad():
            for c, a in zip(codes, attrs):
                lm.compute_predictions(torch.cat([c, c]), a)

    def tokens_only():
        for b in batches:
            model.tokens(b)

    def plugin_forwards():
        for c, b in zip(codes, batches):
            for _ in model.predictions(c, [s.caption for s in b], True):
                pass

    # best of N, the four timed in turn each round so that a change of machine load hits all
    fns = (bare, suite, tokens_only, plugin_forwards)
    for fn in fns:
        fn()  # warm-up
    times = [[] for _ in fns]
    for _ in range(args.repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    t_bare, t_suite, t_tok, t_fwd = (min(ts) for ts in times)
    res = {"samples": len(samples), "batch": args.batch, "attacks": sorted(attacks),
           "suite_s": t_suite, "bare_s": t_bare, "ratio": t_suite / t_bare,
           "ratio_vs_tokens_plus_bare": t_suite / (t_bare + t_tok),
           "ratio_floor": 1 + t_tok / t_bare,
           "breakdown_s": {"tokens (audio read + EnCodec)": t_tok,
                           "plugin forwards (cond encoding + masked compute_predictions)": t_fwd,
                           "summarize + attacks + rest": t_suite - t_tok - t_fwd}}
    print(f"suite (provide + {len(attacks)} attacks): {t_suite:.3f} s")
    print(f"bare compute_predictions (cond + null): {t_bare:.3f} s")
    print(f"ratio: {t_suite / t_bare:.2f}  (target <= 1.15; floor from tokenizing alone: "
          f"{1 + t_tok / t_bare:.2f})")
    # for context only: a bare loop must also tokenize the audio before it can run the LM
    print(f"(for context: ratio against bare forwards plus tokenization "
          f"{t_suite / (t_bare + t_tok):.2f})")
    for k, v in res["breakdown_s"].items():
        print(f"  {k}: {v:.3f} s")
    return res


if __name__ == "__main__":
    main()
