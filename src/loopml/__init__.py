"""loopml: a self-hosted, closed-loop MLOps system.

Nothing heavy is imported here so that ``loopml --help`` starts fast; import the
stage packages (``loopml.train``, ``loopml.serve`` ...) where you need them.
"""

__version__ = "0.1.0"
