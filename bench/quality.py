"""Translation quality on Multi30k German->English (test_2016_flickr), detokenized sacreBLEU.

Trains a preset on the Multi30k training set (29,000 pairs) with zoo's recipe, then
translates test_2016_flickr (1,000 sentences) with greedy decoding (and beam search) and
scores with sacreBLEU. Published greedy references: GRU + Bahdanau attention 28.3,
Transformer (3 layers, d=256) 36.5 (see ../shared/data/SOURCES.md).

The data is not shipped (non-commercial licence); it is read from ``--data``
(default ../shared/data/multi30k relative to the repository).

Usage:
    python bench/quality.py --preset rnn_bahdanau --epochs 10
    python bench/quality.py --preset transformer_small --epochs 20
"""

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
PUBLISHED = {"rnn_bahdanau": 28.3, "rnn_luong": 28.3, "transformer_small": 36.5,
             "transformer_base": 36.5}


def hardware():
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        return f"{name} (GPU)"
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="rnn_bahdanau")
    p.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data",
                                                  "multi30k"))
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--limit", type=int, default=None, help="training pairs (default: all)")
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--length-penalty", type=float, default=0.6)
    p.add_argument("--out", default=None, help="save the model here")
    p.add_argument("--results", default=os.path.join(HERE, "results", "quality.jsonl"))
    p.add_argument("--mixed-precision", action="store_true")
    p.add_argument("--override", action="append", default=[],
                   help="network option KEY=VALUE (JSON value), repeatable")
    args = p.parse_args(argv)

    import tensorflow as tf

    from zoo.data import read_parallel
    from zoo.metrics import evaluate
    from zoo.recipes import train_translator

    d = args.data
    if not os.path.isdir(d):
        sys.exit(f"quality.py: Multi30k not found at {d} (pass --data)")
    train = read_parallel(f"{d}/train.de.gz", f"{d}/train.en.gz", limit=args.limit)
    dev = read_parallel(f"{d}/val.de.gz", f"{d}/val.en.gz")
    test = read_parallel(f"{d}/test_2016_flickr.de.gz", f"{d}/test_2016_flickr.en.gz",
                         limit=args.test_limit)
    overrides = {}
    for kv in args.override:
        k, v = kv.split("=", 1)
        overrides[k] = json.loads(v)
    model, history, info = train_translator(
        train, preset=args.preset, dev_pairs=dev, vocab_size=args.vocab_size,
        epochs=args.epochs, out_dir=args.out, tensorboard=False, verbose=2,
        mixed_precision=args.mixed_precision, overrides=overrides)
    rows = []
    for label, kw in (("greedy", {"strategy": "greedy"}),
                      (f"beam {args.beam_size} lp {args.length_penalty}",
                       {"strategy": "beam", "beam_size": args.beam_size,
                        "length_penalty": args.length_penalty})):
        t = time.time()
        hyps = model.translate(test.sources, batch_size=64, max_length=64, **kw)
        secs = time.time() - t
        scores = evaluate(hyps, test.targets)
        rows.append({"decoding": label, "bleu": round(scores["bleu"], 2),
                     "chrf": round(scores["chrf"], 2), "decode_seconds": round(secs, 1),
                     "signature": scores["bleu_signature"], "examples": hyps[:3]})
    record = {"preset": args.preset, "hardware": hardware(), "tensorflow": tf.__version__,
              "published_greedy_bleu": PUBLISHED.get(args.preset), **info,
              "val_loss": [round(x, 4) for x in history.history.get("val_loss", [])],
              "loss": [round(x, 4) for x in history.history["loss"]], "results": rows,
              "command": "python bench/quality.py " + " ".join(argv or sys.argv[1:])}
    os.makedirs(os.path.dirname(args.results), exist_ok=True)
    with open(args.results, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(f"\nMulti30k de-en test_2016_flickr ({len(test)} sentences), {record['hardware']}")
    print(f"preset {args.preset}: {info['parameters']:,} parameters, {info['epochs']} epochs, "
          f"{info['train_seconds'] / 60:.1f} min training")
    print(f"{'decoding':<22}{'BLEU':>7}{'chrF':>7}{'published':>11}{'decode s':>10}")
    for r in rows:
        pub = PUBLISHED.get(args.preset) if r["decoding"] == "greedy" else None
        print(f"{r['decoding']:<22}{r['bleu']:>7.2f}{r['chrf']:>7.2f}"
              f"{(f'{pub:.1f}' if pub else '-'):>11}{r['decode_seconds']:>10.1f}")


if __name__ == "__main__":
    main()
