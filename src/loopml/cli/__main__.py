"""``python -m loopml.cli``: the same as the ``loopml`` console script."""

import sys

from loopml.cli import main

sys.exit(main())
