"""One embedding for encoder, decoder and output projection (a joint vocabulary)."""

import keras
import numpy as np
import pytest

from zoo.data import SentencePieceTokenizer, anki_spa_eng_pairs
from zoo.models import Translator

SMALL = {"dim": 16, "ff_dim": 32, "num_heads": 2, "num_layers": 1, "dropout": 0.0}


@pytest.fixture(scope="module")
def tok():
    pairs = anki_spa_eng_pairs(limit=300)
    return SentencePieceTokenizer.train([s for p in pairs for s in p], vocab_size=150)


def _ids(model):
    rng = np.random.default_rng(0)
    src = rng.integers(4, 150, (2, 5)).astype("int32")
    tgt = rng.integers(4, 150, (2, 4)).astype("int32")
    return {"source": src, "target": tgt}


def test_shared_model_has_one_embedding_matrix_that_both_sides_train(tok):
    x = _ids(None)
    own = Translator.from_preset("transformer_tiny", tokenizer=tok, **SMALL)
    shared = Translator.from_preset("transformer_tiny", tokenizer=tok, share_embeddings=True,
                                    **SMALL)
    own(x), shared(x)
    assert shared.encoder.embedding is shared.decoder.embedding
    # Exactly one vocabulary x dim matrix fewer.
    assert own.count_params() - shared.count_params() == 150 * 16
    tables = [v for v in shared.trainable_variables if tuple(v.shape) == (150, 16)]
    assert len(tables) == 1
    # Its gradient gathers the source rows, the target rows and the output projection.
    import tensorflow as tf

    with tf.GradientTape() as tape:
        logits = shared(x, training=True)
        loss = keras.ops.mean(logits)
    grad = tf.convert_to_tensor(tape.gradient(loss, tables[0])).numpy()
    only_source = sorted(set(x["source"].ravel()) - set(x["target"].ravel()))
    assert np.abs(grad[only_source]).sum() > 0  # the encoder's use reaches the table


def test_shared_embeddings_survive_save_and_load(tok, tmp_path):
    x = _ids(None)
    model = Translator.from_preset("transformer_tiny", tokenizer=tok, share_embeddings=True,
                                   **SMALL)
    want = keras.ops.convert_to_numpy(model(x))
    model.save(tmp_path / "m")
    loaded = Translator.load(tmp_path / "m")
    assert loaded.share_embeddings and loaded.get_config()["share_embeddings"] is True
    assert loaded.encoder.embedding is loaded.decoder.embedding
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), want, atol=1e-5)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x)), want, atol=1e-5)
    assert again.encoder.embedding is again.decoder.embedding


def test_share_embeddings_refuses_embeddings_of_different_sizes(tok):
    with pytest.raises(ValueError, match="embedding_dim|dim=8"):
        Translator.from_preset("rnn_tiny", tokenizer=tok, share_embeddings=True,
                               encoder={"embedding_dim": 8}, decoder={"embedding_dim": 12})
    with pytest.raises(ValueError, match="vocab_size"):
        Translator.from_preset("transformer_tiny", vocab_size=100, target_vocab_size=120,
                               share_embeddings=True, **SMALL)


RNN_SMALL = {"embedding_dim": 12, "units": 10, "dropout": 0.0}


def test_rnn_tied_output_is_the_transposed_embedding(tok):
    x = _ids(None)
    untied = Translator.from_preset("rnn_tiny", tokenizer=tok, output_dim=12, **RNN_SMALL)
    tied = Translator.from_preset("rnn_tiny", tokenizer=tok, output_dim=12,
                                  tie_embeddings=True, share_embeddings=True, **RNN_SMALL)
    untied(x), tied(x)
    assert tied.decoder.output_layer is None
    # The (12 x 150) kernel and its 150 biases go, and the shared table saves 150 x 12 more.
    assert untied.count_params() - tied.count_params() == 12 * 150 + 150 + 150 * 12
    dec = tied.decoder
    feats = np.random.default_rng(1).normal(size=(2, 3, dec._feature_dim)).astype("float32")
    got = keras.ops.convert_to_numpy(dec._output(feats, None, training=False))
    kernel = keras.ops.convert_to_numpy(dec.bottleneck.kernel)
    bias = keras.ops.convert_to_numpy(dec.bottleneck.bias)
    table = keras.ops.convert_to_numpy(tied.encoder.embedding.embeddings)
    np.testing.assert_allclose(got, (feats @ kernel + bias) @ table.T, atol=1e-5)
    # Every row of the table learns from the output softmax, not only the rows read.
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = keras.ops.mean(keras.ops.log_softmax(tied(x, training=True))[..., 0])
    grad = tf.convert_to_tensor(tape.gradient(loss, tied.encoder.embedding.embeddings))
    unread = sorted(set(range(4, 150)) - set(x["source"].ravel()) - set(x["target"].ravel()))
    assert np.abs(grad.numpy()[unread]).sum(axis=1).min() > 0


def test_rnn_tied_survives_save_and_load(tok, tmp_path):
    x = _ids(None)
    model = Translator.from_preset("rnn_tiny", tokenizer=tok, output_dim=12,
                                   tie_embeddings=True, share_embeddings=True, **RNN_SMALL)
    want = keras.ops.convert_to_numpy(model(x))
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert again.decoder.get_config()["tie_embeddings"] is True
    assert again.decoder.output_layer is None
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(x)), want, atol=1e-5)
    # The step that decoding runs gives the teacher-forced logits.
    encoded = again.encode(x["source"])
    state = again.initial_state(encoded, x["target"].shape[1])
    memory = again.prepare_memory(encoded)
    for t in range(x["target"].shape[1]):
        logits, state, _ = again.decode_step(x["target"][:, t], state, memory)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(logits), want[:, t], atol=1e-4)


def test_rnn_tie_embeddings_refuses_a_projection_of_another_size(tok):
    with pytest.raises(ValueError, match=r"output_dim \(16\) must equal embedding_dim \(12\)"):
        Translator.from_preset("rnn_tiny", tokenizer=tok, output_dim=16, tie_embeddings=True,
                               **RNN_SMALL)
    # Without a bottleneck the features (10 units) reach the projection: named at build.
    model = Translator.from_preset("rnn_tiny", tokenizer=tok, tie_embeddings=True,
                                   attention_position="after", input_feeding=False,
                                   **RNN_SMALL)
    with pytest.raises(ValueError, match="set output_dim=12"):
        model(_ids(None))
