"""Parity of an exported artifact with the Keras model it came from, for every format.

The artifact runs through the same runner a deployment uses (``zoo.serving.load``), so what is
verified is what is served.
"""

from __future__ import annotations

from typing import Optional, Sequence


def _step_logits(step, state, tokens, bos):
    """Runs a step function along given tokens (teacher forcing) -> logits (T, V)."""
    import numpy as np

    prev, out = bos, []
    for tok in tokens:
        logits, state = step(np.array([prev], np.int32), state)
        out.append(np.asarray(logits)[0])
        prev = int(tok)
    return np.stack(out)


def _runners(path, manifest):
    from zoo.serving import load

    if manifest["format"] == "litert":
        if manifest["shapes"]["batch_size"] != 1:
            raise ValueError(f"{path}: verify runs LiteRT exports of batch 1 (this one has "
                             f"batch {manifest['shapes']['batch_size']})")
        return {f"litert {q}": load(path, quantization=q) for q in manifest["quantization"]}
    if manifest["format"] == "ctranslate2":
        return {f"ctranslate2 {q}": load(path, quantization=q)
                for q in manifest["quantization"]}
    return {manifest["format"]: load(path)}


def verify(model, path: str, texts: Sequence[str], references: Optional[Sequence[str]] = None,
           max_sentences_for_logits: int = 20) -> dict:
    """Parity of any zoo export (SavedModel, ONNX, LiteRT, CTranslate2) with the Keras model.

    Greedy outputs of Keras and of every artifact in ``path`` are compared text by text;
    logits are compared step by step along Keras's own output (teacher forcing through the
    artifact's ``decode_step``) on the first ``max_sentences_for_logits`` texts. CTranslate2
    has no step function: there ``max_logit_diff`` compares the log-probabilities of Keras's
    output tokens (its ``score_batch``) with Keras's.

    Args:
        model: The Keras model.
        path: An export directory (its ``manifest.json`` says the format).
        texts: Input texts.
        references: References for the BLEU difference.
        max_sentences_for_logits: Texts whose logits are compared.

    Returns:
        ``{artifact: {"sentences", "token_agreement", "max_logit_diff"[, "bleu",
        "bleu_diff"]}}`` (``"savedmodel"``, ``"onnx"``, ``"litert float32"``...), plus
        ``"keras": {"bleu"}`` with references.
    """
    import numpy as np

    from zoo.inputs import check_texts
    from zoo.serving import read_manifest

    texts = check_texts(texts)
    if not texts:
        raise ValueError("verify needs at least one text")
    manifest = read_manifest(path)
    runners = _runners(path, manifest)
    max_length = manifest["shapes"]["max_length"]
    limit = manifest["shapes"]["max_source_length"]
    keras_out, details = model.generate_text(texts, max_length=max_length, return_result=True)
    src_rows = [np.asarray(d["source_ids"])[None, :limit] for d in details]
    n_logits = min(len(texts), max_sentences_for_logits)
    k_logits = [_keras_logits(model, src_rows[i], details[i]["tokens"], max_length)
                for i in range(n_logits)]
    report = {}
    if references is not None:
        from zoo.metrics import bleu

        report["keras"] = {"bleu": bleu(keras_out, references)}
    for name, runner in runners.items():
        outs = runner.generate_text(texts)
        score = _score_diff if manifest["format"] == "ctranslate2" else _step_diff
        diffs = [score(runner, manifest, src_rows[i], details[i]["tokens"], k_logits[i])
                 for i in range(n_logits)]
        entry = {"sentences": len(texts),
                 "token_agreement": float(np.mean([a == b for a, b in zip(outs, keras_out)])),
                 "max_logit_diff": max(diffs) if diffs else None}
        if references is not None:
            entry["bleu"] = bleu(outs, references)
            entry["bleu_diff"] = entry["bleu"] - report["keras"]["bleu"]
        report[name] = entry
    return report


def _keras_logits(model, source_ids, tokens, max_length):
    """Keras's logits along its own output ``tokens``, step by step."""
    from zoo.data.tokenizer import BOS_ID

    encoded = model.encode(source_ids)
    memory = model.prepare_memory(encoded)

    def step(tok, st):
        logits, st, _ = model.decode_step(tok, st, memory)
        return logits.numpy(), st

    return _step_logits(step, model.initial_state(encoded, max_length), tokens, BOS_ID)


def _step_diff(runner, manifest, source_ids, tokens, k_logits) -> float:
    """The largest logit difference of the artifact's ``decode_step`` along Keras's tokens."""
    import numpy as np

    from zoo.data.tokenizer import BOS_ID
    from zoo.export.core import NEXT_PREFIX, split_encoded

    state, memory = split_encoded(runner.encode(source_ids), manifest)

    def step(tok, st):
        r = runner.decode_step(tok, {**st, **memory})
        return r["logits"], {n: r[NEXT_PREFIX + n] for n in runner.state_names}

    return float(np.abs(_step_logits(step, state, tokens, BOS_ID) - k_logits).max())


def _score_diff(runner, manifest, source_ids, tokens, k_logits) -> float:
    """CTranslate2 has no step function: the largest difference of the log-probabilities of
    Keras's tokens (its ``score_batch``) from Keras's."""
    import numpy as np

    tokens = np.asarray(tokens)
    got = runner.score(source_ids, [tokens])[0][:len(tokens)]
    z = k_logits - k_logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    want = logp[np.arange(len(tokens)), tokens][:len(got)]
    return float(np.abs(got - want).max()) if len(got) else 0.0
