"""zoo against its peers at equal size, measured side by side in one run.

Peers, each written in its own idiom (the code below follows their documentation):

* KerasHub ``TransformerEncoder``/``TransformerDecoder`` with ``TokenAndPositionEmbedding``
  (the keras.io English-Spanish example), and its ``GreedySampler``/``BeamSampler`` over a
  key/value cache (``TransformerDecoder(..., self_attention_cache=...)``).
* The TensorFlow "NMT with attention" tutorial: bi-GRU (summed) encoder, GRU decoder, one-head
  ``MultiHeadAttention`` after the GRU, ``Add`` + ``LayerNormalization``.
* CTranslate2 (float32 and int8) on zoo's own Transformer weights, through
  ``zoo export --format ctranslate2``.

What it prints (and appends to ``bench/results/peers.jsonl``):

1. Training: target tokens/s of ``train_on_batch`` on the same Multi30k batches (64 pairs,
   lengths as they come, one 8,000-piece SentencePiece vocabulary), after warm-up, and the
   peak resident memory of each peer's process; zoo / peer ratios.
2. The model FLOPs utilisation of zoo's Transformer training step: its matmul FLOPs per step
   (forward x 3) over the time, against this machine's measured float32 matmul throughput.
3. Decoding: sentences/s for greedy and beam 4, batch 1 and 64, for zoo's Keras ``generate``,
   KerasHub's samplers, and zoo's exports (SavedModel, ONNX Runtime, LiteRT, CTranslate2
   float32 and int8) on the same weights.

Each measurement runs in its own process (peak memory is per process; no peer warms another's
caches). Untrained weights are fine for speed: decoding is forced to a fixed number of steps
(no early end), the same for every engine.

Usage:
    python bench/peers.py --quick          # < 10 minutes on 2 cores
    python bench/peers.py                  # more batches and seconds per figure
    python bench/peers.py --only train     # one section: train, mfu or decode
"""

import argparse
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(ROOT, "..", "shared", "data", "multi30k")
RESULTS = os.path.join(HERE, "results", "peers.jsonl")
VOCAB = 8000
BATCH = 64

# The shapes compared: (peer, zoo preset + overrides) at equal size.
TRANSFORMER = {"dim": 256, "num_layers": 3, "num_heads": 8, "ff_dim": 512}
RNN_UNITS = 256


# ---------------------------------------------------------------------------- data
def _read(path, limit=None):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    return lines[:limit] if limit else lines


def workdir():
    """A cache directory for the tokenizer, batches and exports shared by the child runs."""
    path = os.path.join(tempfile.gettempdir(), "zoo-bench-peers")
    os.makedirs(path, exist_ok=True)
    return path


def prepare_data(num_batches, seed=0):
    """Multi30k train batches of ``BATCH`` pairs (random draws, lengths as they come) as id
    arrays, plus the test sources for decoding; cached in ``workdir()``."""
    import numpy as np

    cache = os.path.join(workdir(), f"data-{num_batches}-{seed}.npz")
    tok_path = os.path.join(workdir(), "spm.model")
    if os.path.exists(cache) and os.path.exists(tok_path):
        return cache, tok_path
    from zoo.data.tokenizer import SentencePieceTokenizer

    de, en = _read(os.path.join(DATA, "train.de.gz")), _read(os.path.join(DATA, "train.en.gz"))
    if not os.path.exists(tok_path):
        SentencePieceTokenizer.train(de + en, vocab_size=VOCAB).save(tok_path)
    tok = SentencePieceTokenizer.load(tok_path)
    sp = tok.processor
    rng = np.random.default_rng(seed)
    arrays = {}
    for b in range(num_batches):
        rows = rng.choice(len(de), BATCH, replace=False)
        src = [sp.encode(de[i]) + [3] for i in rows]
        tgt = [[2] + sp.encode(en[i]) + [3] for i in rows]
        arrays[f"src{b}"] = _pad(src)
        arrays[f"tgt{b}"] = _pad(tgt)
    test = [sp.encode(s) + [3] for s in _read(os.path.join(DATA, "test_2016_flickr.de.gz"))]
    arrays["test"] = _pad(test)
    arrays["test_lengths"] = np.array([len(t) for t in test])
    np.savez(cache, **arrays)
    return cache, tok_path


def _pad(rows):
    import numpy as np

    out = np.zeros((len(rows), max(map(len, rows))), np.int32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def load_batches(cache):
    import numpy as np

    data = np.load(cache)
    n = len([k for k in data.files if k.startswith("src")])
    return [(data[f"src{b}"], data[f"tgt{b}"]) for b in range(n)], data


# ---------------------------------------------------------------------------- models
def zoo_transformer():
    import zoo

    return zoo.models.Translator.from_preset(
        "transformer_small", vocab_size=VOCAB, decoder={"tie_embeddings": False},
        dropout=0.1, **TRANSFORMER)


def zoo_rnn():
    import zoo

    return zoo.models.Translator.from_preset(
        "rnn_luong", vocab_size=VOCAB,
        encoder={"embedding_dim": RNN_UNITS, "units": RNN_UNITS, "dropout": 0.0},
        decoder={"embedding_dim": RNN_UNITS, "units": RNN_UNITS, "dropout": 0.0,
                 "attention": {"class_name": "multi_head", "config": {"num_heads": 1}},
                 "attention_position": "after", "input_feeding": False, "bridge": False})


def keras_hub_transformer():
    """The keras.io "English-to-Spanish translation with KerasHub" model at zoo's shape."""
    import keras
    import keras_hub

    d, heads, ffn, layers = (TRANSFORMER[k] for k in ("dim", "num_heads", "ff_dim",
                                                      "num_layers"))
    enc_in = keras.Input((None,), dtype="int32", name="encoder_inputs")
    x = keras_hub.layers.TokenAndPositionEmbedding(VOCAB, 256, d, mask_zero=True)(enc_in)
    for _ in range(layers):
        x = keras_hub.layers.TransformerEncoder(ffn, heads, dropout=0.1)(x)
    dec_in = keras.Input((None,), dtype="int32", name="decoder_inputs")
    y = keras_hub.layers.TokenAndPositionEmbedding(VOCAB, 256, d, mask_zero=True)(dec_in)
    for _ in range(layers):
        y = keras_hub.layers.TransformerDecoder(ffn, heads, dropout=0.1)(
            y, encoder_sequence=x)
    out = keras.layers.Dense(VOCAB)(keras.layers.Dropout(0.1)(y))
    return keras.Model([enc_in, dec_in], out)


def tutorial_rnn():
    """The TensorFlow "Neural machine translation with attention" tutorial's model."""
    import keras
    import tensorflow as tf

    units = RNN_UNITS

    class Encoder(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.embedding = keras.layers.Embedding(VOCAB, units, mask_zero=True)
            self.rnn = keras.layers.Bidirectional(
                keras.layers.GRU(units, return_sequences=True,
                                 recurrent_initializer="glorot_uniform"), merge_mode="sum")

        def call(self, x):
            return self.rnn(self.embedding(x))

    class CrossAttention(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.mha = keras.layers.MultiHeadAttention(key_dim=units, num_heads=1)
            self.layernorm = keras.layers.LayerNormalization()
            self.add = keras.layers.Add()

        def call(self, x, context):
            attn = self.mha(query=x, value=context)
            return self.layernorm(self.add([x, attn]))

    class Decoder(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.embedding = keras.layers.Embedding(VOCAB, units, mask_zero=True)
            self.rnn = keras.layers.GRU(units, return_sequences=True, return_state=True,
                                        recurrent_initializer="glorot_uniform")
            self.attention = CrossAttention()
            self.output_layer = keras.layers.Dense(VOCAB)

        def call(self, context, x):
            x = self.embedding(x)
            x, _ = self.rnn(x)
            return self.output_layer(self.attention(x, context))

    class Translator(keras.Model):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = Encoder(), Decoder()

        def call(self, inputs):
            context, x = inputs
            return self.decoder(self.encoder(context), x)

    def masked_loss(y_true, y_pred):
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")(
            y_true, y_pred)
        mask = tf.cast(y_true != 0, loss.dtype)
        return tf.reduce_sum(loss * mask) / tf.reduce_sum(mask)

    return Translator(), masked_loss


def compiled(name):
    """(model, x(src, tgt_in), y) for one trainer name, compiled as its peer does."""
    import keras

    if name in ("zoo_transformer", "zoo_rnn"):
        model = zoo_transformer() if name == "zoo_transformer" else zoo_rnn()
        model.compile(learning_rate=1e-3, label_smoothing=0.0)
        return model, lambda s, t: {"source": s, "target": t}
    if name == "keras_hub_transformer":
        model = keras_hub_transformer()
        model.compile(keras.optimizers.Adam(1e-3, clipnorm=1.0),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                                 ignore_class=0))
        return model, lambda s, t: [s, t]
    if name == "tutorial_rnn":
        model, loss = tutorial_rnn()
        model.compile(keras.optimizers.Adam(1e-3, clipnorm=1.0), loss)
        return model, lambda s, t: (s, t)
    raise ValueError(name)


TRAINERS = {"transformer": ("zoo_transformer", "keras_hub_transformer"),
            "rnn": ("zoo_rnn", "tutorial_rnn")}


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_train(name, cache, seconds, warmup):
    """Trains ``name`` on the cached batches: target tokens/s and peak memory."""
    import numpy as np

    batches, _ = load_batches(cache)
    model, make_x = compiled(name)
    for s, t in batches[:warmup]:
        model.train_on_batch(make_x(s, t[:, :-1]), t[:, 1:])
    tokens, steps, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds or steps < 2:
        s, t = batches[(warmup + steps) % len(batches)]
        model.train_on_batch(make_x(s, t[:, :-1]), t[:, 1:])
        tokens += int(np.count_nonzero(t[:, 1:]))
        steps += 1
    elapsed = time.perf_counter() - start
    return {"trainer": name, "tokens_per_s": tokens / elapsed, "steps": steps,
            "ms_per_step": 1000 * elapsed / steps, "params": model.count_params(),
            "peak_rss_mb": peak_rss_mb()}


# ---------------------------------------------------------------------------- driver
def run_child(args):
    """Runs one measurement in a fresh process; returns its JSON record."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(args)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        sys.stderr.write(out.stderr[-3000:])
        raise SystemExit(f"child {args} failed ({out.returncode})")
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_main(spec):
    args = json.loads(spec)
    kind = args.pop("kind")
    fn = {"train": child_train}[kind]
    print(json.dumps(fn(**args)))


def hardware():
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer batches and seconds (<10 min)")
    p.add_argument("--only", choices=["train", "mfu", "decode"], action="append")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child_main(args.child)
    sections = args.only or ["train", "mfu", "decode"]
    seconds = 20 if args.quick else 60
    cache, tok = prepare_data(24 if args.quick else 64)
    records = []
    if "train" in sections:
        print(f"\nTraining, target tokens/s ({BATCH} pairs per batch, {hardware()})")
        print(f"{'shape':12} {'zoo':>9} {'peer':>9} {'zoo/peer':>9} {'zoo MB':>8} "
              f"{'peer MB':>8}  peer")
        for shape, (mine, peer) in TRAINERS.items():
            a = run_child({"kind": "train", "name": mine, "cache": cache,
                           "seconds": seconds, "warmup": 3})
            b = run_child({"kind": "train", "name": peer, "cache": cache,
                           "seconds": seconds, "warmup": 3})
            ratio = a["tokens_per_s"] / b["tokens_per_s"]
            print(f"{shape:12} {a['tokens_per_s']:9.0f} {b['tokens_per_s']:9.0f} "
                  f"{ratio:8.2f}x {a['peak_rss_mb']:8.0f} {b['peak_rss_mb']:8.0f}  {peer}")
            records.append({"section": "train", "shape": shape, "zoo": a, "peer": b,
                            "ratio": ratio})
    _append(records, args)


def _append(records, args):
    if not records:
        return
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    with open(RESULTS, "a") as f:
        for r in records:
            f.write(json.dumps({"time": stamp, "hardware": hardware(),
                                "quick": bool(args.quick), **r}) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
