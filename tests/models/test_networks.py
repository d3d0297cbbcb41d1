"""Every registered encoder/decoder network: every constructor argument round-trips through
``get_config`` under its own name (parametrized over ``zoo.layers.NETWORKS``, so a new network
is checked the moment it is registered)."""

import inspect

import keras
import pytest

import zoo.layers
from zoo.models import presets


def _config_of(class_name):
    """A preset's config of this network, with every boolean option flipped from its default
    so that a lost argument shows."""
    for name in presets.names():
        for net in presets.get_preset(name)["config"].values():
            if net["class_name"] == class_name:  # presets name networks by class
                return dict(net["config"], vocab_size=20)
    pytest.fail(f"no preset uses {class_name}: add one, or a config here")


@pytest.mark.parametrize("class_name", zoo.layers.NETWORKS.names())
def test_every_constructor_argument_round_trips(class_name):
    cls = zoo.layers.NETWORKS.get_class(class_name)
    config = _config_of(cls.__name__)
    params = {p: v for p, v in inspect.signature(cls).parameters.items()
              if v.kind == v.POSITIONAL_OR_KEYWORD}
    for p, v in params.items():
        if isinstance(v.default, bool) and p not in config:
            config[p] = not v.default
    layer = cls(**config)
    saved = layer.get_config()
    missing = sorted(set(params) - set(saved))
    assert not missing, f"{class_name}.get_config() lacks {missing}"
    for key, value in config.items():
        got = saved[key]
        if isinstance(value, (dict, str)) and key == "attention":
            continue  # serialized as a Keras config; checked by the clone below
        assert got == value, (key, got, value)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is cls and clone.get_config() == saved
