"""BLEU by sentence length: the bottleneck that attention removes (Bahdanau et al. 2015, fig. 2).

Scores Multi30k De->En test_2016_flickr (detokenized sacreBLEU, greedy decoding) by source
length bucket for three translators: an RNN encoder-decoder with no attention (a fixed
context vector: the mean of the encoder's outputs, attention ``uniform``), the same network
with Bahdanau attention, and the Transformer. Prints a table, appends a record to
bench/results/length.jsonl and draws BLEU against source length in docs/img/length.png.

Each model is a saved model directory (``--model LABEL=DIR``), or is trained here first with
zoo's recipes (``--train``: the models go to ``--out``, and an existing one is reused).
Trained here, the RNNs share one shape (``rnn_bahdanau``'s: bi-GRU 256, GRU 512) and one
training budget, so the attention is the only difference between them.

The data is not shipped (non-commercial licence); it is read from ``--data``
(default ../shared/data/multi30k relative to the repository).

Usage:
    python bench/length.py --train --epochs 8 --out runs/length
    python bench/length.py --train --rnn-preset rnn_small --epochs 5 \
        --transformer runs/m30k_wu --out runs/length
    python bench/length.py --model "no attention=runs/length/none" \\
        --model "Bahdanau attention=runs/length/bahdanau" --model "Transformer=runs/m30k_wu"
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

def trained(rnn_preset):
    """What ``--train`` trains: label, directory name, recipe or preset, network overrides.
    The two RNNs differ only in their attention."""
    return (("no attention", "none", {"preset": rnn_preset,
                                      "overrides": {"attention": "uniform"}}),
            ("Bahdanau attention", "bahdanau", {"preset": rnn_preset,
                                                "overrides": {"attention": "additive"}}),
            ("Transformer", "transformer", {"recipe": "multi30k_transformer"}))


def train_models(args, train, dev):
    from zoo.models import load
    from zoo.recipes import train_translator

    models = []
    for label, name, spec in trained(args.rnn_preset):
        if name == "transformer" and args.transformer:
            continue  # given as a saved model
        out = os.path.join(args.out, name)
        if not os.path.exists(os.path.join(out, "zoo.json")):
            # The RNNs get the same epochs; the Transformer its recipe's update budget.
            epochs = None if "recipe" in spec else args.epochs
            train_translator(train, dev_pairs=dev, out_dir=out, epochs=epochs,
                             tensorboard=False, verbose=2, overwrite=True, **spec)
        models.append((label, out))
    return [(label, load(path)) for label, path in models]


def plot(rows_by_model, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, rows in rows_by_model:
        xs = [r["mid"] for r in rows]
        ax.plot(xs, [r["bleu"] for r in rows], marker="o", label=label)
    first = rows_by_model[0][1]
    ax.set_xticks([r["mid"] for r in first], [r["words"] for r in first])
    ax.set_xlabel("source sentence length (German words)")
    ax.set_ylabel("BLEU (greedy, sacreBLEU)")
    ax.set_title("Multi30k De-En test_2016_flickr by source length")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=[], metavar="LABEL=DIR",
                   help="a saved translator to score (repeatable)")
    p.add_argument("--train", action="store_true",
                   help="train the no-attention, Bahdanau and Transformer models first")
    p.add_argument("--epochs", type=int, default=8, help="--train: epochs of each RNN")
    p.add_argument("--rnn-preset", default="rnn_bahdanau",
                   help="--train: the RNN shape (attention \"before\" the GRU, Bahdanau "
                        "style), trained without and with attention")
    p.add_argument("--transformer", default=None, metavar="DIR",
                   help="--train: a saved Transformer to use instead of training one")
    p.add_argument("--out", default=os.path.join(HERE, "..", "runs", "length"),
                   help="--train: where the models go")
    p.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data",
                                                  "multi30k"))
    p.add_argument("--edges", default="8,11,14,17",
                   help="upper bounds of the length buckets, in source words")
    p.add_argument("--plot", default=os.path.join(HERE, "..", "docs", "img", "length.png"))
    p.add_argument("--results", default=os.path.join(HERE, "results", "length.jsonl"))
    args = p.parse_args(argv)
    if not args.model and not args.train:
        p.error("give --model LABEL=DIR (repeatable) or --train")

    from zoo.data import read_parallel
    from zoo.metrics import bleu, bleu_by_length
    from zoo.models import load
    from quality import append_record, hardware

    d = args.data
    if not os.path.isdir(d):
        sys.exit(f"length.py: Multi30k not found at {d} (pass --data)")
    test = read_parallel(f"{d}/test_2016_flickr.de.gz", f"{d}/test_2016_flickr.en.gz")
    models = []
    for item in args.model:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            p.error(f"--model {item!r}: expected LABEL=DIR")
        models.append((label, load(path)))
    if args.train:
        train = read_parallel(f"{d}/train.de.gz", f"{d}/train.en.gz")
        dev = read_parallel(f"{d}/val.de.gz", f"{d}/val.en.gz")
        models += train_models(args, train, dev)
        if args.transformer:
            models.append(("Transformer", load(args.transformer)))
    edges = [int(e) for e in args.edges.split(",")]
    results = []
    for label, model in models:
        t = time.time()
        hyps = model.translate(test.sources, batch_size=64, max_length=64, strategy="greedy")
        rows = bleu_by_length(test.sources, hyps, test.targets, edges)
        for r in rows:
            r["bleu"] = round(r["bleu"], 2)
            r["mid"] = (r["low"] + (r["high"] or r["low"] + 4)) / 2
        results.append({"label": label, "preset": model.preset,
                        "parameters": int(model.count_params()),
                        "training": (model._meta or {}).get("training", {}),
                        "bleu": round(bleu(hyps, test.targets), 2), "buckets": rows,
                        "decode_seconds": round(time.time() - t, 1)})
    append_record(args.results, {"bench": "length", "hardware": hardware(),
                                 "models": results, "edges": edges,
                                 "command": "python bench/length.py " + " ".join(
                                     argv or sys.argv[1:])})
    print(f"\nMulti30k de-en test_2016_flickr ({len(test)} sentences), greedy BLEU by source "
          f"length in words; {hardware()}")
    buckets = results[0]["buckets"]
    head = f"{'model':<22}{'all':>7}" + "".join(f"{b['words']:>8}" for b in buckets)
    print(head)
    print(f"{'sentences':<22}{len(test):>7}" + "".join(f"{b['sentences']:>8}" for b in buckets))
    for r in results:
        print(f"{r['label']:<22}{r['bleu']:>7.2f}" + "".join(
            f"{b['bleu']:>8.2f}" for b in r["buckets"]))
    print(f"plot: {plot([(r['label'], r['buckets']) for r in results], args.plot)}")


if __name__ == "__main__":
    main()
