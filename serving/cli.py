"""``zoo serve`` and ``python -m zoo.serving``: the server's own entry point.

Serving owns its options and its start; ``zoo.cli`` adds them under ``zoo serve`` and calls
:func:`run`. Nothing here imports model code or ``zoo.cli``.
"""

from __future__ import annotations

import argparse
import sys

from zoo.inputs import InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``zoo serve``."""
    p.add_argument("model_dir", nargs="?", metavar="MODEL_DIR",
                   help="a directory written by zoo export (any format)")
    p.add_argument("--name", default=None, help="URL name of MODEL_DIR (default: its "
                                                "directory name)")
    p.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                   help="serve another export under NAME (repeatable)")
    p.add_argument("--runtime", choices=("savedmodel", "onnx", "litert"), default=None,
                   help="require this export format (the runtime always comes from the "
                        "manifest)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback "
                                                       "only; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--max-batch-size", type=int, default=32,
                   help="most texts decoded together (1 turns micro-batching off)")
    p.add_argument("--batch-timeout-micros", type=int, default=2000,
                   help="longest wait for a batch to fill, in microseconds")
    p.add_argument("--max-queue", type=int, default=256,
                   help="requests waiting per model before answering 503")
    p.add_argument("--max-texts", type=int, default=64, help="texts per request")
    p.add_argument("--max-chars", type=int, default=10_000, help="characters per text")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="bytes per request")
    p.add_argument("--request-timeout", type=float, default=30.0,
                   help="seconds before a request answers 504")
    p.add_argument("--quantization", default=None,
                   help="litert: which exported .tflite to serve (default float32)")
    p.add_argument("--access-log", action="store_true", help="log every request")


def run(args) -> int:
    """Starts the server that ``args`` describe (after checking every limit)."""
    from zoo.serving.server import Limits, parse_models, serve

    for flag in ("port", "max_batch_size", "max_queue", "max_texts", "max_chars",
                 "max_body_bytes"):
        value = getattr(args, flag)
        if value < (0 if flag == "port" else 1) or (flag == "port" and value > 65535):
            raise InputError(flag, f"must be {'a port number' if flag == 'port' else '>= 1'}, "
                                   f"got {value}")
    if args.batch_timeout_micros < 0:
        raise InputError("batch_timeout_micros", f"must be >= 0, got "
                                                 f"{args.batch_timeout_micros}")
    if not args.request_timeout > 0:
        raise InputError("request_timeout", f"must be > 0 seconds, got {args.request_timeout}")
    models = parse_models(args.model_dir, args.name, args.model, args.runtime)
    limits = Limits(max_batch_size=args.max_batch_size,
                    batch_timeout=args.batch_timeout_micros / 1e6, max_queue=args.max_queue,
                    max_texts=args.max_texts, max_chars=args.max_chars,
                    max_body_bytes=args.max_body_bytes, request_timeout=args.request_timeout)
    options = {n: {"quantization": args.quantization} for n in models} \
        if args.quantization else None
    return serve(models, host=args.host, port=args.port, limits=limits,
                 runtime_options=options, access_log=args.access_log)


def main(argv=None) -> int:
    """``python -m zoo.serving ARGS``: ``zoo serve ARGS`` without the ``zoo`` command."""
    parser = argparse.ArgumentParser(prog="zoo serve",
                                     description="serve exported models over HTTP")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except InputError as err:
        print(f"zoo serve: error: --{err.field.replace('_', '-')}: {err}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"zoo serve: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        print(f"zoo serve: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
