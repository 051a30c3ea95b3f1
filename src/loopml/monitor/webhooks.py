"""Alert delivery to webhooks: JSON POST with retries and exponential backoff.

A delivery is tried ``retries + 1`` times; a connection error, a timeout, a 5xx or a 429 is
retried after ``backoff * 2**attempt`` seconds (capped at ``max_backoff``); any other 4xx is
final (the receiver refused the payload, retrying cannot help). Failures never raise: the
outcome of every URL is returned and stored with the alert.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Delivery:
    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 10.0
    timeout: float = 5.0


def _retryable(status: int) -> bool:
    return status >= 500 or status == 429


def post(url: str, payload: dict[str, Any], delivery: Delivery | None = None) -> dict[str, Any]:
    """POST ``payload`` to one URL; returns ``{url, ok, attempts, status, error}``."""
    d = delivery or Delivery()
    out: dict[str, Any] = {"url": url, "ok": False, "attempts": 0, "status": None, "error": None}
    with httpx.Client(timeout=d.timeout) as client:
        for attempt in range(d.retries + 1):
            out["attempts"] = attempt + 1
            try:
                r = client.post(url, json=payload, headers={"User-Agent": "loopml-monitor"})
                out["status"], out["error"] = r.status_code, None
                if r.status_code < 300:
                    out["ok"] = True
                    return out
                out["error"] = f"HTTP {r.status_code}: {r.text[:200]}"
                if not _retryable(r.status_code):
                    return out
            except httpx.HTTPError as exc:
                out["status"], out["error"] = None, f"{type(exc).__name__}: {exc}"
            if attempt < d.retries:
                time.sleep(min(d.backoff * 2**attempt, d.max_backoff))
    return out


def deliver(
    urls: list[str], payload: dict[str, Any], delivery: Delivery | None = None
) -> list[dict[str, Any]]:
    """Send one alert to every URL; the outcome per URL."""
    return [post(u, payload, delivery) for u in urls]
