"""The decoding engine against scripted logits and an exhaustive search.

The scripted model: the logits of a step are a fixed random row chosen by the whole prefix fed
so far (a different table per batch row), and so are the attention weights. An exhaustive
enumeration of every sequence over that tiny vocabulary gives the exact best hypotheses.
"""

import itertools

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from zoo import decoding

PAD, BOS, EOS = 0, 1, 2
V, S, MAX_CODE = 5, 3, 4001  # prime: prefix codes wrap around for long prefixes


def _tables(seed, rows=1, sharp=2.0):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(rows, MAX_CODE, V)) * sharp).astype("float32")
    att = rng.random((rows, MAX_CODE, S)).astype("float32")
    att = att / att.sum(-1, keepdims=True)
    return logits, att


def _step_fn(logits, att):
    lt, at = ops.convert_to_tensor(logits), ops.convert_to_tensor(att)

    def step_fn(tokens, state, memory):
        # The table row (which sentence) is constant memory; the prefix code is state. A
        # strategy that reorders or fails to repeat the memory reads the wrong sentence's row.
        code = (state["code"] * V + tokens) % MAX_CODE  # a row per prefix
        idx = ops.stack([memory["row"], code], axis=-1)
        return tf.gather_nd(lt, idx), {"code": code}, tf.gather_nd(at, idx)

    return step_fn


def _state(rows):
    return {"code": ops.zeros((rows,), "int32")}


def _memory(rows):
    return {"row": ops.arange(rows, dtype="int32")}


def _log_softmax(x):
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


def _exhaustive(logits, att, row, max_length, min_length=0, alpha=0.0, beta=0.0):
    """Every hypothesis: sequences ending in eos within max_length, or unfinished at it."""
    real = [t for t in range(V) if t not in (PAD, BOS)]
    hyps = []
    for n in range(1, max_length + 1):
        for seq in itertools.product(real, repeat=n):
            if EOS in seq[:-1]:
                continue
            if seq[-1] != EOS and n < max_length:
                continue
            code, logp, cov, ok = 0, 0.0, np.zeros(S), True
            prev = BOS
            for t, tok in enumerate(seq):
                code = (code * V + prev) % MAX_CODE
                lp = _log_softmax(logits[row, code].astype("float64"))
                if tok == EOS and t < min_length:
                    ok = False
                    break
                logp += lp[tok]
                cov += att[row, code]
                prev = tok
            if not ok:
                continue
            score = logp / (((5.0 + n) / 6.0) ** alpha) if alpha else logp
            if beta:
                score += beta * np.log(np.clip(cov, 1e-10, 1.0)).sum()
            hyps.append((score, list(seq)))
    hyps.sort(key=lambda h: -h[0])
    return hyps


def _run(strategy, logits, att, rows, max_length, min_length=0, compiled=False):
    step_fn = _step_fn(logits, att)

    def go():
        return strategy(step_fn, _state(rows), _memory(rows), rows, S, max_length, bos_id=BOS,
                        eos_id=EOS, pad_id=PAD, min_length=min_length)

    res = tf.function(go)() if compiled else go()
    return [ops.convert_to_numpy(x) for x in res]


def _seq(tokens, length):
    return [int(t) for t in tokens[:length]]


@pytest.mark.parametrize("alpha,beta,min_length", [(0.0, 0.0, 0), (1.0, 0.0, 0),
                                                   (0.6, 0.3, 0), (0.0, 0.0, 2)])
def test_wide_beam_equals_exhaustive_search(alpha, beta, min_length):
    logits, att = _tables(1, rows=2)
    max_length = 4
    beam = decoding.BeamSearch(beam_size=32, length_penalty=alpha, coverage_penalty=beta,
                               n_best=5, early_stop=False)
    tokens, scores, lengths, _ = _run(beam, logits, att, 2, max_length, min_length)
    for row in range(2):
        exact = _exhaustive(logits, att, row, max_length, min_length, alpha, beta)[:5]
        got = [_seq(tokens[row, i], lengths[row, i]) for i in range(5)]
        assert got == [seq for _, seq in exact]
        np.testing.assert_allclose(scores[row], [s for s, _ in exact], rtol=1e-5, atol=1e-5)


def test_narrow_beam_is_no_better_than_exhaustive_and_finds_it_here():
    logits, att = _tables(2, rows=3, sharp=3.0)
    res = _run(decoding.BeamSearch(beam_size=3, early_stop=False), logits, att, 3, 4)
    for row in range(3):
        best_score, best_seq = _exhaustive(logits, att, row, 4)[0]
        assert res[1][row, 0] <= best_score + 1e-5


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_beam_of_one_is_greedy(seed, alpha):
    logits, att = _tables(seed, rows=4)
    g = _run(decoding.Greedy(), logits, att, 4, 6)
    b = _run(decoding.BeamSearch(beam_size=1, length_penalty=alpha), logits, att, 4, 6)
    np.testing.assert_array_equal(g[0], b[0])
    np.testing.assert_array_equal(g[2], b[2])
    np.testing.assert_allclose(g[3], b[3], atol=1e-6)
    if alpha == 0.0:
        np.testing.assert_allclose(g[1], b[1], rtol=1e-6)


@pytest.mark.parametrize("static", [False, True])  # top_k, or the reductions XLA fuses
@pytest.mark.parametrize("ties", [False, True])
def test_greedy_follows_argmax_and_records_attention(static, ties):
    logits, att = _tables(5, rows=2)
    if ties:  # whole numbers: most steps have several best tokens; argmax takes the first
        logits = np.round(logits * 0.5).astype("float32")
    greedy = decoding.Greedy().with_static_shapes() if static else decoding.Greedy()
    tokens, scores, lengths, attn = _run(greedy, logits, att, 2, 6)
    for row in range(2):
        code, prev, total, steps = 0, BOS, 0.0, []
        for t in range(6):
            code = (code * V + prev) % MAX_CODE
            lp = _log_softmax(logits[row, code].astype("float64"))
            lp[[PAD, BOS]] = -np.inf
            tok = int(np.argmax(lp))
            total += lp[tok]
            steps.append((tok, att[row, code]))
            prev = tok
            if tok == EOS:
                break
        n = len(steps)
        assert lengths[row, 0] == n
        assert _seq(tokens[row, 0], n) == [s for s, _ in steps]
        assert (tokens[row, 0, n:] == PAD).all()
        np.testing.assert_allclose(scores[row, 0], total, rtol=1e-5)
        np.testing.assert_allclose(attn[row, 0, :n], np.stack([a for _, a in steps]), atol=1e-6)
        assert (attn[row, 0, n:] == 0).all()


def _uneven_tables(seed, rows):
    """Tables whose rows end at different steps: row r's eos gets a boost growing with r."""
    logits, att = _tables(seed, rows=rows)
    logits[:, :, EOS] += np.linspace(-3.0, 4.0, rows, dtype="float32")[:, None]
    return logits, att


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("ngram", [0, 2])
def test_compacting_greedy_equals_static_shapes(compiled, ngram):
    logits, att = _uneven_tables(29, rows=6)
    fast = _run(decoding.Greedy(no_repeat_ngram_size=ngram), logits, att, 6, 8,
                compiled=compiled)
    static = _run(decoding.Greedy(no_repeat_ngram_size=ngram).with_static_shapes(), logits,
                  att, 6, 8, compiled=compiled)
    assert len(set(fast[2][:, 0].tolist())) > 2  # the rows really end at different steps
    for f, s in zip(fast, static):
        np.testing.assert_allclose(f, s, rtol=1e-6)


def test_compacting_greedy_steps_only_the_live_rows():
    logits, att = _uneven_tables(31, rows=5)
    inner, seen = _step_fn(logits, att), []

    def step_fn(tokens, state, memory):
        seen.append(int(ops.shape(tokens)[0]))
        return inner(tokens, state, memory)

    res = decoding.Greedy()(step_fn, _state(5), _memory(5), 5, S, 8, bos_id=BOS, eos_id=EOS,
                            pad_id=PAD)
    lengths = ops.convert_to_numpy(res.lengths)[:, 0]
    # Step t runs the rows whose output is longer than t, and no others.
    assert seen == [int((lengths > t).sum()) for t in range(len(seen))]
    assert len(seen) == lengths.max() and seen[-1] < 5
    assert sum(seen) == lengths.sum()
    assert decoding.Greedy().with_static_shapes().get_config()["compact"] is False


@pytest.mark.parametrize("rows", [1, 4])
def test_a_batch_size_known_when_the_graph_runs_takes_the_right_loop(rows):
    """An exported graph knows its batch size only when it runs: both greedy loops are in the
    graph, a batch of one steps the plain loop (compacting it gathers every tensor for
    nothing) and a larger batch the compacting one; the other loop takes no step, and the
    tokens are those of static shapes."""
    logits, att = _uneven_tables(37, rows=rows)
    inner = _step_fn(logits, att)
    # One counter per traced loop body, in the order traced (the plain loop first): the rows
    # each loop stepped, summed over its steps.
    counters, traced = [tf.Variable(0), tf.Variable(0)], []

    def step_fn(tokens, state, memory):
        counter = counters[min(len(traced), 1)]
        traced.append(1)
        counter.assign_add(ops.shape(tokens)[0])
        return inner(tokens, state, memory)

    @tf.function(input_signature=[tf.TensorSpec([None], "int32")])
    def go(row_ids):
        b = tf.shape(row_ids)[0]  # a tensor, as in an export
        return decoding.Greedy()(step_fn, {"code": tf.zeros_like(row_ids)},
                                 {"row": row_ids}, b, S, 8, bos_id=BOS, eos_id=EOS,
                                 pad_id=PAD)

    res = [ops.convert_to_numpy(x) for x in go(tf.range(rows))]
    assert len(traced) == 2  # both loops are in the graph
    lengths = res[2][:, 0]
    stepped = [int(c.numpy()) for c in counters]
    if rows == 1:
        assert stepped == [lengths[0], 0]
    else:
        assert len(set(lengths.tolist())) > 1 and stepped == [0, lengths.sum()]
    static = _run(decoding.Greedy().with_static_shapes(), logits, att, rows, 8)
    for got, want in zip(res, static):
        np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("boost, min_length", [(4.0, 0), (4.0, 3), (-6.0, 0)])
@pytest.mark.parametrize("compiled", [False, True])
def test_a_batch_of_one_equals_static_shapes(boost, min_length, compiled):
    """A batch of one steps its own loop (no masks, the last token decides whether to go
    on, the length is the step count): same tokens, scores, lengths and attention as the
    static-shape loop, whether eos comes first step, after min_length, or never."""
    logits, att = _tables(41, rows=1)
    logits[:, :, EOS] += boost
    fast = _run(decoding.Greedy(), logits, att, 1, 6, min_length=min_length,
                compiled=compiled)
    static = _run(decoding.Greedy().with_static_shapes(), logits, att, 1, 6,
                  min_length=min_length, compiled=compiled)
    want = {(4.0, 0): 1, (4.0, 3): 4, (-6.0, 0): 6}[(boost, min_length)]
    assert fast[2][0, 0] == want  # eos at once, right after min_length, or never
    for f, s in zip(fast, static):
        np.testing.assert_allclose(f, s, rtol=1e-6)


def test_an_empty_batch_known_when_the_graph_runs_takes_no_step():
    logits, att = _tables(43, rows=1)

    @tf.function(input_signature=[tf.TensorSpec([None], "int32")])
    def go(row_ids):
        return decoding.Greedy()(_step_fn(logits, att), {"code": tf.zeros_like(row_ids)},
                                 {"row": row_ids}, tf.shape(row_ids)[0], S, 5, bos_id=BOS,
                                 eos_id=EOS, pad_id=PAD)

    tokens, scores, lengths, attn = [ops.convert_to_numpy(x) for x in go(tf.range(0))]
    assert tokens.shape == (0, 1, 5) and scores.shape == lengths.shape == (0, 1)
    assert attn.shape == (0, 1, 5, S)


def test_min_length_delays_eos():
    logits, att = _tables(7, rows=2)
    logits[:, :, EOS] += 6.0  # eos is the arg-max everywhere
    tokens, _, lengths, _ = _run(decoding.Greedy(), logits, att, 2, 6, min_length=3)
    assert (lengths[:, 0] == 4).all()
    assert (tokens[:, 0, 3] == EOS).all() and (tokens[:, 0, :3] != EOS).all()


def _textbook_beam(logits, att, row, k, max_length, alpha, beta, vocab):
    """Beam search as the GNMT paper states it, ranking every (hypothesis, token) pair of the
    sentence each step (ties: lower hypothesis, then lower token), finished hypotheses kept
    with one free continuation (pad); runs until every hypothesis has finished."""
    hyps = [(0.0, [], np.zeros(S), False, 0)]  # (log-prob, tokens, coverage, done, code)
    hyps += [(-1e9, [], np.zeros(S), False, 0)] * (k - 1)  # only beam 0 is live at first

    def rank(logp, n, cov):
        score = logp / (((5.0 + n) / 6.0) ** alpha) if alpha else logp
        return score + (beta * np.log(np.clip(cov, 1e-10, 1.0)).sum() if beta else 0.0)

    for _ in range(max_length):
        if all(h[3] for h in hyps):
            break
        cands = []
        for j, (logp, seq, cov, done, code) in enumerate(hyps):
            prev = seq[-1] if seq else BOS
            code = (code * vocab + prev) % MAX_CODE
            lp = _log_softmax(logits[row, code].astype("float64"))
            lp[[PAD, BOS]] = -1e9
            for v in range(vocab):
                if done:
                    gain = 0.0 if v == PAD else -1e9
                    cands.append((rank(logp + gain, len(seq), cov), j, v,
                                  (logp + gain, seq, cov, True, code)))
                else:
                    new = (logp + lp[v], seq + [v], cov + att[row, code], v == EOS, code)
                    cands.append((rank(new[0], len(new[1]), new[2]), j, v, new))
        cands.sort(key=lambda c: (-c[0], c[1], c[2]))
        hyps = [c[3] for c in cands[:k]]
    return [(rank(h[0], len(h[1]), h[2]), h[1]) for h in hyps]


@pytest.mark.parametrize("k,alpha,beta", [(2, 0.0, 0.0), (3, 0.6, 0.0), (5, 1.0, 0.4)])
def test_beam_equals_the_textbook_full_table_search(k, alpha, beta):
    """The engine ranks each hypothesis's k best tokens only (k * k candidates, not k * V);
    that must choose what ranking the whole table does, ties included (the logits are
    rounded so that many tokens tie)."""
    vocab, rows, max_length = 12, 3, 6
    rng = np.random.default_rng(k)
    logits = np.round(rng.normal(size=(rows, MAX_CODE, vocab)) * 2) / 2  # many equal values
    logits = logits.astype("float32")
    att = rng.random((rows, MAX_CODE, S)).astype("float32")
    att = att / att.sum(-1, keepdims=True)
    lt, at = ops.convert_to_tensor(logits), ops.convert_to_tensor(att)

    def step_fn(tokens, state, memory):
        code = (state["code"] * vocab + tokens) % MAX_CODE
        idx = ops.stack([memory["row"], code], axis=-1)
        return tf.gather_nd(lt, idx), {"code": code}, tf.gather_nd(at, idx)

    beam = decoding.BeamSearch(beam_size=k, length_penalty=alpha, coverage_penalty=beta,
                               n_best=k, early_stop=False)
    tokens, scores, lengths, _ = [ops.convert_to_numpy(x) for x in beam(
        step_fn, _state(rows), _memory(rows), rows, S, max_length, bos_id=BOS, eos_id=EOS,
        pad_id=PAD)]
    for row in range(rows):
        want = _textbook_beam(logits, att, row, k, max_length, alpha, beta, vocab)
        assert [_seq(tokens[row, i], lengths[row, i]) for i in range(k)] == [s for _, s in want]
        np.testing.assert_allclose(scores[row], [sc for sc, _ in want], rtol=1e-5)


def test_early_stop_is_exact_without_length_penalty():
    logits, att = _tables(11, rows=3)
    a = _run(decoding.BeamSearch(beam_size=4, early_stop=True), logits, att, 3, 6)
    b = _run(decoding.BeamSearch(beam_size=4, early_stop=False), logits, att, 3, 6)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6)


def test_batch_rows_are_independent():
    logits, att = _tables(13, rows=3)
    beam = decoding.BeamSearch(beam_size=3, length_penalty=0.6, n_best=3)
    together = _run(beam, logits, att, 3, 5)
    for row in range(3):
        step_fn = _step_fn(logits, att)
        alone = beam(step_fn, _state(1), {"row": ops.full((1,), row, "int32")}, 1, S, 5,
                     bos_id=BOS, eos_id=EOS, pad_id=PAD)
        np.testing.assert_array_equal(together[0][row], ops.convert_to_numpy(alone.tokens)[0])


@pytest.mark.parametrize("strategy", [decoding.Greedy(), decoding.BeamSearch(beam_size=3,
                                                                               n_best=2),
                                      "sampling"])
def test_compiled_graph_equals_eager(strategy):
    logits, att = _tables(17, rows=2)
    if strategy == "sampling":
        eager = _run(decoding.Sampling(top_k=3, seed=5, num_samples=2), logits, att, 2, 6)
        graph = _run(decoding.Sampling(top_k=3, seed=5, num_samples=2), logits, att, 2, 6,
                     compiled=True)
    else:
        eager = _run(strategy, logits, att, 2, 6)
        graph = _run(strategy, logits, att, 2, 6, compiled=True)
    for e, g in zip(eager, graph):
        np.testing.assert_allclose(e, g, rtol=1e-6)


def test_result_shapes_are_the_same_for_every_strategy():
    logits, att = _tables(19, rows=2)
    for strat, n in ((decoding.Greedy(), 1), (decoding.BeamSearch(beam_size=4, n_best=3), 3),
                     (decoding.Sampling(num_samples=5, seed=0), 5)):
        tokens, scores, lengths, attn = _run(strat, logits, att, 2, 7)
        assert tokens.shape == (2, n, 7) and scores.shape == (2, n)
        assert lengths.shape == (2, n) and attn.shape == (2, n, 7, S)
        assert tokens.dtype == np.int32 and np.isfinite(scores).all()


def test_beam_n_best_is_sorted_and_distinct():
    logits, att = _tables(23, rows=2)
    tokens, scores, lengths, _ = _run(decoding.BeamSearch(beam_size=6, n_best=6,
                                                          length_penalty=0.6), logits, att, 2, 5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    for row in range(2):
        seqs = {tuple(_seq(tokens[row, i], lengths[row, i])) for i in range(6)}
        assert len(seqs) == 6


def test_top_k_and_top_p_filtering_by_hand():
    probs = np.array([[0.5, 0.3, 0.15, 0.05]], "float32")
    logits = np.log(probs)
    kept = lambda s: (ops.convert_to_numpy(s.filter_logits(logits)) > -1e8).sum()
    assert kept(decoding.Sampling(top_k=2)) == 2
    assert kept(decoding.Sampling(top_p=0.7)) == 2   # 0.5 + 0.3 reaches 0.7
    assert kept(decoding.Sampling(top_p=0.8)) == 2   # exactly reached by two
    assert kept(decoding.Sampling(top_p=0.81)) == 3
    assert kept(decoding.Sampling(top_p=0.4)) == 1
    assert kept(decoding.Sampling()) == 4
    # temperature divides the logits
    np.testing.assert_allclose(ops.convert_to_numpy(
        decoding.Sampling(temperature=2.0).filter_logits(logits)), logits / 2, rtol=1e-6)


def test_top_k_one_is_greedy_and_seeds_reproduce():
    logits, att = _tables(29, rows=3)
    g = _run(decoding.Greedy(), logits, att, 3, 6)
    s = _run(decoding.Sampling(top_k=1, seed=3), logits, att, 3, 6)
    np.testing.assert_array_equal(g[0], s[0])
    a = _run(decoding.Sampling(seed=42, num_samples=4), logits, att, 3, 6)
    b = _run(decoding.Sampling(seed=42, num_samples=4), logits, att, 3, 6)
    np.testing.assert_array_equal(a[0], b[0])


def test_sampling_follows_the_distribution():
    """First-token frequencies over 4000 samples match softmax(logits / T) (4 sigma)."""
    logits, att = _tables(31, rows=1, sharp=1.0)
    temp = 1.5
    tokens = _run(decoding.Sampling(temperature=temp, num_samples=4000, seed=0), logits, att,
                  1, 1)[0][0, :, 0]
    lp = logits[0, BOS].astype("float64")
    lp[[PAD, BOS]] = -np.inf
    p = np.exp(_log_softmax(lp / temp))  # log-probs are masked before the temperature
    freq = np.bincount(tokens, minlength=V) / len(tokens)
    sigma = np.sqrt(p * (1 - p) / len(tokens))
    assert (np.abs(freq - p) <= 4 * sigma + 1e-9).all(), (freq, p)


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="n_best"):
        decoding.BeamSearch(beam_size=2, n_best=3)
    with pytest.raises(ValueError, match="beam_size"):
        decoding.BeamSearch(beam_size=0)
    with pytest.raises(ValueError, match="top_p"):
        decoding.Sampling(top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        decoding.Sampling(temperature=0)
    with pytest.raises(ValueError, match="Unknown|unknown"):
        decoding.get("bean")
    logits, att = _tables(0)
    with pytest.raises(ValueError, match="max_length"):
        _run(decoding.Greedy(), logits, att, 1, 0)
    with pytest.raises(ValueError, match="min_length"):
        _run(decoding.Greedy(), logits, att, 1, 3, min_length=5)


def test_registry_resolves_names_configs_and_instances():
    b = decoding.get("beam", beam_size=3)
    assert isinstance(b, decoding.BeamSearch) and b.beam_size == 3
    again = decoding.get({"class_name": "beam", "config": b.get_config()})
    assert again.get_config() == b.get_config()
    assert decoding.get(b) is b
