"""Pretrained seq2seq models from KerasHub, as ordinary zoo models.

:func:`import_keras_hub` turns a KerasHub ``T5Seq2SeqLM`` or ``T5Backbone`` (any preset, or
one built from a config) into a zoo :class:`~zoo.models.Summarizer` or
:class:`~zoo.models.Translator` whose networks are zoo's own Transformer layers with T5's
options (RMS norms, no biases, relative position bias, gated GELU or ReLU feed-forward,
a shared embedding). The result fine-tunes with ``fit``, decodes with zoo's engine, saves,
and exports to every format zoo targets; nothing model-specific reaches the decoding engine
or the exporters. A ``BartSeq2SeqLM`` or ``BartBackbone`` maps onto the same layers with
BART's options (post-norm, exact GELU, learned positions per stack, embedding norms) and a
forced first token (``<s>``); its byte-level BPE comes in as a
:class:`~zoo.data.BytePairTokenizer` (KerasHub's in-graph BPE for the SavedModel, the
``tokenizers`` library host-side, the same ids) that writes ``<s>`` before every text, as
BART's preprocessor does.

What the import changes, without changing the function computed:

* **Ids.** zoo reserves pad 0, unk 1, bos 2, eos 3 (:data:`zoo.inputs.SPECIAL_IDS`); T5 has
  pad 0, eos 1, unk 2 and starts decoding from pad. The SentencePiece model is laid out as
  zoo's (:meth:`SentencePieceTokenizer.from_foreign`: same pieces, same segmentation), and
  the embedding rows follow: zoo's bos row is T5's pad row. T5's 100 sentinel ids
  (``<extra_id_N>``), which its SentencePiece model does not hold, are dropped when a
  tokenizer is given. BART has ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3 and starts
  decoding from ``</s>``: zoo's bos row is ``</s>``'s, ``<s>`` becomes zoo id 4
  (:func:`bart_layout`).
* **Scales.** T5 does not divide its attention scores by ``sqrt(head_dim)``; zoo's
  attention does, so the query projections are multiplied by it. A tied T5 multiplies the
  decoder's output by ``dim ** -0.5`` before the embedding; that factor goes into the
  decoder's final norm, which feeds nothing else.

Example:
    >>> import keras_hub
    >>> hub = keras_hub.models.T5Backbone(vocabulary_size=40, num_layers=1, num_heads=2,
    ...                                   hidden_dim=8, intermediate_dim=16)
    >>> model = import_keras_hub(hub, task="summarizer")
    >>> model.decoder.vocab_size   # T5's ids plus zoo's bos
    41
"""

from __future__ import annotations

import math

import numpy as np

#: zoo's task names for ``task=`` (the model classes).
_TASKS = ("summarizer", "translator")


def import_keras_hub(model, task="summarizer", tokenizer=None, max_source_length=512,
                     max_target_length=128):
    """A zoo model with the weights of a KerasHub seq2seq model.

    Args:
        model: A ``keras_hub.models.T5Seq2SeqLM``, ``T5Backbone``, ``BartSeq2SeqLM`` or
            ``BartBackbone``.
        task: ``"summarizer"`` or ``"translator"``: the zoo class of the result.
        tokenizer: T5's SentencePiece model (a KerasHub ``T5Tokenizer``, the model's bytes
            or a ``.model`` path) or BART's byte-level BPE (a KerasHub ``BartTokenizer``);
            None: the Seq2SeqLM's preprocessor's, else none; False: none (a model of ids in
            zoo's layout: :func:`t5_layout`, :func:`bart_layout`).
        max_source_length: Source ids kept per text (eos included).
        max_target_length: The default longest output.

    Returns:
        A built :class:`zoo.models.Summarizer` or :class:`zoo.models.Translator`.

    Raises:
        ValueError: An unsupported model or task, or a tokenizer that does not fit the model.
    """
    if task not in _TASKS:
        raise ValueError(f"task must be one of {', '.join(_TASKS)}; got {task!r}")
    backbone = getattr(model, "backbone", model)
    kind = type(backbone).__name__
    if kind == "BartBackbone":
        return _import_bart(model, backbone, task, tokenizer, max_source_length,
                            max_target_length)
    if kind != "T5Backbone":
        raise ValueError(f"zoo imports KerasHub T5 and BART models (T5Seq2SeqLM, "
                         f"T5Backbone, BartSeq2SeqLM, BartBackbone); got "
                         f"{type(model).__name__}")
    sp = None if tokenizer is False else _tokenizer(model, tokenizer)
    vocab = int(backbone.vocabulary_size)
    if sp is None:
        original = t5_layout(vocab)
    else:
        sp, original = sp
        if max(original) >= vocab:
            raise ValueError(f"the tokenizer has {len(original) - 1} pieces but the model "
                             f"only {vocab} embedding rows: not this model's tokenizer")
    zoo_model = _t5_model(backbone, task, len(original), max_source_length, max_target_length)
    _t5_weights(backbone, zoo_model, np.asarray(original))
    if sp is not None:
        zoo_model.source_tokenizer = zoo_model.target_tokenizer = sp
    return zoo_model


def t5_layout(vocab):
    """zoo id -> T5 id without a tokenizer: pad, unk (2), the start row (pad), eos (1)."""
    return [0, 2, 0, 1] + list(range(3, vocab))


#: BART's ids in KerasHub's (and Hugging Face's) vocabulary.
BART_IDS = {"start": 0, "pad": 1, "end": 2, "unk": 3}


def bart_layout(vocab, ids=None):
    """zoo id -> BART id: pad, unk, the start row (``</s>``: BART's decoder starts from it),
    eos (``</s>``), then ``<s>`` (zoo id 4) and the rest in order.

    Args:
        vocab: BART's vocabulary size.
        ids: BART's special ids by name (``start``, ``pad``, ``end``, ``unk``); default
            :data:`BART_IDS`.
    """
    b = ids or BART_IDS
    specials = set(b.values())
    return [b["pad"], b["unk"], b["end"], b["end"], b["start"]] + [
        i for i in range(vocab) if i not in specials]


#: zoo's id of ``<s>`` in :func:`bart_layout`: written first by every decoding, and first in
#: every tokenized text.
BART_FIRST = 4
#: BART's special pieces by :data:`BART_IDS` name.
BART_PIECES = {"start": "<s>", "pad": "<pad>", "end": "</s>", "unk": "<unk>"}


def _bart_tokenizer(model, tokenizer):
    """``(BytePairTokenizer in zoo's layout, original ids)`` of a KerasHub BART tokenizer,
    or None."""
    from zoo.data import BytePairTokenizer

    if tokenizer is None:
        tokenizer = getattr(getattr(model, "preprocessor", None), "tokenizer", None)
        if tokenizer is None:
            return None
    vocab, merges = getattr(tokenizer, "vocabulary", None), getattr(tokenizer, "merges", None)
    if not isinstance(vocab, dict) or merges is None:
        raise ValueError(f"tokenizer must be a KerasHub BartTokenizer (or BytePairTokenizer) "
                         f"for a BART model; got {type(tokenizer).__name__}")
    missing = [p for p in BART_PIECES.values() if p not in vocab]
    if missing:
        raise ValueError(f"the BART tokenizer's vocabulary lacks {', '.join(missing)}")
    ids = {k: int(vocab[p]) for k, p in BART_PIECES.items()}
    original = bart_layout(len(vocab), ids)
    piece = {int(i): p for p, i in vocab.items()}
    start = "<zoo_start>"  # zoo's bos: BART's </s> row under a name of its own
    while start in vocab:
        start = start[:-1] + "_>"
    pieces = [piece[i] for i in original]
    pieces[2] = start
    tok = BytePairTokenizer.from_vocabulary({p: i for i, p in enumerate(pieces)},
                                            list(merges), prefix=[BART_FIRST])
    return tok, original


def _tokenizer(model, tokenizer):
    """``(zoo tokenizer, original ids)`` or None."""
    from zoo.data import SentencePieceTokenizer

    if tokenizer is None:
        pre = getattr(model, "preprocessor", None)
        tokenizer = getattr(pre, "tokenizer", None)
        if tokenizer is None:
            return None
    proto = getattr(tokenizer, "proto", tokenizer)
    if isinstance(proto, str):
        with open(proto, "rb") as f:
            proto = f.read()
    if not isinstance(proto, (bytes, bytearray)):
        raise ValueError(f"tokenizer must be a KerasHub SentencePiece tokenizer, the bytes of "
                         f"a SentencePiece model or its path; got {type(tokenizer).__name__}")
    return SentencePieceTokenizer.from_foreign(bytes(proto), start="pad")


def _activation(backbone):
    import keras

    name = keras.activations.serialize(backbone.activation)
    if isinstance(name, dict):  # a registered function: {"config": "keras_hub>gelu_..."}
        name = str(name.get("config"))
    name = name.split(">")[-1]
    if name not in ("relu", "gelu", "gelu_approximate"):
        raise ValueError(f"T5 feed-forward activation {name!r} is not supported (relu, gelu, "
                         f"gelu_approximate)")
    return name


def _t5_model(backbone, task, vocab, max_source_length, max_target_length):
    heads = int(backbone.num_heads)
    shape = {"vocab_size": vocab, "dim": int(backbone.hidden_dim),
             "num_layers": int(backbone.num_layers), "num_heads": heads,
             "ff_dim": int(backbone.intermediate_dim), "dropout": float(backbone.dropout),
             "attention_dropout": float(backbone.dropout), "activation_dropout": None,
             "normalize_first": True, "norm": "rms",
             "norm_epsilon": float(backbone.layer_norm_epsilon),
             "activation": _activation(backbone), "use_bias": False,
             "gated_ffn": bool(backbone.use_gated_activation),
             "head_dim": int(backbone.key_value_dim or backbone.hidden_dim // heads),
             "positions": "relative", "relative_buckets": 32, "relative_max_distance": 128}
    return _built(task, shape, bool(backbone.tie_embedding_weights), "keras_hub:t5",
                  max_source_length=max_source_length, max_target_length=max_target_length)


def _built(task, shape, tie_embeddings, preset, **kwargs):
    """A built zoo model of ``task``: a Transformer of ``shape`` with one shared embedding
    (``kwargs``: the model's other arguments)."""
    import zoo.models

    cls = zoo.models.Summarizer if task == "summarizer" else zoo.models.Translator
    model = cls(encoder={"class_name": "TransformerEncoder", "config": dict(shape)},
                decoder={"class_name": "TransformerDecoder",
                         "config": {**shape, "tie_embeddings": tie_embeddings}},
                share_embeddings=True, preset=preset, **kwargs)
    model.build()
    return model


def _assign(variable, value):
    value = np.asarray(value, "float32")
    if tuple(variable.shape) != value.shape:
        raise ValueError(f"{variable.path}: shape {tuple(variable.shape)} but the KerasHub "
                         f"weight is {value.shape}")
    variable.assign(value)


def _attention(zoo_attn, hub_attn, fold_scale):
    """Copies one attention's four kernels; ``fold_scale``: T5's unscaled scores."""
    q = hub_attn.query_projector.kernel.numpy()
    _assign(zoo_attn.query_dense.kernel, q * math.sqrt(fold_scale))
    _assign(zoo_attn.key_dense.kernel, hub_attn.key_projector.kernel.numpy())
    _assign(zoo_attn.value_dense.kernel, hub_attn.value_projector.kernel.numpy())
    _assign(zoo_attn.output_dense.kernel, hub_attn.output_projector.kernel.numpy())


def _ffn(zoo_ffn, hub_layer):
    _assign(zoo_ffn.inner.kernel, hub_layer.input_projector.kernel.numpy())
    if zoo_ffn.gate is not None:
        _assign(zoo_ffn.gate.kernel, hub_layer.gate_projector.kernel.numpy())
    _assign(zoo_ffn.outer.kernel, hub_layer.output_projector.kernel.numpy())


def _t5_weights(backbone, model, original):
    """Copies T5's weights into the zoo model built by :func:`_t5_model`."""
    kd = model.encoder.head_dim
    embeddings = backbone.token_embedding.embeddings.numpy()
    _assign(model.encoder.embedding.embeddings, embeddings[original])
    stacks = ((model.encoder, backbone.encoder_transformer_layers, ("norm1", "norm2")),
              (model.decoder, backbone.decoder_transformer_layers, ("norm1", "norm3")))
    for net, layers, (attn_norm, ffn_norm) in stacks:
        _assign(net.position_bias.embeddings,
                layers[0].self_attention.relative_attention_bias.numpy())
        for block, layer in zip(net.blocks, layers):
            _assign(block[attn_norm].scale, layer.self_attention_layer_norm.weight.numpy())
            _attention(block.get("attn", block.get("self_attn")), layer.self_attention, kd)
            _assign(block[ffn_norm].scale, layer.layer_norm.weight.numpy())
            _ffn(block["ffn"], layer)
            if "cross_attn" in block:
                _assign(block["norm2"].scale, layer.cross_attention_layer_norm.weight.numpy())
                _attention(block["cross_attn"], layer.cross_attention, kd)
    _assign(model.encoder.final_norm.scale, backbone.encoder_layer_norm.weight.numpy())
    final = backbone.decoder_layer_norm.weight.numpy()
    if backbone.tie_embedding_weights:
        # T5 scales the tied output by dim ** -0.5; the final norm feeds only the output.
        final = final * backbone.hidden_dim ** -0.5
    else:
        reverse = backbone.token_embedding.reverse_embeddings.numpy()  # (dim, V)
        _assign(model.decoder.output_layer.kernel, reverse[:, original])
    _assign(model.decoder.final_norm.scale, final)


def _import_bart(model, backbone, task, tokenizer, max_source_length, max_target_length):
    """BART: post-norm Transformer, learned positions per stack, embedding norms, GELU."""
    bpe = None if tokenizer is False else _bart_tokenizer(model, tokenizer)
    positions = int(backbone.max_sequence_length)
    for name, length in (("max_source_length", max_source_length),
                         ("max_target_length", max_target_length)):
        if length > positions:
            raise ValueError(f"{name}={length} is beyond the model's {positions} learned "
                             f"positions")
    rows = int(backbone.vocabulary_size)
    original = np.asarray(bart_layout(rows) if bpe is None else bpe[1])
    if original.max() >= rows:
        raise ValueError(f"the tokenizer has {len(original) - 1} pieces but the model only "
                         f"{rows} embedding rows: not this model's tokenizer")
    shape = {"vocab_size": len(original), "dim": int(backbone.hidden_dim),
             "num_layers": int(backbone.num_layers), "num_heads": int(backbone.num_heads),
             "ff_dim": int(backbone.intermediate_dim), "dropout": float(backbone.dropout),
             "attention_dropout": float(backbone.dropout), "activation_dropout": None,
             "normalize_first": False, "norm": "layer", "norm_epsilon": 1e-5,
             "activation": "gelu", "positions": "learned", "max_positions": positions,
             "embedding_norm": True}
    zoo_model = _built(task, shape, True, "keras_hub:bart", max_source_length=max_source_length,
                       max_target_length=max_target_length,
                       forced_first_id=BART_FIRST)
    _bart_weights(backbone, zoo_model, original)
    if bpe is not None:
        zoo_model.source_tokenizer = zoo_model.target_tokenizer = bpe[0]
    return zoo_model


def _heads(projection):
    """KerasHub's per-head ``(dim, H, d)`` kernel and ``(H, d)`` bias, flattened."""
    kernel, bias = projection.kernel.numpy(), projection.bias.numpy()
    return kernel.reshape(kernel.shape[0], -1), bias.reshape(-1)


def _mha(zoo_attn, hub_attn):
    """Copies a Keras ``MultiHeadAttention``'s four projections with their biases."""
    for mine, theirs in (("query_dense", "_query_dense"), ("key_dense", "_key_dense"),
                         ("value_dense", "_value_dense")):
        kernel, bias = _heads(getattr(hub_attn, theirs))
        _assign(getattr(zoo_attn, mine).kernel, kernel)
        _assign(getattr(zoo_attn, mine).bias, bias)
    out = hub_attn._output_dense
    _assign(zoo_attn.output_dense.kernel, out.kernel.numpy().reshape(-1, out.kernel.shape[-1]))
    _assign(zoo_attn.output_dense.bias, out.bias.numpy())


def _layer_norm(zoo_norm, hub_norm):
    _assign(zoo_norm.gamma, hub_norm.gamma.numpy())
    _assign(zoo_norm.beta, hub_norm.beta.numpy())


def _dense(zoo_dense, hub_dense):
    _assign(zoo_dense.kernel, hub_dense.kernel.numpy())
    _assign(zoo_dense.bias, hub_dense.bias.numpy())


def _bart_weights(backbone, model, original):
    """Copies BART's weights into the zoo model built by :func:`_import_bart`."""
    _assign(model.encoder.embedding.embeddings,
            backbone.token_embedding.embeddings.numpy()[original])
    stacks = ((model.encoder, "encoder", backbone.encoder_transformer_layers,
               (("attn", "_self_attention_layer", "norm1", "_self_attention_layer_norm"),)),
              (model.decoder, "decoder", backbone.decoder_transformer_layers,
               (("self_attn", "_self_attention_layer", "norm1", "_self_attention_layer_norm"),
                ("cross_attn", "_cross_attention_layer", "norm2",
                 "_cross_attention_layer_norm"))))
    for net, side, layers, attentions in stacks:
        _assign(net.position_embedding.embeddings,
                getattr(backbone, f"{side}_position_embedding").position_embeddings.numpy())
        _layer_norm(net.embed_norm, getattr(backbone, f"{side}_embeddings_layer_norm"))
        ffn_norm = "norm2" if side == "encoder" else "norm3"
        for block, layer in zip(net.blocks, layers):
            for attn, hub_attn, norm, hub_norm in attentions:
                _mha(block[attn], getattr(layer, hub_attn))
                _layer_norm(block[norm], getattr(layer, hub_norm))
            _dense(block["ffn"].inner, layer._feedforward_intermediate_dense)
            _dense(block["ffn"].outer, layer._feedforward_output_dense)
            _layer_norm(block[ffn_norm], layer._feedforward_layer_norm)
