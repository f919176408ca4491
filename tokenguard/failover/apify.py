"""The apify-client adapter: a real ``ApifyClient`` whose requests fail over across a pool.

``apify_client(pool, api_url=...)`` builds an ``ApifyClient`` with
``ApifyClient.with_custom_http_client`` and :class:`FailoverHttpClient`, a subclass of
apify-client's own default transport (``ImpitHttpClient``) whose ``send_request`` runs the
same decision flow as :class:`~tokenguard.failover.auth.FailoverAuth`
(:func:`tokenguard.failover.flow.decide`): the ``Authorization`` header (and a ``?token=``
query parameter, if any) is set per attempt from the pool. Keeping Impit underneath means the
adapter costs what apify-client's default client costs, plus the flow's few microseconds.
:class:`FailoverHttpClientAsync` is the twin for ``ApifyClientAsync``.

Retries: apify-client has its own retry loop for 429, 5xx and transport errors (4 retries,
500 ms doubling). Left on, it would multiply with tokenguard's (each of its attempts running a
full failover loop: up to 5 x 7 attempts) and it resends POSTs that may have reached the
server. The adapter turns apify-client's loop off (``max_retries=0``) and lets tokenguard do
all the retrying with the same timing: one loop, one set of rules (including "a POST is not
resent after a 5xx or a dropped connection unless the client was built with
``retry_non_idempotent=True``").

This module needs the ``apify`` extra (``pip install 'tokenguard[apify]'``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

try:
    import impit
    from apify_client import ApifyClient, ApifyClientAsync
    from apify_client.http_clients import (
        HttpResponse,
        ImpitHttpClient,
        ImpitHttpClientAsync,
    )
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    from tokenguard.errors import ConfigError

    raise ConfigError(
        "The apify-client adapter needs the apify-client package.",
        hint="Install the extra: pip install 'tokenguard[apify]'.",
    ) from exc

from tokenguard.api.client import apify_error
from tokenguard.failover.backoff import Backoff
from tokenguard.failover.flow import IDEMPOTENT_METHODS, SUCCESS, Outcome, Sleep, decide
from tokenguard.failover.pool import TokenPool, _Slot

__all__ = [
    "FailoverHttpClient",
    "FailoverHttpClientAsync",
    "apify_client",
    "apify_client_async",
]

_DEFAULT_API_URL = "https://api.apify.com"
_NOT_SENT = (impit.ConnectError, impit.ConnectTimeout, impit.PoolTimeout)
_PERMANENT = (
    impit.LocalProtocolError,
    impit.UnsupportedProtocol,
    impit.TooManyRedirects,
    impit.HTTPStatusError,
)


def _init_kwargs(
    headers: dict[str, str] | None,
    user_agent_suffix: str | list[str] | None,
    timeouts: dict[str, timedelta],
) -> dict[str, Any]:
    suffix = [user_agent_suffix] if isinstance(user_agent_suffix, str) else user_agent_suffix
    # max_retries=0: the failover flow is the only retry loop (see the module docstring).
    return {
        "token": None,
        "max_retries": 0,
        "headers": headers,
        "user_agent_suffix": ["tokenguard", *(suffix or [])],
        **timeouts,
    }


class _Attempts:
    """What the sync and async clients share: the request's shape and per-attempt headers."""

    __slots__ = ("headers", "idempotent", "method", "url")

    def __init__(self, method: str, url: str, headers: dict[str, str], retry_any: bool) -> None:
        self.method = method.upper()
        # A ``?token=`` (the API's other auth form) is dropped: the pool's header replaces it,
        # and no URL sent carries a token. Cheap first: only a URL mentioning "token=" is parsed.
        if "token=" in url:
            parts = urlsplit(url)
            query = parse_qsl(parts.query, keep_blank_values=True)
            if any(k == "token" for k, _ in query):
                kept = urlencode([(k, v) for k, v in query if k != "token"])
                url = urlunsplit(parts._replace(query=kept))
        self.url = url
        for key in headers:
            if len(key) == 13 and key.lower() == "authorization":  # ours replaces any other
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                break
        self.headers = headers
        self.idempotent = retry_any or self.method in IDEMPOTENT_METHODS

    @property
    def path(self) -> str:
        """The URL path (for 403 routing and events only)."""
        return urlsplit(self.url).path

    def for_slot(self, slot: _Slot) -> tuple[str, dict[str, str]]:
        """The URL and headers of an attempt with ``slot``'s token."""
        headers = self.headers.copy()
        headers["Authorization"] = slot.header
        return self.url, headers


#: The decision flow of one request, as :func:`decide` returns it.
_Flow = Generator[_Slot | Sleep, Outcome | None, None]


def _error_outcome(exc: Exception) -> Outcome:
    return Outcome(
        0,
        error=exc,
        sent=not isinstance(exc, _NOT_SENT),
        permanent=isinstance(exc, _PERMANENT),
    )


def _response_outcome(response: HttpResponse) -> Outcome:
    """The outcome of a response whose body (if an error) has been read."""
    status = response.status_code
    if status < 400:
        return SUCCESS
    if status in (401, 403):
        try:
            etype, message = apify_error(response.json())
        except ValueError:
            etype, message = None, ""
        return Outcome(status, error_type=etype, message=message)
    headers = response.headers
    return Outcome(status, retry_after=headers.get("retry-after") or headers.get("Retry-After"))


class _Failover:
    """What both clients share: the pool, the retry settings and the constructor.

    A mixin listed before the Impit client, so that its ``__init__`` and
    ``is_retryable_transport_error`` come first and ``super().__init__`` reaches Impit's.
    """

    def __init__(
        self,
        pool: TokenPool,
        *,
        backoff: Backoff | None = None,
        retry_non_idempotent: bool = False,
        headers: dict[str, str] | None = None,
        user_agent_suffix: str | list[str] | None = None,
        **timeouts: timedelta,
    ) -> None:
        super().__init__(**_init_kwargs(headers, user_agent_suffix, timeouts))
        self.pool = pool
        self.backoff = backoff or Backoff()
        self.retry_non_idempotent = retry_non_idempotent

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pool!r})"

    def is_retryable_transport_error(self, exc: Exception) -> bool:
        """Never: the failover flow has already retried what was safe to retry."""
        return False

    def _start(self, method: str, url: str, headers: dict[str, str]) -> tuple[_Attempts, _Flow]:
        """The request's shape and its decision flow (not started yet)."""
        shape = _Attempts(method, url, headers, self.retry_non_idempotent)
        flow = decide(self.pool, self.backoff, shape.method, shape, idempotent=shape.idempotent)
        return shape, flow


def _result(last: impit.Response | None, error: Exception | None) -> impit.Response:
    """What a finished flow hands back: the last response, or the last transport error."""
    if error is not None:
        raise error from None
    assert last is not None
    return last


class FailoverHttpClient(_Failover, ImpitHttpClient):
    """apify-client's default (Impit) transport, failing over across a :class:`TokenPool`."""

    def send_request(
        self,
        *,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | Iterator[bytes] | None,
        timeout: float | None,
        stream: bool,
    ) -> impit.Response:
        """Send with the pool's best token, failing over and retrying per the flow."""
        if content is not None and not isinstance(content, bytes):
            content = b"".join(content)  # buffered, so every attempt can resend it
        shape, flow = self._start(method, url, headers)
        send = super().send_request
        last: impit.Response | None = None
        error: Exception | None = None
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    self.backoff.sleep_sync(step.seconds)
                    step = flow.send(None)
                    continue
                if last is not None:
                    last.close()
                attempt_url, attempt_headers = shape.for_slot(step)
                try:
                    last = send(
                        method=method,
                        url=attempt_url,
                        headers=attempt_headers,
                        content=content,
                        timeout=timeout,
                        stream=stream,
                    )
                except impit.HTTPError as exc:
                    last, error = None, exc
                    step = flow.send(_error_outcome(exc))
                    continue
                error = None
                if last.status_code >= 400:
                    last.read()
                step = flow.send(_response_outcome(last))
        except StopIteration:
            return _result(last, error)
        finally:
            flow.close()


class FailoverHttpClientAsync(_Failover, ImpitHttpClientAsync):
    """apify-client's default async (Impit) transport, failing over across a pool."""

    async def send_request(
        self,
        *,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | AsyncIterator[bytes] | None,
        timeout: float | None,
        stream: bool,
    ) -> impit.Response:
        """Send with the pool's best token, failing over and retrying per the flow."""
        if content is not None and not isinstance(content, bytes):
            content = b"".join([chunk async for chunk in content])
        shape, flow = self._start(method, url, headers)
        send = super().send_request
        last: impit.Response | None = None
        error: Exception | None = None
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    await self.backoff.sleep_async(step.seconds)
                    step = flow.send(None)
                    continue
                if last is not None:
                    await last.aclose()
                attempt_url, attempt_headers = shape.for_slot(step)
                try:
                    last = await send(
                        method=method,
                        url=attempt_url,
                        headers=attempt_headers,
                        content=content,
                        timeout=timeout,
                        stream=stream,
                    )
                except impit.HTTPError as exc:
                    last, error = None, exc
                    step = flow.send(_error_outcome(exc))
                    continue
                error = None
                if last.status_code >= 400:
                    await last.aread()
                step = flow.send(_response_outcome(last))
        except StopIteration:
            return _result(last, error)
        finally:
            flow.close()


def apify_client(
    pool: TokenPool,
    *,
    api_url: str = _DEFAULT_API_URL,
    api_public_url: str | None = None,
    backoff: Backoff | None = None,
    retry_non_idempotent: bool = False,
    **kwargs: Any,
) -> ApifyClient:
    """A real ``ApifyClient`` whose requests fail over across ``pool``.

    ``kwargs`` go to :class:`FailoverHttpClient` (``headers``, ``user_agent_suffix``,
    ``timeout_short`` ... ``timeout_max``).
    """
    http = FailoverHttpClient(
        pool, backoff=backoff, retry_non_idempotent=retry_non_idempotent, **kwargs
    )
    return ApifyClient.with_custom_http_client(
        api_url=api_url, api_public_url=api_public_url or api_url, http_client=http
    )


def apify_client_async(
    pool: TokenPool,
    *,
    api_url: str = _DEFAULT_API_URL,
    api_public_url: str | None = None,
    backoff: Backoff | None = None,
    retry_non_idempotent: bool = False,
    **kwargs: Any,
) -> ApifyClientAsync:
    """A real ``ApifyClientAsync`` whose requests fail over across ``pool``."""
    http = FailoverHttpClientAsync(
        pool, backoff=backoff, retry_non_idempotent=retry_non_idempotent, **kwargs
    )
    return ApifyClientAsync.with_custom_http_client(
        api_url=api_url, api_public_url=api_public_url or api_url, http_client=http
    )
