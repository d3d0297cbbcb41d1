"""LiteRT export: builtin ops only, run by ai-edge-litert without TensorFlow, same as Keras."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from zoo.data import SentencePieceTokenizer, anki_spa_eng_pairs, encode_sources, make_dataset
from zoo.export.litert import export_litert
from zoo.inputs import InputTruncatedWarning
from zoo.models import Translator

TINY = {"rnn_tiny": {"units": 16, "embedding_dim": 8},
        "transformer_tiny": {"dim": 16, "ff_dim": 32, "num_heads": 2}}
SRC_LEN, MAX_LEN = 16, 12

RUN = r"""
import json, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from zoo.serving.tokenizer import HostTokenizer
d, texts = sys.argv[1], json.loads(sys.argv[2])
man = json.load(open(d + "/manifest.json"))
tok = HostTokenizer(d + "/" + man["tokenizers"]["source"])
src_len = man["shapes"]["source_length"]
out = {"tensorflow_imported": False}
for q in man["quantization"]:
    it = Interpreter(model_path=d + "/" + man["files"][q])
    ops = {op["op_name"] for op in it._get_ops_details()}
    greedy = it.get_signature_runner("generate")
    enc, step = it.get_signature_runner("encode"), it.get_signature_runner("decode_step")
    res = []
    for t in texts:
        ids = tok.encode([t], max_length=src_len)
        src = np.zeros((1, src_len), np.int32)
        src[:, :ids.shape[1]] = ids
        res.append(tok.decode(greedy(source_ids=src)["tokens"])[0])
    src = np.zeros((1, src_len), np.int32)
    ids = tok.encode(texts[:1]); src[:, :ids.shape[1]] = ids
    state = enc(source_ids=src)
    first = step(token_ids=np.full([1], 2, np.int32), **state)["logits"]
    out[q] = {"greedy": res, "ops": sorted(ops), "first_logits": first.tolist(),
              "bytes": __import__("os").path.getsize(d + "/" + man["files"][q])}
out["tensorflow_imported"] = "tensorflow" in sys.modules
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def tok():
    pairs = anki_spa_eng_pairs(limit=400)
    return SentencePieceTokenizer.train([s for p in pairs for s in p], vocab_size=250)


# In every CI run, LiteRT exports are compared with Keras elsewhere: the Transformer's by
# tests/serving and tests/export/test_runners.py, an RNN's (the pointer-generator) by
# tests/models/test_summarizer.py, each run by the TFLite interpreter without the Flex
# delegate. This full check (quantized variants, op list, verify) runs with `pytest -m slow`
# to keep the CI run under its time budget.
@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(TINY))
def test_litert_variants_run_without_flex_and_match_keras(preset, tok, tmp_path):
    pairs = anki_spa_eng_pairs(limit=300)
    # Keras keeps as many source ids as the LiteRT export (longer sentences are cut alike).
    model = Translator.from_preset(preset, tokenizer=tok, max_target_length=MAX_LEN,
                                   max_source_length=SRC_LEN, **TINY[preset])
    model.compile(learning_rate=1e-2)
    model.fit(make_dataset(pairs[:200], tok, batch_size=32), epochs=3, verbose=0)
    path = str(tmp_path / "lite")
    export_litert(model, path, max_source_length=SRC_LEN, max_length=MAX_LEN)
    texts = [s for s, _ in pairs[200:230]]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, "-c", RUN, path, json.dumps(texts)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["tensorflow_imported"] is False
    with pytest.warns(InputTruncatedWarning):
        expected = model.translate(texts, max_length=MAX_LEN)
    for q in ("float32", "float16", "int8"):
        # An edge runtime has no Flex delegate: every op must be a builtin.
        assert not [op for op in out[q]["ops"] if "Flex" in op or op == "CUSTOM"], out[q]["ops"]
    assert out["float32"]["greedy"] == expected  # identical tokens in fp32
    src = np.zeros((1, SRC_LEN), np.int32)
    ids = encode_sources(texts[:1], tok).numpy()
    src[:, :ids.shape[1]] = ids
    encoded = model.encode(src)
    logits, _, _ = model.decode_step(np.full([1], 2, np.int32),
                                     model.initial_state(encoded, MAX_LEN),
                                     model.prepare_memory(encoded))
    np.testing.assert_allclose(np.array(out["float32"]["first_logits"]),
                               keras.ops.convert_to_numpy(logits), atol=1e-4)
    # Reduced precision: report agreement; it must stay a usable translator.
    for q in ("float16", "int8"):
        agree = np.mean([a == b for a, b in zip(out[q]["greedy"], expected)])
        assert agree >= 0.5, (q, agree)
    # (tiny models: the graph, not the weights, dominates the file size)
    assert out["int8"]["bytes"] < out["float32"]["bytes"]
    assert out["float16"]["bytes"] < out["float32"]["bytes"]
    # zoo.export.verify computes the same figures in-process, logits step by step
    from zoo.export import verify

    report = verify(model, path, texts[:10], [t for _, t in pairs[200:210]],
                    max_sentences_for_logits=3)
    assert report["litert float32"]["token_agreement"] == 1.0
    assert report["litert float32"]["max_logit_diff"] < 1e-4
    assert report["litert float32"]["bleu_diff"] == 0.0
    assert set(report) == {"keras", "litert float32", "litert float16", "litert int8"}


def test_litert_rejects_unknown_quantization(tok, tmp_path):
    model = Translator.from_preset("rnn_tiny", tokenizer=tok, **TINY["rnn_tiny"])
    with pytest.raises(ValueError, match="quantizations must be among"):
        export_litert(model, str(tmp_path), quantizations=["int4"])
