"""The `zoo` command line."""

from __future__ import annotations

import argparse
import os
import sys

# Before TensorFlow is imported (the commands import it lazily): keep its C++ start-up chatter
# out of the command's output unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _cmd_demo(args) -> int:
    from zoo import demo

    demo.run(attention=args.attention, num_pairs=args.pairs, epochs=args.epochs,
             out_dir=args.out, seed=args.seed)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo", description="Attention-based sequence-to-sequence models for Keras 3.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    d = sub.add_parser("demo", help="train a small attention model on the embedded "
                                    "Spanish-English pairs, translate, plot the attention")
    d.add_argument("--attention", default="additive",
                   help="attention variant (see `zoo attention`); default: additive")
    d.add_argument("--pairs", type=int, default=9000, help="training pairs (default 9000)")
    d.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    d.add_argument("--out", default="zoo-demo", help="output folder (default ./zoo-demo)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_cmd_demo)
    a = sub.add_parser("attention", help="list the attention variants")
    a.set_defaults(func=_cmd_attention)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    for name in ("pairs", "epochs"):
        if getattr(args, name, 1) is not None and getattr(args, name, 1) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"zoo {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
