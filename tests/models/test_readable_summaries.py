"""Summaries a person can read: speaker tags are single pieces in every runtime, and the
shipped summarizer's outputs hold no malformed tag (zoo.metrics.readability)."""

import pytest

from zoo import metrics
from zoo.data import SentencePieceTokenizer, dialogsum_pairs
from zoo.data.tokenizer import speaker_tags
from zoo.models.summarizer import TURN_SEPARATOR


@pytest.fixture(scope="module")
def tokenizer_and_tags():
    pairs = dialogsum_pairs("train")
    texts = [s for p in pairs for s in p]
    tags = speaker_tags(texts)
    return SentencePieceTokenizer.train(texts, vocab_size=2000, turn_separator=TURN_SEPARATOR,
                                        symbols=tags), tags


def test_every_speaker_tag_is_one_id_host_side_and_in_the_graph(tokenizer_and_tags):
    tok, tags = tokenizer_and_tags
    assert {"#Person1#", "#Person2#"} <= set(tags)
    for tag in tags:
        text = f"{tag}: hello\n{tag}'s turn"
        host = tok.processor.encode(text)
        graph = tok.tokenize([text]).to_list()[0]
        assert host == graph
        assert tok.processor.piece_to_id(tag) in host, tag
        assert tok.id_to_piece(host).count(tag) == 2, (tag, tok.id_to_piece(host))


def test_readability_counts_invented_words_and_malformed_tags():
    r = metrics.readability(["#Person2# tells ##2# the reest", "#Person1# goes home"],
                            ["#Person1#: hi\n#Person2#: I rest", "#Person1#: home"],
                            vocabulary={"tells", "the", "goes"})
    # words: #person2#, tells, ##2#, the, reest | #person1#, goes, home
    assert r["words"] == 8 and r["tags"] == 3
    assert r["malformed_tags"] == pytest.approx(100 / 3)
    assert r["invented"] == pytest.approx(100 / 8)  # "reest"


def test_shipped_summarizer_writes_no_malformed_tag():
    import zoo.models

    model = zoo.models.load("dialogsum_summarizer")
    dev = list(dialogsum_pairs("dev", limit=50))
    train_refs = [t for _, t in dialogsum_pairs("train")]
    outs = model.summarize([d for d, _ in dev])
    r = metrics.readability(outs, [d for d, _ in dev], metrics.word_list(train_refs))
    assert r["tags"] > 20 and r["malformed_tags"] == 0.0, r
    assert r["invented"] < 5.0, r
