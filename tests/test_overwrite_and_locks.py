"""Nothing lost: --overwrite replaces only what the same kind of command wrote, never a user's
file; one writer per output directory (a killed holder does not block the next); an
interrupted --overwrite training run leaves the old model loadable."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from zoo import cli
from zoo.files import OutputExistsError, OutputLockedError, directory_lock, staged_directory


def _digest(path):
    """A hash of every file's name and bytes under ``path``."""
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            h.update(os.path.relpath(full, path).encode() + open(full, "rb").read())
    return h.hexdigest()


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, tiny_exports):
    """A saved model and an ONNX export (copies, so the cases may try to change them)."""
    model, root = tiny_exports
    base = tmp_path_factory.mktemp("ow")
    model.save(str(base / "model"))
    shutil.copytree(root / "onnx", base / "export")
    return model, base


def _copy(dirs, which, tmp_path, user_file=False):
    dst = tmp_path / which
    shutil.copytree(dirs[1] / which, dst)
    if user_file:
        (dst / "my-notes.txt").write_text("mine")
    return dst


CASES = [  # (directory, its extra user file, command, what the message names)
    ("model", False, ["export", "--model", "{model}", "--format", "onnx", "--out", "{dst}",
                      "--overwrite"], "holds a zoo model, not an export"),
    ("model", True, ["export", "--model", "{model}", "--format", "onnx", "--out", "{dst}",
                     "--overwrite"], "holds a zoo model, not an export"),
    ("export", False, ["train", "translator", "--limit", "50", "--epochs", "1", "--out",
                       "{dst}", "--overwrite"], "holds a zoo export, not a model"),
    ("export", True, ["export", "--model", "{model}", "--format", "onnx", "--out", "{dst}",
                      "--overwrite"], "my-notes.txt"),
]


@pytest.mark.parametrize("which,user_file,argv,message", CASES)
def test_overwrite_refuses_other_kinds_and_user_files(dirs, tmp_path, capsys, which,
                                                      user_file, argv, message):
    dst = _copy(dirs, which, tmp_path, user_file)
    before = _digest(dst)
    argv = [a.format(model=dirs[1] / "model", dst=dst) for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and str(dst) in err, err
    assert _digest(dst) == before


def test_save_over_a_model_with_a_user_file_is_refused(dirs, tmp_path):
    dst = _copy(dirs, "model", tmp_path, user_file=True)
    before = _digest(dst)
    with pytest.raises(OutputExistsError, match="my-notes.txt"):
        dirs[0].save(str(dst), overwrite=True)
    assert _digest(dst) == before


def test_an_export_replaces_an_export(dirs, tmp_path):
    dst = _copy(dirs, "export", tmp_path)
    with staged_directory(str(dst), overwrite=True, kind="export") as tmp:
        open(os.path.join(tmp, "manifest.json"), "w").write("{}")
    assert sorted(os.listdir(dst)) == [".zoo-written.json", "manifest.json"]


# ---------------------------------------------------------------- locks
_HOLD = ("import sys, time; from zoo.files import directory_lock\n"
         "with directory_lock(sys.argv[1]):\n"
         "    open(sys.argv[1] + '.held', 'w').close(); time.sleep(120)\n")


def _holder(path):
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(path)])
    t0 = time.time()
    while not os.path.exists(str(path) + ".held"):
        assert proc.poll() is None and time.time() - t0 < 60
        time.sleep(0.05)
    return proc


def test_a_second_writer_is_refused_and_a_killed_holder_does_not_block(tmp_path, capsys):
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        with pytest.raises(OutputLockedError, match=f"pid {holder.pid}"):
            with directory_lock(str(out)):
                pass
        # The CLI says so before any training.
        t0 = time.time()
        assert cli.main(["train", "translator", "--limit", "50", "--epochs", "1", "--out",
                         str(out)]) == 2
        assert "being written by another zoo process" in capsys.readouterr().err
        assert time.time() - t0 < 60 and not out.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with directory_lock(str(out)):  # the kernel dropped the dead holder's lock
        pass
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".zoo-lock")]


@pytest.mark.slow  # CI time on 2 cores (docs/RESULTS.md, Test suite)
# ---------------------------------------------------------------- crash during --overwrite
def test_killed_overwrite_run_leaves_the_old_model_loadable(tmp_path):
    import zoo.models

    out = tmp_path / "m"
    base = ["train", "translator", "--limit", "300", "--epochs", "1", "--vocab-size", "200",
            "--checkpoint-every", "2", "--out", str(out)]
    assert cli.main(base) == 0
    old = zoo.models.load(str(out)).translate(["Hola."])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "zoo.cli", "train", "translator",
                             "--limit", "3000", "--epochs", "3", "--vocab-size", "300",
                             "--checkpoint-every", "2", "--out", str(out), "--overwrite"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    t0 = time.time()
    ckpts = out / "checkpoints"
    # Wait for the new run's own checkpoints (its settings name 3,000 pairs).
    while not _new_run_checkpointed(ckpts):
        assert proc.poll() is None and time.time() - t0 < 300
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert zoo.models.load(str(out)).translate(["Hola."]) == old


def _new_run_checkpointed(ckpts):
    try:
        return '"vocab_size": 300' in open(ckpts / "run.json").read() and any(
            f.startswith("ckpt-") for f in os.listdir(ckpts))
    except OSError:  # moved aside, not yet written
        return False
