"""``folk-tunes``: real folk melodies from music21's bundled corpus, rendered offline.

The canaries' training data: it needs no download (the tunes ship inside the ``music21`` wheel,
the tools are Debian packages ``abcmidi``, ``fluidsynth``, ``timgm6mb-soundfont``), and its
member / non-member split is known exactly, which is what a membership-inference benchmark needs.

Pipeline: ABC tune → abc2midi → every track set to one General-MIDI program (symusic) →
fluidsynth with TimGM6mb → first ``seconds`` of audio, mixed to mono, zero-padded/trimmed to
exactly ``seconds * sample_rate`` samples, peak-normalised to 0.5, 16-bit WAV. ``kind: midi``
writes the same tunes as whole-tune MIDI files with the same program (symbolic canary, FIGARO).

Split procedure (depends only on seed, collection, n_members, n_nonmembers):

1. Every tune of the collection(s), in file-name order then tune order, is converted by abc2midi.
2. Eligible tunes sound from the start (>= 16 notes, first note within 1.0 s, >= 4 notes in the
   first 2 s, measured on abc2midi's MIDI, so independent of the renderer and of ``seconds``).
3. Deduplicate by the sequence of pitch intervals (notes sorted by onset, pitch): transposed or
   re-encoded copies of one melody keep only their first occurrence.
4. Order the survivors by blake2b("split:{seed}:{tune id}") (a seeded shuffle stable across numpy
   versions). Positions 0, 2, 4, ... form the member queue, 1, 3, 5, ... the non-member queue.
5. Members = first ``n_members`` of the member queue; non-members likewise. The two sides are
   disjoint by construction, and raising n_members keeps the earlier members (prefix property).

Instruments: each tune's program is ``instruments[blake2b("instrument:{seed}:{id}") % len]``.
If a render is silent (RMS < 1e-3), the next programs of ``instruments`` are tried in turn; only
a tune silent with every program is replaced, by the next tune of *its own side's* queue (logged
in manifest.json ``replaced``; none happened with the defaults). So in practice the split is
exactly the function of step 5.

Sample ids are ``{collection}.{abc file stem}.{tune index in the file}``, e.g.
``oneills1850.0001-0050.7``.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Sequence

from harness import hookimpl
from harness.contracts import Dataset, Sample
from harness.errors import ConfigError, DataError

#: bump when the rendered files or captions change for the same parameters
CODE_VERSION = "1"

SPLITS = ("members", "nonmembers")

#: piano, nylon guitar, violin, harp, accordion, clarinet, flute, pan flute
DEFAULT_INSTRUMENTS = [0, 24, 40, 46, 21, 71, 73, 75]


class FolkTunes(Dataset):
    """music21 folk tunes → abc2midi → fluidsynth, with a seeded member/non-member split."""

    version = CODE_VERSION
    path_params = ("soundfont",)
    defaults = {
        "n_members": 64,
        "n_nonmembers": 64,
        "seed": 0,
        "seconds": 5.0,
        "sample_rate": 16000,
        # O'Neill's Music of Ireland (1850 tunes): ~2,000 tunes with English titles, key, meter
        # and (for ~900) a dance form; others: ryansMammoth, airdsAirs, essenFolksong, miscFolk,
        # or a list of them.
        "collection": "oneills1850",
        "kind": "audio",
        "instruments": DEFAULT_INSTRUMENTS,
        "caption_title": True,
        "soundfont": None,
    }
    param_docs = {
        "n_members": "tunes on the member side, a positive integer (raising it keeps the earlier "
                     "members: the split is a prefix of a seeded queue)",
        "n_nonmembers": "tunes on the non-member side, a positive integer (disjoint from the "
                        "members by construction)",
        "seed": "an integer keying the member/non-member split and each tune's instrument",
        "seconds": "length of each audio clip in seconds, in [0.1, 600] (the first seconds of "
                   "the tune, zero-padded; kind: audio only)",
        "sample_rate": "audio sample rate in Hz (kind: audio only)",
        "collection": "music21 corpus collection, or a list of them: oneills1850, ryansMammoth, "
                      "airdsAirs, essenFolksong, miscFolk",
        "kind": "audio: rendered WAV clips (audio canaries) | midi: whole-tune MIDI files "
                "(symbolic canary, FIGARO)",
        "instruments": "General-MIDI program numbers 0..127, distinct; each tune gets one, "
                       "chosen by a seeded hash (the default: piano, guitar, violin, harp, "
                       "accordion, clarinet, flute, pan flute)",
        "caption_title": "true: captions (form, key, meter, instrument) end with the tune's "
                         "title in quotes | false: no title",
        "soundfont": "path of a General-MIDI .sf2; null = Debian's TimGM6mb, else the copy "
                     "pretty_midi ships (kind: audio only)",
    }
    param_choices = {"sample_rate": (8000, 16000, 22050, 24000, 32000, 44100, 48000),
                     "kind": ("audio", "midi")}

    def validate(self) -> None:
        from ._folk_render import COLLECTIONS

        p = self.params
        for name in ("n_members", "n_nonmembers"):
            if not isinstance(p[name], int) or isinstance(p[name], bool) or p[name] < 1:
                raise ConfigError(f"folk-tunes: {name} must be a positive integer, got {p[name]!r}")
        if not isinstance(p["seed"], int) or isinstance(p["seed"], bool):
            raise ConfigError(f"folk-tunes: seed must be an integer, got {p['seed']!r}")
        if not isinstance(p["seconds"], (int, float)) or not 0.1 <= p["seconds"] <= 600:
            raise ConfigError(f"folk-tunes: seconds must be in [0.1, 600], got {p['seconds']!r}")
        if p["sample_rate"] not in self.param_choices["sample_rate"]:
            raise ConfigError("folk-tunes: sample_rate must be one of 8000, 16000, 22050, 24000, "
                              f"32000, 44100, 48000; got {p['sample_rate']!r}")
        if p["kind"] not in self.param_choices["kind"]:
            raise ConfigError(f"folk-tunes: kind must be 'audio' or 'midi', got {p['kind']!r}")
        colls = [p["collection"]] if isinstance(p["collection"], str) else p["collection"]
        if not isinstance(colls, (list, tuple)) or not colls:
            raise ConfigError("folk-tunes: collection must be a name or a list of names")
        for c in colls:
            if c not in COLLECTIONS:
                raise ConfigError(f"folk-tunes: unknown collection {c!r}; "
                                  f"available: {', '.join(COLLECTIONS)}")
        inst = p["instruments"]
        if (not isinstance(inst, (list, tuple)) or not inst
                or not all(isinstance(i, int) and 0 <= i <= 127 for i in inst)):
            raise ConfigError("folk-tunes: instruments must be a non-empty list of General-MIDI "
                              f"program numbers 0..127, got {inst!r}")
        if len(set(inst)) != len(inst):
            raise ConfigError(f"folk-tunes: instruments has duplicates: {inst!r}")
        p["instruments"] = list(inst)
        p["collection"] = p["collection"] if isinstance(p["collection"], str) else list(colls)
        p["seconds"] = float(p["seconds"])

    # ------------------------------------------------------------------

    def _key_inputs(self) -> dict:
        from . import _folk_render as fr

        params = dict(self.params)
        if params["kind"] == "midi":  # whole tunes, no synthesis: these do not change the files
            for k in ("seconds", "sample_rate", "soundfont"):
                params.pop(k)
        inputs = {"params": params, "code": CODE_VERSION, "render_code": fr.POOL_VERSION}
        if self.params["kind"] == "audio":
            sf2 = fr.find_soundfont(self.params["soundfont"])
            inputs["soundfont"] = [str(sf2), sf2.stat().st_size]
            inputs["fluidsynth"] = fr.tool_version(
                fr.require_binary("fluidsynth", "fluidsynth"), "--version")
        return inputs

    def root(self) -> Path:
        """The directory holding this parameter set's rendered files and manifest.json."""
        if getattr(self, "_root", None) is None:
            from harness.paths import cache_root

            from . import _folk_render as fr

            fr.require_binary("abc2midi", "abcmidi")
            self._root = (cache_root() / "data" / "folk-tunes"
                          / f"{self.params['kind']}-{fr.digest(self._key_inputs())}")
        return self._root

    def splits(self) -> Sequence[str]:
        return SPLITS

    def prepare(self) -> None:
        """Render once into the cache (atomically); later calls only check manifest.json."""
        root = self.root()
        if (root / "manifest.json").is_file():
            return
        import fcntl

        from harness import atomic

        from . import _folk_render as fr

        soundfont = fr.find_soundfont(self.params["soundfont"]) \
            if self.params["kind"] == "audio" else None
        # Several processes (parallel canary trainings) may ask for the same set at once: one
        # renders, the others wait and then find the manifest.
        root.parent.mkdir(parents=True, exist_ok=True)
        with open(root.parent / f".{root.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (root / "manifest.json").is_file():
                return
            t0 = time.perf_counter()
            with atomic.directory(root) as tmp:
                manifest = fr.render_set(self.params, tmp, soundfont,
                                         log=lambda m: warnings.warn(m, stacklevel=2))
                manifest["params"] = self.params
                manifest["key_inputs"] = self._key_inputs()
                manifest["render_seconds"] = round(time.perf_counter() - t0, 3)
                atomic.write_json(tmp / "manifest.json", manifest)

    def manifest(self) -> dict:
        self.prepare()
        return json.loads((self.root() / "manifest.json").read_text())

    def samples(self, split: str) -> list[Sample]:
        if split not in SPLITS:
            raise DataError(f"folk-tunes has no split '{split}'. Available: {', '.join(SPLITS)}")
        root = self.root()
        out = []
        for row in self.manifest()["splits"][split]:
            path = root / row["file"]
            if not path.is_file():
                raise DataError(f"folk-tunes: {path} is missing (cache damaged?); delete "
                                f"{root} and run again to re-render")
            out.append(Sample(id=row["id"], path=os.fspath(path), caption=row["caption"],
                              metadata={**row["metadata"], "split": split}))
        return out


@hookimpl
def register_datasets(register):
    register("folk-tunes", "plugins.datasets.folk_tunes:FolkTunes",
             description="music21 folk tunes rendered offline (abc2midi + fluidsynth); "
                         "seeded members/nonmembers split")
