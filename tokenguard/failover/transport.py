"""FailoverTransport: shows transport errors to FailoverAuth so it can retry them.

An ``httpx.Auth`` flow never sees a refused or dropped connection: the exception escapes
from the transport past the flow. This wrapper catches ``httpx.TransportError`` and returns a
marker response (status 599, the exception in its extensions) that
:class:`~tokenguard.failover.auth.FailoverAuth` turns back into a retry or into the original
exception. Use the two together (see :mod:`tokenguard.failover.clients`); on its own, the
wrapper would hand callers marker responses instead of exceptions.
"""

from __future__ import annotations

import httpx

__all__ = ["MARKER_STATUS", "TRANSPORT_ERROR", "FailoverTransport"]

TRANSPORT_ERROR = "tokenguard.transport_error"
MARKER_STATUS = 599


def _marker(request: httpx.Request, exc: httpx.TransportError) -> httpx.Response:
    return httpx.Response(MARKER_STATUS, request=request, extensions={TRANSPORT_ERROR: exc})


class FailoverTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Wraps a sync or async httpx transport; transport errors become marker responses."""

    def __init__(self, inner: httpx.BaseTransport | httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the inner sync transport."""
        if not isinstance(self.inner, httpx.BaseTransport):
            raise TypeError("FailoverTransport wraps an async transport: use an AsyncClient")
        try:
            return self.inner.handle_request(request)
        except httpx.TransportError as exc:
            return _marker(request, exc)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the inner async transport."""
        if not isinstance(self.inner, httpx.AsyncBaseTransport):
            raise TypeError("FailoverTransport wraps a sync transport: use a Client")
        try:
            return await self.inner.handle_async_request(request)
        except httpx.TransportError as exc:
            return _marker(request, exc)

    def close(self) -> None:
        """Close the inner sync transport."""
        if isinstance(self.inner, httpx.BaseTransport):
            self.inner.close()

    async def aclose(self) -> None:
        """Close the inner async transport."""
        if isinstance(self.inner, httpx.AsyncBaseTransport):
            await self.inner.aclose()
