"""What whole-word copying (``copy_whole_words``) changes in a summarizer's output (issue 36).

One summarizer decodes the DialogSum dev dialogues with its task's default decoding, without
and then with the rule: ROUGE (rouge-score, stemmed), the readability check
(invented words, malformed tags: ``zoo.metrics.readability`` against the training summaries'
words), the seconds taken (each graph traced first), and a few dialogues whose summaries
differ::

    python bench/whole_words.py --model dialogsum_summarizer
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
RESULTS = os.path.join(HERE, "results", "whole_words.jsonl")


def score(model, src, ref, known):
    from zoo import metrics

    t0 = time.time()
    hyps = model.summarize(src)
    seconds = time.time() - t0
    return hyps, {**metrics.rouge(hyps, ref), **metrics.readability(hyps, src, known),
                  "seconds": seconds}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="dialogsum_summarizer", help="a preset or directory")
    p.add_argument("--limit", type=int, default=None, help="first N dev dialogues")
    p.add_argument("--examples", type=int, default=5)
    args = p.parse_args(argv)
    sys.path.insert(0, HERE)
    import zoo.models
    from checkpoints import dialogsum_splits
    from quality import hardware
    from zoo import metrics

    train, dev, _ = dialogsum_splits()
    dev = dev[:args.limit] if args.limit else dev
    src, ref = [s for s, _ in dev], [t for _, t in dev]
    known = metrics.word_list([t for _, t in train])
    model = zoo.models.load(args.model)
    out = {}
    for setting in (False, True):
        model.copy_whole_words = setting
        model.summarize(src[:8])  # traces the decoding graph outside the clock
        out[setting] = score(model, src, ref, known)
    print(f"{hardware()}; {len(src)} DialogSum dev dialogues; {args.model}, the task's "
          f"default decoding")
    print("| copy_whole_words | R1 / R2 / L / Lsum | invented words % | malformed tags % | s |")
    print("|---|---|---|---|---|")
    rows = []
    for setting, (_, r) in out.items():
        print(f"| {setting} | {r['rouge1']:.2f} / {r['rouge2']:.2f} / {r['rougeL']:.2f} / "
              f"{r['rougeLsum']:.2f} | {r['invented']:.2f} | {r['malformed_tags']:.2f} | "
              f"{r['seconds']:.0f} |")
        rows.append({"copy_whole_words": setting, **r})
    differ = [i for i, (a, b) in enumerate(zip(out[False][0], out[True][0])) if a != b]
    print(f"\n{len(differ)} of {len(src)} summaries differ; the first {args.examples}:")
    for i in differ[:args.examples]:
        print(f"- without: {out[False][0][i]}\n  with:    {out[True][0][i]}")
    with open(RESULTS, "a") as f:
        f.write(json.dumps({"model": args.model, "hardware": hardware(), "n": len(src),
                            "differ": len(differ), "rows": rows}) + "\n")


if __name__ == "__main__":
    main()
