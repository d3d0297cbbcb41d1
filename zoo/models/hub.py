"""Trained checkpoints: their files, and where they come from (package, directory, archive, URL).

A checkpoint directory holds ``zoo.json`` (the task, tokenizers and a SHA-256 per file),
``config.json`` (the Keras config of the model, read with ``safe_mode=True``),
``weights.npz`` (every variable in ``model.weights`` order, stored as float16 where that keeps
the tokens identical, restored to float32), the tokenizer file(s) and ``MODEL_CARD.md``.
:func:`resolve` turns a handle into such a directory; ``zoo.models.load`` reads it.

Example:
    >>> import zoo.models
    >>> model = zoo.models.load("anki_es_en")         # shipped: no training, no network
    >>> model.translate(["Tengo hambre."])
    ["I'm hungry."]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import urllib.parse

import numpy as np

from zoo.files import follow_umask

#: Where the shipped checkpoints live (package data).
PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "checkpoints")
#: The environment variable that moves the download cache (default ``~/.cache/zoo``).
CACHE_ENV = "ZOO_CACHE"
WEIGHTS_FILE, CONFIG_FILE, CARD_FILE = "weights.npz", "config.json", "MODEL_CARD.md"
_ARCHIVES = (".tar.gz", ".tgz", ".tar", ".zip")


class ChecksumError(ValueError):
    """A file's SHA-256 is not the one it was published with."""


def sha256(path: str) -> str:
    """The hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_dir() -> str:
    """The download cache: ``$ZOO_CACHE``, else ``~/.cache/zoo``."""
    return os.path.abspath(os.path.expanduser(
        os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "zoo")))


def is_checkpoint(path: str) -> bool:
    """Whether ``path`` is a checkpoint directory (weights stored apart from the config)."""
    return all(os.path.isfile(os.path.join(path, f)) for f in (CONFIG_FILE, WEIGHTS_FILE))


# ---------------------------------------------------------------------- writing
def save_checkpoint(model, directory: str, storage: str = "float16", card: str = "",
                    extra: dict = None) -> dict:
    """Writes ``model`` as a checkpoint directory (which must not exist).

    Args:
        model: A built zoo model with its tokenizers.
        directory: The new directory.
        storage: ``"float16"`` (half the size; check the tokens) or ``"float32"``.
        card: The model card (Markdown).
        extra: More entries for ``zoo.json`` (scores, fine-tuning defaults).

    Returns:
        The ``zoo.json`` dict written.
    """
    import keras

    from zoo.data.tokenizer_files import write_tokenizers

    if storage not in ("float16", "float32"):
        raise ValueError(f"storage must be 'float16' or 'float32', got {storage!r}")
    os.makedirs(directory)
    with open(os.path.join(directory, CONFIG_FILE), "w") as f:
        json.dump(keras.saving.serialize_keras_object(model), f, indent=1)
    arrays = {f"w{i:04d}": np.asarray(keras.ops.convert_to_numpy(w)).astype(storage)
              for i, w in enumerate(model.weights)}
    np.savez(os.path.join(directory, WEIGHTS_FILE), **arrays)
    tokenizers = write_tokenizers(model.source_tokenizer, model.target_tokenizer, directory)
    with open(os.path.join(directory, CARD_FILE), "w", encoding="utf-8") as f:
        f.write(card)
    files = sorted(os.listdir(directory))
    meta = {"format": 2, "task": model.task, "class": type(model).__name__,
            "preset": model.preset, "source_tokenizer": tokenizers["source"],
            "target_tokenizer": tokenizers["target"],
            "checkpoint": {"storage": storage, "variables": len(model.weights),
                           "sha256": {f: sha256(os.path.join(directory, f)) for f in files}},
            **(extra or {})}
    with open(os.path.join(directory, "zoo.json"), "w") as f:
        json.dump(meta, f, indent=2)
    return meta


# ---------------------------------------------------------------------- reading
def verify(directory: str, meta: dict) -> None:
    """Checks every file's SHA-256 against ``zoo.json``'s, naming the first that differs."""
    for name, expected in meta.get("checkpoint", {}).get("sha256", {}).items():
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: missing (the checkpoint is incomplete)")
        actual = sha256(path)
        if actual != expected:
            raise ChecksumError(f"{path}: SHA-256 {actual} is not the published {expected} "
                                f"(the file was changed or damaged)")


def build_from_checkpoint(directory: str, meta: dict):
    """The model of a checkpoint directory, weights restored to float32 (no tokenizers)."""
    import keras

    from zoo.models.base import ModelFileError

    with open(os.path.join(directory, CONFIG_FILE), encoding="utf-8") as f:
        config = json.load(f)
    model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    if not model.built:  # (the config may carry its build_config)
        model.build()
    with np.load(os.path.join(directory, WEIGHTS_FILE), allow_pickle=False) as data:
        arrays = [data[f"w{i:04d}"] for i in range(len(data.files))]
    if len(arrays) != len(model.weights):
        raise ModelFileError(f"{directory}: {len(arrays)} stored arrays for "
                             f"{len(model.weights)} variables")
    for var, value in zip(model.weights, arrays):
        if tuple(var.shape) != value.shape:
            raise ModelFileError(f"{directory}: {var.path} has shape {tuple(var.shape)}, the "
                                 f"stored array {value.shape}")
        var.assign(value.astype(var.dtype))
    return model


# ---------------------------------------------------------------------- finding
def resolve(handle: str, sha256_digest: str = None) -> str:
    """The local directory of a model handle.

    Args:
        handle: A shipped checkpoint's preset name, a model or checkpoint directory, an
            archive (``.tar.gz``, ``.zip``) of one, or an ``https://``, ``http://`` or
            ``file://`` URL of an archive.
        sha256_digest: The archive's expected SHA-256; required for a URL (or append
            ``#sha256=HEX`` to it).

    Returns:
        A directory that ``zoo.models.load`` reads.
    """
    handle = os.fspath(handle)
    scheme = urllib.parse.urlsplit(handle).scheme
    if scheme in ("http", "https", "file"):
        return _download(handle, sha256_digest)
    if os.path.isdir(handle):
        return handle
    if os.path.isfile(handle):
        if not handle.endswith(_ARCHIVES):
            raise FileNotFoundError(f"{handle} is a file, not a model directory or an archive "
                                    f"({', '.join(_ARCHIVES)})")
        return _unpack(handle, sha256_digest or sha256(handle), sha256_digest)
    from zoo.models import presets

    preset = presets.PRESETS.get(handle)
    if preset is not None and preset.get("weights"):
        weights = preset["weights"]
        if "url" in weights:
            return _download(weights["url"], weights["sha256"])
        return os.path.join(PACKAGE_DIR, weights["path"])
    known = ", ".join(presets.checkpoint_names())
    raise FileNotFoundError(f"{handle}: no such model directory, archive or shipped checkpoint "
                            f"(shipped: {known or 'none'})")


def _split_digest(url: str, digest: str):
    base, _, fragment = url.partition("#")
    if fragment.startswith("sha256="):
        digest = digest or fragment[len("sha256="):]
    if not digest or len(digest) != 64 or any(c not in "0123456789abcdef" for c in
                                              digest.lower()):
        raise ValueError(f"{url}: a URL needs the archive's SHA-256 (64 hex digits), as "
                         f"sha256=... or URL#sha256=...; got {digest!r}")
    return base, digest.lower()


def _download(url: str, digest: str) -> str:
    """Downloads an archive once into the cache (verified before use) and unpacks it."""
    import keras

    url, digest = _split_digest(url, digest)
    final = os.path.join(cache_dir(), digest)
    if os.path.isdir(final):
        return _model_root(final)
    os.makedirs(cache_dir(), exist_ok=True)
    name = os.path.basename(urllib.parse.urlsplit(url).path) or "model.tar.gz"
    with tempfile.TemporaryDirectory(dir=cache_dir(), prefix=".download-") as tmp:
        try:
            # Keras prints its progress on stdout, which is the CLI's output.
            with contextlib.redirect_stdout(sys.stderr):
                path = keras.utils.get_file(name, url, cache_dir=tmp, cache_subdir=".")
        except Exception as err:  # noqa: BLE001  (urllib's and Keras's errors alike)
            raise OSError(f"{url}: download failed ({err})") from None
        actual = sha256(path)
        if actual != digest:
            raise ChecksumError(f"{url}: SHA-256 {actual} is not the expected {digest}; the "
                                f"download was removed (interrupted, or another file)")
        return _unpack(path, digest, digest)


def _unpack(archive: str, key: str, digest: str = None) -> str:
    """Unpacks an archive beside the cache entry ``key`` and renames it into place."""
    if digest is not None and sha256(archive) != digest:
        raise ChecksumError(f"{archive}: SHA-256 {sha256(archive)} is not the expected "
                            f"{digest}")
    final = os.path.join(cache_dir(), key)
    if os.path.isdir(final):
        return _model_root(final)
    os.makedirs(cache_dir(), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=cache_dir(), prefix=".unpack-")
    follow_umask(tmp)
    try:
        # "data": no absolute paths, links out of the folder or device files from an archive.
        safe = {"filter": "data"} if archive.endswith((".tar.gz", ".tgz", ".tar")) else {}
        shutil.unpack_archive(archive, tmp, **safe)
        try:
            os.rename(tmp, final)
        except OSError:  # another loader of the same archive finished first: same content
            if not os.path.isdir(final):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _model_root(final)


def _model_root(directory: str) -> str:
    """The directory holding ``zoo.json``: the archive's root or its one folder."""
    if os.path.isfile(os.path.join(directory, "zoo.json")):
        return directory
    entries = [e for e in os.listdir(directory) if not e.startswith(".")]
    if len(entries) == 1 and os.path.isfile(os.path.join(directory, entries[0], "zoo.json")):
        return os.path.join(directory, entries[0])
    raise FileNotFoundError(f"{directory}: the archive holds no zoo model (no zoo.json at its "
                            f"root or in its one folder)")


# ---------------------------------------------------------------------- cards
def card_slice(spec: dict):
    """``(sources, references)`` of the fixed slice a model card scores (its ``slice``).

    Args:
        spec: ``{"corpus": "anki_spa_eng", "reverse": bool, "count": n}`` (the held-out
            test pairs of ``zoo.data.anki_spa_eng_splits``) or ``{"corpus": "dialogsum",
            "count": n}`` (the embedded DialogSum dev dialogues).
    """
    from zoo import data

    if spec["corpus"] == "anki_spa_eng":
        pairs = data.anki_spa_eng_splits(reverse=spec.get("reverse", False))[2]
    elif spec["corpus"] == "dialogsum":
        pairs = data.dialogsum_pairs("dev")
    else:
        raise ValueError(f"unknown card slice corpus {spec['corpus']!r}")
    pairs = list(pairs)[:spec["count"]]
    return [s for s, _ in pairs], [t for _, t in pairs]


def score_slice(model, spec: dict) -> float:
    """The task metric of ``model`` on a card's slice, with the task's default decoding:
    BLEU for translation, ROUGE-1 for summarization."""
    from zoo import metrics

    sources, refs = card_slice(spec)
    hyps = model.generate_text(sources)
    if model.task_spec.metric == "rouge":
        return round(metrics.rouge(hyps, refs)["rouge1"], 2)
    return round(metrics.bleu(hyps, refs), 2)
