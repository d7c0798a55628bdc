#!/usr/bin/env python
"""Render (or find in the cache) a folk-tunes set ahead of time and print where it lives.

    .venv/bin/python scripts/prepare_folk_tunes.py --n-members 64 --n-nonmembers 64 --seconds 5

Useful to warm the cache on a machine before launching several canary trainings, and to time
the rendering. Parameters are those of the ``folk-tunes`` dataset plugin.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.errors import HarnessError  # noqa: E402
from plugins.datasets.folk_tunes import FolkTunes  # noqa: E402


def main(argv=None) -> int:
    d = FolkTunes.defaults
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-members", type=int, default=d["n_members"])
    ap.add_argument("--n-nonmembers", type=int, default=d["n_nonmembers"])
    ap.add_argument("--seed", type=int, default=d["seed"])
    ap.add_argument("--seconds", type=float, default=d["seconds"])
    ap.add_argument("--sample-rate", type=int, default=d["sample_rate"])
    ap.add_argument("--collection", nargs="+", default=[d["collection"]])
    ap.add_argument("--kind", choices=("audio", "midi"), default=d["kind"])
    ap.add_argument("--instruments", type=int, nargs="+", default=d["instruments"])
    ap.add_argument("--no-caption-title", action="store_true")
    args = ap.parse_args(argv)
    collection = args.collection[0] if len(args.collection) == 1 else args.collection
    try:
        ds = FolkTunes(n_members=args.n_members, n_nonmembers=args.n_nonmembers, seed=args.seed,
                       seconds=args.seconds, sample_rate=args.sample_rate, collection=collection,
                       kind=args.kind, instruments=args.instruments,
                       caption_title=not args.no_caption_title)
        t0 = time.perf_counter()
        ds.prepare()
        elapsed = time.perf_counter() - t0
        manifest = ds.manifest()
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({
        "root": str(ds.root()),
        "prepare_seconds": round(elapsed, 3),
        "render_seconds_when_built": manifest.get("render_seconds"),
        "counts": {k: len(v) for k, v in manifest["splits"].items()},
        "replaced": manifest["replaced"],
        "pool": manifest["pool"],
        "example": manifest["splits"]["members"][0]["caption"],
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
