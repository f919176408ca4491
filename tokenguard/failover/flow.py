"""The failover decision flow: one generator, independent of the HTTP library.

:func:`decide` holds every rule of issue 5 (401 -> next token, 403 -> a token whose scope
covers the call, 429 -> backoff on the same token, 5xx/transport -> bounded retries of
idempotent requests, everything else passes through). It yields either the token slot to send
the next attempt with, or a :class:`Sleep` instruction; it receives an :class:`Outcome` for
each attempt. When it returns, the driver hands the last attempt's result to the caller (the
response, or the transport error re-raised). Drivers exist for httpx (sync and async, in
:mod:`tokenguard.failover.auth`) and for apify-client's Impit clients
(:mod:`tokenguard.failover.apify`): the I/O, the sleeping and the body reading are theirs,
the decisions are all here.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Protocol

from tokenguard.failover.backoff import Backoff
from tokenguard.failover.events import EventKind, FailoverEvent
from tokenguard.failover.pool import TokenPool, _Slot
from tokenguard.failover.routing import Access, resolve

__all__ = ["IDEMPOTENT_METHODS", "SUCCESS", "HasPath", "Outcome", "Sleep", "decide"]

# RFC 9110 idempotent methods: resending them cannot do a thing twice.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


@dataclass(frozen=True, slots=True)
class Sleep:
    """An instruction from the decision flow to its driver: wait ``seconds``."""

    seconds: float


class Outcome:
    """What one attempt produced, as the driver saw it.

    ``status`` is the HTTP status (0 for a transport error); ``error_type`` and ``message``
    come from Apify's error body (read by the driver for 401 and 403 only);
    ``retry_after`` is the ``Retry-After`` header. For a transport error, ``error`` is the
    exception, ``sent`` says whether the request may have reached the server (False for a
    refused connection) and ``permanent`` whether no resend can fix it.
    """

    __slots__ = ("error", "error_type", "message", "permanent", "retry_after", "sent", "status")

    def __init__(
        self,
        status: int = 0,
        *,
        error_type: str | None = None,
        message: str = "",
        retry_after: str | None = None,
        error: BaseException | None = None,
        sent: bool = True,
        permanent: bool = False,
    ) -> None:
        self.status = status
        self.error_type = error_type
        self.message = message
        self.retry_after = retry_after
        self.error = error
        self.sent = sent
        self.permanent = permanent


class HasPath(Protocol):
    """Where the request goes: anything with a URL ``path`` (``httpx.URL`` has one)."""

    @property
    def path(self) -> str:
        """The URL path, e.g. ``/v2/acts``."""
        ...


def decide(
    pool: TokenPool,
    backoff: Backoff,
    method: str,
    target: HasPath,
    *,
    idempotent: bool,
) -> Generator[_Slot | Sleep, Outcome | None, None]:
    """The decisions for one request (see the module docstring).

    ``target.path`` is read only when needed (403 routing, events): decoding a URL path costs
    more than the rest of a request's happy path.
    """
    # The scope model is consulted only once some token was refused something (403).
    access: Access | None = resolve(method, target.path) if pool._has_denials() else None
    rate_retries = 0
    error_retries = 0
    slot: _Slot | None = pool._acquire(access)
    try:
        while True:
            assert slot is not None
            outcome = yield slot
            assert outcome is not None
            status = outcome.status
            error = outcome.error
            if error is None:
                if status < 400:
                    return
                if status == 401:
                    etype = outcome.error_type
                    reason = f"HTTP 401 {etype or 'unauthorized'}" + (
                        f": {outcome.message}" if outcome.message else ""
                    )
                    if pool._mark_dead(slot, reason):
                        _event(
                            pool, EventKind.TOKEN_DEAD, slot, method, target.path,
                            status=401, error_type=etype, reason=reason,
                        )  # fmt: skip
                    pool._release(slot)
                    old, slot = slot, None
                    slot = _next(pool, old, access, method, target.path, 401, etype)
                    continue
                if status == 403:
                    etype = outcome.error_type
                    if etype != "insufficient-permissions":
                        return
                    if access is None:
                        access = resolve(method, target.path)
                    if access is None:  # the scope model does not know this call
                        return
                    pool._deny(slot, access)
                    _event(
                        pool, EventKind.DENIED, slot, method, target.path,
                        status=403, error_type=etype, reason=f"lacks {access.needed}",
                    )  # fmt: skip
                    pool._release(slot)
                    old, slot = slot, None
                    slot = _next(pool, old, access, method, target.path, 403, etype)
                    continue
                if status == 429:
                    # Rate limits are per account: another token is no remedy and would look
                    # like quota evasion. Wait on the same token.
                    rate_retries += 1
                    if rate_retries > backoff.max_retries:
                        _event(
                            pool, EventKind.GAVE_UP, slot, method, target.path,
                            status=429, reason="rate limit retries exhausted",
                        )  # fmt: skip
                        return
                    delay = backoff.delay_for(rate_retries, outcome.retry_after)
                    pool._cool(slot, delay)
                    _event(
                        pool, EventKind.COOLDOWN, slot, method, target.path,
                        status=429, delay=delay, attempt=rate_retries,
                    )  # fmt: skip
                    yield Sleep(delay)
                    if slot.dead:  # a 401 elsewhere killed it while we waited
                        pool._release(slot)
                        old, slot = slot, None
                        slot = _next(pool, old, access, method, target.path, 401, None)
                    continue
                if status < 500 or status == 501:
                    return  # 400, 402, 404, ...: no token or retry can fix these
            elif outcome.permanent:
                return
            # A 5xx answer or a transport error.
            what = type(error).__name__ if error is not None else f"HTTP {status}"
            if outcome.sent and not idempotent:
                _event(
                    pool, EventKind.GAVE_UP, slot, method, target.path,
                    status=status or None,
                    reason=f"{what}; not resent: {method} may have reached the server "
                    "(mark it idempotent to allow resending)",
                )  # fmt: skip
                return
            error_retries += 1
            if error_retries > backoff.max_retries:
                _event(
                    pool, EventKind.GAVE_UP, slot, method, target.path,
                    status=status or None, reason=f"{what}; retries exhausted",
                )  # fmt: skip
                return
            delay = backoff.delay_for(error_retries, outcome.retry_after)
            _event(
                pool, EventKind.RETRY, slot, method, target.path,
                status=status or None, reason=what, delay=delay, attempt=error_retries,
            )  # fmt: skip
            yield Sleep(delay)
            if slot.dead:
                pool._release(slot)
                old, slot = slot, None
                slot = _next(pool, old, access, method, target.path, 401, None)
    finally:
        if slot is not None:
            pool._release(slot)


#: The outcome drivers pass for any status below 400 (shared: the flow only reads ``status``).
SUCCESS = Outcome(200)


def _event(
    pool: TokenPool,
    kind: EventKind,
    slot: _Slot,
    method: str,
    path: str,
    *,
    next_fingerprint: str | None = None,
    status: int | None = None,
    error_type: str | None = None,
    reason: str | None = None,
    delay: float | None = None,
    attempt: int | None = None,
) -> None:
    """Emit a ``kind`` event about ``slot``'s token for the request ``method path``.

    A module-level function rather than a closure in :func:`decide`: a closure would be built
    (with cells for what it captures) on every request, including the successful ones.
    """
    pool._emit(
        FailoverEvent(
            kind,
            slot.fingerprint,
            next_fingerprint=next_fingerprint,
            method=method,
            path=path,
            status=status,
            error_type=error_type,
            reason=reason,
            delay=delay,
            attempt=attempt,
        )
    )


def _next(  # noqa: PLR0917 - internal helper, called positionally
    pool: TokenPool,
    old: _Slot,
    access: Access | None,
    method: str,
    path: str,
    status: int,
    etype: str | None,
) -> _Slot:
    """The next token after ``old`` (already released); raises when none is left."""
    nxt = pool._acquire(access)
    _event(
        pool, EventKind.FAILOVER, old, method, path,
        next_fingerprint=nxt.fingerprint, status=status, error_type=etype,
    )  # fmt: skip
    return nxt
