import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import zoo.attention  # noqa: E402

# Small sizes for the variants whose defaults are large; a variant missing here is built with
# its defaults, so a newly registered one is tested without new test code.
SMALL_KWARGS = {
    "multi_head": {"num_heads": 2},
    "location": {"filters": 3, "kernel_size": 3},
    "local": {"window": 2},
    "additive": {"units": 5},
    "coverage": {"units": 5},
    "monotonic": {"units": 5},
}

ATTENTION_NAMES = zoo.attention.names()


def make_attention(name, **overrides):
    return zoo.attention.get(name, **{**SMALL_KWARGS.get(name, {}), **overrides})


@pytest.fixture(autouse=True)
def _seed_and_policy():
    keras.utils.set_random_seed(1234)
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
