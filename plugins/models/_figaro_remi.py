"""MIDI → FIGARO's REMI events, bar-level description, vocabularies and training windows.

Why a re-implementation: the official code (dvruette/figaro ``src/input_representation.py``,
``src/vocab.py``, ``src/chord_recognition.py``, ``src/datasets.py``) needs torchtext and
torchdata, which current PyTorch no longer ships. A membership test is only meaningful if the
model sees its input exactly as in training, so every step below reproduces the official
behaviour, including its quirks (each is marked "official quirk"):

- tempo items are looked up by *seconds* while expanding over ticks (so only the tempo at t=0 is
  ever read, and the expanded items sit at ``time_to_tick(k*480 seconds)``);
- the VQ-VAE input is built from the *unmasked* events (``mask_bar_tokens``' result is dropped);
- the last training window of a file is aligned to the end of the sequence and overlaps the
  previous one;
- the description of a window starts at the window's first bar, with ``<bos>`` only for the
  file's first window.

Vocabulary order equals torchtext's ``vocab(Counter(tokens))`` followed by
``insert_token(special, i)`` for the 5 specials: specials first, then tokens in first-occurrence
order; unknown tokens map to ``<unk>`` (torchtext's default index).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# ---------------------------------------------------------------------------------------------
# constants (src/constants.py)

POS_PER_QUARTER = 12
VELOCITY_BINS = np.linspace(0, 128, 32 + 1, dtype=int)
DURATION_BINS = np.sort(np.concatenate([
    np.arange(1, 13),
    np.arange(12, 24, 3)[1:],
    np.arange(13, 24, 4)[1:],
    np.arange(24, 48, 6),
    np.arange(48, 4 * 48, 12),
    np.arange(4 * 48, 16 * 48 + 1, 24),
]))
TEMPO_BINS = np.linspace(0, 240, 32 + 1, dtype=int)
NOTE_DENSITY_BINS = np.linspace(0, 12, 32 + 1)
MEAN_VELOCITY_BINS = np.linspace(0, 128, 32 + 1)
MEAN_PITCH_BINS = np.linspace(0, 128, 32 + 1)
MEAN_DURATION_BINS = np.logspace(0, 7, 32 + 1, base=2)
TEMPO_EXPANSION_STEP = 480  # official DEFAULT_RESOLUTION, used as the tempo expansion step
MAX_BAR_LENGTH = 3
MAX_N_BARS = 512

PAD, UNK, BOS, EOS, MASK = "<pad>", "<unk>", "<bos>", "<eos>", "<mask>"
SPECIALS = (PAD, UNK, BOS, EOS, MASK)

TIME_SIGNATURE_KEY = "Time Signature"
BAR_KEY = "Bar"
POSITION_KEY = "Position"
INSTRUMENT_KEY = "Instrument"
PITCH_KEY = "Pitch"
VELOCITY_KEY = "Velocity"
DURATION_KEY = "Duration"
TEMPO_KEY = "Tempo"
CHORD_KEY = "Chord"
NOTE_DENSITY_KEY = "Note Density"
MEAN_PITCH_KEY = "Mean Pitch"
MEAN_VELOCITY_KEY = "Mean Velocity"
MEAN_DURATION_KEY = "Mean Duration"

#: Seq2SeqModule: max_positions; files whose largest position id exceeds it are skipped
MAX_POSITIONS = 512


# ---------------------------------------------------------------------------------------------
# vocabularies (src/vocab.py)


def _instrument_tokens() -> list[str]:
    import pretty_midi

    return ([f"{INSTRUMENT_KEY}_{pretty_midi.program_to_instrument_name(i)}" for i in range(128)]
            + [f"{INSTRUMENT_KEY}_drum"])


def _chord_tokens() -> list[str]:
    roots = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    qualities = ["maj", "min", "dim", "aug", "dom7", "maj7", "min7", "None"]
    return [f"{CHORD_KEY}_{r}:{q}" for r in roots for q in qualities] + [f"{CHORD_KEY}_N:N"]


def _time_signature_tokens() -> list[str]:
    return [f"{TIME_SIGNATURE_KEY}_{p}/{q}" for q in (2, 4, 8, 16)
            for p in range(1, MAX_BAR_LENGTH * q + 1)]


class Vocab:
    """Token ↔ id map with torchtext's order and unknown-token behaviour."""

    def __init__(self, tokens: list[str]):
        ordered = list(dict.fromkeys(t for t in tokens if t not in SPECIALS))
        self.itos = list(SPECIALS) + ordered
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.unk_id = self.stoi[UNK]

    def __len__(self) -> int:
        return len(self.itos)

    def to_i(self, token: str) -> int:
        return self.stoi[token]

    def encode(self, tokens) -> list[int]:
        return [self.stoi.get(t, self.unk_id) for t in tokens]

    def decode(self, ids) -> list[str]:
        return [self.itos[int(i)] if 0 <= int(i) < len(self.itos) else UNK for i in ids]


def _remi_tokens() -> list[str]:
    return (_time_signature_tokens()
            + [f"{TEMPO_KEY}_{i}" for i in range(len(TEMPO_BINS))]
            + _instrument_tokens()
            + [f"{PITCH_KEY}_{i}" for i in range(128)]
            + [f"{PITCH_KEY}_drum_{i}" for i in range(128)]
            + [f"{VELOCITY_KEY}_{i}" for i in range(len(VELOCITY_BINS))]
            + [f"{DURATION_KEY}_{i}" for i in range(len(DURATION_BINS))]
            + [f"{BAR_KEY}_{i}" for i in range(MAX_N_BARS)]
            + [f"{POSITION_KEY}_{i}" for i in range(MAX_BAR_LENGTH * 4 * POS_PER_QUARTER)]
            + _chord_tokens())


def _description_tokens() -> list[str]:
    return (_time_signature_tokens()
            + _instrument_tokens()
            + _chord_tokens()
            + [f"{NOTE_DENSITY_KEY}_{i}" for i in range(len(NOTE_DENSITY_BINS))]
            + [f"{MEAN_VELOCITY_KEY}_{i}" for i in range(len(MEAN_VELOCITY_BINS))]
            + [f"{MEAN_PITCH_KEY}_{i}" for i in range(len(MEAN_PITCH_BINS))]
            + [f"{MEAN_DURATION_KEY}_{i}" for i in range(len(MEAN_DURATION_BINS))]
            + [f"{BAR_KEY}_{i}" for i in range(MAX_N_BARS)])


_VOCABS: dict[str, Vocab] = {}


def remi_vocab() -> Vocab:
    if "remi" not in _VOCABS:
        _VOCABS["remi"] = Vocab(_remi_tokens())
    return _VOCABS["remi"]


def description_vocab() -> Vocab:
    if "desc" not in _VOCABS:
        _VOCABS["desc"] = Vocab(_description_tokens())
    return _VOCABS["desc"]


# ---------------------------------------------------------------------------------------------
# chord recognition (src/chord_recognition.py, a port of the REMI chord recogniser)

_PITCH_CLASSES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
_CHORD_MAPS = {"maj": [0, 4], "min": [0, 3], "dim": [0, 3, 6], "aug": [0, 4, 8],
               "dom7": [0, 4, 10], "maj7": [0, 4, 11], "min7": [0, 3, 10]}
_CHORD_INSIDERS = {"maj": [7], "min": [7], "dim": [9], "aug": [], "dom7": [7], "maj7": [7],
                   "min7": [7]}
_CHORD_OUTSIDERS_1 = {"maj": [2, 5, 9], "min": [2, 5, 8], "dim": [2, 5, 10], "aug": [2, 5, 9],
                      "dom7": [2, 5, 9], "maj7": [2, 5, 9], "min7": [2, 5, 8]}
_CHORD_OUTSIDERS_2 = {"maj": [1, 3, 6, 8, 10, 11], "min": [1, 4, 6, 9, 11],
                      "dim": [1, 4, 7, 8, 11], "aug": [1, 3, 6, 7, 10],
                      "dom7": [1, 3, 6, 8, 11], "maj7": [1, 3, 6, 8, 10],
                      "min7": [1, 4, 6, 9, 11]}


def _chord_candidates(chroma_bits: np.ndarray) -> dict:
    out = {}
    for root in range(len(chroma_bits)):
        if chroma_bits[root]:
            out[root] = list(np.where(np.roll(chroma_bits, -root) == 1)[0])
    return out


def _score_candidates(candidates: dict) -> tuple[dict, dict]:
    scores, qualities = {}, {}
    for root, seq in candidates.items():
        if (3 not in seq and 4 not in seq) or (3 in seq and 4 in seq):
            scores[root], qualities[root] = -100, "None"
            continue
        if 3 in seq:
            quality = "dim" if 6 in seq else ("min7" if 10 in seq else "min")
        else:
            quality = "aug" if 8 in seq else ("dom7" if 10 in seq else
                                              ("maj7" if 11 in seq else "maj"))
        score = 0
        for n in (n for n in seq if n not in _CHORD_MAPS[quality]):
            if n in _CHORD_OUTSIDERS_1[quality]:
                score -= 1
            elif n in _CHORD_OUTSIDERS_2[quality]:
                score -= 2
            elif n in _CHORD_INSIDERS[quality]:
                score += 10
        scores[root], qualities[root] = score, quality
    return scores, qualities


def _find_chord(chroma: np.ndarray, threshold: float = 10):
    bits = np.array([1 if c > threshold else 0 for c in np.sum(chroma, axis=1)])
    if np.sum(bits) == 0:
        return "N", "N", "N", 10
    candidates = _chord_candidates(bits)
    scores, qualities = _score_candidates(candidates)
    present = [int(i % 12) for i, v in enumerate(bits) if v > 0]
    bass = present[0]
    best = max(scores.values())
    tops = [r for r, s in scores.items() if s == best]
    if len(tops) == 1:
        root = tops[0]
    else:
        root = next(n for n in present if n in tops)
    return _PITCH_CLASSES[root], qualities[root], _PITCH_CLASSES[bass], scores[root]


def extract_chords(pm) -> list[list]:
    """[start_seconds, end_seconds, 'root:quality[/bass]'] by dynamic programming over beats."""
    beats = pm.get_beats()
    chroma = pm.get_chroma(times=beats)
    max_tick = len(beats)
    candidates: dict = {}
    for interval in (1, 2, 3, 4):
        for start in range(max_tick):
            end = min(start + interval, max_tick)
            found = _find_chord(chroma[:, start:end])
            candidates.setdefault(start, {})
            if end not in candidates[start]:
                candidates[start][end] = found
    best = [None] * (max_tick + 1)
    scores = np.zeros(max_tick + 1)
    scores[1:] = -np.inf
    for start in range(max_tick):
        for end, (root, quality, bass, score) in candidates.get(start, {}).items():
            if scores[end] < scores[start] + score:
                scores[end] = scores[start] + score
                name = f"{root}:{quality}" if root == bass else f"{root}:{quality}/{bass}"
                best[end] = (start, end, name)
    path = []
    t = len(best) - 1
    while t > 0:
        chord = best[t]
        t = chord[0]
        path.append(chord)
    path = list(reversed(path))
    deduped: list[list] = []
    if path:
        start, end, name = path[0]
        for nxt in path[1:]:
            if name == nxt[2]:
                end = nxt[1]
            else:
                deduped.append([start, end, name])
                start, end, name = nxt
        deduped.append([start, end, name])
    for chord in deduped:
        chord[0] = beats[chord[0]]
        chord[1] = pm.get_end_time() if chord[1] >= len(beats) else beats[chord[1]]
    return deduped


# ---------------------------------------------------------------------------------------------
# input representation (src/input_representation.py)


@dataclass
class _Item:
    name: str
    start: int
    end: int | None
    velocity: int | None = None
    pitch: object = None
    instrument: object = None


class InvalidMidi(ValueError):
    """The file fails FIGARO's strict parsing (no time signature, no notes, bad bars)."""


class Representation:
    """A parsed MIDI file, grouped into bars, as FIGARO's ``InputRepresentation(strict=True)``."""

    def __init__(self, pm):
        self.pm = pm
        if len(pm.time_signature_changes) == 0:
            raise InvalidMidi("no time signature defined")
        self.resolution = pm.resolution
        self._read_items()
        self._quantize()
        self._extract_chords()
        self._group()
        if len(self.notes) == 0:
            raise InvalidMidi("no notes found")

    def _read_items(self) -> None:
        pm = self.pm
        self.notes: list[_Item] = []
        for inst in pm.instruments:
            pedals = []
            pressed, start = False, None
            for e in (c for c in inst.control_changes if c.number == 64):
                if e.value >= 64 and not pressed:
                    pressed, start = True, e.time
                elif e.value < 64 and pressed:
                    pressed = False
                    pedals.append(_Item("Pedal", start, e.time))
                    start = e.time
            notes = inst.notes
            notes.sort(key=lambda n: (n.start, n.pitch))
            name = "drum" if inst.is_drum else inst.program
            pedal_idx = 0
            for note in notes:
                cands = [(i + pedal_idx, p) for i, p in enumerate(pedals[pedal_idx:])
                         if note.end >= p.start and note.start < p.end]
                if cands:
                    pedal_idx = cands[0][0]
                    pedal = cands[-1][1]
                else:
                    pedal = _Item("Pedal", 0, 0)
                self.notes.append(_Item("Note", pm.time_to_tick(note.start),
                                        pm.time_to_tick(max(note.end, pedal.end)),
                                        note.velocity, note.pitch, name))
        self.notes.sort(key=lambda x: (x.start, x.pitch))
        times, tempi = pm.get_tempo_changes()
        items = sorted((_Item("Tempo", t, None, None, int(q)) for t, q in zip(times, tempi)),
                       key=lambda x: x.start)
        # official quirk: keyed by seconds, probed with ticks
        existing = {it.start: it.pitch for it in items}
        max_tick = pm.time_to_tick(pm.get_end_time())
        self.tempi: list[_Item] = []
        for tick in np.arange(0, max_tick + 1, TEMPO_EXPANSION_STEP):
            value = existing[tick] if tick in existing else self.tempi[-1].pitch
            self.tempi.append(_Item("Tempo", pm.time_to_tick(tick), None, None, value))

    def _quantize(self) -> None:
        step = self.resolution / POS_PER_QUARTER
        end_tick = self.pm.time_to_tick(self.pm.get_end_time())
        grid = np.arange(0, max(self.resolution, end_tick), step)
        for it in self.notes:
            idx = np.searchsorted(grid, it.start, side="right")
            if idx > 0:
                idx -= 1
            shift = round(grid[idx]) - it.start
            it.start += shift
            it.end += shift

    def _extract_chords(self) -> None:
        pm = self.pm
        end_tick = pm.time_to_tick(pm.get_end_time())
        if end_tick < self.resolution:
            self.chords: list[_Item] = []
            return
        out = [_Item("Chord", pm.time_to_tick(s), pm.time_to_tick(e), None, name.split("/")[0])
               for s, e, name in extract_chords(pm)]
        if not out or out[0].start > 0:
            end = end_tick if not out else out[0].start
            out.append(_Item("Chord", 0, end, None, "N:N"))
        self.chords = out

    def _group(self) -> None:
        pm = self.pm
        items = (self.chords + self.tempi + self.notes) if self.chords else (self.tempi + self.notes)
        priority = {"Chord": 0, "Tempo": 1, "Note": 2}
        items.sort(key=lambda it: (it.start, priority[it.name],
                                   -1 if it.instrument == "drum" else it.instrument, it.pitch))
        downbeats = np.concatenate([pm.get_downbeats(), [pm.get_end_time()]])
        groups = []
        for d1, d2 in zip(downbeats[:-1], downbeats[1:]):
            t1, t2 = pm.time_to_tick(d1), pm.time_to_tick(d2)
            groups.append([t1] + [it for it in items if t1 <= it.start < t2] + [t2])
        for idx in (0, -1):
            while groups and not any(it.name == "Note" for it in groups[idx][1:-1]):
                groups.pop(idx)
        self.groups = groups

    def _time_signature(self, start):
        changes = self.pm.time_signature_changes
        for cur, nxt in zip(changes[:-1], changes[1:]):
            if self.pm.time_to_tick(cur.time) <= start < self.pm.time_to_tick(nxt.time):
                return cur
        return changes[-1]

    @staticmethod
    def _positions_per_bar(ts) -> int:
        return int(POS_PER_QUARTER * 4 * ts.numerator / ts.denominator)

    def remi_events(self) -> list[str]:
        import pretty_midi

        ev: list[str] = []
        chord = tempo = None
        for n, group in enumerate(self.groups, start=1):
            bar_st = group[0]
            ts = self._time_signature(bar_st)
            ppb = self._positions_per_bar(ts)
            if ppb <= 0:
                raise InvalidMidi("there must be at least 1 position per bar")
            ev.append(f"{BAR_KEY}_{n}")
            ev.append(f"{TIME_SIGNATURE_KEY}_{ts.numerator}/{ts.denominator}")
            if chord is not None:
                ev += [f"{POSITION_KEY}_0", f"{CHORD_KEY}_{chord.pitch}"]
            if tempo is not None:
                ev += [f"{POSITION_KEY}_0",
                       f"{TEMPO_KEY}_{np.argmin(abs(TEMPO_BINS - tempo.pitch))}"]
            ticks_per_bar = self.pm.resolution * 4 * ts.numerator / ts.denominator
            flags = np.linspace(bar_st, bar_st + ticks_per_bar, ppb, endpoint=False)
            for it in group[1:-1]:
                pos = f"{POSITION_KEY}_{np.argmin(abs(flags - it.start))}"
                if it.name == "Note":
                    name = ("drum" if it.instrument == "drum"
                            else pretty_midi.program_to_instrument_name(it.instrument))
                    pitch = f"drum_{it.pitch}" if name == "drum" else it.pitch
                    dur = round((it.end - it.start) / self.pm.resolution * POS_PER_QUARTER)
                    ev += [pos, f"{INSTRUMENT_KEY}_{name}", f"{PITCH_KEY}_{pitch}",
                           f"{VELOCITY_KEY}_{np.argmin(abs(VELOCITY_BINS - it.velocity))}",
                           f"{DURATION_KEY}_{np.argmin(abs(DURATION_BINS - dur))}"]
                elif it.name == "Chord":
                    if chord is None or it.pitch != chord.pitch:
                        ev += [pos, f"{CHORD_KEY}_{it.pitch}"]
                        chord = it
                elif it.name == "Tempo":
                    if tempo is None or it.pitch != tempo.pitch:
                        ev += [pos, f"{TEMPO_KEY}_{np.argmin(abs(TEMPO_BINS - it.pitch))}"]
                        tempo = it
        return ev

    def description(self) -> list[str]:
        import pretty_midi

        ev: list[str] = []
        chord = None
        for n, group in enumerate(self.groups, start=1):
            bar_st = group[0]
            ts = self._time_signature(bar_st)
            ppb = self._positions_per_bar(ts)
            if ppb <= 0:
                raise InvalidMidi("there must be at least 1 position in each bar")
            ev.append(f"{BAR_KEY}_{n}")
            ev.append(f"{TIME_SIGNATURE_KEY}_{ts.numerator}/{ts.denominator}")
            notes = [it for it in group[1:-1] if it.name == "Note"]
            vel = np.array([it.velocity for it in notes])
            pit = np.array([it.pitch for it in notes])
            dur = np.array([it.end - it.start for it in notes])
            with np.errstate(invalid="ignore"):
                mean_v = vel.mean() if len(vel) else np.nan
                mean_p = pit.mean() if len(pit) else np.nan
                mean_d = dur.mean() if len(dur) else np.nan
            ev.append(f"{NOTE_DENSITY_KEY}_{np.argmin(abs(NOTE_DENSITY_BINS - len(notes) / ppb))}")
            # official quirk: a NaN mean (empty bar) gives bin 0, as np.argmin over NaNs does
            ev.append(f"{MEAN_VELOCITY_KEY}_{np.argmin(abs(MEAN_VELOCITY_BINS - mean_v))}")
            ev.append(f"{MEAN_PITCH_KEY}_{np.argmin(abs(MEAN_PITCH_BINS - mean_p))}")
            ev.append(f"{MEAN_DURATION_KEY}_{np.argmin(abs(MEAN_DURATION_BINS - mean_d))}")
            # official: iteration order of a Python set of the bar's instruments. For program
            # numbers that order is deterministic; 'drum' (a str) lands where its per-process
            # string hash puts it, so we put it last to stay reproducible.
            programs = set(it.instrument for it in notes if it.instrument != "drum")
            names = [pretty_midi.program_to_instrument_name(p) for p in programs]
            if any(it.instrument == "drum" for it in notes):
                names.append("drum")
            ev += [f"{INSTRUMENT_KEY}_{name}" for name in names]
            chords = [it for it in group[1:-1] if it.name == "Chord"]
            if not chords and chord is not None:
                chords = [chord]
            elif chords:
                if chords[0].start > bar_st and chord is not None:
                    chords.insert(0, chord)
                chord = chords[-1]
            ev += [f"{CHORD_KEY}_{c.pitch}" for c in chords]
        return ev


def filter_description(desc: list[str], instruments=True, chords=True, meta=True) -> list[str]:
    """``MidiDataset.preprocess_description`` for the ablation flavours (figaro-no-inst, ...)."""
    keep = {BAR_KEY: True, INSTRUMENT_KEY: instruments, CHORD_KEY: chords,
            TIME_SIGNATURE_KEY: meta, NOTE_DENSITY_KEY: meta, MEAN_PITCH_KEY: meta,
            MEAN_VELOCITY_KEY: meta, MEAN_DURATION_KEY: meta}
    return [t for t in desc if keep[t.split("_")[0]]]


# ---------------------------------------------------------------------------------------------
# per-file encoding and the training filters (src/datasets.py MidiDataset)


@dataclass
class Encoded:
    """One file as FIGARO's dataset sees it (before <bos>/<eos>)."""

    events: list[str]
    description: list[str]
    event_ids: np.ndarray
    bar_ids: np.ndarray
    position_ids: np.ndarray
    n_bars: int
    max_position: int
    meta: dict = field(default_factory=dict)


def encode_midi(path_or_pm) -> Encoded:
    """Parse with pretty_midi and build REMI events + description. Raises InvalidMidi for files
    FIGARO's loader would skip (``load_file`` turns every parse error into a skip)."""
    import pretty_midi
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm = path_or_pm if isinstance(path_or_pm, pretty_midi.PrettyMIDI) \
                else pretty_midi.PrettyMIDI(str(path_or_pm))
            rep = Representation(pm)
            events = rep.remi_events()
            desc = rep.description()
    except InvalidMidi:
        raise
    except Exception as exc:  # official: any exception → "Unable to load file" → skipped
        raise InvalidMidi(f"cannot parse: {exc!r}") from exc
    if not events:
        raise InvalidMidi("no bars with notes")
    vocab = remi_vocab()
    ids = np.asarray(vocab.encode(events), dtype=np.int64)
    bars = [i for i, e in enumerate(events) if f"{BAR_KEY}_" in e]
    bar_ids = np.cumsum(np.bincount(np.asarray(bars, dtype=np.int64), minlength=len(events)))
    positions = []
    last = 0
    for e in events:
        if f"{BAR_KEY}_" in e:
            last = 0
        elif f"{POSITION_KEY}_" in e:
            last = int(e.split("_")[-1])
        positions.append(last)
    pos = np.asarray(positions, dtype=np.int64)
    return Encoded(events, desc, ids, bar_ids.astype(np.int64), pos, len(bars),
                   int(pos.max()) if len(pos) else 0)


def filter_reason(enc: Encoded, max_bars: int, max_positions: int = MAX_POSITIONS) -> str | None:
    """Why FIGARO's training iterator would skip this file (None: it is used)."""
    if enc.n_bars > max_bars:
        return f"{enc.n_bars} bars > max_bars {max_bars}"
    if enc.max_position > max_positions:
        return f"position {enc.max_position} > max_positions {max_positions}"
    return None


@dataclass
class Window:
    """One training example: ``context+1`` tokens, cut as ``MidiDataset.__iter__`` does."""

    start: int                   # index into the <bos>+events+<eos> sequence
    ids: np.ndarray              # [<= context+1]
    bar_ids: np.ndarray
    position_ids: np.ndarray
    description: np.ndarray | None = None
    desc_bar_ids: np.ndarray | None = None


def windows(enc: Encoded, context: int, max_windows: int | None = None,
            description: list[str] | None = None) -> list[Window]:
    """Non-overlapping ``context+1`` windows, the last aligned to the end of the sequence."""
    vocab = remi_vocab()
    ids = np.concatenate([[vocab.to_i(BOS)], enc.event_ids, [vocab.to_i(EOS)]]).astype(np.int64)
    bar_ids = np.concatenate([[0], enc.bar_ids, [0]]).astype(np.int64)
    pos = np.concatenate([[0], enc.position_ids, [0]]).astype(np.int64)
    n = context + 1
    starts = list(range(0, len(ids), n))
    if len(starts) > 1:
        spans = [(s, s + n) for s in starts[:-1]] + [(len(ids) - n, len(ids))]
    else:
        spans = [(0, n)]
    if max_windows is not None and max_windows > 0:
        spans = spans[:max_windows]
    desc = enc.description if description is None else description
    dvocab = description_vocab()
    desc_bars = [i for i, e in enumerate(desc) if f"{BAR_KEY}_" in e]
    flags = np.zeros(len(desc), dtype=np.int64)
    flags[desc_bars] = 1
    desc_bar_ids_all = np.cumsum(flags)
    desc_ids_all = np.asarray(dvocab.encode(desc), dtype=np.int64)
    out = []
    for s, e in spans:
        w = Window(s, ids[s:e][:n], bar_ids[s:e][:n], pos[s:e][:n])
        min_bar = int(w.bar_ids[0])
        start_idx = desc_bars[max(0, min_bar - 1)]
        if min_bar == 0:
            d = np.concatenate([[dvocab.to_i(BOS)], desc_ids_all, [dvocab.to_i(EOS)]])
            db = np.concatenate([[0], desc_bar_ids_all, [0]])
        else:
            d = np.concatenate([desc_ids_all, [dvocab.to_i(EOS)]])
            db = np.concatenate([desc_bar_ids_all, [0]])
        w.description = d[start_idx:start_idx + n].astype(np.int64)
        w.desc_bar_ids = db[start_idx:start_idx + n].astype(np.int64)
        out.append(w)
    return out


def bar_token_groups(enc: Encoded) -> list[np.ndarray]:
    """Token ids of each bar (from its Bar_ token to the next), the VQ-VAE's per-bar inputs.
    Official quirk: the Bar_ tokens are *not* masked (``mask_bar_tokens``' result is dropped)."""
    bars = [i for i, e in enumerate(enc.events) if f"{BAR_KEY}_" in e]
    groups = [enc.event_ids[a:b] for a, b in zip(bars[:-1], bars[1:])]
    groups.append(enc.event_ids[bars[-1]:])
    return groups
