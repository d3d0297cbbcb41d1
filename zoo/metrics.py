"""Corpus-level evaluation: sacreBLEU (detokenized BLEU and chrF) and ROUGE (rouge-score).

sacreBLEU is the reference implementation reviewers expect figures from: it tokenizes the
detokenized output itself (``13a``), so scores are comparable across papers and toolkits.
ROUGE comes from Google's ``rouge-score`` package (the implementation most recent
summarization papers and Hugging Face ``evaluate`` use), with the Porter stemmer on.
"""

from __future__ import annotations

from typing import Dict, Sequence


def _check(hypotheses, references):
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references: "
                         f"they must be line-aligned")
    if not hypotheses:
        raise ValueError("no sentences to score")
    for name, seq in (("hypotheses", hypotheses), ("references", references)):
        bad = next((i for i, s in enumerate(seq) if not isinstance(s, str)), None)
        if bad is not None:
            raise TypeError(f"{name}[{bad}] is {type(seq[bad]).__name__}, expected str")
    return hypotheses, references


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Detokenized corpus BLEU (sacreBLEU defaults: 13a tokenization, exp smoothing).

    Example:
        >>> round(bleu(["the cat sat on the mat"], ["the cat sat on the mat"]), 1)
        100.0
    """
    import sacrebleu

    h, r = _check(hypotheses, references)
    return float(sacrebleu.corpus_bleu(h, [r]).score)


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (character n-gram F-score, sacreBLEU defaults)."""
    import sacrebleu

    h, r = _check(hypotheses, references)
    return float(sacrebleu.corpus_chrf(h, [r]).score)


def evaluate(hypotheses: Sequence[str], references: Sequence[str]) -> Dict[str, object]:
    """BLEU and chrF with their sacreBLEU signatures.

    Returns:
        ``{"bleu": float, "chrf": float, "bleu_signature": str, "chrf_signature": str,
        "sentences": int}``.
    """
    import sacrebleu

    h, r = _check(hypotheses, references)
    b = sacrebleu.metrics.BLEU()
    c = sacrebleu.metrics.CHRF()
    return {"bleu": float(b.corpus_score(h, [r]).score),
            "chrf": float(c.corpus_score(h, [r]).score),
            "bleu_signature": str(b.get_signature()), "chrf_signature": str(c.get_signature()),
            "sentences": len(h)}


def bleu_by_length(sources: Sequence[str], hypotheses: Sequence[str],
                   references: Sequence[str], edges: Sequence[int] = (10, 15, 20, 25)
                   ) -> list:
    """Corpus BLEU of the sentences in each source-length bucket (Bahdanau et al. 2015's
    figure 2: what a fixed-length context loses on long sentences).

    Args:
        sources: The source sentences (their length in whitespace words buckets them).
        hypotheses: The translations, line-aligned.
        references: The references, line-aligned.
        edges: Upper bounds (inclusive) of the buckets; one more bucket takes the rest.

    Returns:
        ``[{"words": "1-10", "low": 1, "high": 10, "sentences": n, "bleu": float}, ...]``
        in length order, empty buckets left out (``high`` is None for the last).

    Example:
        >>> hyp = ["the cat sat on the mat", "a dog ran"]
        >>> ref = ["the cat sat on the mat", "the big dog ran away"]
        >>> rows = bleu_by_length(["el gato", "el perro grande corrió"], hyp, ref, (2,))
        >>> [(r["words"], r["sentences"], round(r["bleu"])) for r in rows]
        [('1-2', 1, 100), ('3+', 1, 0)]
    """
    sources = list(sources)
    hypotheses, references = _check(hypotheses, references)
    if len(sources) != len(hypotheses):
        raise ValueError(f"{len(sources)} sources but {len(hypotheses)} hypotheses: they must "
                         f"be line-aligned")
    edges = sorted(int(e) for e in edges)
    bounds = list(zip([1] + [e + 1 for e in edges], edges + [None]))
    rows = []
    for low, high in bounds:
        idx = [i for i, s in enumerate(sources)
               if len(s.split()) >= low and (high is None or len(s.split()) <= high)]
        if not idx:
            continue
        rows.append({"words": f"{low}-{high}" if high else f"{low}+", "low": low,
                     "high": high, "sentences": len(idx),
                     "bleu": bleu([hypotheses[i] for i in idx], [references[i] for i in idx])})
    return rows


#: The ROUGE variants reported: unigram, bigram, longest common subsequence over the whole
#: text (``rougeL``) and summary-level LCS over sentences (``rougeLsum``, split on newlines;
#: the figure comparable with ROUGE-1.5.5's and py-rouge's ROUGE-L).
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def _sentences_per_line(text: str) -> str:
    """``rougeLsum`` needs one sentence per line; split after ., ! and ? followed by a space."""
    import re

    return "\n".join(s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s)


def rouge(hypotheses: Sequence[str], references: Sequence[str], stemmer: bool = True
          ) -> Dict[str, float]:
    """Mean ROUGE F1 (x100) over text pairs, with ``rouge-score``.

    Args:
        hypotheses: Generated summaries.
        references: Reference summaries, aligned with ``hypotheses``.
        stemmer: Porter-stem tokens first (as the published SAMSum and CNN/DM figures).

    Returns:
        ``{"rouge1", "rouge2", "rougeL", "rougeLsum": float, "texts": int}``.

    Example:
        >>> scores = rouge(["the cat sat on the mat"], ["the cat was sitting on the mat"])
        >>> round(scores["rouge1"], 1), round(scores["rouge2"], 1)
        (76.9, 54.5)
    """
    from rouge_score import rouge_scorer

    h, r = _check(hypotheses, references)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=stemmer)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for hyp, ref in zip(h, r):
        got = scorer.score(_sentences_per_line(ref), _sentences_per_line(hyp))
        for k in ROUGE_TYPES:
            totals[k] += got[k].fmeasure
    return {**{k: 100.0 * v / len(h) for k, v in totals.items()}, "texts": len(h)}


_WORD = None


def words(text: str):
    """The words of a text as the readability checks count them, lower-cased: a speaker tag
    (``#Person1#``) is one word, other words are runs of letters, digits, ``'``, ``-`` and
    ``#`` (so ``##2#`` is one malformed tag)."""
    global _WORD
    if _WORD is None:
        import re

        _WORD = re.compile(r"#[A-Za-z]+\d*#|[#\w][\w'#-]*")
    return [w.lower().strip("'-") for w in _WORD.findall(text)]


def readability(hypotheses: Sequence[str], sources: Sequence[str],
                vocabulary) -> Dict[str, float]:
    """What ROUGE misses: invented words and malformed speaker tags, as shares (%).

    An output word is *invented* when it is neither in its source nor in ``vocabulary`` (the
    words of the training summaries: :func:`words` of each). A *malformed tag* is a word with
    a ``#`` that is not a tag (``#Name#``) of its source: ``##2#``, ``#r1#``.

    Args:
        hypotheses: The summaries.
        sources: Their source texts, line-aligned.
        vocabulary: A set of known words (lower-cased).

    Returns:
        ``{"invented": %, "malformed_tags": %, "words": count, "tags": count}``.

    Example:
        >>> r = readability(["#Person1# gettingd home"], ["#Person1#: home"], {"getting"})
        >>> round(r["invented"], 1), r["malformed_tags"]
        (33.3, 0.0)
    """
    h, s = _check(hypotheses, sources)
    vocabulary = set(vocabulary)
    n_words = invented = n_tags = malformed = 0
    for hyp, src in zip(h, s):
        source_words = set(words(src))
        for w in words(hyp):
            n_words += 1
            if "#" in w:
                n_tags += 1
                malformed += w not in source_words
            elif w not in source_words and w not in vocabulary:
                invented += 1
    return {"invented": 100.0 * invented / max(n_words, 1),
            "malformed_tags": 100.0 * malformed / max(n_tags, 1),
            "words": n_words, "tags": n_tags}


def word_list(texts: Sequence[str]) -> set:
    """The known words of :func:`readability`: every word of ``texts``."""
    return {w for t in texts for w in words(t)}
