"""Every docstring Example in the library runs and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

import zoo

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(zoo.__path__, "zoo.")
    if not m.name.startswith(("zoo.export", "zoo.serving")) and m.name != "zoo.cli")


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
