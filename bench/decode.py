"""Decoding speed: the compiled engine (one tf.function graph) vs a Python loop of eager steps.

Same models, same weights, same inputs, same algorithm: ``Translator.generate(compiled=True)``
runs the whole decoding loop as one graph; ``compiled=False`` runs the identical loop body
eagerly, step by step, from Python. Both decode exactly ``--max-length`` steps (eos is
suppressed with ``min_length``) so the work is identical. Reports sentences per second and
the speed-up, for greedy and beam search at batch 1 and 64.

Usage:
    python bench/decode.py                      # rnn_bahdanau and transformer_small sizes
    python bench/decode.py --presets transformer_small --batches 1 64 --beam-size 4
"""

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def timed(fn, repeats):
    fn()  # warm-up (tracing for the compiled path)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        _ = [x.numpy() for x in out]
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["rnn_bahdanau", "transformer_small"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 64])
    p.add_argument("--beam-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=24)
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--xla", action="store_true", help="also time the compiled loop with XLA")
    args = p.parse_args(argv)

    import keras
    import tensorflow as tf

    from zoo.data import SentencePieceTokenizer, anki_spa_eng_pairs, encode_sources
    from zoo.models import Translator

    keras.utils.set_random_seed(0)
    pairs = anki_spa_eng_pairs(limit=2000)
    tok = SentencePieceTokenizer.train([s for pr in pairs for s in pr], vocab_size=2000)
    print(f"hardware: {platform.machine()} CPU, {os.cpu_count()} cores; TF {tf.__version__}; "
          f"{args.max_length} decoding steps; vocabulary {args.vocab_size}")
    header = (f"{'model':<18}{'strategy':<10}{'batch':>6}{'eager s':>10}{'graph s':>10}"
              f"{'speed-up':>10}" + (f"{'XLA s':>9}{'XLA x':>8}" if args.xla else "")
              + f"{'graph sent/s':>14}")
    print(header)
    print("-" * len(header))
    for preset in args.presets:
        model = Translator.from_preset(preset, vocab_size=args.vocab_size,
                                       max_target_length=args.max_length)
        for batch in args.batches:
            src = encode_sources([s for s, _ in pairs[:batch]], tok)
            for label, kw in (("greedy", {"strategy": "greedy"}),
                              (f"beam {args.beam_size}", {"strategy": "beam",
                                                          "beam_size": args.beam_size})):
                common = dict(max_length=args.max_length, min_length=args.max_length, **kw)
                eager = timed(lambda: model.generate(src, compiled=False, **common),
                              max(1, args.repeats - 2))
                graph = timed(lambda: model.generate(src, compiled=True, **common), args.repeats)
                row = (f"{preset:<18}{label:<10}{batch:>6}{eager:>10.3f}{graph:>10.3f}"
                       f"{eager / graph:>9.1f}x")
                if args.xla:
                    xla = timed(lambda: model.generate(src, jit_compile=True, **common),
                                args.repeats)
                    row += f"{xla:>9.3f}{eager / xla:>7.1f}x"
                print(row + f"{batch / graph:>14.1f}", flush=True)


if __name__ == "__main__":
    main()
