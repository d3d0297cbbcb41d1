"""ONNX export: graphs run by onnxruntime in a process without TensorFlow, same as Keras."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from zoo.data import SentencePieceTokenizer, anki_spa_eng_pairs, make_dataset
from zoo.export.onnx import export_onnx
from zoo.models import Translator

TINY = {"rnn_tiny": {"units": 16, "embedding_dim": 8},
        "transformer_tiny": {"dim": 16, "ff_dim": 32, "num_heads": 2}}
TEXTS = ["Tengo hambre.", "¿Dónde está la estación de tren?", "Hola.", "Me gusta leer libros."]

RUN = r"""
import json, sys
import numpy as np
from zoo.serving import load
t = load(sys.argv[1])
texts = json.loads(sys.argv[2])
ids = t.source_tokenizer.encode(texts)
state = t.encode(ids)
step = t.decode_step(np.full([len(texts)], 2, np.int32), state)
errors = []
for kw in ({"length_penalty": 1.0}, {"strategy": "beam", "coverage_penalty": -1.0},
           {"strategy": "beam", "beam_size": 65}):
    try:
        t.generate_text(texts, **kw)
    except ValueError as e:
        errors.append(str(e))
print(json.dumps({"greedy": t.generate_text(texts), "beam": t.generate_text(texts, "beam"),
                  "beam_coverage": t.generate_text(texts, "beam", length_penalty=0.0,
                                                   coverage_penalty=2.0),
                  "ids": ids.tolist(), "first_logits": step["logits"].tolist(),
                  "errors": errors, "tensorflow_imported": "tensorflow" in sys.modules}))
"""


def _check_loops(path, n_state, n_memory):
    """The decoding Loop carries only what changes per step: no weight, and the memory only
    because greedy decoding drops finished rows from it."""
    import onnx

    from zoo.export.onnx_passes import fold_selects

    model = onnx.load(path)
    loops = []

    def walk(graph):
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)
            if node.op_type == "Loop":
                loops.append(node)
    walk(model.graph)
    for loop in loops:
        body = next(a.g for a in loop.attribute if a.name == "body")
        through = [i.name for i, o in zip(body.input[2:], body.output[1:]) if i.name == o.name]
        assert not through, f"{loop.name} carries values it does not change: {through}"
    # Greedy's one loop is in the graph twice, side by side (a batch of one keeps its row
    # masked): with compacted rows it carries the step, the live rows' numbers, previous
    # tokens, state and memory, and the full batch's tokens, scores, lengths and attention;
    # with masked rows the step, the finished flags, the previous tokens, state, and the
    # same four outputs (the memory stays outside) - nothing else.
    carried = sorted(len(loop.input) - 2 for loop in loops[-2:])
    assert carried == sorted([7 + n_state + n_memory, 7 + n_state])
    assert fold_selects(model.graph) == 0  # tf2onnx's arithmetic selects were folded


@pytest.fixture(scope="module")
def tok():
    pairs = anki_spa_eng_pairs(limit=400)
    return SentencePieceTokenizer.train([s for p in pairs for s in p], vocab_size=250)


# Both ONNX exports also run on every CI run: the Transformer's in tests/export/test_runners.py,
# the RNN's through `zoo export --format onnx --verify` (tests/test_cli_translator.py) and the
# pointer-generator's in a process without TensorFlow (tests/models/test_summarizer.py). This
# full check runs with `pytest -m slow` to keep CI within its time budget.
@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(TINY))
def test_onnx_matches_keras_without_tensorflow(preset, tok, tmp_path):
    pairs = anki_spa_eng_pairs(limit=200)
    model = Translator.from_preset(preset, tokenizer=tok, max_target_length=12, **TINY[preset])
    model.compile(learning_rate=1e-2)
    model.fit(make_dataset(pairs, tok, batch_size=32), epochs=2, verbose=0)
    path = str(tmp_path / "onnx")
    manifest = export_onnx(model, path, beam_size=3, length_penalty=0.6)
    assert set(manifest["files"]) == {"encode", "decode_step", "generate", "generate_beam"}
    assert manifest["tokenizers"] == {"source": "source.model", "target": "source.model"}
    _check_loops(os.path.join(path, "greedy.onnx"), n_state=len(manifest["state"]),
                 n_memory=len(manifest["memory"]))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, "-c", RUN, path, json.dumps(TEXTS)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["tensorflow_imported"] is False
    assert out["errors"] == [
        "unknown decoding option 'length_penalty' for strategy 'greedy'; it belongs to "
        "strategy 'beam' (options: max_length, min_length, no_repeat_ngram_size)",
        "coverage_penalty must be in [0, 10], got -1.0",
        "beam_size must be in [1, 64], got 65"]
    # host-side ids == tf-text ids
    from zoo.data import encode_sources

    src = encode_sources(TEXTS, tok).numpy()
    assert out["ids"] == src.tolist()
    assert out["greedy"] == model.translate(TEXTS, max_length=12)
    assert out["beam"] == model.translate(TEXTS, max_length=12, strategy="beam", beam_size=3,
                                          length_penalty=0.6)
    assert out["beam_coverage"] == model.translate(TEXTS, max_length=12, strategy="beam",
                                                   beam_size=3, coverage_penalty=2.0)
    encoded = model.encode(src)
    logits, _, _ = model.decode_step(np.full([len(TEXTS)], 2, np.int32),
                                     model.initial_state(encoded, 12),
                                     model.prepare_memory(encoded))
    np.testing.assert_allclose(np.array(out["first_logits"]),
                               keras.ops.convert_to_numpy(logits), atol=1e-4)
    from zoo.export import verify

    report = verify(model, path, TEXTS, max_sentences_for_logits=2)["onnx"]
    assert report["token_agreement"] == 1.0 and report["max_logit_diff"] < 1e-4
