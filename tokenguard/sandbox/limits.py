"""Token-bucket rate limits (per account and per resource), as on the Apify platform."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

#: Apify's global limit: 250,000 requests per minute per user.
DEFAULT_ACCOUNT_PER_MINUTE = 250_000


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second, holding at most ``capacity``; each request takes one."""

    rate: float
    capacity: float
    tokens: float
    stamp: float

    @classmethod
    def full(cls, rate: float, now: float, capacity: float | None = None) -> TokenBucket:
        """A bucket that starts full (a fresh client may burst up to ``capacity``)."""
        cap = rate if capacity is None else capacity
        return cls(rate, cap, cap, now)

    def take(self, now: float) -> bool:
        """Take one token at time ``now``; False when the bucket is empty (answer 429)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class RateLimiter:
    """The account bucket plus one bucket per (resource, limit) pair.

    ``account_limit`` is the account limit as the ``X-RateLimit-Limit`` header reports it
    (requests per minute by default, per second when ``account_per_second`` is given).

    ``clock`` (seconds, monotonic) is injectable so tests can freeze refills instead of
    racing real time.
    """

    def __init__(
        self,
        account_per_second: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        now = clock()
        if account_per_second is None:
            rate = DEFAULT_ACCOUNT_PER_MINUTE / 60
            self.account = TokenBucket.full(rate, now, DEFAULT_ACCOUNT_PER_MINUTE)
            self.account_limit = str(DEFAULT_ACCOUNT_PER_MINUTE)
        else:
            if not account_per_second > 0:
                raise ValueError("the rate limit must be positive")
            # Room for at least one request, or a limit under 1/s would refuse everything.
            capacity = max(1.0, account_per_second)
            self.account = TokenBucket.full(account_per_second, now, capacity)
            self.account_limit = f"{account_per_second:g}"
        self._resources: dict[tuple[str, int], TokenBucket] = {}

    def take_account(self) -> bool:
        """One request against the account-wide limit."""
        return self.account.take(self.clock())

    def take_resource(self, resource_id: str, rate: int) -> bool:
        """One request against ``resource_id``'s limit of ``rate`` requests/second."""
        key = (resource_id, rate)
        now = self.clock()
        bucket = self._resources.get(key)
        if bucket is None:
            bucket = self._resources[key] = TokenBucket.full(rate, now)
        return bucket.take(now)
