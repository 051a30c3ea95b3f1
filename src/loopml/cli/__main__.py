"""``python -m loopml.cli``: the same as the ``loopml`` console script."""

import sys

from loopml.cli import main

if __name__ == "__main__":  # not when a spawned worker process imports this module
    sys.exit(main())
