"""``python -m zoo.serving ...`` is ``zoo serve ...``."""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
