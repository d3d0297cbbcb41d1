"""Checkpoints and resume: killed runs resume to the weights of an uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.data import SentencePieceTokenizer, anki_spa_eng_pairs, make_dataset
from zoo.files import OutputExistsError, check_destination
from zoo.training import (Checkpointer, CheckpointError, EarlyStopping, latest_checkpoint,
                          list_checkpoints, read_checkpoint)

CHILD = os.path.join(os.path.dirname(__file__), "resume_child.py")


def _run_child(out, result, *extra, kill=None, delay=0.0, timeout=300):
    """Runs resume_child.py; with ``kill``, sends that signal ``delay`` s after the child
    creates its marker file. Returns the exit code."""
    marker = str(out) + ".hang"
    if os.path.exists(marker):
        os.remove(marker)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, CHILD, str(out), str(result), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    if kill is not None:
        t0 = time.time()
        while not os.path.exists(marker):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() - t0 < timeout, "the child never reached the kill point"
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(kill)
    try:
        proc.wait(timeout=timeout)
    finally:
        proc.kill()
    return proc.returncode, proc.stderr.read().decode()


def _complete_checkpoints(ckpt_dir):
    """Every file named as a checkpoint reads completely; returns their global steps."""
    steps = []
    for path in list_checkpoints(ckpt_dir):
        meta, arrays = read_checkpoint(path)
        assert len(arrays) == len(meta["model"]) + len(meta["optimizer"]) + sum(
            1 for k in arrays if k.startswith("track/"))
        steps.append(meta["global_step"])
    return steps


# Five training processes, about a minute: with `pytest -m slow`. The default run keeps a
# resume after Ctrl-C (below), a streamed and a fine-tuning resume, and the killed-writer
# debris checks of tests/test_bounds_and_messages.py.
@pytest.mark.slow
def test_killed_at_random_moments_resumes_to_the_uninterrupted_weights(tmp_path):
    """SIGKILL mid-step (at a random batch and delay), SIGKILL mid-checkpoint, and
    SIGTERM (which saves and stops) — each followed by a resume — end with exactly the
    weights, validation losses and kept epoch of an uninterrupted run (TensorFlow on CPU is
    deterministic for this model; the data order, dropout masks, optimizer and schedule
    state are all restored)."""
    rc, err = _run_child(tmp_path / "straight", tmp_path / "straight.npz")
    assert rc == 0, err[-2000:]
    ref = np.load(tmp_path / "straight.npz")
    n_steps = max(_complete_checkpoints(tmp_path / "straight" / "checkpoints"))
    assert n_steps > 20  # 2 epochs of > 10 batches

    rnd = random.Random(7)
    out = tmp_path / "run"
    ckpt_dir = out / "checkpoints"
    rc, _ = _run_child(out, tmp_path / "r.npz", "--hang-at-step", str(rnd.randint(3, 12)),
                       kill=signal.SIGKILL, delay=rnd.uniform(0, 0.05))
    assert rc == -signal.SIGKILL
    first = _complete_checkpoints(ckpt_dir)
    assert not (out / "zoo.json").exists() and not (out / "model.keras").exists()

    # Mid-checkpoint: half of a file was written when the process died.
    rc, _ = _run_child(out, tmp_path / "r.npz", "--resume", "--hang-in-checkpoint", "2",
                       kill=signal.SIGKILL)
    assert rc == -signal.SIGKILL
    leftovers = [f for f in os.listdir(ckpt_dir) if ".tmp-" in f]
    assert leftovers, "the kill should have left a partial temporary file"
    second = _complete_checkpoints(ckpt_dir)  # no checkpoint name holds a partial file
    assert max(second) > max(first or [0])

    # SIGTERM: the run saves where it is and stops with TrainingInterrupted.
    rc, err = _run_child(out, tmp_path / "r.npz", "--resume", "--hang-at-step", "4",
                         kill=signal.SIGTERM)
    assert rc != 0 and "TrainingInterrupted: SIGTERM" in err
    meta, _ = read_checkpoint(latest_checkpoint(ckpt_dir))
    assert meta["step"] > 0 or meta["epoch"] > 0

    rc, err = _run_child(out, tmp_path / "r.npz", "--resume")
    assert rc == 0, err[-2000:]
    assert (out / "zoo.json").exists() and not [f for f in os.listdir(ckpt_dir) if ".tmp-" in f]
    got = np.load(tmp_path / "r.npz")
    weights = [k for k in ref.files if k.startswith("arr_")]
    assert weights and all(np.array_equal(ref[k], got[k]) for k in weights)
    n = len(got["val_loss"])  # the epochs trained after the last resume
    np.testing.assert_array_equal(ref["val_loss"][-n:], got["val_loss"])
    assert int(ref["kept_epoch"]) == int(got["kept_epoch"])


def test_ctrl_c_in_the_cli_saves_and_resume_finishes_the_run(tmp_path, capsys):
    from zoo import cli

    out = tmp_path / "run"
    args = ["train", "translator", "--preset", "rnn_tiny", "--limit", "300", "--vocab-size",
            "200", "--checkpoint-every", "3", "--out", str(out), "--progress", "none"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "zoo.cli", *args, "--epochs", "50"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            text=True)
    t0 = time.time()
    while not list_checkpoints(out / "checkpoints"):
        assert proc.poll() is None and time.time() - t0 < 300, proc.stderr.read()[-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert err.count("\n") == 1 and "SIGINT: stopped in epoch" in err and "--resume" in err
    assert not (out / "zoo.json").exists()
    meta, _ = read_checkpoint(latest_checkpoint(out / "checkpoints"))

    # The same command without --resume does not start over by accident.
    assert cli.main([*args, "--epochs", "50"]) == 2
    assert "checkpoints of an unfinished training run; resume it (--resume)" in \
        capsys.readouterr().err
    # Other settings than the run's: named, nothing trained.
    assert cli.main([*args, "--epochs", "50", "--resume", "--learning-rate", "0.5"]) == 2
    assert "learning_rate (the run has 0.003, this call 0.5)" in capsys.readouterr().err
    epochs = meta["epoch"] + 1
    assert cli.main([*args, "--epochs", str(epochs), "--resume"]) == 0
    assert (out / "zoo.json").exists() and list_checkpoints(out / "checkpoints")
    info = json.loads((out / "zoo.json").read_text())["extra"]["training"]
    assert info["resumed_from_epoch"] == meta["epoch"] and info["epochs"] == epochs
    assert cli.main([*args, "--epochs", str(epochs), "--resume"]) == 2
    assert f"has already trained {epochs} epochs" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tok():
    pairs = anki_spa_eng_pairs(300)
    return SentencePieceTokenizer.train([s for p in pairs for s in p], vocab_size=150)


def test_epoch_seeded_data_is_a_fresh_permutation_per_epoch_and_reproducible(tok):
    pairs = anki_spa_eng_pairs(300)

    def epoch_rows(epoch):
        v = tf.Variable(epoch, dtype=tf.int64)
        ds = make_dataset(pairs, tok, batch_size=16, seed=3, epoch=v)
        rows = [tuple(s[s > 0].tolist()) + (-1,) + tuple(t[t > 0].tolist())
                for x, y in ds for s, t in zip(x["source"].numpy(), y.numpy())]
        return rows, int(ds.cardinality())

    a0, n0 = epoch_rows(0)
    b0, _ = epoch_rows(0)
    a1, n1 = epoch_rows(1)
    assert a0 == b0  # a new dataset object, the same epoch: the same batches
    assert a0 != a1 and sorted(a0) == sorted(a1) and len(a0) == len(pairs)  # a permutation
    assert n0 == n1  # bucketing leaves the number of batches per epoch unchanged


def _tiny_model(tok, preset="rnn_tiny"):
    from zoo.models import Translator

    model = Translator.from_preset(preset, tokenizer=tok)
    model.compile()
    model.build()
    return model


def test_checkpoints_are_atomic_pruned_and_checked_on_restore(tok, tmp_path):
    model = _tiny_model(tok)
    ckpt = Checkpointer(tmp_path, keep=2)
    ckpt.set_model(model)
    model.optimizer.build(model.trainable_variables)
    for step in (1, 2, 3):
        ckpt.global_step = step
        ckpt.save()
    assert [os.path.basename(p) for p in list_checkpoints(tmp_path)] == [
        "ckpt-000000002.npz", "ckpt-000000003.npz"]
    (tmp_path / "ckpt-000000009.npz.tmp-1").write_bytes(b"partial")  # a crash mid-write
    assert latest_checkpoint(tmp_path).endswith("ckpt-000000003.npz")

    # Restored into a fresh model: every variable equal, the optimizer's step included.
    model.optimizer.iterations.assign(41)
    ckpt.save()
    other = _tiny_model(tok)
    meta = Checkpointer(tmp_path).restore(other)
    assert meta["global_step"] == 3 and int(other.optimizer.iterations.numpy()) == 41
    for a, b in zip(model.variables, other.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    # Another model's checkpoint, a damaged file: one message naming the file.
    with pytest.raises(CheckpointError, match=r"ckpt-000000003\.npz: .*variable .* shape"):
        Checkpointer(tmp_path).restore(_tiny_model(tok, "rnn_small"))
    data = (tmp_path / "ckpt-000000003.npz").read_bytes()
    (tmp_path / "ckpt-000000003.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"ckpt-000000003\.npz: not a readable zoo"):
        read_checkpoint(str(tmp_path / "ckpt-000000003.npz"))


def test_early_stopping_state_survives_a_restore():
    es = EarlyStopping(patience=None)
    es.best, es.best_epoch, es.wait = 1.5, 3, 2
    es.best_weights = [np.ones((2, 2)), np.zeros(3)]
    state = es.get_state()
    fresh = EarlyStopping(patience=None)
    fresh.set_state(state)
    fresh.on_train_begin()  # Keras resets here; the restored state must win
    assert (fresh.best, fresh.best_epoch, fresh.wait) == (1.5, 3, 2)
    np.testing.assert_array_equal(fresh.best_weights[0], np.ones((2, 2)))
    plain = EarlyStopping(patience=None)
    plain.on_train_begin()
    assert plain.best is None and plain.best_weights is None


def test_an_unfinished_run_is_named_and_only_replaced_on_request(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "run.json").write_text("{}")
    (run / "checkpoints" / "ckpt-000000001.npz").write_bytes(b"")  # it got that far
    with pytest.raises(OutputExistsError, match="unfinished training run; resume it"):
        check_destination(str(run))
    check_destination(str(run), overwrite=True)  # zoo's own: may be replaced
    stranger = tmp_path / "other"
    (stranger / "checkpoints").mkdir(parents=True)
    with pytest.raises(OutputExistsError, match="not empty"):
        check_destination(str(stranger))
    with pytest.raises(OutputExistsError, match="files that zoo did not write"):
        check_destination(str(stranger), overwrite=True)
    keras.backend.clear_session()
