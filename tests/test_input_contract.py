"""One input contract at every entry point: the same table of inputs through the Python API,
the CLI and the runners of the SavedModel, ONNX and LiteRT exports (docs/inputs.md).

Every entry point is a function ``(texts, strategy, options) -> list of strings`` that raises
``zoo.inputs.InputError``/``ValueError`` (the CLI: exit 2 and one stderr line) on bad input.
"""

import contextlib
import io
import math
import warnings

import pytest

from zoo import cli
from zoo.inputs import InputTruncatedWarning
from zoo.serving import load

#: The source limit of each entry point: the model's, and the LiteRT export's fixed shape.
SOURCE_LIMITS = {"litert": 32}
GOOD = ["Tengo hambre.", "Hola."]
LONG = " ".join(["¿Dónde está la estación de tren?"] * 14)  # over 256 ids


class Refused(Exception):
    """What an entry point said when it refused the input (one line)."""


@pytest.fixture(scope="module")
def entry_points(tiny_exports):
    """The run's shared tiny translator and its SavedModel, ONNX and LiteRT exports."""
    model, root = tiny_exports
    runners = {fmt: load(str(root / fmt)) for fmt in ("savedmodel", "onnx", "litert")}

    def python_api(texts, strategy, options):
        return model.translate(texts, strategy=strategy, **options)

    def command_line(texts, strategy, options):
        args = ["translate", "--model", str(root / "model")]
        if strategy == "beam":
            args += ["--beam-size", str(options.pop("beam_size", 2))]
        if strategy == "sampling":
            args.append("--sample")
        for key, value in options.items():
            args += ["--" + key.replace("_", "-"), str(value)]
        stdin = io.StringIO("".join(t + "\n" for t in texts))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                import sys

                saved, sys.stdin = sys.stdin, stdin
                code = cli.main(args)
            except SystemExit as e:  # argparse: an unknown flag
                code = e.code
            finally:
                sys.stdin = saved
        for line in err.getvalue().splitlines():
            if line.startswith("zoo: warning: "):
                warnings.warn(line, InputTruncatedWarning)
        if code != 0:
            lines = [x for x in err.getvalue().splitlines() if "error" in x]
            raise Refused(lines[-1] if lines else err.getvalue())
        return out.getvalue().splitlines()

    def runner(fmt):
        def run(texts, strategy, options):
            return runners[fmt].generate_text(texts, strategy, **options)
        return run

    return {"python": python_api, "cli": command_line,
            **{fmt: runner(fmt) for fmt in runners}}


ENTRY_POINTS = ["python", "cli", "savedmodel", "onnx", "litert"]

# (case, texts, strategy, options, what the refusal must name; None: accepted)
BAD = [
    ("empty text", ["Hola.", ""], "greedy", {}, ("texts[1]", "line 2")),
    ("blank text", ["Hola.", "   "], "greedy", {}, ("texts[1]", "line 2")),
    ("NaN length penalty", GOOD, "beam", {"length_penalty": math.nan}, ("length_penalty",
                                                                        "length-penalty")),
    ("infinite coverage penalty", GOOD, "beam", {"coverage_penalty": math.inf},
     ("coverage_penalty", "coverage-penalty")),
    ("negative coverage penalty", GOOD, "beam", {"coverage_penalty": -1.0},
     ("coverage_penalty", "coverage-penalty")),
    ("unknown keyword", GOOD, "beam", {"beamsize": 4}, ("beamsize",)),
    ("option of another strategy", GOOD, "greedy", {"length_penalty": 0.5},
     ("length_penalty", "length-penalty")),
    ("NaN temperature", GOOD, "sampling", {"temperature": math.nan},
     ("temperature", "strategy 'sampling'")),
]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case,texts,strategy,options,names", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_naming_it(entry_points, entry, case, texts, strategy, options,
                                        names):
    if entry == "litert" and strategy == "beam":
        names = names + ("strategy 'beam'",)  # a LiteRT export has greedy only
    with pytest.raises((ValueError, Refused)) as info:
        entry_points[entry](list(texts), strategy, dict(options))
    message = str(info.value)
    assert any(n in message for n in names), message
    assert "\n" not in message.strip() and "Traceback" not in message


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_empty_batch_gives_empty_result(entry_points, entry):
    assert entry_points[entry]([], "greedy", {}) == []


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_overlong_input_is_truncated_with_a_warning_that_says_how_much(entry_points, entry,
                                                                        tiny_exports):
    limit = SOURCE_LIMITS.get(entry, tiny_exports[0].max_source_length)
    with pytest.warns(InputTruncatedWarning) as record:
        out = entry_points[entry](["Hola.", LONG], "greedy", {})
    assert len(out) == 2
    message = str(record[0].message)
    assert f"maximum of {limit} ids" in message and "dropped" in message


@pytest.mark.parametrize("entry", ["python", "savedmodel", "onnx", "litert"])
def test_non_list_and_non_string_inputs_are_named(entry_points, entry):
    with pytest.raises(ValueError, match="list of strings, got one string"):
        entry_points[entry]("Hola.", "greedy", {})
    with pytest.raises(ValueError, match=r"texts\[1\] is int"):
        entry_points[entry](["Hola.", 3], "greedy", {})


def test_every_entry_point_gives_the_same_outputs_on_good_input(entry_points):
    outs = {e: entry_points[e](list(GOOD), "greedy", {}) for e in ENTRY_POINTS}
    assert all(o == outs["python"] for o in outs.values()), outs
