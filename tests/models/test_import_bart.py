"""zoo.models.import_keras_hub against KerasHub's own BART (random weights, small configs).

KerasHub runs on BART's ids (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3); zoo on the same
tokens in its layout (``original[i]``: the BART id of zoo id ``i``; zoo's bos row is ``</s>``,
and ``<s>`` is zoo id 4, which every decoding writes first). Sources are ``<s> x </s>`` and
the decoder reads ``</s> <s> y``, as KerasHub's preprocessor packs them.
"""

import numpy as np
import pytest

import keras
import keras_hub

import zoo.data
import zoo.inputs
import zoo.models
from zoo.models.importers import BART_IDS, bart_layout, import_keras_hub

from conftest import assert_fine_tunes_saves_and_loads, zoo_scored_beam_sampler

V = 40
B = BART_IDS
#: (seed, layers, heads, dim, ffn): two shapes, one with odd head counts.
CONFIGS = [(0, 2, 3, 12, 20), (1, 1, 2, 8, 16)]


class _NoPadBart(keras_hub.models.BartSeq2SeqLM):
    """KerasHub's BART with pad never chosen, as zoo's decoding bans it."""

    def call_decoder_with_cache(self, *args, **kwargs):
        logits, *rest = super().call_decoder_with_cache(*args, **kwargs)
        return (logits - 1e9 * keras.ops.one_hot(B["pad"], keras.ops.shape(logits)[-1]),
                *rest)


def _hub(seed, layers, heads, dim, ffn, cls=keras_hub.models.BartSeq2SeqLM, vocab=V,
         positions=64):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BartBackbone(
        vocabulary_size=vocab, num_layers=layers, num_heads=heads, hidden_dim=dim,
        intermediate_dim=ffn, dropout=0.0, max_sequence_length=positions)
    return cls(backbone=backbone, preprocessor=None)


def _batch(seed, source_lengths=(60, 23, 4), target_lengths=(9, 5, 3), vocab=V):
    """BART ids with padding: sources ``<s> x </s>``, targets ``</s> <s> y``."""
    rng = np.random.default_rng(seed)
    s, t = max(source_lengths), max(target_lengths)
    src = rng.integers(4, vocab, (len(source_lengths), s))
    tgt = rng.integers(4, vocab, (len(target_lengths), t))
    for b, n in enumerate(source_lengths):
        src[b, 0], src[b, n - 1], src[b, n:] = B["start"], B["end"], B["pad"]
    for b, n in enumerate(target_lengths):
        tgt[b, :2], tgt[b, n:] = (B["end"], B["start"]), B["pad"]
    smask = (np.arange(s)[None] < np.array(source_lengths)[:, None]).astype("int32")
    tmask = (np.arange(t)[None] < np.array(target_lengths)[:, None]).astype("int32")
    return src, smask, tgt, tmask


def _to_zoo(ids, mask, vocab=V):
    """BART ids -> zoo ids (padding 0; ``</s>`` is eos; a target's first token is bos)."""
    back = {}
    for i, o in enumerate(bart_layout(vocab)):
        if i != 2:  # zoo's bos shares </s>'s row; a </s> in text is eos
            back.setdefault(int(o), i)
    out = np.vectorize(back.__getitem__)(ids)
    out[mask == 0] = 0
    return out


def _targets(tgt, tmask):
    out = _to_zoo(tgt, tmask)
    out[:, 0] = 2
    return out


@pytest.mark.parametrize("config", CONFIGS)
def test_bart_logits_and_encoder_outputs_equal_keras_hub(config):
    hub = _hub(*config)
    model = import_keras_hub(hub, task="summarizer", tokenizer=False, max_source_length=64,
                             max_target_length=32)
    original = np.asarray(bart_layout(V))
    src, smask, tgt, tmask = _batch(config[0])
    want = hub({"encoder_token_ids": src, "encoder_padding_mask": smask,
                "decoder_token_ids": tgt, "decoder_padding_mask": tmask}).numpy()
    got = model({"source": _to_zoo(src, smask), "target": _targets(tgt, tmask)}).numpy()
    enc_want = hub.call_encoder(src, smask).numpy()
    enc_got = model.encode(_to_zoo(src, smask))["outputs"].numpy()
    for b in range(len(src)):
        s, t = smask[b].sum(), tmask[b].sum()
        np.testing.assert_allclose(enc_got[b, :s], enc_want[b, :s], atol=1e-5, rtol=0)
        # Every zoo column is a BART column (bos and eos both </s>'s).
        np.testing.assert_allclose(got[b, :t], want[b, :t][:, original], atol=1e-5, rtol=0)
    assert model.forced_first_id == 4 and original[4] == B["start"]


@pytest.mark.parametrize("growing", [False, True])
def test_bart_step_equals_teacher_forcing(growing):
    model = import_keras_hub(_hub(*CONFIGS[0]), tokenizer=False, max_source_length=64,
                             max_target_length=32)
    src, smask, tgt, tmask = _batch(0, target_lengths=(9, 9, 9))
    zsrc, ztgt = _to_zoo(src, smask), _targets(tgt, tmask)
    full = model({"source": zsrc, "target": ztgt}).numpy()
    encoded = model.encode(zsrc)
    memory = model.prepare_memory(encoded)
    state = model.initial_state(encoded, 12, growing=growing)
    for t in range(ztgt.shape[1]):  # the learned position of step t is t, in both caches
        logits, state, _ = model.decode_step(ztgt[:, t], state, memory)
        np.testing.assert_allclose(logits.numpy(), full[:, t], atol=1e-5, rtol=0)


def _hub_generated(hub, src, smask, steps, stop_token_ids):
    """KerasHub's ``generate_step`` after its prompt ``</s> <s>``: ``steps`` BART ids."""
    prompt = np.full((len(src), steps + 2), B["pad"], "int32")
    prompt[:, :2] = B["end"], B["start"]
    pmask = np.zeros_like(prompt, dtype=bool)
    pmask[:, :2] = True
    out = hub.generate_step({"encoder_token_ids": src, "encoder_padding_mask": smask,
                             "decoder_token_ids": prompt, "decoder_padding_mask": pmask},
                            stop_token_ids=stop_token_ids)
    return keras.ops.convert_to_numpy(out["decoder_token_ids"])[:, 2:]


@pytest.mark.parametrize("config", CONFIGS)
def test_bart_greedy_tokens_equal_keras_hub_sampler(config):
    """KerasHub's prompt is ``</s> <s>``; zoo starts from ``</s>`` and is forced to ``<s>``."""
    hub = _hub(*config, cls=_NoPadBart)
    hub.compile(sampler="greedy")
    model = import_keras_hub(hub, tokenizer=False, max_source_length=64, max_target_length=32)
    original = np.asarray(bart_layout(V))
    src, smask, _, _ = _batch(config[0])
    steps = 12
    want = _hub_generated(hub, src, smask, steps, stop_token_ids=(B["end"],))
    for strategy in ("greedy", {"class_name": "greedy", "config": {}}):
        got = model.generate(_to_zoo(src, smask), strategy, max_length=steps + 1)
        got = original[got.tokens.numpy()[:, 0]]  # back to BART ids
        assert (got[:, 0] == B["start"]).all()
        for b in range(len(src)):
            w = list(want[b])
            n = w.index(B["end"]) + 1 if B["end"] in w else steps
            assert list(got[b, 1:n + 1]) == w[:n], b


@pytest.mark.parametrize("config", CONFIGS)
def test_bart_beam_tokens_equal_keras_hub_beam_sampler(config):
    """KerasHub's ``BeamSampler`` (summed log-probabilities, beams extended after eos) and
    zoo's beam search with eos banned (``min_length``), no length penalty and zoo's scoring
    (:func:`conftest.zoo_scored_beam_sampler`) are the same search: the best beam must
    match. ``<s>`` is KerasHub's prompt and zoo's forced token."""
    hub = _hub(*config)
    hub.compile(sampler=zoo_scored_beam_sampler(4, repeated=B["end"],
                                                banned=(B["pad"], B["end"])))
    model = import_keras_hub(hub, tokenizer=False, max_source_length=64, max_target_length=32)
    original = np.asarray(bart_layout(V))
    src, smask, _, _ = _batch(config[0])
    steps = 10
    want = _hub_generated(hub, src, smask, steps, stop_token_ids=None)
    got = model.generate(_to_zoo(src, smask), "beam", beam_size=4, max_length=steps + 1,
                         min_length=steps + 1, length_penalty=0.0).tokens.numpy()
    got = original[got[:, 0]]
    assert (got[:, 0] == B["start"]).all()
    np.testing.assert_array_equal(got[:, 1:], want)


def test_forced_first_token_in_every_strategy_and_round_trips(tmp_path):
    model = import_keras_hub(_hub(*CONFIGS[1]), tokenizer=False, max_source_length=64,
                             max_target_length=16)
    src, smask, _, _ = _batch(1)
    zsrc = _to_zoo(src, smask)
    for strategy, kw in (("greedy", {}), ("beam", {"beam_size": 3}),
                         ("sampling", {"top_k": 5, "seed": 1})):
        tokens = model.generate(zsrc, strategy, max_length=6, **kw).tokens.numpy()
        assert (tokens[:, :, 0] == 4).all(), strategy
    config = model.get_config()
    assert config["forced_first_id"] == 4
    assert config["encoder"]["config"]["positions"] == "learned"
    model.save(str(tmp_path / "bart.keras"))  # a model of ids: one Keras file
    loaded = keras.saving.load_model(str(tmp_path / "bart.keras"), safe_mode=True)
    np.testing.assert_array_equal(loaded.generate(zsrc, max_length=6).tokens.numpy(),
                                  model.generate(zsrc, max_length=6).tokens.numpy())


def test_bart_import_refusals_name_the_problem():
    hub = _hub(*CONFIGS[1], positions=16)
    with pytest.raises(ValueError, match="max_source_length=64 is beyond the model's 16"):
        import_keras_hub(hub, tokenizer=False, max_source_length=64)
    with pytest.raises(ValueError, match="must be a KerasHub BartTokenizer"):
        import_keras_hub(hub, tokenizer=b"a SentencePiece model?", max_source_length=16,
                         max_target_length=16)
    model = import_keras_hub(hub, tokenizer=False, max_source_length=16, max_target_length=16)
    src, smask, _, _ = _batch(1, source_lengths=(6, 3), target_lengths=(3, 3))
    with pytest.raises(ValueError, match="max_length=20 is beyond the TransformerDecoder's 16"):
        model.generate(_to_zoo(src, smask), max_length=20)
    with pytest.raises(ValueError, match="forced_first_id must be a target id"):
        zoo.models.Summarizer(encoder=model.encoder, decoder=model.decoder,
                              max_source_length=16, max_target_length=16,
                              forced_first_id=V + 5)


def _hub_with_bpe(bart_bpe, sequence_length=64, cls=keras_hub.models.BartSeq2SeqLM):
    """A KerasHub BART with its preprocessor and a real byte-level BPE (conftest)."""
    vocab, merges = bart_bpe
    tokenizer = keras_hub.models.BartTokenizer(vocabulary=vocab, merges=merges)
    preprocessor = keras_hub.models.BartSeq2SeqLMPreprocessor(
        tokenizer=tokenizer, encoder_sequence_length=sequence_length,
        decoder_sequence_length=sequence_length // 2)
    backbone = _hub(*CONFIGS[1], vocab=len(vocab), positions=sequence_length * 2).backbone
    return cls(backbone=backbone, preprocessor=preprocessor)


def test_bart_of_text_tokenizes_as_keras_hubs_preprocessor(bart_bpe, tmp_path):
    """Sources ``<s> x </s>`` cut as KerasHub cuts them, targets ``<s> y``, text back as
    KerasHub's tokenizer writes it; the model directory keeps the BPE and reloads."""
    hub = _hub_with_bpe(bart_bpe)
    model = import_keras_hub(hub, task="summarizer", max_source_length=64,
                             max_target_length=16)
    assert model.source_tokenizer.suffix == ".bpe.json"
    vocab = bart_bpe[0]  # zoo id -> BART id by piece; zoo's bos has a name of its own
    original = np.asarray([vocab.get(p, B["end"]) for p in
                           model.source_tokenizer.id_to_piece(range(len(vocab) + 1))])
    texts = [d for d, _ in zoo.data.dialogsum_pairs("dev", limit=4)] + [
        "naïve café 😀  two  spaces", "", "#Person1#: Hi!\n#Person2#: Bye."]
    with pytest.warns(zoo.inputs.InputTruncatedWarning):
        zoo_ids = model.encode_texts(texts).numpy()
    packed = hub.preprocessor.generate_preprocess(
        {"encoder_text": texts, "decoder_text": texts})
    hub_src = np.asarray(packed["encoder_token_ids"])
    hub_tgt = np.asarray(packed["decoder_token_ids"])
    for b in range(len(texts)):
        assert [int(original[i]) for i in zoo_ids[b] if i] == \
            [int(i) for i in hub_src[b] if i != B["pad"]], texts[b]
    targets = model.target_tokenizer.tokenize(texts).to_list()
    for b in range(len(texts)):  # KerasHub's decoder prompt is </s> + the target's <s> y
        hub_row = [int(i) for i in hub_tgt[b] if i != B["pad"]][1:]
        assert [int(original[i]) for i in targets[b]][:len(hub_row)] == hub_row[:len(targets[b])]
    ids = np.asarray(targets[-1])[None]
    want = hub.preprocessor.tokenizer.detokenize(original[ids[0, 1:]].tolist())
    assert model.target_tokenizer.detokenize(ids).numpy()[0].decode() == texts[-1] == want
    model.save(str(tmp_path / "bart"))
    loaded = zoo.models.load(str(tmp_path / "bart"))
    assert loaded.source_tokenizer.model == model.source_tokenizer.model
    short = [texts[4], texts[6]]
    assert loaded.summarize(short, strategy="greedy", max_length=8) == \
        model.summarize(short, strategy="greedy", max_length=8)


# The same fit/save/load path as the imported T5's, in the default run
# (tests/models/test_import_keras_hub.py): behind `slow` (CI time on 2 cores).
@pytest.mark.slow
def test_imported_bart_fine_tunes_on_samsum_saves_and_loads(tmp_path, bart_bpe):
    """With its own byte-level BPE: the tf.data pipeline tokenizes in KerasHub's graph BPE."""
    model = import_keras_hub(_hub_with_bpe(bart_bpe), max_source_length=64,
                             max_target_length=32)
    assert_fine_tunes_saves_and_loads(model, tmp_path / "bart")


def _saved_preset(vocab, merges, path):
    tokenizer = keras_hub.models.BartTokenizer(vocabulary=vocab, merges=merges)
    preprocessor = keras_hub.models.BartSeq2SeqLMPreprocessor(
        tokenizer=tokenizer, encoder_sequence_length=16, decoder_sequence_length=8)
    hub = _hub(*CONFIGS[1], vocab=len(vocab), positions=32)
    hub = keras_hub.models.BartSeq2SeqLM(backbone=hub.backbone, preprocessor=preprocessor)
    hub.save_to_preset(str(path))


def test_zoo_import_of_a_bart_preset_writes_a_model_of_text(tmp_path, bart_bpe):
    """A BART preset saved by KerasHub (no network): ``zoo import`` writes a model directory
    with its BPE, which loads and summarizes text."""
    from zoo import cli

    _saved_preset(*bart_bpe, tmp_path / "preset")
    out = tmp_path / "model"
    assert cli.main(["import", f"keras_hub:{tmp_path / 'preset'}", "--out", str(out),
                     "--max-source-length", "32", "--max-target-length", "16"]) == 0
    assert (out / "source.bpe.json").exists() and not (out / "source.model").exists()
    model = zoo.models.load(str(out))
    assert isinstance(model.summarize(["#Person1#: Hi!"], max_length=6)[0], str)


def test_zoo_import_of_a_bart_without_byte_symbols_stops_naming_it(tmp_path, capsys):
    """KerasHub's documented toy vocabulary is no byte-level BPE: ``zoo import`` stops with a
    message, writes nothing, and shows no traceback."""
    from zoo import cli

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4, "a": 5, "Ġquick": 6,
             "Ġfox": 7, "Ġ": 8, "q": 9, "u": 10, "i": 11, "c": 12, "k": 13, "f": 14, "o": 15,
             "x": 16, "Ġq": 17, "ui": 18, "ck": 19, "uick": 20, "Ġf": 21, "ox": 22}
    merges = ["Ġ q", "u i", "c k", "ui ck", "Ġq uick", "Ġ f", "o x", "Ġf ox"]
    _saved_preset(vocab, merges, tmp_path / "preset")
    out = tmp_path / "model"
    assert cli.main(["import", f"keras_hub:{tmp_path / 'preset'}", "--out", str(out),
                     "--max-source-length", "32", "--max-target-length", "16"]) == 2
    err = capsys.readouterr().err
    assert "the vocabulary lacks" in err and "256 byte symbols" in err
    assert "Traceback" not in err and not out.exists()


def test_fine_tuning_an_imported_bart_keeps_within_its_learned_positions(tmp_path, bart_bpe):
    """The summarizer's default source limit (400) is cut to BART's table of positions; a
    longer limit given by the user is refused before any work."""
    from zoo import recipes
    from zoo.recipes import settings

    model = import_keras_hub(_hub_with_bpe(bart_bpe, sequence_length=32),
                             max_source_length=32, max_target_length=16)
    model.save(str(tmp_path / "bart"))
    pairs = list(zoo.data.dialogsum_pairs("train", limit=16))
    with pytest.raises(ValueError, match="max_source_length=300 is beyond the "
                                         "TransformerEncoder's 64 learned positions"):
        recipes.train_summarizer(pairs, init_from=str(tmp_path / "bart"),
                                 out_dir=str(tmp_path / "refused"), max_source_length=300)
    assert not (tmp_path / "refused").exists()
    given = settings.resolve(zoo.models.Summarizer, {"init_from": str(tmp_path / "bart")})
    assert given.max_source_length == 400  # the summarizer's default, beyond 64 positions
    tuned = given.with_base(model)
    assert (tuned.max_source_length, tuned.max_target_length) == (64, min(
        given.max_target_length, 64))


# The length check above is in the default run; the training run behind it is the recipes'
# usual path (tests/training): behind `slow` (CI time on 2 cores).
@pytest.mark.slow
def test_zoo_training_recipe_fine_tunes_an_imported_bart(tmp_path, bart_bpe):
    from zoo import recipes

    model = import_keras_hub(_hub_with_bpe(bart_bpe, sequence_length=32),
                             max_source_length=32, max_target_length=16)
    model.save(str(tmp_path / "bart"))
    pairs = list(zoo.data.dialogsum_pairs("train", limit=16))
    _, _, info = recipes.train_summarizer(pairs, init_from=str(tmp_path / "bart"),
                                          out_dir=str(tmp_path / "tuned"), epochs=1,
                                          batch_size=8, verbose=0)
    assert info["max_source_length"] == 64 and info["truncated_sources"] > 0
    assert (tmp_path / "tuned" / "source.bpe.json").exists()
    assert (tmp_path / "tuned" / "checkpoints" / "source.bpe.json").exists()
    assert zoo.models.load(str(tmp_path / "tuned")).summarize(["#Person1#: Hi!"], max_length=4)
