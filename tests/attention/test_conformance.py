"""The attention contract, checked for every registered variant.

Parametrized over the registry: registering a variant puts it through every test here.
"""

import inspect
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo.attention
from conftest import ATTENTION_NAMES, equal_drawn_weights, make_attention

B, TQ, TV, D = 2, 4, 5, 6
VALUE_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
QUERY_MASK = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)


def inputs(rng, tq=TQ, tv=TV, zero_masked=True):
    q = rng.normal(size=(B, tq, D)).astype("float32")
    v = rng.normal(size=(B, tv, D)).astype("float32")
    if zero_masked and tv == TV:
        v = v * VALUE_MASK[:, :, None]
    return q, v


def out_dim(layer):
    return layer.compute_output_shape((B, TQ, D), (B, TV, D))[-1]


def weights_shape(layer, tq):
    return (B, layer.num_heads, tq, TV) if layer.has_heads else (B, tq, TV)


@pytest.mark.parametrize("name", ATTENTION_NAMES)
@pytest.mark.parametrize("tq", [1, TQ])
def test_eager_shapes_and_call_matches_attend(name, tq, rng):
    layer = make_attention(name)
    q, v = inputs(rng, tq=tq)
    context, weights = layer.attend(query=q, value=v, value_mask=VALUE_MASK)
    assert tuple(context.shape) == (B, tq, out_dim(layer))
    assert tuple(weights.shape) == weights_shape(layer, tq)
    np.testing.assert_allclose(layer(query=q, value=v, value_mask=VALUE_MASK), context,
                               atol=1e-6)


@pytest.mark.parametrize("name", ATTENTION_NAMES)
@pytest.mark.parametrize("tq", [1, None])
def test_symbolic_shapes(name, tq):
    layer = make_attention(name)
    q = keras.Input((tq, D))
    v = keras.Input((None, D))
    out = layer(query=q, value=v)
    assert tuple(out.shape) == (None, tq, out_dim(layer))


@pytest.mark.parametrize("name", ATTENTION_NAMES)
def test_separate_key(name, rng):
    layer = make_attention(name)
    q, v = inputs(rng)
    k = rng.normal(size=(B, TV, D)).astype("float32")
    ctx_k, _ = layer.attend(query=q, value=v, key=k, value_mask=VALUE_MASK)
    ctx_v, _ = layer.attend(query=q, value=v, value_mask=VALUE_MASK)
    assert tuple(ctx_k.shape) == tuple(ctx_v.shape)
    if layer.content_based:
        assert not np.allclose(ctx_k, ctx_v), "the key must change the scores"
    else:  # a fixed context: neither the key nor the query moves it
        ctx_q, _ = layer.attend(query=2 * q + 1, value=v, key=k, value_mask=VALUE_MASK)
        np.testing.assert_allclose(ctx_k, ctx_v, atol=1e-6)
        np.testing.assert_allclose(ctx_q, ctx_v, atol=1e-6)


@pytest.mark.parametrize("name", ATTENTION_NAMES)
def test_step_shapes(name, rng):
    layer = make_attention(name)
    layer.build((None, None, D), (None, None, D))
    q, v = inputs(rng)
    memory = layer.prepare(value=v, value_mask=VALUE_MASK)
    state = layer.initial_state(B, TV)
    context, weights, state2 = layer.step(q[:, 0], memory, state)
    assert tuple(context.shape) == (B, out_dim(layer))
    expected = (B, layer.num_heads, TV) if layer.has_heads else (B, TV)
    assert tuple(weights.shape) == expected
    assert set(state2) == set(state)
    for k in state:
        assert tuple(state2[k].shape) == tuple(state[k].shape)
    assert bool(layer.has_state) == bool(state)


@pytest.mark.parametrize("name", ATTENTION_NAMES)
def test_a_step_without_a_memory_mask_sees_every_key(name, rng):
    """``memory["mask"] = None`` (a decoder cache of real positions only) steps as an
    all-true mask does, for three steps of a stateful variant too."""
    layer = make_attention(name)
    layer.build((None, None, D), (None, None, D))
    q, v = inputs(rng, zero_masked=False)
    memory = layer.prepare(value=v, value_mask=np.ones((B, TV), bool))
    unmasked = {**memory, "mask": None}
    state_a = state_b = layer.initial_state(B, TV)
    for t in range(3):
        ctx_a, w_a, state_a = layer.step(q[:, t], memory, state_a)
        ctx_b, w_b, state_b = layer.step(q[:, t], unmasked, state_b)
        np.testing.assert_allclose(ctx_b, ctx_a, atol=1e-6)
        np.testing.assert_allclose(w_b, w_a, atol=1e-6)
    for k in state_a:
        np.testing.assert_allclose(state_b[k], state_a[k], atol=1e-6)


@pytest.mark.parametrize("name", ATTENTION_NAMES)
@pytest.mark.parametrize("training", [False, True])
def test_stepping_equals_full_call(name, training, rng):
    layer = make_attention(name)
    q, v = inputs(rng)
    full_ctx, full_w = layer.attend(query=q, value=v, value_mask=VALUE_MASK,
                                    query_mask=QUERY_MASK, training=training)
    memory = layer.prepare(value=v, value_mask=VALUE_MASK)
    state = layer.initial_state(B, TV)
    for t in range(TQ):
        ctx, w, state = layer.step(q[:, t], memory, state, query_mask=QUERY_MASK[:, t],
                                   training=training)
        np.testing.assert_allclose(ctx, full_ctx[:, t], atol=1e-5, err_msg=f"step {t}")
        np.testing.assert_allclose(w, full_w[..., t, :], atol=1e-5, err_msg=f"step {t}")


@pytest.mark.parametrize("name", ATTENTION_NAMES)
def test_masked_keys_get_zero_weight_and_zero_gradient(name, rng):
    layer = make_attention(name)
    q, v = inputs(rng, zero_masked=False)
    k = rng.normal(size=(B, TV, D)).astype("float32")
    q, v, k = map(tf.constant, (q, v, k))
    probe = tf.constant(rng.normal(size=(B, TQ, 1)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([v, k])
        ctx, w = layer.attend(query=q, value=v, key=k, value_mask=VALUE_MASK, training=True)
        loss = tf.reduce_sum(ctx * probe)
    w = np.asarray(w)
    masked = ~VALUE_MASK
    assert np.all(w[0, ..., masked[0]] == 0.0) if not layer.has_heads else np.all(
        w[0, :, :, masked[0]] == 0.0)
    for grad in tape.gradient(loss, [v, k]):
        if grad is None:  # a key that no score reads (a fixed-context variant)
            assert not layer.content_based
            continue
        grad = np.asarray(grad)
        assert np.all(np.isfinite(grad))
        assert np.all(grad[masked] == 0.0), "masked keys must receive no gradient"
    assert np.any(np.asarray(tape.gradient(loss, v))[VALUE_MASK] != 0)


@pytest.mark.parametrize("name", ATTENTION_NAMES)
def test_fully_masked_row_gives_zeros_not_nan(name, rng):
    layer = make_attention(name)
    q, v = inputs(rng)
    mask = VALUE_MASK.copy()
    mask[0] = False
    q, v = tf.constant(q), tf.constant(v)
    with tf.GradientTape() as tape:
        tape.watch([q, v])
        ctx, w = layer.attend(query=q, value=v, value_mask=mask, training=True)
        loss = tf.reduce_sum(ctx)
    assert np.all(np.isfinite(ctx)) and np.all(np.isfinite(w))
    assert np.all(np.asarray(w)[0] == 0.0)
    for grad in tape.gradient(loss, [q, v] + list(layer.trainable_weights)):
        if grad is not None:
            assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("name", ATTENTION_NAMES)
def test_query_mask_zeroes_context_and_weights(name, rng):
    layer = make_attention(name)
    q, v = inputs(rng)
    ctx, w = layer.attend(query=q, value=v, value_mask=VALUE_MASK, query_mask=QUERY_MASK)
    ctx, w = np.asarray(ctx), np.asarray(w)
    assert np.all(ctx[1, 2:] == 0.0)
    assert np.all((w[1, :, 2:] if layer.has_heads else w[1, 2:]) == 0.0)
    assert np.any(ctx[1, :2] != 0.0)


@pytest.mark.parametrize("name", ATTENTION_NAMES)
def test_implicit_and_explicit_masks_agree(name, rng):
    layer = make_attention(name)
    q, v = inputs(rng)
    q = q * QUERY_MASK[:, :, None]  # Masking(0.0) derives the implicit masks from zeros
    qi, vi = keras.Input((TQ, D)), keras.Input((TV, D))
    out = layer(query=keras.layers.Masking(0.0)(qi), value=keras.layers.Masking(0.0)(vi))
    implicit = keras.Model([qi, vi], out)([q, v])
    explicit = layer(query=q, value=v, query_mask=QUERY_MASK, value_mask=VALUE_MASK)
    unmasked = layer(query=q, value=v)
    np.testing.assert_allclose(implicit, explicit, atol=1e-6)
    assert not np.allclose(unmasked, explicit, atol=1e-4), "the mask must matter"


@pytest.mark.parametrize("name", ATTENTION_NAMES)
def test_every_constructor_argument_round_trips(name, rng):
    layer = make_attention(name)
    config = layer.get_config()
    params = [p for p in inspect.signature(type(layer).__init__).parameters
              if p not in ("self", "kwargs")]
    missing = [p for p in params if p not in config]
    assert not missing, f"constructor arguments missing from get_config: {missing}"
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    q, v = inputs(rng)
    expected = layer(query=q, value=v, value_mask=VALUE_MASK)
    clone(query=q, value=v, value_mask=VALUE_MASK)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(query=q, value=v, value_mask=VALUE_MASK), expected,
                               atol=1e-6)


@pytest.mark.parametrize("name", ATTENTION_NAMES)
def test_weights_start_independent(name, rng):
    """No two weights start equal: one initializer instance shared by the projections gave
    q, k, v and the output projection the same values."""
    layer = make_attention(name)
    q, v = inputs(rng)
    layer(query=q, value=v)
    assert not equal_drawn_weights(layer.weights)


SEEDABLE = [n for n in ATTENTION_NAMES if "kernel_initializer"
            in inspect.signature(zoo.attention.REGISTRY.get_class(n).__init__).parameters]


@pytest.mark.parametrize("name", SEEDABLE)
def test_a_seeded_initializer_is_reproducible_and_still_independent(name, rng):
    q, v = inputs(rng)

    def build():
        layer = make_attention(name, kernel_initializer=keras.initializers.GlorotUniform(7))
        layer(query=q, value=v)
        return layer

    first, second = build(), build()
    assert not equal_drawn_weights(first.weights)
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(a, b, err_msg=a.path)


def _functional(layer):
    qi, vi = keras.Input((None, D)), keras.Input((None, D))
    mi = keras.Input((None,), dtype="bool")
    out = layer(query=qi, value=vi, value_mask=mi)
    out = keras.layers.Dense(3)(out)
    return keras.Model([qi, vi, mi], out)


@pytest.mark.parametrize("name", ATTENTION_NAMES)
def test_keras_file_save_load_safe_mode(name, rng, tmp_path):
    layer = make_attention(name)
    model = _functional(layer)
    q, v = inputs(rng)
    expected = model([q, v, VALUE_MASK])
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    reloaded_layer = [lyr for lyr in loaded.layers if isinstance(lyr, zoo.attention.Attention)]
    assert len(reloaded_layer) == 1 and type(reloaded_layer[0]) is type(layer)
    np.testing.assert_allclose(loaded([q, v, VALUE_MASK]), expected, atol=1e-6)


@pytest.mark.parametrize("name", ATTENTION_NAMES)
def test_one_fit_step_in_a_functional_model(name, rng):
    layer = make_attention(name)
    model = _functional(layer)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    q, v = inputs(rng)
    y = rng.normal(size=(B, TQ, 3)).astype("float32")
    before = [np.array(w) for w in layer.trainable_weights]
    history = model.fit([q, v, VALUE_MASK], y, epochs=1, batch_size=B, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [np.array(w) for w in layer.trainable_weights]
    if before:  # variants with weights must train
        assert any(not np.allclose(a, b) for a, b in zip(after, before))
    for w in after:
        assert np.all(np.isfinite(w))


@pytest.mark.parametrize("name", ATTENTION_NAMES)
def test_gradients_are_finite_and_reach_the_weights(name, rng):
    layer = make_attention(name)
    q, v = inputs(rng)
    layer.attend(query=q, value=v)  # build
    with tf.GradientTape() as tape:
        ctx, _ = layer.attend(query=q, value=v, value_mask=VALUE_MASK, training=True)
        loss = tf.reduce_sum(tf.square(ctx))
    grads = tape.gradient(loss, layer.trainable_weights)
    for g in grads:
        assert g is not None and np.all(np.isfinite(g))
    if grads:
        assert any(np.any(np.asarray(g) != 0) for g in grads)


@pytest.mark.parametrize("name", ATTENTION_NAMES)
def test_mixed_float16(name, rng):
    ref = make_attention(name)
    half = make_attention(name, dtype="mixed_float16")
    q, v = inputs(rng)
    expected = ref(query=q, value=v, value_mask=VALUE_MASK)
    half(query=q, value=v, value_mask=VALUE_MASK)
    half.set_weights(ref.get_weights())
    ctx, w = half.attend(query=q, value=v, value_mask=VALUE_MASK)
    assert ctx.dtype == "float16" and w.dtype == "float16"
    assert np.all(np.isfinite(np.asarray(ctx, "float32")))
    masked = np.asarray(w, "float32")[0, ..., 3:]
    assert np.all(masked == 0.0)
    np.testing.assert_allclose(np.asarray(ctx, "float32"), expected, atol=3e-2, rtol=3e-2)
    # Also under a global policy, inside a trained functional model.
    keras.config.set_dtype_policy("mixed_float16")
    model = _functional(make_attention(name))
    model.compile(optimizer="adam", loss="mse")
    y = np.zeros((B, TQ, 3), "float32")
    loss = model.fit([q, v, VALUE_MASK], y, epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(loss)


@pytest.mark.parametrize("name", ATTENTION_NAMES)
def test_dropout_only_in_training(name, rng):
    layer = make_attention(name, dropout=0.5, seed=3)
    q, v = inputs(rng)
    a = layer(query=q, value=v, training=False)
    b = layer(query=q, value=v, training=False)
    np.testing.assert_array_equal(a, b)
    c = layer(query=q, value=v, training=True)
    assert np.all(np.isfinite(c)) and not np.allclose(a, c)


@pytest.mark.parametrize("name", ATTENTION_NAMES)
def test_registry_resolves_name_config_and_instance(name):
    layer = make_attention(name)
    assert zoo.attention.get(layer) is layer
    assert type(zoo.attention.get(name)) is type(layer)
    from_serialized = zoo.attention.get(keras.saving.serialize_keras_object(layer))
    assert type(from_serialized) is type(layer)
    assert from_serialized.get_config() == layer.get_config()
    short = zoo.attention.get({"class_name": name, "config": {"dropout": 0.25}})
    assert type(short) is type(layer) and short.dropout == 0.25


@pytest.mark.parametrize("name", ATTENTION_NAMES)
def test_docstring_has_args_and_example(name):
    doc = zoo.attention.REGISTRY.get_class(name).__doc__ or ""
    assert "Args:" in doc and "Example:" in doc
