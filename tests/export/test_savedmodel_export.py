"""SavedModel export: strings in/out, reloaded in a process that imports only TensorFlow."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from zoo.data import SentencePieceTokenizer, anki_spa_eng_pairs, make_dataset
from zoo.export import export_savedmodel, verify
from zoo.models import Translator

TINY = {"rnn_tiny": {"units": 16, "embedding_dim": 8},
        "transformer_tiny": {"dim": 16, "ff_dim": 32, "num_heads": 2}}
TEXTS = ["Tengo hambre.", "¿Dónde está la estación de tren?", "Hola.", "Me gusta leer libros."]

RELOAD = r"""
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece op)
sm = tf.saved_model.load(sys.argv[1])
texts = tf.constant(json.loads(sys.argv[2]))
g = sm.generate(texts)
b = sm.generate_beam(texts, tf.constant(0.6), tf.constant(0.0))
bc = sm.generate_beam(texts, length_penalty=tf.constant(0.0),
                      coverage_penalty=tf.constant(2.0))
empty = sm.generate(tf.zeros([0], tf.string))
errors = []
for bad in (lambda: sm.generate(tf.constant(["Hola.", "  "])),
            lambda: sm.generate_beam(texts, tf.constant(float("nan")), tf.constant(0.0)),
            lambda: sm.generate_beam(texts, tf.constant(0.6), tf.constant(-1.0))):
    try:
        bad()
    except tf.errors.InvalidArgumentError as e:
        errors.append(e.message)
ids = sm.tokenize(texts)
state = sm.encode(ids)  # the state and the memory ("memory__...")
tok = tf.fill([len(json.loads(sys.argv[2]))], 2)
steps = []
for _ in range(g["tokens"].shape[1]):
    r = sm.decode_step(tok, state)
    tok = tf.cast(tf.argmax(r["logits"], -1), tf.int32)
    state.update({k: r["next__" + k] for k in state if "next__" + k in r})  # not the memory
    steps.append(tok.numpy().tolist())
print(json.dumps({"greedy": [s.decode() for s in g["text"].numpy()],
                  "beam": [s.decode() for s in b["text"].numpy()],
                  "beam_coverage": [s.decode() for s in bc["text"].numpy()],
                  "empty": {k: list(v.shape) for k, v in empty.items()}, "errors": errors,
                  "tokens": g["tokens"].numpy().tolist(),
                  "lengths": g["lengths"].numpy().tolist(),
                  "stepped": np.array(steps).T.tolist(),
                  "encoded": sorted(state), "step_outputs": sorted(r),
                  "modules": sorted(m.split(".")[0] for m in sys.modules if m.startswith("zoo"))}))
"""


@pytest.fixture(scope="module")
def tok():
    pairs = anki_spa_eng_pairs(limit=400)
    return SentencePieceTokenizer.train([s for p in pairs for s in p], vocab_size=250)


def _trained(preset, tok):
    """A few fit steps, so the outputs are not all the same token."""
    pairs = anki_spa_eng_pairs(limit=200)
    model = Translator.from_preset(preset, tokenizer=tok, max_target_length=12, **TINY[preset])
    model.compile(learning_rate=1e-2)
    model.fit(make_dataset(pairs, tok, batch_size=32), epochs=2, verbose=0)
    return model


# SavedModel exports are compared with Keras in every CI run elsewhere: the Transformer's by
# tests/serving (the server) and tests/export/test_runners.py, the RNN's by `zoo export
# --verify` (tests/test_cli_translator.py), and the contract in the graph (empty batch, blank
# text, bad penalties) by tests/test_input_contract.py. This full check runs with
# `pytest -m slow` to keep the CI run under its time budget.
@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(TINY))
def test_savedmodel_matches_keras_in_a_fresh_process(preset, tok, tmp_path):
    model = _trained(preset, tok)
    path = str(tmp_path / "sm")
    manifest = export_savedmodel(model, path, beam_size=3)
    with open(os.path.join(path, "manifest.json")) as f:
        assert json.load(f) == json.loads(json.dumps(manifest))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, "-c", RELOAD, path, json.dumps(TEXTS)],
                         capture_output=True, text=True, env=env, timeout=300,
                         cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["modules"] == []  # nothing of zoo was imported to run it
    assert out["greedy"] == model.translate(TEXTS, max_length=12)
    assert out["beam"] == model.translate(TEXTS, max_length=12, strategy="beam", beam_size=3,
                                          length_penalty=0.6)
    assert out["beam_coverage"] == model.translate(TEXTS, max_length=12, strategy="beam",
                                                   beam_size=3, coverage_penalty=2.0)
    # encode gives the state and the memory; decode_step returns only the state.
    memory = [k for k in out["encoded"] if k.startswith("memory__")]
    assert memory and len(memory) < len(out["encoded"])
    assert out["step_outputs"] == sorted(
        ["logits", "attention"] + ["next__" + k for k in out["encoded"] if k not in memory])
    assert out["empty"]["text"] == [0] and out["empty"]["tokens"] == [0, 12]
    assert len(out["errors"]) == 3
    assert "text is empty or whitespace only at index" in out["errors"][0]
    assert "length_penalty must be finite and >= 0" in out["errors"][1]
    assert "coverage_penalty must be finite and >= 0" in out["errors"][2]
    # The caller-driven loop over encode/decode_step gives the greedy tokens.
    for row, n in enumerate(out["lengths"]):
        assert out["stepped"][row][:n] == out["tokens"][row][:n]


# The report is model-agnostic; the Transformer's SavedModel parity is checked above. The CLI
# test `zoo export --verify` runs this report on every CI run; this one runs with -m slow.
@pytest.mark.slow
@pytest.mark.parametrize("preset", ["rnn_tiny"])
def test_verify_reports_parity(preset, tok, tmp_path):
    model = _trained(preset, tok)
    path = str(tmp_path / "sm")
    export_savedmodel(model, path)
    pairs = anki_spa_eng_pairs(limit=30)
    report = verify(model, path, [s for s, _ in pairs], [t for _, t in pairs])["savedmodel"]
    assert report["token_agreement"] == 1.0
    assert report["max_logit_diff"] < 1e-4
    assert report["bleu_diff"] == 0.0


def test_export_needs_tokenizers(tmp_path):
    model = Translator.from_preset("rnn_tiny", vocab_size=40, **TINY["rnn_tiny"])
    with pytest.raises(ValueError, match="export needs a Translator with tokenizers"):
        export_savedmodel(model, str(tmp_path / "x"))
