"""``lakh-midi``: a local LakhMIDI ``lmd_full`` folder split by FIGARO's published file lists.

FIGARO's split was made from unsorted glob order, so it cannot be recomputed; the repository
ships the exact lists (``splits/{train,val,test}.txt``, paths relative to ``lmd_full``, e.g.
``9/97f1949243607aa32913a4b29a78f56b.mid``). A file in ``train.txt`` is a real member only if
FIGARO's training iterator used it, i.e. it passes the loader's filters: strict parsing (a time
signature, at least one note, no parse error), at most ``max_bars`` bars (= context_size, 256 for
the released models) and at most 512 positions. ``apply_filters`` (default) applies the same
filters to every split, so members and non-members are the same kind of file.

Filtering parses every file (REMI + chords), ~0.05-1 s each; results are cached per file (keyed
by path, size and mtime) under the harness cache, and ``max_files`` stops the scan after that
many usable files in list order, which is what a benchmark of n members needs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness import hookimpl
from harness.contracts import Dataset, Sample
from harness.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")
FILTER_VERSION = "1"


class LakhMidi(Dataset):
    version = "1"
    path_params = ("root", "splits_dir")
    defaults = {
        "root": None,          # the lmd_full folder
        "splits_dir": None,    # folder with FIGARO's train.txt / val.txt / test.txt
        "apply_filters": True,
        "max_bars": 256,       # FIGARO's max_bars = context_size
        "max_files": None,     # stop after this many usable files per split (list order)
        "on_missing": "error",  # or "skip": listed files absent under root
    }
    param_docs = {"root": "the lmd_full folder (files as FIGARO's lists name them, "
                          "e.g. 9/97f1....mid)",
                  "max_bars": "files with more bars are filtered out, a positive integer "
                              "(FIGARO's max_bars = context_size, 256)",
                  "on_missing": "error: a listed file absent under root is an error | skip: "
                                "it is left out",
                  "apply_filters": "true: FIGARO's loader filters (strict parse, <= max_bars "
                                   "bars, <= 512 positions) on every split, so only files it "
                                   "trained on count as members | false: every listed file"}
    param_choices = {"on_missing": ("error", "skip")}

    def validate(self) -> None:
        p = self.params
        for k in ("root", "splits_dir"):
            if not p[k]:
                raise ConfigError(f"lakh-midi: '{k}' is required (root: the lmd_full folder; "
                                  "splits_dir: the folder with FIGARO's splits/*.txt)")
        for k in ("max_bars", "max_files"):
            v = p[k]
            if v is None and k == "max_files":
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"lakh-midi: {k} must be a positive integer, got {v!r}")
        if p["on_missing"] not in self.param_choices["on_missing"]:
            raise ConfigError(f"lakh-midi: on_missing must be 'error' or 'skip', "
                              f"got {p['on_missing']!r}")

    def splits(self):
        return list(SPLITS)

    def _list(self, split: str) -> list[str]:
        if split not in SPLITS:
            raise DataError(f"lakh-midi has no split '{split}'. Available: {', '.join(SPLITS)}")
        path = Path(self.params["splits_dir"]) / f"{split}.txt"
        if not path.is_file():
            raise DataError(f"lakh-midi: split list {path} not found. Get FIGARO's lists from "
                            "https://github.com/dvruette/figaro/tree/main/splits and set "
                            "splits_dir to their folder")
        lines = [ln.strip() for ln in path.read_text().splitlines()]
        return [ln for ln in lines if ln and not ln.startswith("#")]

    def prepare(self) -> None:
        root = Path(self.params["root"])
        if not root.is_dir():
            raise DataError(f"lakh-midi: root {root} is not a folder. Download lmd_full "
                            "(http://hog.ee.columbia.edu/craffel/lmd/lmd_full.tar.gz), extract "
                            "it and set root to the lmd_full folder")
        if not Path(self.params["splits_dir"]).is_dir():
            raise DataError(f"lakh-midi: splits_dir {self.params['splits_dir']} is not a folder")

    def _filter_cache_path(self, split: str) -> Path:
        from harness.paths import cache_dir
        import hashlib

        key = hashlib.blake2b(json.dumps([str(Path(self.params["root"]).resolve()), split,
                                          self.params["max_bars"], FILTER_VERSION]).encode(),
                              digest_size=8).hexdigest()
        return cache_dir("lakh-midi-filters") / f"{split}-{key}.json"

    def samples(self, split: str) -> list[Sample]:
        self.prepare()
        rels = self._list(split)
        root = Path(self.params["root"])
        missing = [r for r in rels if not (root / r).is_file()]
        if missing and self.params["on_missing"] == "error":
            raise DataError(f"lakh-midi: {len(missing)} of {len(rels)} files of {split}.txt are "
                            f"missing under {root} (first: {missing[:3]}). Check root, or set "
                            "on_missing: skip")
        present = [r for r in rels if (root / r).is_file()]
        limit = self.params["max_files"]
        if not self.params["apply_filters"]:
            chosen = present[:limit] if limit else present
        else:
            chosen = self._filtered(split, present, limit)
        return [Sample(id=r[:-4] if r.endswith(".mid") else r, path=str(root / r),
                       metadata={"split_list": split}) for r in chosen]

    def _filtered(self, split: str, rels: list[str], limit: int | None) -> list[str]:
        from harness import atomic
        from plugins.models import _figaro_remi as remi

        cache_path = self._filter_cache_path(split)
        try:
            cache = json.loads(cache_path.read_text())
        except (OSError, ValueError):
            cache = {}
        root = Path(self.params["root"])
        chosen, dirty = [], 0
        for r in rels:
            st = os.stat(root / r)
            stamp = [st.st_size, st.st_mtime_ns]
            entry = cache.get(r)
            if entry is None or entry[:2] != stamp:
                try:
                    why = remi.filter_reason(remi.encode_midi(root / r), self.params["max_bars"])
                except remi.InvalidMidi as exc:
                    why = f"invalid: {exc}"
                cache[r] = entry = stamp + [why]
                dirty += 1
                if dirty % 200 == 0:
                    atomic.write_text(cache_path, json.dumps(cache))
            if entry[2] is None:
                chosen.append(r)
                if limit and len(chosen) >= limit:
                    break
        if dirty:
            atomic.write_text(cache_path, json.dumps(cache))
        return chosen


@hookimpl
def register_datasets(register):
    register("lakh-midi", LakhMidi,
             description="LakhMIDI lmd_full + FIGARO's splits/{train,val,test}.txt, filtered as "
                         "FIGARO's training loader (members = train files it used)")
