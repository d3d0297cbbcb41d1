"""One worker of a 2-worker cluster on 127.0.0.1 (or, with index -1, the single-process
run it is compared with). Usage: python multi_worker_child.py INDEX PORT0,PORT1 OUT RESULT

Every worker runs the same training call; TF_CONFIG tells each which one it is. Writes the
final weights and the per-epoch losses to RESULT (.npz)."""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    index, ports, out, result = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3], \
        sys.argv[4]
    if index >= 0:
        os.environ["TF_CONFIG"] = json.dumps({
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": index}})
    import numpy as np

    from zoo import recipes
    from zoo.data import anki_spa_eng_pairs

    pairs = anki_spa_eng_pairs(340)
    # No dropout: the workers' random streams differ from one process's.
    model, history, info = recipes.train_translator(
        pairs[40:], dev_pairs=pairs[:40], preset="rnn_tiny", out_dir=out, vocab_size=150,
        epochs=2, batch_size=16, checkpoint_every=4, verbose=0, tensorboard=False,
        overrides={"dropout": 0.0}, multi_worker=index >= 0, batch_multiple=2)
    np.savez(result, *[np.asarray(w) for w in model.get_weights()],
             loss=np.asarray(history.history["loss"]),
             val_loss=np.asarray(history.history["val_loss"]),
             devices=np.asarray(info["devices"]))


if __name__ == "__main__":
    sys.exit(main())
