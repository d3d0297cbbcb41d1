"""Runs zoo from a checkout (an earlier commit's worktree, or this one) in a subprocess.

setup.cfg installs ``export/`` and ``serving/`` as ``zoo.export`` and ``zoo.serving``
(package_dir), so ``PYTHONPATH`` alone would pair the checkout's ``zoo`` with the installed
exporters: :data:`PREAMBLE` loads the checkout's own.
"""

import os
import sys

PREAMBLE = """import importlib.util, os, sys
import zoo
for name in ("export", "serving"):
    spec = importlib.util.spec_from_file_location(
        "zoo." + name, os.path.join(name, "__init__.py"), submodule_search_locations=[name])
    module = importlib.util.module_from_spec(spec)
    sys.modules["zoo." + name] = module
    spec.loader.exec_module(module)
"""
#: The ``zoo`` command of the checkout.
CLI = "from zoo.cli import main\nsys.exit(main())"


def python(script: str) -> list:
    """The command line that runs ``script`` with a checkout's zoo (run it with
    ``cwd=code, env=env(code)``)."""
    return [sys.executable, "-c", PREAMBLE + script]


def env(code: str) -> dict:
    return {**os.environ, "PYTHONPATH": code, "TF_CPP_MIN_LOG_LEVEL": "3"}
