"""python -m reactis: the command-line tool (see reactis.cli)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
