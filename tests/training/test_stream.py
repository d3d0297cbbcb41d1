"""Corpora read as a stream: checked like loaded ones, every pair once per epoch, resumable."""

import gzip

import numpy as np
import pytest
import tensorflow as tf

from zoo import recipes
from zoo.data import (Corpus, DataError, SentencePieceTokenizer, anki_spa_eng_pairs,
                      iter_pairs, make_stream_dataset)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    pairs = anki_spa_eng_pairs(200)
    path = tmp_path_factory.mktemp("stream") / "pairs.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for src, tgt in pairs:
            f.write(f"{tgt}\t{src}\tCC-BY\n")  # the Anki layout: english<TAB>other
    return path, pairs


def test_a_stream_checks_every_line_and_names_the_bad_one(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("Go.\tVe.\n\tVete.\nHi.\tHola.\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.tsv:2: empty pair: target is empty"):
        list(iter_pairs(str(path)))
    skipped = []
    assert list(iter_pairs(str(path), skip_invalid=True, skipped=skipped)) == [
        ("Ve.", "Go."), ("Hola.", "Hi.")]
    assert skipped == [(str(path), 2, "empty pair: target is empty")]


def test_stream_batches_hold_every_pair_once_per_epoch_in_an_epoch_seeded_order(corpus):
    path, pairs = corpus
    assert list(Corpus(str(path))) == pairs
    tok = SentencePieceTokenizer.train([s for p in pairs for s in p], vocab_size=150)

    def epoch_rows(epoch, buffer=64):
        v = tf.Variable(epoch, dtype=tf.int64)
        ds = make_stream_dataset(str(path), tok, batch_size=16, shuffle_buffer=buffer, seed=5,
                                 epoch=v)
        return [tuple(s[s > 0].tolist()) + (-1,) + tuple(t[t > 0].tolist())
                for x, y in ds for s, t in zip(x["source"].numpy(), y.numpy())]

    a0, b0, a1 = epoch_rows(0), epoch_rows(0), epoch_rows(1)
    assert sorted(a0) == sorted(a1) and len(a0) == len(pairs)  # each pair, once
    assert a0 == b0 and a0 != a1  # reproducible for an epoch, new for the next


def test_streamed_training_resumes_to_the_weights_of_one_run(corpus, tmp_path):
    """Two epochs at once, and one epoch then a resume for the second: the same weights.
    The corpus is never loaded: the recipe streams it (tokenizer sample, counting pass,
    every epoch)."""
    path, pairs = corpus
    kw = dict(preset="rnn_tiny", vocab_size=150, batch_size=32, verbose=0, tensorboard=False,
              checkpoint_every=None, shuffle_buffer=100, tokenizer_sample=200)
    straight, _, info = recipes.train_translator(Corpus(str(path)), epochs=2,
                                                 out_dir=str(tmp_path / "a"), **kw)
    assert info["streamed"] and info["train_pairs"] == len(pairs)
    recipes.train_translator(Corpus(str(path)), epochs=1, out_dir=str(tmp_path / "b"), **kw)
    resumed, _, info = recipes.train_translator(Corpus(str(path)), epochs=2, resume=True,
                                                out_dir=str(tmp_path / "b"), **kw)
    assert info["resumed_from_epoch"] == 1
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
