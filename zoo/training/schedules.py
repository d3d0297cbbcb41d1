"""Learning-rate schedules: inverse square root and linear decay, each after a warm-up."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class InverseSqrtSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak``, then decay with ``1 / sqrt(step)`` (Vaswani et al. 2017).

    Args:
        peak: Learning rate reached at the end of warm-up.
        warmup_steps: Steps of linear warm-up (>= 1).

    Example:
        >>> s = InverseSqrtSchedule(peak=1e-3, warmup_steps=100)
        >>> [round(float(s(x)), 6) for x in (0, 99, 399)]
        [1e-05, 0.001, 0.0005]
    """

    def __init__(self, peak=1e-3, warmup_steps=4000):
        if warmup_steps < 1 or peak <= 0:
            raise ValueError(f"need peak > 0 and warmup_steps >= 1, got {peak}, {warmup_steps}")
        self.peak, self.warmup_steps = float(peak), int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        warm = float(self.warmup_steps)
        return self.peak * ops.minimum(step / warm, ops.sqrt(warm / step))

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps}


@keras.saving.register_keras_serializable(package="zoo")
class LinearDecaySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak``, then linear decay to zero at ``total_steps``.

    For a run with a fixed update budget (``max_steps``) that brings the model near
    convergence: annealing to zero at the budget's end beats a schedule still at a high rate
    when the budget cuts it (Li et al. 2020, "Budgeted training"; +1.3 BLEU with the
    Multi30k Transformer recipe). A model far from convergence can lose by it (the 2-epoch
    main job did: docs/RESULTS.md). After ``total_steps`` the rate stays at zero.

    Args:
        peak: Learning rate reached at the end of warm-up.
        warmup_steps: Steps of linear warm-up (0: start at ``peak``).
        total_steps: The update at which the rate reaches zero (> ``warmup_steps``).

    Example:
        >>> s = LinearDecaySchedule(peak=1e-3, warmup_steps=100, total_steps=1100)
        >>> [round(float(s(x)), 6) for x in (0, 99, 600, 1100, 2000)]
        [1e-05, 0.001, 0.0005, 0.0, 0.0]
    """

    def __init__(self, peak=1e-3, warmup_steps=0, total_steps=10000):
        if peak <= 0 or warmup_steps < 0 or total_steps <= warmup_steps:
            raise ValueError(f"need peak > 0, warmup_steps >= 0 and total_steps > "
                             f"warmup_steps, got {peak}, {warmup_steps}, {total_steps}")
        self.peak, self.warmup_steps = float(peak), int(warmup_steps)
        self.total_steps = int(total_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")  # updates made so far
        warm = (step + 1.0) / float(max(self.warmup_steps, 1))
        decay = (float(self.total_steps) - step) / float(self.total_steps - self.warmup_steps)
        return self.peak * ops.clip(ops.minimum(warm, decay), 0.0, 1.0)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps}
