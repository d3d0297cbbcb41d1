"""The training step on the real labels only equals Keras's step on the padded logits."""

import keras
import numpy as np
import pytest

import zoo.training.steps
from zoo.models import Summarizer, Translator

RNN = {"embedding_dim": 12, "units": 10, "dropout": 0.0}


def _translator(kind):
    if kind == "rnn_bahdanau":
        return Translator.from_preset("rnn_tiny", vocab_size=30, encoder=RNN,
                                      decoder={**RNN, "units": 14})
    if kind == "rnn_parallel":  # Luong after the cell, no input feeding: no scan over time
        return Translator.from_preset(
            "rnn_luong", vocab_size=30, encoder=RNN,
            decoder={**RNN, "attention": {"class_name": "multi_head",
                                          "config": {"num_heads": 1}},
                     "input_feeding": False, "bridge": False})
    if kind == "transformer":
        net = {"dim": 16, "num_layers": 2, "num_heads": 2, "ff_dim": 24}
        return Translator.from_preset("transformer_tiny", vocab_size=30, dropout=0.0,
                                      encoder=net, decoder=net)
    # A copying decoder with the coverage loss (a loss the layers add during the step).
    return Summarizer.from_preset(
        "pointer_generator_tiny", vocab_size=30,
        decoder={"attention": {"class_name": "coverage",
                               "config": {"units": 8, "coverage_loss_weight": 1.0}}})


def _batches():
    rng = np.random.default_rng(0)
    out = []
    for batch, s, t in ((3, 7, 6), (4, 5, 8)):
        src = rng.integers(4, 30, (batch, s)).astype("int32")
        tgt = rng.integers(4, 30, (batch, t + 1)).astype("int32")
        src[1, 3:] = 0
        tgt[0, 3:] = 0  # bos + 2 tokens, the labels 2 tokens + padding
        tgt[-1, 5:] = 0
        tgt[:, 0] = 2
        out.append(({"source": src, "target": tgt[:, :-1]}, tgt[:, 1:]))
    return out


def _pair(kind, label_smoothing):
    """The model twice with the same weights: one steps on rows, one as Keras does."""
    keras.utils.set_random_seed(3)
    rows, dense = _translator(kind), _translator(kind)
    rows.build(), dense.build()
    dense.set_weights(rows.get_weights())
    for model in (rows, dense):
        # SGD: the weights move by the gradients themselves (Adam's normalised update would
        # blow rounding in a near-zero gradient up to the learning rate).
        model.compile(optimizer=keras.optimizers.SGD(0.5), label_smoothing=label_smoothing)
    dense.encoder.pack_training = dense.decoder.pack_training = False
    return rows, dense


# The parallel-teacher-forcing RNN takes its step as the Bahdanau RNN does: behind `slow`
# (CI time on 2 cores; docs/RESULTS.md, Test suite).
@pytest.mark.parametrize("kind,label_smoothing", [
    ("rnn_bahdanau", 0.0), pytest.param("rnn_parallel", 0.1, marks=pytest.mark.slow),
    ("transformer", 0.1), ("pointer", 0.0)])
def test_step_on_rows_equals_the_padded_step(kind, label_smoothing, monkeypatch):
    calls = []
    step = zoo.training.steps.train_step_on_rows
    monkeypatch.setattr(zoo.training.steps, "train_step_on_rows",
                        lambda model, data: calls.append(1) or step(model, data))
    rows, dense = _pair(kind, label_smoothing)
    for x, y in _batches():  # two shapes: each is traced, the layers' losses cleared
        got = rows.train_on_batch(x, y, return_dict=True)
        want = dense.train_on_batch(x, y, return_dict=True)
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=2e-5, atol=1e-6, err_msg=key)
    assert calls, "the model did not take the step on rows"
    if kind == "pointer":
        assert len(rows.losses) == 1  # the coverage loss of the last step, not accumulated
    for v, a, b in zip(rows.trainable_variables, rows.get_weights(), dense.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=v.path)


@pytest.mark.parametrize("shape", ["sentence", "token"])
def test_sample_weights_reach_the_rows(shape):
    rows, dense = _pair("rnn_bahdanau", 0.0)
    x, y = _batches()[0]
    weights = np.array([0.5, 2.0, 1.0], "float32")
    if shape == "token":
        weights = np.tile(weights[:, None], (1, y.shape[1])) * np.linspace(1, 2, y.shape[1])
    got = rows.train_on_batch(x, y, sample_weight=weights, return_dict=True)
    want = dense.train_on_batch(x, y, sample_weight=weights, return_dict=True)
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=2e-5)
    unweighted = _pair("rnn_bahdanau", 0.0)[0].train_on_batch(x, y, return_dict=True)
    assert abs(got["loss"] - unweighted["loss"]) > 1e-3  # the weights changed something
    for a, b in zip(rows.get_weights(), dense.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_a_loss_of_its_own_takes_the_padded_step(monkeypatch):
    monkeypatch.setattr(zoo.training.steps, "train_step_on_rows",
                        lambda model, data: pytest.fail("stepped on rows"))
    model = _translator("rnn_bahdanau")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _batches()[0]
    assert np.isfinite(model.train_on_batch(x, y, return_dict=True)["loss"])


def test_fit_without_labels_names_the_problem():
    model = _translator("rnn_bahdanau")
    model.compile()
    x, _ = _batches()[0]
    with pytest.raises(ValueError, match="needs labels"):
        model.fit(x, epochs=1, verbose=0)
