"""SAMSum ablation rows (issue 36): a recipe trained on dialogues, scored on SAMSum validation.

Decoding is never chosen on SAMSum validation: each row's settings are picked on DialogSum
dev (500 dialogues) from :data:`checkpoints.SWEEP`, or with ``--holdout N`` on N SAMSum
training dialogues kept out of training from :data:`HOLDOUT_SWEEP`; then SAMSum validation
(818 dialogues) is scored once with them. Each row prints ROUGE-1/2/L/Lsum (rouge-score,
stemmed) and the readability check (invented words against the training summaries' words, malformed tags),
and appends a JSON line to bench/results/samsum.jsonl. SAMSum is non-commercial: read from
../shared, never shipped.

Usage:
    python bench/samsum.py --recipe samsum_dialogues --data samsum dialogsum --out runs/sd
    python bench/samsum.py --evaluate runs/sd          # score a finished run again
    python bench/samsum.py --recipe samsum_dialogues_reg --holdout 500 --out runs/ho
                                   # choose decoding on 500 held-out SAMSum training dialogues
    python bench/samsum.py --evaluate runs/sd --decoding '{"beam_size": 6, "length_penalty": 2.0}'
    python bench/samsum.py --init-from runs/sd --data samsum --epochs 2 --out runs/sd2
                                                       # a second, in-domain stage
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
SHARED = os.path.join(ROOT, "..", "shared", "data")
RESULTS = os.path.join(HERE, "results", "samsum.jsonl")
FILES = {"samsum": ("samsum", "train.jsonl.gz"), "dialogsum": ("dialogsum", "train.jsonl.gz")}


def read(corpus, name):
    from zoo.data import read_jsonl

    return list(read_jsonl(os.path.join(SHARED, corpus, name), "dialogue", "summary"))


#: The settings chosen from on held-out SAMSum training dialogues (``--holdout``): beam 4 and
#: 6, length penalties 2 to 5, min length 10 or 15 (the region DialogSum dev favoured).
HOLDOUT_SWEEP = [{"beam_size": b, "length_penalty": lp, "min_length": m}
                 for b, lp, m in ((4, 2.0, 10), (6, 2.0, 10), (4, 3.0, 10), (6, 3.0, 10),
                                  (6, 5.0, 10), (6, 3.0, 15))]


def split_holdout(pairs, n, seed=1):
    """``pairs`` without ``n`` of them held out by a fixed shuffle, and the ``n``: a slice of
    SAMSum's training dialogues to choose decoding on, in-domain but never trained on."""
    import random

    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    held = set(order[:n])
    return [p for i, p in enumerate(pairs) if i not in held], [pairs[i] for i in order[:n]]


def choose_decoding(model, dev, grid=None, name="DialogSum dev"):
    """The setting of ``grid`` (default :data:`checkpoints.SWEEP`) with the best ROUGE-1 +
    Lsum on ``dev``."""
    from checkpoints import SWEEP
    from zoo import metrics

    best, best_score = None, -1.0
    for kw in grid or SWEEP:
        hyps = model.generate_text([s for s, _ in dev], strategy="beam",
                                   no_repeat_ngram_size=3, **kw)
        r = metrics.rouge(hyps, [t for _, t in dev])
        print(f"  {name} {kw}: {r['rouge1']:.2f} / {r['rougeLsum']:.2f}", flush=True)
        if r["rouge1"] + r["rougeLsum"] > best_score:
            best, best_score = kw, r["rouge1"] + r["rougeLsum"]
    return best


def evaluate(model, train_summaries, label, seconds=None, decoding=None, grid=None,
             held=None):
    from quality import append_record, hardware
    from zoo import metrics

    chosen_on = f"SAMSum train holdout ({len(held)})" if held else "DialogSum dev"
    if decoding is None:
        dev = held or read("dialogsum", "dev.jsonl.gz")
        decoding = choose_decoding(model, dev, grid or (HOLDOUT_SWEEP if held else None),
                                   chosen_on)
    val = read("samsum", "validation.jsonl.gz")
    src, ref = [s for s, _ in val], [t for _, t in val]
    hyps = model.generate_text(src, strategy="beam", no_repeat_ngram_size=3, **decoding)
    r = metrics.rouge(hyps, ref)
    read_ = metrics.readability(hyps, src, metrics.word_list(train_summaries))
    row = {k: round(v, 2) for k, v in {**r, **read_}.items()}
    print(f"{hardware()}\n| run | decoding (from {chosen_on}) | R1 / R2 / L / Lsum | "
          f"invented % | malformed % |\n|---|---|---|---|---|")
    print(f"| {label} | {decoding} | {row['rouge1']} / {row['rouge2']} / {row['rougeL']} / "
          f"{row['rougeLsum']} | {row.get('invented', '')} | {row.get('malformed_tags', '')} |")
    for h, t in list(zip(hyps, ref))[:3]:
        print(f"  - {h!r}  (reference {t!r})")
    append_record(RESULTS, {"run": label, "decoding": decoding, "chosen_on": chosen_on, **row,
                            "seconds": seconds, "hardware": hardware(),
                            "date": time.strftime("%Y-%m-%d %H:%M")})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="samsum_dialogues")
    p.add_argument("--data", nargs="+", choices=sorted(FILES), default=["samsum", "dialogsum"])
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "samsum_dialogues"))
    p.add_argument("--evaluate", metavar="DIR", help="score a trained run, no training")
    p.add_argument("--decoding", type=json.loads, default=None, metavar="JSON",
                   help="with --evaluate: these settings (chosen before, on DialogSum dev) "
                        "instead of the sweep, e.g. '{\"beam_size\": 6}'")
    p.add_argument("--sweep", type=json.loads, default=None, metavar="JSON",
                   help="the decoding settings to choose from on DialogSum dev (a JSON list; "
                        "default: bench/checkpoints.py's SWEEP)")
    p.add_argument("--holdout", type=int, default=0, metavar="N",
                   help="hold N SAMSum training dialogues out of training (a fixed shuffle) "
                        "and choose decoding on them instead of DialogSum dev")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--init-from", metavar="DIR",
                   help="fine-tune this trained run instead (its tokenizer and network; the "
                        "dialogsum_summarizer checkpoint's fine-tuning settings)")
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--coverage-epochs", type=int, default=None,
                   help="the last N epochs with the coverage loss")
    args = p.parse_args(argv)
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    import random

    import zoo.models
    from zoo import recipes
    from zoo.models import presets

    train, held = [], None
    for name in args.data:
        pairs = read(*FILES[name])
        if name == "samsum" and args.holdout:
            pairs, held = split_holdout(pairs, args.holdout)
        train += pairs
    summaries = [t for _, t in train]
    if args.evaluate:
        evaluate(zoo.models.load(args.evaluate), summaries, args.evaluate,
                 decoding=args.decoding, grid=args.sweep, held=held)
        return
    random.Random(0).shuffle(train)
    t0 = time.time()
    extra = {k: v for k, v in (("epochs", args.epochs), ("learning_rate", args.learning_rate),
                                         ("coverage_epochs", args.coverage_epochs))
             if v is not None}
    if args.init_from:
        # A run directory records no fine-tuning settings: take the shipped summarizer's.
        tune = presets.get_preset("dialogsum_summarizer")["train"]
        extra = {**tune, "init_from": args.init_from, **extra}
    model, _, info = recipes.train_summarizer(
        train, recipe=None if args.init_from else args.recipe, out_dir=args.out, seed=0,
        verbose=2, resume=args.resume,
        overwrite=not args.resume, dev_pairs=read("samsum", "validation.jsonl.gz")[:200],
        **extra)
    seconds = round(time.time() - t0)
    print(f"trained in {seconds} s; val_loss {info['history'].get('val_loss')}", flush=True)
    label = ((f"{args.init_from} then" if args.init_from else args.recipe)
             + f" on {'+'.join(args.data)}" + (f", {args.epochs} epochs" if args.epochs else "")
             + (f", {args.holdout} SAMSum dialogues held out" if args.holdout else ""))
    evaluate(model, summaries, label, seconds, grid=args.sweep, held=held)


if __name__ == "__main__":
    main()
