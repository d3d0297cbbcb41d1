"""Trained checkpoints: the shipped ones (checksums, scores re-measured live), the checkpoint
format (float16 storage restored to float32) and loading from archives and URLs (an HTTP
server on 127.0.0.1 that the test starts; nothing reaches another host)."""

import http.server
import json
import os
import shutil
import tarfile
import threading

import numpy as np
import pytest

import zoo.models
from zoo.models import hub, presets

SHIPPED = ("anki_es_en", "anki_en_es", "dialogsum_summarizer")


# ---------------------------------------------------------------- the shipped checkpoints
def test_every_checkpoint_is_shipped_and_marked():
    assert set(presets.checkpoint_names()) == set(SHIPPED)
    for name in SHIPPED:
        assert presets.trained_scores(name)
        card = open(os.path.join(hub.PACKAGE_DIR, name, hub.CARD_FILE)).read()
        for part in ("Data and licence", "Recipe", "Training", "Scores", "Limits",
                     f"python bench/checkpoints.py {name}"):
            assert part in card, (name, part)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_checksum_and_live_score(name):
    directory = hub.resolve(name)
    meta = json.load(open(os.path.join(directory, "zoo.json")))
    hub.verify(directory, meta)  # every file's SHA-256
    assert set(meta["checkpoint"]["sha256"]) == set(os.listdir(directory)) - {"zoo.json"}
    model = zoo.models.load(name)
    card = meta["extra"]["card"]
    # Scored now, not read from the card: the card's own slice and figure.
    live = hub.score_slice(model, card["slice"])
    assert abs(live - card["slice"]["score"]) <= 1.0, (live, card["slice"])


def test_from_preset_gives_the_trained_model_and_refuses_a_new_tokenizer():
    from zoo.data import SentencePieceTokenizer
    from zoo.models import Translator

    model = Translator.from_preset("anki_es_en")
    assert model.preset == "anki_es_en" and model.source_tokenizer is not None
    assert model.translate(["Tengo hambre."]) == ["I'm hungry."]
    tok = SentencePieceTokenizer.train(["hola mundo"] * 20, vocab_size=20)
    with pytest.raises(ValueError, match="trained checkpoint"):
        Translator.from_preset("anki_es_en", tokenizer=tok)
    with pytest.raises(ValueError, match="not a Summarizer"):
        zoo.models.Summarizer.from_preset("anki_es_en")


def test_a_changed_file_is_refused_with_its_name(tmp_path):
    copy = tmp_path / "ck"
    shutil.copytree(hub.resolve("anki_es_en"), copy)
    with open(copy / hub.CARD_FILE, "a") as f:
        f.write("edited\n")
    with pytest.raises(hub.ChecksumError, match="MODEL_CARD.md"):
        zoo.models.load(str(copy))


# ---------------------------------------------------------------- the format
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny trained-for-a-few-steps translator saved as a checkpoint directory."""
    from zoo.data import SentencePieceTokenizer, anki_spa_eng_pairs, make_dataset
    from zoo.models import Translator

    pairs = anki_spa_eng_pairs(limit=200)
    tok = SentencePieceTokenizer.train([s for p in pairs for s in p], vocab_size=150)
    model = Translator.from_preset("transformer_tiny", tokenizer=tok, max_target_length=8,
                                   dim=16, ff_dim=32, num_heads=2)
    model.compile(learning_rate=1e-2)
    model.fit(make_dataset(pairs, tok, batch_size=32, seed=0), epochs=1, verbose=0)
    root = tmp_path_factory.mktemp("ck")
    path = str(root / "tiny")
    hub.save_checkpoint(model, path, storage="float16", card="# tiny\n")
    return model, path, [s for s, _ in pairs[:8]]


def test_float16_storage_restores_float32_weights_equal_to_the_rounding(tiny):
    model, path, _ = tiny
    loaded = zoo.models.load(path)
    assert type(loaded) is type(model)
    for a, b in zip(model.weights, loaded.weights):
        assert b.dtype == "float32"
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a).astype("float16")
                                      .astype("float32"))
    with np.load(os.path.join(path, hub.WEIGHTS_FILE)) as stored:
        assert {stored[k].dtype for k in stored.files} == {np.dtype("float16")}


# ---------------------------------------------------------------- archives and URLs
class _Server:
    """Serves files of a folder on 127.0.0.1; ``mode`` breaks responses on purpose."""

    def __init__(self, root):
        self.root, self.requests, self.mode = root, [], "ok"
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802  (the standard library's name)
                server.requests.append(self.path)
                if server.mode == "error":
                    self.send_error(500, "broken on purpose")
                    return
                data = open(os.path.join(server.root, self.path.lstrip("/")), "rb").read()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:len(data) // 2] if server.mode == "truncate" else data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def served(tiny, tmp_path, monkeypatch):
    _, path, _ = tiny
    www = tmp_path / "www"
    www.mkdir()
    archive = str(www / "tiny.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(path, arcname="tiny")
    monkeypatch.setenv(hub.CACHE_ENV, str(tmp_path / "cache"))
    server = _Server(str(www))
    yield server, f"{server.url}/tiny.tar.gz", hub.sha256(archive), tmp_path / "cache"
    server.close()


def _entries(cache):
    return sorted(os.listdir(cache)) if os.path.isdir(cache) else []


def test_url_download_is_verified_cached_and_reused(served, tiny):
    server, url, digest, cache = served
    model = zoo.models.load(f"{url}#sha256={digest}")
    assert model.translate(tiny[2]) == tiny[0].__class__.load(tiny[1]).translate(tiny[2])
    assert _entries(cache) == [digest]
    zoo.models.load(hub.resolve(url, digest))
    assert len(server.requests) == 1  # the second load used the cache


def test_wrong_digest_names_url_and_both_digests_and_leaves_nothing(served):
    server, url, digest, cache = served
    wrong = "0" * 64
    with pytest.raises(hub.ChecksumError) as err:
        hub.resolve(url, wrong)
    assert url in str(err.value) and wrong in str(err.value) and digest in str(err.value)
    assert _entries(cache) == []


@pytest.mark.parametrize("mode", ["truncate", "error"])
def test_broken_transfer_is_refused_and_leaves_nothing(served, mode):
    server, url, digest, cache = served
    server.mode = mode
    with pytest.raises((OSError, hub.ChecksumError)) as err:
        hub.resolve(url, digest)
    assert url in str(err.value)
    assert _entries(cache) == []
    server.mode = "ok"
    assert os.path.isdir(hub.resolve(url, digest))  # and a later good transfer works


def test_a_url_without_digest_is_refused_before_any_request(served):
    server, url, _, _ = served
    with pytest.raises(ValueError, match="SHA-256"):
        hub.resolve(url)
    assert server.requests == []


def test_concurrent_loaders_of_one_url_agree(served):
    server, url, digest, cache = served
    results, errors = [], []

    def load():
        try:
            results.append(hub.resolve(url, digest))
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1
    assert _entries(cache) == [digest]


def test_local_archive_and_file_url(tiny, tmp_path, monkeypatch):
    _, path, _ = tiny
    monkeypatch.setenv(hub.CACHE_ENV, str(tmp_path / "cache"))
    archive = tmp_path / "tiny.zip"
    shutil.make_archive(str(archive)[:-4], "zip", os.path.dirname(path), "tiny")
    assert zoo.models.load(str(archive)).task == "translation"
    url = archive.as_uri()
    assert zoo.models.load(f"{url}#sha256={hub.sha256(str(archive))}").task == "translation"
