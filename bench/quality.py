"""Quality: translation on Multi30k German->English (test_2016_flickr, detokenized sacreBLEU);
summarization on SAMSum (validation, ROUGE with rouge-score, stemmed).

Trains a preset on the Multi30k training set (29,000 pairs) with zoo's recipe, then
translates test_2016_flickr (1,000 sentences) with greedy decoding (and beam search) and
scores with sacreBLEU. Published greedy references: GRU + Bahdanau attention 28.3,
Transformer (3 layers, d=256) 36.5 (see ../shared/data/SOURCES.md).

The data is not shipped (non-commercial licence); it is read from ``--data``
(default ../shared/data/multi30k relative to the repository).

Summarization (``--task summarization``) trains on the SAMSum training set (14,731
dialogues) and reports ROUGE-1/2/L/Lsum F1 on the 818 validation dialogues (the test split is
not in ../shared; it is kept for judging generalisation). With a coverage phase, the model of
the epoch before it is saved as ``OUT-nocov``: the same run gives the pointer-generator without
and with the coverage loss. ``--evaluate DIR`` scores a saved summarizer (decoding settings as
flags), so decoding can be chosen on validation without training again. ``--continue-from DIR``
trains a saved summarizer ``--epochs`` more epochs (its restored optimizer at
``--learning-rate``, the last ``--coverage-epochs`` with the coverage loss) and scores it.

Recipes (``--recipe``, zoo.models.presets.RECIPES) set the preset, its size and
regularisation, the schedule, the update budget, early stopping and checkpoint averaging;
``--curves PNG`` plots the validation loss of each recipe's newest run.

Usage:
    python bench/quality.py --recipe multi30k_transformer --out runs/m30k_wu
    python bench/quality.py --curves docs/img/recipes.png
    python bench/quality.py --preset rnn_bahdanau --epochs 10
    python bench/quality.py --preset transformer_small --epochs 20
    python bench/quality.py --task summarization --preset pointer_generator --epochs 5 \
        --coverage-epochs 1 --out runs/pg
    python bench/quality.py --task summarization --evaluate runs/pg --beam-size 4 \
        --no-repeat-ngram-size 3
    python bench/quality.py --task summarization --continue-from runs/pg-nocov --epochs 4 \
        --coverage-epochs 1 --learning-rate 3e-4 --out runs/pg2 --beam-size 6 \
        --length-penalty 2.0 --min-length 10 --no-repeat-ngram-size 3
"""

import argparse
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from zoo.recipes import SCHEDULES  # noqa: E402  (stdlib imports only)
PUBLISHED = {"rnn_bahdanau": 28.3, "rnn_luong": 28.3, "transformer_small": 36.5,
             "transformer_base": 36.5}


def hardware():
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        return f"{name} (GPU)"
    return f"{cpu_name()}, {os.cpu_count()} cores"


def cpu_name():
    """The CPU's model name and widest vector extension: the same model name has come with
    and without AVX-512 on the machines this runs on, and speeds differ by 40%."""
    name, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:  # the first processor's block is enough
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name is None:
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    isa = next((tag for flag, tag in (("amx_tile", "AMX"), ("avx512f", "AVX-512"),
                                       ("avx2", "AVX2")) if flag in flags), None)
    return f"{name} ({isa})" if isa else name


PUBLISHED_ROUGE = {  # SAMSum test, Gliwa et al. 2019 (Table 3), with a turn separator
    "pointer_generator": "40.1 / 15.3 / 36.6", "transformer_summarizer": "37.3 / 10.9 / 33.5"}


def append_record(path, record):
    """One JSON line per run in the results file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def repeated_trigrams(texts):
    """Share of word trigrams that repeat an earlier trigram of the same text (%)."""
    total = repeats = 0
    for text in texts:
        words = text.lower().split()
        grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
        total += len(grams)
        repeats += len(grams) - len(set(grams))
    return 100.0 * repeats / max(total, 1)


def summarization(args, argv):
    import tensorflow as tf

    from zoo.data import read_jsonl
    from zoo.metrics import rouge
    from zoo.models import Summarizer

    d = args.data if args.data_given else os.path.join(HERE, "..", "..", "shared", "data",
                                                       "samsum")
    if not os.path.isdir(d):
        sys.exit(f"quality.py: SAMSum not found at {d} (pass --data)")
    dev = read_jsonl(f"{d}/validation.jsonl.gz", "dialogue", "summary", limit=args.test_limit)
    info, history = {}, None
    if args.evaluate:
        model = Summarizer.load(args.evaluate)
        info = (model._meta or {}).get("training", {})
    elif args.continue_from:
        model, history, info = continue_training(args, d, dev)
    else:
        import keras

        from zoo.recipes import train_summarizer

        train = read_jsonl(f"{d}/train.jsonl.gz", "dialogue", "summary", limit=args.limit)
        callbacks = []
        if args.out and args.coverage_epochs:
            out = args.out

            class SaveBeforeCoverage(keras.callbacks.Callback):
                def on_epoch_begin(self, epoch, logs=None):
                    if epoch == args.epochs - args.coverage_epochs:
                        self.model.save(out + "-nocov", overwrite=True)

            callbacks.append(SaveBeforeCoverage())
        model, history, info = train_summarizer(
            train, preset=args.preset, dev_pairs=dev, vocab_size=args.vocab_size,
            epochs=args.epochs, coverage_epochs=args.coverage_epochs, out_dir=args.out,
            tensorboard=False, verbose=2, keep_best=not args.coverage_epochs,
            callbacks=callbacks, overwrite=True)
    kw = {"strategy": "beam" if args.beam_size > 1 else "greedy"}
    if args.beam_size > 1:
        kw.update(beam_size=args.beam_size, length_penalty=args.length_penalty)
    if args.no_repeat_ngram_size:
        kw["no_repeat_ngram_size"] = args.no_repeat_ngram_size
    if args.min_length:
        kw["min_length"] = args.min_length
    t = time.time()
    hyps = model.summarize(dev.sources, batch_size=32, max_length=args.max_length, **kw)
    secs = time.time() - t
    scores = rouge(hyps, dev.targets)
    label = ", ".join(f"{k}={v}" for k, v in kw.items())
    record = {"task": "summarization", "model": args.evaluate or args.out,
              "preset": model.preset, "hardware": hardware(), "tensorflow": tf.__version__,
              "published_test_rouge": PUBLISHED_ROUGE.get(model.preset), "training": info,
              "decoding": label, "max_length": args.max_length,
              "rouge": {k: round(v, 2) for k, v in scores.items() if k != "texts"},
              "repeated_trigrams_percent": round(repeated_trigrams(hyps), 2),
              "mean_summary_words": round(sum(len(h.split()) for h in hyps) / len(hyps), 1),
              "decode_seconds": round(secs, 1), "examples": [
                  {"dialogue": s, "reference": r, "summary": h}
                  for s, r, h in list(zip(dev.sources, dev.targets, hyps))[:3]],
              "command": "python bench/quality.py " + " ".join(argv or sys.argv[1:])}
    if history is not None:
        record["val_loss"] = [round(x, 4) for x in history.history.get("val_loss", [])]
        record["loss"] = [round(x, 4) for x in history.history["loss"]]
    append_record(args.results, record)
    print(f"\nSAMSum validation ({len(dev)} dialogues), {record['hardware']}")
    print(f"{model.preset}: {model.count_params():,} parameters; decoding {label}; "
          f"{secs:.0f} s")
    print(f"{'ROUGE-1':>8}{'ROUGE-2':>8}{'ROUGE-L':>8}{'R-Lsum':>8}{'rep.3g%':>9}"
          f"  published (test) R1/R2/RL")
    r = record["rouge"]
    print(f"{r['rouge1']:>8.2f}{r['rouge2']:>8.2f}{r['rougeL']:>8.2f}{r['rougeLsum']:>8.2f}"
          f"{record['repeated_trigrams_percent']:>9.2f}  {PUBLISHED_ROUGE.get(model.preset, '-')}")


def continue_training(args, d, dev):
    """More epochs for a saved summarizer (``--continue-from``): its tokenizer and lengths,
    its restored optimizer (Adam moments included) at ``--learning-rate``, the coverage loss
    in the last ``--coverage-epochs`` epochs; saved to ``--out``."""
    from zoo.data import make_dataset, read_jsonl
    from zoo.models import Summarizer
    from zoo.training import CoveragePhase

    model = Summarizer.load(args.continue_from)
    epochs, cov = args.epochs or 1, args.coverage_epochs or 0
    train = read_jsonl(f"{d}/train.jsonl.gz", "dialogue", "summary", limit=args.limit)
    kw = dict(batch_size=16, max_source_length=model.max_source_length,
              max_target_length=model.max_target_length)
    ds = make_dataset(train, model.source_tokenizer, shuffle=True, seed=1, **kw)
    dev_ds = make_dataset(list(dev), model.source_tokenizer, shuffle=False, **kw)
    if getattr(model, "optimizer", None) is None:
        model.compile(learning_rate=args.learning_rate, label_smoothing=0.0)
    else:
        model.optimizer.learning_rate.assign(args.learning_rate)
    callbacks = [CoveragePhase(start_epoch=epochs - cov, weight=1.0)] if cov else []
    start = time.time()
    history = model.fit(ds, validation_data=dev_ds, epochs=epochs, callbacks=callbacks,
                        verbose=2)
    info = {**((model._meta or {}).get("training", {})), "continued_from": args.continue_from,
            "more_epochs": epochs, "more_coverage_epochs": cov,
            "learning_rate": args.learning_rate, "train_seconds": round(time.time() - start, 1)}
    model._meta = {"training": info}
    if args.out:
        model.save(args.out)
    return model, history, info


def plot_curves(results_path, out):
    """Validation loss per epoch of the newest run of each recipe (``--curves``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {}
    with open(results_path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("recipe") and r.get("val_loss") and r.get("split", "test_2016_flickr") \
                    == "test_2016_flickr":  # the legend quotes test BLEU
                runs[r["recipe"]] = r
    if not runs:
        sys.exit(f"quality.py: no recipe runs with a validation curve in {results_path}")
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, r in sorted(runs.items()):
        val = r["val_loss"]
        greedy = next((x["bleu"] for x in r["results"] if x["decoding"] == "greedy"), None)
        ax.plot(range(1, len(val) + 1), val, marker=".",
                label=f"{name} (test BLEU {greedy} greedy)")
        avg = r.get("averaged") or {}
        if len(avg.get("epochs") or []) > 1:
            ax.axvspan(avg["epochs"][0] - 0.5, avg["epochs"][-1] + 0.5, alpha=0.1,
                       color=ax.lines[-1].get_color())
        kept = r.get("kept_epoch")
        if kept:
            ax.plot([kept], [val[kept - 1]], marker="*", markersize=14,
                    color=ax.lines[-1].get_color(), linestyle="none")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss (label-smoothed)")
    ax.set_title("Multi30k De-En recipes: validation loss\n(shaded: the averaging window; "
                 "star: the epoch kept)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"validation curves of {', '.join(sorted(runs))}: {out}")


SPLITS = {"test": "test_2016_flickr", "val": "val"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=("translation", "summarization"), default="translation")
    p.add_argument("--preset", default=None,
                   help="default: the recipe's, else rnn_bahdanau / pointer_generator")
    p.add_argument("--recipe", default=None,
                   help="translation: a training recipe (zoo.models.presets.RECIPES)")
    p.add_argument("--max-steps", type=int, default=None, help="default: the recipe's")
    p.add_argument("--schedule", default=None, choices=SCHEDULES,
                   help="default: the recipe's")
    p.add_argument("--batch-tokens", type=int, default=None, help="default: the recipe's")
    p.add_argument("--coverage-epochs", type=int, default=None,
                   help="summarization: last epochs with the coverage loss")
    p.add_argument("--evaluate", default=None,
                   help="score a saved model instead of training one")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="with --evaluate, translation: score test_2016_flickr (default) or "
                        "the validation set the recipes were validated on")
    p.add_argument("--continue-from", default=None,
                   help="summarization: train a saved model --epochs more epochs")
    p.add_argument("--learning-rate", type=float, default=3e-4,
                   help="with --continue-from")
    p.add_argument("--no-repeat-ngram-size", type=int, default=0)
    p.add_argument("--min-length", type=int, default=0)
    p.add_argument("--max-length", type=int, default=None)
    p.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data",
                                                  "multi30k"))
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--vocab-size", type=int, default=None)
    p.add_argument("--limit", type=int, default=None, help="training pairs (default: all)")
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--length-penalty", type=float, default=0.6)
    p.add_argument("--out", default=None, help="save the model here")
    p.add_argument("--results", default=os.path.join(HERE, "results", "quality.jsonl"))
    p.add_argument("--mixed-precision", action="store_true")
    p.add_argument("--override", action="append", default=[],
                   help="network option KEY=VALUE (JSON value), repeatable")
    p.add_argument("--curves", default=None, metavar="PNG",
                   help="only plot the validation curves of the recipe runs in --results")
    args = p.parse_args(argv)
    if args.curves:
        return plot_curves(args.results, args.curves)
    args.data_given = any(a.startswith("--data") for a in (argv or sys.argv[1:]))
    if args.task == "summarization":
        if args.split != "test":
            sys.exit("quality.py: --split is for translation (a summarizer is scored on "
                     "SAMSum's test split)")
        args.preset = args.preset or "pointer_generator"
        return summarization(args, argv)
    if args.recipe is None:
        args.preset = args.preset or "rnn_bahdanau"
        args.vocab_size = args.vocab_size or 8000

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
    if args.split == "val":
        if not args.evaluate:
            sys.exit("quality.py: --split val scores a saved model (--evaluate DIR); a "
                     "training run reports test_2016_flickr")
        test = dev
    if args.evaluate:
        from zoo.models import Translator

        model = Translator.load(args.evaluate)
        info = (model._meta or {}).get("training", {})
        args.recipe = args.recipe or info.get("recipe")
        args.preset = info.get("preset", model.preset)
        return score_translator(args, argv, model, info, info.get("history", {}), test)
    overrides = {}
    for kv in args.override:
        k, v = kv.split("=", 1)
        overrides[k] = json.loads(v)
    model, history, info = train_translator(
        train, preset=args.preset, dev_pairs=dev, vocab_size=args.vocab_size,
        epochs=args.epochs, out_dir=args.out, tensorboard=False, verbose=2,
        mixed_precision=args.mixed_precision, overrides=overrides, recipe=args.recipe,
        max_steps=args.max_steps, batch_tokens=args.batch_tokens, schedule=args.schedule,
        overwrite=True)
    args.preset = info["preset"]
    return score_translator(args, argv, model, info, history.history, test)


def score_translator(args, argv, model, info, history, test):
    """Greedy and beam BLEU/chrF on the test set; one record in --results; a table."""
    import tensorflow as tf

    from zoo.metrics import evaluate

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
    published = PUBLISHED.get(args.preset) if args.split == "test" else None  # test figures
    record = {"preset": args.preset, "recipe": args.recipe, "hardware": hardware(),
              "tensorflow": tf.__version__, "published_greedy_bleu": published, **info,
              "val_loss": [round(x, 4) for x in history.get("val_loss", [])],
              "loss": [round(x, 4) for x in history.get("loss", [])], "results": rows,
              "evaluated": args.evaluate, "split": SPLITS[args.split],
              "command": "python bench/quality.py " + " ".join(argv or sys.argv[1:])}
    append_record(args.results, record)
    print(f"\nMulti30k de-en {SPLITS[args.split]} ({len(test)} sentences), "
          f"{record['hardware']}")
    what = f"recipe {args.recipe} (preset {args.preset})" if args.recipe else \
        f"preset {args.preset}"
    print(f"{what}: {info['parameters']:,} parameters, {info['epochs_trained']} epochs "
          f"({info['steps']:,} updates), {info['train_seconds'] / 60:.1f} min training")
    if info.get("averaged") and info["averaged"]["single"] is not None:
        a = info["averaged"]
        print(f"validation loss: best epoch {a['epochs'][-1]} {a['single']}, average of "
              f"epochs {a['epochs'][0]}-{a['epochs'][-1]} {a['averaged']}: kept {a['kept']}")
    print(f"{'decoding':<22}{'BLEU':>7}{'chrF':>7}{'published':>11}{'decode s':>10}")
    for r in rows:
        pub = published if r["decoding"] == "greedy" else None
        print(f"{r['decoding']:<22}{r['bleu']:>7.2f}{r['chrf']:>7.2f}"
              f"{(f'{pub:.1f}' if pub else '-'):>11}{r['decode_seconds']:>10.1f}")


if __name__ == "__main__":
    main()
