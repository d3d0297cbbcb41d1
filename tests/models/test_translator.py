"""Translator: one step for teacher forcing and decoding, every attention, save/load, learning."""

import json

import keras
import numpy as np
import pytest

import zoo.attention
from zoo.data import SentencePieceTokenizer, anki_spa_eng_pairs, encode_sources, make_dataset
from zoo.models import Translator, presets

TINY = {"rnn_tiny": {"units": 16, "embedding_dim": 8},
        "transformer_tiny": {"dim": 16, "ff_dim": 32, "num_heads": 2}}
SMALL_ATTENTION = {"additive": {"units": 8}, "coverage": {"units": 8},
                   "monotonic": {"units": 8}, "multi_head": {"num_heads": 2},
                   "location": {"filters": 3, "kernel_size": 3}, "local": {"window": 2}}


@pytest.fixture(scope="module")
def pairs():
    return anki_spa_eng_pairs(limit=400)


@pytest.fixture(scope="module")
def tok(pairs):
    return SentencePieceTokenizer.train([s for p in pairs for s in p], vocab_size=250)


@pytest.fixture(scope="module")
def batch(pairs, tok):
    x, y = next(iter(make_dataset(pairs[:12], tok, batch_size=12, shuffle=False,
                                  bucket=False)))
    return x, y


def _step_logits(model, x, growing=False):
    encoded = model.encode(x["source"])
    state = model.initial_state(encoded, x["target"].shape[1], growing=growing)
    memory = model.prepare_memory(encoded)
    out = []
    for t in range(x["target"].shape[1]):
        logits, state, w = model.decode_step(x["target"][:, t], state, memory)
        assert tuple(w.shape) == (x["source"].shape[0], x["source"].shape[1])
        out.append(keras.ops.convert_to_numpy(logits))
    return np.stack(out, 1)


def _check_step_equals_teacher_forcing(model, x):
    full = keras.ops.convert_to_numpy(model(x, training=False))
    real = x["target"].numpy() != 0
    # Both kinds of state: a Transformer's window of max_length and its growing cache.
    for growing in (False, True):
        stepped = _step_logits(model, x, growing)
        np.testing.assert_allclose(stepped[real], full[real], atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("preset", sorted(TINY))
def test_decode_step_equals_teacher_forcing(preset, tok, batch):
    model = Translator.from_preset(preset, tokenizer=tok, **TINY[preset])
    _check_step_equals_teacher_forcing(model, batch[0])


def test_post_norm_transformer_step_equals_teacher_forcing(tok, batch):
    model = Translator.from_preset("transformer_tiny", tokenizer=tok, normalize_first=False,
                                   **TINY["transformer_tiny"])
    assert not model.encoder.normalize_first and not model.decoder.normalize_first
    _check_step_equals_teacher_forcing(model, batch[0])


@pytest.mark.parametrize("name", zoo.attention.names())
def test_every_registered_attention_drives_an_rnn_translator(name, tok, batch):
    attention = {"class_name": name, "config": SMALL_ATTENTION.get(name, {})}
    # Luong without input feeding takes the parallel teacher-forcing path for stateless
    # attention; the others scan the step.
    for position, feeding in (("before", True), ("after", True), ("after", False)):
        # bi-GRU of 8 units -> memory of 16 = decoder units, so dot-style scores apply too
        model = Translator.from_preset("rnn_tiny", tokenizer=tok, attention=attention,
                                       attention_position=position, input_feeding=feeding,
                                       encoder={"units": 8}, **TINY["rnn_tiny"])
        _check_step_equals_teacher_forcing(model, batch[0])
    res = model.generate(batch[0]["source"][:3], max_length=6)
    assert tuple(res.tokens.shape) == (3, 1, 6)
    att = keras.ops.convert_to_numpy(res.attention)[:, 0]
    lengths = keras.ops.convert_to_numpy(res.lengths)[:, 0]
    src_len = (batch[0]["source"].numpy()[:3] != 0).sum(1)
    for i in range(3):  # no weight on source padding
        assert np.allclose(att[i, :lengths[i], src_len[i]:], 0.0)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_parallel_teacher_forcing_equals_stepping_values_and_gradients(cell, tok, batch):
    """Luong attention after the cell without input feeding: teacher forcing runs the
    recurrence over the whole target, then one attention over every position. Its logits
    equal the step that decoding runs, and so does the gradient of a loss on them."""
    import tensorflow as tf

    model = Translator.from_preset(
        "rnn_tiny", tokenizer=tok, attention="general", attention_position="after",
        input_feeding=False, cell=cell, dropout=0.0, encoder={"units": 8},
        **TINY["rnn_tiny"])
    model.build()
    assert model.decoder._parallel
    x = batch[0]
    _check_step_equals_teacher_forcing(model, x)
    real = tf.cast(x["target"] != 0, "float32")[..., None]

    def grads(logits_fn):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(logits_fn()) * real)
        return tape.gradient(loss, model.trainable_variables)

    def stepped():
        encoded = model.encode(x["source"])
        state = model.initial_state(encoded, x["target"].shape[1])
        memory = model.prepare_memory(encoded)
        out = []
        for t in range(x["target"].shape[1]):
            logits, state, _ = model.decode_step(x["target"][:, t], state, memory)
            out.append(logits)
        return tf.stack(out, 1)

    for a, b, v in zip(grads(lambda: model(x, training=False)), grads(stepped),
                       model.trainable_variables):
        a, b = tf.convert_to_tensor(a).numpy(), tf.convert_to_tensor(b).numpy()
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * np.abs(b).max() + 1e-6,
                                   err_msg=v.path)


def test_every_preset_builds_and_round_trips_its_config(tok):
    for name in presets.names("translation", trained=False):
        model = Translator.from_preset(name, tokenizer=tok)
        cfg = model.get_config()
        again = Translator.from_config(json.loads(json.dumps(cfg)))
        assert again.get_config() == cfg
        assert model.encoder.get_config() == again.encoder.get_config()


@pytest.mark.parametrize("preset", sorted(TINY))
def test_save_load_directory_same_outputs(preset, tmp_path, tok, batch):
    model = Translator.from_preset(preset, tokenizer=tok, **TINY[preset])
    x = batch[0]
    before = keras.ops.convert_to_numpy(model(x, training=False))
    texts = ["Tengo hambre.", "Hace frío hoy."]
    out_before = model.translate(texts, max_length=8)
    model.save(str(tmp_path / "m"))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        ".zoo-written.json", "model.keras", "source.model", "zoo.json"]
    loaded = Translator.load(str(tmp_path / "m"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x, training=False)), before,
                               atol=1e-6)
    assert loaded.translate(texts, max_length=8) == out_before
    assert loaded.source_tokenizer.model == tok.model


def test_trained_model_reloads_compiled_and_resumes(tmp_path, tok, batch):
    model = Translator.from_preset("rnn_tiny", tokenizer=tok, **TINY["rnn_tiny"])
    model.compile(learning_rate=1e-3, label_smoothing=0.2)
    x, y = batch
    model.fit(x, y, epochs=1, verbose=0)
    model.save(str(tmp_path / "m"))
    loaded = Translator.load(str(tmp_path / "m"))
    assert loaded.compiled and loaded.loss.label_smoothing == 0.2
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 1
    np.testing.assert_allclose(loaded.evaluate(x, y, verbose=0)[0],
                               model.evaluate(x, y, verbose=0)[0], rtol=1e-5)
    loaded.fit(x, y, epochs=1, verbose=0)


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        Translator.load(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no zoo.json"):
        Translator.load(str(tmp_path / "empty"))
    (tmp_path / "empty" / "zoo.json").write_text("{oops")
    with pytest.raises(ValueError, match=r"zoo.json:1: invalid JSON"):
        Translator.load(str(tmp_path / "empty"))


def test_bad_arguments_name_the_problem(tok):
    with pytest.raises(ValueError, match="Unknown preset 'rnn_bahdanu'.*Did you mean 'rnn_bahdanau'"):
        Translator.from_preset("rnn_bahdanu", tokenizer=tok)
    with pytest.raises(ValueError, match="has no option 'unitz'"):
        Translator.from_preset("rnn_tiny", tokenizer=tok, unitz=3)
    model = Translator.from_preset("rnn_tiny", tokenizer=tok, **TINY["rnn_tiny"])
    with pytest.raises(ValueError, match="list of strings"):
        model.translate("Hola.")
    with pytest.raises(ValueError, match="expects inputs"):
        model([np.ones((1, 3), "int32")])
    bare = Translator.from_preset("rnn_tiny", vocab_size=50, **TINY["rnn_tiny"])
    with pytest.raises(ValueError, match="needs tokenizers"):
        bare.translate(["Hola."])
    assert model.translate([]) == []


def test_beam_one_equals_greedy_on_a_model(tok, batch):
    model = Translator.from_preset("transformer_tiny", tokenizer=tok, **TINY["transformer_tiny"])
    src = batch[0]["source"]
    g = model.generate(src, max_length=7)
    b = model.generate(src, strategy="beam", beam_size=1, max_length=7)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(g.tokens),
                                  keras.ops.convert_to_numpy(b.tokens))
    eager = model.generate(src, strategy="beam", beam_size=3, max_length=7, compiled=False)
    graph = model.generate(src, strategy="beam", beam_size=3, max_length=7)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(eager.tokens),
                                  keras.ops.convert_to_numpy(graph.tokens))


HANDFUL = 8


# The Transformer's run (24 s) is under -m slow for CI time; the Transformer's learning stays
# in CI through test_loss_falls_on_real_pairs_with_schedule_and_smoothing and the second task.
@pytest.mark.parametrize("preset,overrides,epochs", [
    ("rnn_tiny", {}, 60),
    pytest.param("transformer_tiny", {"dropout": 0.0}, 60, marks=pytest.mark.slow)])
def test_learns_a_handful_of_real_sentences(preset, overrides, epochs):
    """A tiny model memorises 8 short Anki pairs: the loss falls and greedy decoding
    reproduces the training translations."""
    pairs = [p for p in anki_spa_eng_pairs(limit=300) if len(p[1].split()) <= 4][:HANDFUL]
    tok = SentencePieceTokenizer.train([s for p in pairs for s in p] * 4, vocab_size=80)
    model = Translator.from_preset(preset, tokenizer=tok, max_target_length=16, **overrides)
    model.compile(learning_rate=1e-2, label_smoothing=0.0)
    ds = make_dataset(pairs, tok, batch_size=HANDFUL, shuffle=False)
    history = model.fit(ds, epochs=epochs, verbose=0)
    loss = history.history["loss"]
    assert loss[-1] < 0.1 * loss[0], loss[::10]
    outs = model.translate([s for s, _ in pairs])
    right = sum(o == t for o, (_, t) in zip(outs, pairs))
    assert right >= HANDFUL - 1, list(zip(outs, [t for _, t in pairs]))


# Fine-tuning trains with a warm-up and label smoothing in the default run
# (tests/training/test_fine_tune.py): this one behind `slow` (CI time on 2 cores).
@pytest.mark.slow
def test_loss_falls_on_real_pairs_with_schedule_and_smoothing(pairs, tok):
    model = Translator.from_preset("transformer_tiny", tokenizer=tok)
    model.compile(learning_rate=3e-3, warmup_steps=10, label_smoothing=0.1)
    ds = make_dataset(pairs, tok, batch_size=32, seed=0)
    history = model.fit(ds, epochs=3, verbose=0)
    loss = history.history["loss"]
    assert loss[2] < loss[0] - 0.5, loss


# The Transformer's run (20 s: float16 is emulated on CPUs) is under -m slow for CI time.
@pytest.mark.parametrize("preset", [pytest.param(p, marks=pytest.mark.slow)
                                    if p == "transformer_tiny" else p for p in sorted(TINY)])
def test_mixed_precision_trains_with_loss_scaling(preset, tok, batch):
    model = Translator.from_preset(preset, tokenizer=tok, dtype="mixed_float16",
                                   **TINY[preset])
    model.compile()
    x, y = batch
    logs = model.fit(x, y, epochs=2, batch_size=12, verbose=0).history
    assert np.isfinite(logs["loss"]).all()
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.decoder.compute_dtype == "float16"
    assert model.decoder.embedding.embedding.compute_dtype == "float16"
    assert keras.ops.convert_to_numpy(model(x)).dtype == np.float32
    res = model.generate(x["source"][:2], max_length=5)
    assert np.isfinite(keras.ops.convert_to_numpy(res.scores)).all()


def test_translate_keeps_input_order_across_batches(tok):
    model = Translator.from_preset("rnn_tiny", tokenizer=tok, **TINY["rnn_tiny"])
    texts = ["Hola.", "¿Dónde está el baño? Por favor.", "Sí.", "Me gusta leer libros."]
    one_by_one = [model.translate([t], max_length=6)[0] for t in texts]
    assert model.translate(texts, batch_size=3, max_length=6) == one_by_one
    outs, details = model.translate(texts, max_length=6, return_result=True)
    ids = encode_sources(texts, tok).numpy()
    for d, row in zip(details, ids):
        assert d["attention"].shape == (len(d["tokens"]), int((row != 0).sum()))


# The RNN's XLA loop is the Transformer's without a cache window: behind `slow` (CI time).
@pytest.mark.parametrize("preset", [pytest.param(p, marks=pytest.mark.slow)
                                    if p.startswith("rnn") else p for p in sorted(TINY)])
def test_xla_decoding_equals_graph_decoding(preset, tok, batch):
    model = Translator.from_preset(preset, tokenizer=tok, **TINY[preset])
    src = batch[0]["source"][:4]
    for strategy in ("greedy", "beam"):
        a = model.generate(src, strategy=strategy, max_length=6)
        b = model.generate(src, strategy=strategy, max_length=6, jit_compile=True)
        # The graph's Transformer cache grows; XLA's is a window of max_length.
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.tokens),
                                      keras.ops.convert_to_numpy(b.tokens))
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a.scores),
                                   keras.ops.convert_to_numpy(b.scores), atol=1e-4)


def test_xla_training_is_refused_clearly_for_rnn_decoders(tok):
    model = Translator.from_preset("rnn_tiny", tokenizer=tok, **TINY["rnn_tiny"])
    with pytest.raises(ValueError, match="XLA cannot compile the training step of a RNNDecoder"):
        model.compile(jit_compile=True)


@pytest.mark.slow
def test_xla_training_step_for_transformers(tok, batch):
    """Slow on CPU (XLA compiles the whole train step): run with `pytest -m slow`."""
    model = Translator.from_preset("transformer_tiny", tokenizer=tok, **TINY["transformer_tiny"])
    model.compile(jit_compile=True)
    x, y = batch
    loss = model.fit(x, y, epochs=3, batch_size=12, verbose=0).history["loss"]
    assert np.isfinite(loss).all() and loss[-1] < loss[0]
