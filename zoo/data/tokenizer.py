"""Subword tokenizer: SentencePiece, learned with the ``sentencepiece`` trainer, run by
tensorflow-text inside TF graphs.

The same model file is read by ``tensorflow_text.SentencepieceTokenizer`` (training input
pipelines, the exported SavedModel) and by the ``sentencepiece`` package (host-side, without
TensorFlow), so every runtime produces the same ids.
"""

from __future__ import annotations

import io
import os
import re
from collections import Counter
from typing import Iterable, List, Optional

from zoo.data.tokenizer_files import TokenizerFile
from zoo.inputs import BOS_ID, EOS_ID, PAD_ID, UNK_ID  # noqa: F401  (the one declaration)

#: A speaker tag as DialogSum writes it (``#Person1#``), or a placeholder (``#PhoneNumber#``).
SPEAKER_TAG = re.compile(r"#[A-Za-z]+\d*#")


def speaker_tags(texts: Iterable[str], min_count: int = 2, limit: int = 64) -> List[str]:
    r"""The ``#Tag#`` markers of a corpus, most frequent first: what must stay one piece.

    Args:
        texts: The corpus's texts.
        min_count: Keep tags seen at least this often (a one-off is likely a typo).
        limit: Keep at most this many.

    Returns:
        The tags, e.g. ``["#Person1#", "#Person2#"]``.

    Example:
        >>> speaker_tags(["#Person1#: hi\n#Person2#: hi #Person1#"] * 2)
        ['#Person1#', '#Person2#']
    """
    counts = Counter(tag for text in texts for tag in SPEAKER_TAG.findall(text))
    return [tag for tag, n in counts.most_common(limit) if n >= min_count]


def _separator_options(separator: str) -> dict:
    """Trainer options that turn every line break into the reserved ``separator`` piece."""
    import tempfile

    if not isinstance(separator, str) or not separator.strip() or any(
            c.isspace() for c in separator):
        raise ValueError(f"turn_separator must be a non-empty string without spaces, got "
                         f"{separator!r}")
    hexed = " ".join(f"{ord(c):X}" for c in f" {separator} ")
    rules = {"D A": hexed, "A": hexed, "D": hexed, "9": "20", "A0": "20"}
    fd, path = tempfile.mkstemp(suffix=".tsv", prefix="zoo-normalizer-")
    with os.fdopen(fd, "w") as f:
        f.writelines(f"{src}\t{dst}\n" for src, dst in rules.items())
    return {"user_defined_symbols": [separator], "normalization_rule_tsv": path}


class SentencePieceTokenizer(TokenizerFile):
    """A SentencePiece model with fixed special ids: pad 0, unk 1, bos 2, eos 3.

    Args:
        model: The serialized SentencePiece model (the bytes of a ``.model`` file).

    Example:
        >>> tok = SentencePieceTokenizer.train(["a cat sat", "a dog sat"] * 50, vocab_size=20)
        >>> ids = tok.tokenize(["a cat sat"])            # tf.RaggedTensor (1, None)
        >>> tok.detokenize(ids).numpy()[0].decode()
        'a cat sat'
    """

    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID
    #: The file name ending (``source`` + it is a model directory's source tokenizer).
    suffix = ".model"
    #: The package that runs it host-side (an export's ``requires``).
    host_package = "sentencepiece"

    def __init__(self, model: bytes):
        if not isinstance(model, (bytes, bytearray)) or not model:
            raise ValueError("SentencePieceTokenizer needs the bytes of a SentencePiece model")
        self.model = bytes(model)
        self._tf = None
        self._sp = None
        try:
            sp = self.processor
        except RuntimeError:
            raise ValueError("not a valid SentencePiece model (the file is corrupt or of "
                             "another kind)") from None
        specials = (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id())
        if specials != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise ValueError(f"SentencePiece model has special ids (pad, unk, bos, eos) = "
                             f"{specials}; zoo needs (0, 1, 2, 3): train it with "
                             f"SentencePieceTokenizer.train or pad_id=0 unk_id=1 bos_id=2 eos_id=3")

    @classmethod
    def from_foreign(cls, model: bytes, start: str = "pad"):
        """A SentencePiece model with other special ids (T5's: pad 0, eos 1, unk 2, no bos),
        laid out as zoo's: the same pieces, scores and normaliser, so the same segmentation,
        with pad, unk, bos and eos moved to 0-3.

        Args:
            model: The serialized SentencePiece model.
            start: The original special whose row the decoder starts from (zoo's bos):
                ``"pad"`` for T5, ``"bos"`` where the model has one.

        Returns:
            ``(tokenizer, original_ids)``: ``original_ids[i]`` is the original id of zoo id
            ``i``; an importer takes the embedding rows in this order.

        Example:
            >>> t5 = SentencePieceTokenizer.train(["a cat sat"] * 50, vocab_size=20)
            >>> tok, ids = SentencePieceTokenizer.from_foreign(t5.model)
            >>> ids[:4]   # already zoo's layout: pad, unk, bos (the pad row here), eos
            [0, 1, 0, 3]
        """
        from sentencepiece import sentencepiece_model_pb2 as pb

        proto = pb.ModelProto()
        try:
            proto.ParseFromString(bytes(model))
        except Exception:  # protobuf's DecodeError has no stable import path
            raise ValueError("not a valid SentencePiece model") from None
        spec = proto.trainer_spec
        old = {"pad": spec.pad_id, "unk": spec.unk_id, "bos": spec.bos_id, "eos": spec.eos_id}
        missing = [k for k in ("pad", "unk", "eos", start) if old[k] < 0]
        if missing:
            raise ValueError(f"the SentencePiece model has no {', '.join(missing)} piece; "
                             f"zoo needs pad, unk and eos, and the decoder's start ({start})")
        control = pb.ModelProto.SentencePiece.CONTROL
        bos_piece = (proto.pieces[old["bos"]] if old["bos"] >= 0 else
                     pb.ModelProto.SentencePiece(piece="<s>", score=0.0, type=control))
        order = [old["pad"], old["unk"], old["bos"], old["eos"]]
        specials = {i for i in order if i >= 0}
        rest = [i for i in range(len(proto.pieces)) if i not in specials]
        pieces = [proto.pieces[old["pad"]], proto.pieces[old["unk"]], bos_piece,
                  proto.pieces[old["eos"]]] + [proto.pieces[i] for i in rest]
        del proto.pieces[:]
        proto.pieces.extend(pieces)
        spec.pad_id, spec.unk_id, spec.bos_id, spec.eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID
        spec.bos_piece = bos_piece.piece
        original = [old["pad"], old["unk"], old[start], old["eos"]] + rest
        return cls(proto.SerializeToString()), original

    # ------------------------------------------------------------------ learning
    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 8000, model_type: str = "unigram",
              character_coverage: float = 1.0, max_sentences: int = 2_000_000,
              seed: int = 0, turn_separator: Optional[str] = None,
              symbols: Iterable[str] = ()) -> "SentencePieceTokenizer":
        """Learns a tokenizer from raw text.

        Args:
            texts: Sentences (for a joint vocabulary pass both languages).
            vocab_size: Size of the vocabulary; lowered automatically when the text is too
                small to support it (``hard_vocab_limit=False``).
            model_type: ``"unigram"`` or ``"bpe"``.
            character_coverage: Fraction of characters covered (1.0 for Latin scripts).
            max_sentences: Sentences sampled for training.
            seed: Seeds SentencePiece's random generator (its sentence shuffle and
                sampling), so the same text gives the same tokenizer in every run.
            turn_separator: A reserved piece (e.g. ``"<sep>"``) that every line break becomes,
                so the turns of a multi-line dialogue stay apart. The rule lives in the model
                file's normaliser, so every runtime (tensorflow-text in graphs and exports,
                ``sentencepiece`` on hosts) splits turns the same way. Its normaliser maps
                ``\r\n``, ``\r`` and ``\n`` to the separator, tabs and no-break spaces to
                spaces, and leaves other text as written (no NFKC folding).
            symbols: Strings that are always one piece wherever they occur (speaker tags
                such as ``#Person1#``: :func:`speaker_tags`), so a copying decoder copies a
                whole tag or none of it.

        Returns:
            A :class:`SentencePieceTokenizer`.
        """
        import sentencepiece as spm

        if int(vocab_size) < 8:
            raise ValueError(f"vocab_size must be at least 8, got {vocab_size}")
        if model_type not in ("unigram", "bpe"):
            raise ValueError(f"model_type must be 'unigram' or 'bpe', got {model_type!r}")
        texts = [t for t in texts if t and t.strip()]
        if not texts:
            raise ValueError("cannot learn a tokenizer from no text")
        buf = io.BytesIO()
        extra = {}
        if turn_separator is not None:
            extra = _separator_options(turn_separator)
        symbols = [str(s) for s in symbols]
        bad = [s for s in symbols if not s or any(c.isspace() for c in s)]
        if bad:
            raise ValueError(f"symbols must be non-empty strings without spaces, got {bad[0]!r}")
        if symbols:
            extra["user_defined_symbols"] = extra.get("user_defined_symbols", []) + [
                s for s in symbols if s != turn_separator]
        # Without a seed the trainer draws one from std::random_device.
        spm.set_random_generator_seed(int(seed))
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(texts), model_writer=buf, vocab_size=int(vocab_size),
                model_type=model_type, character_coverage=character_coverage,
                pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
                hard_vocab_limit=False, input_sentence_size=max_sentences,
                shuffle_input_sentence=True, minloglevel=2, num_threads=os.cpu_count() or 1,
                **extra)
        except RuntimeError as err:
            # e.g. "Vocabulary size is smaller than required_chars": say it in our words.
            detail = str(err).split("]")[-1].strip()
            raise ValueError(f"cannot learn a {vocab_size}-piece {model_type} tokenizer from "
                             f"{len(texts)} sentences: {detail}") from None
        finally:
            if "normalization_rule_tsv" in extra:
                os.unlink(extra["normalization_rule_tsv"])
        return cls(buf.getvalue())

    @property
    def turn_separator(self) -> Optional[str]:
        """The reserved piece that line breaks become (``train(turn_separator=...)``), or
        None."""
        sp = self.processor
        extra = set(sp.encode("a\nb", out_type=str)) - set(sp.encode("a b", out_type=str))
        extra.discard("\u2581")
        return extra.pop() if len(extra) == 1 else None

    # ------------------------------------------------------------------ running
    @property
    def processor(self):
        """The ``sentencepiece.SentencePieceProcessor`` (host-side, no TensorFlow)."""
        if self._sp is None:
            import sentencepiece as spm

            self._sp = spm.SentencePieceProcessor(model_proto=self.model)
        return self._sp

    @property
    def tf_tokenizer(self):
        """The ``tensorflow_text.SentencepieceTokenizer`` (runs inside graphs)."""
        import tensorflow as tf
        import tensorflow_text as tf_text

        # Created eagerly even when first used inside a graph (a tf.data map): the resource
        # must outlive that graph. tf.random.set_seed (keras.utils.set_random_seed) clears
        # TensorFlow's eager kernel cache, which destroys the kernel-owned SentencePiece
        # resource; a cheap liveness check rebuilds it instead of failing deep inside TF.
        with tf.init_scope():
            if self._tf is not None:
                try:
                    self._tf.tokenize(tf.constant([""]))
                except tf.errors.NotFoundError:
                    self._tf = None
            if self._tf is None:
                self._tf = tf_text.SentencepieceTokenizer(model=self.model, out_type=tf.int32)
        return self._tf

    @property
    def vocab_size(self) -> int:
        return int(self.processor.get_piece_size())

    def tokenize(self, texts):
        """Strings -> ``tf.RaggedTensor`` of int32 ids ``(batch, None)`` (no bos/eos)."""
        import tensorflow as tf

        texts = tf.convert_to_tensor(texts, tf.string)
        return self.tf_tokenizer.tokenize(texts)

    def detokenize(self, ids):
        """Ids ``(batch, length)`` (dense, padded, or ragged) -> strings ``(batch,)``.

        Padding, bos and eos are dropped, and everything after the first eos is ignored.
        """
        import tensorflow as tf

        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.convert_to_tensor(ids, tf.int32)
            # Keep tokens before the first eos, drop pad/bos.
            before_eos = tf.math.cumsum(tf.cast(ids == EOS_ID, tf.int32), axis=-1) == 0
            keep = tf.logical_and(before_eos, ids > BOS_ID)
            ids = tf.ragged.boolean_mask(ids, keep)
        else:
            ids = tf.ragged.boolean_mask(ids, ids > EOS_ID)
        return self.tf_tokenizer.detokenize(ids)

    def id_to_piece(self, ids):
        return [self.processor.id_to_piece(int(i)) for i in ids]

    def user_symbols(self) -> set:
        """The user-defined pieces (speaker tags, the turn separator): always whole."""
        from sentencepiece import sentencepiece_model_pb2 as pb

        proto = pb.ModelProto()
        proto.ParseFromString(self.model)
        user = pb.ModelProto.SentencePiece.USER_DEFINED
        return {p.piece for p in proto.pieces if p.type == user}


