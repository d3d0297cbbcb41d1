"""A second task written in a few dozen lines on the base (as docs/tasks.md tells), trained
with fit, generated, saved, reloaded and exported to every format with identical fp32 outputs:
the base is task-agnostic in fact, not in name."""

import numpy as np
import pytest

from zoo.data import SentencePieceTokenizer, anki_spa_eng_pairs, make_dataset
from zoo.export import export
from zoo.models import Seq2Seq, load, presets, register
from zoo.serving import load as load_export


# ---------------------------------------------------------------- the whole task
@register("word_reverser")
class WordReverser(Seq2Seq):
    """Reverses the word order of a sentence (a toy task with a known answer)."""

    task = "word_reversal"

    def reverse(self, texts, **kwargs):
        return self.generate_text(texts, **kwargs)


presets.register("reverser_tiny", {
    "class": "WordReverser", "description": "bi-GRU + GRU with dot attention, 32 units",
    "config": {"encoder": {"class_name": "RNNEncoder",
                           "config": {"embedding_dim": 16, "units": 16}},
               "decoder": {"class_name": "RNNDecoder",
                           "config": {"embedding_dim": 16, "units": 32, "attention": "dot",
                                      "attention_position": "after"}}},
    "train": {"learning_rate": 1e-2, "label_smoothing": 0.0, "batch_size": 32, "epochs": 30},
}, task="word_reversal")


def reversal_pairs(limit):
    """Real short English sentences and their word order reversed."""
    english = [en for _, en in anki_spa_eng_pairs(limit=3000) if len(en.split()) in (2, 3)]
    return [(s, " ".join(reversed(s.split()))) for s in dict.fromkeys(english)][:limit]
# ---------------------------------------------------------------- end of the task


@pytest.fixture(scope="module")
def trained():
    pairs = reversal_pairs(48)
    tok = SentencePieceTokenizer.train([s for p in pairs for s in p] * 4, vocab_size=100)
    model = WordReverser.from_preset("reverser_tiny", tokenizer=tok, max_target_length=10)
    model.compile(learning_rate=1e-2, label_smoothing=0.0)
    history = model.fit(make_dataset(pairs, tok, batch_size=32, seed=0), epochs=80, verbose=0)
    return model, pairs, history.history["loss"]


def test_second_task_trains_with_fit_and_generates(trained):
    model, pairs, loss = trained
    assert "reverser_tiny" in presets.names("word_reversal")
    assert "reverser_tiny" not in presets.names("translation")
    assert loss[-1] < 0.1 * loss[0], loss[::10]
    outs = model.reverse([s for s, _ in pairs[:16]])
    right = sum(o == t for o, (_, t) in zip(outs, pairs[:16]))
    assert right >= 8, list(zip(outs, [t for _, t in pairs[:16]]))


def test_second_task_saves_and_reloads_as_itself(trained, tmp_path):
    model, pairs, _ = trained
    texts = [s for s, _ in pairs[:8]]
    model.save(str(tmp_path / "m"))
    again = load(str(tmp_path / "m"))
    assert type(again) is WordReverser and again.task == "word_reversal"
    assert again.reverse(texts) == model.reverse(texts)
    from zoo.models import Translator
    from zoo.models.base import ModelFileError

    with pytest.raises(ModelFileError, match="holds a WordReverser"):
        Translator.load(str(tmp_path / "m"))


# The Summarizer (tests/models/test_summarizer.py) is a second task whose exports are checked
# in every format in the CI run; this one runs with `pytest -m slow`.
@pytest.mark.slow
def test_second_task_exports_to_every_format_with_identical_outputs(trained, tmp_path):
    model, pairs, _ = trained
    texts = [s for s, _ in pairs[:12]]
    expected = model.reverse(texts)
    beam = model.reverse(texts, strategy="beam", beam_size=2, length_penalty=0.6)
    for fmt, kw in (("savedmodel", {"beam_size": 2}), ("onnx", {"beam_size": 2}),
                    ("litert", {"quantizations": ["float32"], "max_source_length": 12})):
        manifest = export(model, str(tmp_path / fmt), fmt, **kw)
        assert manifest["task"] == "word_reversal" and manifest["model"] == "WordReverser"
        runner = load_export(str(tmp_path / fmt))
        assert runner.generate_text(texts) == expected, fmt
        if "beam" in runner.strategies:
            assert runner.generate_text(texts, "beam") == beam, fmt
        ids = model.encode_texts(texts[:1]).numpy()
        state = runner.encode(np.pad(ids, [(0, 0), (0, 12 - ids.shape[1])])
                              if fmt == "litert" else ids)
        step = runner.decode_step(np.array([2], np.int32), state)
        encoded = model.encode(ids)
        logits, _, _ = model.decode_step(np.array([2], np.int32),
                                         model.initial_state(encoded, 10),
                                         model.prepare_memory(encoded))
        np.testing.assert_allclose(step["logits"], logits.numpy(), atol=1e-4)
