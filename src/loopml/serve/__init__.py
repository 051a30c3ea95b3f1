"""Serving: protocols, validation, routing (canary/shadow), micro-batching, prediction log.

``loopml.serve.create_app(settings)`` builds the ASGI app (imported lazily, so importing
this package stays cheap and creates nothing).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from loopml.serve.http.application import create_app

        return create_app
    if name == "Settings":
        from loopml.serve.settings import Settings

        return Settings
    raise AttributeError(name)
