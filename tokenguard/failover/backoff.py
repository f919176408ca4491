"""Backoff timing for failover retries, with a test mode so tests never sleep.

Apify's guidance (DESIGN §1): back off from 500 ms, randomised, doubling. ``Retry-After`` is
honoured when the server sends it. Like stamina, a process-wide test mode turns every sleep
into a no-op while the delays are still computed (and reported in events), so a test suite
exercising thousands of 429s runs in no time.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = [
    "Backoff",
    "is_testing",
    "parse_retry_after",
    "set_testing",
    "sleepless",
]

_testing = threading.Event()


def set_testing(on: bool) -> None:
    """Turn the test mode on or off process-wide: backoff sleeps return at once."""
    if on:
        _testing.set()
    else:
        _testing.clear()


def is_testing() -> bool:
    """True while the test mode is on."""
    return _testing.is_set()


@contextmanager
def sleepless(on: bool = True) -> Iterator[None]:
    """Context manager form of :func:`set_testing`; restores the previous mode on exit."""
    before = is_testing()
    set_testing(on)
    try:
        yield
    finally:
        set_testing(before)


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before retrying, and how many retries a request gets.

    ``delay(n)`` for the n-th retry (1-based) is ``base * factor**(n-1)`` scaled by a random
    factor in ``[1, 1 + jitter]`` and capped at ``max_delay``. ``max_retries`` bounds the
    retries of one request separately for rate limits (429) and for server or transport
    errors. ``sleep``/``async_sleep`` can be injected (a fake clock); by default they are
    :func:`time.sleep` and :func:`asyncio.sleep`, skipped while the test mode is on.
    """

    base: float = 0.5
    factor: float = 2.0
    jitter: float = 1.0
    max_delay: float = 30.0
    max_retries: int = 6
    max_retry_after: float = 120.0
    sleep: Callable[[float], None] | None = None
    async_sleep: Callable[[float], Awaitable[None]] | None = None

    def delay(self, retry: int) -> float:
        """Seconds to wait before the ``retry``-th retry (1-based)."""
        raw = self.base * self.factor ** max(retry - 1, 0)
        return min(raw * random.uniform(1.0, 1.0 + self.jitter), self.max_delay)

    def delay_for(self, retry: int, retry_after: str | None) -> float:
        """Like :meth:`delay`, but a valid ``Retry-After`` header value wins (capped)."""
        if retry_after is not None:
            seconds = parse_retry_after(retry_after)
            if seconds is not None:
                return min(seconds, self.max_retry_after)
        return self.delay(retry)

    def sleep_sync(self, seconds: float) -> None:
        """Block for ``seconds`` (not at all in test mode)."""
        if self.sleep is not None:
            self.sleep(seconds)
        elif not _testing.is_set() and seconds > 0:
            time.sleep(seconds)

    async def sleep_async(self, seconds: float) -> None:
        """Wait for ``seconds`` without blocking the loop (not at all in test mode)."""
        if self.async_sleep is not None:
            await self.async_sleep(seconds)
        elif not _testing.is_set() and seconds > 0:
            await asyncio.sleep(seconds)


def parse_retry_after(value: str) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds or HTTP date); None if invalid."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(seconds, 0.0)
