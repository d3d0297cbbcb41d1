"""n-gram repetition blocking (``no_repeat_ngram_size``) in every strategy: against an
exhaustive search over the scripted model of test_search.py, a property check on random models,
and hand-worked masks."""

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from zoo import decoding
from zoo.decoding.search import repeated_ngram_mask

from test_search import BOS, EOS, MAX_CODE, PAD, V, _exhaustive, _run, _seq, _tables


def _repeats(seq, n):
    grams = [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]
    return len(grams) != len(set(grams))


@pytest.mark.parametrize("tokens,step,n,banned", [
    # "5 6" occurred, the last token is 5: 6 would repeat it.
    ([5, 6, 5, 0, 0], 3, 2, [6]),
    # n = 1: every token generated so far.
    ([5, 6, 5, 0, 0], 3, 1, [5, 6]),
    # "5 6 7" occurred; the last two are "5 6": 7 is banned, not 6 or 5.
    ([5, 6, 7, 5, 6], 5, 3, [7]),
    # The same prefix twice with two continuations: both banned.
    ([5, 6, 5, 7, 5, 0], 5, 2, [6, 7]),
    # Too early for a whole n-gram: nothing banned.
    ([5, 6, 0, 0, 0], 2, 3, []),
    # Positions at and after ``step`` are not history (stale tokens there are ignored).
    ([5, 6, 5, 6, 4], 2, 2, []),
])
def test_mask_bans_exactly_the_repeating_continuations(tokens, step, n, banned):
    mask = repeated_ngram_mask(np.array([tokens], "int32"), step, n, 9)
    assert np.flatnonzero(ops.convert_to_numpy(mask)[0]).tolist() == banned


@pytest.mark.parametrize("n,min_length", [(2, 3), (3, 4), (2, 0)])
def test_wide_beam_with_blocking_equals_exhaustive_search_without_repeats(n, min_length):
    logits, att = _tables(3, rows=2)
    max_length = 5
    beam = decoding.BeamSearch(beam_size=64, n_best=4, early_stop=False,
                               no_repeat_ngram_size=n)
    tokens, scores, lengths, _ = _run(beam, logits, att, 2, max_length, min_length)
    for row in range(2):
        exact = [h for h in _exhaustive(logits, att, row, max_length, min_length)
                 if not _repeats(h[1], n)][:4]
        assert [_seq(tokens[row, i], lengths[row, i]) for i in range(4)] == \
            [seq for _, seq in exact]
        np.testing.assert_allclose(scores[row], [s for s, _ in exact], rtol=1e-5, atol=1e-5)


def test_greedy_with_blocking_takes_the_best_allowed_token_each_step():
    logits, att = _tables(4, rows=2, sharp=4.0)
    n, max_length = 2, 6
    tokens, _, lengths, _ = _run(decoding.Greedy(no_repeat_ngram_size=n), logits, att, 2,
                                 max_length, min_length=max_length)
    for row in range(2):  # replay: at each step the arg-max over tokens not banned
        seq, code, prev = [], 0, BOS
        for t in range(max_length):
            code = (code * V + prev) % MAX_CODE
            row_logits = logits[row, code].astype("float64").copy()
            row_logits[[PAD, BOS]] = -np.inf
            if t < max_length:
                row_logits[EOS] = -np.inf
            for i in range(len(seq) - n + 1):
                if seq[i:i + n - 1] == seq[len(seq) - n + 1:]:
                    row_logits[seq[i + n - 1]] = -np.inf
            prev = int(np.argmax(row_logits))
            seq.append(prev)
        assert _seq(tokens[row, 0], lengths[row, 0]) == seq


def _random_model(vocab, rows, seed):
    rng = np.random.default_rng(seed)
    table = ops.convert_to_tensor((rng.normal(size=(rows, 97, vocab)) * 3).astype("float32"))

    def step_fn(tokens, state, memory):
        code = (state["code"] * 7 + tokens) % 97  # favours loops: few distinct rows
        idx = ops.stack([memory["row"], code], axis=-1)
        return tf.gather_nd(table, idx), {"code": code}, ops.ones((ops.shape(tokens)[0], 2))

    return step_fn


@pytest.mark.parametrize("strategy", [
    decoding.Greedy(no_repeat_ngram_size=2),
    decoding.Greedy(no_repeat_ngram_size=3),
    decoding.BeamSearch(beam_size=4, n_best=4, no_repeat_ngram_size=2),
    decoding.Sampling(num_samples=3, seed=1, no_repeat_ngram_size=2),
    decoding.Sampling(temperature=2.0, num_samples=3, seed=2, no_repeat_ngram_size=1),
], ids=["greedy2", "greedy3", "beam2", "sampling2", "sampling1"])
def test_no_output_ever_repeats_an_ngram(strategy):
    vocab, rows, max_length = 24, 6, 14
    n = strategy.no_repeat_ngram_size
    for seed in range(3):
        res = tf.function(lambda: strategy(
            _random_model(vocab, rows, seed), {"code": ops.zeros((rows,), "int32")},
            {"row": ops.arange(rows, dtype="int32")}, rows, 2, max_length, bos_id=1,
            eos_id=2, pad_id=0, min_length=max_length - 2))()
        tokens, lengths = ops.convert_to_numpy(res.tokens), ops.convert_to_numpy(res.lengths)
        for r in range(rows):
            for i in range(tokens.shape[1]):
                seq = _seq(tokens[r, i], lengths[r, i])
                assert len(seq) >= max_length - 1
                assert not _repeats(seq, n), (seed, r, i, seq)
    # And without blocking the same model does repeat (the check above can fail).
    plain = type(strategy)(**{**strategy.get_config(), "no_repeat_ngram_size": 0})
    res = plain(_random_model(vocab, rows, 0), {"code": ops.zeros((rows,), "int32")},
                {"row": ops.arange(rows, dtype="int32")}, rows, 2, max_length, bos_id=1,
                eos_id=2, pad_id=0, min_length=max_length - 2)
    tokens, lengths = ops.convert_to_numpy(res.tokens), ops.convert_to_numpy(res.lengths)
    assert any(_repeats(_seq(tokens[r, i], lengths[r, i]), n)
               for r in range(rows) for i in range(tokens.shape[1]))


def test_blocking_is_validated():
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        decoding.BeamSearch(no_repeat_ngram_size=-1)
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        decoding.Greedy(no_repeat_ngram_size=2.5)
