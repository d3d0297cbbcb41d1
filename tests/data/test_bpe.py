"""Byte-level BPE (zoo.data.BytePairTokenizer): KerasHub's in-graph BPE and `tokenizers`
host-side give the same ids and the same text, from one ``.bpe.json`` file."""

import json

import numpy as np
import pytest
import tensorflow as tf

from zoo.data import (BytePairTokenizer, dialogsum_pairs, load_tokenizer, make_dataset,
                      tokenizer_files)
from zoo.models.importers import _bart_tokenizer
from zoo.serving import HostTokenizer

#: What GPT-2's pre-split and the byte mapping must get right beyond plain English.
EDGE_CASES = ["I 'm here", "he said 'm' ok", "a  b", "x\n\ny", "  lead", "trail  ", "",
              "naïve café — “quotes” 😀 日本語 \t tab  double  space\r\nwin", "x\u00a0y\u2009z",
              "#Person1#: Hi, I 'm Tom.\n#Person2#: It 's   fine.", "literal <s> and </s>"]


class _HubLike:
    """What the importer reads of a KerasHub ``BartTokenizer``."""

    def __init__(self, vocab, merges):
        self.vocabulary, self.merges = vocab, merges


@pytest.fixture(scope="module")
def tok(bart_bpe):
    return _bart_tokenizer(None, _HubLike(*bart_bpe))[0]


@pytest.fixture(scope="module")
def texts():
    return [s for pair in dialogsum_pairs("dev", limit=60) for s in pair] + EDGE_CASES


def test_zoo_layout_and_prefix(tok, bart_bpe):
    vocab = bart_bpe[0]
    pieces = tok.id_to_piece(range(6))
    assert pieces[0] == "<pad>" and pieces[1] == "<unk>" and pieces[3] == "</s>"
    assert pieces[4] == "<s>" and pieces[2] not in vocab  # bos: </s>'s row, a name of its own
    assert tok.vocab_size == len(vocab) + 1 and tok.prefix == [4]
    assert tok.processor.encode(["", "hi"])[0] == [4]


def test_graph_ids_equal_host_ids(tok, texts):
    graph = tok.tokenize(texts).to_list()
    host = tok.processor.encode(texts)
    assert graph == host
    assert all(row[0] == 4 for row in graph) and max(len(r) for r in graph) > 100


def test_in_a_tf_function_too(tok, texts):
    fn = tf.function(lambda x: tok.tokenize(x).to_tensor(0))
    host = tok.processor.encode(texts[:20])
    dense = fn(tf.constant(texts[:20])).numpy()
    assert [list(r[: len(h)]) for r, h in zip(dense, host)] == host


def test_round_trip_and_detokenize_alike(tok, texts, tmp_path):
    ids = tok.tokenize(texts)
    graph = [b.decode("utf-8", "replace") for b in tok.detokenize(ids).numpy()]
    assert graph == texts  # byte-level: every text comes back exactly
    host = HostTokenizer(tok.save(str(tmp_path / "source.bpe.json")))
    assert host.decode(ids.to_tensor(0).numpy()) == texts


def test_broken_characters_decode_alike(tok):
    """Random ids end inside characters: both sides write U+FFFD the same way."""
    rng = np.random.default_rng(0)
    ids = rng.integers(5, tok.vocab_size, (40, 12)).astype("int32")
    ids[:, 5] = 3  # eos: nothing after it counts
    graph = [b.decode("utf-8", "replace") for b in tok.detokenize(ids).numpy()]
    host = [tok.processor.decode([int(t) for t in row[:5]]) for row in ids]
    assert graph == host
    assert any("\ufffd" in t for t in graph)


def test_file_round_trip_and_runner_side(tok, texts, tmp_path):
    files = tokenizer_files(tok, tok)
    assert files == {"source": "source.bpe.json", "target": "source.bpe.json"}
    path = tok.save(str(tmp_path / files["source"]))
    back = load_tokenizer(path)
    assert isinstance(back, BytePairTokenizer) and back.model == tok.model
    host = HostTokenizer(path)
    ids, lengths = host.encode_with_lengths(texts, max_length=16)
    full = tok.processor.encode(texts)
    assert lengths == [len(r) + 1 for r in full]
    assert ids.shape[1] <= 16 and all(r[0] == 4 for r in ids)


@pytest.mark.parametrize("change,message", [
    (lambda d: d.update(format="x"), "not a zoo byte-level BPE file"),
    (lambda d: d["vocab"].pop("Ġ"), "ids 0..n-1"),
    (lambda d: d.update(merges=["a"]), "'a b' strings"),
    (lambda d: d.update(prefix=[2]), "ordinary ids"),
])
def test_bad_files_are_named(tok, tmp_path, change, message):
    data = json.loads(tok.model)
    change(data)
    path = tmp_path / "source.bpe.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message) as err:
        load_tokenizer(str(path))
    assert str(path) in str(err.value)
    with pytest.raises(ValueError, match=message):
        HostTokenizer(str(path))


def test_a_vocabulary_without_the_bytes_is_refused(tok):
    data = json.loads(tok.model)
    symbol = next(p for p in data["vocab"] if len(p) == 1 and p != "!")
    data["vocab"] = {p: i for i, p in enumerate(p for p in sorted(
        data["vocab"], key=data["vocab"].get) if p != symbol)}
    with pytest.raises(ValueError, match="256 byte symbols"):
        BytePairTokenizer(json.dumps(data).encode())


def test_byte_symbols_are_gpt2s():
    """Hand-checked: byte 0 -> U+0100, newline -> 'Ċ', space -> 'Ġ', '!' stays; the set is
    `tokenizers`' byte-level alphabet."""
    from tokenizers import pre_tokenizers

    from zoo.serving.tokenizer import byte_symbols

    symbols = byte_symbols()
    assert (symbols[0], symbols[10], symbols[32], symbols[33]) == ("\u0100", "Ċ", "Ġ", "!")
    assert len(set(symbols)) == 256
    assert set(symbols) == set(pre_tokenizers.ByteLevel.alphabet())


def test_a_tf_data_pipeline_tokenizes_as_the_host(tok):
    """Built lazily inside a ``tf.data`` map, the graph BPE must outlive that graph."""
    fresh = BytePairTokenizer(tok.model)
    pairs = list(dialogsum_pairs("dev", limit=8))
    data = make_dataset(pairs, fresh, batch_size=8, max_source_length=48, max_target_length=24,
                        shuffle=False, bucket=False)
    (x, _), = [batch for batch in data.take(1)]
    source = x["source"].numpy()
    for row, (text, _) in zip(source, pairs):
        want = fresh.processor.encode([text])[0][:47] + [3]
        assert list(row[:len(want)]) == want and not row[len(want):].any()
