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
