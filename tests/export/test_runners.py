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
