import subprocess
import sys
import time
import warnings

import pytest

from harness import hookimpl, plugins
from harness.errors import DuplicatePluginError, PluginLoadError, UnknownNameError


class _AttackPlugin:
    def __init__(self, *names):
        self.names = names

    @hookimpl
    def register_attacks(self, register):
        for n in self.names:
            register(n, "collections:OrderedDict", family="autoregressive", description="test")


def test_builtins_register_through_entry_points():
    plugins.load_plugins()
    names = plugins.pm.list_name_plugin()
    builtin = [n for n, _ in names if n.startswith(plugins.OWN_DISTRIBUTION + ":")]
    assert builtin, "built-in plugins must be loaded from this distribution's entry points"
    info = plugins.get("attack", "loss")
    assert info.distribution == plugins.OWN_DISTRIBUTION
    assert info.module.startswith("plugins.attacks")


def test_unknown_name_suggests(register_plugin):
    register_plugin(_AttackPlugin("min-k-test"), "t-unknown")
    with pytest.raises(UnknownNameError) as exc:
        plugins.get("attack", "min-k-tset")
    msg = str(exc.value)
    assert msg.startswith("Unknown attack 'min-k-tset'. Did you mean 'min-k-test'")
    assert "Available:" in msg and "loss" in msg


def test_duplicate_names_fail_naming_both(register_plugin):
    register_plugin(_AttackPlugin("dup-attack"), "dist-a")
    register_plugin(_AttackPlugin("dup-attack"), "dist-b")
    with pytest.raises(DuplicatePluginError) as exc:
        plugins.registry("attack")
    assert "dist-a" in str(exc.value) and "dist-b" in str(exc.value)


def test_broken_register_hook_is_a_warning(register_plugin):
    class Broken:
        @hookimpl
        def register_attacks(self, register):
            raise RuntimeError("boom")

    register_plugin(Broken(), "broken-plugin")
    register_plugin(_AttackPlugin("healthy-attack"), "healthy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg = plugins.registry("attack")
    assert "healthy-attack" in reg
    assert any("broken-plugin" in str(w.message) for w in caught)


def test_lazy_factory_error_names_the_plugin(register_plugin):
    class Bad:
        @hookimpl
        def register_models(self, register):
            register("bad-model", "no_such_module_xyz:Model", family="diffusion")

    register_plugin(Bad(), "bad")
    with pytest.raises(PluginLoadError, match="bad-model"):
        plugins.get("model", "bad-model").load()


def test_invalid_name_and_family_refused(register_plugin):
    class BadName:
        @hookimpl
        def register_attacks(self, register):
            register("Bad Name", "x:y")

    register_plugin(BadName(), "badname")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg = plugins.registry("attack")
    assert "Bad Name" not in reg
    assert any("invalid" in str(w.message) for w in caught)


def _run_isolated(code, env_extra):
    import os

    env = {k: v for k, v in os.environ.items()}
    env.update(env_extra)
    env = {k: v for k, v in env.items() if v is not None}  # None: unset
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=60)


def test_third_party_entry_point_selection(tmp_path):
    """A third-party distribution on sys.path loads by default, not with HARNESS_LOAD_PLUGINS=''
    (built-ins only), and a broken one only warns."""
    dist = tmp_path / "harness_thirdparty-1.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-thirdparty\nVersion: 1.2\n")
    (dist / "entry_points.txt").write_text(
        "[harness]\nextra = harness_thirdparty_mod\nbroken = harness_thirdparty_missing\n")
    (tmp_path / "harness_thirdparty_mod.py").write_text(
        "from harness import hookimpl\n"
        "@hookimpl\n"
        "def register_attacks(register):\n"
        "    register('third-party-attack', 'x:y', family='diffusion')\n")
    code = ("import sys, warnings; sys.path.insert(0, %r); warnings.simplefilter('ignore');"
            "from harness import plugins; reg = plugins.registry('attack');"
            "print('third-party-attack' in reg, 'loss' in reg,"
            " reg.get('third-party-attack') and reg['third-party-attack'].distribution,"
            " sum('harness-thirdparty' in p for p in plugins.load_problems))" % str(tmp_path))
    default = _run_isolated(code, {})
    assert default.stdout.split() == ["True", "True", "harness-thirdparty", "1"], default.stderr
    import os

    env = dict(os.environ)
    env.pop("HARNESS_LOAD_PLUGINS", None)
    none = _run_isolated(code, {"HARNESS_LOAD_PLUGINS": ""})
    assert none.stdout.split()[:2] == ["False", "True"], none.stderr
    chosen = _run_isolated(code, {"HARNESS_LOAD_PLUGINS": "harness-thirdparty"})
    assert chosen.stdout.split()[:2] == ["True", "True"], chosen.stderr


def test_tests_never_load_third_party(tmp_path):
    code = ("import sys; sys._called_from_test = True; sys.path.insert(0, %r);"
            "import warnings; warnings.simplefilter('ignore');"
            "from harness import plugins; print('third-party-attack' in plugins.registry('attack'))"
            % str(tmp_path))
    dist = tmp_path / "harness_tp2-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: harness-tp2\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[harness]\nextra = harness_tp2_mod\n")
    (tmp_path / "harness_tp2_mod.py").write_text(
        "from harness import hookimpl\n@hookimpl\ndef register_attacks(register):\n"
        "    register('third-party-attack', 'x:y')\n")
    assert _run_isolated(code, {}).stdout.strip() == "False"


def test_cli_help_and_plugins_are_fast():
    """`harness --help` and `harness plugins` must not import torch / diffusers / mlflow."""
    code = ("import sys, time; t = time.perf_counter();"
            "from harness.cli import cli;"
            "from harness import plugins; plugins.all_plugins();"
            "heavy = [m for m in ('torch', 'diffusers', 'audiocraft', 'mlflow', 'transformers')"
            " if m in sys.modules]; print(heavy, round(time.perf_counter() - t, 3))")
    out = _run_isolated(code, {})
    heavy, seconds = out.stdout.rsplit(" ", 1)
    assert heavy == "[]", f"heavy modules imported at listing time: {heavy}"
    assert float(seconds) < 1.0
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "harness.cli", "--help"], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 0 and "harness run" in res.stdout
    assert time.perf_counter() - t < 3.0


def test_registering_an_already_registered_object_is_a_no_op(register_plugin):
    import types

    mod = types.ModuleType("my_installed_plugin")
    mod.register_attacks = hookimpl(lambda register: register("installed-attack", "x:y"))
    # what load_plugins does for an installed distribution's entry point
    plugins.pm.register(mod, name="my-dist:ep")
    try:
        assert plugins.register(mod, "my-test") is False
        assert register_plugin(mod) is mod  # the fixture: no ValueError, nothing to undo
        assert plugins.pm.get_name(mod) == "my-dist:ep"
        assert "installed-attack" in plugins.registry("attack")
    finally:
        plugins.pm.unregister(name="my-dist:ep")


def test_register_refuses_a_taken_name(register_plugin):
    register_plugin(_AttackPlugin("taken-a"), "taken")
    with pytest.raises(DuplicatePluginError, match="'taken' is already taken"):
        plugins.register(_AttackPlugin("taken-b"), "taken")


def test_unknown_name_under_tests_says_third_party_loading_is_off():
    with pytest.raises(UnknownNameError) as exc:
        plugins.get("attack", "some-third-party-attack")
    assert "third-party plugins are not loaded under tests" in str(exc.value)


def _fake_distribution(tmp_path, name="harness-thirdparty", module="harness_thirdparty_mod"):
    dist = tmp_path / f"{name.replace('-', '_')}-1.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2\n")
    (dist / "entry_points.txt").write_text(f"[harness]\nextra = {module}\n")
    (tmp_path / f"{module}.py").write_text(
        "from harness import hookimpl\n"
        "@hookimpl\n"
        "def register_attacks(register):\n"
        "    register('third-party-attack', 'x:y', family='diffusion')\n")


def test_unknown_name_with_loading_off_names_the_skipped_distribution(tmp_path):
    _fake_distribution(tmp_path)
    code = ("import sys; sys.path.insert(0, %r); from harness import plugins\n"
            "try: plugins.get('attack', 'third-party-attack')\n"
            "except Exception as e: print(e)" % str(tmp_path))
    off = _run_isolated(code, {"HARNESS_LOAD_PLUGINS": ""}).stdout
    assert off.startswith("Unknown attack 'third-party-attack'.")
    assert "HARNESS_LOAD_PLUGINS is set and empty" in off
    # (other third-party distributions installed here are listed too)
    assert "installed but not loaded: " in off and "harness-thirdparty 1.2" in off.split(
        "installed but not loaded: ")[1]
    other = _run_isolated(code, {"HARNESS_LOAD_PLUGINS": "something-else"}).stdout
    assert "limited by HARNESS_LOAD_PLUGINS='something-else'" in other
    assert _run_isolated(code, {"HARNESS_LOAD_PLUGINS": None}).stdout == ""  # loaded: no error


def test_entry_point_loading_keeps_a_module_a_test_registered_first(tmp_path):
    """A test registered the plugin module before the entry points loaded: no 'already
    registered' error, and the registry still reports the distribution."""
    _fake_distribution(tmp_path)
    code = ("import sys; sys.path.insert(0, %r)\n"
            "import harness_thirdparty_mod as m; from harness import plugins\n"
            "plugins.pm.register(m, name='from-a-test')\n"
            "info = plugins.get('attack', 'third-party-attack')\n"
            "print(info.distribution, info.version)" % str(tmp_path))
    res = _run_isolated(code, {"HARNESS_LOAD_PLUGINS": None})
    assert res.stdout.split() == ["harness-thirdparty", "1.2"], res.stderr
