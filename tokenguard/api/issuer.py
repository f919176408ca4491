"""Token management behind one small interface.

Apify's public API has no token-management endpoints, so tokenguard defines a token API in
the same style (DESIGN §3), served by the sandbox. :class:`TokenIssuer` is the seam: the HTTP
implementation here talks to that API; a later "guided" issuer for the real platform can
print the Console settings a policy needs and take the token an admin pastes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from tokenguard.api.client import ApifyApi
from tokenguard.permissions import Scope
from tokenguard.secrets import Secret


def parse_time(value: str | None) -> datetime | None:
    """Parse an API timestamp (ISO 8601, ``Z`` allowed)."""
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as the platform lists it: never the secret."""

    id: str
    name: str
    description: str | None
    created_at: datetime
    expires_at: datetime | None
    scope: Scope
    token_preview: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> TokenInfo:
        """Parse a token object of the token API."""
        created = parse_time(data["createdAt"])
        assert created is not None
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            description=data.get("description"),
            created_at=created,
            expires_at=parse_time(data.get("expiresAt")),
            scope=Scope.from_api(data.get("scope")),
            token_preview=data.get("tokenPreview"),
        )


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly issued token: the only moment the secret is known."""

    info: TokenInfo
    secret: Secret


@runtime_checkable
class TokenIssuer(Protocol):
    """Creates, lists and revokes tokens on some platform."""

    def issue(
        self,
        name: str,
        *,
        scope: Scope,
        expires_at: datetime | None,
        description: str | None = None,
    ) -> IssuedToken:
        """Create a token with ``scope`` that expires at ``expires_at`` (None: never)."""
        ...

    def revoke(self, token_id: str) -> None:
        """Revoke (delete) a token; revoking an already-gone token is not an error."""
        ...

    def list(self) -> list[TokenInfo]:
        """All tokens of the account, without secrets."""
        ...

    def get(self, token_id: str) -> TokenInfo:
        """One token, without its secret."""
        ...


class HttpTokenIssuer:
    """:class:`TokenIssuer` over the token API (``/v2/users/me/tokens``), unscoped token only."""

    def __init__(self, api: ApifyApi) -> None:
        self.api = api

    def __repr__(self) -> str:
        return f"HttpTokenIssuer({self.api!r})"

    def issue(
        self,
        name: str,
        *,
        scope: Scope,
        expires_at: datetime | None,
        description: str | None = None,
    ) -> IssuedToken:
        """Create a token through ``POST /v2/users/me/tokens``."""
        body: dict[str, Any] = {
            "name": name,
            "expiresAt": _iso(expires_at),
            "scope": scope.to_api(),
        }
        if description is not None:
            body["description"] = description
        data = self.api.request("POST", "/users/me/tokens", json=body).json()["data"]
        secret = Secret(data.pop("token"))
        return IssuedToken(info=TokenInfo.from_api(data), secret=secret)

    def revoke(self, token_id: str) -> None:
        """Delete a token; a 404 means it is already gone."""
        from tokenguard.errors import ApiError

        try:
            self.api.request("DELETE", f"/users/me/tokens/{token_id}")
        except ApiError as exc:
            if exc.status != 404:
                raise

    def list(self) -> list[TokenInfo]:
        """All tokens of the account (all pages)."""
        return [TokenInfo.from_api(item) for item in self.api.iter_list("/users/me/tokens")]

    def get(self, token_id: str) -> TokenInfo:
        """One token by ID."""
        return TokenInfo.from_api(self.api.get_data(f"/users/me/tokens/{token_id}"))


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    return value.isoformat().replace("+00:00", "Z")
