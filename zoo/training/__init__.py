"""Training pieces by kind: the loss (:mod:`~zoo.training.losses`), the optimizer
(:mod:`~zoo.training.optimizers`), the token accuracy (:mod:`~zoo.training.metrics`), the
learning-rate schedules (:mod:`~zoo.training.schedules`), the callbacks a long run needs
(:mod:`~zoo.training.callbacks`), resumable checkpoints (:mod:`~zoo.training.checkpoints`),
data-parallel training (:mod:`~zoo.training.distribute`) and the train steps
(:mod:`~zoo.training.steps`). Importing this package registers the serializable ones."""

from zoo.training.callbacks import (CheckpointAverage, CoveragePhase, EarlyStopping,
                                    SetEpoch, StopAfterSteps)
from zoo.training.checkpoints import (Checkpointer, CheckpointError, TrainingInterrupted,
                                      latest_checkpoint, list_checkpoints, read_checkpoint)
from zoo.training.losses import SequenceLoss
from zoo.training.metrics import TokenAccuracy
from zoo.training.optimizers import Adam, updates_done
from zoo.training.schedules import InverseSqrtSchedule, LinearDecaySchedule

__all__ = ["Adam", "CheckpointAverage", "CheckpointError", "Checkpointer", "CoveragePhase",
           "EarlyStopping", "InverseSqrtSchedule", "LinearDecaySchedule", "SequenceLoss",
           "SetEpoch", "StopAfterSteps", "TokenAccuracy", "TrainingInterrupted",
           "latest_checkpoint", "list_checkpoints", "read_checkpoint", "updates_done"]
