"""The task-agnostic core: losses on the attention weights train, saving is atomic."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.data import SentencePieceTokenizer, anki_spa_eng_pairs, make_dataset
from zoo.models import ModelFileError, Seq2Seq, Translator, load

TINY = {"units": 16, "embedding_dim": 8, "dropout": 0.0}


@pytest.fixture(scope="module")
def tok():
    pairs = anki_spa_eng_pairs(limit=300)
    return SentencePieceTokenizer.train([s for p in pairs for s in p], vocab_size=200)


@pytest.fixture(scope="module")
def batch(tok):
    pairs = anki_spa_eng_pairs(limit=300)[100:110]
    return next(iter(make_dataset(pairs, tok, batch_size=10, shuffle=False, bucket=False)))


def _coverage_model(tok, weight):
    attention = {"class_name": "coverage", "config": {"units": 8,
                                                      "coverage_loss_weight": weight}}
    return Translator.from_preset("rnn_tiny", tokenizer=tok, attention=attention,
                                  encoder={"units": 8}, **TINY)


def _hand_coverage_loss(weights, mask):
    """See et al. 2017, from the weights by hand: mean over real steps of
    sum_j min(a_tj, sum_{t'<t} a_t'j)."""
    total, steps = 0.0, 0
    for b in range(weights.shape[0]):
        seen = np.zeros(weights.shape[2])
        for t in range(weights.shape[1]):
            if mask[b, t]:
                total += np.minimum(weights[b, t], seen).sum()
                steps += 1
                seen = seen + weights[b, t]
    return total / steps


def test_coverage_loss_trains_inside_a_translator_with_fit(tok, batch):
    x, y = batch
    with_cov, without = _coverage_model(tok, 1.0), _coverage_model(tok, 0.0)
    with_cov.build(), without.build()
    without.set_weights(with_cov.get_weights())

    with_cov(x, training=True)
    assert len(with_cov.losses) == 1
    without(x, training=True)
    assert without.losses == []

    weights = with_cov.forward(x["source"], x["target"])["attention"].numpy()
    expected = _hand_coverage_loss(weights, x["target"].numpy() != 0)
    assert expected > 0.05  # an untrained model re-attends: the loss is not trivially 0
    np.testing.assert_allclose(float(with_cov.losses[0]), expected, rtol=1e-4)

    # The gradients differ by the coverage term's, and that term reaches the weights.
    grads = []
    for m in (with_cov, without):
        m.compile(learning_rate=1e-2, label_smoothing=0.0)
        with tf.GradientTape() as tape:
            logits = m(x, training=True)
            loss = m.loss(y, logits) + sum(m.losses)
        grads.append(tape.gradient(loss, m.trainable_variables))
    with tf.GradientTape() as tape:
        with_cov(x, training=True)
        coverage = sum(with_cov.losses)
    term = tape.gradient(coverage, with_cov.trainable_variables)
    dense = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
             for g, v in zip(term, with_cov.trainable_variables)]
    assert max(float(np.max(np.abs(g))) for g in dense) > 1e-6
    for a, b, c in zip(*grads, dense):
        np.testing.assert_allclose(tf.convert_to_tensor(a) - tf.convert_to_tensor(b), c,
                                   atol=1e-6)

    # fit reports the data loss plus the coverage loss, and moves the weights differently.
    h_with = with_cov.fit(x, y, epochs=1, verbose=0).history["loss"][0]
    h_without = without.fit(x, y, epochs=1, verbose=0).history["loss"][0]
    np.testing.assert_allclose(h_with - h_without, expected, rtol=1e-3)
    moved = [float(np.abs(a - b).max()) for a, b in zip(with_cov.get_weights(),
                                                         without.get_weights())]
    assert max(moved) > 1e-5


def test_transformer_decoder_returns_weights_in_both_paths(tok, batch):
    x, _ = batch
    model = Translator.from_preset("transformer_tiny", tokenizer=tok, dim=16, ff_dim=32,
                                   num_heads=2)
    out = model.forward(x["source"], x["target"])
    weights = out["attention"].numpy()
    assert weights.shape == (*x["target"].shape, x["source"].shape[1])
    real = x["target"].numpy() != 0
    np.testing.assert_allclose(weights.sum(-1)[real], 1.0, atol=1e-5)
    # The step's weights equal teacher forcing's, step by step.
    encoded = model.encode(x["source"])
    state = model.initial_state(encoded, x["target"].shape[1])
    memory = model.prepare_memory(encoded)
    for t in range(x["target"].shape[1]):
        _, state, w = model.decode_step(x["target"][:, t], state, memory)
        np.testing.assert_allclose(w.numpy()[real[:, t]], weights[:, t][real[:, t]],
                                   atol=1e-5)


def test_save_killed_part_way_leaves_the_previous_model_intact(tok, tmp_path, monkeypatch):
    path = str(tmp_path / "m")
    first = Translator.from_preset("rnn_tiny", tokenizer=tok, **TINY)
    first.build()
    first.save(path)
    before = {n: open(os.path.join(path, n), "rb").read() for n in os.listdir(path)}
    second = Translator.from_preset("rnn_tiny", tokenizer=tok, **TINY)
    second.build()

    def crash(*args, **kwargs):  # dies after model.keras is written, before the tokenizer
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(type(tok), "save", crash)
    with pytest.raises(KeyboardInterrupt):
        second.save(path)
    monkeypatch.undo()
    after = {n: open(os.path.join(path, n), "rb").read() for n in os.listdir(path)}
    assert after == before
    assert [n for n in os.listdir(tmp_path) if n != "m"] == []  # no staging left behind
    loaded = load(path)
    for a, b in zip(loaded.get_weights(), first.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_save_refuses_a_directory_it_did_not_write(tok, tmp_path):
    model = Translator.from_preset("rnn_tiny", tokenizer=tok, **TINY)
    model.build()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="zoo did not write"):
        model.save(str(tmp_path))
    assert (tmp_path / "notes.txt").read_text() == "mine"
    model.save(str(tmp_path / "m"))
    with pytest.raises(FileExistsError, match="not empty"):
        model.save(str(tmp_path / "m"), overwrite=False)


def test_damaged_files_are_reported_with_their_name(tok, tmp_path):
    model = Translator.from_preset("rnn_tiny", tokenizer=tok, **TINY)
    model.build()
    path = tmp_path / "m"
    model.save(str(path))
    weights = (path / "model.keras").read_bytes()
    (path / "model.keras").write_bytes(weights[: len(weights) // 2])
    with pytest.raises(ModelFileError, match=r"model.keras: not a complete .keras archive"):
        Seq2Seq.load(str(path))
    (path / "model.keras").write_bytes(weights)
    (path / "source.model").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match=r"source.model: not a valid SentencePiece model"):
        Translator.load(str(path))


@pytest.mark.parametrize("preset", ["rnn_tiny", "transformer_tiny"])
def test_fit_and_generate_trace_their_functions_once(tok, preset):
    """Keras leaves an unbuilt model and optimizer to the first trace of the train step
    (without a distribution strategy); variables made there make tf.function trace again.
    zoo makes them before: one trace of the step for two epochs of equal batches, one of the
    decoding loop for two calls."""
    pairs = anki_spa_eng_pairs(limit=300)[:16]
    ds = make_dataset(pairs, tok, batch_size=8, shuffle=False, bucket=False).take(1)
    model = Translator.from_preset(preset, tokenizer=tok, max_target_length=6)
    model.compile(learning_rate=1e-3)
    steps, loops = [], []
    train_step = model.train_step
    model.train_step = lambda data: steps.append(1) or train_step(data)
    model.fit(ds.repeat(2), epochs=2, steps_per_epoch=1, verbose=0)
    assert len(steps) == 1
    fresh = Translator.from_preset(preset, tokenizer=tok, max_target_length=6)
    fresh.decode = lambda *a, **k: loops.append(1) or Translator.decode(fresh, *a, **k)
    fresh.translate(["Hola."])
    fresh.translate(["Tengo hambre."])
    assert len(loops) == 1
