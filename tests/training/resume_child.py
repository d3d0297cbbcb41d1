"""A training run for the resume tests, run in its own process so it can be killed.

Usage: python resume_child.py OUT_DIR RESULT.npz [--resume] [--hang-in-checkpoint N]
    [--hang-at-step N]

Trains a tiny translator on embedded Anki pairs for 2 epochs with a checkpoint every 2
batches, then writes the final weights to RESULT.npz. ``--hang-in-checkpoint N`` writes half
of the N-th checkpoint of this process, creates OUT_DIR.hang and sleeps (for the parent to
SIGKILL it); ``--hang-at-step N`` creates OUT_DIR.hang when batch N of this process begins and
goes on training (the parent kills it a moment later, mid-step).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from zoo import recipes  # noqa: E402
from zoo.data import anki_spa_eng_pairs  # noqa: E402
from zoo.training import checkpoints  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("result")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--hang-in-checkpoint", type=int, default=0)
    p.add_argument("--hang-at-step", type=int, default=0)
    args = p.parse_args()
    marker = args.out.rstrip("/") + ".hang"
    if args.hang_in_checkpoint:
        original, count = checkpoints._write_atomically, [0]

        def slow_write(path, write):
            count[0] += 1
            if count[0] != args.hang_in_checkpoint:
                return original(path, write)

            def half(f):
                import io

                buf = io.BytesIO()
                write(buf)
                data = buf.getvalue()
                f.write(data[: len(data) // 2])
                f.flush()
                open(marker, "w").close()
                time.sleep(600)  # killed here, mid-checkpoint
            return original(path, half)

        checkpoints._write_atomically = slow_write
    callbacks = []
    if args.hang_at_step:
        class Mark(keras.callbacks.Callback):
            seen = 0

            def on_train_batch_begin(self, batch, logs=None):
                Mark.seen += 1
                if Mark.seen == args.hang_at_step:
                    open(marker, "w").close()

        callbacks.append(Mark())
    pairs = anki_spa_eng_pairs(320)
    model, history, info = recipes.train_translator(
        pairs[20:], preset="rnn_tiny", out_dir=args.out, dev_pairs=pairs[:20], vocab_size=150,
        epochs=2, batch_size=32, checkpoint_every=2, keep_checkpoints=2, verbose=0,
        tensorboard=False, resume=args.resume, callbacks=callbacks)
    np.savez(args.result, *[np.asarray(w) for w in model.get_weights()],
             val_loss=np.asarray(history.history["val_loss"]),
             kept_epoch=np.asarray(info["kept_epoch"]))


if __name__ == "__main__":
    sys.exit(main())
