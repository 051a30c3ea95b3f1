"""``python -m loopml.cli``: the same as the ``loopml`` console script."""

from loopml.cli import entry

if __name__ == "__main__":  # not when a spawned worker process imports this module
    entry()
