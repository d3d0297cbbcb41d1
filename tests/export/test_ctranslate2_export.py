"""CTranslate2 export of Transformer translators: CTranslate2's own loop, zoo's weights."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from zoo.data import SentencePieceTokenizer, anki_spa_eng_pairs
from zoo.decoding import BeamSearch, Greedy
from zoo.export import export, verify
from zoo.models import Translator
from zoo.serving import load



@pytest.fixture(scope="module")
def data():
    pairs = anki_spa_eng_pairs(limit=400)
    tok = SentencePieceTokenizer.train([s for p in pairs for s in p], vocab_size=250)
    return pairs, tok


def _diverse(tok, **overrides):
    """An untrained model whose weights are scaled up, so that greedy outputs differ from
    text to text (freshly initialised, most texts get the same repeated tokens). Twice, not
    more: at three times, sharper attention made float32 itself the error (one log-probability
    0.17 from float64's in Keras, 0.04 in CTranslate2)."""
    keras.utils.set_random_seed(0)
    model = Translator.from_preset("transformer_tiny", tokenizer=tok, dim=32, ff_dim=64,
                                   num_heads=4, max_target_length=16, **overrides)
    model.build()
    for v in model.weights:
        v.assign(v * 2.0)
    return model


@pytest.mark.slow  # CI time on 2 cores; see docs/RESULTS.md, Test suite
def test_ctranslate2_matches_keras_token_for_token(data, tmp_path):
    pairs, tok = data
    model = _diverse(tok)
    manifest = export(model, str(tmp_path / "ct2"), "ctranslate2")
    assert manifest["format"] == "ctranslate2"
    assert manifest["quantization"] == ["float32", "int8"]
    texts = [p[0] for p in pairs[300:340]]
    assert len(set(model.generate_text(texts))) > 20  # outputs that can disagree
    report = verify(model, str(tmp_path / "ct2"), texts)
    f32, i8 = report["ctranslate2 float32"], report["ctranslate2 int8"]
    assert f32["token_agreement"] == 1.0, f32
    # Log-probabilities of Keras's own tokens, scored by CTranslate2: every weight counts
    # (the scaled weights give log-probabilities of tens: 1e-3 is float32 rounding).
    assert f32["max_logit_diff"] < 1e-3, f32
    # int8 is really quantized (not a silent float32 fallback). Its cost in BLEU is measured
    # on a trained model (docs/RESULTS.md), not on these inflated random weights.
    assert np.isfinite(i8["max_logit_diff"]) and i8["max_logit_diff"] > 100 * f32[
        "max_logit_diff"], i8
    runner = load(str(tmp_path / "ct2"))
    ids = runner.encode_texts(texts[:4])[0]
    beam = runner.generate(ids, "beam")
    assert beam["tokens"].shape == (4, 16) and (beam["lengths"] > 0).all()
    greedy = runner.generate(ids, "greedy")
    for row, n in zip(greedy["attention"], greedy["lengths"]):
        # Every head of the last layer, averaged: each row is a distribution on the source.
        np.testing.assert_allclose(row[:n].sum(-1), 1.0, atol=1e-4)


def test_ctranslate2_untied_output_and_no_tensorflow_in_the_runner(data, tmp_path):
    pairs, tok = data
    # Also one embedding shared by the encoder and the decoder: exported to both.
    model = Translator.from_preset("transformer_tiny", tokenizer=tok, dim=16, ff_dim=32,
                                   num_heads=2, max_target_length=8, share_embeddings=True,
                                   decoder={"tie_embeddings": False})
    export(model, str(tmp_path / "ct2"), "ctranslate2", quantizations=["float32"])
    report = verify(model, str(tmp_path / "ct2"), [p[0] for p in pairs[:10]])
    assert report["ctranslate2 float32"]["max_logit_diff"] < 1e-4, report
    code = ("import json, sys; from zoo.serving import load; "
            "r = load(sys.argv[1]); out = r.generate_text(['Tengo hambre.']); "
            "print(json.dumps({'out': out, 'tf': 'tensorflow' in sys.modules}))")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ct2")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    res = json.loads(run.stdout.strip().splitlines()[-1])
    assert res["tf"] is False and res["out"] == model.generate_text(["Tengo hambre."],
                                                                    max_length=8)


# Post-norm CTranslate2 runs in the default run with the imported BART
# (tests/export/test_imported_exports.py); this one behind `slow` (CI time on 2 cores).
@pytest.mark.slow
def test_ctranslate2_post_norm_matches_keras(data, tmp_path):
    pairs, tok = data
    model = _diverse(tok, normalize_first=False)  # CTranslate2's pre_norm=False, no final norm
    export(model, str(tmp_path / "ct2"), "ctranslate2", quantizations=["float32"])
    texts = [p[0] for p in pairs[300:330]]
    assert len(set(model.generate_text(texts))) > 15
    report = verify(model, str(tmp_path / "ct2"), texts)["ctranslate2 float32"]
    assert report["token_agreement"] == 1.0 and report["max_logit_diff"] < 1e-3, report
    # translate_batch takes the decoding settings per call, as zoo's own graphs do. (Its
    # beam search blocks n-grams differently from zoo's: docs/RESULTS.md, per-call settings.)
    runner = load(str(tmp_path / "ct2"))
    for strategy, kw in ((Greedy(no_repeat_ngram_size=2), {"no_repeat_ngram_size": 2}),
                         (BeamSearch(beam_size=3, length_penalty=0.6),
                          {"beam_size": 3, "length_penalty": 0.6})):
        want = model.generate_text(texts[:12], strategy=strategy, max_length=10)
        got = runner.generate_text(texts[:12], "beam" if "beam_size" in kw else "greedy",
                                   max_length=10, **kw)
        assert got == want, strategy


def test_ctranslate2_refuses_models_it_cannot_run(data, tmp_path):
    pairs, tok = data
    model = Translator.from_preset("rnn_tiny", tokenizer=tok, units=16, embedding_dim=8)
    with pytest.raises(ValueError, match="exports Transformer models.*RNNEncoder"):
        export(model, str(tmp_path / "ct2"), "ctranslate2")
    mixed = Translator.from_preset("transformer_tiny", tokenizer=tok, dim=16, ff_dim=32,
                                   num_heads=2, decoder={"normalize_first": False})
    with pytest.raises(ValueError, match="one normalize_first in the encoder and decoder, "
                                         "got True and False"):
        export(mixed, str(tmp_path / "ct2"), "ctranslate2")
    t5_mixed = Translator.from_preset("transformer_tiny", tokenizer=tok, dim=16, ff_dim=32,
                                      num_heads=2, decoder={"norm": "rms"})
    with pytest.raises(ValueError, match="one norm in the encoder and decoder, got 'layer' "
                                         "and 'rms'"):
        export(t5_mixed, str(tmp_path / "ct2"), "ctranslate2")
    assert not (tmp_path / "ct2").exists()
