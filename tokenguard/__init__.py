"""tokenguard: govern Apify API tokens.

Policies become scoped, expiring tokens; an encrypted vault keeps them; failover keeps
programs running when one dies; rotation replaces them on a schedule; the audit says who can
reach what.

The audit entry point is ``tokenguard.audit.audit(...)``: ``tokenguard.audit`` is the
audit package itself, so the function cannot also live under that name here.

The public Python API is re-exported here. Heavier parts (vault, failover, policy, rotation,
audit) load on first attribute access, so ``import tokenguard`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
from tokenguard.permissions import Scope
from tokenguard.secrets import Secret, fingerprint

if TYPE_CHECKING:
    from tokenguard.audit import AuditReport
    from tokenguard.failover import FailoverAuth, NoUsableToken, TokenPool, apify_client
    from tokenguard.policy import load_policies
    from tokenguard.rotation import rotate
    from tokenguard.vault import TokenRecord, TokenStatus, Vault

_LAZY: dict[str, str] = {
    "AuditReport": "tokenguard.audit",
    "FailoverAuth": "tokenguard.failover",
    "NoUsableToken": "tokenguard.failover",
    "TokenPool": "tokenguard.failover",
    "TokenRecord": "tokenguard.vault",
    "TokenStatus": "tokenguard.vault",
    "Vault": "tokenguard.vault",
    "apify_client": "tokenguard.failover",
    "load_policies": "tokenguard.policy",
    "rotate": "tokenguard.rotation",
}

__all__ = [
    "ApiError",
    "ApiUnreachableError",
    "AuditReport",
    "ConfigError",
    "ExitCode",
    "FailoverAuth",
    "NoUsableToken",
    "PolicyError",
    "Scope",
    "Secret",
    "TokenGuardError",
    "TokenPool",
    "TokenRecord",
    "TokenStatus",
    "UsageError",
    "Vault",
    "VaultError",
    "apify_client",
    "fingerprint",
    "load_policies",
    "rotate",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tokenguard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: the next access skips this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
