"""Example projects shipped with loopml (``loopml demo`` and ``loopml init`` copy them)."""
