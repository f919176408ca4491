"""Ready-made httpx clients with FailoverAuth and FailoverTransport wired together."""

from __future__ import annotations

from typing import Any

import httpx

from tokenguard.failover.auth import FailoverAuth
from tokenguard.failover.backoff import Backoff
from tokenguard.failover.pool import TokenPool
from tokenguard.failover.transport import FailoverTransport

__all__ = ["failover_async_client", "failover_client"]

# httpx ignores these Client arguments once a transport is given: they belong to the transport.
_TRANSPORT_KWARGS = ("verify", "cert", "trust_env", "http1", "http2", "limits", "proxy")


def _split(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: kwargs.pop(k) for k in _TRANSPORT_KWARGS if k in kwargs}


def failover_client(
    pool: TokenPool,
    *,
    backoff: Backoff | None = None,
    retry_non_idempotent: bool = False,
    transport: httpx.BaseTransport | None = None,
    **kwargs: Any,
) -> httpx.Client:
    """An ``httpx.Client`` whose requests fail over across ``pool``.

    ``kwargs`` go to ``httpx.Client``; transport options (``limits``, ``verify``, ``http2``,
    ...) go to the ``httpx.HTTPTransport`` built here unless ``transport`` is given.
    """
    auth = FailoverAuth(pool, backoff=backoff, retry_non_idempotent=retry_non_idempotent)
    options = _split(kwargs)
    inner = transport if transport is not None else httpx.HTTPTransport(**options)
    return httpx.Client(auth=auth, transport=FailoverTransport(inner), **kwargs)


def failover_async_client(
    pool: TokenPool,
    *,
    backoff: Backoff | None = None,
    retry_non_idempotent: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose requests fail over across ``pool``."""
    auth = FailoverAuth(pool, backoff=backoff, retry_non_idempotent=retry_non_idempotent)
    options = _split(kwargs)
    inner = transport if transport is not None else httpx.AsyncHTTPTransport(**options)
    return httpx.AsyncClient(auth=auth, transport=FailoverTransport(inner), **kwargs)
