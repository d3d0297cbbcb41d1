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
