"""What ``pip install`` puts on a machine: every package and the shipped checkpoints.

The editable install of a checkout finds any folder with an ``__init__.py``, so a package left
out of ``setup.cfg`` works here and breaks for users. The first test reads the list; the slow
one builds the wheel, installs it in a fresh virtual environment and runs the shipped models
with every connection to another host refused.
"""

import configparser
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Where each installed package's code lives in the repository (setup.cfg's package_dir).
FOLDERS = {"zoo": "zoo", "zoo.export": "export", "zoo.serving": "serving"}


def _declared_packages():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    return set(cfg["options"]["packages"].split())


def _package_folders():
    """Every importable package of the repository, by its installed name."""
    found = set()
    for name, folder in FOLDERS.items():
        top = os.path.join(ROOT, folder)
        for here, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d not in FOLDERS.values() and d != "__pycache__"]
            if "__init__.py" in files:
                rel = os.path.relpath(here, top)
                found.add(name if rel == "." else name + "." + rel.replace(os.sep, "."))
    return found


def test_setup_cfg_lists_every_package():
    missing = _package_folders() - _declared_packages()
    assert not missing, f"setup.cfg [options] packages misses {sorted(missing)}"
    assert "zoo.recipes" in _declared_packages()


# Loaded first in the fresh environment: any connection that is not to this machine fails.
NO_NETWORK = textwrap.dedent("""
    import socket
    _connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost") \\
                and self.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"network refused by the test: {address}")
        return _connect(self, address)

    socket.socket.connect = connect
""")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A virtual environment holding the built wheel (its dependencies from this machine's
    site-packages: the test runs without network) and an empty home and cache."""
    root = tmp_path_factory.mktemp("install")
    wheels = root / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(wheels), ROOT], check=True)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    python = str(venv / "bin" / "python")
    wheel = next(wheels.glob("*.whl"))
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True)
    with open(os.path.join(site.stdout.strip(), "sitecustomize.py"), "w") as f:
        f.write(NO_NETWORK)
    home = root / "home"
    home.mkdir()
    env = {"PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "HOME": str(home),
           "ZOO_CACHE": str(home / "cache")}  # a user's: no TensorFlow log settings
    return {"python": python, "zoo": str(venv / "bin" / "zoo"), "env": env, "cwd": str(home)}


def _run(installed, *args):
    return subprocess.run(list(args), cwd=installed["cwd"], env=installed["env"],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_wheel_holds_the_code_and_the_checkpoints(installed):
    out = _run(installed, installed["python"], "-c", textwrap.dedent("""
        import os, socket, zoo, zoo.recipes, zoo.export, zoo.serving
        print(os.path.dirname(zoo.__file__))
        try:
            socket.create_connection(("192.0.2.1", 80), timeout=1)
        except OSError as e:
            print("refused" if "network refused" in str(e) else e)
    """))
    assert out.returncode == 0, out.stderr
    where, refused = out.stdout.split()
    assert where.startswith(os.path.dirname(os.path.dirname(installed["python"])))
    assert not where.startswith(ROOT) and refused == "refused"


@pytest.mark.slow
def test_shipped_models_run_right_after_install_without_network(installed):
    out = _run(installed, installed["zoo"], "translate", "--model", "anki_es_en",
               "¿Dónde está la estación de tren?")
    assert out.returncode == 0, out.stderr
    assert "station" in out.stdout.lower() and out.stderr == "", (out.stdout, out.stderr)
    dialogue = ("#Person1#: Did you finish the report for the meeting?\n"
                "#Person2#: Not yet, I will send it to you tomorrow morning.")
    out = _run(installed, installed["zoo"], "summarize", "--model", "dialogsum_summarizer",
               dialogue)
    assert out.returncode == 0, out.stderr
    assert "#Person2#" in out.stdout and "tomorrow" in out.stdout, out.stdout
    assert out.stderr == "", out.stderr
    export = os.path.join(installed["cwd"], "onnx")
    out = _run(installed, installed["zoo"], "export", "--model", "anki_es_en", "--format",
               "onnx", "--out", export)
    assert out.returncode == 0, out.stderr
    out = _run(installed, installed["python"], "-c",
               f"from zoo.serving import load; print(load({export!r}).generate_text("
               "['Tengo hambre.'])[0])")
    assert out.returncode == 0, out.stderr
    assert "hungry" in out.stdout.lower()
    assert not os.path.exists(installed["env"]["ZOO_CACHE"])  # nothing was downloaded
