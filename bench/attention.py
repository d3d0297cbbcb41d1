"""Forward+backward time and peak memory of every zoo attention variant next to the Keras
built-in that computes the same thing, at a few (batch, Tq, Tv, dim) sizes, as ratios.

    python bench/attention.py                 # every variant, default sizes
    python bench/attention.py --variants dot multi_head --sizes 32,1,64,128

Each measurement runs in its own subprocess, so one cannot inflate another. Peak memory is,
on a CPU, the growth of the process's peak resident memory from just before the first call of
the compiled step (so it includes tracing, a few MB on both sides); on a GPU, TensorFlow's
peak device memory. Time is the median of `--repeats`
calls of a compiled (tf.function) step computing the outputs and the gradients of a scalar
loss with respect to the inputs and all weights.

Counterparts: dot -> keras Attention; scaled_dot -> keras Attention(use_scale) at scale
1/sqrt(d); cosine -> UnitNormalization + Attention(use_scale); general -> Dense on keys +
Attention; additive -> Dense(q), Dense(k) + AdditiveAttention(use_scale); key_value -> Dense(k),
Dense(v) + Attention(use_scale); multi_head -> MultiHeadAttention. Keras has no stateful or
local attention: location, coverage and monotonic are compared with the additive counterpart
and local with the general one ("nearest" in the table): those ratios show the price of the
state (a scan over Tq), not a like-for-like race.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

DEFAULT_SIZES = ["32,1,64,128", "32,32,64,128", "16,128,128,256"]
SAME = {"dot", "scaled_dot", "cosine", "general", "additive", "key_value", "multi_head"}
NEAREST = {"location": "additive", "coverage": "additive", "monotonic": "additive",
           "local": "general"}


def _keras_counterpart(name, dim):
    import keras

    class Counterpart(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            kind = NEAREST.get(name, name)
            self.kind = kind
            if kind == "multi_head":
                self.mha = keras.layers.MultiHeadAttention(num_heads=8, key_dim=dim // 8)
                return
            self.attn = (keras.layers.AdditiveAttention(use_scale=True) if kind == "additive"
                         else keras.layers.Attention(use_scale=kind != "dot"))
            self.wq = keras.layers.Dense(dim, use_bias=False) if kind == "additive" else None
            self.wk = (keras.layers.Dense(dim, use_bias=kind == "additive")
                       if kind in ("additive", "general", "key_value") else None)
            self.wv = keras.layers.Dense(dim, use_bias=False) if kind == "key_value" else None
            self.norm = keras.layers.UnitNormalization() if kind == "cosine" else None

        def call(self, query, value, value_mask):
            if self.kind == "multi_head":
                return self.mha(query, value, value_mask=value_mask)
            key = value
            if self.norm is not None:
                query, key = self.norm(query), self.norm(key)
            if self.wq is not None:
                query = self.wq(query)
            if self.wk is not None:
                key = self.wk(key)
            if self.wv is not None:
                value = self.wv(value)
            return self.attn([query, value, key], mask=[None, value_mask])

    return Counterpart()


def _zoo_layer(name, dim):
    import zoo.attention

    kwargs = {"multi_head": {"num_heads": 8}, "location": {"filters": 32, "kernel_size": 31},
              "local": {"window": 8}}.get(name, {})
    return zoo.attention.get(name, **kwargs)


def _rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _peak_rss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(impl, name, size, repeats):
    """One measurement; prints a JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import time

    import numpy as np
    import tensorflow as tf

    batch, tq, tv, dim = size
    rng = np.random.default_rng(0)
    q = tf.constant(rng.normal(size=(batch, tq, dim)).astype("float32"))
    v = tf.constant(rng.normal(size=(batch, tv, dim)).astype("float32"))
    lengths = rng.integers(tv // 2, tv + 1, size=batch)
    mask = tf.constant(np.arange(tv)[None, :] < lengths[:, None])
    layer = _zoo_layer(name, dim) if impl == "zoo" else _keras_counterpart(name, dim)
    if impl == "zoo":
        layer(query=q, value=v, value_mask=mask)
        forward = lambda: layer(query=q, value=v, value_mask=mask, training=True)  # noqa
    else:
        layer(q, v, mask)
        forward = lambda: layer(q, v, mask, training=True)  # noqa

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch([q, v])
            out = forward()
            loss = tf.reduce_sum(tf.square(out))
        return tape.gradient(loss, [q, v] + list(layer.trainable_weights))

    gpus = tf.config.list_physical_devices("GPU")
    # The allocator keeps what the first call took, so the baseline is taken before it: the
    # CPU figure includes the tracing of the step (a few MB, both sides alike).
    base = _rss_mb()
    if gpus:
        tf.config.experimental.reset_memory_stats("GPU:0")
    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        grads = step()
        _ = [g.numpy() for g in grads[:1]]
        times.append(time.perf_counter() - start)
    if gpus:
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    else:
        peak = max(0.0, _peak_rss_mb() - base)
    print(json.dumps({"impl": impl, "name": name, "size": size,
                      "ms": 1000 * float(np.median(times)), "peak_mb": peak,
                      "device": "GPU" if gpus else "CPU"}))


def measure(impl, name, size, repeats):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, name,
           ",".join(map(str, size)), "--repeats", str(repeats)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    for line in out.stdout.splitlines()[::-1]:
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="*", default=None)
    parser.add_argument("--sizes", nargs="*", default=DEFAULT_SIZES,
                        help="batch,Tq,Tv,dim (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--worker", nargs=3, metavar=("IMPL", "NAME", "SIZE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        impl, name, size = args.worker
        worker(impl, name, tuple(int(x) for x in size.split(",")), args.repeats)
        return 0
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import zoo.attention

    names = args.variants or zoo.attention.names()
    sizes = [tuple(int(x) for x in s.split(",")) for s in args.sizes]
    header = (f"| variant | counterpart | batch,Tq,Tv,dim | zoo ms | keras ms | time ratio | "
              f"zoo peak MB | keras peak MB | memory ratio |")
    print(header)
    print("|" + "---|" * 9)
    for name in names:
        counterpart = ("same maths" if name in SAME
                       else f"nearest: {NEAREST.get(name, '?')}")
        for size in sizes:
            z = measure("zoo", name, size, args.repeats)
            k = measure("keras", name, size, args.repeats)
            mem_ratio = (z["peak_mb"] / k["peak_mb"]) if k["peak_mb"] > 0.5 else float("nan")
            print(f"| {name} | {counterpart} | {','.join(map(str, size))} | {z['ms']:.2f} | "
                  f"{k['ms']:.2f} | {z['ms'] / k['ms']:.2f} | {z['peak_mb']:.1f} | "
                  f"{k['peak_mb']:.1f} | {mem_ratio:.2f} |", flush=True)
    print(f"\ndevice: {z['device']}; time = median of {args.repeats} compiled "
          f"forward+backward steps; ratio < 1 means zoo is faster / smaller")
    return 0


if __name__ == "__main__":
    sys.exit(main())
