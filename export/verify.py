"""Parity of an exported artifact with the Keras model it came from.

``verify(model, path, texts, references)`` works for every format (``manifest.json`` says
which); ``verify_savedmodel`` is the SavedModel case.
"""

from __future__ import annotations

from typing import Optional, Sequence

from zoo.export._state import split_encoded


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
    import json
    import os

    import numpy as np
    import tensorflow as tf

    from zoo.data.pipeline import encode_sources

    texts = list(texts)
    if not texts:
        raise ValueError("verify needs at least one sentence")
    loaded = tf.saved_model.load(path)  # keep the reference while calling it
    with open(os.path.join(path, "manifest.json")) as f:
        manifest_len = json.load(f)["max_length"]
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


def _keras_reference(model, texts, max_length):
    """Keras greedy outputs, their token ids and the teacher-forced step logits along them."""
    import numpy as np

    from zoo.data.pipeline import encode_sources

    outs, details = model.translate(texts, max_length=max_length, return_result=True)
    return outs, [np.asarray(d["tokens"]) for d in details], encode_sources(
        texts, model.source_tokenizer).numpy()


def _step_logits(step, state, tokens, bos):
    """Runs a step function along given tokens (teacher forcing) -> logits (T, V)."""
    import numpy as np

    prev, out = bos, []
    for tok in tokens:
        logits, state = step(np.array([prev], np.int32), state)
        out.append(np.asarray(logits)[0])
        prev = int(tok)
    return np.stack(out)


def verify(model, path: str, texts: Sequence[str], references: Optional[Sequence[str]] = None,
           max_sentences_for_logits: int = 20) -> dict:
    """Parity of any zoo export (SavedModel, ONNX, LiteRT) with the Keras model.

    Greedy outputs of Keras and of every artifact in ``path`` are compared sentence by
    sentence; logits are compared step by step along Keras's own output (teacher forcing
    through the artifact's ``decode_step``) on the first ``max_sentences_for_logits``.

    Args:
        model: The Keras translator.
        path: An export directory (its ``manifest.json`` says the format).
        texts: Source sentences.
        references: References for the BLEU difference.
        max_sentences_for_logits: Sentences whose logits are compared.

    Returns:
        ``{artifact: {"token_agreement", "max_logit_diff", "bleu", "bleu_diff"}}`` with
        ``"keras"`` holding Keras's own BLEU (BLEU entries only with references).
    """
    import json
    import os

    import numpy as np

    from zoo.data.tokenizer import BOS_ID

    with open(os.path.join(path, "manifest.json")) as f:
        manifest = json.load(f)
    fmt = manifest["format"]
    if fmt == "savedmodel":
        return {"savedmodel": verify_savedmodel(model, path, texts, references)}
    texts = list(texts)
    max_length = manifest["max_length"]
    keras_out, keras_tokens, src = _keras_reference(model, texts, max_length)
    k_logits = []
    for i in range(min(len(texts), max_sentences_for_logits)):
        encoded = model.encode(src[i:i + 1])
        memory = model.prepare_memory(encoded)

        def kstep(tok, st, memory=memory):
            logits, st, _ = model.decode_step(tok, st, memory)
            return logits.numpy(), st
        k_logits.append(_step_logits(kstep, model.initial_state(encoded, max_length),
                                     keras_tokens[i], BOS_ID))

    artifacts = {}
    if fmt == "onnx":
        from zoo.serving.onnx_runtime import OnnxTranslator

        ox = OnnxTranslator(path)
        names = [s["name"] for s in manifest["state"]]

        def run_onnx(i):
            state, memory = split_encoded(ox.encode(src[i:i + 1, : int((src[i] != 0).sum())]),
                                          manifest)

            def step(tok, st):
                r = ox.decode_step(tok, {**st, **memory})
                return r["logits"], {n: r[f"next__{n}"] for n in names}
            return state, step
        artifacts["onnx"] = (ox.translate(texts), run_onnx)
    elif fmt == "litert":
        from ai_edge_litert.interpreter import Interpreter

        from zoo.serving.tokenizer import HostTokenizer

        if manifest["batch_size"] != 1:
            raise ValueError("verify runs LiteRT exports of batch 1")
        host = HostTokenizer(os.path.join(path, manifest["files"]["tokenizer"]))
        s_len = manifest["max_source_length"]
        for q in manifest["quantizations"]:
            it = Interpreter(model_path=os.path.join(path, manifest["files"][q]))
            greedy = it.get_signature_runner("greedy")
            enc = it.get_signature_runner("encode")
            dec = it.get_signature_runner("decode_step")
            names = [s["name"] for s in manifest["state"]]

            def padded(ids):
                out = np.zeros((1, s_len), np.int32)
                out[:, : min(s_len, ids.shape[1])] = ids[:, :s_len]
                return out

            outs = [host.decode(greedy(source_ids=padded(host.encode([t], s_len)))["tokens"])[0]
                    for t in texts]

            def run_lite(i, enc=enc, dec=dec, names=names):
                state, memory = split_encoded(enc(source_ids=padded(src[i:i + 1])), manifest)

                def step(tok, st):
                    r = dec(token_ids=tok, **st, **memory)
                    return r["logits"], {n: r[f"next__{n}"] for n in names}
                return state, step
            artifacts[f"litert {q}"] = (outs, run_lite)
    else:
        raise ValueError(f"{path}: unknown export format {fmt!r}")

    report = {}
    if references is not None:
        from zoo.metrics import bleu

        report["keras"] = {"bleu": bleu(keras_out, references)}
    for name, (outs, runner) in artifacts.items():
        diffs = []
        for i, ref_logits in enumerate(k_logits):
            state, step = runner(i)
            diffs.append(float(np.abs(_step_logits(step, state, keras_tokens[i], BOS_ID)
                                      - ref_logits).max()))
        entry = {"sentences": len(texts),
                 "token_agreement": float(np.mean([a == b for a, b in zip(outs, keras_out)])),
                 "max_logit_diff": max(diffs)}
        if references is not None:
            entry["bleu"] = bleu(outs, references)
            entry["bleu_diff"] = entry["bleu"] - report["keras"]["bleu"]
        report[name] = entry
    return report
