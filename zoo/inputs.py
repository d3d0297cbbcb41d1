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

import difflib
import math
import warnings
from typing import Any, Dict, Iterable, List, Optional, Sequence


class InputError(ValueError):
    """A caller's input that breaks the contract; ``field`` names the input or option."""

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(problem)


class InputTruncatedWarning(UserWarning):
    """Inputs longer than the model's maximum were cut (the message says how much)."""


# Options of each strategy (besides the lengths every strategy takes); what
# ``zoo.decoding`` strategies accept, by the same names.
LENGTH_OPTIONS = ("max_length", "min_length")
STRATEGY_OPTIONS = {
    "greedy": ("no_repeat_ngram_size",),
    "beam": ("beam_size", "length_penalty", "coverage_penalty", "n_best", "early_stop",
             "no_repeat_ngram_size"),
    "sampling": ("temperature", "top_k", "top_p", "num_samples", "seed",
                 "no_repeat_ngram_size"),
}
_ALIASES = {"beam_search": "beam", "sample": "sampling"}


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
    if integer and float(value) != int(value):
        raise InputError(name, f"{name} must be an integer, got {value!r}")
    if not math.isfinite(value):
        raise InputError(name, f"{name} must be finite, got {value!r}")
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
    if key in ("max_length", "beam_size", "n_best", "num_samples"):
        return _number(key, value, integer=True, low=1)
    if key in ("min_length", "top_k", "no_repeat_ngram_size"):
        return _number(key, value, integer=True, low=0)
    if key in ("length_penalty", "coverage_penalty"):
        return _number(key, value, low=0.0)
    if key == "temperature":
        return _number(key, value, low=0.0, low_open=True)
    if key == "top_p":
        return _number(key, value, low=0.0, high=1.0, low_open=True)
    if key == "seed":
        return _number(key, value, integer=True)
    if key == "early_stop":
        if not isinstance(value, bool):
            raise InputError(key, f"early_stop must be True or False, got {value!r}")
        return value
    return value


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
