"""``python -m opentrain_async``: the ``opentrain-async`` command line."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
