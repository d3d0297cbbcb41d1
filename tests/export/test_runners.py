"""zoo.serving.load: the runner comes from the manifest; damaged exports are named; the LiteRT
runner pads to its fixed shapes and splits larger batches."""

import json
import os
import shutil

import pytest

from zoo.serving import ExportFileError, LiteRTRunner, OnnxRunner, load

TEXTS = ["Tengo hambre.", "Hola.", "¿Dónde está la estación de tren?", "Me gusta leer.",
         "Hace frío hoy."]


@pytest.fixture(scope="module")
def exports(tiny_exports):
    return tiny_exports


def test_runner_is_chosen_by_the_manifest(exports):
    model, root = exports
    assert isinstance(load(str(root / "onnx")), OnnxRunner)
    lite = load(str(root / "litert"))
    assert isinstance(lite, LiteRTRunner) and lite.quantization == "float32"
    assert load(str(root / "litert"), quantization="int8").quantization == "int8"
    with pytest.raises(ValueError, match="quantization 'float16' is not in this export"):
        load(str(root / "litert"), quantization="float16")


def test_onnx_exports_load_without_onnxruntime_warnings(exports, capfd):
    """onnxruntime prints its warnings (an unused initializer, a name it cannot rename in a
    loop body) to the user's stderr at every session start: an export gives none."""
    _, root = exports
    capfd.readouterr()
    load(str(root / "onnx"))
    assert "[W:onnxruntime" not in capfd.readouterr().err


def test_onnx_runner_threads_change_speed_not_tokens(exports):
    model, root = exports
    one = load(str(root / "onnx"), intra_threads=1)
    assert one._sessions["generate"].get_session_options().intra_op_num_threads == 1
    assert one.generate_text(TEXTS) == model.translate(TEXTS)
    with pytest.raises(ValueError, match="intra_threads must be an int >= 0"):
        load(str(root / "onnx"), intra_threads=-1)


@pytest.mark.parametrize("fmt", ["onnx", "savedmodel"])
def test_beam_search_of_an_export_equals_keras_alone_and_in_a_batch(exports, fmt):
    """The exported loops run with a growing cache (Keras's graph does too; XLA and LiteRT keep
    a window): one sentence and a batch, the same tokens as Keras."""
    model, root = exports
    runner = load(str(root / fmt))
    for texts in (TEXTS[:1], TEXTS):
        assert runner.generate_text(texts, "beam") == model.translate(
            texts, strategy="beam", beam_size=2, length_penalty=0.6)


def test_litert_runner_pads_and_splits_batches(exports):
    model, root = exports
    lite = load(str(root / "litert"))
    assert lite.batch_size == 2
    # 5 texts through a batch-2 export: three calls, the last padded; same as Keras.
    assert lite.generate_text(TEXTS) == model.translate(TEXTS)
    ids = model.encode_texts(TEXTS).numpy()
    out = lite.generate(ids)
    assert out["tokens"].shape == (5, 6) and out["attention"].shape == (5, 6, 32)


def test_damaged_exports_are_named(exports, tmp_path):
    _, root = exports
    bad = tmp_path / "bad"
    shutil.copytree(root / "onnx", bad)
    manifest = (bad / "manifest.json").read_text()
    (bad / "manifest.json").write_text(manifest[:40])
    with pytest.raises(ExportFileError, match=r"manifest.json:\d+: invalid JSON"):
        load(str(bad))
    broken = json.loads(manifest)
    del broken["state"]
    (bad / "manifest.json").write_text(json.dumps(broken))
    with pytest.raises(ExportFileError, match="field 'state' is missing"):
        load(str(bad))
    (bad / "manifest.json").write_text(manifest)
    data = (bad / "greedy.onnx").read_bytes()
    (bad / "greedy.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ExportFileError, match="greedy.onnx: cannot be loaded by onnxruntime"):
        load(str(bad))
    os.remove(bad / "manifest.json")
    with pytest.raises(FileNotFoundError, match="is not a zoo export"):
        load(str(bad))
    with pytest.raises(FileNotFoundError, match="no such export directory"):
        load(str(tmp_path / "missing"))


def test_run_texts_gives_trimmed_attention_and_pieces_in_every_runtime(exports):
    model, root = exports
    ids = model.encode_texts(TEXTS[:3]).numpy()
    keras_text = model.translate(TEXTS[:3])
    results = {}
    for fmt in ("onnx", "savedmodel", "litert"):
        out = load(str(root / fmt)).run_texts(TEXTS[:3], return_attention=True)
        assert out["text"] == keras_text and out["source_ids_dropped"] == [0, 0, 0]
        for row, src, tgt, weights in zip(ids, out["source_tokens"], out["output_tokens"],
                                          out["attention"]):
            n_src = int((row != 0).sum())
            assert len(src) == n_src and src[-1] == "</s>" and len(weights) == len(tgt)
            assert all(len(w) == n_src and abs(sum(w) - 1) < 1e-3 for w in weights)
        results[fmt] = out
    # Same numbers from every runtime (LiteRT pads sources to 32 ids: trimmed away here).
    for fmt in ("savedmodel", "litert"):
        assert results[fmt]["source_tokens"] == results["onnx"]["source_tokens"]
        for a, b in zip(results[fmt]["attention"], results["onnx"]["attention"]):
            assert max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)) < 1e-4
    empty = load(str(root / "onnx")).run_texts([], return_attention=True)
    assert empty == {"text": [], "scores": [], "source_ids_dropped": [], "attention": [],
                     "source_tokens": [], "output_tokens": []}


def test_run_texts_counts_what_truncation_dropped(exports):
    _, root = exports
    runner = load(str(root / "litert"))  # max_source_length 32
    long_text = " ".join(["estación"] * 40)
    out = runner.run_texts(["Hola.", long_text])
    assert out["source_ids_dropped"][0] == 0 and out["source_ids_dropped"][1] > 0
    with pytest.warns(UserWarning, match=r"texts\[1\]"):
        runner.generate_text(["Hola.", long_text])
