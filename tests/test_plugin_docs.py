"""``harness plugins NAME``: one plugin in full, with docs from each of the three sources."""

import yaml
from click.testing import CliRunner

from harness import hookimpl
from harness.cli import cli
from harness.contracts import TOKEN_STATS_CONDITIONAL, Attack, FeatureSpec
from harness.plugin_docs import param_docs


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
