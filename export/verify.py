"""Parity of an exported artifact with the Keras model it came from."""

from __future__ import annotations

from typing import Optional, Sequence


def verify_savedmodel(model, path: str, texts: Sequence[str],
                      references: Optional[Sequence[str]] = None) -> dict:
    """Runs the same sentences through Keras and a SavedModel written by ``export_savedmodel``.

    Args:
        model: The Keras translator.
        path: The SavedModel directory.
        texts: Source sentences.
        references: Reference translations, for the BLEU difference.

    Returns:
        ``{"sentences", "token_agreement" (fraction of identical greedy outputs),
        "max_logit_diff" (teacher-forced on Keras's outputs), "bleu_keras", "bleu_export",
        "bleu_diff"}`` (BLEU entries only with references).
    """
    import numpy as np
    import tensorflow as tf

    from zoo.data.pipeline import encode_sources

    texts = list(texts)
    if not texts:
        raise ValueError("verify needs at least one sentence")
    loaded = tf.saved_model.load(path)  # keep the reference while calling it
    manifest_len = None
    try:
        import json
        import os

        with open(os.path.join(path, "manifest.json")) as f:
            manifest_len = json.load(f)["max_length"]
    except (OSError, KeyError, ValueError):
        pass
    keras_out, details = model.translate(texts, max_length=manifest_len, return_result=True)
    exported = loaded.translate(tf.constant(texts))
    export_out = [s.decode("utf-8") for s in exported["translation"].numpy()]
    agree = float(np.mean([a == b for a, b in zip(keras_out, export_out)]))
    # Logits on the same teacher-forced input: Keras's own greedy output.
    src = encode_sources(texts, model.source_tokenizer)
    longest = max(len(d["tokens"]) for d in details)
    tgt = np.zeros((len(texts), longest), "int32")
    for i, d in enumerate(details):
        seq = [2] + [int(t) for t in d["tokens"]][:-1]
        tgt[i, :len(seq)] = seq
    k_logits = model({"source": src, "target": tgt}, training=False).numpy()
    e_logits = loaded.logits(src, tf.constant(tgt)).numpy()
    mask = tgt != 0
    report = {"sentences": len(texts), "token_agreement": agree,
              "max_logit_diff": float(np.abs(k_logits - e_logits)[mask].max())}
    if references is not None:
        from zoo.metrics import bleu

        report["bleu_keras"] = bleu(keras_out, references)
        report["bleu_export"] = bleu(export_out, references)
        report["bleu_diff"] = report["bleu_export"] - report["bleu_keras"]
    return report
