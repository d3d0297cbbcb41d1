"""What a checkpoint buys: fine-tuning against training from scratch, on real data.

Two measurements, each printing a table (and appending a JSON line to bench/results/):

* ``terminology``: the everyday case. ``anki_es_en`` translates the 2,000 validation pairs
  (held back from its training; never the test pairs). English words it renders wrongly most
  often (a reference word missing from its output in at least half of at least 4 sentences)
  pick the sentences; two thirds of each word's sentences fine-tune it briefly (with as many
  training pairs replayed, against forgetting), the other third measures the word accuracy
  before and after. The general held-out BLEU (the 2,000 test pairs) is measured before and
  after.
* ``samsum``: the dialogsum_summarizer fine-tuned on N SAMSum training dialogues against the
  same preset trained from scratch on them for the same number of epochs: SAMSum validation
  ROUGE of each, and DialogSum dev ROUGE after fine-tuning (forgetting). SAMSum is read from
  ../shared/data (non-commercial: benchmarks only).

Usage:
    python bench/fine_tune.py terminology
    python bench/fine_tune.py samsum --sizes 1000 4000 --epochs 4
    python bench/fine_tune.py plot            # docs/img/fine_tune.png from the records
"""

import argparse
import collections
import json
import os
import random
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
SHARED = os.path.join(HERE, "..", "..", "shared", "data")
RESULTS = os.path.join(HERE, "results", "fine_tune.jsonl")


def _record(entry):
    from quality import append_record, hardware

    append_record(RESULTS, {**entry, "hardware": hardware(),
                            "date": time.strftime("%Y-%m-%d %H:%M")})


def problem_words(hyps, refs, min_count=4, max_hit=0.5):
    """Reference words (lower-case, 4+ letters) the output misses in >= half their sentences."""
    from zoo.metrics import words

    seen, hit = collections.Counter(), collections.Counter()
    for h, r in zip(hyps, refs):
        out = set(words(h))
        for w in set(words(r)):
            if len(w) >= 4 and w.isalpha():
                seen[w] += 1
                hit[w] += w in out
    return sorted(w for w, n in seen.items() if n >= min_count and hit[w] / n <= max_hit)


def word_accuracy(hyps, items):
    """Share of (sentence, word) items whose output holds the word."""
    from zoo.metrics import words

    return 100.0 * sum(w in set(words(hyps[i])) for i, w in items) / max(len(items), 1)


def terminology(args):
    import zoo.models
    from zoo import metrics, recipes
    from zoo.data import anki_spa_eng_splits
    from zoo.metrics import words

    train, valid, test = anki_spa_eng_splits()
    base = zoo.models.load("anki_es_en")
    hyps = base.translate([s for s, _ in valid])
    chosen = problem_words(hyps, [t for _, t in valid])
    rnd = random.Random(0)
    tune, held = set(), []
    for w in chosen:
        rows = [i for i, (_, t) in enumerate(valid) if w in set(words(t))]
        rnd.shuffle(rows)
        cut = max(1, (2 * len(rows)) // 3)
        tune.update(rows[:cut])
        held += [(i, w) for i in rows[cut:]]
    held = [(i, w) for i, w in held if i not in tune]
    tune_pairs = [valid[i] for i in sorted(tune)]
    replay = rnd.sample(train, len(tune_pairs))
    eval_rows = sorted({i for i, _ in held})
    index = {i: k for k, i in enumerate(eval_rows)}
    items = [(index[i], w) for i, w in held]
    before_words = word_accuracy([hyps[i] for i in eval_rows], items)
    before_bleu = metrics.bleu(base.translate([s for s, _ in test]), [t for _, t in test])
    t0 = time.time()
    tuned, _, info = recipes.train_translator(tune_pairs + replay, init_from="anki_es_en",
                                              epochs=args.epochs, verbose=0, seed=0)
    secs = time.time() - t0
    after = tuned.translate([valid[i][0] for i in eval_rows])
    after_words = word_accuracy(after, items)
    after_bleu = metrics.bleu(tuned.translate([s for s, _ in test]), [t for _, t in test])
    entry = {"bench": "terminology", "words": len(chosen), "tune_pairs": len(tune_pairs),
             "replayed": len(replay), "eval_items": len(items), "epochs": args.epochs,
             "seconds": round(secs), "word_accuracy": [round(before_words, 1),
                                                       round(after_words, 1)],
             "test_bleu": [round(before_bleu, 2), round(after_bleu, 2)],
             "unknown_pieces": info["unknown_pieces"], "examples": chosen[:12]}
    print(f"{len(chosen)} problem words; {len(tune_pairs)} pairs (+{len(replay)} replayed) "
          f"fine-tune {args.epochs} epochs in {secs:.0f} s")
    print("| measure | before | after |\n|---|---|---|")
    print(f"| accuracy on the problem words ({len(items)} held-out uses) | {before_words:.1f} % "
          f"| {after_words:.1f} % |")
    print(f"| held-out BLEU (2,000 test pairs) | {before_bleu:.2f} | {after_bleu:.2f} |")
    _record(entry)


def samsum(args):
    import zoo.models
    from zoo import metrics, recipes
    from zoo.data import read_jsonl

    d = os.path.join(SHARED, "samsum")
    train = list(read_jsonl(os.path.join(d, "train.jsonl.gz"), "dialogue", "summary"))
    val = list(read_jsonl(os.path.join(d, "validation.jsonl.gz"), "dialogue", "summary"))
    dsum = list(read_jsonl(os.path.join(SHARED, "dialogsum", "dev.jsonl.gz"), "dialogue",
                           "summary"))
    random.Random(0).shuffle(train)

    def rouge(model, pairs):
        r = metrics.rouge(model.summarize([s for s, _ in pairs]), [t for _, t in pairs])
        return [round(r[k], 2) for k in ("rouge1", "rouge2", "rougeLsum")]

    base = zoo.models.load("dialogsum_summarizer")
    print("| dialogues | arm | epochs | train s | SAMSum val R1/R2/Lsum | DialogSum dev R1/R2/Lsum |")
    print("|---|---|---|---|---|---|")
    print(f"| 0 | checkpoint as shipped | 0 | 0 | {rouge(base, val)} | {rouge(base, dsum)} |")
    for n in args.sizes:
        pairs = train[:n]
        for arm in ("fine-tuned", "from scratch"):
            kw = ({"init_from": "dialogsum_summarizer"} if arm == "fine-tuned" else
                  {"preset": "pointer_generator_small", "coverage_epochs": 1})
            t0 = time.time()
            model, _, _ = recipes.train_summarizer(pairs, epochs=args.epochs, verbose=0,
                                                   seed=0, **kw)
            secs = time.time() - t0
            sam = rouge(model, val)
            dia = rouge(model, dsum) if arm == "fine-tuned" else None
            print(f"| {n} | {arm} | {args.epochs} | {secs:.0f} | {sam} | {dia or ''} |",
                  flush=True)
            _record({"bench": "samsum", "dialogues": n, "arm": arm, "epochs": args.epochs,
                     "seconds": round(secs), "samsum_val": sam, "dialogsum_dev": dia})


def plot(args):
    """ROUGE-1 against the number of SAMSum dialogues, fine-tuned and from scratch, with the
    fine-tuned model's DialogSum dev score (forgetting), from the newest records."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {}
    for line in open(RESULTS):
        r = json.loads(line)
        if r.get("bench") == "samsum":
            rows[(r["dialogues"], r["arm"])] = r
    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, style in (("fine-tuned", "o-"), ("from scratch", "s--")):
        pts = sorted((n, r["samsum_val"][0]) for (n, a), r in rows.items() if a == arm)
        ax.plot([n for n, _ in pts], [v for _, v in pts], style, label=f"SAMSum val, {arm}")
    pts = sorted((n, r["dialogsum_dev"][0]) for (n, a), r in rows.items()
                 if a == "fine-tuned")
    ax.plot([n for n, _ in pts], [v for _, v in pts], "^:", label="DialogSum dev, fine-tuned")
    ax.set_xscale("log")
    ax.set_xlabel("SAMSum training dialogues")
    ax.set_ylabel("ROUGE-1")
    ax.set_title("dialogsum_summarizer fine-tuned vs the preset from scratch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="bench", required=True)
    t = sub.add_parser("terminology")
    t.add_argument("--epochs", type=int, default=3)
    s = sub.add_parser("samsum")
    s.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 14731])
    s.add_argument("--epochs", type=int, default=4)
    g = sub.add_parser("plot")
    g.add_argument("--out", default=os.path.join(HERE, "..", "docs", "img", "fine_tune.png"))
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    {"terminology": terminology, "samsum": samsum, "plot": plot}[args.bench](args)


if __name__ == "__main__":
    main()
