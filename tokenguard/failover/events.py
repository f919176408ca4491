"""Failover events: what the pool and the auth flow report, with fingerprints only.

Every event goes to the registered callbacks and to the ``tokenguard.failover`` logger. An
event never carries a secret or a URL (a URL may hold ``?token=``): only the method, the path
and token fingerprints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["EventKind", "EventListener", "FailoverEvent", "logger"]

logger = logging.getLogger("tokenguard.failover")


class EventKind(StrEnum):
    """What happened."""

    TOKEN_DEAD = "token-dead"  # a 401 killed a token
    FAILOVER = "failover"  # a request is resent with another token
    DENIED = "denied"  # a 403: the token lacks scope for this resource
    COOLDOWN = "cooldown"  # a 429: waiting on the same token
    RETRY = "retry"  # a 5xx or transport error: retrying after a backoff
    GAVE_UP = "gave-up"  # retries exhausted or the request is not safe to resend
    EXHAUSTED = "exhausted"  # no usable token left for a request
    RELOADED = "reloaded"  # the vault changed on disk and the pool re-read it


_LEVELS = {
    EventKind.TOKEN_DEAD: logging.WARNING,
    EventKind.FAILOVER: logging.INFO,
    EventKind.DENIED: logging.INFO,
    EventKind.COOLDOWN: logging.INFO,
    EventKind.RETRY: logging.INFO,
    EventKind.GAVE_UP: logging.WARNING,
    EventKind.EXHAUSTED: logging.ERROR,
    EventKind.RELOADED: logging.INFO,
}


@dataclass(frozen=True, slots=True)
class FailoverEvent:
    """One failover event. ``fingerprint`` is the token involved (None for pool events)."""

    kind: EventKind
    fingerprint: str | None = None
    next_fingerprint: str | None = None
    method: str | None = None
    path: str | None = None
    status: int | None = None
    error_type: str | None = None
    reason: str | None = None
    delay: float | None = None
    attempt: int | None = None

    @property
    def level(self) -> int:
        """The logging level this event is logged at."""
        return _LEVELS[self.kind]

    def describe(self) -> str:
        """A one-line, secret-free description."""
        parts = [self.kind.value]
        if self.method and self.path:
            parts.append(f"{self.method} {self.path}")
        if self.fingerprint:
            parts.append(f"token {self.fingerprint}")
        if self.next_fingerprint:
            parts.append(f"-> {self.next_fingerprint}")
        if self.status:
            parts.append(f"HTTP {self.status}" + (f" {self.error_type}" if self.error_type else ""))
        if self.delay is not None:
            parts.append(f"wait {self.delay:.3f}s")
        if self.attempt is not None:
            parts.append(f"retry {self.attempt}")
        if self.reason:
            parts.append(f"({self.reason})")
        return ": ".join(parts[:2]) + (" " + " ".join(parts[2:]) if len(parts) > 2 else "")


EventListener = Callable[[FailoverEvent], None]


def dispatch(event: FailoverEvent, listeners: list[EventListener]) -> None:
    """Log ``event`` and hand it to each listener; a failing listener never breaks a request."""
    if logger.isEnabledFor(event.level):
        logger.log(event.level, "%s", event.describe(), extra={"tokenguard_event": event})
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            logger.exception("failover event listener %r raised", listener)
