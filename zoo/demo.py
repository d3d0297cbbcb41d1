"""`zoo demo`: a small real run of an attention layer on the embedded Spanish-English pairs.

A bi-GRU encoder and a GRU decoder (teacher forcing, Luong-style attention on the decoder
states) are trained with plain ``model.fit`` for a few epochs on short Anki/Tatoeba pairs; the
demo then translates a few held-out sentences greedily and writes the attention of one of them
as a heat map. It exercises the attention contract end to end (implicit Embedding masks, the
full call inside a functional model, ``attend`` for the weights) until the prebuilt Translator
replaces it as the main job.
"""

from __future__ import annotations

import collections
import os
import re
import time
from typing import List, Sequence

import numpy as np

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
PAD, START, END, UNK = "<pad>", "<s>", "</s>", "<unk>"


def tokenize(text: str) -> List[str]:
    """Lower-cased words and punctuation marks."""
    return _TOKEN.findall(text.lower())


class Vocab:
    """A word vocabulary: id 0 is padding."""

    def __init__(self, sentences: Sequence[List[str]], max_size: int):
        counts = collections.Counter(t for s in sentences for t in s)
        self.itos = [PAD, START, END, UNK] + [t for t, _ in counts.most_common(max_size - 4)]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def encode(self, tokens, length, add_start=False, add_end=False):
        ids = ([1] if add_start else []) + [self.stoi.get(t, 3) for t in tokens]
        ids = ids + ([2] if add_end else [])
        ids = ids[:length]
        return ids + [0] * (length - len(ids))

    def decode(self, ids):
        out = []
        for i in ids:
            if i == 2:
                break
            if i > 2:
                out.append(self.itos[i])
        return out

    def __len__(self):
        return len(self.itos)


def build_model(attention, src_vocab, tgt_vocab, units=128, embed=96):
    """The demo's functional encoder-decoder; returns (training model, parts model)."""
    import keras

    import zoo.attention

    layer = zoo.attention.get(attention, **({"num_heads": 4} if attention == "multi_head"
                                            else {}))
    src = keras.Input((None,), dtype="int32", name="source")
    tgt = keras.Input((None,), dtype="int32", name="target_in")
    src_emb = keras.layers.Embedding(src_vocab, embed, mask_zero=True)(src)
    enc, fw, bw = keras.layers.Bidirectional(
        keras.layers.GRU(units, return_sequences=True, return_state=True))(src_emb)
    init = keras.layers.Dense(units, activation="tanh")(keras.layers.Concatenate()([fw, bw]))
    tgt_emb = keras.layers.Embedding(tgt_vocab, embed, mask_zero=True)(tgt)
    dec = keras.layers.GRU(units, return_sequences=True)(tgt_emb, initial_state=init)
    # Masks reach the attention implicitly from the Embeddings through the GRUs.
    context = layer(query=dec, value=enc)
    hidden = keras.layers.Dense(units, activation="tanh")(
        keras.layers.Concatenate()([dec, context]))
    logits = keras.layers.Dense(tgt_vocab)(hidden)
    model = keras.Model([src, tgt], logits)
    parts = keras.Model([src, tgt], [enc, dec])
    return model, parts, layer


def run(attention: str = "additive", num_pairs: int = 9000, epochs: int = 20,
        max_words: int = 7, out_dir: str = "zoo-demo", seed: int = 0) -> dict:
    """Trains, translates and plots; returns the figures it printed.

    Args:
        attention: Any name from ``zoo.attention.names()``.
        num_pairs: Training pairs (short pairs of the embedded corpus, file order).
        epochs: Training epochs.
        max_words: Longest sentence kept, in tokens.
        out_dir: Where the heat map goes.
        seed: Random seed.

    Returns:
        ``{"losses": [...], "translations": [(source, output, reference)], "plot": path}``.
    """
    import keras

    import zoo.attention
    from zoo import plot
    from zoo.data import anki_spa_eng_pairs

    zoo.attention.REGISTRY.get_class(attention)  # fail early, listing the known names
    keras.utils.set_random_seed(seed)
    pairs = [(tokenize(s), tokenize(e)) for s, e in anki_spa_eng_pairs()]
    pairs = [(s, e) for s, e in pairs if 0 < len(s) <= max_words and 0 < len(e) <= max_words]
    order = np.random.default_rng(seed).permutation(len(pairs))
    pairs = [pairs[i] for i in order]
    held_out, train = pairs[:200], pairs[200:200 + num_pairs]
    src_vocab = Vocab([s for s, _ in train], 4000)
    tgt_vocab = Vocab([e for _, e in train], 3000)
    length = max_words + 1
    x_src = np.array([src_vocab.encode(s, length) for s, _ in train], "int32")
    x_tgt = np.array([tgt_vocab.encode(e, length + 1, add_start=True, add_end=True)
                      for _, e in train], "int32")
    model, parts, layer = build_model(attention, len(src_vocab), len(tgt_vocab))
    model.compile(
        optimizer=keras.optimizers.Adam(4e-3, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
    print(f"zoo demo: attention={attention!r} ({type(layer).__name__}), {len(train)} "
          f"Spanish->English pairs (Anki/Tatoeba, CC-BY), vocab {len(src_vocab)}/"
          f"{len(tgt_vocab)}, {model.count_params():,} parameters")
    started = time.time()
    history = model.fit([x_src, x_tgt[:, :-1]], x_tgt[:, 1:], batch_size=64, epochs=epochs,
                        verbose=2)
    losses = [float(v) for v in history.history["loss"]]
    print(f"trained {epochs} epochs in {time.time() - started:.0f}s: loss {losses[0]:.3f} -> "
          f"{losses[-1]:.3f}")

    examples = held_out[:6]
    src_ids = np.array([src_vocab.encode(s, length) for s, _ in examples], "int32")
    outputs = greedy(model, src_ids, length + 1)
    translations = []
    for (s, e), ids in zip(examples, outputs):
        hyp = tgt_vocab.decode(ids)
        translations.append((" ".join(s), " ".join(hyp), " ".join(e)))
        print(f"  {' '.join(s)}\n    -> {' '.join(hyp)}\n    (reference: {' '.join(e)})")

    # Weights of the first example through `attend`, on the decoder states of its output.
    src_tokens = examples[0][0]
    hyp_ids = [i for i in outputs[0] if i > 2][:length] or [3]
    tgt_in = np.array([[1] + hyp_ids], "int32")
    enc, dec = parts([src_ids[:1], tgt_in])
    _, weights = layer.attend(query=dec, value=enc, value_mask=src_ids[:1] > 0)
    weights = np.asarray(weights)[0]
    if weights.ndim == 3:
        weights = weights.mean(0)
    # Row t is the query that predicted output token t.
    path = plot.attention(weights[:len(hyp_ids)], src_tokens, tgt_vocab.decode(hyp_ids) or [UNK],
                          os.path.join(out_dir, f"attention-{attention}.png"),
                          title=f"{attention} attention")
    print(f"attention heat map: {path}")
    return {"losses": losses, "translations": translations, "plot": path}


def greedy(model, src_ids, max_len) -> List[List[int]]:
    """Greedy decoding by re-running the teacher-forced model on the growing prefix."""
    batch = src_ids.shape[0]
    tgt = np.zeros((batch, max_len), "int32")
    tgt[:, 0] = 1
    done = np.zeros(batch, bool)
    for t in range(max_len - 1):
        logits = np.asarray(model([src_ids, tgt[:, :t + 1]], training=False))
        nxt = logits[:, t].argmax(-1)
        nxt[done] = 0
        tgt[:, t + 1] = nxt
        done |= nxt == 2
        if done.all():
            break
    return [list(row[1:]) for row in tgt]
