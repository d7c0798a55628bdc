"""docs/plugins.md runs as written: the blocks marked ``# file: PATH`` form a plugin package,
installed next to the harness (a ``.dist-info`` with its entry points, which is what an editable
install adds to sys.path); the package's own tests pass under pytest in a separate session (no
project conftest, no ``sys._called_from_test``); every other Python block runs on its own, in a
fresh namespace, so each carries its own imports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)
RUN = {"python", "toml", "yaml"}
SHOWN = {"bash", "text"}

RUNNER = """\
import sys, traceback
from harness import plugins
info = plugins.get("attack", "head-loss")
assert info.distribution == DIST, (info.distribution, DIST)
for path in sys.argv[1:]:
    src = open(path).read()
    try:
        exec(compile(src, path, "exec"), {"__name__": "__main__"})
    except Exception:
        traceback.print_exc()
        sys.exit(f"documentation snippet {path} failed")
    print("ran", path)
"""


def blocks() -> list[tuple[str, str]]:
    return [(lang.strip(), body) for lang, body in FENCE.findall(DOC.read_text())]


def test_every_block_is_run_or_marked_as_shown_only():
    for lang, body in blocks():
        assert lang in RUN | SHOWN, (
            f"docs/plugins.md has a ``` block with language {lang!r}; mark it python/toml/yaml "
            f"(run by this test) or bash/text (shown only):\n{body[:200]}")
        if lang in {"toml", "yaml"}:
            assert body.startswith("# file: "), f"a {lang} block must start with '# file: PATH'"


def _install(project: Path) -> str:
    """What `pip install -e .` adds to sys.path: a dist-info with the entry points."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    dist = project / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\n"
                                   f"Version: {meta['version']}\n")
    eps = "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items())
                  for group, entries in meta["entry-points"].items())
    (dist / "entry_points.txt").write_text(eps)
    return meta["name"]


@pytest.mark.slow
def test_the_documented_package_installs_passes_its_tests_and_every_snippet_runs(tmp_path):
    project = tmp_path / "harness-my-attacks"
    snippets = []
    for lang, body in blocks():
        if lang not in RUN:
            continue
        m = re.match(r"# file: (\S+)\n", body)
        if m:
            path = project / m.group(1)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
        else:
            assert lang == "python"
            snippets.append(body)
    assert (project / "tests").is_dir() and snippets
    dist = _install(project)
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_LOAD_PLUGINS"}
    env["PYTHONPATH"] = str(project)

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "tests"], cwd=project, env=env, capture_output=True, text=True,
                           timeout=600)
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert " passed" in tests.stdout and " failed" not in tests.stdout

    paths = []
    for i, body in enumerate(snippets):
        paths.append(tmp_path / f"snippet_{i}.py")
        paths[-1].write_text(body)
    run = subprocess.run([sys.executable, "-c", f"DIST = {dist!r}\n" + RUNNER,
                          *map(str, paths)], cwd=project, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert run.stdout.count("ran ") == len(snippets)


def test_readme_suite_example_is_a_valid_suite():
    """The README's suite example: schema, plugin names and parameter keys (as `harness
    validate`; no weights loaded)."""
    from harness import suite as suite_mod

    readme = (DOC.parents[1] / "README.md").read_text()
    (text,) = [body for lang, body in FENCE.findall(readme)
               if lang.strip() == "yaml" and body.startswith("name: my-audit")]
    s = suite_mod.loads(text, source="README.md")
    assert suite_mod.check_plugins(s, text, "README.md") == []
    assert any(a.models for a in s.attacks)


def test_readme_ray_fragment_fits_the_suite_example():
    """The README's `executor: ray` fragment, merged into its suite example, validates."""
    import textwrap

    import yaml

    from harness import suite as suite_mod

    readme = (DOC.parents[1] / "README.md").read_text()
    # fences indented in a list item count too
    yamls = [textwrap.dedent(b) for b in
             re.findall(r"^[ \t]*```yaml\n(.*?)^[ \t]*```", readme, re.S | re.M)]
    (example,) = [b for b in yamls if b.startswith("name: my-audit")]
    (fragment,) = [b for b in yamls if b.startswith("executor: ray")]
    raw = {**yaml.safe_load(example), **yaml.safe_load(fragment)}
    s = suite_mod.loads(yaml.safe_dump(raw), source="README.md")
    assert s.executor == "ray" and s.batch_size == "auto" and s.ray.models["tango"].num_gpus == 0.5
