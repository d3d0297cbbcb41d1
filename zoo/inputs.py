"""The input contract every entry point shares: the Python API, the CLI, the exported
SavedModel signatures (their graph checks say the same) and the ``zoo.serving`` runners.

Pure Python (no TensorFlow, no NumPy), so ``zoo.serving`` can import it without model code.

* A batch is a list of strings. An empty batch gives an empty result. A lone string, a
  non-string item, or a text that is empty or whitespace only is an :class:`InputError` that
  names the item (``texts[3]``).
* Decoding options are checked by name and value: an unknown keyword, a non-finite number or a
  value out of range is an :class:`InputError` that names the option.
* Overlong input is truncated to the model's ``max_source_length`` ids (eos included) with an
  :class:`InputTruncatedWarning` that says which inputs and how many ids were dropped.

Example:
    >>> check_texts(["Hola.", "Adiós."])
    ['Hola.', 'Adiós.']
    >>> check_decoding("beam", {"beam_size": 4, "length_penalty": 0.6})["beam_size"]
    4
    >>> try:
    ...     check_decoding("beam", {"beamsize": 4})
    ... except InputError as err:
    ...     print(err)
    unknown decoding option 'beamsize' for strategy 'beam'; did you mean 'beam_size'? (options: beam_size, coverage_penalty, early_stop, length_penalty, max_length, min_length, n_best, no_repeat_ngram_size)
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import warnings
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple


#: The special token ids every zoo tokenizer reserves (and every export's manifest records):
#: what the data pipeline, the decoding loops, the exporters and the serving tokenizer share.
SPECIAL_IDS = {"pad": 0, "unk": 1, "bos": 2, "eos": 3}
PAD_ID, UNK_ID, BOS_ID, EOS_ID = (SPECIAL_IDS[k] for k in ("pad", "unk", "bos", "eos"))


class InputError(ValueError):
    """A caller's input that breaks the contract; ``field`` names the input or option."""

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(problem)


class InputTruncatedWarning(UserWarning):
    """Inputs longer than the model's maximum were cut (the message says how much)."""


@dataclasses.dataclass(frozen=True)
class Option:
    """One decoding option, declared once: its type, valid range and the strategies that
    take it. The checks, the CLI flags, the server's request fields (and so its OpenAPI
    schema), the runners and docs/inputs.md all read :data:`OPTIONS`.

    Args:
        name: The keyword (``beam_size``); the CLI flag is ``--beam-size``.
        kind: ``int``, ``float`` or ``bool``.
        low, high: The valid range (inclusive; ``low_open`` excludes ``low``).
        strategies: The strategies that take it (every one: all three).
        help: One line for the CLI and the schema.
        default: What "not given" means, for the docs.
    """

    name: str
    kind: type
    low: Optional[float]
    high: Optional[float]
    strategies: Tuple[str, ...]
    help: str
    default: str = ""
    low_open: bool = False

    @property
    def range_text(self) -> str:
        """The range as the docs and messages write it: ``[1, 64]``, ``(0, 100]``."""
        if self.kind is bool:
            return "true or false"
        def num(x):
            return f"{int(x)}" if self.kind is int else f"{x:g}"

        lo = "(" if self.low_open else "["
        hi = f"{num(self.high)}]" if self.high is not None else "inf)"
        return f"{lo}{num(self.low)}, {hi}"

    def check(self, value):
        """The value normalised (ints as ints), or an :class:`InputError` naming the option
        and its range."""
        if self.kind is bool:
            if not isinstance(value, bool):
                raise InputError(self.name, f"{self.name} must be True or False, got {value!r}")
            return value
        value = _number(self.name, value, integer=self.kind is int)
        below = value <= self.low if self.low_open else value < self.low
        if below or (self.high is not None and value > self.high):
            raise InputError(self.name, f"{self.name} must be in {self.range_text}, got "
                                        f"{value!r}")
        return value


STRATEGIES = ("greedy", "beam", "sampling")
_ALL, _BEAM, _SAMPLE = STRATEGIES, ("beam",), ("sampling",)
#: Longest output, beam and source any entry point accepts: beyond them a CPU runs out of
#: memory or time before it answers, so they are refused before any work.
MAX_LENGTH_LIMIT, MAX_BEAM_SIZE = 1024, 64
OPTIONS: Tuple[Option, ...] = (
    Option("max_length", int, 1, MAX_LENGTH_LIMIT, _ALL, "maximum output tokens",
           "the model's max_target_length"),
    Option("min_length", int, 0, MAX_LENGTH_LIMIT, _ALL,
           "tokens before the end may be generated", "0"),
    Option("no_repeat_ngram_size", int, 0, 16, _ALL,
           "never repeat an n-gram of this size (0: off)", "the task's: 3 for a summarizer"),
    Option("beam_size", int, 1, MAX_BEAM_SIZE, _BEAM, "hypotheses kept (1: greedy)",
           "the task's: 1 for a translator, 4 for a summarizer"),
    Option("length_penalty", float, 0.0, 10.0, _BEAM, "GNMT alpha", "0.6"),
    Option("coverage_penalty", float, 0.0, 10.0, _BEAM, "GNMT beta", "0"),
    Option("n_best", int, 1, MAX_BEAM_SIZE, _BEAM, "hypotheses returned (<= beam_size)", "1"),
    Option("early_stop", bool, None, None, _BEAM,
           "stop when the best finished hypothesis cannot be beaten", "True"),
    Option("temperature", float, 0.01, 100.0, _SAMPLE, "divides the logits", "1"),
    Option("top_k", int, 0, 1_000_000, _SAMPLE, "sample from the k likeliest (0: all)", "0"),
    Option("top_p", float, 0.0, 1.0, _SAMPLE, "sample from this probability mass", "1",
           low_open=True),
    Option("num_samples", int, 1, MAX_BEAM_SIZE, _SAMPLE, "samples drawn per input", "1"),
    Option("seed", int, 0, 2**31 - 1, _SAMPLE, "the sampling seed", "0"),
)
OPTION = {o.name: o for o in OPTIONS}
# Options of each strategy (besides the lengths every strategy takes), derived from OPTIONS.
LENGTH_OPTIONS = ("max_length", "min_length")
STRATEGY_OPTIONS = {s: tuple(o.name for o in OPTIONS if s in o.strategies and
                             o.name not in LENGTH_OPTIONS) for s in STRATEGIES}
_ALIASES = {"beam_search": "beam", "sample": "sampling"}
#: The options an export fixes (its manifest's ``decoding`` records them); with max_length,
#: what a request to an export may name.
EXPORT_OPTIONS = ("beam_size", "length_penalty", "coverage_penalty", "min_length",
                  "no_repeat_ngram_size")


#: The CLI's other numbers (training, export, data), declared the same way: what ``zoo``
#: checks before any work and docs/inputs.md lists (the decoding ones are :data:`OPTIONS`).
NUMBERS: Tuple[Option, ...] = (
    Option("epochs", int, 1, 100_000, ("train",), "epochs to train"),
    Option("batch_size", int, 1, 65_536, ("train", "translate", "summarize", "evaluate",
                                          "export"), "pairs (or texts) per batch"),
    Option("learning_rate", float, 0.0, 1.0, ("train",), "peak learning rate",
           low_open=True),
    Option("vocab_size", int, 8, 1_000_000, ("train",), "SentencePiece pieces"),
    Option("max_source_length", int, 2, 4096, ("train", "export"),
           "source ids kept per text (eos included)"),
    Option("max_target_length", int, 2, 4096, ("train",), "summary ids kept"),
    Option("limit", int, 1, 1_000_000_000, ("train", "evaluate"), "pairs read"),
    Option("dev_fraction", float, 0.0, 0.99, ("train",), "share held out"),
    Option("checkpoint_every", int, 0, 10_000_000, ("train",),
           "batches between checkpoints (0: epoch ends)"),
    Option("keep_checkpoints", int, 1, 1000, ("train",), "newest checkpoints kept"),
    Option("devices", int, 1, 1024, ("train",), "data-parallel replicas"),
    Option("max_steps", int, 1, 100_000_000, ("train",), "update budget"),
    Option("patience", int, 1, 100_000, ("train",), "epochs without improvement"),
    Option("average_last", int, 1, 1000, ("train",), "epoch ends averaged"),
    Option("coverage_epochs", int, 0, 100_000, ("train",), "epochs with the coverage loss"),
)
NUMBER = {o.name: o for o in NUMBERS}


def numbers_table() -> str:
    """docs/inputs.md's table of the CLI's other numbers, from :data:`NUMBERS`."""
    rows = [f"| `--{o.name.replace('_', '-')}` | {o.kind.__name__} | {o.range_text} | "
            f"{', '.join(o.strategies)} | {o.help} |" for o in NUMBERS]
    return "\n".join(["| flag | type | valid range | commands | meaning |",
                      "|---|---|---|---|---|", *rows])


def options_table() -> str:
    """docs/inputs.md's table of the decoding options (Markdown), from :data:`OPTIONS`."""
    rows = [f"| `{o.name}` | {o.kind.__name__} | {o.range_text} | {', '.join(o.strategies)} "
            f"| {o.default} | {o.help} |" for o in OPTIONS]
    return "\n".join(["| option | type | valid range | strategies | default | meaning |",
                      "|---|---|---|---|---|---|", *rows])


def check_texts(texts: Any, field: str = "texts") -> List[str]:
    """A list of non-empty strings, or an :class:`InputError` naming the bad item.

    Args:
        texts: A list (or other iterable, not a string) of strings.
        field: The name of the input in messages.

    Returns:
        The texts as a list (possibly empty).
    """
    if isinstance(texts, (str, bytes)):
        raise InputError(field, f"{field} must be a list of strings, got one string; wrap it "
                                f"in a list")
    try:
        texts = list(texts)
    except TypeError:
        raise InputError(field, f"{field} must be a list of strings, got "
                                f"{type(texts).__name__}") from None
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError(f"{field}[{i}]", f"{field}[{i}] is {type(t).__name__}, expected "
                                              f"a string")
        if not t.strip():
            raise InputError(f"{field}[{i}]", f"{field}[{i}] is empty or whitespace only")
    return texts


def _number(name, value, integer=False, low=None, high=None, low_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:  # numpy scalars and 0-d arrays
            value = value.item()
        except AttributeError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "an integer" if integer else "a number"
        raise InputError(name, f"{name} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise InputError(name, f"{name} must be finite, got {value!r}")
    if integer and float(value) != int(value):
        raise InputError(name, f"{name} must be an integer, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        rel = ">" if low_open else ">="
        raise InputError(name, f"{name} must be {rel} {low}, got {value!r}")
    if high is not None and value > high:
        raise InputError(name, f"{name} must be <= {high}, got {value!r}")
    return int(value) if integer else float(value)


def strategy_name(strategy: Any) -> str:
    """The canonical strategy name (``"greedy"``, ``"beam"``, ``"sampling"``)."""
    if not isinstance(strategy, str):
        raise InputError("strategy", f"strategy must be one of {', '.join(STRATEGY_OPTIONS)}, "
                                     f"got {strategy!r}")
    name = _ALIASES.get(strategy.strip().lower(), strategy.strip().lower())
    if name not in STRATEGY_OPTIONS:
        close = difflib.get_close_matches(name, list(STRATEGY_OPTIONS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError("strategy", f"unknown strategy {strategy!r}{hint} (strategies: "
                                     f"{', '.join(STRATEGY_OPTIONS)})")
    return name


def check_decoding(strategy: str, options: Dict[str, Any],
                   allowed: Optional[Iterable[str]] = None) -> Dict[str, Any]:
    """Checks decoding options by name and value.

    Args:
        strategy: ``"greedy"``, ``"beam"`` or ``"sampling"`` (aliases allowed).
        options: Keyword options; ``None`` values mean "the default" and are dropped.
        allowed: Restricts the options further (an export fixes some at export time).

    Returns:
        The options with numbers normalised (ints as ints, floats as floats).
    """
    name = strategy_name(strategy)
    known = set(LENGTH_OPTIONS) | set(STRATEGY_OPTIONS[name])
    if allowed is not None:
        known &= set(allowed)
    out = {}
    for key, value in options.items():
        if key not in known:
            everything = set(LENGTH_OPTIONS).union(*STRATEGY_OPTIONS.values())
            close = difflib.get_close_matches(key, sorted(known), n=1)
            if close:
                hint = f"; did you mean {close[0]!r}?"
            elif key in everything:
                owners = [s for s, o in STRATEGY_OPTIONS.items() if key in o]
                hint = (f"; it belongs to strategy {owners[0]!r}" if owners else
                        "; this runtime fixes it at export")
            else:
                hint = ""
            raise InputError(key, f"unknown decoding option {key!r} for strategy {name!r}"
                                  f"{hint} (options: {', '.join(sorted(known))})")
        if value is None:
            continue
        out[key] = _check_option(key, value)
    if "min_length" in out and "max_length" in out and out["min_length"] > out["max_length"]:
        raise InputError("min_length", f"min_length ({out['min_length']}) must be <= "
                                       f"max_length ({out['max_length']})")
    if "n_best" in out and out["n_best"] > out.get("beam_size", out["n_best"]):
        raise InputError("n_best", f"n_best ({out['n_best']}) must be <= beam_size "
                                   f"({out['beam_size']})")
    return out


def _check_option(key, value):
    return OPTION[key].check(value)


def check_positive_int(name: str, value: Any) -> int:
    """An integer >= 1, or an :class:`InputError` naming ``name``."""
    return _number(name, value, integer=True, low=1)


def warn_truncated(lengths: Sequence[int], limit: int, field: str = "texts",
                   stacklevel: int = 3) -> List[int]:
    """Warns once for every input whose id count (eos included) exceeds ``limit``.

    Args:
        lengths: Id counts of the inputs, eos included, before truncation.
        limit: The maximum kept.
        field: The input's name in the message.
        stacklevel: As in ``warnings.warn``.

    Returns:
        Ids dropped per input (0 where nothing was cut).
    """
    dropped = [max(0, int(n) - int(limit)) for n in lengths]
    cut = [i for i, d in enumerate(dropped) if d]
    if cut:
        shown = ", ".join(f"{field}[{i}] ({lengths[i]} ids, {dropped[i]} dropped)"
                          for i in cut[:3])
        more = f" and {len(cut) - 3} more" if len(cut) > 3 else ""
        warnings.warn(f"{len(cut)} input(s) longer than the model's maximum of {limit} ids "
                      f"were truncated: {shown}{more}", InputTruncatedWarning,
                      stacklevel=stacklevel)
    return dropped
