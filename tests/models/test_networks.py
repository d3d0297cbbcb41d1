"""Every registered encoder/decoder network: every constructor argument round-trips through
``get_config`` under its own name (parametrized over ``zoo.layers.NETWORKS``, so a new network
is checked the moment it is registered)."""

import inspect

import keras
import numpy as np
import pytest

import zoo.layers
from conftest import equal_drawn_weights
from zoo.models import presets


def _config_of(class_name):
    """A preset's config of this network, with every boolean option flipped from its default
    so that a lost argument shows."""
    for name in presets.names(trained=False):
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


def _layer_norm(x, norm):
    g, b = (keras.ops.convert_to_numpy(w) for w in norm.weights)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + norm.epsilon) * g + b


def test_post_norm_normalises_after_each_residual_sum():
    """normalize_first=False is Vaswani et al.'s layer: norm(x + f(x)), no final norm."""
    enc = zoo.layers.TransformerEncoder(vocab_size=20, dim=8, num_layers=1, num_heads=2,
                                        ff_dim=16, dropout=0.0, normalize_first=False)
    ids = np.array([[4, 5, 3, 0], [7, 2, 0, 0]])
    enc(ids)
    assert enc.final_norm is None and not any("final_norm" in w.path for w in enc.weights)
    rng = np.random.default_rng(0)
    for w in enc.weights:  # norms away from (1, 0), so that a skipped one shows
        w.assign(rng.normal(size=w.shape).astype("float32") * 0.5 + (
            1.0 if w.path.endswith("gamma") else 0.0))
    b = enc.blocks[0]
    mask = ids != 0
    x = keras.ops.convert_to_numpy(enc.embedding(ids))
    attn = keras.ops.convert_to_numpy(b["attn"](query=x, value=x, query_mask=mask,
                                                value_mask=mask))
    y = _layer_norm(x + attn, b["norm1"])
    w1, b1, w2, b2 = (keras.ops.convert_to_numpy(w) for w in (
        b["ffn"].inner.kernel, b["ffn"].inner.bias, b["ffn"].outer.kernel, b["ffn"].outer.bias))
    expected = _layer_norm(y + np.maximum(y @ w1 + b1, 0.0) @ w2 + b2, b["norm2"])
    got = keras.ops.convert_to_numpy(enc(ids)["outputs"])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    pre = zoo.layers.TransformerEncoder.from_config({**enc.get_config(),
                                                     "normalize_first": True})
    pre(ids)
    assert len(pre.weights) == len(enc.weights) + 2  # the final norm's gamma and beta


def _packed_vs_padded(model, x, target):
    """Logits and every gradient of a masked loss, with the stacks packed and padded."""
    import tensorflow as tf

    real = target != 0
    out = []
    for pack in (False, True):
        model.encoder.pack_training = model.decoder.pack_training = pack
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_sum(tf.where(real[..., None], logits, 0.0) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        out.append((keras.ops.convert_to_numpy(logits)[real],
                    [keras.ops.convert_to_numpy(tf.convert_to_tensor(g)) for g in grads]))
    return out


#: T5's options (imported models): RMS norms, relative position bias, gated GELU, no biases.
T5_OPTIONS = {"norm": "rms", "positions": "relative", "gated_ffn": True, "use_bias": False,
              "activation": "gelu_approximate", "head_dim": 6, "relative_buckets": 8,
              "relative_max_distance": 6}


#: BART's (imported models): learned positions per stack, a norm on the embeddings, GELU.
BART_OPTIONS = {"positions": "learned", "max_positions": 256, "embedding_norm": True,
                "activation": "gelu", "norm_epsilon": 1e-5}


@pytest.mark.parametrize("normalize_first,options", [(True, {}), (False, {}),
                                                     (True, T5_OPTIONS),
                                                     (False, BART_OPTIONS)])
def test_packed_training_equals_padded_training(normalize_first, options):
    """``pack_training`` runs the layers on the real positions only: same logits at real
    positions, same gradients for every weight (dropout off, so both see the same maths)."""
    from zoo.models import Translator

    keras.utils.set_random_seed(1)
    net = {"dim": 16, "num_layers": 2, "num_heads": 2, "ff_dim": 24,
           "normalize_first": normalize_first, **options}
    model = Translator.from_preset("transformer_tiny", vocab_size=40, dropout=0.0,
                                   encoder=net, decoder=net)
    rng = np.random.default_rng(0)
    src = rng.integers(4, 40, (3, 7)).astype("int32")
    src[1, 4:] = 0
    src[2, 2:] = 0
    tgt = rng.integers(4, 40, (3, 6)).astype("int32")
    tgt[0, 3:] = 0
    tgt[2, 1:] = 0
    (l0, g0), (l1, g1) = _packed_vs_padded(model, {"source": src, "target": tgt}, tgt)
    np.testing.assert_allclose(l1, l0, atol=1e-4, rtol=1e-5)
    assert len(g0) == len(model.trainable_variables) and all(g.any() for g in g0)
    for v, a, b in zip(model.trainable_variables, g0, g1):
        np.testing.assert_allclose(b, a, atol=1e-3, rtol=1e-4, err_msg=v.path)


def test_packed_training_of_a_copying_transformer_equals_padded():
    from zoo.models import Summarizer

    keras.utils.set_random_seed(2)
    net = {"dim": 16, "num_layers": 1, "num_heads": 2, "ff_dim": 16}
    model = Summarizer.from_preset("transformer_summarizer", vocab_size=30, encoder=net,
                                   decoder=net, dropout=0.0)
    src = np.array([[5, 6, 7, 3, 0], [8, 9, 9, 7, 3]], "int32")
    tgt = np.array([[2, 5, 6, 0], [2, 9, 8, 7]], "int32")
    (l0, g0), (l1, g1) = _packed_vs_padded(model, {"source": src, "target": tgt}, tgt)
    np.testing.assert_allclose(l1, l0, atol=1e-4)
    for v, a, b in zip(model.trainable_variables, g0, g1):
        np.testing.assert_allclose(b, a, atol=1e-3, rtol=1e-4, err_msg=v.path)


def test_compile_packs_the_stacks_only_where_shapes_may_change():
    from zoo.models import Translator

    model = Translator.from_preset("transformer_tiny", vocab_size=30, dim=16, ff_dim=16,
                                   num_heads=2)
    model.compile()
    assert model.encoder.pack_training and model.decoder.pack_training
    model.compile(jit_compile=True)  # XLA needs static shapes
    assert not model.encoder.pack_training and not model.decoder.pack_training


def test_transformer_cache_rolls_a_window_or_grows_and_both_step_alike():
    """A window keeps max_length slots (constant shapes for XLA and LiteRT); a growing cache
    holds the steps so far, and in a graph its length is unknown until run (a loop grows it).
    Both give the same logits and weights at every step."""
    import tensorflow as tf

    keras.utils.set_random_seed(3)
    enc = zoo.layers.TransformerEncoder(vocab_size=30, dim=8, num_layers=2, num_heads=2,
                                        ff_dim=16, dropout=0.0)
    dec = zoo.layers.TransformerDecoder(vocab_size=30, dim=8, num_layers=2, num_heads=2,
                                        ff_dim=16, dropout=0.0)
    src = np.array([[4, 5, 6, 3], [7, 8, 3, 0]])
    encoded = enc(src)
    dec(np.array([[2, 9], [2, 9]]), encoded)  # builds it
    memory = dec.prepare_memory(encoded)
    window = dec.initial_state(encoded, 5)
    grown = dec.initial_state(encoded, 5, growing=True)
    assert tuple(grown["layers"][0]["keys"].shape)[-1] == 0
    for t, tok in enumerate([2, 9, 11, 4]):
        ids = np.full((2,), tok)
        a, window, wa = dec.step(ids, window, memory)
        b, grown, wb = dec.step(ids, grown, memory)
        np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_allclose(wa, wb, atol=1e-6)
        assert tuple(window["layers"][1]["values"].shape)[2] == 5
        assert tuple(grown["layers"][1]["values"].shape)[2] == t + 1

    @tf.function
    def traced(enc_out, mask):
        return dec.initial_state({"outputs": enc_out, "mask": mask}, 5, growing=True)

    state = traced.get_concrete_function(tf.TensorSpec([2, 4, 8]), tf.TensorSpec([2, 4], "bool"))
    assert state.structured_outputs["layers"][0]["keys"].shape.as_list() == [2, 2, 4, None]


@pytest.mark.parametrize("name", presets.names(trained=False))
def test_no_two_weights_of_a_preset_start_equal(name):
    """Every preset's random weights are drawn independently (a shared initializer instance
    once gave each attention's q, k, v and output projections the same start). Weights with
    few distinct values (zeros, an LSTM's unit forget bias) are set, not drawn."""
    from zoo.models import REGISTRY

    model = REGISTRY.get_class(presets.get_preset(name)["class"]).from_preset(
        name, vocab_size=50)
    model.build()
    assert not equal_drawn_weights(model.weights)


def test_relative_position_buckets_match_hand_computed_values():
    """T5's bucketing (Raffel et al. 2020), computed by hand: exact below half the buckets,
    then logarithmic up to max_distance, one bucket beyond; the bidirectional form gives keys
    after the query their own half."""
    both = zoo.layers.RelativePositionBias(num_heads=1, num_buckets=8, max_distance=16)
    # n = 4 per side, 2 exact: d = -5 -> 2 + floor(log(5 / 2) / log(16 / 2) * 2) = 2 + 0;
    # d = -7 -> 2 + floor(log(3.5) / log(8) * 2) = 2 + 1; beyond: the last bucket, 3.
    distances = np.array([0, 1, -1, -2, -5, -7, -100, 7])
    assert both.buckets(distances).numpy().tolist() == [0, 5, 1, 2, 2, 3, 3, 7]
    causal = zoo.layers.RelativePositionBias(num_heads=1, bidirectional=False, num_buckets=8,
                                             max_distance=16)
    # 4 exact; d = -9 -> 4 + floor(log(9 / 4) / log(16 / 4) * 4) = 4 + 2; keys after: 0.
    assert causal.buckets(np.array([3, -3, -4, -9, -20])).numpy().tolist() == [0, 3, 4, 6, 7]


@pytest.mark.parametrize("options", [T5_OPTIONS, dict(BART_OPTIONS, normalize_first=False)])
def test_t5_and_bart_options_step_equals_teacher_forcing_in_both_caches(options):
    """With relative position bias (past max_distance), RMS norms, gated GELU and no biases
    (T5), or learned positions and embedding norms, post-norm (BART), a decoder step over a
    rolled window or a grown cache gives teacher forcing's logits."""
    keras.utils.set_random_seed(4)
    enc = zoo.layers.TransformerEncoder(vocab_size=30, dim=12, num_layers=2, num_heads=2,
                                        ff_dim=16, dropout=0.0, **options)
    dec = zoo.layers.TransformerDecoder(vocab_size=30, dim=12, num_layers=2, num_heads=2,
                                        ff_dim=16, dropout=0.0, **options)
    encoded = enc(np.array([[4, 5, 6, 7, 8, 9, 3], [7, 8, 3, 0, 0, 0, 0]]))
    target = np.array([[2, 9, 11, 4, 5, 6, 7, 8, 10, 12], [2, 5, 6, 7, 8, 9, 10, 11, 12, 13]])
    full = dec(target, encoded).numpy()
    memory = dec.prepare_memory(encoded)
    for growing in (False, True):
        state = dec.initial_state(encoded, 12, growing=growing)
        for t in range(target.shape[1]):
            logits, state, _ = dec.step(target[:, t], state, memory)
            np.testing.assert_allclose(logits, full[:, t], atol=1e-5, err_msg=f"{growing} {t}")


def test_learned_positions_are_the_table_rows_added_to_unscaled_tokens():
    """By hand: with zero token rows, the embedding of position p is row p of the table;
    the embedding norm then centres and scales each row."""
    enc = zoo.layers.TransformerEncoder(vocab_size=10, dim=4, num_layers=1, num_heads=1,
                                        ff_dim=4, positions="learned", max_positions=5)
    enc.build()
    table = np.arange(20, dtype="float32").reshape(5, 4)
    enc.position_embedding.embeddings.assign(table)
    enc.embedding.embeddings.assign(np.zeros((10, 4), "float32"))
    np.testing.assert_array_equal(enc._embed(np.array([[4, 5, 3]])).numpy()[0], table[:3])
    np.testing.assert_array_equal(enc._embed(np.array([7, 7]), np.array([4, 1])).numpy(),
                                  table[[4, 1]])
    normed = zoo.layers.TransformerEncoder(vocab_size=10, dim=4, num_layers=1, num_heads=1,
                                           ff_dim=4, positions="learned", max_positions=5,
                                           embedding_norm=True, norm_epsilon=0.0)
    normed.build()
    normed.position_embedding.embeddings.assign(table)
    normed.embedding.embeddings.assign(np.zeros((10, 4), "float32"))
    # Row [0, 1, 2, 3]: mean 1.5, variance 1.25.
    np.testing.assert_allclose(normed._embed(np.array([[4]])).numpy()[0, 0],
                               (np.arange(4) - 1.5) / np.sqrt(1.25), atol=1e-6)
