"""One context builder per dashboard page: plain functions of the store (and the config)
returning JSON-safe dicts. The HTML page renders the dict with its template; the page's JSON
twin (the same path with ``.json``) returns exactly the dict."""

from __future__ import annotations

from loopml.ui.pages.decisions import decision, decisions
from loopml.ui.pages.endpoint import endpoint
from loopml.ui.pages.overview import overview
from loopml.ui.pages.review import review
from loopml.ui.pages.version import version
from loopml.ui.pages.window import window

__all__ = ["decision", "decisions", "endpoint", "overview", "review", "version", "window"]
