"""Requests per user per minute, counted in this API process (a sliding window of hit times).

Several API processes each count their own share; docs/service.md says what a reverse proxy
in front adds (per-address request rates, connection counts).
"""

from __future__ import annotations

import threading
import time
from collections import deque


class RateLimiter:
    """At most `per_window` hits per key in any `window_s` seconds."""

    def __init__(self, per_window: int, window_s: float = 60.0):
        self.per_window = per_window
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _wait(self, hits: deque[float], now: float) -> float | None:
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        return hits[0] + self.window_s - now if len(hits) >= self.per_window else None

    def blocked(self, key: str) -> float | None:
        """Seconds until `key` may be served again, or None if it may now (nothing is counted)."""
        with self._lock:
            hits = self._hits.get(key)
            return self._wait(hits, time.monotonic()) if hits else None

    def hit(self, key: str) -> float | None:
        """Count a request of `key`; the seconds to wait instead if it is over the limit (not counted)."""
        now = time.monotonic()
        with self._lock:
            if len(self._hits) > 10_000:  # forget keys that went quiet, so the table stays small
                self._hits = {k: h for k, h in self._hits.items() if h and h[-1] > now - self.window_s}
            hits = self._hits.setdefault(key, deque())
            wait = self._wait(hits, now)
            if wait is None:
                hits.append(now)
            return wait
