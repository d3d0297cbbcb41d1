"""The Translator: the translation task on the shared sequence-to-sequence base."""

from __future__ import annotations

from typing import Sequence

from zoo.models.base import Seq2Seq, register


@register("translator")
class Translator(Seq2Seq):
    """Sequence-to-sequence translator: ``encoder`` + ``decoder`` networks from ``zoo.layers``.

    Everything but the task name lives in :class:`zoo.models.base.Seq2Seq`: ``from_preset``,
    ``fit`` (``compile`` defaults), ``encode`` / ``prepare_memory`` / ``initial_state`` /
    ``decode_step``, ``generate``, ``save`` / ``load``. ``translate`` is ``generate_text``.

    Args:
        encoder: An encoder network or its config.
        decoder: A decoder network or its config.
        max_target_length: Default maximum generated length.
        max_source_length: Source ids kept per sentence (eos included).
        preset: Name of the preset it was built from (informational).
        **kwargs: Keras model arguments (``name``, ``dtype``).

    Example:
        >>> from zoo.data import SentencePieceTokenizer
        >>> tok = SentencePieceTokenizer.train(["hola mundo", "hello world"] * 20, vocab_size=24)
        >>> model = Translator.from_preset("rnn_tiny", tokenizer=tok)
        >>> len(model.translate(["hola mundo"], max_length=5))
        1
    """

    task = "translation"

    def translate(self, texts: Sequence[str], strategy=None, batch_size=64,
                  max_length=None, return_result=False, **strategy_kwargs):
        """Translates strings; see :meth:`~zoo.models.base.Seq2Seq.generate_text`."""
        return self.generate_text(texts, strategy=strategy, batch_size=batch_size,
                                  max_length=max_length, return_result=return_result,
                                  **strategy_kwargs)
