"""Data-parallel training on several devices of one host with ``tf.distribute``.

TensorFlow-backend code (Keras 3 trains under a ``tf.distribute`` strategy when the model is
built and compiled in its scope). ``zoo.recipes.train(devices=N)`` and ``zoo train --devices
N`` use it; from Python, build and compile inside ``mirrored_strategy(N).scope()`` and call
``fit`` as usual. The batch size given is the global batch: each step splits it across the
devices, and :class:`zoo.training.SequenceLoss` divides by the tokens of the whole global
batch, so the step's loss and gradients are those of one device on the same batch.
"""

from __future__ import annotations


def mirrored_strategy(devices: int):
    """A ``tf.distribute.MirroredStrategy`` over ``devices`` devices of this host.

    GPUs when there are enough; otherwise the CPU split into ``devices`` logical devices.
    The split shows that the distributed path works (and is what the tests and
    ``bench/scale.py`` use on a CPU-only machine); it adds no compute. It must happen before
    TensorFlow runs its first operation; after that, only devices that already exist can be
    used.

    Args:
        devices: Number of replicas (>= 2).

    Returns:
        The strategy.

    Raises:
        ValueError: Fewer devices than asked for (the message says what was found).

    Example:
        >>> strategy = mirrored_strategy(2)  # doctest: +SKIP
        >>> strategy.num_replicas_in_sync  # doctest: +SKIP
        2
    """
    import tensorflow as tf

    devices = int(devices)
    if devices < 2:
        raise ValueError(f"devices must be >= 2 for a mirrored strategy, got {devices}")
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) >= devices:
        names = [f"/gpu:{i}" for i in range(devices)]
    else:
        prepare_devices(devices)
        cpus = tf.config.list_logical_devices("CPU")
        if len(cpus) < devices:
            raise ValueError(
                f"devices={devices}: this machine has {len(gpus)} GPU(s), and TensorFlow "
                f"already runs with {len(cpus)} CPU device(s), so the CPU can no longer be "
                f"split; ask for devices before TensorFlow's first operation")
        names = [c.name for c in cpus[:devices]]
    return tf.distribute.MirroredStrategy(names)


def prepare_devices(devices: int) -> None:
    """Splits the CPU into ``devices`` logical devices when there are fewer GPUs, if
    TensorFlow has not started yet (else does nothing). Call it before any TensorFlow
    operation when the strategy is made later (the CLI does)."""
    import tensorflow as tf

    if int(devices) < 2 or len(tf.config.list_physical_devices("GPU")) >= int(devices):
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(int(devices))])
    except RuntimeError:  # TensorFlow has started: the devices it has are the ones to use
        pass


def first_local_batch(iterator, strategy):
    """The first batch of a Keras epoch iterator, this process's first replica's part."""
    import tensorflow as tf

    for _, _, it in iterator:
        batch = next(it)
        return tf.nest.map_structure(
            lambda v: strategy.experimental_local_results(v)[0]
            if isinstance(v, tf.distribute.DistributedValues) else v, batch)
    return None


def in_multi_worker_step() -> bool:
    """True inside a replica's step of a ``MultiWorkerMirroredStrategy`` spanning hosts."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    if tf.distribute.in_cross_replica_context() or not tf.distribute.has_strategy():
        return False
    strategy = tf.distribute.get_strategy()
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and \
        strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)


def multi_worker_strategy():
    """A ``tf.distribute.MultiWorkerMirroredStrategy`` for the cluster that ``TF_CONFIG``
    describes (every worker runs the same command with its own ``task.index``).

    Must be made before TensorFlow's first operation. Each worker uses its GPUs, or its
    CPU as one device.

    Raises:
        ValueError: ``TF_CONFIG`` is missing or names no workers (the message shows the
            expected form).
    """
    import json
    import os

    raw = os.environ.get("TF_CONFIG")
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not raw:
        raise ValueError(f"multi-worker training reads the cluster from the TF_CONFIG "
                         f"environment variable, which is not set; e.g. {example}")
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        config["task"]["index"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"TF_CONFIG is not a cluster description ({err!r}); e.g. "
                         f"{example}") from None
    if not workers:
        raise ValueError(f"TF_CONFIG names no workers; e.g. {example}")
    import tensorflow as tf

    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    """Whether this process writes files (checkpoints, the model) for ``strategy``: always
    outside a multi-worker cluster, worker 0 in one."""
    return strategy is None or bool(getattr(strategy.extended, "should_checkpoint", True))


def split_for_replicas(ds, first: int, local: int, total: int):
    """Each global batch (a multiple of ``total`` rows) -> the ``local`` per-replica parts
    ``first .. first + local - 1`` of ``total``, as consecutive elements: what
    ``distribute_datasets_from_function`` hands this worker's replicas in turn. Every worker
    builds the same global batches (same seed, same epoch), so their parts make up exactly
    the batch one device would train on."""
    import tensorflow as tf

    def parts(x, y):
        def cut(v):
            v = tf.reshape(v, tf.concat([[total, -1], tf.shape(v)[1:]], 0))
            return v[first:first + local]
        return tf.data.Dataset.from_tensor_slices(({k: cut(v) for k, v in x.items()},
                                                   cut(y)))

    return ds.flat_map(parts)
