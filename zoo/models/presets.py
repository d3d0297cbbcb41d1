"""Prebuilt model presets, as data: ``{name: {"class", "description", "config", "train"}}``.

``class`` names the task's model class (``zoo.models.REGISTRY``); ``config`` holds the encoder
and decoder configs without the vocabulary size (it comes from the tokenizer); ``train`` holds
the training defaults of ``zoo train``; a copying preset may set ``copy_whole_words``
(``Seq2Seq``'s argument). ``Model.from_preset(name, tokenizer, **overrides)``
builds one; ``register(name, preset)`` adds a preset (a new task adds its own).
"""

import copy
import difflib

_RNN_ENC = {"class_name": "RNNEncoder",
            "config": {"embedding_dim": 256, "units": 256, "num_layers": 1, "cell": "gru",
                       "bidirectional": True, "dropout": 0.3}}


def _transformer(dim, num_layers, num_heads, ff_dim, dropout, **decoder):
    """Encoder and decoder configs of one Transformer shape (``decoder``: its own options)."""
    shape = {"dim": dim, "num_layers": num_layers, "num_heads": num_heads, "ff_dim": ff_dim,
             "dropout": dropout}
    return {"encoder": {"class_name": "TransformerEncoder", "config": dict(shape)},
            "decoder": {"class_name": "TransformerDecoder", "config": {**shape, **decoder}}}


PRESETS = {
    "rnn_bahdanau": {
        "class": "Translator",
        "description": "bi-GRU encoder, GRU decoder with Bahdanau (additive) attention "
                       "(Bahdanau et al. 2015); 256/512 units",
        "config": {"encoder": _RNN_ENC,
                   "decoder": {"class_name": "RNNDecoder",
                               "config": {"embedding_dim": 256, "units": 512,
                                          "attention": {"class_name": "additive",
                                                        "config": {"units": 512}},
                                          "attention_position": "before", "cell": "gru",
                                          "dropout": 0.3}}},
        "train": {"learning_rate": 1e-3, "warmup_steps": None, "label_smoothing": 0.1,
                  "batch_size": 128, "epochs": 10},
    },
    "rnn_luong": {
        "class": "Translator",
        "description": "bi-GRU encoder, GRU decoder with Luong general attention and input "
                       "feeding (Luong et al. 2015); 256/512 units",
        "config": {"encoder": _RNN_ENC,
                   "decoder": {"class_name": "RNNDecoder",
                               "config": {"embedding_dim": 256, "units": 512,
                                          "attention": "general",
                                          "attention_position": "after",
                                          "input_feeding": True, "cell": "gru",
                                          "dropout": 0.3}}},
        "train": {"learning_rate": 1e-3, "warmup_steps": None, "label_smoothing": 0.1,
                  "batch_size": 128, "epochs": 10},
    },
    "transformer_small": {
        "class": "Translator",
        "description": "Transformer, 3+3 layers, d=256, 8 heads, ffn 1024, pre-norm, tied "
                       "output embedding",
        "config": _transformer(256, 3, 8, 1024, 0.1, tie_embeddings=True),
        "train": {"learning_rate": 1e-3, "warmup_steps": 500, "label_smoothing": 0.1,
                  "batch_tokens": 2048, "epochs": 12},
    },
    "transformer_base": {
        "class": "Translator",
        "description": "Transformer base (Vaswani et al. 2017): 6+6 layers, d=512, 8 heads, "
                       "ffn 2048",
        "config": _transformer(512, 6, 8, 2048, 0.1, tie_embeddings=True),
        "train": {"learning_rate": 7e-4, "warmup_steps": 4000, "label_smoothing": 0.1,
                  "batch_tokens": 8192, "epochs": 20},
    },
    "rnn_small": {
        "class": "Translator",
        "description": "bi-GRU + Bahdanau translator sized for a few CPU minutes "
                       "(128/256 units); the default of `zoo train translator`",
        "config": {"encoder": {"class_name": "RNNEncoder",
                               "config": {"embedding_dim": 128, "units": 128, "dropout": 0.2}},
                   "decoder": {"class_name": "RNNDecoder",
                               "config": {"embedding_dim": 128, "units": 256,
                                          "attention": "additive",
                                          "attention_position": "before", "dropout": 0.2}}},
        "train": {"learning_rate": 2e-3, "warmup_steps": None, "label_smoothing": 0.1,
                  "batch_size": 64, "epochs": 6},
    },
    "rnn_tiny": {
        "class": "Translator",
        "description": "Small bi-GRU + Bahdanau translator for laptops and tests (64/128 units)",
        "config": {"encoder": {"class_name": "RNNEncoder",
                               "config": {"embedding_dim": 64, "units": 64, "dropout": 0.1}},
                   "decoder": {"class_name": "RNNDecoder",
                               "config": {"embedding_dim": 64, "units": 128,
                                          "attention": "additive",
                                          "attention_position": "before", "dropout": 0.1}}},
        "train": {"learning_rate": 3e-3, "warmup_steps": None, "label_smoothing": 0.0,
                  "batch_size": 64, "epochs": 10},
    },
    "transformer_tiny": {
        "class": "Translator",
        "description": "Small Transformer for laptops and tests: 2+2 layers, d=64, 4 heads",
        "config": _transformer(64, 2, 4, 128, 0.1),
        "train": {"learning_rate": 2e-3, "warmup_steps": 200, "label_smoothing": 0.0,
                  "batch_size": 64, "epochs": 10},
    },
}


def _pointer_generator(embedding_dim, units, attention_units, output_dim, dropout):
    return {"encoder": {"class_name": "RNNEncoder",
                        "config": {"embedding_dim": embedding_dim, "units": units,
                                   "cell": "lstm", "bidirectional": True,
                                   "dropout": dropout}},
            "decoder": {"class_name": "RNNDecoder",
                        "config": {"embedding_dim": embedding_dim, "units": units,
                                   "attention": {"class_name": "coverage",
                                                 "config": {"units": attention_units,
                                                            "coverage_loss_weight": 0.0}},
                                   "attention_position": "before", "cell": "lstm",
                                   "output_dim": output_dim, "copy": True,
                                   "dropout": dropout}}}


# Summarization. ``train`` adds the turn separator, the source/target limits and the
# coverage phase (See et al. 2017: the coverage loss for a short final phase).
PRESETS.update({
    "pointer_generator": {
        "class": "Summarizer",
        "copy_whole_words": True,
        "description": "pointer-generator with coverage (See et al. 2017): bi-LSTM encoder, "
                       "LSTM decoder with coverage attention and a copy distribution; "
                       "128/256 units",
        "config": _pointer_generator(128, 256, 256, 256, 0.1),
        "train": {"learning_rate": 1e-3, "warmup_steps": None, "label_smoothing": 0.0,
                  "batch_size": 16, "epochs": 12, "coverage_epochs": 2,
                  "coverage_loss_weight": 1.0, "vocab_size": 8000,
                  "max_source_length": 400, "max_target_length": 100},
    },
    "pointer_generator_small": {
        "class": "Summarizer",
        "copy_whole_words": True,
        "description": "pointer-generator with coverage sized for a few CPU minutes "
                       "(96/128 units); the default of `zoo train summarizer`",
        "config": _pointer_generator(96, 128, 128, 128, 0.1),
        "train": {"learning_rate": 2e-3, "warmup_steps": None, "label_smoothing": 0.0,
                  "batch_size": 16, "epochs": 4, "coverage_epochs": 1,
                  "coverage_loss_weight": 1.0, "vocab_size": 4000,
                  "max_source_length": 400, "max_target_length": 80},
    },
    "pointer_generator_tiny": {
        "class": "Summarizer",
        "copy_whole_words": True,
        "description": "tiny pointer-generator with coverage for tests and examples "
                       "(32/48 units)",
        "config": _pointer_generator(32, 48, 48, None, 0.0),
        "train": {"learning_rate": 3e-3, "warmup_steps": None, "label_smoothing": 0.0,
                  "batch_size": 16, "epochs": 4, "coverage_epochs": 1,
                  "coverage_loss_weight": 1.0, "vocab_size": 1000,
                  "max_source_length": 400, "max_target_length": 60},
    },
    "transformer_summarizer": {
        "class": "Summarizer",
        "copy_whole_words": True,
        "description": "Transformer summarizer, 3+3 layers, d=256, 4 heads, ffn 1024, with a "
                       "copy distribution over the last cross-attention",
        "config": _transformer(256, 3, 4, 1024, 0.1, tie_embeddings=True, copy=True),
        "train": {"learning_rate": 1e-3, "warmup_steps": 1000, "label_smoothing": 0.1,
                  "batch_size": 16, "epochs": 15, "vocab_size": 8000,
                  "max_source_length": 400, "max_target_length": 100},
    },
})


# Trained checkpoints: presets with ``weights`` (a folder of zoo/checkpoints, or a ``url`` with
# its ``sha256``), the scores their model cards report, and fine-tuning defaults. Their
# architecture and tokenizer come with the weights. bench/checkpoints.py trains each.
def _anki_checkpoint(source, target, name):
    return {"class": "Translator",
            "description": f"trained {source} -> {target} translator (Anki/Tatoeba, CC-BY 2.0 "
                           f"FR): Transformer 3+3, d=256; recipe {name}",
            "weights": {"path": name},
            "train": {"learning_rate": 3e-4, "warmup_steps": 100, "label_smoothing": 0.1,
                      "batch_size": 64, "epochs": 3, "schedule": "linear"}}


CHECKPOINTS = {
    "anki_es_en": _anki_checkpoint("Spanish", "English", "anki_es_en"),
    "anki_en_es": _anki_checkpoint("English", "Spanish", "anki_en_es"),
    "dialogsum_summarizer": {
        "class": "Summarizer",
        "description": "trained dialogue summarizer (DialogSum 2021 release, MIT): "
                       "pointer-generator with coverage; recipe dialogsum_summarizer",
        "weights": {"path": "dialogsum_summarizer"},
        "train": {"learning_rate": 5e-4, "warmup_steps": 100, "label_smoothing": 0.0,
                  "batch_size": 16, "epochs": 2, "schedule": "linear",
                  "max_source_length": 400, "max_target_length": 80},
    },
}


def _shipped(name: str) -> bool:
    """Whether a checkpoint's files are in this package (a URL one is always offered)."""
    import os

    weights = CHECKPOINTS[name]["weights"]
    if "url" in weights:
        return True
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "checkpoints", weights["path"], "zoo.json")
    return os.path.isfile(here)


PRESETS.update({name: spec for name, spec in CHECKPOINTS.items() if _shipped(name)})

def _task_of_class(class_name: str):
    """The task name of a model class (``zoo.tasks``), or None."""
    from zoo import tasks

    task = tasks.by_class(class_name)
    return task.name if task else None


def trained_scores(name: str) -> str:
    """The held-out scores a checkpoint preset's card reports (``""`` for an untrained
    preset, or one whose files are fetched from a URL on first use)."""
    import json
    import os

    weights = PRESETS[name].get("weights") or {}
    if "path" not in weights:
        return ""
    meta = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "checkpoints", weights["path"], "zoo.json")
    with open(meta, encoding="utf-8") as f:
        s = json.load(f)["extra"]["card"]["scores"]
    if "bleu" in s:
        return f"held-out BLEU {s['bleu']:.1f}"
    return f"dev ROUGE-1/2/Lsum {s['rouge1']:.1f}/{s['rouge2']:.1f}/{s['rougeLsum']:.1f}"


def checkpoint_names(task: str = None):
    """The presets that carry trained weights, of one task or of all."""
    return names(task, trained=True)


def register(name: str, preset: dict, task: str = None) -> None:
    """Adds a preset (data: ``class``, ``description``, ``config``, ``train``).

    Args:
        name: The preset name; must be new.
        preset: The preset dict.
        task: Its task name, for ``names(task)`` (default: from the class).
    """
    if name in PRESETS:
        raise ValueError(f"preset {name!r} is already registered")
    missing = {"class", "description", "config"} - set(preset)
    if missing:
        raise ValueError(f"preset {name!r} lacks {sorted(missing)}")
    PRESETS[name] = copy.deepcopy(preset)
    if task and _task_of_class(preset["class"]) is None:
        from zoo import tasks

        tasks.register(tasks.Task(task, preset["class"]))


def names(task: str = None, trained: bool = None):
    """The preset names, of one task (``"translation"``...) or of all.

    Args:
        task: Only this task's.
        trained: True: only the trained checkpoints; False: only the architectures (what
            ``from_preset(name, tokenizer=...)`` builds untrained); None: both.
    """
    return sorted(n for n, p in PRESETS.items()
                  if (task is None or _task_of_class(p["class"]) == task)
                  and (trained is None or bool(p.get("weights")) == trained))


def task_of(name: str) -> str:
    """The task of a preset (``"translation"``...)."""
    return _task_of_class(get_preset(name)["class"]) or "unknown"


def get_preset(name: str) -> dict:
    """A deep copy of a preset, or a ValueError naming the known ones."""
    if name not in PRESETS:
        close = difflib.get_close_matches(str(name), PRESETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown preset {name!r}; known presets: {', '.join(names())}.{hint}")
    return copy.deepcopy(PRESETS[name])


# Recipes: how to train a preset to quality on a kind of data, as data. A recipe names a
# preset, overrides its network options (size, regularisation) and its ``train`` defaults,
# and adds what a long run needs: an update budget (``max_steps``), early stopping on the
# validation loss (``patience`` epochs) and checkpoint averaging (``average_last`` epoch
# ends, kept only where it beats the best single epoch on validation). ``zoo train --recipe``
# and ``bench/quality.py --recipe`` take one by name; an explicit flag still wins.
RECIPES = {
    "multi30k_transformer": {
        "task": "translation",
        "description": "Multi30k-sized Transformer after Wu et al. 2021 (\"Good for "
                       "misconceived reasons\"): 4+4 layers, d=128, ffn 256, 4 heads, "
                       "dropout 0.3, one embedding for source, target and output, peak "
                       "learning rate 5e-3 decaying linearly to zero at the update budget, "
                       "early stopping, last 5 epochs averaged",
        "preset": "transformer_small",
        "overrides": {"dim": 128, "num_layers": 4, "num_heads": 4, "ff_dim": 256,
                      "dropout": 0.3, "activation_dropout": 0.0, "share_embeddings": True},
        # Wu et al.'s 8,000 updates of ~4,096 tokens, with a 6,000-piece vocabulary (the
        # output projection dominated the step at 8,000); the runs: docs/RESULTS.md.
        "vocab_size": 6000,
        # A fixed budget: the rate anneals to zero at its end (inverse square-root decay left
        # it at half its peak when the budget cut the first run).
        "train": {"learning_rate": 5e-3, "warmup_steps": 1000, "label_smoothing": 0.1,
                  "batch_tokens": 4096, "max_steps": 8000, "schedule": "linear",
                  "epochs": 400, "patience": 8, "average_last": 5},
    },
    "anki_translator": {
        "task": "translation",
        "description": "the main job (`zoo train translator`): rnn_small's bi-GRU 128 + GRU 256 "
                       "with Luong general attention after the GRU and no input feeding (the "
                       "parallel teacher-forced path), one 128-wide embedding for source, "
                       "target and output, 3 epochs of 128-pair batches over the 117k Anki "
                       "pairs at a peak rate of 6e-3 decaying linearly to zero, 4,000-piece "
                       "vocabulary; about 4.5 minutes on 2 CPU cores with AVX-512",
        "preset": "rnn_small",
        "overrides": {"attention": "general", "attention_position": "after",
                      "input_feeding": False, "share_embeddings": True,
                      "tie_embeddings": True, "output_dim": 128},
        "vocab_size": 4000,
        # Chosen on the held-out pairs (the runs: docs/RESULTS.md): 128-pair batches run an
        # epoch faster than 64-pair ones, and the linear decay takes a higher rate; 6e-3
        # keeps a factor of two from the rate that did not train.
        "train": {"learning_rate": 6e-3, "warmup_steps": None, "label_smoothing": 0.1,
                  "batch_size": 128, "epochs": 3, "schedule": "linear"},
    },
    "multi30k_rnn": {
        "task": "translation",
        "description": "Multi30k RNN: bi-GRU 256 encoder, GRU 512 decoder with Luong general "
                       "attention after it and no input feeding (the parallel teacher-forced "
                       "path: one GRU pass, then one attention), one 256-wide embedding for "
                       "source, target and output, dropout 0.4, peak learning rate 3e-3 "
                       "decaying linearly to zero at the update budget, last 5 epochs averaged",
        "preset": "rnn_luong",
        "overrides": {"input_feeding": False, "dropout": 0.4, "share_embeddings": True,
                      "tie_embeddings": True, "output_dim": 256},
        # The Transformer recipe's lessons (Wu et al. 2021; Sennrich & Zhang 2019 for RNNs on
        # small data): a smaller joint vocabulary, one tied embedding, more dropout, and an
        # update budget the rate anneals to, sized to about an hour on 2 CPU cores.
        "vocab_size": 6000,
        "train": {"learning_rate": 3e-3, "warmup_steps": 300, "label_smoothing": 0.1,
                  "batch_tokens": 4096, "max_steps": 4000, "schedule": "linear",
                  "epochs": 400, "patience": 8, "average_last": 5},
    },
    # The shipped checkpoints (bench/checkpoints.py trains and packs each with one command).
    "anki_es_en": {
        "task": "translation",
        "description": "the anki_es_en checkpoint: Transformer 3+3 layers, d=256, 4 heads, "
                       "ffn 512, one 8,000-piece embedding for source, target and output, "
                       "peak rate 2e-3 decaying linearly to zero, last 4 epochs averaged",
        "preset": "transformer_small",
        "overrides": {"num_heads": 4, "ff_dim": 512, "dropout": 0.1,
                      "share_embeddings": True},
        "vocab_size": 8000,
        "train": {"learning_rate": 2e-3, "warmup_steps": 800, "label_smoothing": 0.1,
                  "batch_tokens": 4096, "max_steps": 3000, "schedule": "linear",
                  "epochs": 400, "average_last": 4},
    },
    "dialogsum_summarizer": {
        "task": "summarization",
        "description": "the dialogsum_summarizer checkpoint: pointer_generator_small (bi-LSTM "
                       "96/128, coverage attention, copy) on all 12,460 DialogSum training "
                       "dialogues, speaker tags as single pieces, peak rate 2e-3 decaying "
                       "linearly to zero, coverage loss in the last epoch",
        "preset": "pointer_generator_small",
        "overrides": {},
        "vocab_size": 4000,
        "train": {"learning_rate": 2e-3, "warmup_steps": 200, "label_smoothing": 0.0,
                  "batch_size": 16, "epochs": 12, "schedule": "linear"},
    },
}
RECIPES["anki_en_es"] = {**copy.deepcopy(RECIPES["anki_es_en"]),
                         "description": "the anki_en_es checkpoint: anki_es_en's recipe, "
                                        "English to Spanish"}
# dialogsum_summarizer's recipe for SAMSum + DialogSum together (bench/samsum.py trains it).
RECIPES["samsum_dialogues"] = copy.deepcopy(RECIPES["dialogsum_summarizer"])
RECIPES["samsum_dialogues"].update(
    description="SAMSum with more dialogue data (issue 36): dialogsum_summarizer's recipe on "
                "SAMSum's 14,731 and DialogSum's 12,460 training dialogues together, 12 epochs")
RECIPES["samsum_dialogues"]["train"]["epochs"] = 12
# An ablation of issue 36 (worse than samsum_dialogues): the same on the 128/256 model.
RECIPES["samsum_dialogues_large"] = copy.deepcopy(RECIPES["samsum_dialogues"])
RECIPES["samsum_dialogues_large"].update(
    preset="pointer_generator",
    description="samsum_dialogues's data and schedule on the 128/256 pointer_generator (three "
                "times the small one's parameters), 8 epochs, peak rate 1e-3; an ablation: "
                "below samsum_dialogues on SAMSum validation (docs/RESULTS.md)")
RECIPES["samsum_dialogues_large"]["train"].update(epochs=8, learning_rate=1e-3)  # the preset's
# An ablation of issue 36: samsum_dialogues with more regularisation (its validation loss
# stopped falling after epoch 8 while the training loss kept falling).
RECIPES["samsum_dialogues_reg"] = copy.deepcopy(RECIPES["samsum_dialogues"])
RECIPES["samsum_dialogues_reg"].update(
    overrides={"dropout": 0.2},
    description="samsum_dialogues with dropout 0.2 (from 0.1) and label smoothing 0.1 (from 0); "
                "an ablation (docs/RESULTS.md)")
RECIPES["samsum_dialogues_reg"]["train"]["label_smoothing"] = 0.1


def register_recipe(name: str, recipe: dict) -> None:
    """Adds a recipe (data: ``task``, ``description``, ``preset``, ``overrides``,
    ``train``; optional ``vocab_size``).

    Args:
        name: The recipe name; must be new.
        recipe: The recipe dict; its preset must exist and be of its task.
    """
    if name in RECIPES:
        raise ValueError(f"recipe {name!r} is already registered")
    missing = {"task", "description", "preset", "train"} - set(recipe)
    if missing:
        raise ValueError(f"recipe {name!r} lacks {sorted(missing)}")
    if task_of(recipe["preset"]) != recipe["task"]:
        raise ValueError(f"recipe {name!r}: preset {recipe['preset']!r} is a "
                         f"{task_of(recipe['preset'])} preset, not {recipe['task']}")
    RECIPES[name] = copy.deepcopy(recipe)


def recipe_names(task: str = None):
    """The recipe names, of one task or of all."""
    return sorted(n for n, r in RECIPES.items() if task is None or r["task"] == task)


def get_recipe(name: str) -> dict:
    """A deep copy of a recipe, or a ValueError naming the known ones."""
    if name not in RECIPES:
        close = difflib.get_close_matches(str(name), RECIPES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown recipe {name!r}; known recipes: "
                         f"{', '.join(recipe_names())}.{hint}")
    return copy.deepcopy(RECIPES[name])
