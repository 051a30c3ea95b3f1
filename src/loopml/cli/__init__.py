"""The ``loopml`` command line: parses arguments, calls the library, prints the result.

No logic lives here. Imports are lazy so that ``loopml --help`` starts fast. A
``LoopmlError`` becomes a one-paragraph message on stderr and its exit code; any other
exception is a failure in the user's code or in loopml. Exit codes (``EXIT_CODES``): 0 ok
(``run``: registered), 1 rejected by the gates (or a conflict / refused artifact), 2 usage or
config error (a version, endpoint, run or key not found too), 3 a failure in the user's code or in loopml (``LOOPML_DEBUG=1`` shows the
traceback).

``parser`` holds every command's arguments; the handlers live in modules by what they
act on (``registry``, ``traffic``, ``keys``, ``monitoring``, ``project``, ``describe``,
``backtest``, ``explaining``) and register
themselves in ``common.COMMANDS`` when imported.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Sequence

from loopml.cli import apikeys as keys
from loopml.cli import backtesting as backtest
from loopml.cli import describe, explaining, project, scoring, traffic
from loopml.cli import runs as registry
from loopml.cli import scheduled as monitoring
from loopml.cli.commands import COMMANDS
from loopml.cli.parser import build_parser

__all__ = ["COMMANDS", "EXIT_CODES", "NOT_FOUND", "build_parser", "entry", "main"]

EXIT_CODES = {
    0: "ok (loopml run: registered as a candidate)",
    1: "rejected by the gates (or a conflict, or a refused artifact)",
    2: "usage or config error (nothing was trained), or a version, endpoint or key not found",
    3: "a failure in your code (training function, data function) or in loopml",
}

# Imported for their side effect: each module's @command handlers fill COMMANDS.
_COMMAND_MODULES = (
    backtest,
    describe,
    explaining,
    keys,
    monitoring,
    project,
    registry,
    scoring,
    traffic,
)
NOT_FOUND = 2  # a usage error: the command was right, the thing is not there


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from loopml.errors import LoopmlError, NotFoundError

    try:
        return COMMANDS[args.command](args)
    except NotFoundError as e:  # its own words: the command was right, the thing is not there
        print(f"not found: {e.message}", file=sys.stderr)
        return NOT_FOUND
    except LoopmlError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout left (`| head`): entry() ends quietly
        raise
    except Exception as e:  # not a verdict and not bad input: a crash, exit 3 (EXIT_CODES)
        if os.environ.get("LOOPML_DEBUG"):
            raise
        print(
            f"error: loopml {args.command} failed with {type(e).__name__}: {e}. This is a "
            "failure in your code or in loopml, not a verdict of the gates; run again with "
            "LOOPML_DEBUG=1 for the traceback.",
            file=sys.stderr,
        )
        return 3


def entry() -> None:
    """The console script: ``main``, then leave without the interpreter's teardown.

    The teardown costs and risks, with nothing left to do: after a training run its last full
    garbage collection walked scikit-learn, SciPy and pandas for 0.6-0.7 s (measured), and
    Arrow's native thread pools, torn down at exit with a reader thread still alive, abort the
    process (``terminate called without an active exception``, exit 134, after the work was
    done and printed: seen once in the suite after ``loopml score``; apache/arrow#34314). So
    output is flushed, the ``atexit`` handlers run (logging's, Ray's, multiprocessing's) and the
    process ends with ``os._exit``. A command returns when its work is done: the threads left
    then are idle pool workers (``concurrent.futures``), which the interpreter's exit would only
    have told to stop. A closed pipe on stdout (``| head``) ends the command quietly, as in
    other Unix tools.
    """
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `loopml versions --json | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
