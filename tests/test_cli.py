"""The ``harness`` command on the broken-input corpus of issue #15: every case exits 2 with one
line naming the problem (and the file and suite key where there is one), no traceback, and
nothing written (no results, no cache entry, no MLflow store)."""

from __future__ import annotations

import csv
import re
import textwrap
from pathlib import Path

import hostile
import pytest
from click.testing import CliRunner

from harness.cli import cli

ALL_BROKEN = {**hostile.BROKEN_AUDIO, **hostile.BROKEN_MIDI,
              "directory_named_wav": (hostile.directory_named_wav, "is a directory"),
              "symlink_loop": (hostile.symlink_loop, "symlink loop")}


def _good_clips(folder: Path, n: int, freq0: float) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return [hostile.wav(folder / f"c{i}.wav", hostile.tone(0.2, freq=freq0 + 37 * i))
            for i in range(n)]


def _suite(tmp: Path, members: dict, nonmembers: dict, extra: str = "") -> Path:
    path = tmp / "suite.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: hostile
        cache_dir: {tmp}/cache
        output_dir: {tmp}/results
        mlflow: {{tracking_uri: sqlite:///{tmp}/mlflow.db}}
        models:
          toy: {{plugin: toy-autoregressive}}
        data:
          d:
            members: {{source: local-folder, split: all, params: {members}}}
            nonmembers: {{source: local-folder, split: all, params: {nonmembers}}}
        attacks:
          - plugin: loss
        mia: {{subsamples: 5}}
        """) + extra)
    return path


def _run(args, tmp: Path, monkeypatch):
    monkeypatch.chdir(tmp)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp / "env-cache"))
    return CliRunner().invoke(cli, args)


def _assert_refused(result, tmp: Path, *words: str):
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [x for x in result.stderr.strip().splitlines() if x.strip()]
    err = lines[-1] if lines else ""
    # one error line, last; before it at most the runner's progress lines (and the progress
    # bar's closing newline, dropped above)
    assert err.startswith("Error: ") and sum(x.startswith("Error") for x in lines) == 1, lines
    assert all(x.startswith(("[data]", "[model]", "[extract]")) for x in lines[:-1]), lines
    assert "Traceback" not in result.output
    for w in words:
        assert w in err, err
    written = [p for p in ("results", "cache", "env-cache", "mlflow.db", ".harness-cache",
                           "mlruns") if (tmp / p).exists() and _holds_more_than_hash_memos(tmp / p)]
    assert not written, written


def _holds_more_than_hash_memos(path: Path) -> bool:
    """The checkpoint hasher's memo (``<cache>/file-hashes``: a file's SHA-256 keyed by its
    path, size and mtime) is written when a model's identity is taken, before its weights are
    read; it holds no result and nothing from the file's contents but their hash."""
    if path.is_file():
        return True
    return any(p.is_file() and p.parent.name != "file-hashes" for p in path.rglob("*"))


@pytest.mark.parametrize("kind", sorted(ALL_BROKEN))
@pytest.mark.parametrize("form", ["folder", "manifest"])
def test_broken_file_in_data_is_refused_before_any_model(tmp_path, kind, form, toy_plugins,
                                                         monkeypatch):
    make, words = ALL_BROKEN[kind]
    mem, non = tmp_path / "data" / "members", tmp_path / "data" / "nonmembers"
    good = _good_clips(mem, 3, 300)
    _good_clips(non, 3, 900)
    ext = ".mid" if kind in hostile.BROKEN_MIDI else ".wav"
    bad = make(mem / f"bad{ext}")
    if form == "folder":
        members = {"path": str(mem)}
    else:
        manifest = tmp_path / "data" / "members.csv"
        with open(manifest, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "caption"])
            for f in good + [bad]:
                w.writerow([Path(f).relative_to(manifest.parent).as_posix(), "a clip"])
        members = {"manifest": str(manifest)}
    suite = _suite(tmp_path, members, {"path": str(non)})
    result = _run(["run", str(suite)], tmp_path, monkeypatch)
    _assert_refused(result, tmp_path, words, "bad" + ext)
    assert "Error: data.d.members: " in result.stderr


def test_counts_larger_than_the_source_are_an_error(tmp_path, toy_plugins, monkeypatch):
    mem, non = tmp_path / "m", tmp_path / "n"
    _good_clips(mem, 4, 300)
    _good_clips(non, 4, 900)
    extra = "    n_members: 1000000\n"
    text = _suite(tmp_path, {"path": str(mem)}, {"path": str(non)}).read_text()
    text = text.replace("    nonmembers: {source", extra + "    nonmembers: {source")
    (tmp_path / "suite.yaml").write_text(text)
    result = _run(["run", str(tmp_path / "suite.yaml")], tmp_path, monkeypatch)
    _assert_refused(result, tmp_path, "data.d.n_members: 1000000 requested but the source has 4",
                    "n_members: all")
    (tmp_path / "suite.yaml").write_text(text.replace("1000000", "all"))
    result = _run(["run", str(tmp_path / "suite.yaml"), "--no-log", "--limit", "100"],
                  tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output


def test_overlapping_members_and_nonmembers(tmp_path, toy_plugins, monkeypatch):
    mem, non = tmp_path / "m", tmp_path / "n"
    clips = _good_clips(mem, 4, 300)
    _good_clips(non, 3, 900)
    (non / "copy.wav").write_bytes(Path(clips[0]).read_bytes())
    suite = _suite(tmp_path, {"path": str(mem)}, {"path": str(non)})
    result = _run(["run", str(suite)], tmp_path, monkeypatch)
    _assert_refused(result, tmp_path, "1 identical sample(s)", "allow_overlap: true")
    # the very same source on both sides is refused by validate already
    same = _suite(tmp_path, {"path": str(mem)}, {"path": str(mem)})
    result = _run(["validate", str(same)], tmp_path, monkeypatch)
    _assert_refused(result, tmp_path, "data.d.nonmembers", "same source")


# ---------------------------------------------------------------------------------------------
# suites


def _base_suite(tmp: Path) -> str:
    mem, non = tmp / "m", tmp / "n"
    _good_clips(mem, 3, 300)
    _good_clips(non, 3, 900)
    return _suite(tmp, {"path": str(mem)}, {"path": str(non)}).read_text()


def _attacks(n: int) -> str:
    return "".join(f"  - {{plugin: loss, name: a{i}}}\n" for i in range(n))


SUITE_CASES = {
    # name: (edit of a valid suite text, words of the error)
    "over_1_mb": (lambda t: t + "#" + "x" * 1_100_000 + "\n", "the limit is 1,000,000"),
    "many_attacks": (lambda t: t.replace("  - plugin: loss\n", _attacks(1500)),
                     "at 'attacks': 1,500 entries; at most 1,000"),
    "alias_bomb": (lambda t: t + "x-a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"x-{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdef", "bcdefg")),
        "more than 100,000 YAML nodes"),
    "unsafe_tag": (lambda t: t + "x-evil: !!python/object/apply:os.system [touch pwned]\n",
                   "YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed"),
    "not_yaml": (lambda t: "name: [unclosed\nmodels: {\n", "not valid YAML [line"),
    "a_list": (lambda t: "- 1\n- 2\n", "must be a mapping"),
    "binary": (lambda t: b"RIFF\x00\xff\xfe".decode("latin-1"), "not valid YAML"),
    "cache_climbs_out": (lambda t: re.sub(r"cache_dir: .*", "cache_dir: ../../escaped", t),
                         "at 'cache_dir': '../../escaped' climbs out of the suite's folder"),
    "output_climbs_out": (lambda t: re.sub(r"output_dir: .*", "output_dir: ../x", t),
                          "at 'output_dir': '../x' climbs out of the suite's folder"),
}


@pytest.mark.parametrize("case", sorted(SUITE_CASES))
def test_bad_suites_are_refused_in_one_line(tmp_path, case, toy_plugins, monkeypatch):
    edit, words = SUITE_CASES[case]
    text = edit(_base_suite(tmp_path))
    (tmp_path / "suite.yaml").write_text(text, encoding="utf-8")
    for cmd in ("validate", "run"):
        result = _run([cmd, str(tmp_path / "suite.yaml")], tmp_path, monkeypatch)
        _assert_refused(result, tmp_path, words)
    assert not (tmp_path / "pwned").exists() and not (tmp_path.parent / "escaped").exists()


def test_relative_paths_resolve_against_the_suite_folder(tmp_path, toy_plugins, monkeypatch):
    proj = tmp_path / "project"
    _good_clips(proj / "audio" / "m", 3, 300)
    _good_clips(proj / "audio" / "n", 3, 900)
    (proj / "suites").mkdir()
    suite = proj / "suites" / "mine.yaml"
    suite.write_text(_suite(tmp_path, {"path": "../audio/m"}, {"path": "../audio/n"}).read_text()
                     .replace(f"cache_dir: {tmp_path}/cache", "cache_dir: cache")
                     .replace(f"output_dir: {tmp_path}/results", "output_dir: out"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(cli, ["run", str(suite), "--no-log"])
    assert result.exit_code == 0, result.output
    assert (proj / "suites" / "cache").is_dir() and (proj / "suites" / "out" / "hostile").is_dir()
    assert not any(elsewhere.iterdir())


# ---------------------------------------------------------------------------------------------
# checkpoints


def _empty_ckpt(path, marker):
    return hostile.empty_file(path)


def _truncated_ckpt(path, marker):
    import torch

    torch.save({"state_dict": {"w": torch.zeros(1000)}, "hyper_parameters": {}}, path)
    Path(path).write_bytes(Path(path).read_bytes()[:300])
    return str(path)


CKPT_CASES = {
    "code_zip": (lambda p, m: hostile.code_pickle(p, m, "zip"), "python -m harness.safeload"),
    "code_raw": (lambda p, m: hostile.code_pickle(p, m, "raw"), "python -m harness.safeload"),
    "empty": (_empty_ckpt, "is empty (0 bytes)"),
    "truncated": (_truncated_ckpt, "is unreadable"),
}


@pytest.mark.parametrize("case", sorted(CKPT_CASES))
def test_bad_checkpoints_are_refused_in_one_line(tmp_path, case, monkeypatch):
    make, words = CKPT_CASES[case]
    marker = tmp_path / "code-ran"
    ckpt = make(tmp_path / "figaro.ckpt", marker)
    for side, n in (("m", 3), ("n", 3)):
        (tmp_path / side).mkdir()
        for i in range(n):
            hostile.midi(tmp_path / side / f"t{i}.mid", notes=8 + i + (10 if side == "n" else 0))
    suite = tmp_path / "suite.yaml"
    text = _suite(tmp_path, {"path": str(tmp_path / "m")}, {"path": str(tmp_path / "n")}).read_text()
    text = text.replace("toy: {plugin: toy-autoregressive}",
                        f"fig: {{plugin: figaro, params: {{checkpoint: {ckpt}}}}}")
    suite.write_text(text.replace("  - plugin: loss",
                                  "  - {plugin: loss, params: {mode: conditional}}"))
    result = _run(["run", str(suite)], tmp_path, monkeypatch)
    _assert_refused(result, tmp_path, "FIGARO checkpoint", "figaro.ckpt", words)
    assert not marker.exists()
