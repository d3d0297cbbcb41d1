"""Data: corpus readers, tokenizers, tf.data pipelines and the embedded corpora."""

import gzip
import os

from zoo.data.readers import (Corpus, DataError, Pairs, iter_pairs, read_jsonl, read_jsonl_texts,
                              read_pairs, read_parallel, read_tsv)
from zoo.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, SentencePieceTokenizer
from zoo.data.bpe import BytePairTokenizer
from zoo.data.tokenizer_files import load_tokenizer, tokenizer_files, write_tokenizers
from zoo.data.pipeline import encode_sources, make_dataset, make_stream_dataset

_CORPORA = os.path.join(os.path.dirname(__file__), "corpora")


def corpus_path(name: str, filename: str) -> str:
    """Path of a file of a corpus shipped inside the package.

    Args:
        name: Corpus folder, e.g. ``"anki_spa_eng"``.
        filename: File in it, e.g. ``"spa-eng.tsv.gz"``.

    Returns:
        An absolute path.

    Raises:
        FileNotFoundError: Naming what is shipped.
    """
    path = os.path.join(_CORPORA, name, filename)
    if not os.path.exists(path):
        shipped = sorted(os.listdir(_CORPORA)) if os.path.isdir(_CORPORA) else []
        raise FileNotFoundError(f"No embedded corpus file {name}/{filename}; shipped corpora: "
                                f"{', '.join(shipped) or 'none'}")
    return path


def anki_spa_eng_pairs(limit=None):
    """The embedded Anki/Tatoeba Spanish-English pairs as (spanish, english) tuples.

    Args:
        limit: Keep the first ``limit`` pairs (file order: the first 20,000 are a sample
            of the file in its short-to-long order, the rest shuffled); all 118,964 if None.

    Returns:
        A list of ``(spanish, english)`` string pairs (CC-BY 2.0 FR, tatoeba.org and
        manythings.org/anki; see ``corpora/anki_spa_eng/ATTRIBUTION.md``).
    """
    path = corpus_path("anki_spa_eng", "spa-eng.tsv.gz")
    pairs = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2 or not parts[0].strip() or not parts[1].strip():
                raise ValueError(f"{path}:{lineno}: expected 'english<TAB>spanish', got "
                                 f"{line[:80]!r}")
            pairs.append((parts[1], parts[0]))
            if limit is not None and len(pairs) >= limit:
                break
    return pairs


def anki_spa_eng_splits(reverse: bool = False, seed: int = 0):
    """The embedded Anki pairs split as the shipped translators were trained.

    The file is shuffled with ``seed`` (as ``zoo train translator`` does): the first 2,000
    pairs are the held-out test set, the next 2,000 validate, the rest train.

    Args:
        reverse: English -> Spanish pairs instead of Spanish -> English.
        seed: The shuffle's seed.

    Returns:
        ``(train, valid, test)`` lists of ``(source, target)``.

    Example:
        >>> train, valid, test = anki_spa_eng_splits()
        >>> len(train), len(valid), len(test)
        (114964, 2000, 2000)
    """
    import random

    pairs = anki_spa_eng_pairs()
    random.Random(seed).shuffle(pairs)
    if reverse:
        pairs = [(t, s) for s, t in pairs]
    return pairs[4000:], pairs[2000:4000], pairs[:2000]


def dialogsum_pairs(split: str = "train", limit=None):
    r"""The embedded DialogSum subset as ``(dialogue, summary)`` pairs.

    Args:
        split: ``"train"`` (3,000 dialogues) or ``"dev"`` (200).
        limit: Keep the first ``limit`` pairs (file order).

    Returns:
        A :class:`Pairs` of ``(dialogue, summary)``; a dialogue has one turn per line
        (``#Person1#: ...``). MIT-licensed 2021 release; see
        ``corpora/dialogsum/ATTRIBUTION.md``.

    Example:
        >>> dialogue, summary = dialogsum_pairs("dev", limit=1)[0]
        >>> dialogue.startswith("#Person1#:"), "\n" in dialogue
        (True, True)
    """
    files = {"train": "train.3k.jsonl.gz", "dev": "dev.200.jsonl.gz"}
    if split not in files:
        raise ValueError(f"split must be 'train' or 'dev', got {split!r}")
    return read_jsonl(corpus_path("dialogsum", files[split]), "dialogue", "summary",
                      limit=limit)
