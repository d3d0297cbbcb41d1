"""The Summarizer: the pointer-generator's mixture by hand, copying learned on real sentences
(and not without the copy distribution), the coverage loss as a term of the training loss
and what its final phase does to repetition on real dialogues,
save/load, and exports with identical fp32 outputs in every format."""

import random
import re
import warnings

import keras
import numpy as np
import pytest
from keras import ops

from zoo.attention.coverage import coverage_loss
from zoo.data import (SentencePieceTokenizer, anki_spa_eng_pairs, dialogsum_pairs,
                      make_dataset)
from zoo.export import export
from zoo.inputs import InputError, InputTruncatedWarning
from zoo.layers import RNNDecoder
from zoo.models import Summarizer, Translator, load, presets
from zoo.serving import load as load_export
from zoo.training import CoveragePhase

# Real first names for the copy task; the test names never occur in training.
NAMES = ["Anna", "Ben", "Carla", "David", "Emma", "Frank", "Grace", "Henry", "Irene", "Jack",
         "Karen", "Louis", "Maria", "Nora", "Oscar", "Paula", "Peter", "Rachel", "Simon",
         "Sarah", "Victor", "Walter", "Helen", "Daniel", "Laura", "Martin", "Linda", "Robert",
         "Julia", "Thomas", "Alice", "Edward", "Clara", "Albert", "Diana", "George", "Ruth",
         "Kevin", "Monica", "Arthur"]
UNSEEN = ["Bartholomew", "Rosalind", "Leopold", "Gertrude"]


def test_presets_are_summarization_presets():
    names = presets.names("summarization")
    assert {"pointer_generator", "pointer_generator_small", "pointer_generator_tiny",
            "transformer_summarizer"} <= set(names)
    assert not set(names) & set(presets.names("translation"))
    with pytest.raises(ValueError, match="builds a Summarizer, not a Translator"):
        Translator.from_preset("pointer_generator_tiny", vocab_size=40)


def test_mixture_is_the_hand_worked_distribution():
    dec = RNNDecoder(vocab_size=5, embedding_dim=4, units=6, copy=True)
    dec.build((None, None), {"outputs": (None, None, 6), "mask": (None, None),
                             "final": (None, 6)})
    # p_gen = sigmoid(0 . features + log 3) = 0.75.
    dec.copy_gate.set_weights([np.zeros((dec._feature_dim, 1), "float32"),
                               np.array([np.log(3.0)], "float32")])
    p_vocab = np.array([[0.1, 0.2, 0.3, 0.2, 0.2]], "float32")
    weights = np.array([[0.5, 0.3, 0.2]], "float32")  # over source ids 4, 2, 4
    source_ids = np.array([[4, 2, 4]], "int32")
    logp, p_gen = dec._mix(np.log(p_vocab), np.ones((1, dec._feature_dim), "float32"),
                           weights, source_ids)
    # copy: id 4 gets 0.5 + 0.2 = 0.7, id 2 gets 0.3.
    # P = 0.75 * P_vocab + 0.25 * copy:
    expected = [0.75 * 0.1, 0.75 * 0.2, 0.75 * 0.3 + 0.25 * 0.3, 0.75 * 0.2,
                0.75 * 0.2 + 0.25 * 0.7]  # = [0.075, 0.15, 0.3, 0.15, 0.325]
    np.testing.assert_allclose(np.exp(ops.convert_to_numpy(logp)), [expected], atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(p_gen), [0.75], atol=1e-6)


@pytest.mark.parametrize("preset", ["pointer_generator_tiny", "transformer_summarizer"])
def test_copying_step_equals_teacher_forcing(preset):
    kw = {} if preset == "pointer_generator_tiny" else {
        "encoder": {"dim": 16, "num_layers": 1, "num_heads": 2, "ff_dim": 16},
        "decoder": {"dim": 16, "num_layers": 1, "num_heads": 2, "ff_dim": 16}}
    model = Summarizer.from_preset(preset, vocab_size=30, **kw)
    assert not model.copy_whole_words  # no tokenizer: no pieces to tell words by
    src = np.array([[5, 6, 7, 3, 0], [8, 9, 9, 7, 3]], "int32")
    tgt = np.array([[2, 5, 6, 7], [2, 9, 8, 7]], "int32")
    full = model.forward(src, tgt)
    probs = np.exp(ops.convert_to_numpy(full["logits"]))
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)  # a distribution
    p_gen = ops.convert_to_numpy(full["p_gen"])
    assert p_gen.shape == (2, 4) and np.all((p_gen > 0) & (p_gen < 1))
    encoded = model.encode(src)
    state, memory = model.initial_state(encoded, 8), model.prepare_memory(encoded)
    assert set(memory) == {"decoder", "source_ids"}
    for t in range(4):
        logits, state, _ = model.decode_step(ops.convert_to_tensor(tgt[:, t]), state, memory)
        np.testing.assert_allclose(ops.convert_to_numpy(logits),
                                   ops.convert_to_numpy(full["logits"][:, t]), atol=1e-4)


def test_copying_needs_one_vocabulary():
    with pytest.raises(ValueError, match="one tokenizer for source and target"):
        Summarizer.from_preset("pointer_generator_tiny", vocab_size=30, target_vocab_size=40)


def test_coverage_loss_is_a_term_of_the_training_loss_from_the_coverage_phase_on():
    keras.utils.set_random_seed(0)
    model = Summarizer.from_preset("pointer_generator_tiny", vocab_size=30)
    src = np.array([[5, 6, 7, 8, 3], [8, 9, 9, 7, 3]], "int32")
    tgt = np.array([[2, 5, 6, 7, 8], [2, 9, 8, 7, 3]], "int32")
    labels = np.concatenate([tgt[:, 1:], [[3], [0]]], axis=1)
    # Learning rate 0: the weights stay put, so the two epochs differ by the coverage term.
    model.compile(optimizer=keras.optimizers.SGD(0.0), label_smoothing=0.0)
    history = model.fit({"source": src, "target": tgt}, labels, epochs=2, verbose=0,
                        callbacks=[CoveragePhase(start_epoch=1, weight=1.0)])
    loss = history.history["loss"]
    weights = model.forward(src, tgt)["attention"]
    expected = float(coverage_loss(weights, tgt != 0))
    assert expected > 0.01
    assert loss[1] - loss[0] == pytest.approx(expected, rel=1e-3)
    assert model.decoder.attention.coverage_loss_weight == 1.0
    with pytest.raises(ValueError, match="no attention with a coverage loss"):
        plain = Summarizer.from_preset("pointer_generator_tiny", vocab_size=30,
                                       attention="additive")
        plain.compile()
        plain.fit({"source": src, "target": tgt}, labels, epochs=1, verbose=0,
                  callbacks=[CoveragePhase(start_epoch=0)])


def _repeated_ngram_share(tokens, lengths, n, eos=3):
    """Share of the id n-grams of each output that repeat an earlier one of the same output."""
    total = repeated = 0
    for row, length in zip(tokens, lengths):
        ids = [int(t) for t in row[:length] if t != eos]
        grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
        total, repeated = total + len(grams), repeated + len(grams) - len(set(grams))
    return repeated / max(total, 1)


# About 70 s: runs with `pytest -m slow` (measured figures in the docstring) so that the CI
# run stays within its 15-minute budget.
@pytest.mark.slow
def test_coverage_phase_reduces_reattention_on_real_dialogues():
    """See et al.'s final coverage phase at tiny scale, on 300 real DialogSum dialogues: from
    the same weights, four more epochs with the coverage loss leave a model that re-attends
    less (the coverage loss of its attention on the reference summaries) than four more
    epochs without it, for two seeds of the continuation.

    Measured (2026-11-22), re-attention without / with the phase: 0.916 / 0.891 (seed 1),
    0.917 / 0.895 (seed 2). Repeated id trigrams in greedy summaries: 0.327 / 0.330 and
    0.320 / 0.337. The phase does *not* reduce repetition here. The earlier version of this
    test asserted that it did (0.390 / 0.335); it held with Keras's Adam, and it stopped
    holding when zoo.training.Adam (dense second moment for repeated ids) became the default.
    With that optimizer the plain model also repeats less to begin with. The repetition
    figures are computed and reported, not asserted."""
    pairs = dialogsum_pairs("train", limit=300)
    tok = SentencePieceTokenizer.train([t for p in pairs for t in p], vocab_size=300,
                                       turn_separator="<sep>")
    x, y = next(iter(make_dataset(pairs, tok, batch_size=len(pairs), bucket=False,
                                  shuffle=False, max_source_length=150, max_target_length=40)))
    x, y = {k: v.numpy() for k, v in x.items()}, y.numpy()

    def model(learning_rate):
        m = Summarizer.from_preset("pointer_generator_tiny", tokenizer=tok,
                                   max_source_length=150, max_target_length=40)
        m.compile(learning_rate=learning_rate, label_smoothing=0.0)
        return m

    keras.utils.set_random_seed(0)
    base = model(1e-2)
    base.fit(x, y, batch_size=32, epochs=12, verbose=0)
    results = {}
    for seed, weight in ((1, 0.0), (1, 1.0), (2, 0.0), (2, 1.0)):
        keras.utils.set_random_seed(seed)
        m = model(2e-3)
        m.build()
        m.set_weights(base.get_weights())
        phase = [CoveragePhase(start_epoch=0, weight=weight)] if weight else []
        m.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=phase)
        res = m.generate(x["source"][:200], max_length=40)
        tokens, lengths = ops.convert_to_numpy(res.tokens)[:, 0], \
            ops.convert_to_numpy(res.lengths)[:, 0]
        src, tgt = x["source"][:200], x["target"][:200]
        results[seed, weight] = {
            "trigrams": _repeated_ngram_share(tokens, lengths, 3),
            "bigrams": _repeated_ngram_share(tokens, lengths, 2),
            "reattention": float(coverage_loss(m.forward(src, tgt)["attention"], tgt != 0))}
    print(results)  # the repetition figures of the docstring (pytest -s shows them)
    assert results[1, 0.0]["trigrams"] > 0.05, results  # the plain model does repeat itself
    for seed in (1, 2):
        assert results[seed, 1.0]["reattention"] < results[seed, 0.0]["reattention"] - 0.01, \
            (seed, results)


def test_turn_separator_lives_in_the_tokenizer_for_every_runtime():
    dialogue = "#Person1#: Hi there.\r\n#Person2#: Hello!\n#Person1#: Bye.\tSee you."
    tok = SentencePieceTokenizer.train([dialogue, "Two people greet."] * 30, vocab_size=40,
                                       turn_separator="<sep>")
    assert tok.turn_separator == "<sep>"
    host = tok.processor.encode(dialogue, out_type=str)
    assert host.count("<sep>") == 2  # \r\n and \n, each one separator
    assert tok.tokenize([dialogue]).to_list()[0] == tok.processor.encode(dialogue)
    plain = SentencePieceTokenizer.train(["a b c"] * 40, vocab_size=20)
    assert plain.turn_separator is None
    with pytest.raises(ValueError, match="turn_separator"):
        SentencePieceTokenizer.train(["a b"] * 10, vocab_size=20, turn_separator="a b")


# ---------------------------------------------------------------- a tiny copy task
def _name_sentences():
    """Real short sentences about Tom (Anki/Tatoeba), Tom replaced by a real first name."""
    english = [en for _, en in anki_spa_eng_pairs()
               if re.fullmatch(r"Tom [a-z' ]+[.?!]", en) and 3 <= len(en.split()) <= 6]
    english = list(dict.fromkeys(english))
    rng = random.Random(0)
    # 200 sentences learn to copy as 400 did (4 of 4 names, 0 without copying, seeds 0-2).
    train = [s.replace("Tom", rng.choice(NAMES)) for s in english[:200]]
    test = [s.replace("Tom", name) for s, name in zip(english[500:504], UNSEEN)]
    return train, test


def _trained_to_repeat(copy):
    """A summarizer trained to repeat a sentence (its "summary" is itself), with or without
    the copy distribution: a name seen only in a test source reaches the output only by
    copying. Returns ``(model, train, test)``."""
    train, test = _name_sentences()
    tok = SentencePieceTokenizer.train(train, vocab_size=120)
    x, y = next(iter(make_dataset([(s, s) for s in train], tok, batch_size=len(train),
                                  bucket=False, shuffle=False)))
    x, y = {k: v.numpy() for k, v in x.items()}, y.numpy()
    keras.utils.set_random_seed(0)
    model = Summarizer.from_preset("pointer_generator_tiny", tokenizer=tok,
                                   max_target_length=16, decoder={"copy": copy})
    model.compile(learning_rate=1e-2, label_smoothing=0.0)
    # 45 epochs: at 30 the copying model was still at loss 0.28 on an AVX-512 EPYC (its
    # seeded trajectory differs from other CPUs') and spelled 3 of 4 names wrong.
    model.fit(x, y, batch_size=32, epochs=45, verbose=0)
    return model, train, test


def _names_out(model, test):
    """How many of the unseen names come out whole for their own sentence."""
    words = [set(re.findall(r"\w+", out)) for out in model.summarize(test)]
    return sum(name in w for name, w in zip(UNSEEN, words)), words


@pytest.fixture(scope="module")
def copy_task():
    """The copying summarizer trained to repeat sentences: ``(model, train, test)``."""
    return _trained_to_repeat(copy=True)


def test_copying_brings_names_never_seen_in_training_into_the_output(copy_task):
    model, train, test = copy_task
    assert not any(name in s for name in UNSEEN for s in train)
    # Every character of the names is in the vocabulary (no unknown pieces to copy).
    tok = model.source_tokenizer
    assert all(1 not in tok.processor.encode(name) for name in UNSEEN)
    copied, words = _names_out(model, test)
    assert copied >= 3, words


# The control trains a second model as long again (CI time on 2 cores; docs/RESULTS.md).
@pytest.mark.slow
def test_without_copying_the_same_training_brings_no_unseen_name(copy_task):
    model, _, test = _trained_to_repeat(copy=False)
    assert not model.decoder.copy and not model.copy_whole_words
    generated, words = _names_out(model, test)
    assert generated <= 1, words
    assert _names_out(copy_task[0], test)[0] >= 3


def test_summarizer_saves_and_reloads(copy_task, tmp_path):
    model, _, test = copy_task
    model.save(str(tmp_path / "m"))
    again = load(str(tmp_path / "m"))
    assert type(again) is Summarizer and again.task == "summarization"
    assert again.decoder.copy and again.summarize(test) == model.summarize(test)


# ONNX (what `zoo serve` runs) in the default run; the other two formats, which take as long
# again, with `pytest -m slow` (CI time on 2 cores; docs/RESULTS.md, Test suite).
@pytest.mark.parametrize("fmt,kw", [
    ("onnx", {"beam_size": 2}),
    pytest.param("savedmodel", {"beam_size": 2}, marks=pytest.mark.slow),
    pytest.param("litert", {"quantizations": ["float32"], "max_source_length": 40},
                 marks=pytest.mark.slow)])
def test_summarizer_exports_identical_outputs_in_every_format(copy_task, tmp_path, fmt, kw):
    model, train, test = copy_task
    assert model.copy_whole_words
    texts = test + train[:4]
    greedy = model.summarize(texts, strategy="greedy", no_repeat_ngram_size=2)
    beam = model.summarize(texts, strategy="beam", beam_size=2, length_penalty=0.6,
                           min_length=0, no_repeat_ngram_size=2)  # the export's settings
    manifest = export(model, str(tmp_path / fmt), fmt, no_repeat_ngram_size=2, **kw)
    assert manifest["task"] == "summarization"
    assert manifest["decoding"]["no_repeat_ngram_size"] == 2
    assert "memory__source_ids" in [m["name"] for m in manifest["memory"]]
    # Whole-word copying (on in the copying presets) rides in the exported state.
    assert {"words__match", "words__open"} <= {s["name"] for s in manifest["state"]}
    runner = load_export(str(tmp_path / fmt))
    assert runner.generate_text(texts) == greedy, fmt
    if fmt == "onnx":  # a server's process: no TensorFlow, the same summaries
        import json
        import os
        import subprocess
        import sys

        code = ("import json, sys; from zoo.serving import load; "
                "out = load(sys.argv[1]).generate_text(json.loads(sys.argv[2])); "
                "print(json.dumps([out, 'tensorflow' in sys.modules]))")
        run = subprocess.run([sys.executable, "-c", code, str(tmp_path / fmt),
                              json.dumps(texts)], capture_output=True, text=True,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        assert json.loads(run.stdout.strip().splitlines()[-1]) == [greedy, False]
    if "beam" in runner.strategies:
        assert runner.generate_text(texts, "beam") == beam, fmt
    # The same input contract as the translator's.
    with pytest.raises(InputError, match="texts\\[1\\]"):
        runner.generate_text(["Anna sleeps.", "  "])
    if "no_repeat_ngram_size" in runner.manifest.get("per_request", ()):  # ONNX, SavedModel
        assert runner.generate_text(texts, no_repeat_ngram_size=3) == model.summarize(
            texts, strategy="greedy", no_repeat_ngram_size=3)
    else:
        with pytest.raises(InputError, match="no_repeat_ngram_size is fixed at export"):
            runner.generate_text(texts, no_repeat_ngram_size=3)
    with pytest.warns(InputTruncatedWarning):
        runner.generate_text([" ".join(texts) * 30])
    with pytest.raises(InputError, match="texts\\[0\\]"):
        model.summarize([""])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.summarize([" ".join(texts) * 30], max_length=4)
    assert any(issubclass(w.category, InputTruncatedWarning) for w in caught)
