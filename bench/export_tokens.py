"""The outputs each export of one model gives on a fixed set of 200 Anki sentences.

Run it once with the code before a change and once after; the two JSON files must be equal::

    python bench/export_tokens.py --model runs/tokens/model --out before.json --code /tmp/base
    python bench/export_tokens.py --model runs/tokens/model --out after.json
    python bench/export_tokens.py --compare before.json after.json

``--model`` is a model directory (``zoo train`` writes one; ``python -c "import zoo.models as m;
m.load('anki_es_en').save('runs/tokens/model')"`` writes one from a shipped checkpoint). Each format is exported with the code under ``--code`` (default:
this checkout) through its ``zoo export`` command, and run by ``zoo.serving.load``, greedy and
with beam search where the format has it; each output is its text and its score (3 decimals).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
FORMATS = ("savedmodel", "onnx", "litert", "ctranslate2")


def sentences(n=200):
    """Every 500th Spanish sentence of the embedded Anki file: fixed, spread out."""
    sys.path.insert(0, ROOT)
    from zoo.data import anki_spa_eng_pairs

    pairs = list(anki_spa_eng_pairs())
    return [s for s, _ in pairs[::500]][:n]


def export_all(model, work, code):
    from checkout import CLI, env, python

    out = {}
    for fmt in FORMATS:
        path = os.path.join(work, fmt)
        extra = ["--quantize", "float32"] if fmt == "litert" else []
        subprocess.run(python(CLI) + ["export", "--model", model, "--format", fmt,
                                            "--out", path] + extra,
                       check=True, env=env(code), cwd=code)
        out[fmt] = path
    return out


def run_all(paths, texts, code):
    from checkout import env, python

    script = ("import json, sys; from zoo.serving import load\n"
              "paths, texts = json.load(sys.stdin)\n"
              "out = {}\n"
              "for fmt, path in paths.items():\n"
              "    r = load(path)\n"
              "    for s in ('greedy', 'beam'):\n"
              "        if s in r.strategies:\n"
              "            res = r.run_texts(texts, s)\n"
              "            out[f'{fmt}/{s}'] = [[t, round(x, 3)] for t, x in\n"
              "                                 zip(res['text'], res['scores'])]\n"
              "print(json.dumps(out))\n")
    done = subprocess.run(python(script), input=json.dumps([paths, texts]),
                          capture_output=True, text=True, env=env(code), cwd=code)
    if done.returncode:
        sys.exit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(a, b):
    first, second = (json.load(open(p)) for p in (a, b))
    print(f"| export/strategy | sentences | identical |\n|---|---|---|")
    same = True
    for key in sorted(set(first) | set(second)):
        x, y = first.get(key), second.get(key)
        n = sum(p == q for p, q in zip(x or [], y or []))
        same &= x == y
        print(f"| {key} | {len(x or y)} | {n} |")
    print("identical" if same else "DIFFERENT")
    return 0 if same else 1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model")
    p.add_argument("--out")
    p.add_argument("--code", default=ROOT, help="the checkout whose zoo exports and runs")
    p.add_argument("--compare", nargs=2, metavar="JSON")
    args = p.parse_args(argv)
    if args.compare:
        return compare(*args.compare)
    texts = sentences()
    with tempfile.TemporaryDirectory() as work:
        paths = export_all(os.path.abspath(args.model), work, os.path.abspath(args.code))
        tokens = run_all(paths, texts, os.path.abspath(args.code))
    json.dump(tokens, open(args.out, "w"))
    print({k: len(v) for k, v in tokens.items()})


if __name__ == "__main__":
    sys.exit(main())
