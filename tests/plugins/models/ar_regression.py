"""The autoregressive canary audited the way the harness reports it, for the variable-length
regression tests (issue #9): every autoregressive attack, attack-level AUC (``best-heldout``
over an attack's features, as results.json) with its std over 250 subsamples, on all clips and
separately on the clips shorter / not shorter than the canary's segment."""

from __future__ import annotations

import numpy as np

#: a small canary that trains in about a minute on one core
CANARY = {"steps": 400, "dim": 64, "threads": 1, "num_layers": 2, "num_heads": 4, "card": 64,
          "codec_filters": 4, "codec_dim": 16, "segment_seconds": 3.0, "batch_size": 16,
          "warmup_steps": 20}


def attacks(mode: str = "contrast"):
    from plugins.attacks import _autoregressive_impl as ar

    return [cls(mode=mode) for cls in (ar.Loss, ar.Zlib, ar.Hinge, ar.MinK, ar.MinKPlusPlus,
                                       ar.Surp, ar.Camia)]


def features(model, samples, atts) -> dict:
    """{attack name: {feature: [per-sample values]}} through the model's ``provide``."""
    from harness.contracts import BatchContext

    feats: dict = {}
    for i in range(0, len(samples), 16):
        batch = samples[i:i + 16]
        ctx = BatchContext(model, batch, 0)
        ctx.outputs = model.provide(batch, set().union(*(a.needs() for a in atts)), ctx)
        for a in atts:
            for k, v in a.extract(ctx).items():
                feats.setdefault(a.registered_name, {}).setdefault(k, []).extend(v)
    return {a: {k: np.asarray(v, dtype=float) for k, v in f.items()} for a, f in feats.items()}


def audit(data: dict, modes=("contrast",), **params) -> dict:
    """{mode: {part: {attack: (AUC, std)}}} for part in all / short / long, of the canary
    trained on ``data['members']`` (``CANARY`` updated by ``params``), and ``durations``."""
    from harness import segments
    from harness.datasets import resolve
    from harness.metrics import evaluate_features
    from plugins.models._autoregressive_canary_impl import AutoregressiveCanary

    p = {**CANARY, **params}
    canary = AutoregressiveCanary(train_data=data["members"], **p)
    members, nonmembers = resolve(data["members"]), resolve(data["nonmembers"])
    durations = np.array([segments.file_duration(s.path) for s in members + nonmembers])
    short = durations < p["segment_seconds"]
    parts = {"all": (np.ones(len(members), bool), np.ones(len(nonmembers), bool)),
             "short": (short[:len(members)], short[len(members):]),
             "long": (~short[:len(members)], ~short[len(members):])}
    out: dict = {"durations": durations}
    for mode in modes:
        atts = attacks(mode)
        fm, fn = features(canary, members, atts), features(canary, nonmembers, atts)
        out[mode] = {}
        for part, (im, iu) in parts.items():
            res = {}
            for a in atts:
                name = a.registered_name
                r = evaluate_features({k: (fm[name][k][im], fn[name][k][iu]) for k in fm[name]},
                                      a.feature_specs())
                res[name] = (r["auc"], r["auc_std"])
            out[mode][part] = res
    return out


def failures(result: dict, exempt=()) -> list[str]:
    """What keeps an audit (one mode, all clips) from issue #9's bar: loss and Min-K% above
    0.8 AUC, and no attack (but those ``exempt``, each with its measured reason in the test)
    below chance (0.5) by more than its own std."""
    bad = [f"{a} AUC {result[a][0]:.3f} <= 0.8" for a in ("loss", "min-k")
           if result[a][0] <= 0.8]
    bad += [f"{a} AUC {auc:.3f} ± {std:.3f} below 0.5 by more than its std"
            for a, (auc, std) in result.items() if auc < 0.5 - std and a not in exempt]
    return bad
