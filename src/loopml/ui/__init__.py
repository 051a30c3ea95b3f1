"""The dashboard and the reports: server-rendered pages over the same library functions as
the HTTP API, each with a JSON twin, and self-contained HTML reports."""

from __future__ import annotations

from loopml.ui.app import create_ui, mount

__all__ = ["create_ui", "mount"]
