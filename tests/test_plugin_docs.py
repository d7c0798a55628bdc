"""``harness plugins NAME``: one plugin in full, with docs from each of the three sources."""

import pytest
import yaml
from click.testing import CliRunner

from harness import hookimpl
from harness.cli import cli
from harness.contracts import TOKEN_STATS_CONDITIONAL, Attack, FeatureSpec
from harness.plugin_docs import param_choices, param_docs


class DocAttack(Attack):
    """An attack for the test.

    ``gamma``: the inline-less parameter documented in the docstring. Second sentence.
    """

    family = "autoregressive"
    defaults = {
        "alpha": 1,      # from the inline comment
        "beta": [1, 2],
        "gamma": None,
        "delta": "x",
    }
    param_docs = {"beta": "from param_docs"}

    def needs(self):
        return {TOKEN_STATS_CONDITIONAL}

    def feature_specs(self):
        return [FeatureSpec("f", higher_is_member=True)]


class Plugin:
    @hookimpl
    def register_attacks(self, register):
        register("doc-attack", DocAttack, family="autoregressive", description="doc test")


def test_param_docs_sources():
    assert param_docs(DocAttack) == {"alpha": "from the inline comment", "beta": "from param_docs",
                                     "gamma": "the inline-less parameter documented in the "
                                              "docstring.", "delta": ""}


def test_plugins_name_shows_everything(register_plugin):
    register_plugin(Plugin(), "doc-test")
    res = CliRunner().invoke(cli, ["plugins", "doc-attack"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "doc-attack (attack, family autoregressive)" in out
    assert "An attack for the test." in out
    assert "needs: token_stats/conditional" in out
    assert "alpha  1  — from the inline comment" in out
    assert "beta   [1, 2]  — from param_docs" in out
    example = yaml.safe_load(out.split("example suite entry:\n", 1)[1])
    assert example == {"attacks": [{"plugin": "doc-attack", "params": DocAttack.defaults}]}


def test_plugins_name_for_a_dataset_gives_a_data_entry():
    res = CliRunner().invoke(cli, ["plugins", "local-folder"])
    assert res.exit_code == 0, res.output
    example = yaml.safe_load(res.output.split("example suite entry:\n", 1)[1])
    assert set(example["data"]["mine"]) == {"members", "nonmembers"}
    assert "relative paths are resolved against the CSV's directory" in res.output


def test_plugins_unknown_name_is_a_clear_error():
    res = CliRunner().invoke(cli, ["plugins", "min-kk"])
    assert res.exit_code == 2 and "min-k" in res.output


# --------------------------------------------------------------------------------------------
# Every built-in plugin explains every parameter (issues #11/#12: no source reading)


def _builtins():
    from harness import plugins

    plugins.load_plugins()
    return [i for i in plugins.all_plugins() if i.distribution == plugins.OWN_DISTRIBUTION]


def test_every_builtin_parameter_is_documented():
    from harness.plugin_docs import undocumented

    infos = _builtins()
    assert {i.kind for i in infos} == {"model", "attack", "aggregator", "dataset", "baseline"}
    missing = {f"{i.kind} {i.name}": undocumented(i.load()) for i in infos}
    assert {k: v for k, v in missing.items() if v} == {}, (
        "document these parameters (param_docs, an inline comment in defaults, or a ``key``: "
        "docstring line) so that `harness plugins NAME` explains them")


def _required(name, tmp_path):
    """The parameters a plugin cannot be built without (paths only; nothing is read)."""
    return {"local-folder": {"path": str(tmp_path)},
            "lakh-midi": {"root": str(tmp_path), "splits_dir": str(tmp_path)},
            "audiocaps": {"root": str(tmp_path)},
            "musicgen": {"checkpoint": str(tmp_path)}, "audiogen": {"checkpoint": str(tmp_path)},
            "figaro": {"checkpoint": str(tmp_path / "x.ckpt")}}.get(name, {})


def test_builtin_choices_are_the_accepted_values(tmp_path):
    """The allowed values ``harness plugins NAME`` shows are what the plugin checks: the default
    is one of them, and a value outside them is refused with an error naming the parameter."""
    from harness.errors import ConfigError

    checked = 0
    for info in _builtins():
        cls = info.load()
        own = {}
        for klass in cls.__mro__:
            own.update(getattr(klass, "__dict__", {}).get("param_choices", {}) or {})
        kw = {"device": "cpu"} if info.kind == "model" else {}
        kw.update(_required(info.name, tmp_path))
        for key, allowed in param_choices(cls).items():
            assert cls.defaults[key] in allowed, (info.name, key)
            with pytest.raises(ConfigError, match=key):
                cls(**kw, **{key: "not-a-choice"})
            checked += 1
    assert checked >= 30


def test_a_typo_in_param_choices_is_not_silently_dropped():
    for info in _builtins():
        cls = info.load()
        for klass in cls.__mro__:
            keys = set(getattr(klass, "__dict__", {}).get("param_choices", {}) or {})
            defaults = getattr(klass, "__dict__", {}).get("defaults")
            if keys and defaults is not None:
                assert keys <= set(defaults), (klass.__name__, keys)


def test_plugins_name_shows_allowed_values():
    res = CliRunner().invoke(cli, ["plugins", "surp"])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.strip().startswith("variant "))
    assert "intended" in line and "[one of: intended, iar-code]" in line


def test_plugins_name_json_carries_the_parameters():
    import json

    res = CliRunner().invoke(cli, ["plugins", "pian", "--json"])
    assert res.exit_code == 0, res.output
    (entry,) = json.loads(res.output)
    params = {p["name"]: p for p in entry["parameters"]}
    assert params["pian_scale"]["default"] == "cdi"
    assert params["pian_scale"]["choices"] == ["cdi", "pia-code"]
    assert params["t"]["doc"] and params["t"]["choices"] is None


def test_a_model_needing_a_checkpoint_still_shows_what_it_provides():
    """The defaults of a released model are no valid configuration (no checkpoint): its outputs
    come from the class, so the page says what attacks it can serve."""
    out = {}
    for name in ("figaro", "musicgen", "tango"):
        res = CliRunner().invoke(cli, ["plugins", name])
        assert res.exit_code == 0, res.output
        out[name] = next(ln for ln in res.output.splitlines() if ln.startswith("provides"))
    assert out["figaro"] == "provides: token_stats/conditional"  # no classifier-free guidance
    assert out["musicgen"] == "provides: token_stats/conditional, token_stats/contrast"
    assert out["tango"] == "provides: condition, latent_mask, latents, null_condition"
