"""Errors of the failover layer (both are API errors: exit code 4)."""

from __future__ import annotations

from tokenguard.errors import ApiError

__all__ = ["InsufficientScope", "NoUsableToken"]


class NoUsableToken(ApiError):
    """Every token of the pool is dead (or excluded) for a request.

    ``failures`` pairs each token's fingerprint with why it could not serve the request.
    """

    def __init__(
        self,
        message: str,
        *,
        failures: tuple[tuple[str, str], ...] = (),
        hint: str | None = None,
        status: int = 0,
        error_type: str | None = None,
    ) -> None:
        super().__init__(
            message,
            hint=hint
            or "Add a valid token to the pool or vault (tokenguard vault add / tokenguard rotate).",
            status=status,
            error_type=error_type,
        )
        self.failures = failures


class InsufficientScope(NoUsableToken):
    """No token of the pool has the scope a request needs. ``needed`` names the permission."""

    def __init__(
        self,
        message: str,
        *,
        needed: str,
        failures: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(
            message,
            failures=failures,
            hint=f"Add a token whose scope grants {needed} to the pool, "
            "or allow unscoped tokens for this pool if that is intended.",
            status=403,
            error_type="insufficient-permissions",
        )
        self.needed = needed
