"""Where a model directory or an export keeps its tokenizers, and reading them back.

A SentencePiece model is ``source.model`` (``target.model``), a byte-level BPE
``source.bpe.json``; a target tokenizer equal to the source one is not written twice.
"""

from __future__ import annotations

import os
from typing import Dict

from zoo.serving.tokenizer import BPE_SUFFIX


class TokenizerFile:
    """What every tokenizer kind shares: it is its file's bytes (``model``), written and read
    back as they are; a subclass checks them in its constructor (a ``ValueError``)."""

    model: bytes

    def save(self, path: str) -> str:
        """Writes the file (``suffix`` names its kind)."""
        with open(path, "wb") as f:
            f.write(self.model)
        return path

    @classmethod
    def load(cls, path: str):
        """The tokenizer of a file; errors name it."""
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such tokenizer model file")
        with open(path, "rb") as f:
            data = f.read()
        try:
            return cls(data)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None


def tokenizer_files(source, target) -> Dict[str, str]:
    """``{"source": name, "target": name}`` for a model's two tokenizers.

    Example:
        >>> from zoo.data import SentencePieceTokenizer
        >>> tok = SentencePieceTokenizer.train(["a cat sat"] * 50, vocab_size=20)
        >>> tokenizer_files(tok, tok)
        {'source': 'source.model', 'target': 'source.model'}
    """
    same = target is source or (type(target) is type(source) and target.model == source.model)
    return {"source": "source" + source.suffix,
            "target": "source" + source.suffix if same else "target" + target.suffix}


def write_tokenizers(source, target, directory: str) -> Dict[str, str]:
    """Writes the tokenizer files into ``directory``; returns :func:`tokenizer_files`."""
    files = tokenizer_files(source, target)
    source.save(os.path.join(directory, files["source"]))
    if files["target"] != files["source"]:
        target.save(os.path.join(directory, files["target"]))
    return files


def load_tokenizer(path: str):
    """A tokenizer file: a byte-level BPE (``.bpe.json``) or a SentencePiece model."""
    from zoo.data.bpe import BytePairTokenizer
    from zoo.data.tokenizer import SentencePieceTokenizer

    cls = BytePairTokenizer if path.endswith(BPE_SUFFIX) else SentencePieceTokenizer
    return cls.load(path)
