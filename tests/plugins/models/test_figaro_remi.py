"""FIGARO's input representation: vocabularies, REMI events, description, filters, windows."""

from __future__ import annotations

import numpy as np
import pytest

from plugins.models import _figaro_remi as remi


def midi(path, notes, ts=(4, 4), tempo=120.0, program=0, drum_notes=()):
    """notes: (pitch, start_beat, length_beats, velocity) at ``tempo`` bpm."""
    import pretty_midi

    spb = 60.0 / tempo
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(ts[0], ts[1], 0))
    inst = pretty_midi.Instrument(program)
    for p, s, d, v in notes:
        inst.notes.append(pretty_midi.Note(v, p, s * spb, (s + d) * spb))
    pm.instruments.append(inst)
    if drum_notes:
        drums = pretty_midi.Instrument(0, is_drum=True)
        for p, s, d, v in drum_notes:
            drums.notes.append(pretty_midi.Note(v, p, s * spb, (s + d) * spb))
        pm.instruments.append(drums)
    pm.write(str(path))
    return str(path)


def test_vocab_order_matches_official_construction():
    v = remi.remi_vocab()
    assert v.itos[:5] == ["<pad>", "<unk>", "<bos>", "<eos>", "<mask>"]
    # time signatures (q in 2,4,8,16; p in 1..3q) come first: 6 + 12 + 24 + 48 = 90
    assert v.itos[5] == "Time Signature_1/2" and v.itos[5 + 89] == "Time Signature_48/16"
    assert v.to_i("Tempo_0") == 95 and v.to_i("Tempo_32") == 127
    assert v.to_i("Instrument_Acoustic Grand Piano") == 128
    assert v.to_i("Instrument_drum") == 128 + 128
    assert v.to_i("Pitch_0") == 257 and v.to_i("Pitch_drum_0") == 257 + 128
    n_dur = len(remi.DURATION_BINS)
    assert v.to_i("Velocity_0") == 513 and v.to_i(f"Duration_{n_dur - 1}") == 546 + n_dur - 1
    assert v.to_i("Bar_0") == 546 + n_dur and v.to_i("Position_0") == 546 + n_dur + 512
    assert v.itos[-1] == "Chord_N:N" and v.itos[-2] == "Chord_B:None"
    assert len(v) == 5 + 90 + 33 + 129 + 256 + 33 + n_dur + 512 + 144 + 97
    assert v.encode(["Bar_9999"]) == [v.to_i("<unk>")]  # torchtext default index
    d = remi.description_vocab()
    assert d.itos[5] == "Time Signature_1/2" and d.itos[95] == "Instrument_Acoustic Grand Piano"
    assert d.itos[-1] == "Bar_511" and len(d) == 5 + 90 + 129 + 97 + 4 * 33 + 512


def test_duration_bins_are_the_official_grid():
    # 1..12, 16ths (15, 18, 21), triplets (17, 21), 8ths from 24, quarters from 48, halves
    assert list(remi.DURATION_BINS[:18]) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 17, 18,
                                             21, 21, 24]
    assert remi.DURATION_BINS[-1] == 768 and len(remi.DURATION_BINS) == 12 + 3 + 2 + 4 + 12 + 25


def test_remi_events_of_a_small_midi(tmp_path):
    # bar 1: C4 quarter at beat 0 (vel 100), E4 eighth at beat 1 (vel 64); bar 2: G4 half at beat 4
    path = midi(tmp_path / "a.mid", [(60, 0, 1, 100), (64, 1, 0.5, 64), (67, 4, 2, 80)])
    enc = remi.encode_midi(path)
    ev = enc.events
    assert ev[0] == "Bar_1" and ev[1] == "Time Signature_4/4"
    assert ev[2] == "Position_0" and ev[3].startswith("Chord_")
    assert ev[4:6] == ["Position_0", "Tempo_16"]  # 120 bpm → bin 16 of linspace(0, 240, 33)
    q = int(np.argmin(abs(remi.DURATION_BINS - 12)))   # a quarter is 12 positions
    e = int(np.argmin(abs(remi.DURATION_BINS - 6)))    # an eighth is 6
    h = int(np.argmin(abs(remi.DURATION_BINS - 24)))
    i = ev.index("Instrument_Acoustic Grand Piano")
    assert ev[i - 1:i + 4] == ["Position_0", "Instrument_Acoustic Grand Piano", "Pitch_60",
                               "Velocity_25", f"Duration_{q}"]
    j = ev.index("Pitch_64")
    assert ev[j - 2:j + 3] == ["Position_12", "Instrument_Acoustic Grand Piano", "Pitch_64",
                               "Velocity_16", f"Duration_{e}"]
    b2 = ev.index("Bar_2")
    assert ev[b2 + 1] == "Time Signature_4/4"
    # carried-over chord and tempo at the start of bar 2
    assert ev[b2 + 2] == "Position_0" and ev[b2 + 3].startswith("Chord_")
    assert ev[b2 + 4:b2 + 6] == ["Position_0", "Tempo_16"]
    k = ev.index("Pitch_67")
    assert ev[k - 2] == "Position_0" and ev[k + 1:k + 3] == ["Velocity_20", f"Duration_{h}"]
    assert enc.n_bars == 2
    # ids, bar ids, position ids as MidiDataset computes them
    v = remi.remi_vocab()
    assert enc.event_ids.tolist() == [v.to_i(t) for t in ev]
    assert enc.bar_ids[0] == 1 and enc.bar_ids[b2] == 2 and enc.bar_ids[b2 - 1] == 1
    assert enc.position_ids[j] == 12 and enc.position_ids[j + 1] == 12
    assert enc.position_ids[b2] == 0


def test_description_of_a_small_midi(tmp_path):
    path = midi(tmp_path / "a.mid", [(60, 0, 1, 100), (64, 1, 1, 100), (67, 4, 1, 60)],
                program=40, drum_notes=[(36, 0, 0.5, 90)])
    d = remi.encode_midi(path).description
    assert d[:2] == ["Bar_1", "Time Signature_4/4"]
    assert d[2] == f"Note Density_{int(np.argmin(abs(remi.NOTE_DENSITY_BINS - 3 / 48)))}"
    assert d[3] == f"Mean Velocity_{int(np.argmin(abs(remi.MEAN_VELOCITY_BINS - 290 / 3)))}"
    assert d[4] == f"Mean Pitch_{int(np.argmin(abs(remi.MEAN_PITCH_BINS - (60 + 64 + 36) / 3)))}"
    assert d[5].startswith("Mean Duration_")
    assert d[6:8] == ["Instrument_Violin", "Instrument_drum"]
    assert d[8].startswith("Chord_")
    b2 = d.index("Bar_2")
    assert "Instrument_Violin" in d[b2:] and "Instrument_drum" not in d[b2:]
    dv = remi.description_vocab()
    assert all(t in dv.stoi for t in d)


def test_strict_filters(tmp_path):
    import mido

    # pretty_midi writes a default 4/4 when none is set, so write this one with mido
    mf = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack([mido.Message("note_on", note=60, velocity=100, time=0),
                         mido.Message("note_off", note=60, velocity=0, time=480)])
    mf.tracks.append(tr)
    mf.save(str(tmp_path / "nots.mid"))
    with pytest.raises(remi.InvalidMidi, match="time signature"):
        remi.encode_midi(tmp_path / "nots.mid")
    with pytest.raises(remi.InvalidMidi):
        remi.encode_midi(midi(tmp_path / "empty.mid", []))
    with pytest.raises(remi.InvalidMidi, match="cannot parse"):
        bad = tmp_path / "bad.mid"
        bad.write_bytes(b"not a midi file")
        remi.encode_midi(bad)
    enc = remi.encode_midi(midi(tmp_path / "long.mid", [(60, 4 * b, 1, 100) for b in range(12)]))
    assert enc.n_bars == 12
    assert remi.filter_reason(enc, max_bars=12) is None
    assert "bars" in remi.filter_reason(enc, max_bars=11)


def test_windows_follow_midi_dataset(tmp_path):
    notes = [(60 + (i % 12), i, 1, 100) for i in range(4 * 20)]  # 20 bars, 4 notes each
    enc = remi.encode_midi(midi(tmp_path / "w.mid", notes))
    C = 64
    T = len(enc.events) + 2
    ws = remi.windows(enc, C)
    starts = list(range(0, T, C + 1))
    assert [w.start for w in ws] == starts[:-1] + [T - C - 1]
    v, dv = remi.remi_vocab(), remi.description_vocab()
    assert ws[0].ids[0] == v.to_i("<bos>") and ws[-1].ids[-1] == v.to_i("<eos>")
    assert all(len(w.ids) == C + 1 for w in ws)
    # first window: description starts with <bos>; later ones at the window's first bar
    assert ws[0].description[0] == dv.to_i("<bos>")
    w = ws[1]
    first_bar = int(w.bar_ids[0])
    assert first_bar > 1
    assert dv.itos[w.description[0]] == f"Bar_{first_bar}"
    assert w.desc_bar_ids[0] == first_bar
    assert len(w.description) <= C + 1
    assert len(remi.windows(enc, C, max_windows=2)) == 2
    # a short file: one window holding everything
    short = remi.windows(enc, 4096)
    assert len(short) == 1 and len(short[0].ids) == T
    assert dv.itos[short[0].description[-1]] == "<eos>"


def test_description_filter_for_ablation_flavours():
    desc = ["Bar_1", "Time Signature_4/4", "Note Density_3", "Instrument_Violin", "Chord_C:maj"]
    assert remi.filter_description(desc, instruments=False) == [
        "Bar_1", "Time Signature_4/4", "Note Density_3", "Chord_C:maj"]
    assert remi.filter_description(desc, meta=False, chords=False) == ["Bar_1",
                                                                         "Instrument_Violin"]
