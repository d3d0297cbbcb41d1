import contextlib
import fcntl
import itertools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import zoo.attention  # noqa: E402

# Small sizes for the variants whose defaults are large; a variant missing here is built with
# its defaults, so a newly registered one is tested without new test code.
SMALL_KWARGS = {
    "multi_head": {"num_heads": 2},
    "location": {"filters": 3, "kernel_size": 3},
    "local": {"window": 2},
    "additive": {"units": 5},
    "coverage": {"units": 5},
    "monotonic": {"units": 5},
}

ATTENTION_NAMES = zoo.attention.names()


def make_attention(name, **overrides):
    return zoo.attention.get(name, **{**SMALL_KWARGS.get(name, {}), **overrides})


def equal_drawn_weights(weights):
    """Pairs of weight paths that hold the same drawn values. Drawn means mostly distinct
    values: a constant or two-valued start (zeros, an LSTM's unit forget bias) is set."""
    arrays = [(w.path, np.asarray(w)) for w in weights]
    return [(a, b) for (a, x), (b, y) in itertools.combinations(arrays, 2)
            if x.shape == y.shape and np.unique(x).size > x.size // 2 > 0
            and np.array_equal(x, y)]


@pytest.fixture(autouse=True)
def _seed_and_policy():
    keras.utils.set_random_seed(1234)
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@contextlib.contextmanager
def built_once(name, tmp_path_factory):
    """A folder that one run builds once, however many pytest-xdist workers ask for it: the
    first builds it under an ``flock``, the others wait, then find it done. Yields ``(folder,
    done)``; the caller builds it when not ``done``."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, shared by its workers
    folder = base / name
    with open(base / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = (folder / ".built").exists()
        yield folder, done
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".built").touch()


#: The formats of ``tiny_exports`` and their settings.
TINY_FORMATS = {"onnx": {"beam_size": 2}, "savedmodel": {"beam_size": 2},
                "litert": {"batch_size": 2, "max_source_length": 32,
                           "quantizations": ["float32", "int8"]}}


@pytest.fixture(scope="session")
def tiny_exports(tmp_path_factory):
    """One untrained tiny Transformer translator exported once per run in every format the
    runners and the server read: ``onnx`` (beam 2), ``savedmodel`` (beam 2) and ``litert``
    (batch 2, sources of 32 ids, float32 and int8). Returns ``(model, root)``. Each format has
    its own lock and each worker starts from another format, so two workers convert in
    parallel instead of one waiting for all three."""
    from zoo.data import SentencePieceTokenizer, anki_spa_eng_pairs
    from zoo.export import export
    from zoo.models import Translator

    with built_once("tiny_exports", tmp_path_factory) as (root, done):
        if done:
            model = Translator.load(str(root / "model"))
        else:
            pairs = anki_spa_eng_pairs(limit=300)
            tok = SentencePieceTokenizer.train([s for p in pairs for s in p], vocab_size=200)
            keras.utils.set_random_seed(1234)
            model = Translator.from_preset("transformer_tiny", tokenizer=tok,
                                           max_target_length=6, dim=16, ff_dim=32,
                                           num_heads=2)
            model.save(str(root / "model"))
    order = list(TINY_FORMATS)
    start = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:]) % len(order)
    for fmt in order[start:] + order[:start]:
        with built_once(f"tiny_exports_{fmt}", tmp_path_factory) as (_, done):
            if not done:
                export(model, str(root / fmt), fmt, **TINY_FORMATS[fmt])
    return model, root


#: The vocabulary of the T5-layout SentencePiece model (tests of zoo.models.importers).
T5_SP_VOCAB = 300


@pytest.fixture(scope="session")
def t5_sentencepiece():
    """A SentencePiece model with T5's special ids (pad 0, eos 1, unk 2, no bos), learned from
    400 embedded DialogSum dialogues: ``(bytes, vocabulary size)``."""
    import io

    import sentencepiece as spm

    from zoo.data import dialogsum_pairs

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([d for d, _ in dialogsum_pairs("train", limit=400)]),
        model_writer=buf, vocab_size=T5_SP_VOCAB, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        minloglevel=2, hard_vocab_limit=False)
    return buf.getvalue(), T5_SP_VOCAB


@pytest.fixture(scope="session")
def bart_bpe():
    """A byte-level BPE in BART's layout (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, the
    256 byte symbols, merges), learned by `tokenizers` from 300 embedded DialogSum dialogues
    as GPT-2's and BART's were: ``(vocab, merges)`` for KerasHub's ``BartTokenizer``."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from zoo.data import dialogsum_pairs

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(
        [d for d, _ in dialogsum_pairs("train", limit=300)],
        trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                            show_progress=False))
    model = json.loads(tok.to_str())["model"]
    return model["vocab"], [" ".join(m) for m in model["merges"]]


def zoo_scored_beam_sampler(num_beams, repeated, banned):
    """KerasHub's ``BeamSampler`` scoring candidates as zoo's beam search does, so the two
    searches can be compared token for token: log-softmax over zoo's columns (an imported
    model's bos column repeats the ``repeated`` row, so it counts twice), then ``banned``
    ids removed without renormalising (zoo bans after the log-softmax, as Hugging Face's
    processors do; KerasHub's own samplers have no bans)."""
    import keras_hub
    from keras import ops

    class _Sampler(keras_hub.samplers.BeamSampler):
        def compute_probabilities(self, logits):
            logits = ops.cast(logits, "float32")
            e = ops.exp(logits - ops.max(logits, axis=-1, keepdims=True))
            z = ops.sum(e, axis=-1, keepdims=True) + e[..., repeated:repeated + 1]
            vocab = ops.shape(logits)[-1]
            keep = 1.0 - ops.sum(ops.stack([ops.one_hot(i, vocab) for i in banned]), axis=0)
            return e / z * keep

    return _Sampler(num_beams=num_beams)


def assert_fine_tunes_saves_and_loads(model, path):
    """``fit`` on 64 real dialogues (SAMSum from ../shared, else the embedded DialogSum) lowers
    the loss, and the model saved to ``path`` reloads (``safe_mode=True``) and summarizes
    alike: what an imported model must do (tests/models/test_import_*.py)."""
    import zoo.models
    from zoo.data import dialogsum_pairs, make_dataset, read_jsonl

    samsum = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "samsum",
                          "train.jsonl.gz")
    pairs = (list(read_jsonl(samsum, "dialogue", "summary"))[:64] if os.path.exists(samsum)
             else list(dialogsum_pairs("train", limit=64)))
    data = make_dataset(pairs, model.source_tokenizer, batch_size=16, max_source_length=64,
                        max_target_length=32, shuffle=False)
    model.compile(learning_rate=3e-3)
    loss = model.fit(data, epochs=3, verbose=0).history["loss"]
    assert loss[-1] < loss[0]
    model.save(str(path))
    loaded = zoo.models.load(str(path))
    texts = [s for s, _ in pairs[:3]]
    assert loaded.summarize(texts, strategy="greedy", max_length=8) == \
        model.summarize(texts, strategy="greedy", max_length=8)
