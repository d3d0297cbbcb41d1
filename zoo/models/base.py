"""The task-agnostic sequence-to-sequence model every zoo task is built on.

``Seq2Seq`` owns what encoder-decoder tasks share: networks found through
``zoo.layers.NETWORKS``, presets (by task), tokenizers, ``generate`` with its compiled cache,
text in / text out with batching, the input contract (``zoo.inputs``), the compile defaults
and the save/load format (which records the task). A task subclass sets ``task`` and names its
text method; see docs/tasks.md.
"""

from __future__ import annotations

import json
import os
from typing import List, Optional, Sequence

import numpy as np
import keras
from keras import ops

import zoo.layers  # noqa: F401  (registers the networks for loading)
import zoo.training  # noqa: F401  (registers the loss, metric and schedule for loading)
from zoo import decoding
from zoo.inputs import BOS_ID, EOS_ID, PAD_ID, SPECIAL_IDS
from zoo.inputs import InputError, check_decoding, check_positive_int, check_texts
from zoo.models import presets as _presets
from zoo.models import whole_words
from zoo.registry import Registry

#: Version of the saved directory layout (``zoo.json``); format 1 was ``translator.json``.
FORMAT_VERSION = 2
META_FILE = "zoo.json"
_LEGACY_META = "translator.json"


class _FunctionCache:
    def __init__(self):
        self.functions = {}
        self.piece_kinds = {}  # by tokenizer: whole_words.piece_kinds of its vocabulary


class ModelFileError(ValueError):
    """A saved model directory that cannot be read; the message names the file."""


def _network(obj, role):
    if isinstance(obj, keras.layers.Layer):
        return obj
    if isinstance(obj, dict) and "class_name" in obj:
        return zoo.layers.NETWORKS.get(obj)
    raise ValueError(f"{role} must be a layer or a config dict with 'class_name' (one of "
                     f"{', '.join(zoo.layers.NETWORKS.names())}), got {type(obj).__name__}")


def _whole_words_default(preset, decoder, tokenizer):
    """A preset's ``copy_whole_words``, where it can apply: a copying decoder, and a tokenizer
    whose pieces tell where words end (a model of ids only has none)."""
    return bool(preset.get("copy_whole_words", False) and decoder["config"].get("copy")
                and tokenizer is not None)


def _options(net_config):
    """The options a preset's network takes: its config's keys and its constructor's."""
    import inspect

    params = inspect.signature(zoo.layers.NETWORKS.get_class(net_config["class_name"])).parameters
    return (set(net_config["config"]) | {p for p, v in params.items()
                                         if v.kind == v.POSITIONAL_OR_KEYWORD}) - {"vocab_size"}


class Seq2Seq(keras.Model):
    """An encoder network + a decoder network (``zoo.layers``), trained with ``fit``.

    Public endpoints (what decoding, export and serving use):

    * ``call({"source": (batch, S), "target": (batch, T)})`` -> logits ``(batch, T, V)``:
      teacher forcing, what ``fit`` trains (labels: the target shifted left). Losses on the
      attention weights (coverage) are added in training.
    * ``encode(source_ids)`` -> the encoder's output dict (``outputs``, ``mask``...).
    * ``prepare_memory(encoded)`` -> memory: what every decoder step reads and never changes.
    * ``initial_state(encoded, max_length)`` -> decoder state, what every step changes.
    * ``decode_step(token_ids (batch,), state, memory)`` -> ``(logits (batch, V), state,
      weights (batch, S))``.
    * ``generate(source_ids, strategy)`` -> :class:`zoo.decoding.DecodingResult`.
    * ``generate_text(texts, strategy)`` -> strings (needs tokenizers).

    Args:
        encoder: An encoder network or its config.
        decoder: A decoder network (a ``zoo.layers.Decoder``) or its config.
        max_target_length: Default maximum generated length.
        max_source_length: Source ids kept per text (eos included); longer texts are
            truncated with a ``zoo.inputs.InputTruncatedWarning``.
        preset: Name of the preset it was built from (informational).
        share_embeddings: One token embedding for the encoder and the decoder (and, with a
            tied decoder, its output projection): for a joint vocabulary (one tokenizer),
            as Press & Wolf (2017) and the Transformer share them. Their vocabulary sizes,
            sizes and position settings must match.
        copy_whole_words: With a copying decoder, a word started like a source word is
            finished as that word (:mod:`zoo.models.whole_words`): no half-words mixing the
            pieces of two source words. Decoding only; needs the target tokenizer.
        forced_first_id: The token every decoding writes first, in Keras and in every
            export (BART's ``<s>``: its decoder reads ``</s> <s>`` before the text); None:
            the model chooses.
        **kwargs: Keras model arguments (``name``, ``dtype``).
    """

    #: The task name, recorded in saved models and exports ("translation"...).
    task = None

    def __init__(self, encoder, decoder, max_target_length=128, max_source_length=256,
                 preset=None, share_embeddings=False, copy_whole_words=False,
                 forced_first_id=None, **kwargs):
        super().__init__(**kwargs)
        self.encoder = _network(encoder, "encoder")
        self.decoder = _network(decoder, "decoder")
        self._refreeze()
        if not isinstance(self.decoder, zoo.layers.Decoder):
            raise TypeError(f"decoder must be a zoo.layers.Decoder, got "
                            f"{type(self.decoder).__name__}")
        self.max_target_length = check_positive_int("max_target_length", max_target_length)
        self.max_source_length = check_positive_int("max_source_length", max_source_length)
        self._check_positions("max_source_length", self.max_source_length, self.encoder)
        self._check_positions("max_target_length", self.max_target_length, self.decoder)
        if self.max_source_length < 2:
            raise ValueError("max_source_length must leave room for one id and eos (>= 2)")
        self.preset = preset
        self.share_embeddings = bool(share_embeddings)
        if forced_first_id is not None and not 0 <= int(forced_first_id) < \
                self.decoder.vocab_size:
            raise ValueError(f"forced_first_id must be a target id in [0, "
                             f"{self.decoder.vocab_size}), got {forced_first_id}")
        # What every decoding writes first (BART's <s>), in Keras and every export alike.
        self.forced_first_id = None if forced_first_id is None else int(forced_first_id)
        self.source_tokenizer = None
        self.target_tokenizer = None
        # Compiled decoding functions by settings; in a plain object, not a dict attribute,
        # which Keras and TensorFlow would track (and fail to export).
        self._compiled = _FunctionCache()
        self.copy_whole_words = copy_whole_words
        if self.share_embeddings:
            self._share_embeddings()
        self._meta = None

    @staticmethod
    def _check_positions(name, length, network):
        """A network with a table of learned positions reads no position beyond it."""
        if getattr(network, "positions", None) == "learned" and length > network.max_positions:
            raise ValueError(f"{name}={length} is beyond the {type(network).__name__}'s "
                             f"{network.max_positions} learned positions")

    @property
    def copy_whole_words(self) -> bool:
        """Whether a copied word is finished as its source word (settable: decoding only)."""
        return self._copy_whole_words

    @copy_whole_words.setter
    def copy_whole_words(self, value):
        if value and not self.decoder.copy:
            raise ValueError("copy_whole_words needs a copying decoder (copy=True): it "
                             "constrains the words the decoder copies")
        self._copy_whole_words = bool(value)
        self._compiled.functions.clear()  # graphs traced with the other setting

    def _share_embeddings(self):
        from zoo.layers.embedding import TokenEmbedding

        enc = getattr(self.encoder, "embedding", None)
        dec = getattr(self.decoder, "embedding", None)
        if not isinstance(enc, TokenEmbedding) or not isinstance(dec, TokenEmbedding):
            raise ValueError(f"share_embeddings: the encoder ({type(self.encoder).__name__}) "
                             f"and the decoder ({type(self.decoder).__name__}) must both "
                             f"have a TokenEmbedding `embedding`")
        ours, theirs = enc.get_config(), dec.get_config()
        for key in ("vocab_size", "dim", "positional", "scale"):
            if ours[key] != theirs[key]:
                raise ValueError(f"share_embeddings: the encoder's embedding has {key}="
                                 f"{ours[key]!r}, the decoder's {theirs[key]!r}; they must "
                                 f"match (one joint vocabulary, one embedding size)")
        if self.decoder.built or self.encoder.built:
            raise ValueError("share_embeddings: the networks must not be built yet")
        # The decoder drops its own (unbuilt) embedding and tracks the encoder's: one set of
        # variables, saved once (Keras saves a shared layer at its first path).
        self.decoder._tracker.untrack(dec)
        self.decoder.embedding = enc

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_preset(cls, name, tokenizer=None, target_tokenizer=None, vocab_size=None,
                    target_vocab_size=None, dtype=None, max_target_length=128,
                    max_source_length=256, encoder=None, decoder=None, share_embeddings=False,
                    copy_whole_words=None, **overrides):
        """Builds a model from a preset of its task (``zoo.models.presets.names(task)``).

        Args:
            name: Preset name, e.g. ``"rnn_bahdanau"``, ``"transformer_small"``.
            tokenizer: Source tokenizer (also the target one unless ``target_tokenizer``);
                gives the vocabulary sizes and lets the text methods take strings.
            target_tokenizer: A separate target tokenizer.
            vocab_size: Source vocabulary size, when no tokenizer is given.
            target_vocab_size: Target vocabulary size (default: ``vocab_size``).
            dtype: Keras dtype policy, e.g. ``"mixed_float16"`` (loss scaling is then added
                by ``compile``).
            max_target_length: Default maximum generated length.
            max_source_length: Source ids kept per text (eos included).
            encoder: Overrides for the encoder config only, e.g. ``{"units": 128}``.
            decoder: Overrides for the decoder config only.
            share_embeddings: One embedding for the encoder and the decoder (needs one
                vocabulary: a single tokenizer, or equal sizes).
            copy_whole_words: See the class (default: the preset's ``copy_whole_words`` when
                the decoder copies and a tokenizer is given).
            **overrides: Values for keys of the encoder/decoder configs (applied to every
                network that has the key), e.g. ``attention="coverage"``, ``dropout=0.2``.

        Returns:
            An unbuilt model (weights are created on first call or ``build``).
        """
        preset = _presets.get_preset(name)
        if preset.get("weights"):  # a trained checkpoint: its own tokenizer and sizes
            return cls._from_checkpoint(name, preset, tokenizer, overrides, encoder, decoder)
        preset_cls = REGISTRY.get_class(preset["class"])
        if not issubclass(preset_cls, cls):
            raise ValueError(f"preset {name!r} builds a {preset_cls.__name__}, not a "
                             f"{cls.__name__}; presets of this task: "
                             f"{', '.join(_presets.names(cls.task))}")
        target_tokenizer = target_tokenizer or tokenizer
        src_v = tokenizer.vocab_size if tokenizer is not None else vocab_size
        tgt_v = target_tokenizer.vocab_size if target_tokenizer is not None else (
            target_vocab_size or vocab_size)
        if src_v is None or tgt_v is None:
            raise ValueError("from_preset needs a tokenizer or vocab_size")
        enc, dec = preset["config"]["encoder"], preset["config"]["decoder"]
        options = {id(net): _options(net) for net in (enc, dec)}
        known = options[id(enc)] | options[id(dec)]
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"preset {name!r} has no option {unknown[0]!r}; options: "
                             f"{', '.join(sorted(known))}")
        for k, v in overrides.items():
            for net in (enc, dec):
                if k in options[id(net)]:
                    net["config"][k] = v
        for role, net, own in (("encoder", enc, encoder), ("decoder", dec, decoder)):
            for k, v in (own or {}).items():
                if k not in options[id(net)]:
                    raise ValueError(f"preset {name!r} {role} has no option {k!r}; options: "
                                     f"{', '.join(sorted(options[id(net)]))}")
                net["config"][k] = v
        enc["config"]["vocab_size"], dec["config"]["vocab_size"] = int(src_v), int(tgt_v)
        if dtype is not None:
            enc["config"]["dtype"] = dec["config"]["dtype"] = dtype
        model = preset_cls(encoder=enc, decoder=dec, max_target_length=max_target_length,
                           max_source_length=max_source_length, preset=name, dtype=dtype,
                           share_embeddings=share_embeddings,
                           copy_whole_words=_whole_words_default(preset, dec, tokenizer)
                           if copy_whole_words is None else copy_whole_words)
        model.source_tokenizer, model.target_tokenizer = tokenizer, target_tokenizer
        return model

    @classmethod
    def _from_checkpoint(cls, name, preset, tokenizer, overrides, encoder, decoder):
        """The trained model of a checkpoint preset (``from_preset``'s other arguments are
        the architecture's, which the checkpoint fixes)."""
        if tokenizer is not None or overrides or encoder or decoder:
            raise ValueError(f"preset {name!r} is a trained checkpoint with its own tokenizer "
                             f"and architecture: load it without tokenizer or overrides")
        model = cls.load(name)
        model.preset = name
        return model

    def build(self, input_shape=None):
        self.encoder.build((None, None))
        dim = self.encoder.output_dim
        self.decoder.build((None, None), {"outputs": (None, None, dim), "mask": (None, None),
                                          "final": (None, dim)})
        self._refreeze()  # the sublayers and variables that build made
        self.built = True

    def _refreeze(self):
        """Passes a frozen network's flag (from its config: a fine-tuned model that froze it)
        down to its sublayers and variables, so that a loaded model trains, and restores its
        optimizer, as it was saved. Keras skips setting an unchanged value: hence the two."""
        for net in (self.encoder, self.decoder):
            if not net.trainable:
                net.trainable = True
                net.trainable = False

    # ------------------------------------------------------------------ endpoints
    def call(self, inputs, training=None):
        self._check_inputs(inputs)
        encoded = self._encode(inputs["source"], training)
        return self.decoder(inputs["target"], encoded, training=training)

    def _check_inputs(self, inputs):
        if not isinstance(inputs, dict) or not {"source", "target"} <= set(inputs):
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ValueError(f"{type(self).__name__} expects inputs {{'source': ids "
                             f"(batch, S), 'target': ids (batch, T)}}; got {got}")

    def _encode(self, source_ids, training):
        encoded = self.encoder(source_ids, training=training)
        if self.decoder.needs_source_ids:  # the copy distribution scatters onto them
            encoded = {**encoded, "source_ids": ops.cast(source_ids, "int32")}
        return encoded

    def forward(self, source_ids, target_ids, training=False):
        """Teacher forcing with the attention weights: ``{"logits", "attention", "p_gen"}``
        (see ``zoo.layers.Decoder.forward``)."""
        if not self.built:
            self.build()
        encoded = self._encode(source_ids, training)
        return self.decoder.forward(target_ids, encoded, training=training)

    def copy_gate(self, source_ids, tokens):
        """The generation probability ``p_gen`` at each of ``tokens`` (one output, its
        source ids), teacher-forced; None for a model that does not copy."""
        if not getattr(self.decoder, "copy", False):
            return None
        target_in = np.concatenate([[BOS_ID], np.asarray(tokens)[:-1]])[None].astype("int32")
        source = np.asarray(source_ids)[None].astype("int32")
        return ops.convert_to_numpy(self.forward(source, target_in)["p_gen"])[0]

    def forward_rows(self, source_ids, target_ids, rows, training=False):
        """Teacher forcing, the logits at ``rows`` only: ``(N, V)`` float32 (see
        ``zoo.layers.Decoder.forward_rows``). The training step's forward pass."""
        if not self.built:
            self.build()
        # Keras clears the layers' added losses when a call enters the model; this pass
        # enters below it, so it clears them itself (the step collects the coverage loss).
        self._clear_losses()
        encoded = self._encode(source_ids, training)
        return self.decoder.forward_rows(target_ids, encoded, rows, training=training)

    def train_step(self, data):
        """Keras's step; with ``SequenceLoss`` on TensorFlow (without XLA), on the real
        labels only (``zoo.training.steps.train_step_on_rows``): no ``(batch, T, V)`` logits."""
        from zoo.training import SequenceLoss

        if self.decoder.pack_training and isinstance(self.loss, SequenceLoss):
            from zoo.training.steps import train_step_on_rows

            return train_step_on_rows(self, data)
        return super().train_step(data)

    def encode(self, source_ids, training=False):
        """Source ids ``(batch, S)`` (0 = padding) -> the encoder's output dict."""
        if not self.built:
            self.build()
        return self._encode(source_ids, training)

    def prepare_memory(self, encoded):
        """The decoder's constant input from ``encode``'s output (projected once per source)."""
        if not self.built:
            self.build()
        return self.decoder.prepare_memory(encoded)

    def initial_state(self, encoded, max_length=None, growing=False):
        """Decoder state for ``decode_step`` (Transformers: a cache of ``max_length``
        positions, or with ``growing`` one that grows a position a step)."""
        if not self.built:
            self.build()
        state = self.decoder.initial_state(encoded, max_length or self.max_target_length,
                                           growing=growing)
        if not self.copy_whole_words:
            return state
        return {"decoder": state, "words": whole_words.initial(encoded["mask"])}

    def decode_step(self, token_ids, state, memory, training=False):
        """One step: ``(logits (batch, V) float32, state, weights (batch, S))``."""
        if not self.copy_whole_words:
            return self.decoder.step(token_ids, state, memory, training=training)
        logits, inner, weights = self.decoder.step(token_ids, state["decoder"], memory,
                                                   training=training)
        words, banned = whole_words.step(token_ids, state["words"], memory["source_ids"],
                                         self._piece_kinds())
        logits = ops.where(banned, whole_words.BANNED, logits)
        return logits, {"decoder": inner, "words": words}, weights

    def _piece_kinds(self):
        """The target vocabulary's ``whole_words.piece_kinds`` (a graph constant)."""
        if self.target_tokenizer is None:
            raise ValueError("copy_whole_words needs the target tokenizer: build with "
                             "from_preset(..., tokenizer=...) or load with .load(dir)")
        tok = self.target_tokenizer
        kinds = self._compiled.piece_kinds.get(id(tok))
        if kinds is None:
            kinds = whole_words.piece_kinds(tok.id_to_piece(range(tok.vocab_size)),
                                            tok.user_symbols())
            self._compiled.piece_kinds = {id(tok): kinds}
        return ops.convert_to_tensor(kinds)

    def decode(self, source_ids, strategy, max_length, min_length=0):
        """The decoding graph, written once: encode -> memory and state -> ``strategy``.

        Every caller (``generate``, each exporter) builds its loop here.

        Args:
            source_ids: ``(batch, S)`` int32 tensor.
            strategy: A ``zoo.decoding.Strategy`` instance.
            max_length: Maximum generated tokens (a Python int).
            min_length: Minimum tokens before eos.

        Returns:
            :class:`zoo.decoding.DecodingResult`.
        """
        encoded = self.encode(source_ids)
        shape = ops.shape(source_ids)
        # A loop whose shapes may change gets the state that grows (cheaper per step).
        state = self.initial_state(encoded, max_length, growing=not strategy.static_shapes)
        return strategy(self.decode_step, state,
                        self.prepare_memory(encoded), shape[0], shape[1], max_length,
                        bos_id=BOS_ID, eos_id=EOS_ID, pad_id=PAD_ID, min_length=min_length,
                        memory_mask=encoded["mask"], first_id=self.forced_first_id)

    def generate(self, source_ids, strategy="greedy", max_length=None, min_length=0,
                 compiled=True, jit_compile=False, **strategy_kwargs):
        """Decodes source ids with any ``zoo.decoding`` strategy.

        Args:
            source_ids: ``(batch, S)`` int ids with eos, 0-padded.
            strategy: ``"greedy"``, ``"beam"``, ``"sampling"``, a config or a Strategy.
            max_length: Maximum target tokens (default ``max_target_length``).
            min_length: Minimum target tokens before eos.
            compiled: Run the whole loop as one ``tf.function`` graph (cached per settings).
            jit_compile: Compile that graph with XLA.
            **strategy_kwargs: For a strategy name: ``beam_size``, ``length_penalty``...

        Returns:
            :class:`zoo.decoding.DecodingResult`.
        """
        if isinstance(strategy, str):
            strategy_kwargs = check_decoding(strategy, strategy_kwargs)
        strat = decoding.get(strategy, **strategy_kwargs)
        if jit_compile:
            strat = strat.with_static_shapes()  # XLA compiles constant shapes only
        max_length = check_positive_int("max_length", max_length or self.max_target_length)
        self._check_positions("max_length", max_length, self.decoder)
        min_length = check_decoding("greedy", {"min_length": min_length,
                                               "max_length": max_length})["min_length"]
        source_ids = self._check_source_ids(source_ids)

        def run(ids):
            return self.decode(ids, strat, max_length, min_length)

        if not compiled or keras.backend.backend() != "tensorflow":
            return run(source_ids)
        if not self.built:  # variables made inside the trace would make it trace twice
            self.build()
        key = (type(strat).__name__, json.dumps(strat.get_config(), sort_keys=True),
               max_length, min_length, bool(jit_compile))
        fn = self._compiled.functions.get(key)
        if fn is None:
            import tensorflow as tf

            # autograph=False: the loops are keras.ops while-loops, and converting every
            # called function's source only slows tracing.
            fn = tf.function(run, jit_compile=jit_compile, reduce_retracing=True, autograph=False,
                             input_signature=[tf.TensorSpec((None, None), tf.int32)])
            self._compiled.functions[key] = fn
        return fn(source_ids)

    def _check_source_ids(self, source_ids):
        """``(batch, S)`` int32 ids inside the vocabulary, each row with at least one id; an
        :class:`InputError` naming the row otherwise (checked eagerly, before decoding)."""
        import numpy as np

        if hasattr(source_ids, "numpy") or isinstance(source_ids, (list, tuple, np.ndarray)):
            ids = np.asarray(source_ids)
            if ids.ndim != 2:
                raise InputError("source_ids", f"source_ids must be (batch, S), got shape "
                                               f"{ids.shape}")
            if ids.size and not np.issubdtype(ids.dtype, np.integer):
                raise InputError("source_ids", f"source_ids must be integer ids, got "
                                               f"{ids.dtype}")
            vocab = self.encoder.vocab_size
            bad = np.argwhere((ids < 0) | (ids >= vocab))
            if bad.size:
                r, c = bad[0]
                raise InputError(f"source_ids[{r}]", f"source_ids[{r}][{c}] is {ids[r, c]}, "
                                                     f"outside the vocabulary [0, {vocab})")
            empty = np.flatnonzero((ids != PAD_ID).sum(-1) == 0) if ids.shape[1] else \
                np.arange(ids.shape[0])
            if empty.size:
                raise InputError(f"source_ids[{empty[0]}]", f"source_ids[{empty[0]}] holds no "
                                                           f"id (all padding)")
        source_ids = ops.convert_to_tensor(source_ids, "int32")
        if len(source_ids.shape) != 2:
            raise InputError("source_ids", f"source_ids must be (batch, S), got shape "
                                           f"{tuple(source_ids.shape)}")
        return source_ids

    def encode_texts(self, texts: Sequence[str]):
        """Strings -> source ids ``(batch, S)`` (truncated to ``max_source_length`` with a
        warning)."""
        from zoo.data.pipeline import encode_sources

        return encode_sources(texts, self.source_tokenizer, self.max_source_length)

    @property
    def task_spec(self):
        """This model's :class:`zoo.tasks.Task` (its default decoding, metric and verb)."""
        from zoo import tasks

        return tasks.TASKS.get(self.task) or tasks.Task(self.task, type(self).__name__)

    def generate_text(self, texts: Sequence[str], strategy=None, batch_size=64,
                      max_length=None, return_result=False, **strategy_kwargs):
        """Strings in, strings out (the best hypothesis of each).

        Args:
            texts: Input strings; an empty list gives an empty list.
            strategy: As in ``generate``; None: the task's default decoding
                (``self.task_spec.decoding``, declared in ``zoo.tasks``), with the options
                given here over it.
            batch_size: Texts per decoding batch (sorted by length to cut padding).
            max_length: As in ``generate``.
            return_result: Also return the per-text ``(token ids, attention)`` of the best
                hypothesis (attention cropped to the real lengths).
            **strategy_kwargs: As in ``generate``.

        Returns:
            A list of strings, or ``(strings, details)`` with ``return_result``.

        Raises:
            zoo.inputs.InputError: For texts or options that break the input contract.
        """
        if self.source_tokenizer is None or self.target_tokenizer is None:
            raise ValueError(f"{type(self).__name__} needs tokenizers for text: build with "
                             f"from_preset(..., tokenizer=...) or load with .load(dir)")
        texts = check_texts(texts)
        batch_size = check_positive_int("batch_size", batch_size)
        if strategy is None or isinstance(strategy, str):
            strategy_kwargs = self.task_spec.decoding_options(
                strategy=strategy, max_length=max_length, **strategy_kwargs)
            strategy = strategy_kwargs.pop("strategy")
            strategy_kwargs = check_decoding(strategy, {"max_length": max_length,
                                                        **strategy_kwargs})
            max_length = strategy_kwargs.pop("max_length", None)
        if not texts:
            return ([], []) if return_result else []
        src_all = self.encode_texts(texts).numpy()
        lengths_all = (src_all != PAD_ID).sum(1)
        order = sorted(range(len(texts)), key=lambda i: int(lengths_all[i]))
        out: List[Optional[str]] = [None] * len(texts)
        details = [None] * len(texts)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = int(max(lengths_all[i] for i in idx))
            src = src_all[idx, :width]
            res = self.generate(src, strategy=strategy, max_length=max_length,
                                **strategy_kwargs)
            best = ops.convert_to_numpy(res.tokens[:, 0])
            strings = self.target_tokenizer.detokenize(best).numpy()
            if return_result:
                lengths = ops.convert_to_numpy(res.lengths[:, 0])
                attn = ops.convert_to_numpy(res.attention[:, 0])
            for j, i in enumerate(idx):
                out[i] = strings[j].decode("utf-8", "replace")  # BPE: bytes, not pieces
                if return_result:
                    s_len = int(lengths_all[i])
                    details[i] = {"source_ids": src[j, :s_len],
                                  "tokens": best[j, :lengths[j]],
                                  "attention": attn[j, :lengths[j], :s_len]}
        return (out, details) if return_result else out

    # ------------------------------------------------------------------ training
    def fit(self, *args, **kwargs):
        """``keras.Model.fit``; a ``tf.data`` input (which shuffles itself, as
        ``zoo.data.make_dataset`` does) is not asked to shuffle again."""
        x = args[0] if args else kwargs.get("x")
        if "shuffle" not in kwargs and len(args) < 9 and \
                keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            if isinstance(x, (tf.data.Dataset, tf.distribute.DistributedDataset)):
                kwargs["shuffle"] = False
        return super().fit(*args, **kwargs)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if getattr(self, "_distribute_strategy", None) is None:
            # Keras leaves building to the first trace of the step here; variables made in a
            # trace make tf.function trace the step a second time.
            self._build_variables()
            return None
        # Keras 3.15 (TensorFlow backend) averages the first batch over the replicas to learn
        # its shapes, which MultiWorkerMirroredStrategy cannot do for a dict of int batches
        # (keras-team/keras#20585). One replica's part has the shapes it needs.
        if iterator is not None and data_batch is None and \
                getattr(self, "_distribute_strategy", None) is not None:
            from zoo.training.distribute import first_local_batch

            data_batch = first_local_batch(iterator, self._distribute_strategy)
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _build_variables(self):
        """The network's and the optimizer's variables, made eagerly before any step."""
        if not self.built:
            self.build()
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Keras's, with each value of rank 1 inside a multi-worker step: Keras 3.15 averages
        a step's logs over the workers along axis 0, which a scalar does not have."""
        results = super().compute_metrics(x, y, y_pred, sample_weight)
        from zoo.training.distribute import in_multi_worker_step

        if in_multi_worker_step():
            results = {k: ops.reshape(v, (1,)) for k, v in results.items()}
        return results

    def compile(self, optimizer="adam", loss=None, metrics=None, learning_rate=1e-3,
                warmup_steps=None, label_smoothing=0.1, clipnorm=1.0, jit_compile=False,
                decay_steps=None, **kwargs):
        """``keras.Model.compile`` with sequence-to-sequence defaults.

        Args:
            optimizer: ``"adam"`` builds :class:`zoo.training.Adam` (beta_2 0.98) with
                ``learning_rate``, ``warmup_steps`` and ``clipnorm``; or any Keras optimizer.
            loss: Default: :class:`zoo.training.SequenceLoss` (masked, ``label_smoothing``).
                Losses on the attention weights (coverage) are added to it in training.
            metrics: Default: token accuracy.
            learning_rate: Peak learning rate.
            warmup_steps: If set, linear warm-up then inverse square-root decay.
            decay_steps: If set, the rate instead decays linearly from the end of the
                warm-up to zero at this update (:class:`zoo.training.LinearDecaySchedule`,
                for a run with a fixed number of updates).
            label_smoothing: For the default loss.
            clipnorm: Gradient norm clipping for the default optimizer (None: off).
            jit_compile: XLA for the train step (off by default: on CPU and with bucketed
                shapes it is slower).
            **kwargs: Passed to ``keras.Model.compile``.
        """
        from zoo.training import (Adam, InverseSqrtSchedule, LinearDecaySchedule, SequenceLoss,
                                  TokenAccuracy)

        if jit_compile is True and not self.decoder.supports_xla_training:
            raise ValueError(
                f"jit_compile=True: XLA cannot compile the training step of a "
                f"{type(self.decoder).__name__} (the gradient of its scan over a dynamic "
                f"target length); train it without XLA. Transformer presets train with XLA, "
                f"and generate(..., jit_compile=True) works for every model.")
        if isinstance(optimizer, str) and optimizer == "adam":
            if decay_steps:
                lr = LinearDecaySchedule(learning_rate, warmup_steps or 0, decay_steps)
            elif warmup_steps:
                lr = InverseSqrtSchedule(learning_rate, warmup_steps)
            else:
                lr = learning_rate
            optimizer = Adam(lr, beta_2=0.98, epsilon=1e-9, clipnorm=clipnorm)
        # Skipping the padding gathers a data-dependent number of rows: for graphs that allow
        # dynamic shapes, TensorFlow without XLA.
        packing = keras.backend.backend() == "tensorflow" and not jit_compile
        for network in (self.encoder, self.decoder):
            if hasattr(network, "pack_training"):
                network.pack_training = packing
        loss = SequenceLoss(label_smoothing=label_smoothing) if loss is None else loss
        metrics = [TokenAccuracy()] if metrics is None else metrics
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics,
                        jit_compile=jit_compile, **kwargs)

    def compile_from_config(self, config):
        """Restores the compiled state on load (optimizer with its slots, loss, metrics)."""
        from keras.src.saving import serialization_lib

        config = serialization_lib.deserialize_keras_object(config)
        super().compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # ------------------------------------------------------------------ files
    def save(self, filepath, overwrite=True, **kwargs):
        """Saves to a directory (model + tokenizers + ``zoo.json``) or, for ``*.keras``, a file.

        The directory is written beside its destination and renamed into place, so a crash
        leaves either the previous model or the new one, never a mix. ``overwrite`` replaces
        only a directory that zoo wrote; a directory of other files is never replaced.

        Args:
            filepath: A directory, or a ``.keras`` file (weights and config only).
            overwrite: Replace an existing model.
            **kwargs: For a ``.keras`` file, passed to ``keras.Model.save``.

        Returns:
            The path.
        """
        from zoo.files import staged_directory

        path = os.fspath(filepath)
        if path.endswith((".keras", ".h5")):
            return super().save(path, overwrite=overwrite, **kwargs)
        if self.source_tokenizer is None:
            raise ValueError("save(dir) needs the tokenizers (a model built without them can "
                             "be saved to a .keras file)")
        with staged_directory(path, overwrite=overwrite, what="model directory") as tmp:
            self.write_files(tmp)
        return path

    def write_files(self, directory):
        """Writes the model's files into an existing directory (not atomically: ``save``
        stages through this)."""
        if not self.built:
            self.build()
        from zoo.data.tokenizer_files import write_tokenizers

        super().save(os.path.join(directory, "model.keras"), overwrite=True)
        files = write_tokenizers(self.source_tokenizer, self.target_tokenizer, directory)
        meta = {"format": FORMAT_VERSION, "task": self.task, "class": type(self).__name__,
                "preset": self.preset, "zoo_version": __import__("zoo").__version__,
                "source_tokenizer": files["source"], "target_tokenizer": files["target"],
                "special_ids": dict(SPECIAL_IDS),
                **({"extra": self._meta} if self._meta else {})}
        with open(os.path.join(directory, META_FILE), "w") as f:
            json.dump(meta, f, indent=2)

    @classmethod
    def load(cls, path) -> "Seq2Seq":
        """Loads a saved model (Keras ``safe_mode=True``).

        ``Seq2Seq.load`` (or ``zoo.models.load``) loads any task; a task class only its own.
        ``path`` is a directory written by ``save(dir)``, a checkpoint directory, a shipped
        checkpoint's name (``zoo.models.presets.checkpoint_names()``), an archive of either
        or a URL with its SHA-256 (:func:`zoo.models.hub.resolve`).

        Raises:
            FileNotFoundError: No such directory, or not a saved zoo model.
            ModelFileError: A file of the model cannot be read (the message names it).
        """
        from zoo.data.tokenizer_files import load_tokenizer
        from zoo.models import hub

        path = hub.resolve(os.fspath(path))
        meta_path = os.path.join(path, META_FILE)
        if not os.path.exists(meta_path):
            meta_path = os.path.join(path, _LEGACY_META)
        if not os.path.exists(meta_path):
            raise FileNotFoundError(f"{path} is not a saved zoo model (no {META_FILE}; write "
                                    f"one with model.save(dir))")
        meta = read_json(meta_path)
        if meta.get("format") not in (1, FORMAT_VERSION):
            raise ModelFileError(f"{meta_path}: format {meta.get('format')!r} is not "
                                 f"supported (this zoo reads formats 1 and {FORMAT_VERSION})")
        class_name = meta.get("class", "Translator")
        if class_name not in REGISTRY:
            raise ModelFileError(f"{meta_path}: unknown model class {class_name!r} (known: "
                                 f"{', '.join(REGISTRY.names())})")
        if not issubclass(REGISTRY.get_class(class_name), cls):
            raise ModelFileError(f"{path} holds a {class_name} (task "
                                 f"{meta.get('task')!r}), not a {cls.__name__}")
        if "checkpoint" in meta:
            hub.verify(path, meta)
            model = hub.build_from_checkpoint(path, meta)
        else:
            model = cls._read_model_file(path)
        if not isinstance(model, cls):
            raise ModelFileError(f"{path} holds a {type(model).__name__}, not a "
                                 f"{cls.__name__}")
        model.source_tokenizer = load_tokenizer(os.path.join(path, meta["source_tokenizer"]))
        model.target_tokenizer = (model.source_tokenizer
                                  if meta["target_tokenizer"] == meta["source_tokenizer"] else
                                  load_tokenizer(os.path.join(path, meta["target_tokenizer"])))
        model._meta = meta.get("extra")
        return model

    @staticmethod
    def _read_model_file(path):
        """The Keras model of a saved directory's ``model.keras`` (``safe_mode=True``)."""
        model_file = os.path.join(path, "model.keras")
        if not os.path.exists(model_file):
            raise FileNotFoundError(f"{model_file}: missing (the model directory is "
                                    f"incomplete)")
        import zipfile

        if not zipfile.is_zipfile(model_file):  # Keras would say "File not found"
            raise ModelFileError(f"{model_file}: not a complete .keras archive (the file is "
                                 f"cut short or of another kind); save the model again")
        try:
            model = keras.saving.load_model(model_file, safe_mode=True)
        except Exception as err:  # noqa: BLE001  (zip, h5py and Keras errors alike)
            reason = " ".join(str(err).split()) or type(err).__name__
            if "safe_mode" in reason or "unsafe" in reason.lower():
                raise ModelFileError(f"{model_file}: refused by Keras safe mode (it holds code "
                                     f"that would run on load, such as a Lambda layer; zoo "
                                     f"loads only safe models): {reason}") from None
            raise ModelFileError(f"{model_file}: cannot be read; the file is damaged or "
                                 f"incomplete ({type(err).__name__}: {reason})") from None
        return model

    def get_config(self):
        return {**super().get_config(),
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "decoder": keras.saving.serialize_keras_object(self.decoder),
                "max_target_length": self.max_target_length,
                "max_source_length": self.max_source_length, "preset": self.preset,
                "share_embeddings": self.share_embeddings,
                "copy_whole_words": self.copy_whole_words,
                "forced_first_id": self.forced_first_id}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def read_json(path):
    """A JSON file, or a :class:`ModelFileError` naming the file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    except UnicodeDecodeError:
        raise ModelFileError(f"{path}: not UTF-8 text") from None


#: Model classes by task class name (``"translator"``); registering one also registers it
#: for Keras serialization under the package "zoo".
REGISTRY = Registry("model", base=Seq2Seq)


def register(name: str):
    """Class decorator: registers a task class as ``name`` and by its class name (which
    presets and saved models use)."""
    def decorator(cls):
        alias = cls.__name__.lower()
        return REGISTRY.register(name, aliases=() if alias == name else (alias,))(cls)
    return decorator


def load(path) -> Seq2Seq:
    """Loads any saved zoo model (the task comes from its ``zoo.json``)."""
    return Seq2Seq.load(path)
