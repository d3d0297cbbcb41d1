"""Every number has a range, checked before any work; options that do not apply are errors;
user mistakes are messages, not tracebacks; written directories follow the umask."""

import os
import stat

import numpy as np
import pytest

from zoo import cli
from zoo.inputs import InputError


@pytest.mark.parametrize("argv,message", [
    (["translate", "--model", "M", "--max-length", "4294967301", "x"],
     "--max-length: max_length must be in [1, 1024], got 4294967301"),
    (["translate", "--model", "M", "--sample", "--temperature", "1e-30", "x"],
     "--temperature: temperature must be in [0.01, 100]"),
    (["translate", "--model", "M", "--beam-size", "100000", "x"],
     "--beam-size: beam_size must be in [1, 64]"),
    (["translate", "--model", "M", "--sample", "--beam-size", "4", "x"],
     "--beam-size does not apply with --sample"),
    (["export", "--model", "M", "--format", "litert", "--max-length", "99999", "--out", "O"],
     "--max-length: max_length must be in [1, 1024]"),
    (["train", "translator", "--learning-rate", "nan"],
     "--learning-rate: learning_rate must be finite, got nan"),
    (["train", "translator", "--learning-rate", "-1"],
     "--learning-rate: learning_rate must be in (0, 1], got -1.0"),
    (["train", "translator", "--learning-rate", "inf"],
     "--learning-rate: learning_rate must be finite, got inf"),
])
def test_out_of_range_numbers_are_refused_before_any_work(tmp_path, capsys, monkeypatch,
                                                          argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert os.listdir(tmp_path) == []  # nothing written


@pytest.mark.parametrize("fmt,quantize", [("savedmodel", ["int8"]),
                                          ("onnx", ["float16"]), ("onnx", ["float32", "int8"])])
def test_quantize_that_does_not_apply_is_an_error(tiny_exports, tmp_path, capsys, fmt,
                                                  quantize):
    model, root = tiny_exports
    model.save(str(tmp_path / "m"))
    assert cli.main(["export", "--model", str(tmp_path / "m"), "--format", fmt,
                     "--quantize", *quantize, "--out", str(tmp_path / "o")]) == 2
    assert "--quantize applies to litert" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("ids,field,message", [
    ([[5, 99999, 3]], "source_ids[0]", "outside the vocabulary"),
    ([[5, 3], [0, 0]], "source_ids[1]", "holds no id"),
    ([[-1, 3]], "source_ids[0]", "outside the vocabulary"),
    ([1, 2, 3], "source_ids", "must be (batch, S)"),
])
def test_bad_ids_given_to_generate_are_messages(tiny_exports, ids, field, message):
    model, _ = tiny_exports
    with pytest.raises(InputError) as err:
        model.generate(np.asarray(ids))
    assert err.value.field == field and message in str(err.value)


def test_written_directories_follow_the_umask(tiny_exports, tmp_path):
    model, _ = tiny_exports
    old = os.umask(0o022)
    try:
        model.save(str(tmp_path / "m"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "m").st_mode) == 0o755


def test_messages_say_what_happened(tiny_exports, tmp_path):
    import keras

    import zoo.models
    from zoo.files import OutputExistsError, staged_directory
    from zoo.models import ModelFileError

    model, _ = tiny_exports
    model.save(str(tmp_path / "m"))
    data = (tmp_path / "m" / "model.keras").read_bytes()
    (tmp_path / "m" / "model.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not a complete .keras archive"):
        zoo.models.load(str(tmp_path / "m"))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputExistsError, match="afile is a file, not a directory"):
        with staged_directory(str(tmp_path / "afile" / "sub" / "out"), what="--out"):
            pass
    # A model with a Lambda layer: refused by safe mode, said in full.
    inp = keras.Input((2,))
    unsafe = keras.Model(inp, keras.layers.Lambda(lambda x: x * 2)(inp))
    unsafe.save(str(tmp_path / "m" / "model.keras"))
    with pytest.raises(ModelFileError, match="refused by Keras safe mode"):
        zoo.models.load(str(tmp_path / "m"))


def test_closed_stdin_and_an_empty_verify_file_are_messages(tiny_exports, tmp_path):
    import subprocess
    import sys

    model, _ = tiny_exports
    model.save(str(tmp_path / "m"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run(f"{sys.executable} -m zoo.cli translate --model {tmp_path / 'm'} "
                         f"0<&-", shell=True, capture_output=True, text=True, env=env)
    assert run.returncode == 2 and "stdin is closed" in run.stderr, run.stderr[-500:]
    assert "Traceback" not in run.stderr
    (tmp_path / "v.txt").write_text("Hola.\n\n")
    run = subprocess.run([sys.executable, "-m", "zoo.cli", "export", "--model",
                          str(tmp_path / "m"), "--format", "onnx", "--out",
                          str(tmp_path / "o"), "--verify", str(tmp_path / "v.txt")],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 2 and "--verify" in run.stderr and "line 2 is empty" in run.stderr
    assert not (tmp_path / "o").exists()


def test_debris_of_killed_writers_and_failed_starts_do_not_stick(tiny_exports, tmp_path,
                                                                   capsys):
    model, _ = tiny_exports
    # A killed export left its staging directory beside the destination.
    (tmp_path / ".out.tmp-abc123").mkdir()
    (tmp_path / ".out.tmp-abc123" / "half.onnx").write_text("x")
    model.save(str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path)) == ["out"]
    # A run that failed before its first checkpoint: no "resume it", no --overwrite needed.
    run = tmp_path / "run"
    argv = ["train", "translator", "--limit", "60", "--epochs", "1", "--vocab-size", "100",
            "--out", str(run)]
    (run / "checkpoints").mkdir(parents=True)  # what a run leaves when it fails at start
    (run / "checkpoints" / "run.json").write_text('{"vocab_size": 999}')
    (run / "checkpoints" / "source.model").write_bytes(b"x")
    assert cli.main(argv + ["--resume"]) == 2
    assert "stopped before its first checkpoint" in capsys.readouterr().err
    assert cli.main(argv) == 0


@pytest.mark.slow  # CI time on 2 cores (docs/RESULTS.md, Test suite)
@pytest.mark.parametrize("argv", [
    ["translate", "--model", "/nonexistent/model", "Hola."],
    ["export", "--model", "/nonexistent/model", "--out", "OUT"],
    ["summarize", "--model", "anki_es_en", "x"],
    ["serve", "/nonexistent/export"],
])
def test_a_failing_command_prints_one_line_on_stderr(tmp_path, argv):
    """No TensorFlow or absl start-up line before the error: one line, exit 2."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",
                                                            "ZOO_VERBOSE")}
    run = subprocess.run([sys.executable, "-m", "zoo.cli", *argv], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=300)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("zoo "), run.stderr
