"""FailoverAuth: one decision generator driving httpx's sync and async auth flows.

httpx's ``Auth`` generators cannot await, yet backoff must sleep with ``time.sleep`` in a
``Client`` and ``asyncio.sleep`` in an ``AsyncClient``. So the decisions live in one
generator, :func:`tokenguard.failover.flow.decide`, which yields either the token to send the
next attempt with or a :class:`Sleep` instruction; :meth:`FailoverAuth.sync_auth_flow` and
:meth:`FailoverAuth.async_auth_flow` are thin drivers that set the header, read error bodies
and sleep in their own mode. Every ``error.type`` read comes from the response body, so the
drivers read the body of error responses (small JSON) and never of successful ones (which may
be streamed by the caller).

httpx does not show transport errors (refused or dropped connections) to an auth flow: they
escape from the transport. :class:`FailoverTransport` wraps the real transport and hands such
an error to the flow inside a marker response, so retries of transport errors follow the same
rules as 5xx answers. :func:`failover_client` / :func:`failover_async_client` wire both up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, Generator

import httpx

from tokenguard.api.client import apify_error
from tokenguard.errors import UsageError
from tokenguard.failover.backoff import Backoff
from tokenguard.failover.flow import IDEMPOTENT_METHODS, SUCCESS, Outcome, Sleep, decide
from tokenguard.failover.pool import TokenPool, _Slot
from tokenguard.failover.transport import MARKER_STATUS, TRANSPORT_ERROR
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


# Transport errors raised before any byte of the request left: always safe to resend.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Transport errors a resend cannot fix.
_PERMANENT = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


def _error_info(response: httpx.Response) -> tuple[str | None, str]:
    """Apify's ``error.type`` and (redacted) message from an error response."""
    try:
        return apify_error(response.json())
    except ValueError:
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
    streamed bodies instead). Transport errors reach the flow only through
    :class:`~tokenguard.failover.transport.FailoverTransport`; without it they propagate
    unretried. :func:`~tokenguard.failover.clients.failover_client` sets up both.
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

    def _start(self, request: httpx.Request) -> Generator[_Slot | Sleep, Outcome | None, None]:
        flag = request.extensions.get(IDEMPOTENT)
        method = request.method
        if flag is None:
            idempotent = self.retry_non_idempotent or method in IDEMPOTENT_METHODS
        else:
            idempotent = bool(flag)
        return decide(self.pool, self.backoff, method, request.url, idempotent=idempotent)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Drive :func:`~tokenguard.failover.flow.decide` for ``httpx.Client``."""
        if self._unreplayable(request):
            request.read()
        _drop_query_token(request)
        flow = self._start(request)
        last: httpx.Response | None = None
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    self.backoff.sleep_sync(step.seconds)
                    step = flow.send(None)
                    continue
                request.headers["Authorization"] = step.header
                last = yield request
                if last.status_code >= 400:
                    last.read()
                step = flow.send(_outcome(last))
        except StopIteration:
            if last is not None:
                _raise_transport_error(last)
            return
        finally:
            flow.close()

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Drive :func:`~tokenguard.failover.flow.decide` for ``httpx.AsyncClient``."""
        if self._unreplayable(request):
            await request.aread()
        _drop_query_token(request)
        flow = self._start(request)
        last: httpx.Response | None = None
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    await self.backoff.sleep_async(step.seconds)
                    step = flow.send(None)
                    continue
                request.headers["Authorization"] = step.header
                last = yield request
                if last.status_code >= 400:
                    await last.aread()
                step = flow.send(_outcome(last))
        except StopIteration:
            if last is not None:
                _raise_transport_error(last)
            return
        finally:
            flow.close()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """The synchronous flow (httpx calls the sync/async drivers directly)."""
        return self.sync_auth_flow(request)


def _drop_query_token(request: httpx.Request) -> None:
    """Remove a ``?token=`` (the API's other auth form): the pool's header replaces it.

    Dropping it rather than swapping in the pool's token keeps tokens out of every URL the
    request is sent with, so none can reach a log line, a proxy or an exception message.
    """
    if b"token=" in request.url.query and "token" in request.url.params:
        request.url = request.url.copy_remove_param("token")


def _outcome(response: httpx.Response) -> Outcome:
    status = response.status_code
    if status < 400:
        return SUCCESS
    if status == MARKER_STATUS:
        error = response.extensions.get(TRANSPORT_ERROR)
        if isinstance(error, Exception):
            return Outcome(
                0,
                error=error,
                sent=not isinstance(error, _NOT_SENT),
                permanent=isinstance(error, _PERMANENT),
            )
    if status in (401, 403):
        etype, message = _error_info(response)
        return Outcome(status, error_type=etype, message=message)
    return Outcome(status, retry_after=response.headers.get("Retry-After"))


def _raise_transport_error(response: httpx.Response) -> None:
    """The flow gave up on a transport error: the caller gets the original exception."""
    if response.status_code == MARKER_STATUS:
        error = response.extensions.get(TRANSPORT_ERROR)
        if isinstance(error, Exception):
            raise error
