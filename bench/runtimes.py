"""Runtimes of one trained translator: Keras, SavedModel, ONNX Runtime, LiteRT (fp32/16/int8).

Exports the model to every format, then for each artifact: greedy-decoding latency at batch 1
(median over single sentences) and batch 32, throughput over the whole test set, file size,
sacreBLEU on Multi30k test_2016_flickr and agreement of its outputs with Keras's.

Usage:
    python bench/runtimes.py --model runs/m30k_rnn_bahdanau      # a `zoo train` / quality.py dir
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))


def size_mb(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path)
                   for f in fs) / 2 ** 20
    return os.path.getsize(path) / 2 ** 20


def time_runtime(translate, texts, lat_n):
    """translate(list of str) -> list of str. Returns (lat1 ms, lat32 ms, sent/s, outputs)."""
    translate(texts[:2])  # warm-up
    singles = []
    for t in texts[:lat_n]:
        s = time.perf_counter()
        translate([t])
        singles.append((time.perf_counter() - s) * 1000)
    s = time.perf_counter()
    translate(texts[:32])
    lat32 = (time.perf_counter() - s) * 1000
    s = time.perf_counter()
    outs = []
    for i in range(0, len(texts), 32):
        outs.extend(translate(texts[i:i + 32]))
    return statistics.median(singles), lat32, len(texts) / (time.perf_counter() - s), outs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data",
                                                  "multi30k"))
    p.add_argument("--limit", type=int, default=None, help="test sentences (default all)")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--max-source-length", type=int, default=64)
    p.add_argument("--latency-sentences", type=int, default=50)
    p.add_argument("--out", default=None, help="keep the exports here")
    p.add_argument("--results", default=os.path.join(HERE, "results", "runtimes.jsonl"))
    args = p.parse_args(argv)

    import numpy as np

    from zoo.data import read_parallel
    from zoo.export import export_savedmodel
    from zoo.export.litert import export_litert
    from zoo.export.onnx import export_onnx
    from zoo.metrics import bleu
    from zoo.models import Translator

    test = read_parallel(f"{args.data}/test_2016_flickr.de.gz",
                         f"{args.data}/test_2016_flickr.en.gz", limit=args.limit)
    texts, refs = test.sources, test.targets
    model = Translator.load(args.model)
    out = args.out or tempfile.mkdtemp(prefix="zoo-runtimes-")
    L = args.max_length
    t = time.time()
    export_savedmodel(model, f"{out}/savedmodel", max_length=L)
    export_onnx(model, f"{out}/onnx", max_length=L)
    export_litert(model, f"{out}/litert1", batch_size=1, max_source_length=args.max_source_length,
                  max_length=L)
    export_litert(model, f"{out}/litert32", batch_size=32,
                  max_source_length=args.max_source_length, max_length=L,
                  quantizations=["float32"])
    export_seconds = time.time() - t

    from zoo.serving import load

    runtimes = {}
    runtimes["keras"] = (lambda xs: model.translate(xs, batch_size=32, max_length=L),
                         None)
    # One runner per export, as a deployment runs it (zoo.serving.load picks it).
    sm = load(f"{out}/savedmodel")
    runtimes["savedmodel"] = (sm.generate_text, f"{out}/savedmodel")
    ox = load(f"{out}/onnx")
    runtimes["onnxruntime"] = (ox.generate_text, f"{out}/onnx/greedy.onnx")
    for q in ("float32", "float16", "int8"):
        runtimes[f"litert {q}"] = (load(f"{out}/litert1", quantization=q).generate_text,
                                   f"{out}/litert1/model_{q}.tflite")
    runtimes["litert float32 b32"] = (load(f"{out}/litert32").generate_text,
                                      f"{out}/litert32/model_float32.tflite")

    rows, keras_out = [], None
    for name, (fn, path) in runtimes.items():
        lat1, lat32, tput, outs = time_runtime(fn, texts, args.latency_sentences)
        if name == "keras":
            keras_out = outs
        agree = float(np.mean([a == b for a, b in zip(outs, keras_out)]))
        rows.append({"runtime": name, "latency_b1_ms": round(lat1, 2),
                     "latency_b32_ms": round(lat32, 1), "sentences_per_s": round(tput, 1),
                     "size_mb": round(size_mb(path), 1) if path else None,
                     "bleu": round(bleu(outs, refs), 2), "agreement_with_keras": agree})
    hw = f"{platform.machine()} CPU, {os.cpu_count()} cores"
    print(f"\n{args.model}: Multi30k test_2016_flickr ({len(texts)} sentences), greedy, "
          f"max {L} tokens; {hw}; exports took {export_seconds:.0f} s")
    hdr = (f"{'runtime':<20}{'b1 ms':>8}{'b32 ms':>9}{'sent/s':>9}{'MB':>7}{'BLEU':>7}"
           f"{'same as Keras':>15}")
    print(hdr + "\n" + "-" * len(hdr))
    for r in rows:
        print(f"{r['runtime']:<20}{r['latency_b1_ms']:>8.1f}{r['latency_b32_ms']:>9.1f}"
              f"{r['sentences_per_s']:>9.1f}"
              f"{(format(r['size_mb'], '.1f') if r['size_mb'] else '-'):>7}{r['bleu']:>7.2f}"
              f"{r['agreement_with_keras']:>14.1%}")
    os.makedirs(os.path.dirname(args.results), exist_ok=True)
    with open(args.results, "a") as f:
        f.write(json.dumps({"model": args.model, "hardware": hw, "rows": rows,
                            "export_seconds": round(export_seconds, 1),
                            "command": "python bench/runtimes.py " + " ".join(
                                argv or sys.argv[1:])}) + "\n")


if __name__ == "__main__":
    main()
