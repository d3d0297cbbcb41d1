"""Checkpoint averaging, the update budget and recipes: hand-computed weights, a real
``fit``, a checkpoint round trip, and every registered recipe built."""

import numpy as np
import keras
import pytest

from zoo.models import Translator, presets
from zoo.training import CheckpointAverage, Checkpointer, StopAfterSteps


def _scalar_model():
    # y = w * x: one weight, so every average can be computed by hand.
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def _epochs(cb, model, history):
    """Runs the callback over epochs whose end weights and val_loss are given."""
    cb.set_model(model)
    cb.on_train_begin()
    for epoch, (w, val) in enumerate(history):
        model.set_weights([np.array([[w]], "float32")])
        cb.on_epoch_end(epoch, {"val_loss": val})
    cb.on_train_end()
    return float(model.get_weights()[0][0, 0])


HISTORY = [(1.0, 3.0), (2.0, 2.0), (4.0, 1.0), (8.0, 5.0)]  # best val_loss at epoch 3 (w=4)


def test_average_of_the_window_that_ends_at_the_best_epoch():
    model = _scalar_model()
    avg = CheckpointAverage(last=2)
    assert _epochs(avg, model, HISTORY) == pytest.approx((2.0 + 4.0) / 2)  # not w=8
    assert avg.report == {"epochs": [2, 3], "single": None, "averaged": None,
                          "kept": "average"}
    # Without a monitor: the last epochs of the run.
    assert _epochs(CheckpointAverage(last=3, monitor=None), model, HISTORY) == \
        pytest.approx((2.0 + 4.0 + 8.0) / 3)
    assert _epochs(CheckpointAverage(last=1), model, HISTORY) == 4.0


@pytest.mark.parametrize("slope, kept, weight", [(4.0, "best epoch", 4.0), (3.0, "average", 3.0)])
def test_validation_decides_between_the_average_and_the_best_epoch(slope, kept, weight):
    x = np.linspace(-1, 1, 8, dtype="float32")[:, None]
    avg = CheckpointAverage(last=2, validation_data=(x, slope * x))
    assert _epochs(avg, _scalar_model(), HISTORY) == pytest.approx(weight)
    assert avg.report["kept"] == kept
    # mse of w against the slope, by hand: (w - slope)^2 * mean(x^2).
    mx2 = float(np.mean(x ** 2))
    assert avg.report["single"] == pytest.approx((4.0 - slope) ** 2 * mx2, abs=1e-6)
    assert avg.report["averaged"] == pytest.approx((3.0 - slope) ** 2 * mx2, abs=1e-6)


def test_missing_monitor_names_what_fit_logged():
    avg = CheckpointAverage(last=2)
    avg.set_model(_scalar_model())
    with pytest.raises(ValueError, match="val_loss.*logged: loss"):
        avg.on_epoch_end(0, {"loss": 1.0})


def test_averaging_state_survives_a_checkpoint(tmp_path):
    model = _scalar_model()
    model.optimizer.build(model.trainable_variables)
    first = CheckpointAverage(last=3)
    first.set_model(model)
    for epoch, (w, val) in enumerate(HISTORY[:3]):
        model.set_weights([np.array([[w]], "float32")])
        first.on_epoch_end(epoch, {"val_loss": val})
    state = first.get_state()  # both windows hold epochs 1-3: each stored once
    assert sorted(k for k in state if k.startswith("epoch/")) == [
        "epoch/0/0", "epoch/1/0", "epoch/2/0"]
    ckpt = Checkpointer(str(tmp_path), track=[first], handle_signals=False)
    ckpt.set_model(model)
    ckpt.save()
    resumed = CheckpointAverage(last=3)
    Checkpointer(str(tmp_path), track=[resumed], handle_signals=False).restore(model)
    # The resumed run sees one more epoch, worse than the best: the window stays 1-3.
    resumed.set_model(model)
    resumed.on_train_begin()
    model.set_weights([np.array([[8.0]], "float32")])
    resumed.on_epoch_end(3, {"val_loss": 5.0})
    resumed.on_train_end()
    assert resumed.report["epochs"] == [1, 2, 3]
    assert float(model.get_weights()[0][0, 0]) == pytest.approx(7.0 / 3)


def test_stop_after_steps_ends_fit_at_the_update_budget():
    model = _scalar_model()
    x = np.ones((40, 1), "float32")
    history = model.fit(x, 2 * x, batch_size=4, epochs=5, verbose=0,
                        callbacks=[StopAfterSteps(13)])
    assert int(model.optimizer.iterations) == 13
    assert len(history.history["loss"]) == 2  # 10 updates per epoch: stopped in the second


@pytest.mark.parametrize("name", presets.recipe_names())
def test_every_recipe_builds_its_model(name):
    recipe = presets.get_recipe(name)
    assert recipe["task"] == presets.task_of(recipe["preset"])
    from zoo.models import REGISTRY

    task_class = REGISTRY.get_class(presets.get_preset(recipe["preset"])["class"])
    model = task_class.from_preset(recipe["preset"], vocab_size=40,
                                   **recipe.get("overrides", {}))
    model.build()
    for key, value in recipe.get("overrides", {}).items():
        if key == "attention":  # serialized as a config: compare the variant
            import zoo.attention

            assert model.decoder.attention.registry_name == \
                zoo.attention.get(value).registry_name
            continue
        configs = [model.encoder.get_config(), model.decoder.get_config(), model.get_config()]
        assert any(c.get(key) == value for c in configs), key
    unknown = set(recipe["train"]) - {
        "learning_rate", "warmup_steps", "label_smoothing", "batch_size", "batch_tokens",
        "epochs", "max_steps", "patience", "average_last", "schedule"}
    assert not unknown
    from zoo.recipes import SCHEDULES

    assert recipe["train"].get("schedule", "inverse_sqrt") in SCHEDULES
    if recipe["train"].get("schedule") == "linear":
        # Decays to zero at the update budget, else at the end of the last epoch (an
        # in-memory corpus knows its number of batches): one of the two must be set.
        assert recipe["train"].get("max_steps") or recipe["train"].get("epochs")


def test_unknown_recipe_suggests_the_closest():
    with pytest.raises(ValueError, match="Did you mean 'multi30k_transformer'"):
        presets.get_recipe("multi30k_transformr")
    with pytest.raises(ValueError, match="is a summarization preset"):
        presets.register_recipe("bad", {"task": "translation", "description": "-",
                                        "preset": "pointer_generator_tiny", "train": {}})


def test_linear_schedule_reaches_zero_at_the_end_of_the_last_epoch():
    from zoo.data import anki_spa_eng_pairs
    from zoo.recipes import train_translator
    from zoo.training import LinearDecaySchedule

    # By hand: warm-up 2 updates to 1e-2, then down to zero at update 10.
    s = LinearDecaySchedule(peak=1e-2, warmup_steps=2, total_steps=10)
    assert [round(float(s(i)), 6) for i in (0, 1, 2, 6, 9, 10, 50)] == \
        [0.005, 0.01, 0.01, 0.005, 0.00125, 0.0, 0.0]
    pairs = anki_spa_eng_pairs(limit=160)
    model, _, info = train_translator(
        pairs, preset="rnn_tiny", vocab_size=120, epochs=2, batch_size=40, warmup_steps=2,
        schedule="linear", verbose=0, tensorboard=False,
        overrides={"units": 8, "embedding_dim": 8})
    # Every update of the 2 epochs (length buckets make more batches than 160 / 40).
    assert info["decay_steps"] == info["steps"] and info["steps"] % 2 == 0
    assert info["steps"] >= 8
    lr = model.optimizer.learning_rate
    assert float(lr) == 0.0  # the rate the next update would take
    with pytest.raises(ValueError, match="max_steps .3. must be larger than warmup_steps"):
        train_translator(pairs, preset="rnn_tiny", max_steps=3, warmup_steps=5,
                         schedule="linear", verbose=0)
