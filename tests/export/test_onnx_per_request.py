"""Decoding settings per call in ONNX and SavedModel exports (issue 39): ``max_length``,
``min_length``, ``no_repeat_ngram_size`` and the beam size are inputs of the loop graphs (the SavedModel's
``generate_settings``/``generate_beam_settings`` signatures), so a request takes them without
re-export; the tokens equal the Keras model's with the same settings, and settings out of the
export's bounds are refused by name."""

import numpy as np
import pytest

from zoo.decoding import BeamSearch, Greedy
from zoo.inputs import InputError
from zoo.serving import load


def _keras(model, ids, strategy, max_length, min_length):
    res = model.generate(ids, strategy, max_length=max_length, min_length=min_length)
    return [row[:n].tolist() for row, n in zip(np.asarray(res.tokens[:, 0]),
                                               np.asarray(res.lengths[:, 0]))]


def _onnx(runner, ids, strategy, **options):
    res = runner.generate(ids, strategy, **options)
    return [row[:n].tolist() for row, n in zip(res["tokens"], res["lengths"])]


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
@pytest.mark.parametrize("max_length, min_length", [(2, 0), (4, 0), (6, 3), (5, 5)])
def test_per_call_lengths_give_the_keras_tokens(tiny_exports, strategy, max_length,
                                                min_length):
    model, root = tiny_exports
    runner = load(str(root / "onnx"))
    texts = ["Hola.", "¿Dónde está la estación de tren?", "Tengo hambre y sed."]
    ids, _ = runner.encode_texts(texts)
    keras_strategy = BeamSearch(beam_size=2, length_penalty=0.6) if strategy == "beam" \
        else "greedy"
    want = _keras(model, ids, keras_strategy, max_length, min_length)
    got = _onnx(runner, ids, strategy, max_length=max_length, min_length=min_length)
    assert got == want
    assert max(len(t) for t in got) <= max_length


def test_the_default_is_the_exports_maximum(tiny_exports):
    model, root = tiny_exports
    runner = load(str(root / "onnx"))
    ids, _ = runner.encode_texts(["Hola.", "Buenos días."])
    assert _onnx(runner, ids, "greedy") == _keras(model, ids, "greedy", 6, 0)
    assert runner.manifest["per_request"] == ["max_length", "min_length", "beam_size"]


def _ngram_export(model, root, fmt):
    """The shared tiny model exported with n-gram blocking (size 2): such exports take the
    size per call."""
    from zoo.export import export

    export(model, str(root / fmt), fmt, beam_size=2, no_repeat_ngram_size=2)
    return load(str(root / fmt))


# Behind `slow` (CI time on 2 cores): the default run checks a size per call against Keras in
# the summarizer's ONNX export (tests/models/test_summarizer.py), the same ExportCore loop.
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "savedmodel"])
def test_per_call_ngram_blocking_gives_the_keras_tokens(tiny_exports, tmp_path, fmt):
    """An export made with n-gram blocking takes any size per call, 0 (off) included."""
    model, _ = tiny_exports
    runner = _ngram_export(model, tmp_path, fmt)
    texts = ["Hola.", "¿Dónde está la estación de tren?", "Tengo hambre y sed.", "Buenas."]
    outputs = {}
    for strategy, kw in (("greedy", {}), ("beam", {"beam_size": 3})):
        for n in (0, 1, 3):
            keras_strategy = (BeamSearch(length_penalty=0.6, no_repeat_ngram_size=n, **kw)
                              if kw else Greedy(no_repeat_ngram_size=n))
            want = outputs[strategy, n] = model.translate(texts, strategy=keras_strategy)
            got = runner.generate_text(texts, strategy, no_repeat_ngram_size=n, **kw)
            assert got == want, (strategy, n)
    assert "no_repeat_ngram_size" in runner.manifest["per_request"]
    assert runner.generate_text(texts) == model.translate(  # the export's default: 2
        texts, strategy=Greedy(no_repeat_ngram_size=2))
    # The untrained model repeats itself: blocking changes what it writes.
    assert outputs["greedy", 1] != outputs["greedy", 0]


@pytest.mark.parametrize("runtime", ["onnx", "savedmodel"])
def test_an_export_without_ngram_blocking_has_none_to_change(tiny_exports, runtime):
    """Without blocking at export its graphs have no n-gram mask (it would cost every call):
    a call may only repeat 0."""
    model, root = tiny_exports
    runner = load(str(root / runtime))
    assert "no_repeat_ngram_size" not in runner.manifest["per_request"]
    assert runner.generate_text(["Hola."], no_repeat_ngram_size=0) == model.translate(["Hola."])
    with pytest.raises(InputError, match="no_repeat_ngram_size is fixed at export to 0"):
        runner.generate_text(["Hola."], no_repeat_ngram_size=2)


@pytest.mark.parametrize("runtime", ["onnx", "savedmodel"])
# Every beam size and both lengths, in three settings (CI time on 2 cores).
@pytest.mark.parametrize("beam_size, max_length", [(1, 4), (3, 6), (6, 4)])
def test_per_call_beam_size_gives_the_keras_tokens(tiny_exports, runtime, beam_size,
                                                   max_length):
    """An export made with beam 2 searches with the beam a call asks for, as Keras does."""
    model, root = tiny_exports
    runner = load(str(root / runtime))
    texts = ["Hola.", "¿Dónde está la estación de tren?", "Tengo hambre y sed.", "Buenas."]
    want = model.translate(texts, strategy=BeamSearch(beam_size=beam_size, length_penalty=0.6),
                           max_length=max_length)
    assert runner.generate_text(texts, "beam", beam_size=beam_size,
                                max_length=max_length) == want


def test_beam_size_over_the_documented_maximum_is_refused_by_name(tiny_exports):
    from zoo.inputs import MAX_BEAM_SIZE

    _, root = tiny_exports
    runner = load(str(root / "onnx"))
    with pytest.raises(InputError, match=f"beam_size must be in \\[1, {MAX_BEAM_SIZE}\\]") \
            as err:
        runner.generate_text(["Hola."], "beam", beam_size=MAX_BEAM_SIZE + 1)
    assert err.value.field == "beam_size"


@pytest.mark.parametrize("options, field, message", [
    ({"max_length": 7}, "max_length", "over this export's maximum of 6"),
    ({"max_length": 0}, "max_length", "max_length"),
    ({"max_length": 3, "min_length": 4}, "min_length", "must be <= max_length"),
    ({"min_length": 7}, "min_length", "over max_length 6"),
])
def test_out_of_bounds_settings_are_refused_by_name(tiny_exports, options, field, message):
    _, root = tiny_exports
    runner = load(str(root / "onnx"))
    with pytest.raises(InputError, match=message) as err:
        runner.generate_text(["Hola."], "greedy", **options)
    assert err.value.field == field
