import textwrap

import pytest

from harness import suite as suite_mod
from harness.errors import SuiteError

BASE = textwrap.dedent("""\
    name: t
    seed: 3
    models:
      m:
        plugin: toy
        params: {a: 1}
    data:
      d:
        members: {source: src, split: in}
        nonmembers: {source: src, split: out}
        n_members: 10
    attacks:
      - plugin: loss
      - plugin: min-k
        name: min-k-std
        params: {k: [0.2]}
    aggregators:
      - plugin: minmax-sum
        features: [loss]
    """)


def test_valid_suite_defaults():
    s = suite_mod.loads(BASE)
    assert s.mia.target_fpr == 0.01 and s.mia.subsamples == 250
    assert s.di.alpha == 0.01 and s.di.draws == 1000 and s.di.alternative == "greater"
    assert s.mlflow.tracking_uri == "sqlite:///mlflow.db"
    assert [a.label for a in s.attacks] == ["loss", "min-k-std"]
    assert s.data_for("m") == ["d"]


def test_unknown_key_names_path_line_and_suggestion():
    bad = BASE.replace("  - plugin: loss\n", "  - plugin: loss\n    parms: {}\n")
    with pytest.raises(SuiteError) as exc:
        suite_mod.loads(bad, source="suite.yaml")
    msg = str(exc.value)
    assert "attacks[0].parms" in msg and "Did you mean 'params'" in msg
    assert "line 14" in msg and msg.startswith("suite.yaml")


def test_top_level_typo():
    with pytest.raises(SuiteError, match=r"Did you mean 'attacks'"):
        suite_mod.loads(BASE.replace("attacks:", "atacks:"))


def test_wrong_type_and_missing():
    with pytest.raises(SuiteError, match=r"mia.target_fpr"):
        suite_mod.loads(BASE + "mia: {target_fpr: 2}\n")
    with pytest.raises(SuiteError, match=r"di.workers"):
        suite_mod.loads(BASE + "di: {workers: 0}\n")
    assert suite_mod.loads(BASE + "di: {workers: 2}\n").di.workers == 2
    with pytest.raises(SuiteError, match=r"required key 'members' is missing"):
        suite_mod.loads(BASE.replace("    members: {source: src, split: in}\n", ""))


def test_references_checked():
    with pytest.raises(SuiteError, match=r"Unknown attack 'los'"):
        suite_mod.loads(BASE.replace("features: [loss]", "features: [los]"))
    with pytest.raises(SuiteError, match=r"used twice"):
        suite_mod.loads(BASE.replace("name: min-k-std", "name: loss"))
    with pytest.raises(SuiteError, match=r"Unknown data entry 'e'"):
        suite_mod.loads(BASE.replace("params: {a: 1}", "params: {a: 1}\n    data: [e]"))


def test_overrides_limit_device():
    s = suite_mod.loads(BASE, overrides=["models.m.params.a=5", "attacks.1.params.k=[0.1, 0.3]",
                                         "di.draws=10", "mlflow.enabled=false"],
                        limit=4, device="cuda:1")
    assert s.models["m"].params == {"a": 5}
    assert s.attacks[1].params["k"] == [0.1, 0.3]
    assert s.di.draws == 10 and s.mlflow.enabled is False
    assert s.data["d"].limit == 4 and s.data["d"].n_members == 10
    assert s.device == "cuda:1"
    with pytest.raises(SuiteError, match="key.path=value"):
        suite_mod.loads(BASE, overrides=["nonsense"])


def test_override_list_items_by_bracket_or_dot():
    for key in ("attacks[1].params.k", "attacks.1.params.k"):
        s = suite_mod.loads(BASE, overrides=[f"{key}=[0.4]"])
        assert s.attacks[1].params["k"] == [0.4]
    assert suite_mod.parse_override("a[1][2].b=x") == (["a", 1, 2, "b"], "x")
    with pytest.raises(SuiteError, match=r"cannot read key segment 'attacks\[x\]'"):
        suite_mod.loads(BASE, overrides=["attacks[x].params.k=1"])
    with pytest.raises(SuiteError, match="out of range"):
        suite_mod.loads(BASE, overrides=["attacks[7].params.k=1"])


def test_invalid_yaml_and_missing_file(tmp_path):
    with pytest.raises(SuiteError, match="not valid YAML"):
        suite_mod.loads("name: [unclosed")
    with pytest.raises(SuiteError, match="not found"):
        suite_mod.load(tmp_path / "nope.yaml")


def test_check_plugins_resolves_names_and_params():
    s = suite_mod.loads(BASE.replace("plugin: toy", "plugin: toy-unknown-model"))
    with pytest.raises(SuiteError, match=r"Unknown model 'toy-unknown-model'"):
        suite_mod.check_plugins(s, BASE.replace("plugin: toy", "plugin: toy-unknown-model"))


@pytest.mark.parametrize("path", ["suites/demo.yaml", "suites/paper.yaml", "suites/extended.yaml"])
def test_shipped_suites_validate(path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    s, text = suite_mod.load(root / path)
    suite_mod.check_plugins(s, text, path)


def test_attack_restricted_to_models():
    s = suite_mod.loads(BASE.replace("  - plugin: loss\n", "  - plugin: loss\n    models: [m]\n"))
    assert s.attacks[0].models == ["m"]
    with pytest.raises(SuiteError, match=r"Unknown model entry 'n'"):
        suite_mod.loads(BASE.replace("  - plugin: loss\n", "  - plugin: loss\n    models: [n]\n"))


def test_di_primary_defaults_by_family_and_names_are_checked():
    s = suite_mod.loads(BASE)
    assert s.di.primary is None and s.di.n is None
    assert s.primary_aggregator("autoregressive") == "minmax-sum"
    assert s.primary_aggregator("diffusion") is None  # no cdi entry in this suite
    two = BASE + "  - {plugin: minmax-sum, name: mm2}\n"
    assert suite_mod.loads(two + "di: {primary: mm2, n: 40}\n").primary_aggregator("x") == "mm2"
    assert suite_mod.loads(two + "di: {n: 40}\n").di.n == 40
    by_family = suite_mod.loads(two + "di: {primary: {autoregressive: mm2}}\n")
    assert by_family.primary_aggregator("autoregressive") == "mm2"
    assert by_family.primary_aggregator("diffusion") is None
    with pytest.raises(SuiteError, match=r"di.primary: Unknown aggregator 'mm3'. Did you mean"):
        suite_mod.loads(two + "di: {primary: mm3}\n")
    with pytest.raises(SuiteError, match=r"di.primary.diffusion"):
        suite_mod.loads(two + "di: {primary: {diffusion: cdi}}\n")
    with pytest.raises(SuiteError, match=r"di.n"):
        suite_mod.loads(BASE + "di: {n: 1}\n")
