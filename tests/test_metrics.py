"""BLEU by source length against hand-computed corpus BLEU."""

import pytest

from zoo.metrics import bleu_by_length

SIX = "the cat sat on the mat"
OTHER = "one two three four five six"  # shares no word with its reference


def test_bleu_by_length_scores_each_bucket_as_a_corpus():
    sources = ["ein zwei", "ein zwei drei", "ein zwei drei vier"]
    hyps = [SIX, OTHER, SIX]
    refs = [SIX, "a b c d e f", SIX]
    rows = bleu_by_length(sources, hyps, refs, edges=(3,))
    assert [(r["words"], r["sentences"]) for r in rows] == [("1-3", 2), ("4+", 1)]
    # Bucket 1: sentence 1 matches all its 6/5/4/3 n-grams, sentence 2 none, equal lengths:
    # p_n = 6/12, 5/10, 4/8, 3/6 -> BLEU = 100 * 0.5 (brevity penalty 1).
    assert rows[0]["bleu"] == pytest.approx(50.0, abs=1e-6)
    assert rows[1]["bleu"] == pytest.approx(100.0)
    assert rows[1]["high"] is None and rows[0]["low"] == 1


def test_bleu_by_length_leaves_out_empty_buckets_and_checks_alignment():
    rows = bleu_by_length(["a b"], [SIX], [SIX], edges=(5, 10))
    assert [r["words"] for r in rows] == ["1-5"]
    with pytest.raises(ValueError, match="2 sources but 1 hypotheses"):
        bleu_by_length(["a", "b"], [SIX], [SIX])
