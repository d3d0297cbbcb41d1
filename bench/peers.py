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
   (forward x 3, at the real target and source positions: padding is not model work) over the
   time, against this machine's float32 matmul throughput measured in the same process, in
   alternating rounds with the step.
3. Decoding: sentences/s for greedy and beam 4, batch 1 and 64, for zoo's Keras ``generate``,
   KerasHub's samplers, and zoo's exports (SavedModel, ONNX Runtime, LiteRT, CTranslate2
   float32 and int8) on the same weights.

Each measurement runs in its own process (peak memory is per process; no peer warms another's
caches), except the engines of each decoding goal (zoo's compiled ``generate`` and KerasHub's
samplers; zoo's ONNX runner and CTranslate2 float32): those are timed in one process, in
alternating rounds, so that they see the same moments of a host whose speed drifts (their
peak memory is the group's). Untrained weights are fine for speed: decoding is forced to a
fixed number of steps (no early end), the same for every engine.

Usage:
    python bench/peers.py --quick          # 13 minutes on 2 cores (one pass, 5 s per figure)
    python bench/peers.py                  # 48 batches x 2 passes, 20 s per figure
    python bench/peers.py --only train     # one section: train, mfu or decode
    python bench/peers.py --replot         # redraw docs/img/peers.png from the last run
"""

import argparse
import gzip
import json
import os
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
# The engines of each decoding goal, timed together (child_decode_interleaved): zoo's
# compiled generate at least 2x KerasHub's samplers; zoo's ONNX runner within 1.2x of
# CTranslate2 float32.
GOALS = (("zoo keras", "zoo keras xla", "keras_hub", "keras_hub xla"),
         ("zoo onnx", "zoo ctranslate2 float32"),
         ("zoo onnx int8", "zoo ctranslate2 int8"))
THREADED = ("zoo onnx", "zoo onnx int8", "zoo ctranslate2 float32", "zoo ctranslate2 int8")


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


def child_train(name, cache, passes, warmup):
    """Trains ``name`` on the cached batches: target tokens/s over ``passes`` whole passes
    (every trainer sees exactly the same batches in the same order), and peak memory."""
    import numpy as np

    batches, _ = load_batches(cache)
    model, make_x = compiled(name)
    for s, t in batches[-warmup:]:
        model.train_on_batch(make_x(s, t[:, :-1]), t[:, 1:])
    tokens, steps, start = 0, 0, time.perf_counter()
    for _ in range(passes):
        for s, t in batches:
            model.train_on_batch(make_x(s, t[:, :-1]), t[:, 1:])
            tokens += int(np.count_nonzero(t[:, 1:]))
            steps += 1
    elapsed = time.perf_counter() - start
    return {"trainer": name, "tokens_per_s": tokens / elapsed, "steps": steps,
            "ms_per_step": 1000 * elapsed / steps, "params": model.count_params(),
            "peak_rss_mb": peak_rss_mb()}


def child_train_fair(names, cache, passes, rounds):
    """The trainers of one shape in one process, timed fairly (issue 39): each is first
    warmed on every batch, so it has met every distinct shape before any clock starts (its
    retracing is then out of the timing); a second warm pass is timed too, to show tracing
    is done (it matches the rounds). Then ``rounds`` rounds, the trainers in alternating
    order within each, ``passes`` whole passes each; the median round per trainer."""
    import numpy as np

    batches, _ = load_batches(cache)
    tokens = sum(int(np.count_nonzero(t[:, 1:])) for _, t in batches)
    models = {name: compiled(name) for name in names}

    def one_pass(name):
        model, make_x = models[name]
        start = time.perf_counter()
        for s, t in batches:
            model.train_on_batch(make_x(s, t[:, :-1]), t[:, 1:])
        return tokens / (time.perf_counter() - start)

    first = {name: one_pass(name) for name in names}  # meets every shape
    second = {name: one_pass(name) for name in names}
    timed = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else list(reversed(names))):
            timed[name].append(sum(one_pass(name) for _ in range(passes)) / passes)
    return {name: {"trainer": name, "tokens_per_s": float(np.median(timed[name])),
                   "rounds": timed[name],
                   "first_pass": first[name], "second_pass": second[name],
                   "params": models[name][0].count_params()} for name in names}


# ---------------------------------------------------------------------------- MFU
def _matmul_flops():
    """This machine's float32 matmul throughput now: the best of square products."""
    import tensorflow as tf

    best = 0.0
    for n in (1024, 2048):
        a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
        fn = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
        fn(a, b)
        reps = 8 if n == 1024 else 3
        start = time.perf_counter()
        for _ in range(reps):
            fn(a, b).numpy()
        best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - start))
    return best


def child_mfu(cache, passes, warmup, rounds=3):
    """The matmul throughput and zoo's Transformer training step, in one process, in
    alternating rounds (the best of each): MFU is their ratio, and the host's speed drifts
    by 10-30% over a minute (measured in separate processes, the same code gave 34% in one
    run and 41% in another)."""
    batches, _ = load_batches(cache)
    model, make_x = compiled("zoo_transformer")
    for s, t in batches[-warmup:]:
        model.train_on_batch(make_x(s, t[:, :-1]), t[:, 1:])
    peak, step = 0.0, float("inf")
    for _ in range(rounds):
        peak = max(peak, _matmul_flops())
        start = time.perf_counter()
        for _ in range(passes):
            for s, t in batches:
                model.train_on_batch(make_x(s, t[:, :-1]), t[:, 1:])
        step = min(step, (time.perf_counter() - start) / (passes * len(batches)))
    return {"matmul_flops": peak, "ms_per_step": 1000 * step, "rounds": rounds,
            "peak_rss_mb": peak_rss_mb()}


def train_step_flops(src, tgt_in):
    """Model FLOPs of one Transformer training step (forward x 3) on these id arrays: the
    matmuls at the real (non-padding) positions, the model's work (zoo's step computes
    nothing else: it skips the padding, see zoo.attention.packing), and the attention
    products over each batch's padded (T, T) grid, as the step computes them."""
    import numpy as np

    d, f, n = TRANSFORMER["dim"], TRANSFORMER["ff_dim"], TRANSFORMER["num_layers"]
    b, s_len = src.shape
    t_len = tgt_in.shape[1]
    s_pos, t_pos = int(np.count_nonzero(src)), int(np.count_nonzero(tgt_in))
    enc = n * (s_pos * (4 * d * d + 2 * d * f) + 2 * b * s_len * s_len * d)
    dec = n * (t_pos * (4 * d * d + 2 * d * d + 2 * d * f) + s_pos * 2 * d * d
               + 2 * b * t_len * t_len * d + 2 * b * t_len * s_len * d)
    out = t_pos * d * VOCAB
    return 3 * 2 * (enc + dec + out)


# ---------------------------------------------------------------------------- decoding
STEPS = 24  # every engine decodes exactly this many tokens (no early end)


def prepare_exports(cache, tok_path, formats):
    """zoo's Transformer (untrained, seeded) saved once and exported to every format, each
    forced to ``STEPS`` tokens, in ``workdir()``."""
    import keras

    import zoo
    from zoo.data.tokenizer import SentencePieceTokenizer
    from zoo.export import export

    root = os.path.join(workdir(), "exports")
    done = os.path.join(root, "done.json")
    if os.path.exists(done) and set(formats) <= set(json.load(open(done))):
        return {"root": root}
    keras.utils.set_random_seed(0)
    tok = SentencePieceTokenizer.load(tok_path)
    model = zoo.models.Translator.from_preset(
        "transformer_small", tokenizer=tok, decoder={"tie_embeddings": False},
        max_target_length=STEPS, **TRANSFORMER)
    model.build()
    model.save(os.path.join(root, "keras"))
    for fmt in formats:
        kw = {"max_length": STEPS, "overwrite": True}
        if fmt == "litert":
            kw.update(batch_size=1, max_source_length=48, quantizations=["float32"])
        if fmt == "ctranslate2":
            kw.update(beam_size=4)
        else:
            kw["min_length"] = STEPS
        if fmt in ("savedmodel", "onnx", "onnx_int8"):
            kw["beam_size"] = 4
        if fmt == "onnx_int8":  # onnxruntime's dynamic int8 quantization (issue 39)
            kw["quantization"] = "int8"
        export(model, os.path.join(root, fmt), fmt.replace("_int8", ""), **kw)
    json.dump(list(formats), open(done, "w"))
    return {"root": root}


def keras_hub_decoder(batch, src_len):
    """KerasHub's Transformer at zoo's shape with a key/value cache, as its samplers use it
    (``next(prompt, cache, index) -> (logits, hidden, cache)``)."""
    import keras
    import keras_hub
    from keras import ops

    d, heads, ffn, layers = (TRANSFORMER[k] for k in ("dim", "num_heads", "ff_dim",
                                                      "num_layers"))
    keras.utils.set_random_seed(0)
    src_emb = keras_hub.layers.TokenAndPositionEmbedding(VOCAB, 256, d, mask_zero=True)
    encoders = [keras_hub.layers.TransformerEncoder(ffn, heads) for _ in range(layers)]
    tgt_emb = keras_hub.layers.TokenAndPositionEmbedding(VOCAB, 256, d)
    decoders = [keras_hub.layers.TransformerDecoder(ffn, heads) for _ in range(layers)]
    dense = keras.layers.Dense(VOCAB)

    def encode(src):
        x = src_emb(src)
        for layer in encoders:
            x = layer(x, padding_mask=ops.not_equal(src, 0))
        return x

    warm = encode(ops.ones((1, 3), "int32"))  # builds the layers before their caches are read
    for layer in decoders:
        layer(tgt_emb(ops.ones((1, 1), "int32")), encoder_sequence=warm)

    def cross_caches(enc):
        # As KerasHub's BART builds its cache: each layer's encoder keys and values, once.
        return [ops.stack([layer._cross_attention_layer._key_dense(enc),
                           layer._cross_attention_layer._value_dense(enc)], axis=1)
                for layer in decoders]

    def step(token, enc, enc_mask, caches, cross, index):
        x = tgt_emb(token, start_index=index)
        new = []
        for layer, c, cc in zip(decoders, caches, cross):
            x, c, _ = layer(x, encoder_sequence=enc, encoder_padding_mask=enc_mask,
                            self_attention_cache=c, self_attention_cache_update_index=index,
                            cross_attention_cache=cc)
            new.append(c)
        return dense(x)[:, 0], x[:, 0], ops.stack(new, 1)

    return encode, step, cross_caches, layers, heads, d // heads


def _sources(cache, batch):
    """The bench's eight test batches of ``batch`` sources, lengths as they come."""
    import numpy as np

    _, data = load_batches(cache)
    test, lengths = data["test"], data["test_lengths"]
    rows = np.argsort(-lengths)[len(lengths) // 4:][:256]  # lengths as they come, no extremes
    sources = [test[rows[i:i + batch]] for i in range(0, len(rows) - batch + 1, batch)][:8]
    return rows, [s[:, :max(1, int((s != 0).sum(1).max()))] for s in sources]


def _runner(engine, strategy, batch, threads=None):
    """A function decoding one batch of ``batch`` source ids with ``engine`` (exports:
    ``threads`` intra-op threads where given, the runtime's default otherwise)."""
    import numpy as np

    root = os.path.join(workdir(), "exports")
    if engine.startswith("keras_hub"):
        return _keras_hub_runner(strategy, batch, engine.endswith("xla"))
    if engine in ("zoo keras", "zoo keras xla"):
        import zoo

        model = zoo.models.load(os.path.join(root, "keras"))
        xla = engine.endswith("xla")

        def run(ids):
            res = model.generate(ids, strategy, max_length=STEPS, min_length=STEPS,
                                 jit_compile=xla)
            return np.asarray(res.tokens)
        return run
    from zoo.serving import load

    opts = {} if threads is None else {"intra_threads": threads}
    if engine.startswith("zoo ctranslate2"):
        # CTranslate2's own knobs: the forced length, no pad or bos.
        runner = load(os.path.join(root, "ctranslate2"), quantization=engine.split()[-1], **opts)
        beam = 1 if strategy == "greedy" else 4

        def run(ids):
            return runner.translator.translate_batch(
                runner._pieces(ids), beam_size=beam, max_decoding_length=STEPS,
                min_decoding_length=STEPS, length_penalty=0.6 if beam > 1 else 0.0,
                suppress_sequences=[["<pad>"], ["<s>"]])
        return run
    runner = load(os.path.join(root, engine.replace("zoo ", "").replace(" ", "_")), **opts)
    return lambda ids: runner.generate(ids, strategy)["tokens"]


def child_decode(engine, strategy, batch, cache, seconds):
    """Sentences/s of one engine decoding ``STEPS`` tokens for ``batch`` test sources."""
    if engine in THREADED:  # the best of 1 and 2 intra-op threads, as in the goal groups
        return child_decode_interleaved([engine], strategy, batch, cache, seconds, rounds=1)[0]
    rows, sources = _sources(cache, batch)
    if engine == "zoo savedmodel":  # strings in, strings out: tokenization is in its graph
        texts = _read(os.path.join(DATA, "test_2016_flickr.de.gz"))
        sources = [[texts[i] for i in rows[j:j + batch]]
                   for j in range(0, len(rows) - batch + 1, batch)][:8]
        from zoo.serving import load

        runner = load(os.path.join(workdir(), "exports", "savedmodel"))

        def run(batch_texts):
            return runner.generate_text(batch_texts, strategy)
    else:
        run = _runner(engine, strategy, batch)
    return {"engine": engine, "strategy": strategy, "batch": batch,
            "sentences_per_s": _time(run, sources, batch, seconds),
            "peak_rss_mb": peak_rss_mb()}


def child_decode_interleaved(engines, strategy, batch, cache, seconds, rounds=5):
    """Sentences/s of the engines of one goal, in one process, timed in alternation.

    The exports with a thread knob (ONNX Runtime, CTranslate2) run at 1 and 2 intra-op
    threads, the others at their default. Every round times each (engine, threads) setting
    once, for an equal share of ``seconds`` per engine; an engine's figure is its best
    setting's best round. The host's speed drifts by 10-30% over a minute here: engines timed
    one after the other in separate processes gave goal ratios that moved by 10-20% between
    runs of the same code; alternating rounds puts every engine through the same moments.
    Even so, a batch-64 beam cell moved by 10% between two runs of 3 rounds (0.92x, 1.01x):
    5 rounds of shorter windows sample more moments in the same time.
    """
    _, sources = _sources(cache, batch)
    settings = {e: (1, 2) if e in THREADED else (None,) for e in engines}
    runs = {(e, t): _runner(e, strategy, batch, threads=t) for e in engines for t in settings[e]}
    best = {}
    for _ in range(rounds):
        for (e, t), run in runs.items():
            window = seconds / (rounds * len(settings[e]))
            best[(e, t)] = max(best.get((e, t), 0.0), _time(run, sources, batch, window))
    records = []
    for e in engines:
        threads = max(settings[e], key=lambda t: best[(e, t)])
        records.append({"engine": e, "strategy": strategy, "batch": batch,
                        "sentences_per_s": best[(e, threads)], "threads": threads,
                        "interleaved_with": [x for x in engines if x != e],  # [] alone
                        "rounds": rounds, "peak_rss_mb": peak_rss_mb()})
    return records


def _time(run, sources, batch, seconds):
    """Sentences/s of ``run`` over the source batches, after one warm-up call on each: every
    source length is a new shape, which an XLA engine compiles on first sight (the compile
    is not decoding; timed, it dominated the XLA engines' batch-64 figures)."""
    for ids in sources:
        run(ids)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or count < 2 * batch:
        run(sources[(count // batch) % len(sources)])
        count += batch
    return count / (time.perf_counter() - start)


def _keras_hub_runner(strategy, batch, xla):
    import keras_hub
    import tensorflow as tf
    from keras import ops

    encode, step, cross_caches, layers, heads, head_dim = keras_hub_decoder(batch, None)
    sampler = (keras_hub.samplers.GreedySampler() if strategy == "greedy"
               else keras_hub.samplers.BeamSampler(num_beams=4))

    def generate(src):
        enc = encode(src)
        enc_mask = ops.not_equal(src, 0)
        b = ops.shape(src)[0]
        if strategy != "greedy":  # the beam sampler folds beams into the batch
            enc = ops.repeat(enc, 4, axis=0)
            enc_mask = ops.repeat(enc_mask, 4, axis=0)
        cross = cross_caches(enc)
        prompt = ops.concatenate([ops.full((b, 1), 2, "int32"),
                                  ops.zeros((b, STEPS), "int32")], 1)
        cache = ops.zeros((b, layers, 2, STEPS + 1, heads, head_dim))

        def nxt(prompt, cache, index):
            token = prompt[:, index - 1:index]
            n = ops.shape(prompt)[0]
            logits, hidden, cache = step(token, enc[:n], enc_mask[:n],
                                         [cache[:, i] for i in range(layers)],
                                         [c[:n] for c in cross], index - 1)
            return logits, hidden, cache

        return sampler(nxt, prompt, cache=cache, index=1)

    fn = tf.function(generate, jit_compile=xla, reduce_retracing=True)
    return lambda ids: fn(tf.constant(ids)).numpy()


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
    fn = {"train": child_train, "train_fair": child_train_fair, "decode": child_decode,
          "mfu": child_mfu,
          "decode_interleaved": child_decode_interleaved, "exports": prepare_exports}[kind]
    print(json.dumps(fn(**args)))


def hardware():
    """The CPU's model name and vector extension (speeds differ between the machines this
    runs on) and cores."""
    from quality import cpu_name

    return f"{cpu_name()}, {os.cpu_count()} cores"


def fair_train(cache, passes, rounds):
    """Prints and returns the fairly warmed training table (:func:`child_train_fair`)."""
    print(f"\nTraining, fairly warmed: every trainer met every batch shape before the clock; "
          f"median of {rounds} interleaved rounds of {passes} pass(es); target tokens/s "
          f"({BATCH} pairs per batch, {hardware()})")
    print(f"{'shape':12} {'zoo':>9} {'peer':>9} {'zoo/peer':>9} {'zoo 1st/2nd':>12} "
          f"{'peer 1st/2nd':>13}  peer")
    records = []
    for shape, (mine, peer) in TRAINERS.items():
        r = run_child({"kind": "train_fair", "names": [mine, peer], "cache": cache,
                       "passes": passes, "rounds": rounds})
        a, b = r[mine], r[peer]
        ratio = a["tokens_per_s"] / b["tokens_per_s"]
        print(f"{shape:12} {a['tokens_per_s']:9.0f} {b['tokens_per_s']:9.0f} {ratio:8.2f}x "
              f"{a['first_pass']:6.0f}/{a['second_pass']:<5.0f} "
              f"{b['first_pass']:6.0f}/{b['second_pass']:<6.0f}  {peer}")
        records.append({"section": "fair_train", "shape": shape, "zoo": a, "peer": b,
                        "ratio": ratio})
    return records


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="fewer batches and seconds (about 13 min on 2 cores)")
    p.add_argument("--only", choices=["train", "fair_train", "mfu", "decode"],
                   action="append",
                   help="sections (default: train, mfu, decode); fair_train times every "
                        "trainer warmed on every batch shape, interleaved, median of rounds")
    p.add_argument("--rounds", type=int, default=5, help="fair_train: rounds (median)")
    p.add_argument("--plot", default=os.path.join(ROOT, "docs", "img", "peers.png"),
                   help="where the plot goes")
    p.add_argument("--replot", action="store_true",
                   help="only redraw the plot of the last run in bench/results/peers.jsonl")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child_main(args.child)
    if args.replot:
        return plot(latest_runs(), args.plot)
    sections = args.only or ["train", "mfu", "decode"]
    passes = 1 if args.quick else 2
    cache, tok = prepare_data(24 if args.quick else 48)
    records = []
    if "train" in sections:
        print(f"\nTraining, target tokens/s ({BATCH} pairs per batch, {hardware()})")
        print(f"{'shape':12} {'zoo':>9} {'peer':>9} {'zoo/peer':>9} {'zoo MB':>8} "
              f"{'peer MB':>8}  peer")
        for shape, (mine, peer) in TRAINERS.items():
            a = run_child({"kind": "train", "name": mine, "cache": cache,
                           "passes": passes, "warmup": 4})
            b = run_child({"kind": "train", "name": peer, "cache": cache,
                           "passes": passes, "warmup": 4})
            ratio = a["tokens_per_s"] / b["tokens_per_s"]
            print(f"{shape:12} {a['tokens_per_s']:9.0f} {b['tokens_per_s']:9.0f} "
                  f"{ratio:8.2f}x {a['peak_rss_mb']:8.0f} {b['peak_rss_mb']:8.0f}  {peer}")
            records.append({"section": "train", "shape": shape, "zoo": a, "peer": b,
                            "ratio": ratio})
    if "fair_train" in sections:
        records += fair_train(cache, passes, args.rounds)
    if "mfu" in sections:
        tr = run_child({"kind": "mfu", "cache": cache, "passes": passes, "warmup": 4})
        peak = tr["matmul_flops"]
        batches, _ = load_batches(cache)
        flops = sum(train_step_flops(sr, t[:, :-1]) for sr, t in batches) / len(batches)
        achieved = flops / (tr["ms_per_step"] / 1000)
        print(f"\nMFU: zoo Transformer step {flops / 1e9:.1f} GFLOP in {tr['ms_per_step']:.0f} "
              f"ms = {achieved / 1e9:.0f} GFLOP/s; matmul peak {peak / 1e9:.0f} GFLOP/s; "
              f"MFU {achieved / peak:.0%}")
        records.append({"section": "mfu", "step_flops": flops, "ms_per_step": tr["ms_per_step"],
                        "peak_flops": peak, "mfu": achieved / peak})
    if "decode" in sections:
        formats = ["savedmodel", "onnx", "onnx_int8", "litert", "ctranslate2"]
        run_child({"kind": "exports", "cache": cache, "tok_path": tok, "formats": formats})
        engines = {"greedy": ["zoo keras", "zoo keras xla", "keras_hub", "keras_hub xla",
                              "zoo savedmodel", "zoo onnx", "zoo onnx int8", "zoo litert",
                              "zoo ctranslate2 float32", "zoo ctranslate2 int8"],
                   "beam": ["zoo keras", "zoo keras xla", "keras_hub", "keras_hub xla",
                            "zoo savedmodel", "zoo onnx", "zoo onnx int8",
                            "zoo ctranslate2 float32", "zoo ctranslate2 int8"]}
        dsec = 5 if args.quick else 20
        print(f"\nDecoding {STEPS} tokens, sentences/s (beam: 4 beams)")
        print(f"{'engine':26} {'strategy':8} {'batch 1':>9} {'batch 64':>9}")
        table = {}
        for strategy, names in engines.items():
            # The engines of a goal are timed in one process, in alternating rounds (see
            # child_decode_interleaved); every other engine in its own process.
            together = {}
            for goal in GOALS:
                for batch in (1, 64):
                    for r in run_child({"kind": "decode_interleaved", "strategy": strategy,
                                        "engines": [e for e in goal if e in names],
                                        "batch": batch, "cache": cache,
                                        "seconds": 2 * dsec}):
                        together[(r["engine"], batch)] = r
            for engine in names:
                row = []
                for batch in (1, 64):
                    if engine == "zoo litert" and batch == 64:
                        row.append(None)  # fixed batch 1: the runner would loop 64 times
                        continue
                    r = together.get((engine, batch)) or run_child(
                        {"kind": "decode", "engine": engine, "strategy": strategy,
                         "batch": batch, "cache": cache, "seconds": dsec})
                    row.append(r["sentences_per_s"])
                    records.append({"section": "decode", **r})
                table[(engine, strategy)] = row
                cells = "".join(f"{v:9.1f} " if v else f"{'-':>9} " for v in row)
                mark = "".join(f"  (interleaved, goal {i + 1})" for i, g in enumerate(GOALS)
                               if engine in g)
                print(f"{engine:26} {strategy:8} {cells}{mark}")
        print("\nRatios")
        for strategy in engines:
            for i, batch in enumerate((1, 64)):
                zk = max(table[("zoo keras", strategy)][i],
                         table[("zoo keras xla", strategy)][i])
                hub = max(v for v in (table.get(("keras_hub", strategy), [None, None])[i],
                                      table.get(("keras_hub xla", strategy), [None, None])[i])
                          if v)
                onnx = table[("zoo onnx", strategy)][i]
                ct2 = table[("zoo ctranslate2 float32", strategy)][i]
                q8 = table[("zoo onnx int8", strategy)][i]
                c8 = table[("zoo ctranslate2 int8", strategy)][i]
                print(f"  {strategy:6} batch {batch:2}: zoo keras / best KerasHub "
                      f"{zk / hub:.2f}x; zoo onnx / CTranslate2 float32 {onnx / ct2:.2f}x; "
                      f"int8: {q8 / c8:.2f}x")
    _append(records, args)
    if records:
        plot(latest_runs(), args.plot)


def latest_runs():
    """Per section (train, mfu, decode), the records of the last run that measured it, so a
    ``--only`` run redraws its own panel and keeps the other's."""
    rows = [json.loads(line) for line in open(RESULTS)]
    last = {r["section"]: r["time"] for r in rows}
    return [r for r in rows if r["time"] == last[r["section"]]]


def plot(records, path):
    """Two panels: training tokens/s (zoo beside each peer) and decoding sentences/s per
    engine at batch 1 and 64 (greedy), log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The fairly warmed training figures when there are any (issue 39), else the old ones.
    train = [r for r in records if r["section"] == "fair_train"] or [
        r for r in records if r["section"] == "train"]
    dec = [r for r in records if r["section"] == "decode" and r["strategy"] == "greedy"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1, 2.2]})

    def when(rows):  # each panel may come from its own run (see latest_runs)
        return f"{rows[0]['time'][:10]}, {rows[0]['hardware']}"
    if train:
        ax = axes[0]
        xs = range(len(train))
        ax.bar([x - 0.2 for x in xs], [r["zoo"]["tokens_per_s"] for r in train], 0.4,
               label="zoo")
        ax.bar([x + 0.2 for x in xs], [r["peer"]["tokens_per_s"] for r in train], 0.4,
               label="peer")
        ax.set_xticks(list(xs), [f"{r['shape']}\nvs {r['peer']['trainer']}" for r in train],
                      fontsize=8)
        ax.set_ylabel("target tokens/s (training)")
        ax.set_title(when(train), fontsize=9)
        ax.legend()
    if dec:
        ax = axes[1]
        engines = list(dict.fromkeys(r["engine"] for r in dec))
        for k, batch in enumerate((1, 64)):
            vals = [next((r["sentences_per_s"] for r in dec
                          if r["engine"] == e and r["batch"] == batch), 0) for e in engines]
            ax.bar([i + (k - 0.5) * 0.4 for i in range(len(engines))], vals, 0.4,
                   label=f"batch {batch}")
        ax.set_yscale("log")
        ax.set_xticks(range(len(engines)), engines, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"sentences/s (greedy, {STEPS} tokens)")
        ax.set_title(when(dec), fontsize=9)
        ax.legend()
    fig.suptitle("zoo against its peers (2-core CPU)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


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
