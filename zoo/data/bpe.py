"""Byte-level BPE (BART's, GPT-2's) in zoo's id layout: KerasHub's ``BytePairTokenizer``
inside TF graphs, the ``tokenizers`` library host-side.

One ``.bpe.json`` file (vocabulary, merges, prefix ids) is read by both, so the SavedModel
and the ONNX, LiteRT and CTranslate2 runners give the same ids (``bench/bpe_parity.py``;
tests). Neither implementation is written here: zoo only lays the ids out (pad 0, unk 1,
bos 2, eos 3) and adds the prefix (BART's ``<s>``) that every text starts with.
"""

from __future__ import annotations

import json
from typing import Dict, List, Sequence

from zoo.data.tokenizer_files import TokenizerFile
from zoo.inputs import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from zoo.serving.tokenizer import BPE_FORMAT, BPE_SUFFIX, BytePairProcessor, read_bpe


class BytePairTokenizer(TokenizerFile):
    """A byte-level BPE with zoo's special ids: pad 0, unk 1, bos 2, eos 3.

    Args:
        model: The bytes of a ``.bpe.json`` file (:meth:`from_vocabulary` writes them).

    Example:
        >>> from zoo.serving.tokenizer import byte_symbols
        >>> vocab = {p: i for i, p in enumerate(
        ...     ["<pad>", "<unk>", "<start>", "</s>", "<s>", *byte_symbols(), "hi"])}
        >>> tok = BytePairTokenizer.from_vocabulary(vocab, ["h i"], prefix=[4])
        >>> tok.processor.encode(["hi!"])
        [[4, 261, 38]]
        >>> tok.detokenize(tok.tokenize(["hi!"])).numpy()[0].decode()
        'hi!'
    """

    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID
    #: The file name ending (``source`` + it is a model directory's source tokenizer).
    suffix = BPE_SUFFIX
    #: The package that runs it host-side (an export's ``requires``).
    host_package = "tokenizers"

    def __init__(self, model: bytes):
        if not isinstance(model, (bytes, bytearray)) or not model:
            raise ValueError("BytePairTokenizer needs the bytes of a .bpe.json file")
        self.model = bytes(model)
        self._spec = spec = read_bpe(self.model)
        self.vocab: Dict[str, int] = spec["vocab"]
        self.merges: List[str] = spec["merges"]
        self.prefix: List[int] = spec["prefix"]
        self._host = None
        self._tf = None

    @classmethod
    def from_vocabulary(cls, vocab: Dict[str, int], merges: Sequence[str],
                        prefix: Sequence[int] = ()) -> "BytePairTokenizer":
        """A tokenizer from a vocabulary already in zoo's layout (ids 0-3: pad, unk, bos,
        eos), merges (``"a b"``) and the ids every text starts with."""
        merges = [m if isinstance(m, str) else " ".join(m) for m in merges
                  if not (isinstance(m, str) and m.startswith("#version"))]
        data = {"format": BPE_FORMAT, "vocab": dict(vocab), "merges": merges,
                "prefix": [int(i) for i in prefix]}
        return cls(json.dumps(data, ensure_ascii=False).encode("utf-8"))

    # ------------------------------------------------------------------ running
    @property
    def processor(self) -> BytePairProcessor:
        """Host-side (``tokenizers``, no TensorFlow), with sentencepiece's methods."""
        if self._host is None:
            self._host = BytePairProcessor(self.model, spec=self._spec)
        return self._host

    @property
    def tf_tokenizer(self):
        """KerasHub's ``BytePairTokenizer`` on its TensorFlow path, prefix added: a Keras
        layer, so a SavedModel tracks its lookup tables."""
        import tensorflow as tf

        # Built eagerly even when first used inside a graph (a tf.data map): its lookup
        # tables must outlive that graph.
        with tf.init_scope():
            if self._tf is None:
                self._tf = _graph_tokenizer(self.vocab, self.merges, self.prefix)
        return self._tf

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokenize(self, texts):
        """Strings -> ``tf.RaggedTensor`` of int32 ids ``(batch, None)`` (prefix, no eos)."""
        import tensorflow as tf

        return self.tf_tokenizer.tokenize(tf.convert_to_tensor(texts, tf.string))

    def detokenize(self, ids):
        """Ids ``(batch, length)`` (dense or ragged) -> strings ``(batch,)``: specials and
        the prefix dropped, nothing after the first eos."""
        import tensorflow as tf

        if isinstance(ids, tf.RaggedTensor):
            ids = ids.to_tensor(PAD_ID)
        ids = tf.convert_to_tensor(ids, tf.int32)
        before_eos = tf.math.cumsum(tf.cast(ids == EOS_ID, tf.int32), axis=-1) == 0
        keep = tf.logical_and(before_eos, ids > EOS_ID)
        for i in self.prefix:
            keep = tf.logical_and(keep, ids != i)
        return self.tf_tokenizer.detokenize(tf.ragged.boolean_mask(ids, keep))

    def id_to_piece(self, ids):
        return [self.processor.id_to_piece(int(i)) for i in ids]

    def user_symbols(self) -> set:
        """None: a byte-level BPE has no always-whole pieces."""
        return set()

    @property
    def turn_separator(self):
        return None


def _graph_tokenizer(vocab, merges, prefix):
    """KerasHub's BytePairTokenizer that always takes its TensorFlow path and writes
    ``prefix`` first."""
    import keras_hub
    import tensorflow as tf
    # Keeps KerasHub from turning eager outputs into Python lists (for other backends).
    from keras_hub.src.utils.tensor_utils import no_convert_scope

    class _Prefixed(keras_hub.tokenizers.BytePairTokenizer):
        def tokenize(self, inputs):
            with no_convert_scope():
                ids = super().tokenize(inputs)
            if not prefix:
                return ids
            head = tf.tile(tf.constant([prefix], ids.dtype), [ids.nrows(), 1])
            return tf.concat([tf.RaggedTensor.from_tensor(head), ids], axis=1)

        def detokenize(self, inputs):
            with no_convert_scope():
                return super().detokenize(inputs)

    # The Python path (``tokenizers`` with Llama 3's split) differs from GPT-2's on some
    # texts; the TensorFlow path equals it (bench/bpe_parity.py).
    layer = _Prefixed(vocabulary=vocab, merges=merges, unsplittable_tokens=[],
                      _allow_python_workflow=False)
    layer.build(None)  # no weights; an export archive tracks built layers only
    return layer
