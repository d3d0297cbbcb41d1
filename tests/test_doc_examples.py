"""Every docstring Example in the library runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

import zoo
import zoo.export
import zoo.serving

# zoo.export and zoo.serving live outside zoo/ in the repository (package_dir): walk them too.
MODULES = sorted(
    {m.name for m in pkgutil.walk_packages(zoo.__path__, "zoo.") if m.name != "zoo.cli"}
    | {m.name for m in pkgutil.walk_packages(zoo.export.__path__, "zoo.export.")}
    | {m.name for m in pkgutil.walk_packages(zoo.serving.__path__, "zoo.serving.")}
    | {"zoo.export", "zoo.serving"})


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
