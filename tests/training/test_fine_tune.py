"""Fine-tuning a trained checkpoint (``init_from`` / ``zoo train --from``): the vocabulary is
kept, frozen parts do not move, the result exports with parity and a run resumes."""

import json
import os

import numpy as np
import pytest

import zoo.models
from zoo import recipes
from zoo.data import SentencePieceTokenizer, anki_spa_eng_pairs, make_dataset
from zoo.models import Translator, hub


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny translator trained briefly on Anki pairs, saved as a checkpoint directory, and
    other real pairs to fine-tune on (with words the base never saw)."""
    pairs = anki_spa_eng_pairs(limit=2000)
    tok = SentencePieceTokenizer.train([s for p in pairs[:300] for s in p], vocab_size=150)
    model = Translator.from_preset("rnn_tiny", tokenizer=tok, max_target_length=12,
                                   embedding_dim=16, units=16)
    model.compile(learning_rate=1e-2)
    model.fit(make_dataset(pairs[:300], tok, batch_size=32, seed=0), epochs=1, verbose=0)
    path = str(tmp_path_factory.mktemp("base") / "ck")
    hub.save_checkpoint(model, path, storage="float32")
    return path, pairs[1000:1096], pairs[1096:1112]


def _fine_tune(base, out=None, **kwargs):
    path, train, dev = base
    kw = dict(init_from=path, dev_pairs=dev, epochs=1, warmup_steps=2, batch_size=16,
              verbose=0, out_dir=out, checkpoint_every=None)
    kw.update(kwargs)
    return recipes.train_translator(train, **kw)


def test_vocabulary_is_kept_and_unknown_pieces_are_counted(base):
    model, _, info = _fine_tune(base)
    original = zoo.models.load(base[0])
    assert model.source_tokenizer.model == original.source_tokenizer.model
    assert model.target_tokenizer.model == original.target_tokenizer.model
    assert info["init_from"] == base[0] and info["vocab_size"] == 150
    assert 0 < info["unknown_pieces"] < info["pieces"]  # the 150 pieces miss some characters
    assert info["learning_rate"] == recipes.FINE_TUNE["learning_rate"]


@pytest.mark.parametrize("freeze,frozen,moving", [
    (["encoder"], "encoder", "decoder"),
    (["embeddings"], "embedding", "attention"),
])
def test_frozen_parts_do_not_move(base, freeze, frozen, moving):
    original = {w.path: np.asarray(w).copy() for w in zoo.models.load(base[0]).weights}
    model, _, info = _fine_tune(base, freeze=freeze, learning_rate=3e-2)
    assert info["freeze"] == freeze
    after = {w.path: np.asarray(w) for w in model.weights}
    assert set(after) == set(original)
    still = [p for p in after if frozen in p]
    moved = [p for p in after if moving in p and frozen not in p]
    assert still and moved
    for p in still:
        np.testing.assert_array_equal(after[p], original[p], err_msg=p)
    assert any(not np.array_equal(after[p], original[p]) for p in moved)


def test_unknown_freeze_part_is_refused(base):
    with pytest.raises(ValueError, match="unknown part 'decoder'"):
        _fine_tune(base, freeze=["decoder"])
    with pytest.raises(ValueError, match="give no preset or recipe"):
        _fine_tune(base, preset="rnn_tiny")


# A fine-tuned model is an ordinary model directory, and exports of those are checked in the
# default run; this one and the resume below take a minute of CI's 2 cores: `pytest -m slow`.
@pytest.mark.slow
def test_fine_tuned_model_exports_with_parity(base, tmp_path):
    from zoo.export import export, verify

    model, _, _ = _fine_tune(base, out=str(tmp_path / "ft"))
    reloaded = zoo.models.load(str(tmp_path / "ft"))
    export(reloaded, str(tmp_path / "onnx"), "onnx", beam_size=2)
    report = verify(reloaded, str(tmp_path / "onnx"), [s for s, _ in base[2][:8]])
    assert report["onnx"]["token_agreement"] == 1.0, report
    assert report["onnx"]["max_logit_diff"] < 1e-3, report


@pytest.mark.slow
def test_fine_tuning_run_resumes(base, tmp_path):
    # (A schedule that does not depend on the epoch count: "more epochs" is then exact.)
    kw = {"schedule": "inverse_sqrt", "keep_best": False}
    straight, _, _ = _fine_tune(base, out=str(tmp_path / "a"), epochs=2, **kw)
    _fine_tune(base, out=str(tmp_path / "b"), epochs=1, **kw)
    run = json.load(open(tmp_path / "b" / "checkpoints" / "run.json"))
    assert run["init_from"] == base[0]
    resumed, history, info = _fine_tune(base, out=str(tmp_path / "b"), epochs=2, resume=True,
                                        **kw)
    assert info["resumed_from_epoch"] == 1 and info["epochs_trained"] == 2
    for a, b in zip(straight.weights, resumed.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, err_msg=a.path)
    assert os.path.isfile(tmp_path / "b" / "zoo.json")


@pytest.mark.slow  # CI time on 2 cores (docs/RESULTS.md, Test suite)
def test_a_truncated_newest_checkpoint_falls_back_to_the_previous(base, tmp_path):
    from zoo.training.checkpoints import list_checkpoints

    out = tmp_path / "run"
    kw = {"schedule": "inverse_sqrt", "keep_best": False}
    _fine_tune(base, out=str(out), epochs=2, **kw)
    ckpts = list_checkpoints(str(out / "checkpoints"))
    assert len(ckpts) >= 2
    with open(ckpts[-1], "r+b") as f:  # a newest file cut short (a full disk)
        f.truncate(100)
    with pytest.warns(UserWarning, match="resuming from the previous checkpoint"):
        _, _, info = _fine_tune(base, out=str(out), epochs=3, resume=True, **kw)
    assert info["epochs_trained"] == 3


@pytest.mark.slow  # CI time on 2 cores (docs/RESULTS.md, Test suite)
def test_a_resumed_run_reports_every_epoch(base, tmp_path):
    kw = {"schedule": "inverse_sqrt", "keep_best": False}
    _, _, first = _fine_tune(base, out=str(tmp_path / "r"), epochs=1, **kw)
    _, _, info = _fine_tune(base, out=str(tmp_path / "r"), epochs=3, resume=True, **kw)
    assert len(info["history"]["loss"]) == 3 and len(info["history"]["val_loss"]) == 3
    assert info["history"]["loss"][0] == first["history"]["loss"][0]


def test_a_frozen_encoder_stays_frozen_when_loaded(base, tmp_path):
    """The saved model trains (and restores its optimizer) as it was saved: Keras passes a
    network's frozen flag from its config to the network only, not to its sublayers."""
    import warnings

    model, _, _ = _fine_tune(base, out=str(tmp_path / "ft"), freeze=["encoder"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = zoo.models.load(str(tmp_path / "ft"))
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]
    assert not loaded.encoder.trainable and loaded.encoder.weights
    assert ({w.path for w in loaded.trainable_weights}
            == {w.path for w in model.trainable_weights})
    assert not any("encoder" in w.path for w in loaded.trainable_weights)
