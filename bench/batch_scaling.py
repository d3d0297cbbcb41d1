"""How an ONNX export's decoding loop scales with the batch: sentences/s at several batch
sizes, on in-memory ids (no tokenization, no server), and each batch's mean output length
over its longest: the share of row-steps that make a token in a loop that keeps ended rows
until the longest ends (zoo's greedy loop drops them since the export that added this bench).

This is the ceiling that `zoo serve`'s micro-batching can reach with that export
(bench/serve_load.py measures the server itself). Runs onnxruntime only; TensorFlow is not
imported.

Usage:
    python bench/batch_scaling.py runs/m30k-onnx --batch-sizes 1 8 64 --seconds 6
"""

import argparse
import gzip
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TEXTS = os.path.join(HERE, "..", "..", "shared", "data", "multi30k",
                             "test_2016_flickr.de.gz")


def pad(rows):
    ids = np.zeros((len(rows), max(map(len, rows))), np.int32)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
    return ids


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("export", help="an ONNX export directory (zoo export --format onnx)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--seconds", type=float, default=6.0, help="timed per batch size")
    p.add_argument("--texts", default=DEFAULT_TEXTS, help="one text per line (.gz allowed)")
    p.add_argument("--limit", type=int, default=256, help="distinct texts used")
    args = p.parse_args(argv)

    import onnxruntime as ort
    import sentencepiece as spm

    with open(os.path.join(args.export, "manifest.json")) as f:
        manifest = json.load(f)
    if manifest["format"] != "onnx":
        sys.exit(f"{args.export}: an ONNX export is needed, this one is {manifest['format']}")
    sp = spm.SentencePieceProcessor(
        model_file=os.path.join(args.export, manifest["tokenizers"]["source"]))
    eos = manifest["vocab"]["special_ids"]["eos"]
    keep = manifest["shapes"]["max_source_length"] - 1
    opener = gzip.open if args.texts.endswith(".gz") else open
    with opener(args.texts, "rt", encoding="utf-8") as f:
        texts = [line.strip() for line in f if line.strip()][:args.limit]
    ids = [sp.encode(t)[:keep] + [eos] for t in texts]
    session = ort.InferenceSession(os.path.join(args.export, manifest["files"]["generate"]),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    print(f"\n{args.export}: greedy.onnx, {len(ids)} sentences of {args.texts}\n")
    print("| batch | sentences/s | mean / longest output |")
    print("|---|---|---|")
    for b in args.batch_sizes:
        batches = [pad(ids[i:i + b]) for i in range(0, len(ids), b)]
        useful = []
        for x in batches:  # warm-up, and mean over longest output length
            lengths = dict(zip(names, session.run(None, {"source_ids": x})))["lengths"]
            useful.append(lengths.sum() / (lengths.size * lengths.max()))
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            for x in batches:
                session.run(None, {"source_ids": x})
                done += len(x)
                if time.perf_counter() - start >= args.seconds:
                    break
        rate = done / (time.perf_counter() - start)
        print(f"| {b} | {rate:.1f} | {100 * np.mean(useful):.0f} % |", flush=True)


if __name__ == "__main__":
    main()
