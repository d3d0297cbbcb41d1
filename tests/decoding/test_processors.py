"""Each score adjustment alone, on hand-computed tables."""

import numpy as np
import pytest

from zoo.decoding import BeamSearch, Greedy, Sampling
from zoo.decoding.processors import (NEG, NoRepeatNgram, SpecialTokens, Temperature, TopK,
                                     TopP, apply)

LOGP = np.log(np.array([[0.1, 0.2, 0.3, 0.4]], "float32"))


def _banned(x):
    return (np.asarray(x)[0] < NEG / 2).tolist()


def test_special_tokens_ban_pad_and_bos_always_and_eos_before_min_length():
    p = SpecialTokens(bos_id=1, eos_id=2, pad_id=0, min_length=3)
    assert _banned(p(LOGP, 2)) == [True, True, True, False]
    assert _banned(p(LOGP, 3)) == [True, True, False, False]
    # The kept entries are untouched.
    np.testing.assert_allclose(np.asarray(p(LOGP, 3))[0, 2:], LOGP[0, 2:])


def test_special_tokens_force_the_first_token_at_step_zero_only():
    p = SpecialTokens(bos_id=1, eos_id=2, pad_id=0, min_length=2, first_id=3)
    assert _banned(p(LOGP, 0)) == [True, True, True, False]
    assert _banned(p(LOGP, 1)) == [True, True, True, False]  # min_length still bans eos
    assert _banned(p(LOGP, 2)) == [True, True, False, False]
    np.testing.assert_allclose(np.asarray(p(LOGP, 0))[0, 3], LOGP[0, 3])


def test_no_repeat_ngram_bans_the_token_that_would_repeat_a_bigram():
    tokens = np.array([[3, 2, 3, 0]], "int32")  # "3 2" seen, last token 3: 2 would repeat
    out = NoRepeatNgram(2)(LOGP, 3, tokens)
    assert _banned(out) == [False, False, True, False]
    assert NoRepeatNgram.needs_tokens and not SpecialTokens.needs_tokens


def test_temperature_divides():
    np.testing.assert_allclose(np.asarray(Temperature(2.0)(LOGP)), LOGP / 2.0, rtol=1e-6)


def test_top_k_keeps_the_k_best():
    assert _banned(TopK(2)(LOGP)) == [True, True, False, False]


@pytest.mark.parametrize("p, banned", [
    (0.35, [True, True, True, False]),  # 0.4 alone reaches 0.35
    (0.65, [True, True, False, False]),  # 0.4 + 0.3
    (1.0, [False, False, False, False]),
])
def test_top_p_keeps_the_smallest_set_that_reaches_p(p, banned):
    assert _banned(TopP(p)(LOGP)) == banned


def test_apply_runs_them_in_order():
    out = apply([Temperature(0.5), TopK(1)], LOGP, 0)
    assert _banned(out) == [True, True, True, False]
    np.testing.assert_allclose(np.asarray(out)[0, 3], LOGP[0, 3] / 0.5, rtol=1e-6)


@pytest.mark.parametrize("strategy, kinds", [
    (Greedy(), [SpecialTokens]),
    (Greedy(no_repeat_ngram_size=3), [SpecialTokens, NoRepeatNgram]),
    (BeamSearch(beam_size=2, no_repeat_ngram_size=2), [SpecialTokens, NoRepeatNgram]),
])
def test_each_strategy_lists_what_its_options_ask_for(strategy, kinds):
    assert [type(p) for p in strategy.processors(1, 2, 0, min_length=2)] == kinds


def test_sampling_warpers_follow_its_options():
    assert [type(w) for w in Sampling().warpers()] == [Temperature]
    assert [type(w) for w in Sampling(temperature=0.7, top_k=5, top_p=0.9).warpers()] == [
        Temperature, TopK, TopP]
