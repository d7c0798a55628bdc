"""Folk tunes from music21's bundled ABC corpus, turned into MIDI and rendered audio.

Why this pipeline (data.md §1a, §2b): it is the only sizeable corpus of real compositions that
installs offline (it ships inside the ``music21`` wheel), abc2midi converts it in seconds where
music21 itself takes minutes, and fluidsynth with a General-MIDI soundfont turns each tune into
audio with a known instrument, so captions can be built from the tune headers plus the instrument.

Stages, each cached on disk under ``harness.paths.cache_root()/data/folk-tunes``:

1. *pool*: every tune of the chosen collection(s) → one MIDI file (abc2midi) + header fields +
   note statistics + an interval-sequence hash. Depends only on the collection and the tools.
2. *split*: a pure function of (pool, seed, n_members, n_nonmembers); see :func:`choose_split`.
3. *render*: the chosen tunes → program-set MIDI (kind=midi) or fixed-length mono WAV (kind=audio).

music21 itself is never imported: only its corpus files are read.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from harness import atomic
from harness.errors import ConfigError, DataError
from harness.paths import cache_root

#: bump when the pool contents (parsing, MIDI conversion, statistics) change
POOL_VERSION = "1"

#: collections of folk tunes inside music21's corpus, and the files left out of each
COLLECTIONS = {
    "oneills1850": (),            # O'Neill's Music of Ireland (1850 tunes), 39 files, ~2,000 tunes
    "ryansMammoth": (),           # Ryan's Mammoth Collection, 1,059 single-tune files
    "airdsAirs": (),              # Aird's Airs, ~1,180 tunes
    "essenFolksong": ("test0.abc", "test1.abc", "testd.abc", "teste.abc", "variant0.abc"),
    "miscFolk": (),
}

# A tune is eligible only if it sounds from its start: otherwise a short clip of it is silence or
# a single note. These thresholds are symbolic (abc2midi's timing), so eligibility, and with it the
# split, never depends on how the audio is rendered.
MIN_NOTES = 16
MAX_FIRST_ONSET_S = 1.0
MIN_NOTES_IN_FIRST_2S = 4

SILENT_RMS = 1e-3
APT_HINT = "install it with: sudo apt-get install {pkg}  (or run scripts/setup.sh)"
SYSTEM_SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"

#: readable names for common GM programs (0-based); others come from pretty_midi's GM table
INSTRUMENT_NAMES = {
    0: "piano", 6: "harpsichord", 21: "accordion", 22: "harmonica", 24: "acoustic guitar",
    40: "violin", 41: "viola", 42: "cello", 46: "harp", 56: "trumpet", 60: "french horn",
    68: "oboe", 70: "bassoon", 71: "clarinet", 72: "piccolo", 73: "flute", 74: "recorder",
    75: "pan flute", 78: "whistle", 105: "banjo", 109: "bagpipe", 110: "fiddle",
}

DANCE_FORMS = ("double jig", "single jig", "slip jig", "set dance", "jig", "reel", "hornpipe",
               "air", "waltz", "march", "polka", "slide", "strathspey", "mazurka", "schottische",
               "clog", "fling", "quickstep", "barndance", "lament", "song", "planxty")

_MODES = {"": "major", "maj": "major", "m": "minor", "min": "minor", "mix": "mixolydian",
          "dor": "dorian", "phr": "phrygian", "lyd": "lydian", "loc": "locrian", "aeo": "aeolian",
          "ion": "ionian"}


# ------------------------------------------------------------------------------------------
# Tools


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if not path:
        raise DataError(f"folk-tunes needs the '{name}' program, which is not on PATH; "
                        + APT_HINT.format(pkg=package))
    return path


def find_soundfont(explicit: str | None = None) -> Path:
    """The GM soundfont: an explicit path, Debian's TimGM6mb, else the copy pretty_midi ships."""
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise DataError(f"folk-tunes: soundfont '{explicit}' does not exist")
        return p
    if Path(SYSTEM_SOUNDFONT).is_file():
        return Path(SYSTEM_SOUNDFONT)
    spec = importlib.util.find_spec("pretty_midi")
    if spec and spec.submodule_search_locations:
        p = Path(list(spec.submodule_search_locations)[0]) / "TimGM6mb.sf2"
        if p.is_file():
            return p
    raise DataError("folk-tunes found no General-MIDI soundfont (looked for "
                    f"{SYSTEM_SOUNDFONT} and pretty_midi's TimGM6mb.sf2); "
                    + APT_HINT.format(pkg="timgm6mb-soundfont"))


def corpus_dir() -> Path:
    """music21's corpus folder, located without importing music21 (slow to import)."""
    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("folk-tunes reads music21's bundled corpus, but music21 is not "
                        "installed: pip install music21")
    path = Path(list(spec.submodule_search_locations)[0]) / "corpus"
    if not path.is_dir():
        raise DataError(f"music21 is installed without its corpus (no {path})")
    return path


def tool_version(binary: str, flag: str) -> str:
    try:
        out = subprocess.run([binary, flag], capture_output=True, text=True, timeout=30)
    except OSError:
        return "unknown"
    return (out.stdout + out.stderr).strip().splitlines()[0] if (out.stdout + out.stderr) else ""


def instrument_name(program: int) -> str:
    if program in INSTRUMENT_NAMES:
        return INSTRUMENT_NAMES[program]
    from pretty_midi import program_to_instrument_name

    return re.sub(r"\s*\(.*\)", "", program_to_instrument_name(program)).lower()


def digest(obj) -> str:
    return hashlib.blake2b(json.dumps(obj, sort_keys=True).encode(), digest_size=8).hexdigest()


# ------------------------------------------------------------------------------------------
# ABC parsing and captions


def split_abc(text: str) -> tuple[str, list[str]]:
    """(file preamble, tunes): each tune is the text from its ``X:`` line to the next one."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    preamble: list[str] = []
    tunes: list[list[str]] = []
    for line in lines:
        if re.match(r"^X:", line):
            tunes.append([line])
        elif tunes:
            tunes[-1].append(line)
        else:
            preamble.append(line)
    return "\n".join(preamble), ["\n".join(t) for t in tunes]


def header_fields(tune: str) -> dict:
    """First T/M/R/K/L value of the tune header (the part up to and including ``K:``)."""
    fields: dict[str, str] = {}
    for line in tune.split("\n"):
        m = re.match(r"^([A-Za-z]):\s*(.*?)\s*$", line)
        if not m:
            continue
        key, value = m.group(1), m.group(2)
        if key in "XTMRKL" and key not in fields:
            fields[key] = value
        if key == "K":
            break
    return fields


def describe_key(k: str) -> str:
    m = re.match(r"^([A-Ga-g])([#b]?)\s*([A-Za-z]*)", k.strip())
    if not m:
        return ""
    tonic = m.group(1).upper() + {"#": " sharp", "b": " flat", "": ""}[m.group(2)]
    mode = m.group(3).lower()
    for prefix in ("maj", "min", "mix", "dor", "phr", "lyd", "loc", "aeo", "ion", "m", ""):
        if mode.startswith(prefix):
            return f"{tonic} {_MODES[prefix]}"
    return tonic


def describe_meter(m: str) -> str:
    m = m.strip()
    if m == "C":
        return "4/4"
    if m == "C|":
        return "2/2"
    return m if re.fullmatch(r"\d+/\d+", m) else ""


def describe_rhythm(r: str) -> str:
    r = re.sub(r"\s+", " ", r.strip().lower().replace("slipjig", "slip jig"))
    for form in DANCE_FORMS:
        if re.search(rf"\b{form}\b", r):
            return form
    return ""


def clean_title(t: str) -> str:
    t = re.sub(r"\s+--\s+\w[\w ]*$", "", t.strip())  # Ryan's "Acacia -- Reel"
    return re.sub(r"\s+", " ", t).strip(" ,.;")


def caption(entry: dict, instrument: str, with_title: bool) -> str:
    form = entry["rhythm"] or "tune"
    text = f"{'an' if form[0] in 'aeiou' else 'a'} {form}"
    if entry["key"]:
        text += f" in {entry['key']}"
    if entry["meter"]:
        text += f", {entry['meter']} time"
    text += f", played on {instrument}"
    if with_title and entry["title"]:
        text += f' ("{entry["title"]}")'
    return text


# ------------------------------------------------------------------------------------------
# Stage 1: the pool


def pool_dir(collections: list[str]) -> Path:
    abc2midi = require_binary("abc2midi", "abcmidi")
    corpus = corpus_dir()
    key = digest({"collections": collections, "version": POOL_VERSION,
                  "abc2midi": tool_version(abc2midi, "-ver"),
                  "corpus": str(corpus), "corpus_mtime": [
                      (corpus / c).stat().st_mtime_ns if (corpus / c).exists() else 0
                      for c in collections]})
    return cache_root() / "data" / "folk-tunes" / f"pool-{key}"


def load_pool(collections: list[str]) -> tuple[Path, list[dict]]:
    """Every tune of ``collections`` with its MIDI file; built once and cached."""
    path = pool_dir(collections)
    index = path / "index.json"
    if not index.is_file():
        with atomic.directory(path) as tmp:
            entries = build_pool(collections, tmp)
            atomic.write_json(tmp / "index.json", entries)
    return path, json.loads(index.read_text())


def build_pool(collections: list[str], out: Path) -> list[dict]:
    import symusic

    abc2midi = require_binary("abc2midi", "abcmidi")
    corpus = corpus_dir()
    entries: list[dict] = []
    for coll in collections:
        folder = corpus / coll
        files = sorted(p for p in folder.glob("*.abc") if p.name not in COLLECTIONS[coll])
        if not files:
            raise DataError(f"folk-tunes: no .abc files in {folder}")
        for abc in files:
            preamble, tunes = split_abc(abc.read_text(encoding="latin-1"))
            if not tunes:
                continue
            work = out / "midi" / coll / abc.stem
            work.mkdir(parents=True, exist_ok=True)
            # Renumber X: 1..n so abc2midi's output names map back to tunes even when a file
            # repeats a reference number.
            renumbered = [re.sub(r"^X:.*", f"X:{i + 1}", t, count=1) for i, t in enumerate(tunes)]
            (work / "t.abc").write_text(preamble + "\n\n" + "\n\n".join(renumbered) + "\n",
                                        encoding="latin-1")
            subprocess.run([abc2midi, "t.abc", "-silent", "-NGUI"], cwd=work,
                           capture_output=True, timeout=600)
            (work / "t.abc").unlink()
            for i, tune in enumerate(tunes):
                mid = work / f"t{i + 1}.mid"
                stats = midi_stats(symusic, mid) if mid.is_file() else None
                if stats is None:
                    continue
                fields = header_fields(tune)
                x = re.sub(r"\D", "", fields.get("X", "")) or str(i + 1)
                entries.append({
                    "id": f"{coll}.{abc.stem}.{i + 1}",
                    "collection": coll, "file": abc.name, "index": i + 1, "x": x,
                    "title": clean_title(fields.get("T", "")),
                    "key": describe_key(fields.get("K", "")),
                    "meter": describe_meter(fields.get("M", "")),
                    "rhythm": describe_rhythm(fields.get("R", "")),
                    "midi": str(mid.relative_to(out)),
                    **stats,
                })
    return entries


def midi_stats(symusic, mid: Path) -> dict | None:
    try:
        score = symusic.Score(str(mid), ttype="second")
    except Exception:
        return None
    notes = [(round(n.time, 4), n.pitch) for t in score.tracks if not t.is_drum for n in t.notes]
    if len(notes) < 2:
        return None
    notes.sort()
    pitches = [p for _, p in notes]
    onsets = [t for t, _ in notes]
    intervals = np.diff(pitches).astype(int).tolist()
    return {
        "n_notes": len(notes),
        "first_onset_s": onsets[0],
        "notes_first_2s": sum(1 for t in onsets if t < 2.0),
        "duration_s": round(float(score.end()), 3),
        "interval_hash": hashlib.blake2b(json.dumps(intervals).encode(),
                                         digest_size=8).hexdigest(),
    }


# ------------------------------------------------------------------------------------------
# Stage 2: the split


def eligible_unique(pool: list[dict]) -> list[dict]:
    """Tunes that sound from their start, deduplicated by interval sequence (first one kept, in
    pool order), so no melody (up to transposition) can be on both sides of the split."""
    seen: set[str] = set()
    out = []
    for e in pool:
        if (e["n_notes"] < MIN_NOTES or e["first_onset_s"] > MAX_FIRST_ONSET_S
                or e["notes_first_2s"] < MIN_NOTES_IN_FIRST_2S):
            continue
        if e["interval_hash"] in seen:
            continue
        seen.add(e["interval_hash"])
        out.append(e)
    return out


def seeded_order(entries: list[dict], seed: int, purpose: str) -> list[dict]:
    """A seeded shuffle that is stable across numpy versions and platforms: sort by a keyed hash."""
    def key(e):
        return hashlib.blake2b(f"{purpose}:{seed}:{e['id']}".encode(), digest_size=8).digest()

    return sorted(entries, key=key)


def choose_split(pool: list[dict], seed: int, n_members: int, n_nonmembers: int):
    """(member queue, non-member queue): the first n of each queue are the split, the rest are
    that side's reserves (used only if a render is silent with every instrument)."""
    unique = eligible_unique(pool)
    ordered = seeded_order(unique, seed, "split")
    members, nonmembers = ordered[0::2], ordered[1::2]
    if n_members > len(members) or n_nonmembers > len(nonmembers):
        raise ConfigError(
            f"folk-tunes: asked for {n_members} members and {n_nonmembers} non-members, but the "
            f"collection has {len(unique)} eligible distinct tunes (at most {len(members)} "
            f"members and {len(nonmembers)} non-members); lower n_members/n_nonmembers or add a "
            "collection")
    return members, nonmembers


def instrument_order(tune_id: str, seed: int, instruments: list[int]) -> list[int]:
    """The tune's instrument (first) and the fallbacks tried if it renders silent."""
    h = int.from_bytes(hashlib.blake2b(f"instrument:{seed}:{tune_id}".encode(),
                                       digest_size=8).digest(), "big")
    start = h % len(instruments)
    return instruments[start:] + instruments[:start]


# ------------------------------------------------------------------------------------------
# Stage 3: rendering


def program_score(symusic, src: Path, program: int, ttype: str = "tick"):
    score = symusic.Score(str(src), ttype=ttype)
    for i in reversed(range(len(score.tracks))):
        if score.tracks[i].is_drum:
            del score.tracks[i]
    for track in score.tracks:
        track.program = program
    return score


def write_midi(src: Path, dst: Path, program: int) -> None:
    import symusic

    score = program_score(symusic, src, program)
    with atomic.file(dst) as tmp:
        score.dump_midi(str(tmp))


def render_audio(src: Path, dst: Path, program: int, seconds: float, sample_rate: int,
                 soundfont: Path, fluidsynth: str) -> float:
    """Render the first ``seconds`` of the tune; return the RMS of the raw render. Writes ``dst``
    (peak-normalised 16-bit mono WAV of exactly seconds*sample_rate samples) only if not silent."""
    import soundfile as sf
    import symusic

    n = int(round(seconds * sample_rate))
    with tempfile.TemporaryDirectory(prefix="folk-render-") as tmpdir:
        mid, wav = Path(tmpdir) / "t.mid", Path(tmpdir) / "t.wav"
        score = program_score(symusic, src, program, ttype="second").clip(0, seconds)
        score.dump_midi(str(mid))
        # -R/-C 0: no reverb/chorus; float output: no dither, so renders are bit-reproducible
        proc = subprocess.run([fluidsynth, "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.6",
                               "-r", str(sample_rate), "-O", "float", "-F", str(wav),
                               str(soundfont), str(mid)],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0 or not wav.is_file():
            raise DataError(f"fluidsynth failed on {src.name}: {proc.stderr.strip()[-500:]}")
        y, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise DataError(f"fluidsynth wrote {sr} Hz instead of {sample_rate} Hz")
    y = y.mean(axis=1)[:n]
    y = np.pad(y, (0, n - len(y)))
    rms = float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))
    if rms < SILENT_RMS:
        return rms
    y = 0.5 * y / float(np.max(np.abs(y)))
    with atomic.file(dst) as tmp:
        sf.write(str(tmp), y, sample_rate, subtype="PCM_16", format="WAV")
    return rms


def render_set(params: dict, out: Path, soundfont: Path | None, log=None) -> dict:
    """Choose the split, render it into ``out`` and return the manifest."""
    t0 = time.perf_counter()
    collections = params["collection"]
    collections = [collections] if isinstance(collections, str) else list(collections)
    pool_path, pool = load_pool(collections)
    t_pool = time.perf_counter() - t0
    queues = dict(zip(("members", "nonmembers"),
                      choose_split(pool, params["seed"], params["n_members"],
                                   params["n_nonmembers"])))
    wanted = {"members": params["n_members"], "nonmembers": params["n_nonmembers"]}
    kind, seed, instruments = params["kind"], params["seed"], list(params["instruments"])
    fluidsynth = require_binary("fluidsynth", "fluidsynth") if kind == "audio" else ""
    ext = ".wav" if kind == "audio" else ".mid"

    def attempt(entry: dict, split: str) -> dict | None:
        """Render one tune, trying its instruments in order; None if silent with every one."""
        src = pool_path / entry["midi"]
        dst = out / split / f"{entry['id']}{ext}"
        tried = []
        for program in instrument_order(entry["id"], seed, instruments):
            if kind == "midi":
                write_midi(src, dst, program)
                rms = None
            else:
                rms = render_audio(src, dst, program, params["seconds"], params["sample_rate"],
                                   soundfont, fluidsynth)
                if rms < SILENT_RMS:
                    tried.append(program)
                    continue
            name = instrument_name(program)
            return {"id": entry["id"], "file": f"{split}/{dst.name}",
                    "caption": caption(entry, name, params["caption_title"]),
                    "metadata": {k: entry[k] for k in ("collection", "file", "x", "title", "key",
                                                       "meter", "rhythm", "duration_s")}
                    | {"program": program, "instrument": name, "rms": rms,
                       "silent_programs": tried}}
        return None

    manifest: dict = {"splits": {}, "replaced": []}
    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool_ex:
        futures = {split: [pool_ex.submit(attempt, e, split) for e in q[:wanted[split]]]
                   for split, q in queues.items()}
        results = {split: [f.result() for f in fs] for split, fs in futures.items()}
    # Silent tunes are replaced sequentially from their own side's reserve queue, in queue
    # order, so the replacement is deterministic and never crosses sides.
    for split, res in results.items():
        reserve = iter(queues[split][wanted[split]:])
        for i, r in enumerate(res):
            current = queues[split][i]["id"]
            while r is None:
                nxt = next(reserve, None)
                if nxt is None:
                    raise DataError(f"folk-tunes: every tune left for '{split}' renders silent")
                r = attempt(nxt, split)
                manifest["replaced"].append({"split": split, "silent": current, "by": nxt["id"]})
                if log:
                    log(f"folk-tunes: '{current}' renders silent with every instrument; "
                        f"replaced by '{nxt['id']}'")
                current = nxt["id"]
            res[i] = r
        manifest["splits"][split] = res
    manifest["timing_s"] = {"pool": round(t_pool, 3), "total": round(time.perf_counter() - t0, 3)}
    manifest["pool"] = {"dir": str(pool_path), "tunes": len(pool),
                        "eligible_distinct": len(eligible_unique(pool))}
    return manifest
