"""zoo.models.import_keras_hub against KerasHub's own T5 (random weights, small configs).

Every comparison runs KerasHub's implementation on T5's ids and zoo's on the same tokens in
zoo's id layout (``original[i]``: the T5 id of zoo id ``i``).
"""

import numpy as np
import pytest

import keras
import keras_hub

import zoo.models
from zoo.data import SentencePieceTokenizer
from zoo.models.importers import t5_layout, import_keras_hub

from conftest import assert_fine_tunes_saves_and_loads, zoo_scored_beam_sampler

# KerasHub's T5 attention warns that it drops the Keras masks it is given (it reads its own).
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Layer '\w+' \(of type T5MultiHeadAttention\)")

V = 50
#: (seed, gated, tied, activation): T5 v1.1 / Flan (gated GELU, untied), T5 1.0 (ReLU,
#: tied), and gated exact GELU, tied.
CONFIGS = [(0, True, False, "gelu_approximate"), (1, False, True, "relu"),
           (2, True, True, "gelu")]


def _activation(name):
    if name == "gelu_approximate":
        from keras_hub.src.utils.keras_utils import gelu_approximate

        return gelu_approximate
    return name


class _NoPadT5(keras_hub.models.T5Seq2SeqLM):
    """KerasHub's T5 with pad never chosen, as zoo's decoding bans it (its start token)."""

    def _logits(self, hidden_states):
        logits = super()._logits(hidden_states)
        return logits - 1e9 * keras.ops.one_hot(0, keras.ops.shape(logits)[-1])


def _hub(seed, gated, tied, activation, cls=keras_hub.models.T5Seq2SeqLM, vocab=V):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=vocab, num_layers=2, num_heads=3, hidden_dim=12, intermediate_dim=20,
        key_value_dim=5, dropout=0.0, activation=_activation(activation),
        use_gated_activation=gated, tie_embedding_weights=tied)
    return cls(backbone=backbone, preprocessor=None)


def _batch(seed, source_lengths=(140, 60, 7), target_lengths=(9, 5, 3)):
    """T5 ids with padding; sources longer than T5's 128-position bucket range."""
    rng = np.random.default_rng(seed)
    s, t = max(source_lengths), max(target_lengths)
    src = rng.integers(3, V, (len(source_lengths), s))
    tgt = rng.integers(3, V, (len(target_lengths), t))
    for b, n in enumerate(source_lengths):
        src[b, n - 1], src[b, n:] = 1, 0  # eos, padding
    for b, n in enumerate(target_lengths):
        tgt[b, 0], tgt[b, n:] = 0, 0  # T5 starts from pad
    smask = (np.arange(s)[None] < np.array(source_lengths)[:, None]).astype("int32")
    tmask = (np.arange(t)[None] < np.array(target_lengths)[:, None]).astype("int32")
    return src, smask, tgt, tmask


def _to_zoo(ids, original):
    """T5 ids -> zoo ids (pad stays 0; a leading 0 in a target is the start: zoo's bos)."""
    back = {int(o): i for i, o in enumerate(original) if i != 2}
    return np.vectorize(lambda t: back.get(int(t), 0))(ids)


@pytest.mark.parametrize("seed,gated,tied,activation", CONFIGS)
def test_logits_and_encoder_outputs_equal_keras_hub(seed, gated, tied, activation):
    hub = _hub(seed, gated, tied, activation)
    model = import_keras_hub(hub, task="summarizer")
    original = np.asarray(t5_layout(V))
    src, smask, tgt, tmask = _batch(seed)
    want = hub({"encoder_token_ids": src, "encoder_padding_mask": smask,
                "decoder_token_ids": tgt, "decoder_padding_mask": tmask}).numpy()
    zsrc, ztgt = _to_zoo(src, original), _to_zoo(tgt, original)
    ztgt[:, 0] = 2
    got = model({"source": zsrc, "target": ztgt}).numpy()
    enc_want = hub.call_encoder(src, smask).numpy()
    enc_got = model.encode(zsrc)["outputs"].numpy()
    for b in range(len(src)):
        s, t = smask[b].sum(), tmask[b].sum()
        np.testing.assert_allclose(enc_got[b, :s], enc_want[b, :s], atol=1e-5, rtol=0)
        # Every zoo column is a T5 column (zoo's bos column repeats T5's pad).
        np.testing.assert_allclose(got[b, :t], want[b, :t][:, original], atol=1e-5, rtol=0)


@pytest.mark.parametrize("growing", [False, True])
def test_imported_step_equals_teacher_forcing(growing):
    model = import_keras_hub(_hub(*CONFIGS[0]), task="summarizer")
    src, _, tgt, _ = _batch(0, target_lengths=(9, 9, 9))
    zsrc, ztgt = _to_zoo(src, t5_layout(V)), _to_zoo(tgt, t5_layout(V))
    ztgt[:, 0] = 2
    full = model({"source": zsrc, "target": ztgt}).numpy()
    encoded = model.encode(zsrc)
    memory = model.prepare_memory(encoded)
    state = model.initial_state(encoded, 12, growing=growing) if growing else \
        model.initial_state(encoded, 12)
    for t in range(ztgt.shape[1]):
        logits, state, _ = model.decode_step(ztgt[:, t], state, memory)
        np.testing.assert_allclose(logits.numpy(), full[:, t], atol=1e-5, rtol=0)


def _hub_generated(hub, src, smask, steps, stop_token_ids):
    """KerasHub's ``generate_step`` from T5's start (pad): ``steps`` T5 ids."""
    prompt = np.zeros((len(src), steps + 1), "int32")
    pmask = np.zeros_like(prompt, dtype=bool)
    pmask[:, 0] = True
    out = hub.generate_step({"encoder_token_ids": src, "encoder_padding_mask": smask,
                             "decoder_token_ids": prompt, "decoder_padding_mask": pmask},
                            stop_token_ids=stop_token_ids)
    return keras.ops.convert_to_numpy(out["decoder_token_ids"])[:, 1:]


@pytest.mark.parametrize("seed,gated,tied,activation", CONFIGS)
def test_greedy_tokens_equal_keras_hub_sampler(seed, gated, tied, activation):
    hub = _hub(seed, gated, tied, activation, cls=_NoPadT5)
    hub.compile(sampler="greedy")
    model = import_keras_hub(hub, task="summarizer")
    original = np.asarray(t5_layout(V))
    src, smask, _, _ = _batch(seed)
    steps = 12
    want = _hub_generated(hub, src, smask, steps, stop_token_ids=(1,))
    got = model.generate(_to_zoo(src, original), "greedy", max_length=steps).tokens.numpy()
    got = original[got[:, 0]]  # back to T5 ids
    for b in range(len(src)):
        w = list(want[b])
        n = w.index(1) + 1 if 1 in w else steps
        assert list(got[b, :n]) == w[:n], b


@pytest.mark.parametrize("seed,gated,tied,activation", CONFIGS)
def test_beam_tokens_equal_keras_hub_beam_sampler(seed, gated, tied, activation):
    """KerasHub's ``BeamSampler`` ranks by summed log-probabilities and keeps extending beams
    after eos; with eos banned in both (zoo: ``min_length``), no length penalty and zoo's
    scoring (:func:`conftest.zoo_scored_beam_sampler`), the two are the same search: the
    best beam must match."""
    hub = _hub(seed, gated, tied, activation)
    hub.compile(sampler=zoo_scored_beam_sampler(4, repeated=0, banned=(0, 1)))
    model = import_keras_hub(hub, task="summarizer")
    original = np.asarray(t5_layout(V))
    src, smask, _, _ = _batch(seed)
    steps = 10
    want = _hub_generated(hub, src, smask, steps, stop_token_ids=None)
    got = model.generate(_to_zoo(src, original), "beam", beam_size=4, max_length=steps,
                         min_length=steps, length_penalty=0.0).tokens.numpy()
    np.testing.assert_array_equal(original[got[:, 0]], want)


def test_t5_sentencepiece_keeps_its_segmentation_in_zoo_layout(t5_sentencepiece):
    import sentencepiece as spm

    proto, _ = t5_sentencepiece
    tok, original = SentencePieceTokenizer.from_foreign(proto)
    t5 = spm.SentencePieceProcessor(model_proto=proto)
    text = "#Person1#: Where is the station? #Person2#: Next to the bank."
    t5_ids = t5.encode(text)
    zoo_ids = tok.processor.encode(text)
    assert [original[i] for i in zoo_ids] == t5_ids
    assert tok.processor.decode(zoo_ids) == t5.decode(t5_ids)
    assert original[:4] == [0, 2, 0, 1]


def test_imported_model_fine_tunes_on_samsum_saves_and_loads(tmp_path, t5_sentencepiece):
    proto, vocab = t5_sentencepiece
    model = import_keras_hub(_hub(*CONFIGS[0], vocab=vocab), task="summarizer",
                             tokenizer=proto, max_source_length=64)
    assert model.decoder.vocab_size == len(SentencePieceTokenizer.from_foreign(proto)[1])
    assert_fine_tunes_saves_and_loads(model, tmp_path / "t5")


def test_unsupported_models_and_tasks_are_refused():
    with pytest.raises(ValueError, match="task must be one of"):
        import_keras_hub(_hub(*CONFIGS[1]), task="classifier")
    with pytest.raises(ValueError, match="T5"):
        import_keras_hub(keras.layers.Dense(2))


def test_zoo_import_writes_a_model_directory_from_a_keras_hub_preset(tmp_path, t5_sentencepiece,
                                                                     capsys):
    """``zoo import keras_hub:DIR`` on a preset saved by KerasHub (no network): an ordinary
    model directory that ``zoo summarize`` runs; an existing --out is refused, a bad SOURCE
    named."""
    from zoo import cli

    proto, vocab = t5_sentencepiece
    tokenizer = keras_hub.models.T5Tokenizer(proto=proto)
    preprocessor = keras_hub.models.T5Seq2SeqLMPreprocessor(
        tokenizer=tokenizer, encoder_sequence_length=64, decoder_sequence_length=16)
    hub = _hub(*CONFIGS[1], vocab=vocab)
    hub = keras_hub.models.T5Seq2SeqLM(backbone=hub.backbone, preprocessor=preprocessor)
    hub.save_to_preset(str(tmp_path / "preset"))
    out = tmp_path / "model"
    assert cli.main(["import", f"keras_hub:{tmp_path / 'preset'}", "--out", str(out),
                     "--max-target-length", "16"]) == 0
    model = zoo.models.load(str(out))
    assert type(model).__name__ == "Summarizer" and model.max_target_length == 16
    capsys.readouterr()
    assert cli.main(["summarize", "--model", str(out), "#Person1#: Hi. #Person2#: Hello."]) == 0
    assert capsys.readouterr().out.strip()
    assert cli.main(["import", f"keras_hub:{tmp_path / 'preset'}", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["import", "t5_small", "--out", str(tmp_path / "x")]) == 2
    assert "keras_hub:PRESET_OR_DIR" in capsys.readouterr().err
