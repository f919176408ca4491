"""Token failover for programs: TokenPool, FailoverAuth for httpx, an apify-client adapter.

>>> pool = TokenPool.from_vault(vault, policy="scraper")
>>> with failover_client(pool) as client:            # httpx.Client
...     client.get("https://api.apify.com/v2/acts")
>>> client = apify_client(pool, api_url="https://api.apify.com")   # a real ApifyClient

The apify-client adapter (``apify_client``, ``apify_client_async``, ``FailoverHttpClient``,
``FailoverHttpClientAsync``) is imported on first use: it needs the ``apify`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenguard.failover.auth import IDEMPOTENT, FailoverAuth, Sleep
from tokenguard.failover.backoff import Backoff, is_testing, set_testing, sleepless
from tokenguard.failover.clients import failover_async_client, failover_client
from tokenguard.failover.errors import InsufficientScope, NoUsableToken
from tokenguard.failover.events import EventKind, EventListener, FailoverEvent
from tokenguard.failover.pool import (
    PoolStatus,
    PoolToken,
    TokenHealth,
    TokenPool,
    TokenSnapshot,
    VaultSource,
)
from tokenguard.failover.transport import FailoverTransport

if TYPE_CHECKING:
    from tokenguard.failover.apify import (
        FailoverHttpClient,
        FailoverHttpClientAsync,
        apify_client,
        apify_client_async,
    )

__all__ = [
    "IDEMPOTENT",
    "Backoff",
    "EventKind",
    "EventListener",
    "FailoverAuth",
    "FailoverEvent",
    "FailoverHttpClient",
    "FailoverHttpClientAsync",
    "FailoverTransport",
    "InsufficientScope",
    "NoUsableToken",
    "PoolStatus",
    "PoolToken",
    "Sleep",
    "TokenHealth",
    "TokenPool",
    "TokenSnapshot",
    "VaultSource",
    "apify_client",
    "apify_client_async",
    "failover_async_client",
    "failover_client",
    "is_testing",
    "set_testing",
    "sleepless",
]

_LAZY = frozenset(
    {"FailoverHttpClient", "FailoverHttpClientAsync", "apify_client", "apify_client_async"}
)


def __getattr__(name: str) -> Any:
    # The apify-client adapter is imported on first use: apify-client is an optional extra.
    if name in _LAZY:
        from tokenguard.failover import apify

        return getattr(apify, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
