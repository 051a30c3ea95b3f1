"""The ``loopml`` command line: parses arguments, calls the library, prints the result.

No logic lives here. Imports are lazy so that ``loopml --help`` starts fast. A
``LoopmlError`` becomes a one-paragraph message on stderr and its exit code
(0 ok, 1 gates/checks failed or conflict, 2 usage or config error).

``parser`` holds every command's arguments; the handlers live in modules by what they
act on (``registry``, ``traffic``, ``keys``, ``monitoring``, ``project``) and register
themselves in ``common.COMMANDS`` when imported.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence

from loopml.cli import keys, monitoring, project, registry, scoring, traffic
from loopml.cli.common import COMMANDS
from loopml.cli.parser import build_parser

__all__ = ["COMMANDS", "build_parser", "entry", "main"]

# Imported for their side effect: each module's @command handlers fill COMMANDS.
_COMMAND_MODULES = (keys, monitoring, project, registry, scoring, traffic)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from loopml.errors import LoopmlError

    try:
        return COMMANDS[args.command](args)
    except LoopmlError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The console script: ``main``, then exit without a last full garbage collection.

    After a training run the heap holds scikit-learn, SciPy and pandas; the interpreter's
    collection at shutdown walked it for 0.6-0.7 s (measured) with nothing left to free. Frozen
    objects are skipped by it; output is flushed first and atexit handlers still run. A
    closed pipe on stdout (``| head``) ends the command quietly, as in other Unix tools.
    """
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `loopml versions --json | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.stderr.flush()
    gc.freeze()
    sys.exit(code)
