"""FailoverAuth: one decision generator driving httpx's sync and async auth flows.

httpx's ``Auth`` generators cannot await, yet backoff must sleep with ``time.sleep`` in a
``Client`` and ``asyncio.sleep`` in an ``AsyncClient``. So the decision logic lives in one
generator, :meth:`FailoverAuth._flow`, which yields either a request to send or a
:class:`Sleep` instruction; :meth:`FailoverAuth.sync_auth_flow` and
:meth:`FailoverAuth.async_auth_flow` are thin drivers that perform the sleeps (and body reads)
in their own mode and pass everything else through.

httpx does not show transport errors (refused or dropped connections) to an auth flow: they
escape from the transport. :class:`FailoverTransport` wraps the real transport and hands such
an error to the flow inside a marker response, so retries of transport errors follow the same
rules as 5xx answers. :func:`failover_client` / :func:`failover_async_client` wire both up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass

import httpx

from tokenguard.errors import UsageError
from tokenguard.failover.backoff import Backoff
from tokenguard.failover.events import EventKind, FailoverEvent
from tokenguard.failover.pool import TokenPool, _Slot
from tokenguard.failover.routing import Access, resolve
from tokenguard.failover.transport import MARKER_STATUS as _MARKER_STATUS
from tokenguard.failover.transport import TRANSPORT_ERROR as _TRANSPORT_ERROR
from tokenguard.secrets import redact

__all__ = [
    "IDEMPOTENT",
    "FailoverAuth",
    "Sleep",
]

#: Request extension saying a request is safe to resend after it may have reached the server:
#: ``client.post(url, json=..., extensions={IDEMPOTENT: True})``. ``False`` forbids resending
#: even a GET after a 5xx or a dropped connection.
IDEMPOTENT = "tokenguard.idempotent"


# RFC 9110 idempotent methods: resending them cannot do a thing twice.
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# Transport errors raised before any byte of the request left: always safe to resend.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Transport errors a resend cannot fix.
_PERMANENT = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


@dataclass(frozen=True, slots=True)
class Sleep:
    """An instruction from the decision generator to its driver: wait ``seconds``."""

    seconds: float


def _error_info(response: httpx.Response) -> tuple[str | None, str]:
    """Apify's ``error.type`` and (redacted) message from an error response."""
    try:
        body = response.json()
    except ValueError:
        return None, ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        etype = err.get("type")
        return (str(etype) if etype is not None else None), redact(str(err.get("message", "")))
    return None, ""


_TOKEN_PARAM = re.compile(r"([?&]token=)[^&\s\"']*")


class _RedactTokenUrls(logging.Filter):
    """Removes ``?token=`` values from records of httpx's own request logging."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message or "apify_api_" in message:
            record.msg = redact(_TOKEN_PARAM.sub(r"\1<redacted>", message))
            record.args = ()
        return True


def _install_log_redaction() -> None:
    for name in ("httpx", "httpcore"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _RedactTokenUrls) for f in log.filters):
            log.addFilter(_RedactTokenUrls())


class FailoverAuth(httpx.Auth):
    """An ``httpx.Auth`` that sends each request with the pool's best token and fails over.

    - 401: the token is dead; the request is resent with the next token.
    - 403 ``insufficient-permissions``: resent with the next token whose recorded scope
      covers the request; the denial is remembered per (token, resource, permission).
    - 429: backoff on the same token (``Retry-After`` honoured); never a token switch.
    - 5xx and transport errors (with :class:`FailoverTransport`): bounded retries with
      backoff, but a request that may have reached the server is resent only when it is
      idempotent (RFC method, the :data:`IDEMPOTENT` extension, or
      ``retry_non_idempotent=True``).
    - Anything else (400, 402, 404, ...) passes straight through.

    Request bodies are buffered so they can be replayed (``buffer_streams=False`` refuses
    streamed bodies instead).
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        pool: TokenPool,
        *,
        backoff: Backoff | None = None,
        retry_non_idempotent: bool = False,
        buffer_streams: bool = True,
    ) -> None:
        self.pool = pool
        self.backoff = backoff or Backoff()
        self.retry_non_idempotent = retry_non_idempotent
        self.buffer_streams = buffer_streams
        _install_log_redaction()

    def __repr__(self) -> str:
        return f"FailoverAuth({self.pool!r})"

    # -- drivers ---------------------------------------------------------------------

    def _unreplayable(self, request: httpx.Request) -> bool:
        try:
            request.content  # noqa: B018 - raises RequestNotRead for an unread stream
        except httpx.RequestNotRead:
            if not self.buffer_streams:
                raise UsageError(
                    f"{request.method} {request.url.path}: the request body is a stream, which "
                    "FailoverAuth cannot replay on another token or after a retry.",
                    hint="Pass the body as bytes, or create FailoverAuth(buffer_streams=True).",
                ) from None
            return True
        return False

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Drive :meth:`_flow` for ``httpx.Client``: sleeps block the thread."""
        if self._unreplayable(request):
            request.read()
        flow = self._flow(request)
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    self.backoff.sleep_sync(step.seconds)
                    step = flow.send(None)
                    continue
                response = yield step
                if response.status_code >= 400:
                    response.read()
                step = flow.send(response)
        except StopIteration:
            return
        finally:
            flow.close()

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Drive :meth:`_flow` for ``httpx.AsyncClient``: sleeps await."""
        if self._unreplayable(request):
            await request.aread()
        flow = self._flow(request)
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    await self.backoff.sleep_async(step.seconds)
                    step = flow.send(None)
                    continue
                response = yield step
                if response.status_code >= 400:
                    await response.aread()
                step = flow.send(response)
        except StopIteration:
            return
        finally:
            flow.close()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """The synchronous flow (httpx calls the sync/async drivers directly)."""
        return self.sync_auth_flow(request)

    # -- the one decision generator ---------------------------------------------------

    def _flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request | Sleep, httpx.Response | None, None]:
        pool = self.pool
        backoff = self.backoff
        method = request.method
        path = request.url.path
        flag = request.extensions.get(IDEMPOTENT)
        if flag is None:
            idempotent = self.retry_non_idempotent or method in _IDEMPOTENT_METHODS
        else:
            idempotent = bool(flag)
        query_token = b"token=" in request.url.query and "token" in request.url.params
        # The scope model is consulted only once some token was refused something (403).
        access: Access | None = resolve(method, path) if pool._has_denials() else None
        rate_retries = 0
        error_retries = 0
        slot: _Slot | None = pool._acquire(access)
        try:
            while True:
                assert slot is not None
                request.headers["Authorization"] = slot.header
                if query_token:
                    request.url = request.url.copy_set_param("token", slot.raw)
                response = yield request
                assert response is not None
                status = response.status_code
                exc: Exception | None = None
                if status == _MARKER_STATUS:
                    exc = response.extensions.get(_TRANSPORT_ERROR)
                if exc is None:
                    if status < 400:
                        return
                    if status == 401:
                        etype, message = _error_info(response)
                        reason = f"HTTP 401 {etype or 'unauthorized'}" + (
                            f": {message}" if message else ""
                        )
                        if pool._mark_dead(slot, reason):
                            pool._emit(
                                FailoverEvent(
                                    EventKind.TOKEN_DEAD,
                                    slot.fingerprint,
                                    method=method,
                                    path=path,
                                    status=401,
                                    error_type=etype,
                                    reason=reason,
                                )
                            )
                        pool._release(slot)
                        old, slot = slot, None
                        slot = self._next(
                            old, access=access, method=method, path=path, status=401, etype=etype
                        )
                        continue
                    if status == 403:
                        etype, _ = _error_info(response)
                        if etype != "insufficient-permissions":
                            return
                        if access is None:
                            access = resolve(method, path)
                        if access is None:  # the scope model does not know this call
                            return
                        pool._deny(slot, access)
                        pool._emit(
                            FailoverEvent(
                                EventKind.DENIED,
                                slot.fingerprint,
                                method=method,
                                path=path,
                                status=403,
                                error_type=etype,
                                reason=f"lacks {access.needed}",
                            )
                        )
                        pool._release(slot)
                        old, slot = slot, None
                        slot = self._next(
                            old, access=access, method=method, path=path, status=403, etype=etype
                        )
                        continue
                    if status == 429:
                        rate_retries += 1
                        if rate_retries > backoff.max_retries:
                            self._gave_up(
                                slot, method, path, status, "rate limit retries exhausted"
                            )
                            return
                        delay = backoff.delay_for(rate_retries, response.headers.get("Retry-After"))
                        pool._cool(slot, delay)
                        pool._emit(
                            FailoverEvent(
                                EventKind.COOLDOWN,
                                slot.fingerprint,
                                method=method,
                                path=path,
                                status=429,
                                delay=delay,
                                attempt=rate_retries,
                            )
                        )
                        yield Sleep(delay)
                        if slot.dead:  # a 401 elsewhere killed it while we waited
                            pool._release(slot)
                            old, slot = slot, None
                            slot = self._next(
                                old, access=access, method=method, path=path, status=401, etype=None
                            )
                        continue
                    if status < 500 or status == 501:
                        return
                    reached = True
                elif isinstance(exc, _PERMANENT):
                    raise exc
                else:
                    reached = not isinstance(exc, _NOT_SENT)
                # A 5xx answer or a transport error.
                what = type(exc).__name__ if exc is not None else f"HTTP {status}"
                if reached and not idempotent:
                    self._gave_up(
                        slot,
                        method,
                        path,
                        status if exc is None else None,
                        f"{what}; not resent: {method} may have reached the server "
                        "(mark it idempotent to allow resending)",
                    )
                    if exc is not None:
                        raise exc
                    return
                error_retries += 1
                if error_retries > backoff.max_retries:
                    self._gave_up(
                        slot,
                        method,
                        path,
                        status if exc is None else None,
                        f"{what}; retries exhausted",
                    )
                    if exc is not None:
                        raise exc
                    return
                retry_after = response.headers.get("Retry-After") if exc is None else None
                delay = backoff.delay_for(error_retries, retry_after)
                pool._emit(
                    FailoverEvent(
                        EventKind.RETRY,
                        slot.fingerprint,
                        method=method,
                        path=path,
                        status=status if exc is None else None,
                        reason=what,
                        delay=delay,
                        attempt=error_retries,
                    )
                )
                yield Sleep(delay)
                if slot.dead:
                    pool._release(slot)
                    old, slot = slot, None
                    slot = self._next(
                        old, access=access, method=method, path=path, status=401, etype=None
                    )
        finally:
            if slot is not None:
                pool._release(slot)

    def _next(
        self,
        old: _Slot,
        *,
        access: Access | None,
        method: str,
        path: str,
        status: int,
        etype: str | None,
    ) -> _Slot:
        """The next token after ``old`` (already released); raises when none is left."""
        nxt = self.pool._acquire(access)
        self.pool._emit(
            FailoverEvent(
                EventKind.FAILOVER,
                old.fingerprint,
                next_fingerprint=nxt.fingerprint,
                method=method,
                path=path,
                status=status,
                error_type=etype,
            )
        )
        return nxt

    def _gave_up(
        self, slot: _Slot, method: str, path: str, status: int | None, reason: str
    ) -> None:
        self.pool._emit(
            FailoverEvent(
                EventKind.GAVE_UP,
                slot.fingerprint,
                method=method,
                path=path,
                status=status,
                reason=reason,
            )
        )
