"""Per-step losses of one device and of MirroredStrategy over 2 logical CPU devices, on
the same global batches, from the same initial weights (``--mixed``: also under mixed
float16). Run in its own process (the CPU
must be split before TensorFlow starts). Prints one JSON line."""

import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from zoo.training.distribute import mirrored_strategy  # noqa: E402

strategy = mirrored_strategy(2)  # before any TensorFlow operation

from zoo.data import SentencePieceTokenizer, anki_spa_eng_pairs, make_dataset  # noqa: E402
from zoo.models import Translator, load  # noqa: E402


def _null():
    import contextlib

    return contextlib.nullcontext()


def main():
    pairs = anki_spa_eng_pairs(400)
    tok = SentencePieceTokenizer.train([s for p in pairs for s in p], vocab_size=150)
    # Fixed global batches of 16 sentences (8 per device), unequal token counts per half.
    batches = [b for b in make_dataset(pairs, tok, batch_size=16, shuffle=False,
                                       bucket=False)][:6]
    keras.utils.set_random_seed(0)
    kw = dict(tokenizer=tok, dropout=0.0)
    single = Translator.from_preset("rnn_tiny", **kw)
    # A clip small enough to act on every step: Keras alone would clip each device's half.
    single.compile(learning_rate=3e-3, clipnorm=0.05)
    single.build()
    init = single.get_weights()
    with strategy.scope():
        multi = Translator.from_preset("rnn_tiny", **kw)
        multi.compile(learning_rate=3e-3, clipnorm=0.05)
        multi.build()
    multi.set_weights(init)
    losses = {"single": [], "mirrored": []}
    for x, y in batches:
        losses["single"].append(float(single.train_on_batch(x, y, return_dict=True)["loss"]))
        losses["mirrored"].append(float(multi.train_on_batch(x, y, return_dict=True)["loss"]))
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(),
                                                             multi.get_weights()))
    # Three steps the same under mixed float16 (emulated on CPUs: slow): compile wraps the optimizer in a LossScaleOptimizer,
    # which unscales each device's gradients before zoo's Adam sums and clips them.
    mixed = {}
    for name, scope in (("single", None), ("mirrored", strategy.scope())) \
            if "--mixed" in sys.argv else ():
        with scope if scope is not None else _null():
            m = Translator.from_preset("rnn_tiny", dtype="mixed_float16", **kw)
            m.compile(learning_rate=3e-3, clipnorm=0.05)
            m.build()
        m.set_weights(init)
        mixed[name] = [float(m.train_on_batch(x, y, return_dict=True)["loss"])
                       for x, y in batches[:3]]
        mixed[name + "_optimizer"] = type(m.optimizer).__name__
    # A model trained under the strategy saves and loads as any other.
    d = os.path.join(tempfile.mkdtemp(), "m")
    multi.save(d)
    again = load(d)
    src = ["Tengo hambre.", "Hace frío hoy."]
    same = again.generate_text(src) == multi.generate_text(src)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, **losses, "mixed": mixed,
                      "max_weight_diff": diff, "reload_same": same,
                      "batch_sizes": [int(x["source"].shape[0]) for x, _ in batches]}))


if __name__ == "__main__":
    sys.exit(main())
