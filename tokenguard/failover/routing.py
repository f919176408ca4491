"""403 routing: which permission a request needs, and which token's recorded scope covers it.

A thin, cached layer over :func:`tokenguard.permissions.required_access` and
:func:`tokenguard.permissions.scope_covers`. Results are cached per (method, path) because
the same calls repeat thousands of times in a long-running program.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from tokenguard.permissions import RequiredAccess, Scope, required_access, scope_covers

__all__ = ["Access", "covers", "resolve"]


@dataclass(frozen=True, slots=True)
class Access:
    """What one request needs; ``key`` identifies the (resource, permission) for denials."""

    key: tuple[str, str | None, str, str | None]
    needed: str  # e.g. "run on actor abc123"
    required: RequiredAccess


@lru_cache(maxsize=4096)
def resolve(method: str, path: str) -> Access | None:
    """The access ``method path`` needs, or None when the scope model does not know the call."""
    required = required_access(method, path)
    if required is None:
        return None
    rtype = required.resource_type.value if required.resource_type is not None else None
    ref = required.resource_ref
    group = required.group.value if required.group is not None else None
    if required.permission is None:
        perm = "unscoped"
        needed = f"an unscoped token ({required.operation.value})"
    else:
        perm = required.permission.value
        if rtype and ref:
            needed = f"{perm} on {rtype} {ref}"
        elif group:
            needed = f"account-level {perm} on {group}"
        else:
            needed = f"{perm} ({required.operation.value})"
    return Access(key=(rtype or "", ref, perm, group), needed=needed, required=required)


def covers(scope: Scope, access: Access) -> bool | None:
    """True/False when the model can tell whether ``scope`` covers ``access``; None if not."""
    return scope_covers(scope, access.required)
