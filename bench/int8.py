"""int8 ONNX against float32 ONNX on the shipped checkpoints: size, quality cost, speed.

Each checkpoint is exported twice (``zoo export --format onnx`` and ``--quantize int8``); both
decode its held-out set with the task's exported default (greedy for the translators, beam for
the summarizer) through ``zoo.serving.load``, timed in alternating rounds in one process.

Usage:
    python bench/int8.py                        # every shipped checkpoint
    python bench/int8.py anki_es_en --limit 500
    python bench/int8.py --model zoo-translator # the main job's RNN, on its 2,000 held-out
                                                # pairs
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


def held_out(name, limit):
    from checkpoints import splits

    if os.path.isdir(name):  # `zoo train translator`'s held-out pairs (its --seed 0 split)
        import random

        from zoo.data import anki_spa_eng_pairs

        pairs = list(anki_spa_eng_pairs())
        random.Random(0).shuffle(pairs)
        return pairs[:2000][:limit]
    return splits(name)[2][:limit]


def size_mb(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)
               if f.endswith(".onnx")) / 1e6


def main(argv=None):
    import zoo.models
    from zoo import metrics
    from zoo.export import export
    from zoo.serving import load

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", default=None)
    p.add_argument("--model", action="append", default=[], metavar="DIR",
                   help="a translator directory trained on the embedded Anki pairs")
    p.add_argument("--limit", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    from quality import hardware

    names = (args.names or ([] if args.model else zoo.models.presets.checkpoint_names())) + \
        args.model
    print(f"{hardware()}")
    print("| checkpoint | onnx | size MB | score | texts/s |\n|---|---|---|---|---|")
    for name in names:
        model = zoo.models.load(name)
        pairs = held_out(name, args.limit)
        sources, refs = [s for s, _ in pairs], [t for _, t in pairs]
        strategy = model.task_spec.decoding["strategy"]
        root = tempfile.mkdtemp()
        runners = {}
        for q in ("float32", "int8"):
            export(model, os.path.join(root, q), "onnx", quantization=q,
                   beam_size=model.task_spec.decoding.get("beam_size", 4),
                   min_length=model.task_spec.decoding.get("min_length", 0),
                   no_repeat_ngram_size=model.task_spec.decoding.get("no_repeat_ngram_size", 0),
                   length_penalty=model.task_spec.decoding.get("length_penalty", 0.6))
            runners[q] = load(os.path.join(root, q))
        times = {q: [] for q in runners}
        outs = {}
        for _ in range(args.rounds):
            for q, runner in runners.items():
                t0 = time.perf_counter()
                outs[q] = runner.generate_text(sources, strategy)
                times[q].append(time.perf_counter() - t0)
        for q in runners:
            if model.task == "translation":
                score = f"BLEU {metrics.bleu(outs[q], refs):.2f}"
            else:
                r = metrics.rouge(outs[q], refs)
                score = f"ROUGE-1/2/Lsum {r['rouge1']:.2f}/{r['rouge2']:.2f}/{r['rougeLsum']:.2f}"
            print(f"| {name} | {q} | {size_mb(os.path.join(root, q)):.1f} | {score} | "
                  f"{len(sources) / min(times[q]):.1f} |", flush=True)


if __name__ == "__main__":
    main()
