"""Scaling out: training throughput on 1 and 2 devices, and peak memory while streaming
corpora of 1, 2 and 4 million pairs.

    python bench/scale.py                       # both tables
    python bench/scale.py --part devices --preset transformer_small --steps 30
    python bench/scale.py --part memory --sizes 1000000 2000000 4000000

Devices: each setting runs in its own process (a CPU can be split into devices only before
TensorFlow starts). The same global batches (64 sentences of Multi30k-like length from the
embedded Anki pairs, in memory) are trained with ``train_on_batch`` after 3 warm-up steps;
the table gives target tokens per second. On a machine without GPUs, 2 devices are the CPU
split in two: the figure shows what the distributed step costs (the all-reduce, the split
batch), not a speed-up; on N GPUs the same command measures the real one.

Memory: a corpus of N pairs is written to a temporary TSV file (pairs of real Anki sentences
joined two by two, so lines are distinct), then a process streams it the way
``zoo.recipes.train(Corpus(...))`` does: the tokenizer's reservoir sample, the counting pass,
and one full epoch of the training pipeline (read, check, tokenize, shuffle in a 100,000-pair
buffer, bucket, pad). The table gives the process's peak resident memory (ru_maxrss). Goal:
flat as N grows, under 3 GB.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

DEVICES_CHILD = r"""
import json, os, sys, time
devices, preset, steps = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
import keras
if devices > 1:
    from zoo.training.distribute import mirrored_strategy
    strategy = mirrored_strategy(devices)
import contextlib
from zoo.data import SentencePieceTokenizer, anki_spa_eng_pairs, make_dataset
from zoo.models import Translator
pairs = anki_spa_eng_pairs(20000)
tok = SentencePieceTokenizer.train([s for p in pairs[:5000] for s in p], vocab_size=4000)
batches = [b for b in make_dataset(pairs[:4000], tok, batch_size=64, shuffle=False,
                                   bucket=False, batch_multiple=devices)][: steps + 3]
scope = strategy.scope() if devices > 1 else contextlib.nullcontext()
keras.utils.set_random_seed(0)
with scope:
    model = Translator.from_preset(preset, tokenizer=tok)
    model.compile()
    model.build()
for x, y in batches[:3]:
    model.train_on_batch(x, y)
tokens = sum(int((y.numpy() > 0).sum()) for _, y in batches[3:])
t0 = time.perf_counter()
for x, y in batches[3:]:
    model.train_on_batch(x, y)
dt = time.perf_counter() - t0
print(json.dumps({"devices": devices, "tokens_per_s": tokens / dt, "steps": len(batches) - 3,
                  "seconds": dt}))
"""

MEMORY_CHILD = r"""
import json, resource, sys, time
path = sys.argv[1]
t0 = time.time()
import tensorflow as tf
from zoo.data import Corpus, SentencePieceTokenizer, make_stream_dataset
from zoo.recipes.run import chunks as _chunks, reservoir as _reservoir
corpus = Corpus(path)
sample = _reservoir(corpus, 500_000, 0)
tok = SentencePieceTokenizer.train([s for p in sample for s in p], vocab_size=8000)
del sample
sp = tok.processor
n = 0
for chunk in _chunks(corpus, 4096):
    sp.encode([s for s, _ in chunk]); sp.encode([t for _, t in chunk]); n += len(chunk)
epoch = tf.Variable(0, dtype=tf.int64)
ds = make_stream_dataset(path, tok, batch_size=64, epoch=epoch)
batches = 0
for _ in ds:
    batches += 1
print(json.dumps({"pairs": n, "batches": batches, "seconds": time.time() - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _child(code, *args, timeout=3600):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                         text=True, env=env, timeout=timeout)
    if run.returncode:
        raise SystemExit(run.stderr[-3000:])
    return json.loads(run.stdout.strip().splitlines()[-1])


def devices_table(preset, steps):
    rows = [_child(DEVICES_CHILD, n, preset, steps) for n in (1, 2)]
    base = rows[0]["tokens_per_s"]
    print(f"\n{preset}, {steps} steps of 64 sentences (train_on_batch after 3 warm-up "
          f"steps)\n")
    print("| devices | target tokens/s | vs 1 device |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['devices']} | {r['tokens_per_s']:,.0f} | {r['tokens_per_s'] / base:.2f}x |")
    return rows


def write_corpus(path, n):
    import random

    from zoo.data import anki_spa_eng_pairs

    pairs = anki_spa_eng_pairs()
    rnd = random.Random(0)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            (s1, t1), (s2, t2) = rnd.choice(pairs), rnd.choice(pairs)
            f.write(f"{t1} {t2}\t{s1} {s2}\n")


def memory_table(sizes):
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for n in sizes:
            path = os.path.join(d, f"corpus-{n}.tsv")
            write_corpus(path, n)
            mb = os.path.getsize(path) / 2**20
            r = _child(MEMORY_CHILD, path)
            r["file_mb"] = mb
            rows.append(r)
            os.remove(path)
    print("\nstreaming a corpus: tokenizer sample, counting pass, one epoch of the pipeline\n")
    print("| pairs | file | batches | time | peak memory |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['pairs']:,} | {r['file_mb']:,.0f} MB | {r['batches']:,} | "
              f"{r['seconds']:.0f} s | {r['peak_rss_mb']:,.0f} MB |")
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("all", "devices", "memory"), default="all")
    p.add_argument("--preset", default="transformer_small")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 2_000_000, 4_000_000])
    args = p.parse_args()
    t0 = time.time()
    out = {}
    if args.part in ("all", "devices"):
        out["devices"] = devices_table(args.preset, args.steps)
    if args.part in ("all", "memory"):
        out["memory"] = memory_table(args.sizes)
    with open(os.path.join(HERE, "results", "scale.jsonl"), "a") as f:
        f.write(json.dumps({"time": time.strftime("%Y-%m-%d %H:%M"), "args": vars(args),
                            **out}) + "\n")
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
