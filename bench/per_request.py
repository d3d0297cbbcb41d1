"""What taking decoding settings per call costs an ONNX export (issue 39).

One model is exported to ONNX twice: by the code before the change (``--code``, whose loops
had the settings fixed at export) and by this checkout (loops that take them as inputs). Both
exports then decode the same sentences in one process, in alternating rounds (the host's speed
drifts), greedy and with beam search, at batch 1 and 64: the median sentences/s of each and
their ratio. The tokens are compared too (they must be identical at the default settings)::

    python bench/per_request.py --model runs/tokens/model --code /tmp/base

``--no-repeat-ngram-size 3`` exports both with n-gram blocking (then the per-call export also
takes its size per call). With ``--labels`` it compares any two checkouts' ONNX exports the
same way (the greedy loop
merge of issue 34 was measured so: ``--labels "three loops" "one loop"``).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)


def export(model, out, code, ngram=0):
    from checkout import CLI, env, python

    subprocess.run(python(CLI) + ["export", "--model", model, "--format", "onnx", "--out", out,
                                  "--no-repeat-ngram-size", str(ngram)],
                   check=True, env=env(code), cwd=code, stdout=subprocess.DEVNULL)


def sentences(n):
    sys.path.insert(0, ROOT)
    from zoo.data import anki_spa_eng_pairs

    return [s for s, _ in list(anki_spa_eng_pairs())[::300]][:n]


def measure(paths, texts, rounds, threads):
    """``{(name, strategy, batch): [sentences/s per round]}`` and whether tokens agree."""
    import numpy as np

    from zoo.serving import load

    runners = {name: load(path, intra_threads=threads or 0) for name, path in paths.items()}
    ids, _ = next(iter(runners.values())).encode_texts(texts)
    same, speed = True, {}
    for strategy in ("greedy", "beam"):
        outs = {n: r.generate(ids, strategy)["tokens"] for n, r in runners.items()}
        a, b = outs.values()
        same &= bool(np.array_equal(a, b))
        for batch in (1, 64):
            chunks = [ids[i:i + batch] for i in range(0, min(len(ids), 64), batch)]
            for r_i in range(rounds):
                order = list(runners) if r_i % 2 == 0 else list(reversed(runners))
                for name in order:
                    start = time.perf_counter()
                    for c in chunks:
                        runners[name].generate(c, strategy)
                    rate = sum(len(c) for c in chunks) / (time.perf_counter() - start)
                    speed.setdefault((name, strategy, batch), []).append(rate)
    return speed, same


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a model directory")
    p.add_argument("--code", required=True, help="the checkout before the change")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    p.add_argument("--no-repeat-ngram-size", type=int, default=0,
                   help="both exports' n-gram blocking (the default of a call)")
    p.add_argument("--labels", nargs=2, default=("fixed at export", "per call"),
                   metavar=("BEFORE", "AFTER"), help="the two columns' names")
    args = p.parse_args(argv)
    sys.path.insert(0, HERE)
    from quality import hardware

    with tempfile.TemporaryDirectory() as work:
        paths = {"fixed": os.path.join(work, "fixed"), "per_call": os.path.join(work, "per")}
        export(os.path.abspath(args.model), paths["fixed"], os.path.abspath(args.code),
               args.no_repeat_ngram_size)
        export(os.path.abspath(args.model), paths["per_call"], ROOT, args.no_repeat_ngram_size)
        speed, same = measure(paths, sentences(64), args.rounds, args.threads)
    print(f"{hardware()}; median of {args.rounds} alternating rounds; tokens identical at "
          f"the default settings: {same}")
    before, after = args.labels
    print(f"| strategy | batch | {before} (sent/s) | {after} (sent/s) | {after} / {before} |")
    print("|---|---|---|---|---|")
    rows = []
    for strategy in ("greedy", "beam"):
        for batch in (1, 64):
            f = statistics.median(speed[("fixed", strategy, batch)])
            q = statistics.median(speed[("per_call", strategy, batch)])
            print(f"| {strategy} | {batch} | {f:.1f} | {q:.1f} | {q / f:.3f} |")
            rows.append({"strategy": strategy, "batch": batch, before: f, after: q})
    print(json.dumps({"identical": same, "rows": rows}))


if __name__ == "__main__":
    main()
