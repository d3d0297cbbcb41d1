"""CTranslate2 export of Transformer translators.

zoo's Transformers are pre-norm (or post-norm, ``normalize_first=False``), with sinusoidal
positions and embeddings scaled by ``sqrt(dim)``: CTranslate2's default Transformer (OpenNMT's),
or its ``pre_norm=False`` variant. T5's options (imported models: RMS norms, gated or GELU
feed-forward, relative position bias, no biases) map onto the same spec's T5 options, and
BART's (learned positions, a norm on the embeddings) onto its ``layernorm_embedding`` and
position table; a model that forces its first token (BART's ``<s>``) gets it as each call's
``target_prefix`` (the manifest's ``vocab.forced_first_id``). The model is written through
CTranslate2's own ``TransformerSpec`` Python API (the documented way to convert a model
its converters do not know); no converter of another framework is involved.

Layout (``zoo.serving.load(dir)`` runs it with :class:`zoo.serving.CTranslate2Runner`):

* ``ctranslate2/`` - the CTranslate2 model directory (``model.bin``, ``config.json``, the
  vocabularies), float32 weights. int8 (and int8_float32, float16 on GPUs) is a compute type
  CTranslate2 quantizes to when it loads the model, so one directory serves every
  quantization (``load(dir, quantization="int8")``).
* ``source.model`` / ``target.model`` - the SentencePiece models (host-side tokenization), or
  ``source.bpe.json``, a byte-level BPE (``tokenizers``).
* ``manifest.json``.

What maps onto what: each zoo ``multi_head`` projection (``HeadProjection`` kernels
``(dim, heads * head_dim)``) becomes a ``(heads * head_dim, dim)`` linear layer; self-attention
query/key/value are fused into one, cross-attention key/value into one; ``norm1``/``norm2``
(/``norm3``) are the norms of the attention, cross-attention and feed-forward blocks (before
them, or after the residual sum when post-norm); a pre-norm model's final norms are the
encoder's and decoder's ``layer_norm``; the sinusoidal table is written
out, so CTranslate2 uses zoo's exact positions. Attention weights returned are the last
layer's cross-attention averaged over every head, as zoo's.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

QUANTIZATIONS = ("float32", "int8")
MODEL_DIR = "ctranslate2"


def _np(variable):
    import keras

    return keras.ops.convert_to_numpy(variable).astype("float32")


def _linear(spec, kernel, bias=None):
    """A Keras kernel ``(in, out)`` -> CTranslate2's ``(out, in)`` weight."""
    spec.weight = kernel.T.copy()
    if bias is not None:
        spec.bias = bias


def _projection(dense):
    """A query/key/value projection's ``(dim, heads * head_dim)`` kernel and bias (zeros when
    the layer has none); a per-head ``(dim, heads, head_dim)`` kernel is flattened alike."""
    kernel = _np(dense.kernel)
    kernel = kernel.reshape(kernel.shape[0], -1)
    bias = _np(dense.bias).reshape(-1) if dense.bias is not None else \
        kernel[0] * 0.0
    return kernel, bias


def _attention(spec, layer, fused_self):
    import numpy as np

    q, k, v = (_projection(d) for d in (layer.query_dense, layer.key_dense, layer.value_dense))
    if fused_self:
        _linear(spec.linear[0], np.concatenate([q[0], k[0], v[0]], 1),
                np.concatenate([q[1], k[1], v[1]]))
    else:
        _linear(spec.linear[0], q[0], q[1])
        _linear(spec.linear[1], np.concatenate([k[0], v[0]], 1), np.concatenate([k[1], v[1]]))
    out = layer.output_dense
    kernel = _np(out.kernel)  # (heads * head_dim, dim)
    bias = _np(out.bias) if out.bias is not None else np.zeros(kernel.shape[-1], "float32")
    _linear(spec.linear[-1], kernel.reshape(-1, kernel.shape[-1]), bias)


def _norm(spec, layer):
    if hasattr(layer, "scale") and not hasattr(layer, "gamma"):  # RMS: no bias, no mean
        spec.gamma = _np(layer.scale)
        return
    spec.gamma = _np(layer.gamma)
    spec.beta = _np(layer.beta)


def _dense(spec, dense):
    _linear(spec, _np(dense.kernel), None if dense.bias is None else _np(dense.bias))


def _ffn(spec, ffn, norm):
    _norm(spec.layer_norm, norm)
    _dense(spec.linear_0, ffn.inner)
    if ffn.gate is not None:  # gated: act(inner(x)) * gate(x)
        _dense(spec.linear_0_noact, ffn.gate)
    _dense(spec.linear_1, ffn.outer)


#: The network options whose values must agree in the encoder and decoder (one spec).
_SHARED = ("normalize_first", "num_heads", "norm", "activation", "gated_ffn", "positions",
           "use_bias", "embedding_norm")


def check_supported(model):
    """Raises a ValueError naming what CTranslate2 cannot run in ``model``."""
    from zoo.layers import TransformerDecoder, TransformerEncoder

    enc, dec = model.encoder, model.decoder
    if not (isinstance(enc, TransformerEncoder) and isinstance(dec, TransformerDecoder)):
        raise ValueError(f"--format ctranslate2 exports Transformer models (encoder "
                         f"TransformerEncoder, decoder TransformerDecoder); this model has "
                         f"{type(enc).__name__} + {type(dec).__name__}: use onnx, savedmodel "
                         f"or litert")
    if dec.copy:
        raise ValueError("--format ctranslate2: a copying (pointer-generator) decoder has no "
                         "CTranslate2 equivalent; use onnx, savedmodel or litert")
    if not model.built:
        model.build()
    for option in _SHARED:
        if getattr(enc, option) != getattr(dec, option):
            raise ValueError(f"--format ctranslate2 needs one {option} in the encoder and "
                             f"decoder, got {getattr(enc, option)!r} and "
                             f"{getattr(dec, option)!r}")
    for block in enc.blocks + dec.blocks:
        for key in ("attn", "self_attn", "cross_attn"):
            layer = block.get(key)
            if layer is not None and (layer._head_key_dim != layer._head_value_dim
                                      or layer._head_key_dim * layer.num_heads != enc.dim):
                raise ValueError("--format ctranslate2 needs head sizes of dim / num_heads")


def build_spec(model, max_positions: int):
    """The ``ctranslate2.specs.TransformerSpec`` of a zoo Transformer translator."""
    import numpy as np
    from ctranslate2.specs import transformer_spec

    from zoo.layers.embedding import sinusoidal_positions

    from ctranslate2.specs import common_spec

    check_supported(model)
    enc, dec = model.encoder, model.decoder
    activations = {"relu": common_spec.Activation.RELU, "gelu": common_spec.Activation.GELU,
                   "gelu_approximate": common_spec.Activation.GELUTanh}
    relative = enc.positions == "relative"
    spec = transformer_spec.TransformerSpec.from_config(
        (enc.num_layers, dec.num_layers), enc.num_heads, pre_norm=enc.normalize_first,
        alignment_layer=-1, alignment_heads=dec.num_heads,
        activation=activations[enc.activation], ffn_glu=enc.gated_ffn,
        relative_attention_bias=relative, rms_norm=enc.norm == "rms",
        layernorm_embedding=enc.embedding_norm)
    spec.config.layer_norm_epsilon = float(enc.blocks[0]["norm1"].epsilon)
    for side, net in (("encoder", enc), ("decoder", dec)):
        s = getattr(spec, side)
        emb = s.embeddings[0] if isinstance(s.embeddings, list) else s.embeddings
        emb.weight = _np(net.embedding.embeddings)
        s.scale_embeddings = bool(net.embedding.scale and net.embedding.positional)
        if relative:  # every self-attention reads the stack's one bias table
            for layer in s.layer:
                layer.self_attention.relative_attention_bias = _np(
                    net.position_bias.embeddings)
                layer.self_attention.relative_attention_max_distance = np.int32(
                    net.position_bias.max_distance)
        elif net.positions == "learned":  # BART: the stack's own table
            s.position_encodings.encodings = _np(net.position_embedding.embeddings)
        else:
            s.position_encodings.encodings = _np(
                sinusoidal_positions(np.arange(max_positions), net.dim))
        if net.embed_norm is not None:
            _norm(s.layernorm_embedding, net.embed_norm)
        if net.final_norm is not None:  # post-norm has none (nor has CTranslate2's spec)
            _norm(s.layer_norm, net.final_norm)
    for s, b in zip(spec.encoder.layer, enc.blocks):
        _norm(s.self_attention.layer_norm, b["norm1"])
        _attention(s.self_attention, b["attn"], fused_self=True)
        _ffn(s.ffn, b["ffn"], b["norm2"])
    for s, b in zip(spec.decoder.layer, dec.blocks):
        _norm(s.self_attention.layer_norm, b["norm1"])
        _attention(s.self_attention, b["self_attn"], fused_self=True)
        _norm(s.attention.layer_norm, b["norm2"])
        _attention(s.attention, b["cross_attn"], fused_self=False)
        _ffn(s.ffn, b["ffn"], b["norm3"])
    if dec.output_layer is None:  # tied: the embedding matrix projects onto the vocabulary
        spec.decoder.projection.weight = _np(dec.embedding.embeddings)
        spec.decoder.projection.bias = np.zeros(dec.vocab_size, "float32")
    else:
        _dense(spec.decoder.projection, dec.output_layer)
    return spec


def _vocabulary(tokenizer):
    return tokenizer.id_to_piece(range(tokenizer.vocab_size))


def export_ctranslate2(model, path: str, max_length: Optional[int] = None,
                       max_source_length: Optional[int] = None, beam_size: int = 4,
                       length_penalty: float = 0.6,
                       quantizations: Sequence[str] = QUANTIZATIONS,
                       overwrite: bool = False, min_length: int = 0,
                       no_repeat_ngram_size: int = 0) -> dict:
    """Writes a CTranslate2 model directory, the tokenizers and a manifest.

    Args:
        model: A ``zoo.models.Translator`` with Transformer encoder and decoder and tokenizers.
        path: Output directory (written beside and renamed into place).
        max_length: Maximum generated tokens (default: the model's ``max_target_length``).
        max_source_length: Source ids kept per text, eos included (default: the model's).
        beam_size: Beam size of ``strategy="beam"``.
        length_penalty: Default length penalty of beam search. CTranslate2 normalises a
            hypothesis' score by ``length ** length_penalty``, not GNMT's penalty, so beam
            outputs may differ from zoo's; greedy outputs are the same.
        quantizations: Compute types the runner may load the model with, among
            ``"float32"`` and ``"int8"`` (CTranslate2 quantizes at load time).
        overwrite: Replace an export zoo wrote at ``path``.
        min_length: Minimum generated tokens before eos (fixed at export).
        no_repeat_ngram_size: n-gram repetition blocking (fixed at export; 0: off).

    Returns:
        The manifest dict.

    Example (needs a trained Transformer translator and ``pip install zoo-seq2seq[ctranslate2]``):
        ``export_ctranslate2(zoo.models.load("m30k"), "m30k-ct2")``
    """
    import ctranslate2

    from zoo.export.core import ExportCore

    check_supported(model)
    quantizations = list(quantizations)
    bad = [q for q in quantizations if q not in QUANTIZATIONS]
    if bad or not quantizations:
        raise ValueError(f"quantizations must be among {QUANTIZATIONS}, got {quantizations}")
    core = ExportCore(model, max_length=max_length, max_source_length=max_source_length,
                      beam_size=beam_size, length_penalty=length_penalty,
                      min_length=min_length, no_repeat_ngram_size=no_repeat_ngram_size)

    def write(tmp):
        spec = build_spec(model, max(core.max_source_length, core.max_length) + 2)
        spec.register_source_vocabulary(_vocabulary(model.source_tokenizer))
        spec.register_target_vocabulary(_vocabulary(model.target_tokenizer))
        spec.validate()
        spec.optimize(quantization="float32")
        os.makedirs(os.path.join(tmp, MODEL_DIR))
        spec.save(os.path.join(tmp, MODEL_DIR))
        return {"files": {"model": MODEL_DIR}, "quantization": quantizations,
                "strategies": ["greedy", "beam"], "ctranslate2": ctranslate2.__version__,
                "requires": ["ctranslate2", *core.host_packages],
                # translate_batch takes them all per call.
                "per_request": ["max_length", "min_length", "no_repeat_ngram_size",
                                "beam_size"],
                "signatures": {"translate_batch": {
                    "inputs": "source pieces with </s>",
                    "outputs": ["tokens", "lengths", "scores", "attention"]}},
                "length_normalization": "CTranslate2: score / length ** length_penalty"}

    return core.write(path, "ctranslate2", write, overwrite=overwrite)
