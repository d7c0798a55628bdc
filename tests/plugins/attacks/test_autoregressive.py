"""Autoregressive attack family: every formula against hand-computed values, the documented
variants, orientations, names, edge cases and the plugin registration."""

from __future__ import annotations

import math
import re
import zlib

import numpy as np
import pytest

from harness.contracts import (
    TOKEN_STATS_CONDITIONAL,
    TOKEN_STATS_CONTRAST,
    BatchContext,
    Sample,
    TokenStats,
)
from harness.errors import ConfigError, DataError
from plugins.attacks import _autoregressive_impl as impl
from plugins.attacks import autoregressive as entry

ALL = [impl.Loss, impl.Zlib, impl.Hinge, impl.MinK, impl.MinKPlusPlus, impl.Surp, impl.Camia]

# Hand example: 5 tokens.
LP = [-0.1, -2.0, -0.5, -3.0, -1.0]
MAX_OTHER = [-3.0, -0.5, -1.5, -0.2, -1.2]
MU = [-0.5, -1.0, -0.5, -2.0, -1.0]            # entropies 0.5, 1, 0.5, 2, 1
VAR = [0.25, 1.0, 4.0, 0.5, 0.25]
IDS = [5, 12, 7, 300, 5]


def stats(lp, max_other=None, mu=None, var=None, ids=None) -> TokenStats:
    lp = np.asarray(lp, dtype=np.float64)
    n = lp.shape[0]
    mo = np.asarray(max_other if max_other is not None else lp - 1.0, dtype=np.float64)
    mu = np.asarray(mu if mu is not None else np.full(n, -1.0), dtype=np.float64)
    var = np.asarray(var if var is not None else np.ones(n), dtype=np.float64)
    ids = np.asarray(ids if ids is not None else np.arange(n), dtype=np.int64)
    return TokenStats(lp, mo, mu, var, ids)


HAND = stats(LP, MAX_OTHER, MU, VAR, IDS)


def run(attack, *stats_list, output=TOKEN_STATS_CONTRAST):
    samples = [Sample(id=f"s{i}", path=f"/x/s{i}.wav") for i in range(len(stats_list))]
    ctx = BatchContext(model=None, samples=samples, seed=0, outputs={output: list(stats_list)})
    out = attack.extract(ctx)
    names = [s.name for s in attack.feature_specs()]
    assert list(out) == names
    for v in out.values():
        assert v.dtype == np.float64 and v.shape == (len(stats_list),)
    return out


def one(attack, st=HAND, **kw):
    return {k: float(v[0]) for k, v in run(attack, st, **kw).items()}


# ------------------------------------------------------------------------------- formulas


def test_loss_zlib_hinge_hand_values():
    assert one(impl.Loss())["loss"] == pytest.approx(1.32)
    z = len(zlib.compress(b"[5, 12, 7, 300, 5]"))
    assert one(impl.Zlib())["zlib"] == pytest.approx(1.32 / z)
    # margins 2.9, -1.5, 1.0, -2.8, 0.2 -> mean -0.04 -> stored -mean
    assert one(impl.Hinge())["hinge"] == pytest.approx(0.04)


def test_zlib_compresses_python_list_of_token_ids():
    # the string is str(list of Python ints), not numpy's "[  5  12 ...]" rendering
    assert impl.zlib_length(np.array(IDS, dtype=np.int64)) == len(zlib.compress(b"[5, 12, 7, 300, 5]"))
    assert impl.zlib_length(np.array(IDS, dtype=np.int64)) != len(
        zlib.compress(str(np.array(IDS)).encode()))
    assert impl.zlib_length(np.array(IDS, dtype=np.float64)) == len(zlib.compress(b"[5, 12, 7, 300, 5]"))
    # same log-probs, more repetitive ids -> shorter compression -> larger ratio
    rep = stats([-1.0] * 60, ids=[7] * 60)
    rnd = stats([-1.0] * 60, ids=np.random.default_rng(0).integers(0, 2048, 60))
    out = run(impl.Zlib(), rep, rnd)["zlib"]
    assert out[0] > out[1]
    with pytest.raises(ConfigError, match="zlib_of"):
        impl.Zlib(zlib_of="audio")


def test_min_k_hand_values_and_k_zero_is_nan():
    out = one(impl.MinK())
    assert math.isnan(out["min-k/k0.1"])          # int(0.1 * 5) = 0
    assert out["min-k/k0.2"] == pytest.approx(3.0)
    assert out["min-k/k0.3"] == pytest.approx(3.0)  # int(1.5) = 1
    assert out["min-k/k0.4"] == pytest.approx(2.5)
    assert out["min-k/k0.5"] == pytest.approx(2.5)  # int(2.5) = 2


def test_min_k_plus_plus_variance_vs_std():
    var = one(impl.MinKPlusPlus(eps=0.0))
    std = one(impl.MinKPlusPlus(normalize="std", eps=0.0))
    # variance: m = [1.6, -1, 0, -2, 0]; std: m = [0.8, -1, 0, -sqrt(2), 0]
    assert var["min-k-plus-plus/k0.2"] == pytest.approx(2.0)
    assert var["min-k-plus-plus/k0.4"] == pytest.approx(1.5)
    assert std["min-k-plus-plus/k0.2"] == pytest.approx(math.sqrt(2))
    assert std["min-k-plus-plus/k0.4"] == pytest.approx((math.sqrt(2) + 1) / 2)
    # IAR default eps=1e-6 only nudges the variance form
    dflt = one(impl.MinKPlusPlus())
    assert dflt["min-k-plus-plus/k0.2"] == pytest.approx(2.0, rel=1e-5)
    assert dflt["min-k-plus-plus/k0.2"] != var["min-k-plus-plus/k0.2"]
    # per token, m_variance * sqrt(var) == m_std
    t = impl._Tokens(HAND, "x")
    np.testing.assert_allclose(t.mkpp("variance", 0.0) * np.sqrt(VAR), t.mkpp("std", 0.0))


def test_min_k_plus_plus_zero_variance():
    zero = stats(LP, mu=LP, var=np.zeros(5))     # deterministic positions, lp == mu
    assert one(impl.MinKPlusPlus(), zero)["min-k-plus-plus/k0.2"] == pytest.approx(0.0)
    # reference std form without epsilon is undefined there -> NaN, not inf
    assert math.isnan(one(impl.MinKPlusPlus(normalize="std", eps=0.0), zero)
                      ["min-k-plus-plus/k0.2"])


def test_surp_intended_hand_values():
    out = one(impl.Surp(k=[0.1, 0.2, 0.4], max_entropy=[2.0, 4.0]))
    assert out["surp/k0.1-h2"] == -100.0          # K = 0: empty set -> reference -100
    assert out["surp/k0.2-h2"] == -100.0          # lowest token has entropy 2.0, not < 2
    assert out["surp/k0.2-h4"] == pytest.approx(-3.0)
    assert out["surp/k0.4-h2"] == pytest.approx(-2.0)
    assert out["surp/k0.4-h4"] == pytest.approx(-2.5)
    nan = one(impl.Surp(k=[0.2], empty_value=None))
    assert math.isnan(nan["surp/k0.2-h2"])
    assert list(one(impl.Surp())) == ["surp/k0.2-h2"]   # reference defaults k=20 %, H<2


def test_surp_iar_code_hand_values_and_k_is_vacuous():
    out = one(impl.Surp(variant="iar-code", k=[0.1, 0.2, 0.4], max_entropy=[2.0, 4.0]))
    assert math.isnan(out["surp/mean-k0.1-h2"]) and math.isnan(out["surp/count-k0.1-h4"])
    for k in ("0.2", "0.4"):
        assert out[f"surp/mean-k{k}-h2"] == pytest.approx(0.9)
        assert out[f"surp/count-k{k}-h2"] == pytest.approx(-0.8)
        assert out[f"surp/mean-k{k}-h4"] == pytest.approx(1.32)
        assert out[f"surp/count-k{k}-h4"] == pytest.approx(-1.0)
    # no low-entropy token: 0 as coded (-0 / 1e-6)
    assert one(impl.Surp(variant="iar-code", k=[0.2], max_entropy=[0.1]))[
        "surp/mean-k0.2-h0.1"] == 0.0

    rng = np.random.default_rng(1)
    st = stats(-rng.exponential(1.5, 97), mu=-rng.uniform(0, 6, 97))
    coded = one(impl.Surp(variant="iar-code"), st)
    assert len(coded) == 40
    for h in ("2", "4", "8", "16"):
        for part in ("mean", "count"):
            vals = {coded[f"surp/{part}-k{k}-h{h}"] for k in ("0.1", "0.2", "0.3", "0.4", "0.5")}
            assert len(vals) == 1, (part, h, vals)      # the coded k test is vacuous
    intended = one(impl.Surp(k=list(impl.K_GRID), max_entropy=list(impl.ENTROPY_GRID)), st)
    assert len({intended[f"surp/k{k}-h8"] for k in ("0.1", "0.2", "0.3", "0.4", "0.5")}) == 5


def test_camia_hand_values():
    out = one(impl.Camia())
    assert out["camia/below-mean"] == pytest.approx(0.4)
    assert out["camia/below-mean-mkpp"] == pytest.approx(0.4)
    assert out["camia/below-prev-mean"] == pytest.approx(-0.4)
    assert out["camia/below-prev-mean-mkpp"] == pytest.approx(-0.6)
    assert out["camia/slope"] == pytest.approx(-0.28)


def test_camia_slope_of_linear_sequence():
    i = np.arange(37)
    assert one(impl.Camia(), stats(-4.0 + 0.05 * i))["camia/slope"] == pytest.approx(0.05)
    assert one(impl.Camia(), stats(-0.5 - 0.01 * i))["camia/slope"] == pytest.approx(-0.01)


def test_hinge_margin_equals_logit_margin_through_summarize():
    torch = pytest.importorskip("torch")
    from harness.tokenstats import summarize

    g = torch.Generator().manual_seed(0)
    B, T, V = 2, 9, 13
    logits = torch.randn(B, T, V, generator=g) * 3
    null = torch.randn(B, T, V, generator=g) * 3
    targets = torch.randint(0, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 6:] = False

    def logit_hinge(d, b):
        m = mask[b]
        dt = d[b][m]
        y = targets[b][m]
        true = dt.gather(-1, y[:, None]).squeeze(-1)
        other = dt.scatter(-1, y[:, None], float("-inf")).max(-1).values
        return -float((true - other).mean())

    cond = summarize(logits, targets, mask)
    contrast = summarize(logits, targets, mask, null_logits=null)
    got_c = run(impl.Hinge(mode="conditional"), *cond, output=TOKEN_STATS_CONDITIONAL)["hinge"]
    got_x = run(impl.Hinge(), *contrast)["hinge"]
    for b in range(B):
        assert got_c[b] == pytest.approx(logit_hinge(logits, b), abs=1e-5)
        assert got_x[b] == pytest.approx(logit_hinge(logits - null, b), abs=1e-5)
    # Loss from the same stats is the cross-entropy of the contrast logits
    ce = torch.nn.functional.cross_entropy((logits - null)[0], targets[0])
    assert run(impl.Loss(), *contrast)["loss"][0] == pytest.approx(float(ce), abs=1e-5)


# ------------------------------------------------------------------------ orientation, names


def expected_orientation():
    return {
        "loss": False, "zlib": False, "hinge": False,
        **{f"min-k/k{k}": False for k in ("0.1", "0.2", "0.3", "0.4", "0.5")},
        **{f"min-k-plus-plus/k{k}": False for k in ("0.1", "0.2", "0.3", "0.4", "0.5")},
        "surp/k0.2-h2": True,
        "camia/below-mean": False, "camia/below-mean-mkpp": False,
        "camia/below-prev-mean": True, "camia/below-prev-mean-mkpp": True,
        "camia/slope": False,  # the IAR code's declaration (member_slope: lower)
    }


def test_orientation_declarations_and_groups():
    specs = {s.name: s for cls in ALL for s in cls().feature_specs()}
    assert {n: s.higher_is_member for n, s in specs.items()} == expected_orientation()
    assert specs["loss"].group == "" and specs["loss"].index == ""
    assert specs["min-k/k0.2"].group == "min-k" and specs["min-k/k0.2"].index == "k0.2"
    assert specs["camia/slope"].group == "camia" and specs["camia/slope"].index == "slope"
    # the other reading is a named parameter; only the slope's direction changes
    flipped = {s.name: s.higher_is_member for s in impl.Camia(member_slope="higher").feature_specs()}
    assert flipped["camia/slope"] is True and flipped["camia/below-mean"] is False
    with pytest.raises(ConfigError, match="member_slope"):
        impl.Camia(member_slope="up")
    coded = impl.Surp(variant="iar-code").feature_specs()
    assert len(coded) == 40 and not any(s.higher_is_member for s in coded)
    assert [s.index for s in coded[:5]] == ["mean-k0.1-h2", "mean-k0.1-h4", "mean-k0.1-h8",
                                            "mean-k0.1-h16", "mean-k0.2-h2"]
    assert coded[20].index == "count-k0.1-h2"


def test_feature_names_are_valid_mlflow_metric_names():
    import posixpath

    names = [s.name for cls in ALL for s in cls().feature_specs()]
    names += [s.name for s in impl.Surp(variant="iar-code").feature_specs()]
    names += [s.name for s in impl.MinK(k=[0.05, 0.6, 1]).feature_specs()]
    assert len(names) == len(set(names))
    for n in names:
        assert re.match(r"^[/\w.\- ]*$", n), n
        assert posixpath.normpath(n) == n, n


def test_synthetic_member_is_more_member_like_for_every_default_feature():
    """Member: log-probs mostly near 0 with a few low outliers, rising along the sequence, wide
    margins; non-member: lower, symmetric noise, falling slightly. After orientation every default
    feature must rank the member higher. The rising log-probs are the harness's hypothesis for
    CAMIA's slope (``member_slope: higher``); the default follows the IAR code's declaration
    (lower = member) and so ranks this member lower."""
    n = 200
    i = np.arange(n)
    rng = np.random.default_rng(3)
    member = -1.0 + 0.9 * i / n - 0.05 * rng.random(n)
    member[::20] -= 4.0
    nonmember = -3.0 - 0.5 * i / n + rng.uniform(-1, 1, n)
    ids = rng.integers(0, 1024, n)
    mu = np.full(n, -1.5)
    m_st = stats(member, max_other=np.full(n, -3.0), mu=mu, ids=ids)
    n_st = stats(nonmember, max_other=np.full(n, -0.5), mu=mu, ids=ids)
    checked = set()
    for cls in ALL:
        attack = cls(member_slope="higher") if cls is impl.Camia else cls()
        out = run(attack, m_st, n_st)
        for spec in attack.feature_specs():
            s = out[spec.name] if spec.higher_is_member else -out[spec.name]
            assert s[0] > s[1], (spec.name, out[spec.name])
            checked.add(spec.name)
    assert checked == set(expected_orientation())
    default = {s.name: s for s in impl.Camia().feature_specs()}["camia/slope"]
    slope = run(impl.Camia(), m_st, n_st)["camia/slope"]
    assert not default.higher_is_member and -slope[0] < -slope[1]


# --------------------------------------------------------------------- modes, params, edges


def test_mode_switches_needs_and_reads_that_output():
    for cls in ALL:
        assert cls().needs() == {TOKEN_STATS_CONTRAST}
        assert cls(mode="conditional").needs() == {TOKEN_STATS_CONDITIONAL}
        with pytest.raises(ConfigError, match="mode"):
            cls(mode="cfg")
    cond = stats([-0.2] * 4)
    assert one(impl.Loss(mode="conditional"), cond, output=TOKEN_STATS_CONDITIONAL)["loss"] == \
        pytest.approx(0.2)
    with pytest.raises(KeyError, match="needs"):
        one(impl.Loss(), cond, output=TOKEN_STATS_CONDITIONAL)


def test_unknown_and_bad_params_raise_config_error():
    with pytest.raises(ConfigError, match="Did you mean 'k'"):
        impl.MinK(kk=[0.2])
    with pytest.raises(ConfigError, match="Did you mean 'max_entropy'"):
        impl.Surp(max_entropies=[2.0])
    with pytest.raises(ConfigError, match="normalize"):
        impl.MinKPlusPlus(normalize="sd")
    with pytest.raises(ConfigError, match="outside"):
        impl.MinK(k=[0.0, 0.2])
    with pytest.raises(ConfigError, match="repeats"):
        impl.MinK(k=[0.2, 0.2])
    with pytest.raises(ConfigError, match="variant"):
        impl.Surp(variant="coded")
    with pytest.raises(ConfigError, match="empty_value"):
        impl.Surp(variant="iar-code", empty_value=0.0)
    with pytest.raises(ConfigError, match="eps"):
        impl.Camia(eps=-1)
    assert [s.name for s in impl.MinK(k=0.2).feature_specs()] == ["min-k/k0.2"]


def test_empty_and_one_token_samples_give_nan_not_crash():
    empty = stats([])
    single = stats([-0.3])
    for cls in ALL + [lambda: impl.Surp(variant="iar-code")]:
        attack = cls()
        out = run(attack, empty, single, HAND)
        for name, v in out.items():
            assert math.isnan(v[0]), name
            assert np.isfinite(v[2]) or name.startswith("min-k") or name.startswith("surp/"), name
    assert math.isnan(one(impl.Camia(), single)["camia/slope"])
    assert one(impl.Camia(), single)["camia/below-mean"] == 0.0


def test_non_finite_values_become_nan():
    vocab_of_one = stats([0.0, 0.0], max_other=[-np.inf, -np.inf])   # margin +inf
    assert math.isnan(one(impl.Hinge(), vocab_of_one)["hinge"])


def test_malformed_token_stats_raise_data_error():
    bad = TokenStats(np.zeros(3), np.zeros(2), np.zeros(3), np.zeros(3), np.zeros(3, np.int64))
    with pytest.raises(DataError, match="different lengths"):
        run(impl.Loss(), bad)
    ctx = BatchContext(None, [Sample("a", "/a"), Sample("b", "/b")], 0,
                       {TOKEN_STATS_CONTRAST: [HAND]})
    with pytest.raises(DataError, match="exactly one per sample"):
        impl.Loss().extract(ctx)


def test_attacks_share_per_sample_preparation_in_a_batch():
    ctx = BatchContext(None, [Sample("a", "/a")], 0, {TOKEN_STATS_CONTRAST: [HAND]})
    impl.MinK().extract(ctx)
    prepared = ctx._memo[(impl._PREPARED_KEY, TOKEN_STATS_CONTRAST)]
    impl.Camia().extract(ctx)
    assert ctx._memo[(impl._PREPARED_KEY, TOKEN_STATS_CONTRAST)] is prepared


# ---------------------------------------------------------------------------- registration


def test_register_attacks_lists_the_seven_lazily():
    got = {}

    def register(name, factory, *, family="any", description=""):
        got[name] = (factory, family, description)

    entry.register_attacks(register)
    assert set(got) == {"loss", "zlib", "hinge", "min-k", "min-k-plus-plus", "surp", "camia"}
    for name, (factory, family, description) in got.items():
        assert family == "autoregressive" and description
        mod, _, attr = factory.partition(":")
        cls = getattr(__import__(mod, fromlist=[attr]), attr)
        assert cls.registered_name == name and cls.family == "autoregressive"
