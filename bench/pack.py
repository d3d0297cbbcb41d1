"""Scores a finished checkpoint run and packs it into ``zoo/checkpoints/NAME`` with its card.

Called by ``bench/checkpoints.py``. The held-out set is decoded with the float32 weights and
with the float16-stored ones restored to float32; float16 is kept only when every token is
identical (else the checkpoint is stored as float32, and the card says so).
"""

import json
import os
import platform
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "zoo", "checkpoints")


def cpu():
    sys.path.insert(0, HERE)
    from quality import cpu_name

    return f"{cpu_name()}, {os.cpu_count()} cores"


def decode(model, sources, decoding):
    """``(texts, token rows, seconds)``."""
    t0 = time.time()
    texts, details = model.generate_text(sources, return_result=True, batch_size=64,
                                         **decoding)
    return texts, [tuple(int(t) for t in d["tokens"]) for d in details], time.time() - t0


def score(task, hyps, pairs, train_refs=None):
    from zoo import metrics

    refs = [t for _, t in pairs]
    if task == "translation":
        r = metrics.evaluate(hyps, refs)
        return {"bleu": round(r["bleu"], 2), "chrf": round(r["chrf"], 2)}
    r = metrics.rouge(hyps, refs)
    out = {k: round(v, 2) for k, v in r.items()}
    read = metrics.readability(hyps, [s for s, _ in pairs], metrics.word_list(train_refs))
    out.update(invented_words=round(read["invented"], 2),
               malformed_tags=round(read["malformed_tags"], 2))
    return out


def pack(name, run_dir, test_pairs, task, train_refs=None, out=OUT):
    import zoo.models
    from zoo.models import hub, presets

    model = zoo.models.load(run_dir)
    info = (model._meta or {}).get("training", {})
    if model.decoder.copy:  # a decoding-only setting: the preset's now, without retraining
        model.copy_whole_words = presets.get_preset(model.preset).get("copy_whole_words",
                                                                      False)
    sources = [s for s, _ in test_pairs]
    decoding = dict(model.task_spec.decoding)  # what zoo translate / summarize use
    hyps, tokens32, secs = decode(model, sources, decoding)
    scores = score(task, hyps, test_pairs, train_refs)
    print(f"{name}: float32 {scores} ({secs:.0f} s)")
    tmp = tempfile.mkdtemp()
    half = os.path.join(tmp, "half")
    hub.save_checkpoint(model, half, storage="float16")
    rounded = zoo.models.load(half)
    hyps16, tokens16, _ = decode(rounded, sources, decoding)
    same = sum(a == b for a, b in zip(tokens32, tokens16))
    main = "bleu" if task == "translation" else "rouge1"
    storage, note = "float32", ""
    if same == len(tokens32):
        storage = "float16"
    else:
        # Not identical: ship the float16 rounding (then stored losslessly) only where it
        # scores as well; the card says how many outputs differ from the float32 model.
        scores16 = score(task, hyps16, test_pairs, train_refs)
        if scores16[main] >= scores[main] - 0.1:
            storage, model, note = "float16", rounded, (
                f"; the shipped weights are the float16 rounding of the trained float32 ones, "
                f"{same} of {len(tokens32)} outputs identical to those, whose {main} was "
                f"{scores[main]}")
            scores, hyps = scores16, hyps16
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"{name}: float16 storage gives identical tokens for {same} of {len(tokens32)}: "
          f"stored as {storage}{note}")
    spec = ({"corpus": "anki_spa_eng", "reverse": name.endswith("_en_es"), "count": 100}
            if task == "translation" else {"corpus": "dialogsum", "count": 20})
    slice_score = hub.score_slice(model, spec)
    extra = {"scores": {**scores, "pairs": len(test_pairs), "decoding": decoding},
             "slice": {**spec, "score": slice_score},
             "float16_identical": f"{same}/{len(tokens32)}", "storage_note": note,
             "copy_whole_words": model.copy_whole_words,
             "hardware": cpu(),
             "train_seconds": info.get("train_seconds"),
             "examples": [[s, h] for s, h in zip(sources[:6], hyps[:6])]}
    final = os.path.join(out, name)
    staged = final + ".new"
    shutil.rmtree(staged, ignore_errors=True)
    card = card_text(name, task, info, extra, storage)
    meta = hub.save_checkpoint(model, staged, storage=storage, card=card,
                               extra={"extra": {"training": info, "card": extra}})
    meta = keep_unchanged_weights(final, staged, meta)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(staged, final)
    size = sum(os.path.getsize(os.path.join(final, f)) for f in os.listdir(final))
    print(f"{name}: packed into {final} ({size / 1e6:.1f} MB; {json.dumps(meta['checkpoint'])})")
    return extra


def keep_unchanged_weights(final, staged, meta):
    """Keeps the packed weight file when a re-pack holds the same arrays: ``np.savez``
    stamps the time into the file, and git would store a new copy of unchanged weights."""
    import numpy as np

    from zoo.models import hub

    old, new = (os.path.join(d, hub.WEIGHTS_FILE) for d in (final, staged))
    if not os.path.isfile(old):
        return meta
    with np.load(old) as a, np.load(new) as b:
        same = sorted(a.files) == sorted(b.files) and all(
            a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a.files)
    if same:
        shutil.copyfile(old, new)
        meta["checkpoint"]["sha256"][hub.WEIGHTS_FILE] = hub.sha256(new)
        with open(os.path.join(staged, "zoo.json"), "w") as f:
            json.dump(meta, f, indent=2)
    print(f"weights {'unchanged: the packed file is kept' if same else 'changed'}")
    return meta


def card_text(name, task, info, extra, storage):
    """The model card (Markdown), from the recipe, the run and the scores."""
    from zoo.models import presets

    recipe = presets.get_recipe(name)
    s = extra["scores"]
    if task == "translation":
        data = ("Anki/Tatoeba Spanish-English pairs as published by manythings.org/anki "
                "(spa-eng, 2018-05-13), CC-BY 2.0 (France): sentences from tatoeba.org, "
                "pairs compiled by manythings.org/anki; shipped in zoo/data/corpora/anki_spa_eng "
                "with its attribution. The file is shuffled with seed 0 (as `zoo train "
                "translator` does): the first 2,000 pairs are the held-out test set (never "
                "trained on, never used for a choice), the next 2,000 validate, the other "
                "114,964 train.")
        measured = (f"sacreBLEU {s['bleu']} (chrF {s['chrf']}) on the {s['pairs']:,} held-out "
                    f"pairs, greedy decoding, detokenized, default 13a tokenization")
        limits = ("Short, everyday sentences (Tatoeba): expect errors on long, technical or "
                  "domain-specific text, names and rare words. A held-out source may also "
                  "occur in training with another translation (Tatoeba lists several), which "
                  "flatters the score a little.")
    else:
        data = ("DialogSum (Chen et al. 2021, Findings of ACL), the 2021 release under the MIT "
                "licence (github cylnlp/dialogsum at commit 9a79c6b): all 12,460 training "
                "dialogues; the 500 dev dialogues for choices and scores.")
        measured = (f"ROUGE-1/2/L/Lsum {s['rouge1']} / {s['rouge2']} / {s['rougeL']} / "
                    f"{s['rougeLsum']} (rouge-score, stemmed) on the {s['pairs']} dev "
                    f"dialogues, the task's default decoding ({_decoding(s['decoding'])}"
                    f"{', whole-word copying' if extra['copy_whole_words'] else ''}, "
                    f"chosen on these dev dialogues: docs/RESULTS.md); invented words {s['invented_words']} %, malformed speaker tags "
                    f"{s['malformed_tags']} % (zoo.metrics.readability)")
        limits = ("Everyday two-party dialogues in English with #Person1#-style speaker "
                  "tags; not trained without pretraining to the quality of large pretrained "
                  "summarizers: summaries can miss or confuse facts. Check before use.")
    examples = "\n".join(f"- {_short(src)!r} -> {hyp!r}" for src, hyp in extra["examples"][:4])
    return f"""# {name}

{recipe['description']}.

- **Task**: {task}. **Intended use**: a starting point to try zoo and to fine-tune on your own
  text (`zoo train {'translator' if task == 'translation' else 'summarizer'} --from {name}`).
- **Data and licence**: {data}
- **Recipe**: `zoo.models.presets.RECIPES[{name!r}]`; reproduce with
  `python bench/checkpoints.py {name}` (seeded; a CPU of another kind follows another
  trajectory).
- **Training**: {info.get('epochs_trained')} epochs, {info.get('steps')} updates in
  {info.get('train_seconds')} s on {extra['hardware']}; {info.get('parameters'):,} parameters,
  {info.get('vocab_size')}-piece SentencePiece vocabulary.
- **Scores**: {measured}.
- **Storage**: {storage} weights restored to float32 ({extra['float16_identical']} held-out
  outputs token-identical to the float32 model{extra['storage_note']}); SHA-256 of every file
  in `zoo.json`.
- **Limits**: {limits}

Examples (held-out):
{examples}

Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}; see docs/RESULTS.md.
"""


def _short(text, width=160):
    text = text.replace("\n", " | ")
    return text if len(text) <= width else text[:width - 3] + "..."


def _decoding(d):
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in d.items())
