"""A plugin author's test, run by pytest in a separate session (no project conftest, no
``sys._called_from_test``): registering the entry-point module through the ``register_plugin``
fixture works whether the author's package is installed (its entry point already loaded the
module) or not."""

import os
import subprocess
import sys
import textwrap

import pytest

MODULE = textwrap.dedent('''\
    import numpy as np
    from harness import hookimpl
    from harness.contracts import TOKEN_STATS_CONTRAST, Attack, FeatureSpec


    class FirstToken(Attack):
        family = "autoregressive"
        defaults = {}

        def needs(self):
            return {TOKEN_STATS_CONTRAST}

        def feature_specs(self):
            return [FeatureSpec("first-token", higher_is_member=True)]

        def extract(self, ctx):
            stats = ctx.output(TOKEN_STATS_CONTRAST)
            return {"first-token": np.array([s.logprob[0] for s in stats])}


    @hookimpl
    def register_attacks(register):
        register("first-token", FirstToken, family="autoregressive")
    ''')

TEST = textwrap.dedent('''\
    import sys

    import harness_author_mod
    from harness import plugins
    from harness.testing import check_attack


    def test_author_attack(register_plugin):
        assert not getattr(sys, "_called_from_test", False)
        register_plugin(harness_author_mod)
        info = plugins.get("attack", "first-token")
        print("DISTRIBUTION", info.distribution)
        check_attack("first-token", vary=None)


    def test_fixture_undoes_only_its_own_registration():
        print("STILL", "first-token" in plugins.registry("attack"))
    ''')


@pytest.mark.parametrize("installed", [True, False])
def test_author_tests_work_installed_or_not(tmp_path, installed):
    (tmp_path / "harness_author_mod.py").write_text(MODULE)
    (tmp_path / "test_author.py").write_text(TEST)
    if installed:
        dist = tmp_path / "harness_author-0.3.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-author\n"
                                       "Version: 0.3\n")
        (dist / "entry_points.txt").write_text("[harness]\nauthor = harness_author_mod\n")
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_LOAD_PLUGINS"}
    env["PYTHONPATH"] = str(tmp_path)
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                          "test_author.py"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    expected = "harness-author" if installed else "harness_author_mod"
    assert f"DISTRIBUTION {expected}" in res.stdout
    # installed: the entry point keeps it registered; not installed: the fixture removed it
    assert f"STILL {installed}" in res.stdout
