"""Host-side tokenization without TensorFlow: SentencePiece and byte-level BPE.

A ``.model`` file is a SentencePiece model, run by the ``sentencepiece`` package; a
``.bpe.json`` file is a byte-level BPE (BART's, GPT-2's) in zoo's id layout, run by the
``tokenizers`` library. Ids are exactly those the graph gives (tensorflow-text, KerasHub's
``BytePairTokenizer``; tested).
"""

from __future__ import annotations

import json
from typing import Dict, List, Sequence

from zoo.inputs import BOS_ID, EOS_ID, PAD_ID, UNK_ID  # noqa: F401  (the one declaration)


#: The file name ending of a byte-level BPE (zoo's JSON: vocabulary, merges, prefix).
BPE_SUFFIX = ".bpe.json"
#: The ``format`` field of that file.
BPE_FORMAT = "zoo.byte_level_bpe"


def byte_symbols() -> List[str]:
    """GPT-2's printable stand-ins for the 256 bytes (what a byte-level vocabulary holds)."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(extra)) for b in range(256)]


def read_bpe(data: bytes, where: str = "byte-level BPE") -> Dict:
    """The checked content of a ``.bpe.json`` file: ``vocab`` (piece -> id), ``merges``
    (``"a b"`` strings, in priority order) and ``prefix`` (ids written before every text,
    e.g. BART's ``<s>``).

    Raises:
        ValueError: Naming ``where`` and what is wrong.
    """
    try:
        spec = json.loads(data)
    except ValueError as err:
        raise ValueError(f"{where}: not JSON ({err})") from None
    if not isinstance(spec, dict) or spec.get("format") != BPE_FORMAT:
        raise ValueError(f"{where}: not a zoo byte-level BPE file (format "
                         f"{spec.get('format') if isinstance(spec, dict) else None!r}, "
                         f"expected {BPE_FORMAT!r})")
    vocab, merges, prefix = spec.get("vocab"), spec.get("merges"), spec.get("prefix", [])
    if not isinstance(vocab, dict) or sorted(vocab.values()) != list(range(len(vocab))):
        raise ValueError(f"{where}: vocab must map pieces to the ids 0..n-1, each once")
    if not isinstance(merges, list) or not all(isinstance(m, str) and len(m.split(" ")) == 2
                                               for m in merges):
        raise ValueError(f"{where}: merges must be a list of 'a b' strings")
    if not isinstance(prefix, list) or not all(isinstance(i, int) and EOS_ID < i < len(vocab)
                                               for i in prefix):
        raise ValueError(f"{where}: prefix must be a list of ordinary ids (> {EOS_ID})")
    missing = [b for b in byte_symbols() if b not in vocab]
    if missing:
        raise ValueError(f"{where}: the vocabulary lacks {len(missing)} of the 256 byte "
                         f"symbols (e.g. {missing[0]!r}): not a byte-level BPE")
    return {"vocab": vocab, "merges": merges, "prefix": prefix}


class BytePairProcessor:
    """Byte-level BPE with the ``sentencepiece`` processor's methods, on ``tokenizers``.

    GPT-2's pre-split and byte mapping, no prefix space, BPE merges: the ids KerasHub's
    ``BytePairTokenizer`` gives in a graph (``bench/bpe_parity.py``, tests). Every text
    starts with the file's ``prefix`` ids; decoding drops them.

    Args:
        data: The bytes of a ``.bpe.json`` file.
        where: Names the file in errors.
        spec: Its content already read by :func:`read_bpe` (not read again).
    """

    def __init__(self, data: bytes, where: str = "byte-level BPE", spec: Dict = None):
        try:
            from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        except ImportError:
            raise ImportError(f"{where}: a byte-level BPE needs the tokenizers package: pip "
                              f"install 'zoo-seq2seq[serve]'") from None
        spec = spec or read_bpe(data, where)
        self.prefix = list(spec["prefix"])
        self._pieces = sorted(spec["vocab"], key=spec["vocab"].get)
        merges = [tuple(m.split(" ")) for m in spec["merges"]]
        self._tok = Tokenizer(models.BPE(vocab=spec["vocab"], merges=merges))
        self._tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        self._tok.decoder = decoders.ByteLevel()

    def encode(self, texts: Sequence[str]) -> List[List[int]]:
        """Strings -> ids per text (the prefix, no eos)."""
        return [self.prefix + e.ids
                for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids) -> str:
        drop = set(self.prefix)
        return self._tok.decode([int(i) for i in ids if int(i) not in drop],
                                skip_special_tokens=False)

    def id_to_piece(self, i: int) -> str:
        return self._pieces[int(i)]

    def get_piece_size(self) -> int:
        return len(self._pieces)


def open_processor(model_file: str):
    """The host-side processor of a tokenizer file: SentencePiece (``.model``) or
    byte-level BPE (:data:`BPE_SUFFIX`)."""
    import os

    if not os.path.exists(model_file):
        raise FileNotFoundError(f"{model_file}: no such tokenizer model file")
    if model_file.endswith(BPE_SUFFIX):
        with open(model_file, "rb") as f:
            return BytePairProcessor(f.read(), model_file)
    import sentencepiece as spm

    try:
        return spm.SentencePieceProcessor(model_file=model_file)
    except (RuntimeError, OSError):
        raise ValueError(f"{model_file}: not a valid SentencePiece model (the file is "
                         f"corrupt or of another kind)") from None


class HostTokenizer:
    """Encode/decode for serving: SentencePiece or byte-level BPE, chosen by the file.

    Args:
        model_file: Path of a SentencePiece ``.model`` file or a ``.bpe.json`` file.

    Example:
        >>> import os, tempfile, sentencepiece as spm
        >>> d = tempfile.mkdtemp(); p = os.path.join(d, "t")
        >>> spm.SentencePieceTrainer.train(sentence_iterator=iter(["hola mundo"] * 20),
        ...     model_prefix=p, vocab_size=20, pad_id=0, unk_id=1, bos_id=2, eos_id=3,
        ...     hard_vocab_limit=False, minloglevel=2)
        >>> tok = HostTokenizer(p + ".model")
        >>> tok.decode(tok.encode(["hola mundo"]))
        ['hola mundo']
    """

    def __init__(self, model_file: str):
        self.processor = open_processor(model_file)

    def encode(self, texts: Sequence[str], max_length: int = 256):
        """Strings -> int32 ``(batch, S)``: ids + eos, 0-padded (the model's source input),
        at most ``max_length`` ids per text (eos included)."""
        return self.encode_with_lengths(texts, max_length)[0]

    def encode_with_lengths(self, texts: Sequence[str], max_length: int = 256):
        """Like ``encode``, also returning each text's id count (eos included) before
        truncation."""
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("encode takes a list of strings, got one string")
        full = [ids + [EOS_ID] for ids in self.processor.encode(list(texts))]
        rows = [r if len(r) <= max_length else r[: max_length - 1] + [EOS_ID] for r in full]
        out = np.zeros((len(rows), max(len(r) for r in rows) if rows else 0), np.int32)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out, [len(r) for r in full]

    def decode(self, ids) -> List[str]:
        """Ids ``(batch, T)`` -> strings; stops at eos, skips pad and bos."""
        out = []
        for row in ids:
            keep = []
            for t in row:
                t = int(t)
                if t == EOS_ID:
                    break
                if t > EOS_ID:
                    keep.append(t)
            out.append(self.processor.decode(keep))
        return out

    def pieces(self, ids) -> List[str]:
        """Ids -> their pieces (``<pad>`` / ``</s>`` for the specials)."""
        return [self.processor.id_to_piece(int(i)) for i in ids]

    @property
    def vocab_size(self) -> int:
        return int(self.processor.get_piece_size())
