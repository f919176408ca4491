"""Static reachability: for every token x resource, the permissions held and why.

The reasoning is :func:`tokenguard.permissions.effective_access` (never the sandbox's code):
this module only adapts it to the report's keys. Look-ups stay lazy, so building the reach
of 1,000 tokens over 10,000 resources costs O(scope size) per token; the formats expand it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime

from tokenguard.audit.inventory import InventoryToken
from tokenguard.audit.report import Grant, ResourceEntry, TokenReach, grants_of, resource_key
from tokenguard.permissions import (
    Access,
    Account,
    EffectiveAccess,
    Resource,
    ResourceIndex,
    effective_access,
)


def entry_of(resource: Resource) -> ResourceEntry:
    """The report entry of a resource."""
    return ResourceEntry(
        key=resource_key(resource.kind, resource.id),
        kind=resource.kind,
        id=resource.id,
        name=resource.tilde_name,
    )


class KeyedAccess(Mapping[str, Access]):
    """An :class:`EffectiveAccess` addressed by report resource keys."""

    __slots__ = ("_by_key", "_ea", "_grants")

    def __init__(self, ea: EffectiveAccess, by_key: Mapping[str, Resource]) -> None:
        self._ea = ea
        self._by_key = by_key
        # Resources the scope does not name share one Access object per class, so their
        # grants are parsed once (keyed by identity; the EffectiveAccess keeps them alive).
        self._grants: dict[int, tuple[Access, tuple[Grant, ...]]] = {}

    def grants(self, key: str) -> tuple[Grant, ...]:
        """The grants on the resource with report key ``key``."""
        access = self._ea[self._by_key[key]]
        if not access.permissions:
            return ()
        hit = self._grants.get(id(access))
        if hit is not None and hit[0] is access:
            return hit[1]
        parsed = grants_of(access)
        self._grants[id(access)] = (access, parsed)
        return parsed

    def __getitem__(self, key: str) -> Access:
        return self._ea[self._by_key[key]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)

    @property
    def model(self) -> EffectiveAccess:
        """The underlying per-resource mapping."""
        return self._ea


def effective_for(
    token: InventoryToken, index: ResourceIndex, account: Account, *, now: datetime
) -> EffectiveAccess | None:
    """The token's effective access, or None when its scope is unknown.

    A token the platform no longer lists (``on_platform`` False) is treated as revoked; an
    expired one holds nothing (the platform answers 401, D12).
    """
    entry = token.entry
    if entry.scope is None:
        return None
    return effective_access(
        entry.token_id,
        entry.scope,
        index,
        account,
        now=now,
        expires_at=entry.expires_at,
        revoked=entry.on_platform is False,
        include_anonymous=True,
    )


def token_reach(
    token: InventoryToken,
    index: ResourceIndex,
    account: Account,
    by_key: Mapping[str, Resource],
    *,
    now: datetime,
) -> tuple[TokenReach, EffectiveAccess | None]:
    """The report's reach entry for ``token`` and the model mapping behind it."""
    ea = effective_for(token, index, account, now=now)
    if ea is None:
        note = "scope unknown: not in the vault and not matched on the platform's token list"
        return TokenReach(token.entry.key, None, note), None
    return TokenReach(token.entry.key, KeyedAccess(ea, by_key)), ea
