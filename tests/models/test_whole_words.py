"""Whole-word copying (zoo.models.whole_words): hand-read masks, then a decoding model whose
every output obeys the rule. The exports run it too: the copying summarizer of
tests/models/test_summarizer.py has it on and gives Keras's summaries in SavedModel, ONNX and
LiteRT."""

import numpy as np
import pytest

from zoo.inputs import EOS_ID, SPECIAL_IDS
from zoo.models import whole_words

# A vocabulary read by hand: 4 and 5 continue "▁spec" (-> "▁spec ial ist"), 7 is "ly", 12 a tag.
PIECES = ["<pad>", "<s>", "</s>", "▁spec", "ial", "ist", "▁special", "ly", "▁a", ",", "'", "s",
          "#P#"]
KINDS = whole_words.piece_kinds(PIECES, {"#P#"})
SOURCE = np.array([[3, 4, 5, 8, 2, 0]], "int32")  # "▁spec ial ist ▁a </s>" + padding
CONTINUATIONS = {4, 5, 7, 11}


def _step(token, state, source=SOURCE):
    state, banned = whole_words.step(np.array([token], "int32"), state, source, KINDS)
    return state, set(np.flatnonzero(np.asarray(banned)[0]).tolist())


def _start(source=SOURCE):
    return whole_words.initial(source > 0)


def test_piece_kinds_read_the_first_and_last_characters():
    starts, opens, wordy, ends, symbols = KINDS
    assert np.flatnonzero(~starts).tolist() == sorted(CONTINUATIONS)
    assert np.flatnonzero(~opens).tolist() == [0, 1, 2, 9, 10, 12]  # <pad> ... , ' #P#
    assert np.flatnonzero(~wordy).tolist() == [9, 10]
    assert np.flatnonzero(~ends).tolist() == sorted(CONTINUATIONS | {12})
    assert np.flatnonzero(symbols).tolist() == [12]


def test_a_copied_word_is_finished_from_its_source_word():
    state, banned = _step(3, _start())  # "▁spec": a word of one piece may end here
    assert np.asarray(state["match"]).tolist() == [[True, False, False, False, False, False]]
    assert banned == CONTINUATIONS - {4} | {12}  # only "ial" continues it; no tag glued on
    state, banned = _step(4, state)  # "▁spec ial": half a word, "ist" must follow
    assert np.asarray(state["match"])[0, 1] and banned == set(range(len(PIECES))) - {5}
    state, banned = _step(5, state)  # "▁spec ial ist": the source word ends; no continuation
    assert np.asarray(state["match"])[0, 2] and banned == CONTINUATIONS | {12}


def test_words_that_match_no_source_word_are_free():
    state = _start()
    for token in (6, 7, 9, 0):  # "▁special ly ," then a finished row's padding
        state, banned = _step(token, state)
        # Only the tag is banned: the source has none.
        assert not np.asarray(state["match"]).any() and banned == {12}


def test_a_speaker_tag_is_written_only_when_the_source_holds_it():
    with_tag = np.array([[12, 8, 2, 0], [8, 12, 2, 0]], "int32")
    without = np.array([[8, 3, 2, 0], [0, 0, 0, 0]], "int32")  # no tag; a padding row
    for source, banned in ((with_tag, [False, False]), (without, [True, True])):
        # After "," (no word open), only the new rule can ban the tag.
        _, out = whole_words.step(np.array([9, 9], "int32"), whole_words.initial(source > 0),
                                  source, KINDS)
        assert np.asarray(out)[:, 12].tolist() == banned


def test_a_piece_after_punctuation_or_a_tag_begins_a_new_word():
    source = np.array([[12, 10, 8, 2, 0, 0]], "int32")  # "#P# ' ▁a </s>": no "'s" in it
    state, banned = _step(12, _start(source), source)  # the tag matches, but is closed
    assert np.asarray(state["match"])[0, 0] and not np.asarray(state["open"])[0]
    assert banned == set()
    state, banned = _step(10, state, source)  # "'" is no word: "s" may follow
    assert not np.asarray(state["match"]).any() and banned == set()
    state, banned = _step(11, state, source)  # "s" begins a word that is in no source
    assert banned == set()


def _words(ids, pieces):
    """The output as words, each a list of ids: a piece that does not continue the one
    before (see zoo.models.whole_words) begins a new one."""
    out, prev = [], ""
    for i in ids:
        if not pieces[i][:1].isalnum() or not prev[-1:].isalnum():
            out.append([])
        out[-1].append(i)
        prev = pieces[i]
    return out


def _text(ids):
    return [i for i in ids if i not in SPECIAL_IDS.values()]


def _source_words(ids, pieces):
    return [tuple(w) for w in _words(_text(ids), pieces)]


def _obeys(output, source, pieces):
    """The rule, read the slow way: every word of the output that starts like a source word
    (its first k pieces equal a source word's first k) is that whole source word, unless it
    is a single piece. A last word cut by the maximum length (no eos) is not judged."""
    src = _source_words(source, pieces)
    words = _words(_text(output), pieces)
    for word in words if output[-1:] == [EOS_ID] else words[:-1]:
        prefixes = [s for s in src if tuple(word[:1]) == s[:1]]
        if not prefixes or len(word) == 1:
            continue
        # A copied word may follow any source word that shares its pieces so far.
        if not any(tuple(word) == s for s in src):
            return False
    return True


@pytest.fixture(scope="module")
def model():
    from zoo.data import SentencePieceTokenizer, dialogsum_pairs
    from zoo.models import Summarizer

    pairs = list(dialogsum_pairs("train", limit=300))
    tok = SentencePieceTokenizer.train([t for p in pairs for t in p], vocab_size=400,
                                       turn_separator="<sep>")
    m = Summarizer.from_preset("pointer_generator_tiny", tokenizer=tok, copy_whole_words=True,
                               max_target_length=24)
    return m, [d for d, _ in pairs[:8]]


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_a_model_copying_whole_words_obeys_the_rule(model, strategy):
    m, dialogues = model
    pieces = m.target_tokenizer.id_to_piece(range(m.target_tokenizer.vocab_size))
    ids = m.encode_texts(dialogues).numpy()
    res = m.generate(ids, strategy)
    free = m.__class__.from_config(m.get_config() | {"copy_whole_words": False})
    assert m.get_config()["copy_whole_words"] and not free.copy_whole_words
    for row, out in enumerate(np.asarray(res.tokens)[:, 0]):
        assert _obeys(out[:int(res.lengths[row, 0])].tolist(), ids[row].tolist(), pieces)


def test_copy_whole_words_needs_a_copying_decoder():
    from zoo.models import Translator

    with pytest.raises(ValueError, match="copy_whole_words needs a copying decoder"):
        Translator.from_preset("transformer_tiny", vocab_size=50, copy_whole_words=True)


def test_a_banned_tag_cannot_be_spelled_out_piece_by_piece():
    """With ``#Person1#`` banned, the pieces "#", "Person", "1", "#" could still spell it. A
    piece holding a tag's mark is held to the tag's rule; the special pieces never are (eos
    stays writable)."""
    pieces = ["<pad>", "<unk>", "<s>", "</s>", "▁Yan", "#", "Person", "1", "▁#", "#P#", "#x"]
    kinds = whole_words.piece_kinds(pieces, {"#P#"})
    assert np.flatnonzero(kinds[4]).tolist() == [5, 8, 9, 10]
    source = np.array([[4, 3, 0]], "int32")  # "▁Yan </s>": no tag, no '#'
    state, banned = whole_words.step(np.array([4], "int32"), whole_words.initial(source > 0),
                                     source, kinds)
    banned = set(np.flatnonzero(np.asarray(banned)[0]).tolist())
    assert {5, 8, 9, 10} <= banned and EOS_ID not in banned
    hashtag = np.array([[8, 4, 3]], "int32")  # "▁# ▁Yan </s>": the source holds "▁#"
    _, banned = whole_words.step(np.array([4], "int32"), whole_words.initial(hashtag > 0),
                                 hashtag, kinds)
    assert not np.asarray(banned)[0, 8]
