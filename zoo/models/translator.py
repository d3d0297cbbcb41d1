"""The Translator: an encoder network + a decoder network, trained with ``fit``."""

from __future__ import annotations

import json
import os
from typing import List, Optional, Sequence

import keras
from keras import ops

import zoo.layers  # noqa: F401  (registers the networks for loading)
import zoo.training  # noqa: F401  (registers the loss, metric and schedule for loading)
from zoo import decoding
from zoo.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from zoo.models import presets as _presets

_NETWORKS = ("RNNEncoder", "RNNDecoder", "TransformerEncoder", "TransformerDecoder")
FORMAT_VERSION = 1


def _network(obj, role):
    if isinstance(obj, keras.layers.Layer):
        return obj
    if isinstance(obj, dict) and "class_name" in obj:
        name = obj["class_name"]
        if name in _NETWORKS:
            return getattr(zoo.layers, name).from_config(dict(obj.get("config") or {}))
        return keras.saving.deserialize_keras_object(obj)
    raise ValueError(f"Translator {role} must be a layer or a config dict with 'class_name' "
                     f"(one of {', '.join(_NETWORKS)}), got {type(obj).__name__}")


@keras.saving.register_keras_serializable(package="zoo")
class Translator(keras.Model):
    """Sequence-to-sequence translator: ``encoder`` + ``decoder`` networks from ``zoo.layers``.

    Public endpoints (what decoding and export use):

    * ``call({"source": (batch, S), "target": (batch, T)})`` -> logits ``(batch, T, V)``:
      teacher forcing, what ``fit`` trains (labels: the target shifted left).
    * ``encode(source_ids)`` -> the encoder's output dict (``outputs``, ``mask``...).
    * ``prepare_memory(encoded)`` -> memory: what every decoder step reads and never changes
      (the attention's projected keys/values).
    * ``initial_state(encoded, max_length)`` -> decoder state, what every step changes (RNN
      states, or a fixed-size key/value cache for Transformers).
    * ``decode_step(token_ids (batch,), state, memory)`` -> ``(logits (batch, V), state,
      weights (batch, S))``.
    * ``generate(source_ids, strategy)`` -> :class:`zoo.decoding.DecodingResult`;
      ``translate(texts)`` -> strings (needs tokenizers: ``from_preset(..., tokenizer=)``
      or ``Translator.load(dir)``).

    Args:
        encoder: An encoder network or its config.
        decoder: A decoder network or its config.
        max_target_length: Default maximum generated length.
        preset: Name of the preset it was built from (informational).
        **kwargs: Keras model arguments (``name``, ``dtype``).

    Example:
        >>> from zoo.data import SentencePieceTokenizer
        >>> tok = SentencePieceTokenizer.train(["hola mundo", "hello world"] * 20, vocab_size=24)
        >>> model = Translator.from_preset("rnn_tiny", tokenizer=tok)
        >>> len(model.translate(["hola mundo"], max_length=5))
        1
    """

    def __init__(self, encoder, decoder, max_target_length=128, preset=None, **kwargs):
        super().__init__(**kwargs)
        self.encoder = _network(encoder, "encoder")
        self.decoder = _network(decoder, "decoder")
        self.max_target_length = int(max_target_length)
        self.preset = preset
        self.source_tokenizer = None
        self.target_tokenizer = None
        self._compiled_generate = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_preset(cls, name, tokenizer=None, target_tokenizer=None, vocab_size=None,
                    target_vocab_size=None, dtype=None, max_target_length=128, encoder=None,
                    decoder=None, **overrides):
        """Builds a translator from a preset (``zoo.models.presets.names()``).

        Args:
            name: Preset name, e.g. ``"rnn_bahdanau"``, ``"transformer_small"``.
            tokenizer: Source tokenizer (also the target one unless ``target_tokenizer``);
                gives the vocabulary sizes and lets ``translate`` take strings.
            target_tokenizer: A separate target tokenizer.
            vocab_size: Source vocabulary size, when no tokenizer is given.
            target_vocab_size: Target vocabulary size (default: ``vocab_size``).
            dtype: Keras dtype policy, e.g. ``"mixed_float16"`` (loss scaling is then added
                by ``compile``).
            max_target_length: Default maximum generated length.
            encoder: Overrides for the encoder config only, e.g. ``{"units": 128}``.
            decoder: Overrides for the decoder config only.
            **overrides: Values for keys of the encoder/decoder configs (applied to every
                network that has the key), e.g. ``attention="coverage"``, ``dropout=0.2``.

        Returns:
            An unbuilt :class:`Translator` (weights are created on first call or ``build``).
        """
        preset = _presets.get_preset(name)
        target_tokenizer = target_tokenizer or tokenizer
        src_v = tokenizer.vocab_size if tokenizer is not None else vocab_size
        tgt_v = target_tokenizer.vocab_size if target_tokenizer is not None else (
            target_vocab_size or vocab_size)
        if src_v is None or tgt_v is None:
            raise ValueError("from_preset needs a tokenizer or vocab_size")
        enc, dec = preset["config"]["encoder"], preset["config"]["decoder"]
        known = set(enc["config"]) | set(dec["config"])
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"preset {name!r} has no option {unknown[0]!r}; options: "
                             f"{', '.join(sorted(known))}")
        for k, v in overrides.items():
            for net in (enc, dec):
                if k in net["config"]:
                    net["config"][k] = v
        for role, net, own in (("encoder", enc, encoder), ("decoder", dec, decoder)):
            for k, v in (own or {}).items():
                if k not in net["config"]:
                    raise ValueError(f"preset {name!r} {role} has no option {k!r}; options: "
                                     f"{', '.join(sorted(net['config']))}")
                net["config"][k] = v
        enc["config"]["vocab_size"], dec["config"]["vocab_size"] = int(src_v), int(tgt_v)
        if dtype is not None:
            enc["config"]["dtype"] = dec["config"]["dtype"] = dtype
        model = cls(encoder=enc, decoder=dec, max_target_length=max_target_length,
                    preset=name, dtype=dtype)
        model.source_tokenizer, model.target_tokenizer = tokenizer, target_tokenizer
        return model

    def build(self, input_shape=None):
        self.encoder.build((None, None))
        dim = self.encoder.output_dim
        self.decoder.build((None, None), {"outputs": (None, None, dim), "mask": (None, None),
                                          "final": (None, dim)})
        self.built = True

    # ------------------------------------------------------------------ endpoints
    def call(self, inputs, training=None):
        if not isinstance(inputs, dict) or not {"source", "target"} <= set(inputs):
            got = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ValueError(f"Translator expects inputs {{'source': ids (batch, S), 'target': "
                             f"ids (batch, T)}}; got {got}")
        memory = self.encoder(inputs["source"], training=training)
        return self.decoder(inputs["target"], memory, training=training)

    def encode(self, source_ids, training=False):
        """Source ids ``(batch, S)`` (0 = padding) -> the encoder's output dict."""
        if not self.built:
            self.build()
        return self.encoder(source_ids, training=training)

    def prepare_memory(self, encoded):
        """The decoder's constant input from ``encode``'s output (projected once per source)."""
        if not self.built:
            self.build()
        return self.decoder.prepare_memory(encoded)

    def initial_state(self, encoded, max_length=None):
        """Decoder state for ``decode_step`` (Transformers: a cache of ``max_length``)."""
        if not self.built:
            self.build()
        return self.decoder.initial_state(encoded, max_length or self.max_target_length)

    def decode_step(self, token_ids, state, memory, training=False):
        """One step: ``(logits (batch, V) float32, state, weights (batch, S))``.

        ``state`` comes from ``initial_state`` or the previous step; ``memory`` from
        ``prepare_memory`` (the same for every step).
        """
        return self.decoder.step(token_ids, state, memory, training=training)

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
        strat = decoding.get(strategy, **strategy_kwargs)
        max_length = int(max_length or self.max_target_length)
        source_ids = ops.convert_to_tensor(source_ids, "int32")
        if len(source_ids.shape) != 2:
            raise ValueError(f"source_ids must be (batch, S), got shape {tuple(source_ids.shape)}")

        def run(ids):
            encoded = self.encode(ids)
            return strat(self.decode_step, self.initial_state(encoded, max_length),
                         self.prepare_memory(encoded), ops.shape(ids)[0], ops.shape(ids)[1],
                         max_length, bos_id=BOS_ID, eos_id=EOS_ID, pad_id=PAD_ID,
                         min_length=min_length, memory_mask=encoded["mask"])

        if not compiled or keras.backend.backend() != "tensorflow":
            return run(source_ids)
        key = (type(strat).__name__, json.dumps(strat.get_config(), sort_keys=True),
               max_length, min_length, bool(jit_compile))
        fn = self._compiled_generate.get(key)
        if fn is None:
            import tensorflow as tf

            fn = tf.function(run, jit_compile=jit_compile, reduce_retracing=True,
                             input_signature=[tf.TensorSpec((None, None), tf.int32)])
            self._compiled_generate[key] = fn
        return fn(source_ids)

    def translate(self, texts: Sequence[str], strategy="greedy", batch_size=64,
                  max_length=None, return_result=False, **strategy_kwargs):
        """Translates strings (best hypothesis of each).

        Args:
            texts: Source sentences.
            strategy: As in ``generate``.
            batch_size: Sentences per decoding batch (sorted by length to cut padding).
            max_length: As in ``generate``.
            return_result: Also return the per-sentence ``(token ids, attention)`` of the best
                hypothesis (attention cropped to the real lengths).
            **strategy_kwargs: As in ``generate``.

        Returns:
            A list of strings, or ``(strings, details)`` with ``return_result``.
        """
        from zoo.data.pipeline import encode_sources

        if self.source_tokenizer is None or self.target_tokenizer is None:
            raise ValueError("translate needs tokenizers: build with from_preset(..., "
                             "tokenizer=...) or load with Translator.load(dir)")
        if isinstance(texts, str):
            raise TypeError("translate takes a list of strings, got one string; wrap it in a "
                            "list")
        texts = list(texts)
        if not texts:
            return ([], []) if return_result else []
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"texts[{bad[0]}] is {type(texts[bad[0]]).__name__}, expected str")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: List[Optional[str]] = [None] * len(texts)
        details = [None] * len(texts)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            src = encode_sources([texts[i] for i in idx], self.source_tokenizer)
            res = self.generate(src, strategy=strategy, max_length=max_length,
                                **strategy_kwargs)
            best = ops.convert_to_numpy(res.tokens[:, 0])
            strings = self.target_tokenizer.detokenize(best).numpy()
            if return_result:
                lengths = ops.convert_to_numpy(res.lengths[:, 0])
                attn = ops.convert_to_numpy(res.attention[:, 0])
                src_np = ops.convert_to_numpy(src)
            for j, i in enumerate(idx):
                out[i] = strings[j].decode("utf-8")
                if return_result:
                    s_len = int((src_np[j] != PAD_ID).sum())
                    details[i] = {"source_ids": src_np[j, :s_len],
                                  "tokens": best[j, :lengths[j]],
                                  "attention": attn[j, :lengths[j], :s_len]}
        return (out, details) if return_result else out

    # ------------------------------------------------------------------ training
    def compile(self, optimizer="adam", loss=None, metrics=None, learning_rate=1e-3,
                warmup_steps=None, label_smoothing=0.1, clipnorm=1.0, jit_compile=False,
                **kwargs):
        """``keras.Model.compile`` with translation defaults.

        Args:
            optimizer: ``"adam"`` builds Adam (beta_2 0.98) with ``learning_rate``,
                ``warmup_steps`` and ``clipnorm``; or any Keras optimizer.
            loss: Default: :class:`zoo.training.SequenceLoss` (masked, ``label_smoothing``).
            metrics: Default: token accuracy.
            learning_rate: Peak learning rate.
            warmup_steps: If set, linear warm-up then inverse square-root decay.
            label_smoothing: For the default loss.
            clipnorm: Gradient norm clipping for the default optimizer (None: off).
            jit_compile: XLA for the train step (off by default: on CPU and with bucketed
                shapes it is slower).
            **kwargs: Passed to ``keras.Model.compile``.
        """
        from zoo.training import InverseSqrtSchedule, SequenceLoss, TokenAccuracy

        if jit_compile is True and not getattr(self.decoder, "supports_xla_training", True):
            raise ValueError(
                f"jit_compile=True: XLA cannot compile the training step of a "
                f"{type(self.decoder).__name__} (the gradient of its scan over a dynamic "
                f"target length); train it without XLA. Transformer presets train with XLA, "
                f"and generate(..., jit_compile=True) works for every model.")
        if isinstance(optimizer, str) and optimizer == "adam":
            lr = InverseSqrtSchedule(learning_rate, warmup_steps) if warmup_steps else \
                learning_rate
            optimizer = keras.optimizers.Adam(lr, beta_2=0.98, epsilon=1e-9,
                                              clipnorm=clipnorm)
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
        """Saves to a directory (model + tokenizers + metadata) or, for ``*.keras``, a file.

        The directory holds ``model.keras``, ``source.model`` (and ``target.model`` when the
        target tokenizer differs) and ``translator.json``; ``Translator.load(dir)`` reads it.
        """
        path = os.fspath(filepath)
        if path.endswith((".keras", ".h5")):
            return super().save(path, overwrite=overwrite, **kwargs)
        if os.path.exists(os.path.join(path, "model.keras")) and not overwrite:
            raise FileExistsError(f"{path} already holds a model (overwrite=False)")
        if self.source_tokenizer is None:
            raise ValueError("save(dir) needs the tokenizers (a model built without them can "
                             "be saved to a .keras file)")
        os.makedirs(path, exist_ok=True)
        super().save(os.path.join(path, "model.keras"), overwrite=True)
        self.source_tokenizer.save(os.path.join(path, "source.model"))
        same = self.target_tokenizer is self.source_tokenizer or (
            self.target_tokenizer.model == self.source_tokenizer.model)
        if not same:
            self.target_tokenizer.save(os.path.join(path, "target.model"))
        meta = {"format": FORMAT_VERSION, "class": "Translator", "preset": self.preset,
                "source_tokenizer": "source.model",
                "target_tokenizer": "source.model" if same else "target.model",
                "special_ids": {"pad": PAD_ID, "unk": 1, "bos": BOS_ID, "eos": EOS_ID},
                **({"extra": self._meta} if getattr(self, "_meta", None) else {})}
        with open(os.path.join(path, "translator.json"), "w") as f:
            json.dump(meta, f, indent=2)
        return path

    @classmethod
    def load(cls, path) -> "Translator":
        """Loads a directory written by ``save(dir)`` (Keras ``safe_mode=True``)."""
        from zoo.data.tokenizer import SentencePieceTokenizer

        path = os.fspath(path)
        meta_path = os.path.join(path, "translator.json")
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{path}: no such model directory")
        if not os.path.exists(meta_path):
            raise FileNotFoundError(f"{path} is not a saved translator (no translator.json; "
                                    f"write one with Translator.save(dir))")
        with open(meta_path) as f:
            try:
                meta = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{meta_path}:{e.lineno}: invalid JSON: {e.msg}") from None
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"{meta_path}: format {meta.get('format')!r} is not supported "
                             f"(this zoo reads format {FORMAT_VERSION})")
        model = keras.saving.load_model(os.path.join(path, "model.keras"), safe_mode=True)
        if not isinstance(model, cls):
            raise ValueError(f"{path}/model.keras holds a {type(model).__name__}, not a "
                             f"{cls.__name__}")
        model.source_tokenizer = SentencePieceTokenizer.load(
            os.path.join(path, meta["source_tokenizer"]))
        model.target_tokenizer = (model.source_tokenizer
                                  if meta["target_tokenizer"] == meta["source_tokenizer"] else
                                  SentencePieceTokenizer.load(
                                      os.path.join(path, meta["target_tokenizer"])))
        model._meta = meta.get("extra")
        return model

    def get_config(self):
        return {**super().get_config(),
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "decoder": keras.saving.serialize_keras_object(self.decoder),
                "max_target_length": self.max_target_length, "preset": self.preset}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
