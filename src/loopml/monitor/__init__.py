"""Monitoring: windowed jobs over the prediction log and labels, estimation, alerts.

``run_monitor(cfg, store)`` is one pass (``loopml monitor``); ``queries`` holds what the
dashboard and the controller read.
"""

from loopml.monitor.jobs import run_monitor

__all__ = ["run_monitor"]
