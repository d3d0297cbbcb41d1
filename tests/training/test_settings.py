"""The one merge of training settings (zoo.recipes.settings.resolve): each layer over the one
below, the layer of each value recorded, contradictions refused before any work. Expected
values are read by hand from zoo/models/presets.py and zoo/tasks.py."""

import pytest

from zoo.inputs import InputError
from zoo.models import Summarizer, Translator
from zoo.recipes import FINE_TUNE, resolve


def test_a_task_alone_takes_its_default_preset_over_zoo_defaults():
    s = resolve(Translator, {})
    assert (s.preset, s.sources["preset"]) == ("rnn_tiny", "task")
    # rnn_tiny's train: 3e-3, batch 64, 10 epochs; zoo: 8,000 pieces, 64-token sides.
    assert (s.learning_rate, s.sources["learning_rate"]) == (3e-3, "preset")
    assert (s.vocab_size, s.sources["vocab_size"]) == (8000, "zoo")
    assert (s.max_source_length, s.max_target_length) == (64, 64)
    assert (s.schedule, s.average_last, s.coverage_epochs) == ("inverse_sqrt", 1, 0)
    assert s.keep_best is True


def test_recipe_over_preset_and_caller_over_recipe():
    s = resolve(Translator, {"recipe": "anki_translator"})
    assert (s.preset, s.sources["preset"]) == ("rnn_small", "recipe")
    assert (s.learning_rate, s.epochs, s.batch_size) == (6e-3, 3, 128)  # recipe, not rnn_small's
    assert (s.vocab_size, s.sources["vocab_size"]) == (4000, "recipe")
    assert s.schedule == "linear" and s.overrides["attention"] == "general"
    s = resolve(Translator, {"recipe": "anki_translator", "epochs": 5, "learning_rate": 1e-3,
                             "overrides": {"attention": "dot"}})
    assert (s.epochs, s.sources["epochs"], s.learning_rate) == (5, "given", 1e-3)
    # Overrides merge per key: the caller's attention, the recipe's position.
    assert s.overrides["attention"] == "dot" and s.overrides["attention_position"] == "after"
    assert s.batch_size == 128 and s.sources["batch_size"] == "recipe"


def test_one_way_of_batching_replaces_the_other():
    s = resolve(Translator, {"preset": "transformer_small"})
    assert (s.batch_size, s.batch_tokens) == (64, 2048)  # zoo's sentences, the preset's tokens
    s = resolve(Translator, {"preset": "transformer_small", "batch_size": 32})
    assert (s.batch_size, s.batch_tokens) == (32, None)
    s = resolve(Translator, {"preset": "rnn_tiny", "batch_tokens": 1000})
    assert (s.batch_size, s.batch_tokens) == (None, 1000)


def test_summarizer_defaults_and_the_coverage_phase():
    s = resolve(Summarizer, {})
    assert (s.preset, s.sources["preset"]) == ("pointer_generator_small", "task")
    # pointer_generator_small: 400/80 tokens, 4,000 pieces, one coverage epoch of 4.
    assert (s.max_source_length, s.max_target_length, s.vocab_size) == (400, 80, 4000)
    assert (s.coverage_epochs, s.epochs) == (1, 4)
    assert s.keep_best is False  # a coverage phase raises the validation NLL by design
    s = resolve(Summarizer, {"overrides": {"attention": "additive"}})
    assert (s.coverage_epochs, s.keep_best) == (0, True)  # no coverage attention, no phase
    s = resolve(Summarizer, {"preset": "transformer_summarizer"})
    assert (s.max_source_length, s.sources["max_source_length"]) == (400, "preset")


def test_fine_tuning_takes_the_checkpoints_defaults_over_zoos():
    s = resolve(Translator, {"init_from": "anki_es_en"})
    assert (s.learning_rate, s.sources["learning_rate"]) == (3e-4, "fine_tune")
    assert (s.epochs, s.warmup_steps, s.schedule) == (3, 100, "linear")
    s = resolve(Translator, {"init_from": "a/model/dir", "epochs": 1})
    assert s.learning_rate == FINE_TUNE["learning_rate"] and s.epochs == 1


@pytest.mark.parametrize("model_class, given, message", [
    (Translator, {"preset": "pointer_generator_small"}, "is a summarization preset"),
    (Translator, {"recipe": "dialogsum_summarizer"}, "is a summarization recipe"),
    (Translator, {"init_from": "anki_es_en", "preset": "rnn_tiny"}, "give no preset"),
    (Translator, {"freeze": ["encoder"]}, "give init_from"),
    (Translator, {"init_from": "anki_es_en", "freeze": ["decoder"]}, "unknown part 'decoder'"),
    (Translator, {"schedule": "cosine"}, "schedule must be one of"),
    (Translator, {"learning_rate": float("nan")}, "learning_rate"),
    (Translator, {"schedule": "linear", "max_steps": 100, "warmup_steps": 100},
     "larger than warmup_steps"),
    (Summarizer, {"coverage_epochs": 9, "epochs": 2}, "coverage_epochs must be in"),
])
def test_contradictions_are_refused_before_any_work(model_class, given, message):
    with pytest.raises(ValueError, match=message):
        resolve(model_class, given)


def test_numbers_out_of_their_declared_range_name_the_setting():
    with pytest.raises(InputError, match="epochs"):
        resolve(Translator, {"epochs": 0})


def test_the_report_records_where_each_setting_came_from():
    from zoo.data import anki_spa_eng_pairs
    from zoo.recipes import train

    _, _, info = train(Translator, anki_spa_eng_pairs(64), epochs=1, vocab_size=200,
                       batch_size=32, verbose=0)
    assert info["settings_from"]["epochs"] == "given"
    assert info["settings_from"]["learning_rate"] == "preset"
    assert info["settings_from"]["preset"] == "task" and info["preset"] == "rnn_tiny"
