"""Imported KerasHub T5 and BART export to every format and decode as the Keras model does.

The models are KerasHub's ``T5Backbone`` (gated GELU, untied output, relative position bias,
RMS norms, no biases) and ``BartBackbone`` (post-norm, learned positions, embedding norms,
a forced first token) from small configs with random weights. T5 is imported with a
T5-layout SentencePiece model, BART with its byte-level BPE (KerasHub's in-graph BPE in the
SavedModel, ``tokenizers`` host-side for the others). Each export runs through
``zoo.serving.load``, as a deployment does.
"""

import pytest

import keras
import keras_hub

from zoo.data import dialogsum_pairs
from zoo.export import export
from zoo.models.importers import import_keras_hub
from zoo.serving import load

from conftest import T5_SP_VOCAB

# KerasHub's T5 attention warns that it drops the Keras masks it is given (it reads its own).
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Layer '\w+' \(of type T5MultiHeadAttention\)")

# SavedModel and LiteRT convert the same Keras graphs as ONNX, and BART's ONNX the same ops
# as T5's but its positions: behind `slow` (CI time on 2 cores, docs/RESULTS.md "Test
# suite"). T5's ONNX (tf2onnx) and CTranslate2 (its own mapping per architecture) stay in
# the default run.
DEFAULT = {("t5", "onnx"), ("t5", "ctranslate2"), ("bart", "ctranslate2")}
CASES = [pytest.param(family, fmt, marks=() if (family, fmt) in DEFAULT else pytest.mark.slow)
         for family in ("t5", "bart") for fmt in ("savedmodel", "onnx", "litert", "ctranslate2")]


def _t5(proto):
    from keras_hub.src.utils.keras_utils import gelu_approximate

    keras.utils.set_random_seed(3)
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=T5_SP_VOCAB, num_layers=2, num_heads=3, hidden_dim=12,
        intermediate_dim=20, key_value_dim=4, dropout=0.0, activation=gelu_approximate,
        use_gated_activation=True, tie_embedding_weights=False)
    return import_keras_hub(backbone, task="summarizer", tokenizer=proto,
                            max_source_length=64, max_target_length=16)


def _bart(bpe):
    vocab, merges = bpe
    keras.utils.set_random_seed(4)
    backbone = keras_hub.models.BartBackbone(
        vocabulary_size=len(vocab), num_layers=2, num_heads=3, hidden_dim=12,
        intermediate_dim=20, dropout=0.0, max_sequence_length=80)
    tokenizer = keras_hub.models.BartTokenizer(vocabulary=vocab, merges=merges)
    return import_keras_hub(backbone, task="summarizer", tokenizer=tokenizer,
                            max_source_length=64, max_target_length=16)


@pytest.fixture(scope="module")
def imported(request, tmp_path_factory, t5_sentencepiece, bart_bpe):
    model = (_t5(t5_sentencepiece[0]) if request.param == "t5" else _bart(bart_bpe))
    texts = [d for d, _ in dialogsum_pairs("dev", limit=12)]
    # The exports' own defaults: no n-gram blocking (the summarizer's task default has it).
    want = {"greedy": model.summarize(texts, strategy="greedy", no_repeat_ngram_size=0),
            "beam": model.summarize(texts, strategy="beam", beam_size=4,
                                    no_repeat_ngram_size=0)}
    if model.forced_first_id is not None:  # BART: <s> written first, dropped from the text
        tokens = model.generate(model.encode_texts(texts[:2]), "greedy", max_length=4).tokens
        assert (tokens.numpy()[:, 0, 0] == model.forced_first_id).all()
        assert not any("<s>" in t for t in want["greedy"])
    return model, texts, want, tmp_path_factory.mktemp(request.param)


def _in_a_fresh_process(path, texts):
    import json
    import subprocess
    import sys

    code = ("import json, sys\nfrom zoo.serving import load\n"
            f"text = load({path!r}).generate_text({texts!r}, strategy='greedy')\n"
            "print(json.dumps({'text': text, 'keras_hub': 'keras_hub' in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("imported,fmt", CASES, indirect=["imported"])
def test_imported_exports_give_keras_tokens(imported, fmt):
    """T5's relative position bias, RMS norms and gated GELU; BART's learned positions,
    embedding norms and forced first token: each export decodes as Keras does."""
    model, texts, want, root = imported
    path = str(root / fmt)
    export(model, path, format=fmt, **({"max_source_length": 64} if fmt == "litert"
                                       else {"beam_size": 4}))
    runner = load(path)
    assert runner.generate_text(texts, strategy="greedy") == want["greedy"]
    if fmt == "savedmodel":  # its tokenizer's graph needs TensorFlow and tf-text, not KerasHub
        assert _in_a_fresh_process(path, texts[:3]) == {"text": want["greedy"][:3],
                                                        "keras_hub": False}
    if fmt != "litert":  # LiteRT exports greedy decoding only (fixed shapes)
        assert runner.generate_text(texts, strategy="beam") == want["beam"]
