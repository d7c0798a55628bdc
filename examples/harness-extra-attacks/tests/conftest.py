import pytest

import harness_extra_attacks.plugin


@pytest.fixture(autouse=True)
def extra_attacks(register_plugin):
    """This package's plugins, for every test: a no-op when the package is installed (its entry
    point registered them already), a registration for the test when it is not."""
    register_plugin(harness_extra_attacks.plugin)
