"""``python -m zoo.serving ...`` is ``zoo serve ...`` (serving's own entry point)."""

import sys

from zoo.serving.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
