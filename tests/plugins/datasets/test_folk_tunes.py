"""folk-tunes: real renders through abc2midi + fluidsynth at small sizes, the split procedure,
the cache, caption building and the errors a user on a fresh machine would meet."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.errors import ConfigError, DataError
from plugins.datasets import _folk_render as fr
from plugins.datasets import folk_tunes
from plugins.datasets.folk_tunes import FolkTunes

SMALL = {"n_members": 4, "n_nonmembers": 4, "seconds": 2.0}


def _sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.mktemp("folk-cache")))
    ds = FolkTunes(**SMALL)
    ds.prepare()
    yield ds
    mp.undo()


def test_renders_exact_length_mono_16k(small):
    for split in small.splits():
        samples = small.samples(split)
        assert len(samples) == 4
        for s in samples:
            info = sf.info(s.path)
            assert (info.samplerate, info.channels, info.frames) == (16000, 1, 32000)
            y, _ = sf.read(s.path)
            assert np.sqrt(np.mean(y ** 2)) > 1e-3
            assert s.path.endswith(".wav")


def test_captions_name_the_instrument_and_headers(small):
    for split in small.splits():
        for s in small.samples(split):
            md = s.metadata
            assert s.caption and md["instrument"] in s.caption
            assert md["program"] in folk_tunes.DEFAULT_INSTRUMENTS
            assert md["split"] == split
            if md["key"]:
                assert f"in {md['key']}" in s.caption
            if md["meter"]:
                assert f"{md['meter']} time" in s.caption


def test_splits_disjoint_and_deterministic(small, tmp_path, monkeypatch):
    ids = {sp: [s.id for s in small.samples(sp)] for sp in small.splits()}
    assert not set(ids["members"]) & set(ids["nonmembers"])
    # A second run on an empty cache gives the same ids, captions and bit-identical audio.
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    again = FolkTunes(**SMALL)
    assert again.root() != small.root()
    again.prepare()
    for sp in small.splits():
        a, b = small.samples(sp), again.samples(sp)
        assert [s.id for s in b] == ids[sp]
        assert [s.caption for s in b] == [s.caption for s in a]
        assert [_sha(s.path) for s in b] == [_sha(s.path) for s in a]


def test_second_prepare_is_a_noop(small, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("rendered again")

    monkeypatch.setattr(fr, "render_set", boom)
    FolkTunes(**SMALL).prepare()
    assert len(FolkTunes(**SMALL).samples("members")) == 4


def test_split_does_not_depend_on_rendering(small, monkeypatch):
    """Same (seed, collection, n_members, n_nonmembers) → same tunes, whatever seconds or kind."""
    ids = {sp: [s.id for s in small.samples(sp)] for sp in small.splits()}
    other = FolkTunes(**{**SMALL, "seconds": 1.0, "sample_rate": 8000})
    assert {sp: [s.id for s in other.samples(sp)] for sp in other.splits()} == ids
    assert sf.info(other.samples("members")[0].path).frames == 8000


def test_kind_midi_writes_program_set_midi(small):
    import symusic

    ds = FolkTunes(**SMALL, kind="midi")
    ds.prepare()
    audio = {s.id: s for s in small.samples("members")}
    for s in ds.samples("members"):
        assert s.path.endswith(".mid")
        score = symusic.Score(s.path)
        assert score.note_num() > 0
        assert {t.program for t in score.tracks} == {s.metadata["program"]}
        assert s.caption == audio[s.id].caption


def test_bad_split_lists_splits(small):
    with pytest.raises(DataError, match="members, nonmembers"):
        small.samples("train")


def test_choose_split_procedure(small):
    pool_path, pool = fr.load_pool(["oneills1850"])
    mem, non = fr.choose_split(pool, 0, 4, 4)
    assert [e["id"] for e in mem[:4]] == [s.id for s in small.samples("members")]
    # dedup by interval sequence: no melody on both sides, none twice
    hashes = [e["interval_hash"] for e in mem + non]
    assert len(hashes) == len(set(hashes))
    # prefix property and seed dependence
    mem10, _ = fr.choose_split(pool, 0, 10, 10)
    assert [e["id"] for e in mem10[:4]] == [e["id"] for e in mem[:4]]
    mem_s1, _ = fr.choose_split(pool, 1, 4, 4)
    assert [e["id"] for e in mem_s1[:4]] != [e["id"] for e in mem[:4]]
    with pytest.raises(ConfigError, match="eligible distinct tunes"):
        fr.choose_split(pool, 0, 5000, 4)


def test_silent_tune_replaced_from_its_own_side(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    _, pool = fr.load_pool(["oneills1850"])
    mem, _ = fr.choose_split(pool, 0, 2, 2)
    silent_id = mem[0]["id"]
    real = fr.render_audio

    def fake(src, dst, *a, **k):
        return 0.0 if Path(dst).stem == silent_id else real(src, dst, *a, **k)

    monkeypatch.setattr(fr, "render_audio", fake)
    ds = FolkTunes(n_members=2, n_nonmembers=2, seconds=0.5)
    with pytest.warns(UserWarning, match="renders silent"):
        ds.prepare()
    ids = [s.id for s in ds.samples("members")]
    assert ids == [mem[2]["id"], mem[1]["id"]]
    assert ds.manifest()["replaced"] == [{"split": "members", "silent": silent_id,
                                          "by": mem[2]["id"]}]
    assert not list((ds.root() / "members").glob(f"{silent_id}*"))


def test_missing_binaries_name_the_apt_package(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # neither abc2midi nor fluidsynth on PATH
    with pytest.raises(DataError, match="apt-get install abcmidi"):
        FolkTunes(**SMALL).prepare()
    real_which = fr.shutil.which
    monkeypatch.setenv("PATH", os.defpath + os.pathsep + "/usr/bin")
    monkeypatch.setattr(fr.shutil, "which",
                        lambda name, *a, **k: None if name == "fluidsynth" else real_which(name))
    with pytest.raises(DataError, match="apt-get install fluidsynth"):
        FolkTunes(**SMALL).prepare()
    # the symbolic kind needs no synthesizer
    FolkTunes(**SMALL, kind="midi").root()


def test_bad_params_are_refused():
    with pytest.raises(ConfigError, match="n_member"):
        FolkTunes(n_member=3)
    with pytest.raises(ConfigError, match="unknown collection"):
        FolkTunes(collection="nottingham")
    with pytest.raises(ConfigError, match="kind"):
        FolkTunes(kind="wav")
    with pytest.raises(ConfigError, match="instruments"):
        FolkTunes(instruments=[200])
    with pytest.raises(ConfigError, match="n_members"):
        FolkTunes(n_members=0)


def test_header_parsing_and_captions():
    assert fr.describe_key("Gm") == "G minor"
    assert fr.describe_key(" Bb") == "B flat major"
    assert fr.describe_key("ADor") == "A dorian"
    assert fr.describe_key("F#m") == "F sharp minor"
    assert fr.describe_key("none") == ""
    assert fr.describe_meter("C|") == "2/2" and fr.describe_meter("C") == "4/4"
    assert fr.describe_meter(" 6/8") == "6/8"
    assert fr.describe_rhythm("slipjig") == "slip jig"
    assert fr.describe_rhythm("Double Jig") == "double jig"
    assert fr.describe_rhythm("Liebes - Lied") == ""
    assert fr.clean_title("Acacia -- Reel") == "Acacia"
    entry = {"rhythm": "air", "key": "G major", "meter": "6/8", "title": "The Lark"}
    assert fr.caption(entry, "pan flute", True) == \
        'an air in G major, 6/8 time, played on pan flute ("The Lark")'
    assert fr.caption({**entry, "rhythm": ""}, "harp", False) == \
        "a tune in G major, 6/8 time, played on harp"


def test_split_abc_keeps_tunes_with_repeated_reference_numbers():
    pre, tunes = fr.split_abc("%% preamble\nX:1\nT:A\nK:G\nGAB|\nX:1\nT:B\nM:C\nK:D\nDEF|\n")
    assert pre == "%% preamble"
    assert len(tunes) == 2
    assert fr.header_fields(tunes[1]) == {"X": "1", "T": "B", "M": "C", "K": "D"}


def test_registered_and_resolvable(small):
    from harness import datasets, plugins

    plugins.load_plugins()
    assert plugins.get("dataset", "folk-tunes").factory == "plugins.datasets.folk_tunes:FolkTunes"
    got = datasets.resolve({"source": "folk-tunes", "split": "nonmembers", "params": SMALL})
    assert [s.id for s in got] == [s.id for s in small.samples("nonmembers")]


def test_concurrent_prepare_renders_once(tmp_path, monkeypatch):
    import threading

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    calls = []
    real = fr.render_set

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(fr, "render_set", counting)
    params = {"n_members": 1, "n_nonmembers": 1, "kind": "midi"}
    threads = [threading.Thread(target=FolkTunes(**params).prepare) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(FolkTunes(**params).samples("members")) == 1


def test_soundfont_falls_back_to_pretty_midi_copy(monkeypatch, tmp_path):
    monkeypatch.setattr(fr, "SYSTEM_SOUNDFONT", str(tmp_path / "absent.sf2"))
    sf2 = fr.find_soundfont()
    assert sf2.name == "TimGM6mb.sf2" and sf2.parent.name == "pretty_midi"
    monkeypatch.setattr(fr.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="apt-get install timgm6mb-soundfont"):
        fr.find_soundfont()
    with pytest.raises(DataError, match="does not exist"):
        fr.find_soundfont(str(tmp_path / "mine.sf2"))
