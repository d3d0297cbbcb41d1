"""Trains, scores and packs the checkpoints zoo ships (``zoo/checkpoints/NAME/``).

One command per checkpoint, reproducible (seeded; the figures are per CPU kind, see
docs/RESULTS.md)::

    python bench/checkpoints.py anki_es_en            # train (resumable), score, pack
    python bench/checkpoints.py anki_en_es
    python bench/checkpoints.py dialogsum_summarizer
    python bench/checkpoints.py anki_es_en --pack-only   # re-score and re-pack a finished run
    python bench/checkpoints.py dialogsum_summarizer --sweep  # decoding settings on dev

Each checkpoint is a recipe of ``zoo.models.presets.RECIPES`` trained on data the package may
redistribute. Splits:

- Anki/Tatoeba (CC-BY 2.0 FR): the embedded file shuffled with seed 0, as ``zoo train
  translator`` does; the first 2,000 pairs are the held-out test set (the main job's held-out
  pairs: never trained on, never used for a choice), the next 2,000 validate (weight
  averaging, the kept epoch), the remaining 114,964 train.
- DialogSum (2021 release, MIT) from ../shared/data/dialogsum: all 12,460 training dialogues;
  the 500 dev dialogues for the choices and the reported scores.

The run lives in ``runs/NAME`` (``--runs``); packing stores the weights as float16 when the
held-out tokens are then identical to float32 (checked here), else as float32.
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
SHARED = os.path.join(ROOT, "..", "shared", "data")

#: What each checkpoint trains on and how it is scored: data, not code.
CHECKPOINTS = {
    "anki_es_en": {"task": "translation", "data": "anki", "reverse": False},
    "anki_en_es": {"task": "translation", "data": "anki", "reverse": True},
    "dialogsum_summarizer": {"task": "summarization", "data": "dialogsum"},
}


def dialogsum_splits(data_dir=None):
    """``(train, dev, dev)``: DialogSum has no test split here; dev serves both."""
    from zoo.data import read_jsonl

    d = data_dir or os.path.join(SHARED, "dialogsum")
    train = read_jsonl(os.path.join(d, "train.jsonl.gz"), "dialogue", "summary")
    dev = read_jsonl(os.path.join(d, "dev.jsonl.gz"), "dialogue", "summary")
    return list(train), list(dev), list(dev)


def splits(name):
    spec = CHECKPOINTS[name]
    if spec["data"] == "anki":
        from zoo.data import anki_spa_eng_splits

        return anki_spa_eng_splits(spec["reverse"])
    return dialogsum_splits()


def train(name, run_dir, resume):
    from zoo import recipes

    spec = CHECKPOINTS[name]
    tr, va, _ = splits(name)
    common = dict(recipe=name, out_dir=run_dir, dev_pairs=va, seed=0, verbose=2,
                  resume=resume, overwrite=not resume)
    t0 = time.time()
    if spec["task"] == "translation":
        model, history, info = recipes.train_translator(tr, max_length=64, **common)
    else:
        model, history, info = recipes.train_summarizer(tr, **common)
    print(f"{name}: trained in {time.time() - t0:.0f} s; {json.dumps(info)[:2000]}")
    return model


#: The decoding settings compared on the held-out (dev) set by ``--sweep``.
SWEEP = [{"beam_size": 4, "length_penalty": 0.6}, {"beam_size": 4, "length_penalty": 1.0},
         {"beam_size": 4, "length_penalty": 2.0, "min_length": 10},
         {"beam_size": 6, "length_penalty": 2.0, "min_length": 10},
         {"beam_size": 4, "length_penalty": 2.0, "min_length": 15}]


def sweep(name):
    """Scores the packed checkpoint's beam settings on its held-out (dev) set: a table."""
    import zoo.models
    from zoo import metrics

    model = zoo.models.load(name)
    _, _, test = splits(name)
    src, ref = [s for s, _ in test], [t for _, t in test]
    print("| beam | length penalty | min length | score | words | s |\n|---|---|---|---|---|---|")
    for kw in SWEEP:
        t0 = time.time()
        hyps = model.generate_text(src, strategy="beam", no_repeat_ngram_size=3 if
                                   model.task == "summarization" else 0, **kw)
        if model.task == "summarization":
            r = metrics.rouge(hyps, ref)
            score = f"{r['rouge1']:.2f} / {r['rouge2']:.2f} / {r['rougeLsum']:.2f}"
        else:
            score = f"BLEU {metrics.bleu(hyps, ref):.2f}"
        words = sum(len(h.split()) for h in hyps) / len(hyps)
        print(f"| {kw['beam_size']} | {kw['length_penalty']} | {kw.get('min_length', 0)} | "
              f"{score} | {words:.1f} | {time.time() - t0:.0f} |", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", choices=sorted(CHECKPOINTS))
    p.add_argument("--runs", default=os.path.join(ROOT, "runs"))
    p.add_argument("--resume", action="store_true", help="continue the run in runs/NAME")
    p.add_argument("--pack-only", action="store_true", help="score and pack a finished run")
    p.add_argument("--sweep", action="store_true",
                   help="compare beam settings of the packed checkpoint on its held-out set")
    p.add_argument("--out", default=os.path.join(ROOT, "zoo", "checkpoints"),
                   help="where the packed checkpoint goes")
    p.add_argument("--threads", type=int, default=None,
                   help="TensorFlow threads (default: all cores)")
    args = p.parse_args(argv)
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    if args.sweep:
        return sweep(args.name)
    run_dir = os.path.join(args.runs, args.name)
    if not args.pack_only:
        train(args.name, run_dir, args.resume)
    from bench import pack  # noqa: E402  (after the threads are set)

    tr, _, test = splits(args.name)
    pack.pack(args.name, run_dir, test, CHECKPOINTS[args.name]["task"],
              train_refs=[t for _, t in tr], out=args.out)


if __name__ == "__main__":
    main()
