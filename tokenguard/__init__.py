"""tokenguard: govern Apify API tokens.

Policies become scoped, expiring tokens; an encrypted vault keeps them; failover keeps
programs running when one dies; rotation replaces them on a schedule; the audit says who can
reach what.
"""

from __future__ import annotations

from tokenguard.errors import (
    ApiError,
    ApiUnreachableError,
    ConfigError,
    ExitCode,
    PolicyError,
    TokenGuardError,
    UsageError,
    VaultError,
)
from tokenguard.secrets import Secret, fingerprint

__all__ = [
    "ApiError",
    "ApiUnreachableError",
    "ConfigError",
    "ExitCode",
    "PolicyError",
    "Secret",
    "TokenGuardError",
    "UsageError",
    "VaultError",
    "fingerprint",
]
