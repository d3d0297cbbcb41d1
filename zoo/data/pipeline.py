"""tf.data pipelines from sentence pairs to padded, length-bucketed training batches."""

from __future__ import annotations

from typing import Optional, Sequence

from zoo.data.tokenizer import BOS_ID, EOS_ID, PAD_ID


def _boundaries(max_length: int):
    """Fine buckets for short sentences (most of a corpus), coarser for long ones."""
    bounds = list(range(2, 17, 2)) + list(range(20, 33, 4)) + list(range(40, 10_000, 8))
    return [b for b in bounds if b < max_length] + [max_length]


def make_dataset(pairs, source_tokenizer, target_tokenizer=None, batch_size: int = 64,
                 batch_tokens: Optional[int] = None, max_source_length: int = 128,
                 max_target_length: int = 128, shuffle: bool = True, seed: int = 0,
                 bucket: bool = True, pad_to_bucket: bool = False, cache: bool = True,
                 repeat: bool = False, drop_remainder: bool = False, epoch=None,
                 batch_multiple: int = 1):
    """Builds the training/eval dataset of a translator.

    Sentences are tokenized in the graph (tensorflow-text), truncated, cached, shuffled,
    grouped into length buckets and padded with 0.

    Args:
        pairs: ``[(source, target), ...]`` strings (e.g. a :class:`zoo.data.Pairs`).
        source_tokenizer: A :class:`SentencePieceTokenizer`.
        target_tokenizer: Tokenizer of the target side; the source one if None.
        batch_size: Sentences per batch (when ``batch_tokens`` is None).
        batch_tokens: If set, batches hold about this many target tokens (bucket-dependent
            batch sizes), the usual choice for Transformers.
        max_source_length: Source ids kept, eos included (longer sentences are truncated).
        max_target_length: Target ids kept per side of the shift (bos/eos included).
        shuffle: Shuffle every epoch (before bucketing).
        seed: Shuffle seed.
        bucket: Group sentences of similar length so batches carry little padding.
        pad_to_bucket: Pad to the bucket boundary, giving few distinct shapes (for XLA).
        cache: Cache the tokenized corpus in memory after the first epoch.
        repeat: Repeat forever.
        drop_remainder: Drop the last short batch.
        epoch: A ``tf.Variable`` (int64) holding the epoch about to run: each epoch's order
            is then a function of ``(seed, epoch)`` alone, so a resumed run sees the batches
            an uninterrupted one would (``zoo.training.Checkpointer(data_epoch=...)`` sets
            it). None: a fresh shuffle each time the dataset is iterated.
        batch_multiple: Every batch holds a multiple of this many sentences (the number of
            replicas of a ``tf.distribute`` strategy, so each gets an equal share): batch
            sizes are rounded down to it, and a bucket's last short batch loses its last
            ``< batch_multiple`` sentences (others, the next epoch).

    Returns:
        A ``tf.data.Dataset`` of ``({"source": (batch, S), "target": (batch, T)}, labels)``:
        int32 ids, ``target`` starts with bos, ``labels`` is ``target`` shifted left and
        ends with eos; 0 is padding everywhere.

    Example:
        >>> from zoo.data import SentencePieceTokenizer
        >>> pairs = [("hola mundo", "hello world")] * 8
        >>> tok = SentencePieceTokenizer.train([s for p in pairs for s in p], vocab_size=20)
        >>> x, y = next(iter(make_dataset(pairs, tok, batch_size=4)))
        >>> x["source"].shape[0], x["target"].shape == y.shape
        (4, True)
    """
    import tensorflow as tf

    target_tokenizer = target_tokenizer or source_tokenizer
    _check_sizes(len(pairs), batch_size, max_source_length, max_target_length)
    ds = tf.data.Dataset.from_tensor_slices(([s for s, _ in pairs], [t for _, t in pairs]))
    ds = _tokenized(ds.batch(1024), source_tokenizer, target_tokenizer, max_source_length,
                    max_target_length)
    if shuffle and epoch is not None:
        ds = _permuted_by_epoch(ds, len(pairs), seed, epoch)
    else:
        if cache:
            ds = ds.cache()
        if shuffle:
            ds = ds.shuffle(min(len(pairs), 100_000), seed=seed,
                            reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = _batched(ds, batch_size, batch_tokens, max_source_length, max_target_length, bucket,
                  pad_to_bucket, drop_remainder, batch_multiple)
    if not repeat:
        # Bucketing hides the number of batches; counted once (the cache makes the pass
        # cheap to reuse), it lets fit show a real progress bar from epoch 1 and not warn
        # that the input "ran out of data".
        n = int(ds.reduce(0, lambda count, _: count + 1))
        ds = ds.apply(tf.data.experimental.assert_cardinality(n))
    return ds.prefetch(tf.data.AUTOTUNE)


def _check_sizes(n_pairs, batch_size, max_source_length, max_target_length) -> None:
    if n_pairs == 0:
        raise ValueError("make_dataset: no sentence pairs")
    for nm, v in (("batch_size", batch_size), ("max_source_length", max_source_length),
                  ("max_target_length", max_target_length)):
        if int(v) < 1:
            raise ValueError(f"make_dataset: {nm} must be a positive integer, got {v}")
    if max_target_length < 2 or max_source_length < 2:
        raise ValueError("make_dataset: max lengths must leave room for bos/eos (>= 2)")


def _permuted_by_epoch(ds, n, seed, epoch):
    """The tokenized pairs in a full permutation that is a function of ``(seed, epoch)``
    alone: stateless, so a resumed run in a new process sees the same order. The epoch is
    read when each iteration starts (not when the dataset is built), so it follows the
    trainer."""
    import tensorflow as tf

    # The tokenized corpus, held once in memory (what cache() would hold).
    src_rows, tgt_rows = next(iter(ds.ragged_batch(n)))  # (n, None) each

    def permuted(_):
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
        order = tf.random.experimental.index_shuffle(tf.range(n, dtype=tf.int64), key, n - 1)
        return tf.data.Dataset.from_tensor_slices(order)

    # Gathered 1024 rows at a time: one op per chunk, not per sentence.
    return tf.data.Dataset.range(1).flat_map(permuted).batch(1024).map(
        lambda js: (tf.gather(src_rows, js), tf.gather(tgt_rows, js)),
        num_parallel_calls=tf.data.AUTOTUNE).unbatch().map(
        lambda s, t: (tf.identity(s), tf.identity(t)))


def _tokenized(chunks, source_tokenizer, target_tokenizer, max_source_length,
               max_target_length):
    """Chunks of ``(sources, targets)`` strings -> one ``(source ids, target ids)`` element
    per pair: source ids + eos, bos + target ids + eos, cut to the maximum lengths."""
    import tensorflow as tf

    def tokenize(src, tgt):
        s = source_tokenizer.tokenize(src)[:, : max_source_length - 1]
        t = target_tokenizer.tokenize(tgt)[:, : max_target_length - 1]
        n = tf.shape(src)[0]
        eos = tf.fill([n, 1], EOS_ID)
        bos = tf.fill([n, 1], BOS_ID)
        s = tf.concat([s, eos], axis=1)
        t = tf.concat([bos, t, eos], axis=1)  # (n, None): bos ... eos
        return s, t

    # One tf-text call per chunk of sentences instead of per sentence.
    ds = chunks.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    # Rows of a ragged batch come out as rank-0-ragged specs; make them plain tensors.
    return ds.map(lambda s, t: (tf.identity(s), tf.identity(t)))


def _batched(ds, batch_size, batch_tokens, max_source_length, max_target_length, bucket,
             pad_to_bucket, drop_remainder, batch_multiple):
    """Pairs of ids -> padded, length-bucketed ``({"source", "target"}, labels)`` batches."""
    import tensorflow as tf

    def length(s, t):
        return tf.maximum(tf.shape(s)[0], tf.shape(t)[0])
    longest = max(max_source_length, max_target_length + 1)
    if bucket or batch_tokens:
        bounds = _boundaries(longest)
        if batch_tokens:
            sizes = [max(1, int(batch_tokens) // b) for b in bounds] + [
                max(1, int(batch_tokens) // longest)]
        else:
            sizes = [int(batch_size)] * (len(bounds) + 1)
        sizes = [max(m, size // m * m) for size in sizes for m in [int(batch_multiple)]]
        ds = ds.bucket_by_sequence_length(
            length, bucket_boundaries=[b + 1 for b in bounds], bucket_batch_sizes=sizes,
            padded_shapes=([None], [None]), padding_values=(PAD_ID, PAD_ID),
            pad_to_bucket_boundary=False, drop_remainder=drop_remainder)
    else:
        size = max(int(batch_multiple), int(batch_size) // int(batch_multiple) *
                   int(batch_multiple))
        ds = ds.padded_batch(size, padded_shapes=([None], [None]),
                             padding_values=(PAD_ID, PAD_ID), drop_remainder=drop_remainder)
    if int(batch_multiple) > 1:
        m = int(batch_multiple)

        def trim(s, t):
            keep = tf.shape(s)[0] // m * m
            return s[:keep], t[:keep]

        ds = ds.map(trim).filter(lambda s, t: tf.shape(s)[0] > 0)

    def to_model(s, t):
        if pad_to_bucket:
            # Round lengths up to a multiple of 8: few distinct shapes, few XLA compilations.
            def up(x):
                n = tf.shape(x)[1]
                return tf.pad(x, [[0, 0], [0, (8 - n % 8) % 8]])
            s, t = up(s), tf.pad(t, [[0, 0], [0, (8 - (tf.shape(t)[1] - 1) % 8) % 8]])
        return {"source": s, "target": t[:, :-1]}, t[:, 1:]

    return ds.map(to_model, num_parallel_calls=tf.data.AUTOTUNE)


def make_stream_dataset(corpus, source_tokenizer, target_tokenizer=None, batch_size: int = 64,
                        batch_tokens: Optional[int] = None, max_source_length: int = 128,
                        max_target_length: int = 128, shuffle_buffer: int = 100_000,
                        seed: int = 0, epoch=None, bucket: bool = True,
                        batch_multiple: int = 1, skip_invalid: bool = False, fmt=None,
                        **reader_kwargs):
    """Builds training batches from corpus files read as a stream: memory stays flat
    however large the corpus is.

    The files are read (and checked, as :func:`zoo.data.read_pairs` does) from disk on every
    pass, tokenized in chunks, shuffled in a buffer of ``shuffle_buffer`` pairs, bucketed and
    padded as :func:`make_dataset` does. Memory holds the buffer and the buckets, not the
    corpus.

    Args:
        corpus: A path, or ``(source_path, target_path)`` line-aligned files (as
            :func:`zoo.data.read_pairs`).
        source_tokenizer, target_tokenizer, batch_size, batch_tokens, max_source_length,
            max_target_length, bucket, batch_multiple: As :func:`make_dataset`.
        shuffle_buffer: Pairs held for shuffling (0: file order).
        seed: Shuffle seed.
        epoch: A ``tf.Variable`` with the epoch about to run: each epoch's order is then a
            function of ``(seed, epoch)`` (a resumed run sees the same batches).
        skip_invalid, fmt, **reader_kwargs: As :func:`zoo.data.read_pairs`.

    Returns:
        A ``tf.data.Dataset`` like :func:`make_dataset`'s; its number of batches is unknown
        until the first pass ends.

    Example:
        >>> import os, tempfile
        >>> from zoo.data import SentencePieceTokenizer
        >>> p = os.path.join(tempfile.mkdtemp(), "pairs.tsv")
        >>> _ = open(p, "w").write("hello world\\thola mundo\\n" * 8)
        >>> tok = SentencePieceTokenizer.train(["hola mundo", "hello world"] * 4, vocab_size=20)
        >>> x, y = next(iter(make_stream_dataset(p, tok, batch_size=4)))
        >>> x["source"].shape[0]
        4
    """
    import tensorflow as tf

    from zoo.data.readers import iter_pairs

    target_tokenizer = target_tokenizer or source_tokenizer

    def chunks():
        src, tgt = [], []
        for a, b in iter_pairs(corpus, fmt=fmt, skip_invalid=skip_invalid, **reader_kwargs):
            src.append(a)
            tgt.append(b)
            if len(src) == 1024:
                yield src, tgt
                src, tgt = [], []
        if src:
            yield src, tgt

    spec = tf.TensorSpec([None], tf.string)
    ds = _tokenized(tf.data.Dataset.from_generator(chunks, output_signature=(spec, spec)),
                    source_tokenizer, target_tokenizer, max_source_length, max_target_length)
    if shuffle_buffer and epoch is not None:
        pairs_stream = ds

        def shuffled(_):
            # A graph-level seed of the pass's own function: the order is then a function
            # of (seed, epoch) alone, read when each pass starts.
            tf.random.set_seed(1)
            return pairs_stream.shuffle(int(shuffle_buffer), seed=tf.cast(epoch, tf.int64) *
                                        1_000_003 + seed, reshuffle_each_iteration=False)

        ds = tf.data.Dataset.range(1).flat_map(shuffled)
    elif shuffle_buffer:
        ds = ds.shuffle(int(shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
    ds = _batched(ds, batch_size, batch_tokens, max_source_length, max_target_length, bucket,
                  False, False, batch_multiple)
    return ds.prefetch(tf.data.AUTOTUNE)


def encode_sources(texts: Sequence[str], tokenizer, max_length: int = 256, warn: bool = True):
    """Strings -> padded int32 source ids ``(batch, S)`` with eos, as the model expects.

    Args:
        texts: Source strings.
        tokenizer: A :class:`SentencePieceTokenizer`.
        max_length: Ids kept per text, eos included.
        warn: Warn (``zoo.inputs.InputTruncatedWarning``) when a text is cut.

    Returns:
        A ``(batch, S)`` int32 tensor, 0-padded.
    """
    import tensorflow as tf

    ids = tokenizer.tokenize(list(texts))
    if warn:
        from zoo.inputs import warn_truncated

        warn_truncated([int(n) + 1 for n in ids.row_lengths().numpy()], max_length,
                       stacklevel=4)
    ids = ids[:, : max_length - 1]
    eos = tf.fill([tf.shape(ids)[0], 1], EOS_ID)
    return tf.concat([ids, eos], axis=1).to_tensor(PAD_ID)
