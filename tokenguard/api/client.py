"""A small synchronous client for the Apify API v2 (and the sandbox that mimics it).

It only knows the envelopes and the error shape (DESIGN §1); callers build paths. Errors
become :class:`~tokenguard.errors.ApiError` with Apify's ``error.type`` intact. URLs are
never put in messages with a token in them: the token travels in the ``Authorization``
header only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from tokenguard.errors import ApiError, ApiUnreachableError
from tokenguard.secrets import Secret, redact

DEFAULT_API_URL = "https://api.apify.com"


def _api_root(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/v2") else base + "/v2"


class ApifyApi:
    """Synchronous Apify API client bound to one token (or none, for anonymous reads)."""

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        token: Secret | None = None,
        *,
        timeout: float = 30.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.root = _api_root(base_url)
        self._token = token
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        fp = self._token.fingerprint if self._token else "anonymous"
        return f"ApifyApi({self.base_url!r}, token={fp})"

    def close(self) -> None:
        """Close the underlying HTTP client if this object created it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> ApifyApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def with_token(self, token: Secret | None) -> ApifyApi:
        """A client for the same server and connection pool with another token."""
        return ApifyApi(self.base_url, token, client=self._client)

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            return {}
        return {"Authorization": f"Bearer {self._token.reveal()}"}

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request to ``/v2`` + ``path``; raise :class:`ApiError` on a non-2xx answer."""
        url = self.root + path
        all_headers = self._headers()
        if headers:
            all_headers.update(headers)
        try:
            response = self._client.request(
                method, url, params=params, json=json, content=content, headers=all_headers
            )
        except httpx.HTTPError as exc:
            # httpx messages can include the URL; redact defensively and drop the cause chain.
            raise ApiUnreachableError(
                f"Could not reach the Apify API at {self.base_url}: {redact(type(exc).__name__)}",
                hint="Check --api-url / APIFY_API_BASE_URL and that the server is running.",
            ) from None
        if response.is_success:
            return response
        raise error_from_response(response, method, path)

    def get_data(self, path: str, **params: Any) -> Any:
        """GET a single-object envelope and return its ``data``."""
        return self.request("GET", path, params=params or None).json()["data"]

    def iter_list(self, path: str, *, page_size: int = 1000, **params: Any) -> Iterator[Any]:
        """Iterate over all items of a paginated list endpoint."""
        offset = 0
        while True:
            query = {**params, "offset": offset, "limit": page_size}
            data = self.request("GET", path, params=query).json()["data"]
            items = data.get("items", [])
            yield from items
            offset += len(items)
            total = data.get("total")
            if not items or (isinstance(total, int) and offset >= total):
                return


def apify_error(body: Any) -> tuple[str | None, str]:
    """Apify's ``error.type`` and redacted ``error.message`` from a decoded error body.

    ``(None, "")`` when the body is not Apify's ``{"error": {"type", "message"}}`` shape.
    """
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        etype = err.get("type")
        return (str(etype) if etype is not None else None), redact(str(err.get("message", "")))
    return None, ""


def error_from_response(response: httpx.Response, method: str, path: str) -> ApiError:
    """Build an :class:`ApiError` from an Apify error response (never echoing secrets)."""
    try:
        error_type, message = apify_error(response.json())
    except ValueError:
        error_type, message = None, ""
    hints = {
        401: "The token is invalid, expired or revoked: use another token (APIFY_TOKEN).",
        403: "The token's scope does not allow this: use a token with the needed permission.",
        404: "Check the resource ID or username~name.",
        429: "Rate limit hit: wait and retry, or lower the request rate.",
    }
    return ApiError(
        f"{method} {path} failed with HTTP {response.status_code}"
        + (f" {error_type}" if error_type else "")
        + (f": {message}" if message else ""),
        hint=hints.get(response.status_code, "See the Apify API documentation for this error."),
        status=response.status_code,
        error_type=error_type,
    )
