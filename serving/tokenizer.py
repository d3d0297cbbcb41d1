"""Host-side tokenization with the ``sentencepiece`` package (no TensorFlow).

Reads the same ``.model`` file the model was trained with; ids are exactly those
tensorflow-text gives inside the graph (tested).
"""

from __future__ import annotations

from typing import List, Sequence

from zoo.inputs import BOS_ID, EOS_ID, PAD_ID, UNK_ID  # noqa: F401  (the one declaration)


class HostTokenizer:
    """SentencePiece encode/decode for serving.

    Args:
        model_file: Path of the SentencePiece ``.model`` file.

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
        import os

        import sentencepiece as spm

        if not os.path.exists(model_file):
            raise FileNotFoundError(f"{model_file}: no such tokenizer model file")
        try:
            self.processor = spm.SentencePieceProcessor(model_file=model_file)
        except (RuntimeError, OSError):
            raise ValueError(f"{model_file}: not a valid SentencePiece model (the file is "
                             f"corrupt or of another kind)") from None

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
        """Ids -> their SentencePiece pieces (``<pad>`` / ``</s>`` for the specials)."""
        return [self.processor.id_to_piece(int(i)) for i in ids]
