"""The apify-client adapter: a real ``ApifyClient`` whose requests fail over across a pool.

``apify_client(pool, api_url=...)`` builds an ``ApifyClient`` with
``ApifyClient.with_custom_http_client`` and a custom ``HttpClient`` that sends every attempt
through an httpx client carrying :class:`~tokenguard.failover.auth.FailoverAuth` (the
``Authorization`` header is set per attempt from the pool) and
:class:`~tokenguard.failover.transport.FailoverTransport`.

Retries: apify-client has its own retry loop for 429, 5xx and transport errors (4 retries,
500 ms doubling). Left on, it would multiply with tokenguard's (each of its attempts running a
full failover loop) and would resend a POST that may have reached the server. The adapter
therefore turns apify-client's loop off (``max_retries=0``) and lets tokenguard do all the
retrying with the same timing: one loop, one set of rules (including "a POST is not resent
unless marked idempotent").

This module needs the ``apify`` extra (``pip install 'tokenguard[apify]'``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx

try:
    from apify_client import ApifyClient, ApifyClientAsync
    from apify_client.http_clients import HttpClient, HttpClientAsync
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    from tokenguard.errors import ConfigError

    raise ConfigError(
        "The apify-client adapter needs the apify-client package.",
        hint="Install the extra: pip install 'tokenguard[apify]'.",
    ) from exc

from tokenguard.failover.auth import FailoverAuth
from tokenguard.failover.backoff import Backoff
from tokenguard.failover.pool import TokenPool
from tokenguard.failover.transport import FailoverTransport

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

__all__ = [
    "FailoverHttpClient",
    "FailoverHttpClientAsync",
    "apify_client",
    "apify_client_async",
]

_DEFAULT_API_URL = "https://api.apify.com"


def _base_kwargs(
    headers: dict[str, str] | None,
    user_agent_suffix: str | list[str] | None,
    timeouts: dict[str, timedelta],
) -> dict[str, Any]:
    # max_retries=0: tokenguard's FailoverAuth is the only retry loop (see module docstring).
    return {
        "token": None,
        "max_retries": 0,
        "headers": headers,
        "user_agent_suffix": [
            "tokenguard",
            *(
                [user_agent_suffix]
                if isinstance(user_agent_suffix, str)
                else (user_agent_suffix or [])
            ),
        ],
        **timeouts,
    }


class FailoverHttpClient(HttpClient):
    """apify-client ``HttpClient`` whose attempts fail over across a :class:`TokenPool`."""

    def __init__(
        self,
        pool: TokenPool,
        *,
        backoff: Backoff | None = None,
        retry_non_idempotent: bool = False,
        transport: httpx.BaseTransport | None = None,
        headers: dict[str, str] | None = None,
        user_agent_suffix: str | list[str] | None = None,
        **timeouts: timedelta,
    ) -> None:
        super().__init__(**_base_kwargs(headers, user_agent_suffix, timeouts))
        self.auth = FailoverAuth(pool, backoff=backoff, retry_non_idempotent=retry_non_idempotent)
        self._httpx = httpx.Client(
            auth=self.auth,
            transport=FailoverTransport(transport or httpx.HTTPTransport()),
            follow_redirects=True,
            event_hooks={"response": [self._clear_cookies]},
        )

    def _clear_cookies(self, _response: httpx.Response) -> None:
        # Server cookies must not ride along on later API requests (as apify-client does).
        self._httpx.cookies.clear()

    def is_timeout_error(self, exc: Exception) -> bool:
        """Python's and httpx's timeouts."""
        return isinstance(exc, (TimeoutError, httpx.TimeoutException))

    def is_retryable_transport_error(self, exc: Exception) -> bool:
        """Never: FailoverAuth has already retried what was safe to retry."""
        return False

    def send_request(
        self,
        *,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | Iterator[bytes] | None,
        timeout: float | None,
        stream: bool,
    ) -> httpx.Response:
        """One call: FailoverAuth runs every attempt it needs."""
        request = self._httpx.build_request(
            method=method, url=url, headers=headers, content=content, timeout=timeout
        )
        return self._httpx.send(request, stream=stream)

    def close(self) -> None:
        """Close the httpx connection pool."""
        self._httpx.close()


class FailoverHttpClientAsync(HttpClientAsync):
    """apify-client ``HttpClientAsync`` whose attempts fail over across a :class:`TokenPool`."""

    def __init__(
        self,
        pool: TokenPool,
        *,
        backoff: Backoff | None = None,
        retry_non_idempotent: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
        user_agent_suffix: str | list[str] | None = None,
        **timeouts: timedelta,
    ) -> None:
        super().__init__(**_base_kwargs(headers, user_agent_suffix, timeouts))
        self.auth = FailoverAuth(pool, backoff=backoff, retry_non_idempotent=retry_non_idempotent)
        self._httpx = httpx.AsyncClient(
            auth=self.auth,
            transport=FailoverTransport(transport or httpx.AsyncHTTPTransport()),
            follow_redirects=True,
            event_hooks={"response": [self._clear_cookies]},
        )

    async def _clear_cookies(self, _response: httpx.Response) -> None:
        self._httpx.cookies.clear()

    def is_timeout_error(self, exc: Exception) -> bool:
        """Python's and httpx's timeouts."""
        return isinstance(exc, (TimeoutError, httpx.TimeoutException))

    def is_retryable_transport_error(self, exc: Exception) -> bool:
        """Never: FailoverAuth has already retried what was safe to retry."""
        return False

    async def send_request(
        self,
        *,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | AsyncIterator[bytes] | None,
        timeout: float | None,
        stream: bool,
    ) -> httpx.Response:
        """One call: FailoverAuth runs every attempt it needs."""
        request = self._httpx.build_request(
            method=method, url=url, headers=headers, content=content, timeout=timeout
        )
        return await self._httpx.send(request, stream=stream)

    async def aclose(self) -> None:
        """Close the httpx connection pool."""
        await self._httpx.aclose()


def apify_client(
    pool: TokenPool,
    *,
    api_url: str = _DEFAULT_API_URL,
    api_public_url: str | None = None,
    backoff: Backoff | None = None,
    retry_non_idempotent: bool = False,
    transport: httpx.BaseTransport | None = None,
    **kwargs: Any,
) -> ApifyClient:
    """A real ``ApifyClient`` whose requests fail over across ``pool``.

    ``kwargs`` go to :class:`FailoverHttpClient` (``headers``, ``user_agent_suffix``,
    ``timeout_short`` ... ``timeout_max``).
    """
    http = FailoverHttpClient(
        pool,
        backoff=backoff,
        retry_non_idempotent=retry_non_idempotent,
        transport=transport,
        **kwargs,
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
    transport: httpx.AsyncBaseTransport | None = None,
    **kwargs: Any,
) -> ApifyClientAsync:
    """A real ``ApifyClientAsync`` whose requests fail over across ``pool``."""
    http = FailoverHttpClientAsync(
        pool,
        backoff=backoff,
        retry_non_idempotent=retry_non_idempotent,
        transport=transport,
        **kwargs,
    )
    return ApifyClientAsync.with_custom_http_client(
        api_url=api_url, api_public_url=api_public_url or api_url, http_client=http
    )
