"""The `zoo` command line: train, translate, evaluate, list attention variants and presets."""

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


def _quiet_tf():
    """Imports TensorFlow with its start-up lines (absl's pre-init notice, oneDNN, CUDA
    probing: written to file descriptor 2 before any log level applies) captured; they are
    shown only with --verbose, or if the import fails."""
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


def _read_corpus(args):
    from zoo.data import read_pairs

    paths = args.data
    kw = {}
    if getattr(args, "source_column", None) is not None:
        kw["source_column"] = args.source_column
    if getattr(args, "target_column", None) is not None:
        kw["target_column"] = args.target_column
    pairs = read_pairs(paths if len(paths) == 2 else paths[0], fmt=args.format,
                       skip_invalid=args.skip_invalid, limit=args.limit, **kw)
    if pairs.skipped:
        print(f"skipped {len(pairs.skipped)} invalid pairs (first: "
              f"{pairs.skipped[0][0]}:{pairs.skipped[0][1]}: {pairs.skipped[0][2]})",
              file=sys.stderr)
    if not pairs:
        raise ValueError(f"{' '.join(paths)}: no sentence pairs")
    return pairs


def _cmd_train(args) -> int:
    import random

    from zoo import metrics, plot
    from zoo.data import anki_spa_eng_pairs
    from zoo.recipes import train_translator

    from zoo.files import check_destination

    check_destination(args.out, args.overwrite, "--out")  # before any work
    if args.attention:
        import zoo.attention

        zoo.attention.REGISTRY.get_class(args.attention)  # unknown name: fail before training
    from zoo.models import presets

    presets.get_preset(args.preset)
    if args.data:
        pairs = _read_corpus(args)
        origin = " ".join(args.data)
        examples = args.example or [s for s, _ in pairs[:3]]
    else:
        pairs = anki_spa_eng_pairs(limit=args.limit)
        origin = "embedded Anki/Tatoeba spa-eng subset (CC-BY 2.0 FR)"
        examples = args.example or EXAMPLES
    pairs = list(pairs)
    random.Random(args.seed).shuffle(pairs)
    n_dev = min(max(1, int(len(pairs) * args.dev_fraction)), 2000) if len(pairs) > 20 else 0
    dev, train = pairs[:n_dev], pairs[n_dev:]
    print(f"zoo train translator: {len(train):,} training and {len(dev):,} held-out pairs "
          f"from {origin}; preset {args.preset}")
    overrides = {"attention": args.attention} if args.attention else None
    model, history, info = train_translator(
        train, preset=args.preset, out_dir=args.out, dev_pairs=dev or None,
        vocab_size=args.vocab_size, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, max_length=args.max_length,
        mixed_precision=args.mixed_precision, jit_compile=args.xla, seed=args.seed,
        overrides=overrides, verbose=_progress(args.progress), overwrite=args.overwrite)
    if info["truncated_pairs"]:
        print(f"{info['truncated_pairs']:,} of {len(train):,} training pairs were longer than "
              f"--max-length {args.max_length} ids and were truncated")
    loss = history.history["loss"]
    print(f"trained {info['parameters']:,} parameters for {info['epochs']} epochs in "
          f"{info['train_seconds']:.0f} s: loss {loss[0]:.2f} -> {loss[-1]:.2f}")
    if dev and info["kept_epoch"] != info["epochs"]:
        val = history.history["val_loss"]
        print(f"kept the weights of epoch {info['kept_epoch']} (validation loss "
              f"{val[info['kept_epoch'] - 1]:.2f}; the last epoch's was {val[-1]:.2f})")
    if dev:
        sample = dev[:500]
        hyps = model.translate([s for s, _ in sample])
        scores = metrics.evaluate(hyps, [t for _, t in sample])
        print(f"held-out ({len(sample)} pairs, greedy): BLEU {scores['bleu']:.1f}, "
              f"chrF {scores['chrf']:.1f}")
    outs, details = model.translate(examples, return_result=True)
    for src, out in zip(examples, outs):
        print(f"  {src}  ->  {out}")
    first = details[0]
    tok = model.source_tokenizer
    heat = plot.attention(first["attention"], tok.id_to_piece(first["source_ids"]),
                          model.target_tokenizer.id_to_piece(first["tokens"]),
                          os.path.join(args.out, "attention.png"),
                          title=f"{args.preset}: {examples[0]}")
    print(f"model saved to {args.out}/ (load with zoo.models.Translator.load); attention heat "
          f"map {heat}; TensorBoard logs {os.path.join(args.out, 'logs')}")
    return 0


def _progress(choice):
    """Keras verbosity: a bar on a terminal, one line per epoch in a file or pipe."""
    if choice == "auto":
        choice = "bar" if sys.stdout.isatty() else "epoch"
    return {"bar": 1, "epoch": 2, "none": 0}[choice]


def _strategy_kwargs(args):
    """The decoding options the user gave (None = not given), for the chosen strategy: an
    option of another strategy is then an error that names it."""
    given = {k: getattr(args, k) for k in ("length_penalty", "coverage_penalty",
                                           "temperature", "top_k", "top_p")
             if getattr(args, k) is not None}
    if args.sample:
        return {"strategy": "sampling", "seed": args.seed, **given}
    if args.beam_size > 1:
        return {"strategy": "beam", "beam_size": args.beam_size,
                "length_penalty": 0.6, **given}
    return {"strategy": "greedy", **given}


def _read_lines(path):
    from zoo.data.readers import DataError, _lines

    out = []
    for lineno, text, err in _lines(path):
        if err:
            raise DataError(path, lineno, err)
        out.append(text)
    return out


def _load_model(path):
    from zoo.models import Translator

    return Translator.load(path)


def _cmd_translate(args) -> int:
    if args.text:
        texts = list(args.text)
        origin = "arguments"
    elif args.input:
        texts = _read_lines(args.input)
        origin = args.input
    else:
        if sys.stdin.isatty():
            print("reading sentences from stdin, one per line (Ctrl-D to end)", file=sys.stderr)
        texts = [line.rstrip("\r\n") for line in sys.stdin]
        origin = "stdin"
    # The input contract (zoo.inputs), said in lines: no input gives no output; an empty or
    # blank line is an error that names it.
    empty = [i + 1 for i, t in enumerate(texts) if not t.strip()]
    if empty:
        unit = "argument" if origin == "arguments" else "line"
        raise ValueError(f"{origin}: {unit} {empty[0]} is empty or whitespace only "
                         f"({len(empty)} such); give one sentence per {unit}")
    if args.output and os.path.isdir(args.output):
        raise IsADirectoryError(21, "is a directory; --output takes a file", args.output)
    model = _load_model(args.model)
    outs = model.translate(texts, batch_size=args.batch_size, max_length=args.max_length,
                           **_strategy_kwargs(args))
    sink = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for line in outs:
            sink.write(line + "\n")
    finally:
        if args.output:
            sink.close()
    return 0


def _cmd_evaluate(args) -> int:
    from zoo import metrics

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
        pairs = _read_corpus(args)
        model = _load_model(args.model)
        hyps = model.translate(pairs.sources, batch_size=args.batch_size,
                               max_length=args.max_length, **_strategy_kwargs(args))
        refs = pairs.targets
    scores = metrics.evaluate(hyps, refs)
    print(f"BLEU {scores['bleu']:.2f}  chrF {scores['chrf']:.2f}  ({scores['sentences']} "
          f"sentences)")
    print(f"  {scores['bleu_signature']}\n  {scores['chrf_signature']}")
    return 0


def _cmd_export(args) -> int:
    from zoo.files import check_destination

    if os.path.realpath(args.out) == os.path.realpath(args.model):
        raise ValueError(f"--out {args.out} is the model directory; write the export elsewhere")
    check_destination(args.out, args.overwrite, "--out")  # before any work
    texts = _read_lines(args.verify) if args.verify else None  # fail early on a bad file
    model = _load_model(args.model)
    from zoo.export import get_exporter

    kwargs = {"max_length": args.max_length, "overwrite": args.overwrite}
    if args.format == "litert":
        kwargs.update(batch_size=args.batch_size, max_source_length=args.max_source_length,
                      quantizations=args.quantize)
    else:
        kwargs.update(beam_size=args.beam_size)
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
            print(f"  {name:<18} {presets.PRESETS[name]['description']}")
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
    p.add_argument("--skip-invalid", action="store_true",
                   help="skip and count empty or non-UTF-8 pairs instead of stopping")
    p.add_argument("--limit", type=int, default=None, help="read at most this many pairs")


def _add_decoding_args(p):
    p.add_argument("--beam-size", type=int, default=1, help="1 = greedy (default)")
    p.add_argument("--length-penalty", type=float, default=None,
                   help="GNMT alpha (beam; default 0.6)")
    p.add_argument("--coverage-penalty", type=float, default=None,
                   help="GNMT beta (beam; default 0)")
    p.add_argument("--sample", action="store_true", help="sample instead of searching")
    p.add_argument("--temperature", type=float, default=None, help="sampling (default 1)")
    p.add_argument("--top-k", type=int, default=None, help="sampling (default 0: all)")
    p.add_argument("--top-p", type=float, default=None, help="sampling (default 1: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=None, help="maximum output tokens")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo", description="Attention-based sequence-to-sequence models for Keras 3. "
                                "Set ZOO_VERBOSE=1 (or pass --verbose) to see TensorFlow's "
                                "logs and library warnings.")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up lines and library warnings")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    tr = sub.add_parser("train", help="train a model (`zoo train translator`)")
    tsub = tr.add_subparsers(dest="task", metavar="TASK")
    t = tsub.add_parser("translator", help="train a translator; with no --data, on the "
                                           "embedded Spanish-English pairs")
    _add_corpus_args(t, required=False)
    t.add_argument("--preset", default="rnn_small", help="see `zoo presets` (default rnn_small)")
    t.add_argument("--attention", default=None,
                   help="attention variant of an RNN preset (see `zoo attention`)")
    t.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--learning-rate", type=float, default=None)
    t.add_argument("--vocab-size", type=int, default=4000)
    t.add_argument("--max-length", type=int, default=64)
    t.add_argument("--dev-fraction", type=float, default=0.025,
                   help="held out for validation and BLEU (default 0.025, at most 2000)")
    t.add_argument("--mixed-precision", action="store_true", help="mixed_float16 (GPUs)")
    t.add_argument("--xla", action="store_true", help="XLA-compile the train step")
    t.add_argument("--example", action="append", default=None,
                   help="sentence to translate after training (repeatable)")
    t.add_argument("--out", default="zoo-translator", help="output folder (must be new or "
                                                           "empty, or use --overwrite)")
    t.add_argument("--overwrite", action="store_true",
                   help="replace the model in --out (written aside, renamed at the end)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--progress", default="auto", choices=("auto", "bar", "epoch", "none"),
                   help="training progress: a bar on a terminal, one line per epoch in a "
                        "file or pipe (auto, the default)")
    t.set_defaults(func=_cmd_train)

    s = sub.add_parser("translate", help="translate sentences (arguments, --input or stdin)")
    s.add_argument("text", nargs="*", help="sentences (default: --input or stdin)")
    s.add_argument("--model", required=True, help="a directory written by zoo train")
    s.add_argument("--input", default=None, help="file with one sentence per line")
    s.add_argument("--output", default=None, help="write here instead of stdout")
    _add_decoding_args(s)
    s.set_defaults(func=_cmd_translate)

    e = sub.add_parser("evaluate", help="BLEU and chrF (sacreBLEU) of a model or of files")
    e.add_argument("--model", default=None)
    _add_corpus_args(e, required=False)
    e.add_argument("--hypotheses", default=None, help="system output, one per line")
    e.add_argument("--references", default=None, help="references, one per line")
    _add_decoding_args(e)
    e.set_defaults(func=_cmd_evaluate)

    x = sub.add_parser("export", help="export a trained model (SavedModel, ONNX, LiteRT)")
    x.add_argument("--model", required=True, help="a directory written by zoo train")
    x.add_argument("--format", choices=("savedmodel", "onnx", "litert"), default="savedmodel",
                   help="savedmodel (strings in/out, default), onnx, litert (edge)")
    x.add_argument("--quantize", nargs="+", default=["float32", "float16", "int8"],
                   choices=("float32", "float16", "int8"), help="litert variants")
    x.add_argument("--batch-size", type=int, default=1, help="litert: fixed batch")
    x.add_argument("--max-source-length", type=int, default=64,
                   help="litert: sources are padded to this many ids")
    x.add_argument("--out", required=True, help="output directory (must be new or empty, or "
                                                 "use --overwrite)")
    x.add_argument("--overwrite", action="store_true", help="replace the export in --out")
    x.add_argument("--max-length", type=int, default=None, help="maximum output tokens")
    x.add_argument("--beam-size", type=int, default=4,
                   help="beam size of the exported beam search (savedmodel, onnx)")
    x.add_argument("--verify", default=None, metavar="FILE",
                   help="sentences (one per line) to check parity with Keras on; the figures "
                        "go into manifest.json")
    x.set_defaults(func=_cmd_export)

    a = sub.add_parser("attention", help="list the attention variants")
    a.set_defaults(func=_cmd_attention)
    p = sub.add_parser("presets", help="list the model presets")
    p.set_defaults(func=_cmd_presets)
    return parser


_POSITIVE = ("epochs", "batch_size", "vocab_size", "max_length", "limit", "beam_size",
             "max_source_length")


def _cli_field(field):
    """An option name as the CLI spells it (``length_penalty`` -> ``--length-penalty``)."""
    field = field.split("[")[0]
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
    for name in _POSITIVE:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    dev_fraction = getattr(args, "dev_fraction", 0.1)
    if not 0 <= dev_fraction < 1:
        parser.error(f"--dev-fraction must be in [0, 1), got {dev_fraction}")
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
        if not getattr(args, "hypotheses", None):  # every other command imports TensorFlow
            _quiet_tf()
        return args.func(args)
    except InputError as err:
        print(f"zoo {args.command}: error: {_cli_field(err.field)}: {err}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, TypeError, UnicodeDecodeError) as err:
        print(f"zoo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the file system's own errors: name the file, not a traceback
        where = f"{err.filename}: " if err.filename else ""
        print(f"zoo {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"zoo {args.command}: interrupted (nothing was written)"
              if args.command in ("train", "export") else f"zoo {args.command}: interrupted",
              file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":
    sys.exit(main())
