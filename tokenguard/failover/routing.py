"""403 routing: which permission a request needs, and which token's recorded scope covers it.

A thin, cached layer over :mod:`tokenguard.permissions` (``required_access`` and
``scope_covers``). Results are cached per (method, path) because the same calls repeat
thousands of times in a long-running program.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tokenguard.permissions import Scope

__all__ = ["Access", "covers", "resolve"]


@dataclass(frozen=True, slots=True)
class Access:
    """What one request needs: ``key`` identifies the (resource, permission) for denials."""

    key: tuple[str, str | None, str, str | None]
    needed: str  # e.g. "run on actor abc123"
    raw: Any  # the permissions.RequiredAccess object


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


@lru_cache(maxsize=4096)
def resolve(method: str, path: str) -> Access | None:
    """The access ``method path`` needs, or None when the scope model does not know the call."""
    from tokenguard import permissions

    required_access = getattr(permissions, "required_access", None)
    if required_access is None:  # scope model not available: no routing, 403s pass through
        return None
    api_path = path[3:] if path.startswith("/v2/") else path
    raw = required_access(method.upper(), api_path)
    if raw is None:
        return None
    rtype = _text(getattr(raw, "resource_type", None))
    ref = _text(getattr(raw, "resource_ref", None))
    perm = _text(getattr(raw, "permission", None)) or "access"
    group = _text(getattr(raw, "group", None))
    if rtype and ref:
        needed = f"{perm} on {rtype} {ref}"
    elif group:
        needed = f"account-level {perm} on {group}"
    else:
        needed = f"{perm} for {method.upper()} {path}"
    return Access(key=(rtype or "", ref, perm, group), needed=needed, raw=raw)


def covers(scope: Scope, access: Access) -> bool | None:
    """True/False when the model can tell whether ``scope`` covers ``access``; None if not."""
    if scope.unscoped:
        return True
    from tokenguard import permissions

    scope_covers = getattr(permissions, "scope_covers", None)
    if scope_covers is None:
        return None
    result = scope_covers(scope, access.raw)
    return None if result is None else bool(result)
