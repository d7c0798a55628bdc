import pytest

from harness.errors import ConfigError
from harness.testing import check_attack


def test_top1_rate_keeps_the_attack_contract():
    check_attack("top1-rate", vary={"mode": "conditional"}, expect_signal=True)


def test_noise_cosine_keeps_the_attack_contract():
    check_attack("noise-cosine", expect_signal=True)


def test_bad_parameters_are_named_errors():
    from harness_extra_attacks.attacks import NoiseCosine, Top1Rate

    with pytest.raises(ConfigError, match="mode must be one of contrast, conditional"):
        Top1Rate(mode="guided")
    with pytest.raises(ConfigError, match="t must be an integer >= 0"):
        NoiseCosine(t=-1)
