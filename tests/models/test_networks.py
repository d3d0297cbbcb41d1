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
    if config.get("tie_embeddings") and config.get("output_dim") is not None:
        config["output_dim"] = config["embedding_dim"]  # the only size that ties
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


@pytest.mark.parametrize("class_name", ["TransformerEncoder", "TransformerDecoder"])
def test_activation_dropout_sets_the_feed_forward_rate_only(class_name):
    cls = zoo.layers.NETWORKS.get_class(class_name)
    shape = dict(vocab_size=20, dim=8, num_layers=2, num_heads=2, ff_dim=16)
    inherits = cls(dropout=0.3, **shape)  # older configs lack the key: the old behaviour
    assert [b["ffn"].drop.rate for b in inherits.blocks] == [0.3, 0.3]
    own = cls(dropout=0.3, activation_dropout=0.0, **shape)
    assert [b["ffn"].drop.rate for b in own.blocks] == [0.0, 0.0]
    assert own.drop.rate == 0.3  # residual and embedding dropout untouched
    older = {k: v for k, v in inherits.get_config().items() if k != "activation_dropout"}
    assert [b["ffn"].drop.rate for b in cls.from_config(older).blocks] == [0.3, 0.3]


def test_activation_dropout_is_the_only_noise_when_the_others_are_off():
    import numpy as np

    shape = dict(vocab_size=20, dim=8, num_layers=1, num_heads=2, ff_dim=64)
    ids = np.array([[4, 5, 6, 7, 3]])
    quiet = zoo.layers.TransformerEncoder(dropout=0.0, activation_dropout=0.0, **shape)
    a = quiet(ids, training=True)["outputs"]
    np.testing.assert_allclose(a, quiet(ids, training=False)["outputs"], atol=1e-6)
    noisy = zoo.layers.TransformerEncoder(dropout=0.0, activation_dropout=0.5, **shape)
    noisy.build()
    noisy.set_weights(quiet.get_weights())
    assert np.abs(noisy(ids, training=True)["outputs"] - a).max() > 1e-3


@pytest.mark.parametrize("field", ["dropout", "attention_dropout", "activation_dropout"])
def test_dropout_rates_outside_zero_one_are_refused_by_name(field):
    with pytest.raises(ValueError, match=f"{field} must be in \\[0, 1\\)"):
        zoo.layers.TransformerEncoder(vocab_size=20, dim=8, num_layers=1, num_heads=2,
                                      ff_dim=16, **{field: 1.0})
