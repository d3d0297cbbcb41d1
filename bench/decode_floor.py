"""How far zoo's compiled greedy step at batch 1 is from its matmuls, and what the rest is.

Prints one table: a decoding step of ``transformer_small``'s shape at batch 1 (the peers'
shape in bench/peers.py: 3 decoder layers, d=256, ffn 512, 8,000-piece output), in ms, for

* zoo's ``generate(jit_compile=True)``, 24 forced tokens, divided by 24 (it includes the
  encoder: about one step's worth);
* the step's matmuls alone (self- and cross-attention projections, feed-forward, the
  vocabulary projection, and an arg-max) in one ``tf.while_loop`` of 24 steps, with XLA and
  without;

and the instructions of the XLA loop body of zoo's greedy decode (fusions, dots, copies), from
XLA's optimized HLO. Untrained weights: speed does not depend on them.

Usage: python bench/decode_floor.py
"""

import collections
import glob
import os
import re
import sys
import tempfile
import time

DUMP = tempfile.mkdtemp(prefix="zoo-xla-dump-")
os.environ["XLA_FLAGS"] = f"--xla_dump_to={DUMP} --xla_dump_hlo_as_text"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

D, FF, VOCAB, LAYERS, STEPS = 256, 512, 8000, 3, 24


def per_step(fn, seconds=3.0):
    fn()
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return 1000 * (time.perf_counter() - start) / n / STEPS


def matmul_floor(xla):
    rng = np.random.default_rng(0)
    shapes = [(D, 3 * D), (D, D), (D, D), (D, D), (D, FF), (FF, D)]  # qkv, out, cross q/out, ffn
    w = [tf.Variable(rng.normal(size=s).astype("float32") * 0.05)
         for _ in range(LAYERS) for s in shapes]
    out = tf.Variable(rng.normal(size=(D, VOCAB)).astype("float32") * 0.05)

    def body(i, x):
        for layer in range(LAYERS):
            qkv, o, cq, co, f1, f2 = w[6 * layer:6 * layer + 6]
            x = tf.tanh(tf.matmul(x, qkv)[:, :D]) + x
            x = tf.matmul(x, o) + x
            x = tf.matmul(tf.matmul(x, cq), co) + x
            x = tf.matmul(tf.nn.relu(tf.matmul(x, f1)), f2) + x
            x = x / (1e-3 + tf.norm(x))
        token = tf.math.top_k(tf.nn.log_softmax(tf.matmul(x, out)), 1).indices
        return i + 1, x + tf.cast(token, tf.float32) * 1e-9

    run = tf.function(lambda x: tf.while_loop(lambda i, x: i < STEPS, body, (0, x))[1],
                      jit_compile=xla)
    x = tf.ones((1, D))
    return per_step(lambda: run(x))


def zoo_greedy():
    import keras

    import zoo

    keras.utils.set_random_seed(0)
    model = zoo.models.Translator.from_preset(
        "transformer_small", vocab_size=VOCAB, decoder={"tie_embeddings": False},
        ff_dim=FF, max_target_length=STEPS)
    model.build()
    source = np.array([[5 + i for i in range(16)] + [3]], "int32")
    return per_step(lambda: model.generate(source, "greedy", max_length=STEPS,
                                           min_length=STEPS, jit_compile=True))


def loop_body_counts():
    """Instruction counts of the largest while body in the dumps of zoo's decode."""
    best = collections.Counter()
    for path in glob.glob(os.path.join(DUMP, "*cpu_after_optimizations.txt")):
        text = open(path).read()
        for name in re.findall(r"body=(%[\w.\-]+)", text):
            start = text.find("\n" + name + " ")
            if start < 0:
                continue
            block = text[start:text.find("\n}", start)]
            counts = collections.Counter(re.findall(r"[\]})] ([a-z][a-z\-]*)\(", block))
            if sum(counts.values()) > sum(best.values()):
                best = counts
    return best


def main():
    rows = [("zoo generate(jit_compile=True), greedy", zoo_greedy()),
            ("the step's matmuls alone, XLA", matmul_floor(True)),
            ("the step's matmuls alone, TF graph", matmul_floor(False))]
    print(f"\nOne decoding step at batch 1 ({LAYERS} layers, d={D}, ffn {FF}, "
          f"{VOCAB}-piece output), {STEPS} forced tokens")
    print(f"{'':42s} {'ms/step':>8s}")
    for name, ms in rows:
        print(f"{name:42s} {ms:8.3f}")
    counts = loop_body_counts()
    print("\nzoo's XLA loop body: " + ", ".join(
        f"{n} {op}" for op, n in counts.most_common() if op != "get-tuple-element"))


if __name__ == "__main__":
    sys.exit(main())
