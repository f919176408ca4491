"""Token records: what the vault keeps about each governed token.

Record ``name`` is the unique key. Tokens issued from a policy are named
``<policy>.<n>`` (n counts up with each issue), so a policy's active token, its retiring
predecessor and a pending replacement live side by side; ``policy`` links them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from tokenguard.permissions import Scope
from tokenguard.secrets import Secret


class TokenStatus(StrEnum):
    """Lifecycle of a governed token."""

    ACTIVE = "active"  # the token programs should use
    PENDING = "pending"  # issued by a rotation, not yet verified and promoted
    RETIRING = "retiring"  # replaced; still valid on the platform until retire_at
    REVOKED = "revoked"  # revoked on the platform
    FAILED = "failed"  # a replacement that failed verification (revoked or to be revoked)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """One governed token. ``secret`` never renders; ``fingerprint`` is safe to show.

    ``scope`` is what the token was issued with (``Scope.full()`` for unscoped tokens) or
    ``None`` when unknown (a token added by hand whose scope was never looked up).
    """

    name: str
    secret: Secret
    status: TokenStatus = TokenStatus.ACTIVE
    policy: str | None = None
    scope: Scope | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    rotated_at: datetime | None = None  # when this token was replaced (became retiring)
    retire_at: datetime | None = None  # end of the grace period of a retiring token
    issuer_id: str | None = None  # the token's ID on the platform (token API)
    policy_digest: str | None = None  # digest of the policy it was issued from
    compromised: bool = False  # marked by `rotate --now`: rotate at once
    notes: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """The non-secret fingerprint of the token."""
        return self.secret.fingerprint

    def evolve(self, **changes: Any) -> TokenRecord:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)
