"""The Summarizer: abstractive summarization on the shared sequence-to-sequence base.

Its presets are pointer-generators (See et al. 2017): the decoder's output mixes generating from
the vocabulary with copying source tokens through the attention weights (``copy=True`` on any
zoo decoder), and a coverage attention with its coverage loss keeps it from repeating itself.
Everything else (``fit``, decoding, save/load, export) is :class:`zoo.models.base.Seq2Seq`'s.
"""

from __future__ import annotations

from typing import Sequence

from zoo.models.base import Seq2Seq, register

#: The reserved piece that the line breaks between dialogue turns become (the tokenizer's
#: normaliser maps them; see ``SentencePieceTokenizer.train(turn_separator=...)``).
TURN_SEPARATOR = "<sep>"
#: Source tokens kept per dialogue (eos included), as in the SAMSum paper (Gliwa et al. 2019).
MAX_DIALOGUE_TOKENS = 400


@register("summarizer")
class Summarizer(Seq2Seq):
    """Summarizes texts (dialogues: one turn per line) with any zoo encoder and decoder.

    Args:
        encoder: An encoder network or its config.
        decoder: A decoder network or its config (``copy=True`` for a pointer-generator; the
            source and target then share one tokenizer).
        max_target_length: Default maximum summary length (tokens).
        max_source_length: Source tokens kept per text (eos included); longer texts are
            truncated with a ``zoo.inputs.InputTruncatedWarning``.
        preset: Name of the preset it was built from (informational).
        **kwargs: Keras model arguments (``name``, ``dtype``).

    Example:
        >>> from zoo.data import SentencePieceTokenizer
        >>> tok = SentencePieceTokenizer.train(["A: hi\\nB: hello", "A greets B."] * 20,
        ...                                    vocab_size=30, turn_separator="<sep>")
        >>> model = Summarizer.from_preset("pointer_generator_tiny", tokenizer=tok)
        >>> len(model.summarize(["A: hi\\nB: hello"], max_length=5))
        1
    """

    task = "summarization"

    def __init__(self, encoder, decoder, max_target_length=100,
                 max_source_length=MAX_DIALOGUE_TOKENS, preset=None, **kwargs):
        super().__init__(encoder, decoder, max_target_length=max_target_length,
                         max_source_length=max_source_length, preset=preset, **kwargs)

    @classmethod
    def from_preset(cls, name, tokenizer=None, target_tokenizer=None, vocab_size=None,
                    target_vocab_size=None, dtype=None, max_target_length=100,
                    max_source_length=MAX_DIALOGUE_TOKENS, encoder=None, decoder=None,
                    copy_whole_words=None, **overrides):
        """Builds a summarizer from a preset; see :meth:`Seq2Seq.from_preset`.

        A copying decoder needs one vocabulary for both sides: a ``target_tokenizer`` other
        than ``tokenizer`` (or a different ``target_vocab_size``) is refused.
        """
        model = super().from_preset(name, tokenizer=tokenizer, target_tokenizer=target_tokenizer,
                                    vocab_size=vocab_size, target_vocab_size=target_vocab_size,
                                    dtype=dtype, max_target_length=max_target_length,
                                    max_source_length=max_source_length, encoder=encoder,
                                    decoder=decoder, copy_whole_words=copy_whole_words,
                                    **overrides)
        if model.decoder.copy and model.encoder.vocab_size != model.decoder.vocab_size or (
                model.decoder.copy and target_tokenizer is not None and tokenizer is not None
                and target_tokenizer.model != tokenizer.model):
            raise ValueError("a copying decoder (copy=True) needs one tokenizer for source and "
                             "target: its copy distribution puts source ids in the target "
                             "vocabulary")
        return model

    def summarize(self, texts: Sequence[str], strategy=None, batch_size=32,
                  max_length=None, return_result=False, **strategy_kwargs):
        """Summarizes strings (a dialogue: one turn per line); see
        :meth:`~zoo.models.base.Seq2Seq.generate_text` (``no_repeat_ngram_size``,
        ``min_length`` and the beam penalties are strategy options)."""
        return self.generate_text(texts, strategy=strategy, batch_size=batch_size,
                                  max_length=max_length, return_result=return_result,
                                  **strategy_kwargs)
