"""The `zoo` command line: train, translate, summarize, evaluate, export, list attention
variants and presets."""

from __future__ import annotations

import argparse
import os
import sys

# Before TensorFlow is imported (the commands import it lazily): keep its C++ logging out of
# the command's output unless the user asked for it (--verbose or ZOO_VERBOSE=1).
_VERBOSE = os.environ.get("ZOO_VERBOSE", "") not in ("", "0")
if not _VERBOSE:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EXAMPLES = ["¿Dónde está la estación de tren?", "Tengo hambre.", "Me gusta leer libros.",
            "Hace frío hoy.", "¿Puedes ayudarme, por favor?", "Mi hermano vive en Madrid."]


def _tf_config_index() -> int:
    """This worker's index in the TF_CONFIG cluster (0, the chief, when it cannot be read:
    the strategy then reports the problem)."""
    import json

    try:
        return int(json.loads(os.environ.get("TF_CONFIG", "{}"))["task"]["index"])
    except (ValueError, KeyError, TypeError):
        return 0


def _quiet_tf(devices=1, start=True):
    """Imports TensorFlow with its start-up lines (absl's pre-init notice, oneDNN, CUDA
    probing: written to file descriptor 2 before any log level applies) captured; they are
    shown only with --verbose, or if the import fails. ``devices`` > 1 first splits a
    GPU-less CPU into that many logical devices (only possible before TensorFlow starts)."""
    if devices > 1:
        from zoo.training.distribute import prepare_devices

        prepare_devices(devices)
    if "tensorflow" in sys.modules or _VERBOSE:
        import tensorflow  # noqa: F401

        return
    import logging
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
            import tensorflow_text  # noqa: F401

            if start:  # (a multi-worker strategy must start the runtime itself)
                tf.config.list_logical_devices()  # device start-up, where CUDA is probed
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    tf.get_logger().setLevel(logging.ERROR)  # tf.function retracing notices


def _show_warnings():
    """zoo's own warnings (truncated inputs) as one line each on stderr."""
    import warnings

    from zoo.inputs import InputTruncatedWarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, InputTruncatedWarning) or _VERBOSE:
            print(f"zoo: warning: {message}", file=sys.stderr)

    warnings.showwarning = show


def _reader_kwargs(args) -> dict:
    kw = {}
    if getattr(args, "source_column", None) is not None:
        kw["source_column"] = args.source_column
    if getattr(args, "target_column", None) is not None:
        kw["target_column"] = args.target_column
    for field in ("source_field", "target_field"):
        if getattr(args, field, None) is not None:
            kw[field] = getattr(args, field)
    return kw


def _read_corpus(args):
    from zoo.data import read_pairs

    paths = args.data
    kw = _reader_kwargs(args)
    pairs = read_pairs(paths if len(paths) == 2 else paths[0], fmt=args.format,
                       skip_invalid=args.skip_invalid, limit=args.limit, **kw)
    if pairs.skipped:
        print(f"skipped {len(pairs.skipped)} invalid pairs (first: "
              f"{pairs.skipped[0][0]}:{pairs.skipped[0][1]}: {pairs.skipped[0][2]})",
              file=sys.stderr)
    if not pairs:
        raise ValueError(f"{' '.join(paths)}: no text pairs")
    return pairs


#: Where each `zoo train` command's embedded data comes from (the rest is zoo.tasks').
ORIGINS = {"translator": "the embedded Anki/Tatoeba spa-eng file (CC-BY 2.0 FR)",
           "summarizer": "embedded DialogSum subset (MIT, 2021 release)"}


def _task(name):
    """The :class:`zoo.tasks.Task` of a task name or a `zoo train` command."""
    from zoo import tasks

    return tasks.TASKS[name] if name in tasks.TASKS else tasks.by_command(name)


def _embedded(kind, limit):
    """The embedded corpus of a task: ``(train pairs, held-out pairs or None, examples)``."""
    from zoo.data import anki_spa_eng_pairs, dialogsum_pairs

    if kind == "translator":
        return anki_spa_eng_pairs(limit=limit), None, EXAMPLES
    dev = dialogsum_pairs("dev")
    return dialogsum_pairs("train", limit=limit), dev, [dev[0][0]]


def _score(metric, hyps, refs):
    """``(label, text)`` of a corpus score."""
    from zoo import metrics

    if metric == "rouge":
        r = metrics.rouge(hyps, refs)
        return "ROUGE-1/2/L/Lsum", (f"{r['rouge1']:.1f} / {r['rouge2']:.1f} / "
                                    f"{r['rougeL']:.1f} / {r['rougeLsum']:.1f}")
    r = metrics.evaluate(hyps, refs)
    return "BLEU, chrF", f"{r['bleu']:.1f}, {r['chrf']:.1f}"


def _cmd_train(args) -> int:
    from zoo import recipes

    spec = _task(args.task)
    # In a cluster, worker 0 writes --out; the others train and write nothing.
    chief = not args.multi_worker or _tf_config_index() == 0
    _check_train_flags(args, chief)
    kwargs = _train_settings(args)
    recipes.resolve(_model_class(spec), kwargs)  # every setting checked before reading data
    train, dev, examples = _training_data(args, spec)
    extra = {"max_length": args.max_length} if args.task == "translator" else {
        "max_source_length": args.max_source_length,
        "max_target_length": args.max_target_length, "coverage_epochs": args.coverage_epochs}
    trainer = recipes.train_translator if args.task == "translator" else \
        recipes.train_summarizer
    model, history, info = trainer(train, dev_pairs=dev or None, **_run_options(args),
                                   **kwargs, **extra)
    _print_training(args, info, history, len(train), dev)
    if not chief:
        print(f"worker {_tf_config_index()} done; worker 0 writes {args.out}")
        return 0
    _show_trained(args, spec, model, dev, examples)
    return 0


def _model_class(spec):
    import zoo.models

    return getattr(zoo.models, spec.model_class)


def _check_train_flags(args, chief) -> None:
    """What the flags alone show, before any work: the run to resume or the destination,
    the attention name, what fine-tuning fixes."""
    from zoo.files import RUN_MARKER, check_destination, failed_start

    if args.resume:
        if not os.path.isfile(os.path.join(args.out, RUN_MARKER)):
            raise FileNotFoundError(f"--resume: {args.out} holds no training run to resume "
                                    f"(no {os.path.join(args.out, RUN_MARKER)})")
        if failed_start(args.out):
            raise ValueError(f"--resume: the run in {args.out} stopped before its first "
                             f"checkpoint; there is nothing to resume: run the command "
                             f"again without --resume")
    elif chief:
        check_destination(args.out, args.overwrite, "--out")
    if args.attention:
        import zoo.attention

        zoo.attention.REGISTRY.get_class(args.attention)  # unknown name: fail before training
    if args.init_from is not None:  # fine-tuning: the trained model fixes all of these
        given = [f for f, v in (("--preset", args.preset), ("--recipe", args.recipe),
                                ("--vocab-size", args.vocab_size),
                                ("--attention", args.attention)) if v is not None]
        if given:
            raise ValueError(f"--from {args.init_from} fine-tunes a trained model with its own "
                             f"architecture and tokenizer: {given[0]} does not apply")
    elif args.freeze:
        raise ValueError("--freeze applies to fine-tuning: give --from")


def _train_settings(args) -> dict:
    """The settings the flags give (None: not given), for ``zoo.recipes.resolve``. The main
    job's defaults: with no --preset, --recipe or --from, the command's default recipe; with
    no recipe, its vocabulary size."""
    recipe = args.recipe
    if recipe is None and args.preset is None and args.init_from is None:
        recipe = args.default_recipe
    preset = args.preset
    if preset is None and recipe is None and args.init_from is None:
        preset = args.default_preset
    vocab = args.vocab_size
    if vocab is None and recipe is None and args.init_from is None:
        vocab = args.default_vocab_size
    args.recipe, args.preset = recipe, preset  # (what the report lines name)
    return dict(preset=preset, recipe=recipe, init_from=args.init_from,
                freeze=args.freeze or None, vocab_size=vocab, epochs=args.epochs,
                batch_size=args.batch_size, learning_rate=args.learning_rate,
                mixed_precision=args.mixed_precision, seed=args.seed,
                overrides={"attention": args.attention} if args.attention else None,
                max_steps=args.max_steps, patience=args.patience,
                average_last=args.average_last, schedule=args.schedule)


def _run_options(args) -> dict:
    return dict(out_dir=args.out, jit_compile=args.xla, verbose=_progress(args.progress),
                overwrite=args.overwrite, resume=args.resume,
                checkpoint_every=args.checkpoint_every or None,
                keep_checkpoints=args.keep_checkpoints, devices=args.devices,
                multi_worker=args.multi_worker)


def _training_data(args, spec):
    """``(train, dev, examples)``: from --data (or the embedded corpus), held-out pairs from
    --dev-data or a --dev-fraction of the data."""
    if args.stream:
        return _streamed_data(args, spec)
    import random

    dev = examples = None
    if args.data:
        _summary_fields(args, spec.name)
        pairs, origin = _read_corpus(args), " ".join(args.data)
    else:
        pairs, dev, examples = _embedded(args.task, args.limit)
        origin = ORIGINS[args.task]
    pairs = list(pairs)
    if args.dev_data:
        from zoo.data import read_pairs

        dev = read_pairs(args.dev_data, skip_invalid=args.skip_invalid,
                         **_reader_kwargs(args))
    if dev is None:
        random.Random(args.seed).shuffle(pairs)
        n_dev = min(max(1, int(len(pairs) * args.dev_fraction)), 2000) \
            if len(pairs) > 20 and args.dev_fraction else 0
        dev, train = pairs[:n_dev], pairs[n_dev:]
    else:
        train, dev = pairs, list(dev)
    examples = args.example or examples or [
        s for s, _ in (dev or train)[:1 if args.task == "summarizer" else 3]]
    print(f"zoo train {args.task}: {len(train):,} training and {len(dev):,} held-out "
          f"pairs from {origin}; {_trained(args)}")
    return train, dev, examples


def _streamed_data(args, spec):
    """Nothing is loaded: the files are read on every epoch; held-out pairs come from
    --dev-data (a shuffle-and-split would need the corpus in memory)."""
    from zoo.data import Corpus, read_pairs

    if not args.data:
        raise ValueError("--stream reads the --data files as a stream; give --data")
    if args.limit:
        raise ValueError("--limit loads pairs into memory; with --stream the whole "
                         "--data files are read")
    _summary_fields(args, spec.name)
    kw = _reader_kwargs(args)
    train = Corpus(args.data if len(args.data) == 2 else args.data[0], fmt=args.format,
                   skip_invalid=args.skip_invalid, **kw)
    dev = list(read_pairs(args.dev_data, skip_invalid=args.skip_invalid, limit=2000,
                          **kw)) if args.dev_data else []
    examples = args.example or [s for s, _ in dev[:1 if args.task == "summarizer" else 3]]
    if not examples:
        examples = [next(iter(train))[0]]
    print(f"zoo train {args.task}: streaming training pairs from {' '.join(args.data)}, "
          f"{len(dev):,} held-out pairs; {_trained(args)}")
    return train, dev, examples


def _print_training(args, info, history, n_train, dev) -> None:
    """What the run did: truncation, unknown pieces, loss, the kept weights."""
    if args.task == "translator":
        if info["truncated_pairs"]:
            print(f"{info['truncated_pairs']:,} of {n_train:,} training pairs were longer "
                  f"than --max-length {info['max_source_length']} ids and were truncated")
    else:
        coverage = info["coverage_epochs"]
        print(f"{info['truncated_sources']:,} of {n_train:,} training dialogues were longer "
              f"than {info['max_source_length']} tokens and were truncated (the SAMSum "
              f"baselines' limit: 400)" + (f"; coverage loss in the last {coverage} epoch(s)"
                                           if coverage else ""))
    if args.init_from:
        print(f"{info['unknown_pieces']:,} of {info['pieces']:,} pieces of the training text "
              f"are unknown to {args.init_from}'s vocabulary (kept: the checkpoint's "
              f"tokenizer){'; frozen: ' + ', '.join(info['freeze']) if info['freeze'] else ''}")
    loss = history.history["loss"]
    print(f"trained {info['parameters']:,} parameters for {info['epochs_trained']} epochs in "
          f"{info['train_seconds']:.0f} s: loss {loss[0]:.2f} -> {loss[-1]:.2f}")
    averaged = info.get("averaged")
    if averaged and len(averaged["epochs"]) > 1:
        span = f"{averaged['epochs'][0]}-{averaged['epochs'][-1]}"
        if averaged["averaged"] is None:
            print(f"kept the average of epochs {span}")
        else:
            print(f"held-out loss of epoch {averaged['epochs'][-1]} {averaged['single']:.3f}, "
                  f"of the average of epochs {span} {averaged['averaged']:.3f}: kept the "
                  f"{'average' if averaged['kept'] == 'average' else 'single epoch'}")
    elif dev and info["kept_epoch"] != info["epochs_trained"]:
        val = history.history["val_loss"]
        print(f"kept the weights of epoch {info['kept_epoch']} (validation loss "
              f"{val[info['kept_epoch'] - 1]:.2f}; the last epoch's was {val[-1]:.2f})")


def _show_trained(args, spec, model, dev, examples) -> None:
    """The held-out score, the examples' outputs and the first one's attention heat map."""
    from zoo import plot

    decoding = _strategy_kwargs(args, spec.name)
    label = ", ".join(f"{k} {v}" for k, v in decoding.items())
    if dev:
        sample = dev[:500]
        hyps = model.generate_text([s for s, _ in sample], **decoding)
        name, value = _score(spec.metric, hyps, [t for _, t in sample])
        print(f"held-out ({len(sample)} pairs, {label}): {name} {value}")
    outs, details = model.generate_text(examples, return_result=True, **decoding)
    for src, out in zip(examples, outs):
        shown = src.replace("\n", " | ")
        print(f"  {shown}\n  ->  {out}" if args.task == "summarizer" else
              f"  {shown}  ->  {out}")
    first = details[0]
    p_gen = model.copy_gate(first["source_ids"], first["tokens"])
    heat = plot.attention(first["attention"],
                          model.source_tokenizer.id_to_piece(first["source_ids"]),
                          model.target_tokenizer.id_to_piece(first["tokens"]),
                          os.path.join(args.out, "attention.png"),
                          title=f"{args.preset or args.init_from}: {examples[0][:60]}",
                          p_gen=p_gen)
    print(f"model saved to {args.out}/ (load with zoo.models.load); attention heat map "
          f"{heat}{' with p_gen' if p_gen is not None else ''}; TensorBoard logs "
          f"{os.path.join(args.out, 'logs')}")


def _trained(args):
    """What the run trains: ``recipe R (preset P)`` or ``preset P``."""
    if args.init_from:
        return f"fine-tuning {args.init_from}"
    return (f"recipe {args.recipe} (preset {args.preset})" if args.recipe else
            f"preset {args.preset}")


def _progress(choice):
    """Keras verbosity: a bar on a terminal, one line per epoch in a file or pipe."""
    if choice == "auto":
        choice = "bar" if sys.stdout.isatty() else "epoch"
    return {"bar": 1, "epoch": 2, "none": 0}[choice]


def _strategy_kwargs(args, task="translation"):
    """The decoding options the user gave (None = not given) over the task's defaults
    (``zoo.tasks``): an option of another strategy is then an error that names it."""
    given = {k: getattr(args, k, None) for k in ("length_penalty", "coverage_penalty",
                                                 "temperature", "top_k", "top_p",
                                                 "no_repeat_ngram_size", "min_length")}
    beam_size = getattr(args, "beam_size", None)
    strategy = None
    if getattr(args, "sample", False):
        strategy, given["seed"] = "sampling", args.seed
    elif beam_size is not None:
        strategy = "beam" if beam_size > 1 else "greedy"
        if beam_size > 1:
            given.update(beam_size=beam_size, length_penalty=given["length_penalty"] or 0.6)
    return _task(task).decoding_options(strategy=strategy,
                                        max_length=getattr(args, "max_length", None), **given)


def _read_lines(path):
    from zoo.data.readers import DataError, _lines

    out = []
    for lineno, text, err in _lines(path):
        if err:
            raise DataError(path, lineno, err)
        out.append(text)
    return out


def _load_model(path, task=None):
    """Any saved zoo model; with ``task``, one of that task (else an error naming the command
    for the model it holds)."""
    from zoo.models import load

    model = load(path)
    if task and model.task != task:
        from zoo import tasks

        verb = getattr(tasks.TASKS.get(model.task), "verb", None)
        hint = f"; use zoo {verb}" if verb else ""
        raise ValueError(f"{path} holds a {model.task} model ({type(model).__name__}), not a "
                         f"{task} one{hint}")
    return model


def _summary_fields(args, task):
    """JSON lines of a summarization corpus default to the ``dialogue`` and ``summary``
    fields (the SAMSum and DialogSum layout)."""
    if task == "summarization" and args.source_field is None:
        args.source_field, args.target_field = "dialogue", args.target_field or "summary"


def _saved_task(path):
    """The task a saved model's ``zoo.json`` names (None where there is none to read)."""
    import json

    try:
        with open(os.path.join(path, "zoo.json"), encoding="utf-8") as f:
            return json.load(f).get("task")
    except (OSError, ValueError, AttributeError):
        return None


def _read_dialogues(args):
    """`zoo summarize`'s inputs: ``(texts, origin, unit)``. Arguments are one text each;
    --input is JSON lines with a --field; stdin is JSON lines when it starts with ``{``, else
    one text (a dialogue, turns on their own lines)."""
    from zoo.data import read_jsonl_texts

    if args.text:
        return list(args.text), "arguments", "argument"
    if args.input:
        return read_jsonl_texts(args.input, field=args.field), args.input, "line"
    _require_stdin()
    if sys.stdin.isatty():
        print("reading one dialogue from stdin (or JSON lines with a "
              f"{args.field!r} field); Ctrl-D to end", file=sys.stderr)
    data = sys.stdin.read()
    if data.lstrip().startswith("{"):
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False,
                                         encoding="utf-8") as f:
            f.write(data)
        try:
            texts = read_jsonl_texts(f.name, field=args.field)
        except ValueError as err:
            raise ValueError(str(err).replace(f.name, "stdin")) from None
        finally:
            os.unlink(f.name)
        return texts, "stdin", "line"
    return ([data.strip("\n")] if data.strip() else []), "stdin", "text"


def _require_stdin():
    """stdin, or a message when it is closed (``0<&-``) and there is nothing to read."""
    if sys.stdin is None or sys.stdin.closed:
        raise ValueError("stdin is closed: give the texts as arguments or with --input FILE")


def _cmd_generate(args, task) -> int:
    """`zoo translate` and `zoo summarize`: texts in, one output line per text."""
    if task == "summarization":
        texts, origin, unit = _read_dialogues(args)
    elif args.text:
        texts, origin, unit = list(args.text), "arguments", "argument"
    elif args.input:
        texts, origin, unit = _read_lines(args.input), args.input, "line"
    else:
        _require_stdin()
        if sys.stdin.isatty():
            print("reading sentences from stdin, one per line (Ctrl-D to end)",
                  file=sys.stderr)
        texts = [line.rstrip("\r\n") for line in sys.stdin]
        origin, unit = "stdin", "line"
    # The input contract (zoo.inputs), said in lines: no input gives no output; an empty or
    # blank text is an error that names it.
    empty = [i + 1 for i, t in enumerate(texts) if not t.strip()]
    if empty:
        what = _task(task).unit
        raise ValueError(f"{origin}: {unit} {empty[0]} is empty or whitespace only "
                         f"({len(empty)} such); give one {what} per {unit}")
    if args.output and os.path.isdir(args.output):
        raise IsADirectoryError(21, "is a directory; --output takes a file", args.output)
    model = _load_model(args.model, task)
    outs = model.generate_text(texts, batch_size=args.batch_size, max_length=args.max_length,
                               **_strategy_kwargs(args, task))
    sink = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for line in outs:
            sink.write(line + "\n")
    finally:
        if args.output:
            sink.close()
    return 0


def _cmd_translate(args) -> int:
    return _cmd_generate(args, "translation")


def _cmd_summarize(args) -> int:
    return _cmd_generate(args, "summarization")


def _cmd_evaluate(args) -> int:
    from zoo import metrics

    metric = args.metric
    if args.hypotheses:
        hyps = _read_lines(args.hypotheses)
        refs = _read_lines(args.references)
        if len(hyps) != len(refs):
            raise ValueError(f"{args.hypotheses} has {len(hyps)} lines but {args.references} "
                             f"has {len(refs)}: they must be line-aligned")
    else:
        if not args.model or not args.data:
            raise ValueError("give --model DIR with --data (a corpus), or --hypotheses FILE "
                             "with --references FILE")
        task = _saved_task(args.model)
        _summary_fields(args, task)
        pairs = _read_corpus(args)  # the data's errors first: loading a model takes longer
        model = _load_model(args.model)
        spec = model.task_spec
        hyps = model.generate_text(pairs.sources, batch_size=args.batch_size,
                                   max_length=args.max_length,
                                   **_strategy_kwargs(args, model.task))
        refs = pairs.targets
        metric = metric or spec.metric
    if (metric or "bleu") == "rouge":
        r = metrics.rouge(hyps, refs)
        print(f"ROUGE-1 {r['rouge1']:.2f}  ROUGE-2 {r['rouge2']:.2f}  ROUGE-L {r['rougeL']:.2f}"
              f"  ROUGE-Lsum {r['rougeLsum']:.2f}  ({r['texts']} texts; F1, rouge-score, "
              f"Porter stemming)")
        return 0
    scores = metrics.evaluate(hyps, refs)
    print(f"BLEU {scores['bleu']:.2f}  chrF {scores['chrf']:.2f}  ({scores['sentences']} "
          f"sentences)")
    print(f"  {scores['bleu_signature']}\n  {scores['chrf_signature']}")
    return 0


def _cmd_export(args) -> int:
    from zoo.files import check_destination

    onnx_int8 = args.format == "onnx" and args.quantize in (["int8"], ["float32"])
    if args.quantize and args.format != "litert" and not onnx_int8:
        raise ValueError(f"--quantize applies to litert exports (any of float32, float16, "
                         f"int8) and onnx ones (one of float32, int8); a {args.format} export "
                         f"is float32" + (" (int8 is chosen when loading it: "
                                          "zoo.serving.load(dir, quantization='int8'))"
                                          if args.format == "ctranslate2" else ""))
    if os.path.realpath(args.out) == os.path.realpath(args.model):
        raise ValueError(f"--out {args.out} is the model directory; write the export elsewhere")
    check_destination(args.out, args.overwrite, "--out", kind="export")  # before any work
    texts = _read_lines(args.verify) if args.verify else None  # fail early on a bad file
    if texts is not None:
        empty = [i + 1 for i, t in enumerate(texts) if not t.strip()]
        if empty or not texts:
            raise ValueError(f"--verify {args.verify}: " + (
                f"line {empty[0]} is empty or whitespace only ({len(empty)} such); give one "
                f"sentence per line" if empty else "no sentences"))
    model = _load_model(args.model)
    from zoo.export import get_exporter

    kwargs = {"max_length": args.max_length, "overwrite": args.overwrite}
    if args.format == "litert":
        kwargs.update(batch_size=args.batch_size, max_source_length=args.max_source_length,
                      quantizations=args.quantize or ["float32", "float16", "int8"])
    else:
        kwargs.update(beam_size=args.beam_size)
    if onnx_int8:
        kwargs["quantization"] = args.quantize[0]
    # What the flags leave open is the task's default decoding, as `zoo summarize` uses.
    task_decoding = model.task_spec.decoding_options(
        max_length=args.max_length or model.max_target_length,
        min_length=args.min_length, no_repeat_ngram_size=args.no_repeat_ngram_size)
    for name in ("min_length", "no_repeat_ngram_size"):
        kwargs[name] = task_decoding.get(name, 0)
    if args.format != "litert" and "length_penalty" in task_decoding:
        kwargs["length_penalty"] = task_decoding["length_penalty"]
    manifest = get_exporter(args.format)(model, args.out, **kwargs)
    files = sorted(set(manifest["files"].values()) - {"."})
    print(f"wrote {args.format} to {args.out}: {', '.join(files) or 'saved_model.pb'} "
          f"(signatures: {', '.join(sorted(manifest['signatures']))}; run with "
          f"zoo.serving.load)")
    if texts:
        from zoo.export import verify
        from zoo.export.core import write_manifest

        report = verify(model, args.out, texts)
        manifest["parity"] = report
        write_manifest(args.out, manifest)
        for name, r in report.items():
            print(f"parity of {name} on {r['sentences']} sentences: identical outputs "
                  f"{r['token_agreement']:.1%}, max logit difference {r['max_logit_diff']:.2e}")
    return 0


def _cmd_import(args) -> int:
    from zoo.files import check_destination

    kind, _, handle = args.source.partition(":")
    if kind != "keras_hub" or not handle:
        raise ValueError(f"SOURCE must be keras_hub:PRESET_OR_DIR (a KerasHub preset name or "
                         f"a directory saved with save_to_preset); got {args.source!r}")
    check_destination(args.out, args.overwrite, "--out", kind="model")  # before any work
    try:
        import keras_hub
    except ImportError:
        raise ImportError("zoo import needs KerasHub: pip install 'zoo-seq2seq[import]'") \
            from None
    from zoo.models.importers import import_keras_hub

    hub = keras_hub.models.Seq2SeqLM.from_preset(handle)
    model = import_keras_hub(hub, task=args.task, max_source_length=args.max_source_length,
                             max_target_length=args.max_target_length)
    if model.source_tokenizer is None:
        raise ValueError(f"{handle}: the preset has no tokenizer; zoo saves models with "
                         f"their tokenizer")
    model.save(args.out, overwrite=args.overwrite)
    print(f"wrote {args.out}: a zoo {type(model).__name__} from {type(hub).__name__} "
          f"{handle} ({model.count_params():,} parameters); use it like any zoo model "
          f"(--model {args.out})")
    return 0


def _cmd_attention(args) -> int:
    import zoo.attention

    reg = zoo.attention.REGISTRY
    for name in reg.names():
        cls = reg.get_class(name)
        aliases = sorted(a for a, t in reg.aliases().items() if t == name)
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        state = " [stateful]" if cls.has_state else ""
        print(f"{name:<11} {doc}{state}" + (f"  (aliases: {', '.join(aliases)})"
                                            if aliases else ""))
    return 0


def _cmd_presets(args) -> int:
    from zoo.models import presets

    for task in sorted({presets.task_of(n) for n in presets.names()}):
        print(f"{task}:")
        for name in presets.names(task):
            trained = presets.trained_scores(name)
            mark = f"[trained: {trained}] " if trained else ""
            print(f"  {name:<24} {mark}{presets.PRESETS[name]['description']}")
    print("presets marked [trained] carry weights: zoo translate --model NAME ..., "
          "Translator.from_preset(NAME)")
    print("recipes (zoo train --recipe NAME):")
    for name in presets.recipe_names():
        r = presets.RECIPES[name]
        print(f"  {name:<24} [{r['task']}, preset {r['preset']}] {r['description']}")
    return 0


def _add_corpus_args(p, required):
    p.add_argument("--data", nargs="+", metavar="PATH", required=required,
                   help="a TSV/JSONL corpus, or two line-aligned files SOURCE TARGET "
                        "(plain or .gz)")
    p.add_argument("--format", choices=("tsv", "jsonl", "parallel"), default=None,
                   help="corpus format (default: from the file names)")
    p.add_argument("--source-column", type=int, default=None,
                   help="TSV column of the source (default 1, the Anki layout)")
    p.add_argument("--target-column", type=int, default=None,
                   help="TSV column of the target (default 0)")
    p.add_argument("--source-field", default=None,
                   help="JSON lines: field of the source (default 'source'; 'dialogue' for a "
                        "summarizer)")
    p.add_argument("--target-field", default=None,
                   help="JSON lines: field of the target (default 'target'; 'summary' for a "
                        "summarizer)")
    p.add_argument("--skip-invalid", action="store_true",
                   help="skip and count empty or non-UTF-8 pairs instead of stopping")
    p.add_argument("--limit", type=int, default=None, help="read at most this many pairs")


#: The decoding options the text commands take as flags; their types, ranges and help come
#: from zoo.inputs.OPTIONS (the one declaration).
CLI_DECODING = ("beam_size", "length_penalty", "coverage_penalty", "temperature", "top_k",
                "top_p", "no_repeat_ngram_size", "min_length", "max_length")


def _add_decoding_args(p):
    from zoo.inputs import OPTION  # (pure Python: the CLI still starts fast)

    for name in CLI_DECODING:
        o = OPTION[name]
        only = "" if len(o.strategies) == 3 else f"{o.strategies[0]} only; "
        p.add_argument(f"--{name.replace('_', '-')}", type=o.kind, default=None,
                       help=f"{o.help} ({only}{o.range_text}; default {o.default})")
    p.add_argument("--sample", action="store_true", help="sample instead of searching")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)


def _check_numbers(parser, args):
    """Every other number given is in its declared range (``zoo.inputs.NUMBERS``)."""
    from zoo.inputs import NUMBERS, InputError

    for option in NUMBERS:
        value = getattr(args, option.name, None)
        if value is not None:
            try:
                option.check(value)
            except InputError as err:
                parser.error(f"--{option.name.replace('_', '-')}: {err}")


def _check_decoding_flags(parser, args):
    """Every decoding flag given is in its declared range, before any work."""
    from zoo.inputs import OPTION, InputError

    if getattr(args, "sample", False) and getattr(args, "beam_size", None) is not None:
        parser.error("--beam-size does not apply with --sample (sampling draws one "
                     "continuation per input)")
    sampling = getattr(args, "sample", False)
    for name in CLI_DECODING + ("seed",):
        value = getattr(args, name, None)
        if value is not None and name in OPTION and (name != "seed" or sampling):
            try:
                OPTION[name].check(value)
            except InputError as err:
                parser.error(f"--{name.replace('_', '-')}: {err}")


def _add_train_args(p, task, preset, vocab_size, recipe=None):
    _add_corpus_args(p, required=False)
    default = f"the recipe {recipe}'s" if recipe else preset
    p.add_argument("--preset", default=None, help=f"see `zoo presets` (default {default})")
    p.add_argument("--recipe", default=None,
                   help=f"a training recipe: preset, size, regularisation, schedule, early "
                        f"stopping, checkpoint averaging (see `zoo presets`; default "
                        f"{recipe or 'none: the preset' + chr(39) + 's defaults'}); "
                        f"flags given win over it")
    p.add_argument("--max-steps", type=int, default=None,
                   help="stop after this many updates (default: the recipe's, else none)")
    p.add_argument("--patience", type=int, default=None,
                   help="stop after this many epochs without a lower held-out loss "
                        "(default: the recipe's, else never)")
    p.add_argument("--average-last", type=int, default=None, metavar="K",
                   help="end with the average of the last K epochs up to the best one, "
                        "when it has the lower held-out loss (default: the recipe's)")
    from zoo.recipes import SCHEDULES  # (stdlib imports only: the CLI starts fast)

    p.add_argument("--schedule", default=None, choices=SCHEDULES,
                   help="learning rate after the warm-up: inverse_sqrt, or linear decay to "
                        "zero at --max-steps, else at the end of the last epoch (default: the "
                        "recipe's, else inverse_sqrt)")
    p.set_defaults(default_preset=preset, default_recipe=recipe,
                   default_vocab_size=vocab_size)
    p.add_argument("--attention", default=None,
                   help="attention variant of an RNN preset (see `zoo attention`)")
    p.add_argument("--from", dest="init_from", default=None, metavar="MODEL",
                   help="fine-tune a trained model (a preset marked [trained] in `zoo "
                        "presets`, a model directory, an archive or a URL#sha256=...): its "
                        "tokenizer and architecture are kept, its fine-tuning defaults used")
    p.add_argument("--freeze", nargs="+", default=None, choices=("encoder", "embeddings"),
                   help="with --from: parts that do not train")
    p.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--vocab-size", type=int, default=None,
                   help=f"default: the recipe's, else "
                        f"{vocab_size or 'the preset' + chr(39) + 's'}")
    p.add_argument("--stream", action="store_true",
                   help="read the --data files as a stream on every epoch instead of loading "
                        "them (corpora larger than memory; the tokenizer learns from a "
                        "500,000-pair sample; held-out pairs from --dev-data)")
    p.add_argument("--dev-data", default=None, metavar="PATH",
                   help="held-out pairs (same format as --data); default: a --dev-fraction "
                        "of --data, or none with --stream")
    p.add_argument("--dev-fraction", type=float, default=0.025,
                   help="held out for validation and the score, when --data is given "
                        "(default 0.025, at most 2000)")
    p.add_argument("--mixed-precision", action="store_true", help="mixed_float16 (GPUs)")
    p.add_argument("--xla", action="store_true", help="XLA-compile the train step")
    p.add_argument("--out", default=f"zoo-{task}", help="output folder (must be new or "
                                                       "empty, or use --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the model in --out (written aside, renamed at the end)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its newest checkpoint (same "
                        "command, same data; --epochs may grow)")
    p.add_argument("--checkpoint-every", type=int, default=500, metavar="STEPS",
                   help="batches between checkpoints in --out/checkpoints, besides each "
                        "epoch's end and Ctrl-C/SIGTERM (default 500; 0: epoch ends only)")
    p.add_argument("--keep-checkpoints", type=int, default=3, metavar="K",
                   help="newest checkpoints kept (default 3)")
    p.add_argument("--devices", type=int, default=1,
                   help="data-parallel replicas on this host (tf.distribute.MirroredStrategy; "
                        "--batch-size is global). GPUs when there are enough, else the CPU "
                        "split into logical devices (that adds no speed)")
    p.add_argument("--multi-worker", action="store_true",
                   help="train on the cluster in the TF_CONFIG environment variable "
                        "(MultiWorkerMirroredStrategy): run the same command on every worker "
                        "with its own TF_CONFIG; worker 0 writes --out (see docs/training.md)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", default="auto", choices=("auto", "bar", "epoch", "none"),
                   help="training progress: a bar on a terminal, one line per epoch in a "
                        "file or pipe (auto, the default)")
    p.set_defaults(func=_cmd_train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo", description="Attention-based sequence-to-sequence models for Keras 3. "
                                "Set ZOO_VERBOSE=1 (or pass --verbose) to see TensorFlow's "
                                "logs and library warnings.")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up lines and library warnings")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_train_parsers, _add_text_parsers, _add_evaluate_parser,
                _add_export_parser, _add_other_parsers):
        add(sub)
    return parser


def _add_train_parsers(sub):
    tr = sub.add_parser("train", help="train a model (`zoo train translator`, `zoo train "
                                      "summarizer`)")
    tsub = tr.add_subparsers(dest="task", metavar="TASK")
    t = tsub.add_parser("translator", help="train a translator; with no --data, on the "
                                           "embedded Spanish-English pairs")
    _add_train_args(t, "translator", "rnn_small", vocab_size=4000, recipe="anki_translator")
    t.add_argument("--max-length", type=int, default=None,
                   help="tokens kept per side; longer pairs are cut and counted (default 64)")
    t.add_argument("--example", action="append", default=None,
                   help="sentence to translate after training (repeatable)")
    u = tsub.add_parser("summarizer", help="train a summarizer; with no --data, on the "
                                           "embedded DialogSum dialogues")
    _add_train_args(u, "summarizer", "pointer_generator_small", vocab_size=None)
    u.add_argument("--max-source-length", type=int, default=None,
                   help="source tokens kept per dialogue (default: the preset's, 400)")
    u.add_argument("--max-target-length", type=int, default=None,
                   help="summary tokens kept (default: the preset's)")
    u.add_argument("--coverage-epochs", type=int, default=None,
                   help="train the last N epochs with the coverage loss (See et al. 2017; "
                        "default: the preset's; 0: never)")
    u.add_argument("--example", action="append", default=None,
                   help="dialogue to summarize after training (repeatable)")


def _add_text_parsers(sub):
    s = sub.add_parser("translate", help="translate sentences (arguments, --input or stdin)")
    s.add_argument("text", nargs="*", help="sentences (default: --input or stdin)")
    s.add_argument("--model", required=True, help="a directory written by zoo train")
    s.add_argument("--input", default=None, help="file with one sentence per line")
    s.add_argument("--output", default=None, help="write here instead of stdout")
    _add_decoding_args(s)
    s.set_defaults(func=_cmd_translate)

    m = sub.add_parser("summarize", help="summarize texts: arguments (one dialogue each, turns "
                                         "on their own lines), --input JSON lines, or stdin")
    m.add_argument("text", nargs="*", help="dialogues (default: --input or stdin)")
    m.add_argument("--model", required=True, help="a directory written by zoo train summarizer")
    m.add_argument("--input", default=None,
                   help="JSON lines, one object per dialogue with a --field (plain or .gz)")
    m.add_argument("--field", default="dialogue", help="the JSON field (default dialogue)")
    m.add_argument("--output", default=None, help="write here instead of stdout (one summary "
                                                  "per line)")
    _add_decoding_args(m)
    m.set_defaults(func=_cmd_summarize)


def _add_evaluate_parser(sub):
    e = sub.add_parser("evaluate", help="BLEU and chrF (sacreBLEU) or ROUGE (rouge-score) of a "
                                        "model or of files")
    e.add_argument("--model", default=None)
    e.add_argument("--metric", choices=("bleu", "rouge"), default=None,
                   help="default: by the model's task (rouge for a summarizer), else bleu")
    _add_corpus_args(e, required=False)
    e.add_argument("--hypotheses", default=None, help="system output, one per line")
    e.add_argument("--references", default=None, help="references, one per line")
    _add_decoding_args(e)
    e.set_defaults(func=_cmd_evaluate)


def _add_export_parser(sub):
    x = sub.add_parser("export", help="export a trained model (SavedModel, ONNX, LiteRT, "
                                      "CTranslate2)")
    x.add_argument("--model", required=True, help="a directory written by zoo train")
    x.add_argument("--format", choices=("savedmodel", "onnx", "litert", "ctranslate2"),
                   default="savedmodel",
                   help="savedmodel (strings in/out, default), onnx, litert (edge), "
                        "ctranslate2 (Transformer translators; float32 and int8)")
    x.add_argument("--quantize", nargs="+", default=None,
                   choices=("float32", "float16", "int8"),
                   help="litert: the variants written (default all three); onnx: int8 for "
                        "onnxruntime's dynamic int8 quantization (default float32)")
    x.add_argument("--batch-size", type=int, default=1, help="litert: fixed batch")
    x.add_argument("--max-source-length", type=int, default=64,
                   help="litert: sources are padded to this many ids")
    x.add_argument("--out", required=True, help="output directory (must be new or empty, or "
                                                 "use --overwrite)")
    x.add_argument("--overwrite", action="store_true", help="replace the export in --out")
    x.add_argument("--max-length", type=int, default=None, help="maximum output tokens")
    x.add_argument("--beam-size", type=int, default=4,
                   help="beam size of the exported beam search: the default of onnx, "
                        "savedmodel and ctranslate2 (which take one per request)")
    x.add_argument("--no-repeat-ngram-size", type=int, default=None,
                   help="n-gram blocking of the exported loops (default: 3 for a "
                        "summarizer, 0 for a translator): fixed in litert; onnx and "
                        "savedmodel exports made with it take any size per request")
    x.add_argument("--min-length", type=int, default=None,
                   help="tokens before the end may be generated (fixed in litert, the "
                        "default of the others; default: the task's, 10 for a summarizer, "
                        "0 for a translator)")
    x.add_argument("--verify", default=None, metavar="FILE",
                   help="sentences (one per line) to check parity with Keras on; the figures "
                        "go into manifest.json")
    x.set_defaults(func=_cmd_export)


def _add_other_parsers(sub):
    v = sub.add_parser("serve", help="serve exported models over HTTP (zoo's :generate, "
                                     "TensorFlow Serving's REST API, /metrics, a demo page)")
    from zoo.serving import cli as serve_cli  # (light: no model code, no TensorFlow)

    serve_cli.add_arguments(v)
    v.set_defaults(func=serve_cli.run)

    i = sub.add_parser("import", help="import a pretrained KerasHub seq2seq model (T5, BART) as a "
                                      "zoo model directory")
    i.add_argument("source", metavar="SOURCE",
                   help="keras_hub:PRESET_OR_DIR, e.g. keras_hub:t5_small_multi or "
                        "keras_hub:bart_base_en (downloads "
                        "from KerasHub) or keras_hub:./my_preset (save_to_preset)")
    i.add_argument("--task", choices=("summarizer", "translator"), default="summarizer")
    i.add_argument("--out", required=True, help="the model directory written")
    i.add_argument("--overwrite", action="store_true",
                   help="replace a model directory zoo wrote in --out")
    i.add_argument("--max-source-length", type=int, default=512,
                   help="source ids kept per text, eos included")
    i.add_argument("--max-target-length", type=int, default=128,
                   help="the default longest output")
    i.set_defaults(func=_cmd_import)
    a = sub.add_parser("attention", help="list the attention variants")
    a.set_defaults(func=_cmd_attention)
    p = sub.add_parser("presets", help="list the model presets")
    p.set_defaults(func=_cmd_presets)


def _cli_field(field):
    """An option name as the CLI spells it (``length_penalty`` -> ``--length-penalty``)."""
    field = field.split("[")[0]
    if field.startswith("-") or field.isupper():  # already as the CLI spells it
        return field
    flags = {"texts": "input", "beam_size": "beam-size"}
    return "--" + flags.get(field, field.replace("_", "-"))


def main(argv=None) -> int:
    global _VERBOSE
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose and not _VERBOSE:
        _VERBOSE = True
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    if not getattr(args, "func", None):
        (parser if args.command != "train" else
         parser._subparsers._group_actions[0].choices["train"]).print_help()
        return 2
    _check_decoding_flags(parser, args)
    _check_numbers(parser, args)
    if getattr(args, "data", None) and len(args.data) > 2:
        parser.error(f"--data takes one corpus file or two line-aligned files, got "
                     f"{len(args.data)}")
    if getattr(args, "hypotheses", None) and not args.references:
        parser.error("--hypotheses needs --references")
    import warnings

    from zoo.inputs import InputError

    shown = warnings.showwarning
    _show_warnings()
    try:
        # Every other command imports TensorFlow; a server of ONNX or LiteRT exports never does.
        if not getattr(args, "hypotheses", None) and args.command != "serve":
            _quiet_tf(getattr(args, "devices", 1) or 1,
                      start=not getattr(args, "multi_worker", False))
        return args.func(args)
    except InputError as err:
        print(f"zoo {args.command}: error: {_cli_field(err.field)}: {err}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, TypeError, UnicodeDecodeError) as err:
        print(f"zoo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ImportError as err:  # an optional extra that is not installed
        if not str(err).startswith("zoo "):
            raise
        print(f"zoo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the file system's own errors: name the file, not a traceback
        where = f"{err.filename}: " if err.filename else ""
        print(f"zoo {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        if getattr(err, "checkpoint", None):  # zoo.training.TrainingInterrupted
            import signal

            print(f"zoo {args.command}: {err.signal_name}: stopped in epoch {err.epoch + 1} "
                  f"after batch {err.step}; checkpoint {err.checkpoint}. Continue with the "
                  f"same command and --resume", file=sys.stderr)
            return 128 + int(getattr(signal, err.signal_name))
        print(f"zoo {args.command}: interrupted (nothing was written)"
              if args.command in ("train", "export") else f"zoo {args.command}: interrupted",
              file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":
    sys.exit(main())
