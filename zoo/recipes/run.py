"""A training run's directory and its data accounting: the settings and tokenizer a run
starts with (and a resume checks), and the counts of truncated and unknown pieces."""

from __future__ import annotations

import json
import os
import tempfile


def open_run(settings, options, train_pairs, streamed: bool, chief: bool):
    """``(tokenizer, checkpoint directory or None)``: a new run in ``out_dir`` writes its
    settings and tokenizer there; a resumed one checks its settings and reuses its
    tokenizer; without ``out_dir`` the tokenizer is learned (or given) and nothing written."""
    out_dir = options.out_dir
    learn = lambda: _learn_tokenizer(settings, options, train_pairs, streamed)  # noqa: E731
    if not out_dir:
        return learn(), None
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    if not (chief or options.resume):  # another worker learns the same tokenizer
        return learn(), ckpt_dir
    record = {**settings.run_record(),
              "keep_best": bool(settings.keep_best and options.dev_pairs),
              "train_data": train_pairs.fingerprint() if streamed else fingerprint(train_pairs),
              "dev_data": fingerprint(list(options.dev_pairs)) if options.dev_pairs else None}
    if options.resume:
        return _resumed(out_dir, ckpt_dir, record), ckpt_dir
    if options.overwrite:
        _move_old_run_aside(out_dir)
    tokenizer = learn()
    _write_run(out_dir, ckpt_dir, record, tokenizer)
    return tokenizer, ckpt_dir


def _learn_tokenizer(settings, options, train_pairs, streamed):
    from zoo.data import SentencePieceTokenizer
    from zoo.data.tokenizer import speaker_tags

    if options.tokenizer is not None:
        return options.tokenizer
    sample = reservoir(train_pairs, options.tokenizer_sample, settings.seed) if streamed \
        else train_pairs
    texts = [s for pair in sample for s in pair]
    # Dialogue speaker tags stay one piece, so copying takes a whole tag or none of it.
    separator = settings.turn_separator
    return SentencePieceTokenizer.train(texts, vocab_size=settings.vocab_size,
                                        seed=settings.seed, turn_separator=separator,
                                        symbols=speaker_tags(texts) if separator else ())


def _resumed(out_dir, ckpt_dir, record):
    """The tokenizer of the run in ``out_dir``, once its settings match ``record``."""
    from zoo.files import RUN_MARKER
    from zoo.training import CheckpointError

    run_path = os.path.join(out_dir, RUN_MARKER)
    try:
        with open(run_path) as f:
            run = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"resume: {out_dir} holds no training run to resume (no "
                                f"{run_path}); start one without --resume") from None
    except ValueError as err:
        raise CheckpointError(f"{run_path}: not valid JSON ({err})") from None
    changed = [f"{k} (the run has {run[k]!r}, this call {v!r})"
               for k, v in record.items() if k in run and run[k] != v]
    if changed:
        raise CheckpointError(f"resume: the run in {out_dir} was started with other "
                              f"settings: {'; '.join(changed)}")
    return _run_tokenizer(ckpt_dir)


def _run_tokenizer(ckpt_dir):
    """The tokenizer a run wrote into its checkpoint folder (:func:`_write_run`)."""
    from zoo.data import load_tokenizer
    from zoo.serving.tokenizer import BPE_SUFFIX

    bpe = os.path.join(ckpt_dir, "source" + BPE_SUFFIX)
    path = bpe if os.path.exists(bpe) else os.path.join(ckpt_dir, "source.model")
    return load_tokenizer(path)


def _move_old_run_aside(out_dir):
    """A fresh run over an old one: its checkpoints and logs move aside (its model stays
    loadable); all of it goes only when the new model is in place."""
    for entry in ("checkpoints", "logs"):
        if os.path.lexists(os.path.join(out_dir, entry)):
            aside = tempfile.mkdtemp(prefix=f".zoo-old-{entry}-", dir=out_dir)
            os.rename(os.path.join(out_dir, entry), os.path.join(aside, entry))


def _write_run(out_dir, ckpt_dir, record, tokenizer):
    from zoo.files import RUN_MARKER, write_file_atomically

    os.makedirs(ckpt_dir, exist_ok=True)
    write_file_atomically(os.path.join(ckpt_dir, "source" + tokenizer.suffix), tokenizer.model)
    # Written last: its presence marks a run that can be resumed.
    write_file_atomically(os.path.join(out_dir, RUN_MARKER),
                          json.dumps(record, indent=2).encode("utf-8"))


def count_pieces(train_pairs, tokenizer, settings) -> dict:
    """Counted host-side, as the pipeline cuts (source ids + eos; bos + target ids + eos):
    ``pairs``, ``truncated_sources``, ``truncated``, ``pieces``, ``unknown``. A streamed
    corpus is read once here, in chunks: every pair is checked before training."""
    sp, src_max, tgt_max = tokenizer.processor, settings.max_source_length, \
        settings.max_target_length
    n = {"pairs": 0, "truncated_sources": 0, "truncated": 0, "pieces": 0, "unknown": 0}
    for chunk in chunks(train_pairs, 4096):
        src = sp.encode([s for s, _ in chunk])
        tgt = sp.encode([t for _, t in chunk])
        n["pairs"] += len(chunk)
        n["truncated_sources"] += sum(1 for a in src if len(a) > src_max - 1)
        n["truncated"] += sum(1 for a, b in zip(src, tgt)
                              if len(a) > src_max - 1 or len(b) > tgt_max - 1)
        n["pieces"] += sum(len(a) + len(b) for a, b in zip(src, tgt))
        n["unknown"] += sum(row.count(tokenizer.unk_id) for row in src + tgt)
    if not n["pairs"]:
        raise ValueError("no training pairs")
    return n


def chunks(pairs, size):
    """Lists of ``size`` pairs from an iterable (the last one shorter)."""
    chunk = []
    for pair in pairs:
        chunk.append(pair)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def reservoir(pairs, k: int, seed: int) -> list:
    """``k`` pairs drawn uniformly from an iterable in one pass (Vitter's algorithm R)."""
    import random

    rnd, sample = random.Random(seed), []
    for i, pair in enumerate(pairs):
        if i < k:
            sample.append(pair)
        else:
            j = rnd.randint(0, i)
            if j < k:
                sample[j] = pair
    return sample


def fingerprint(pairs) -> str:
    """The pairs' count and a hash of their text: what a resume checks it trains on."""
    import hashlib

    h = hashlib.sha256()
    for src, tgt in pairs:
        h.update(src.encode("utf-8") + b"\x00" + tgt.encode("utf-8") + b"\x01")
    return f"{len(pairs)}:{h.hexdigest()[:16]}"
