"""The Apify scope model as data.

Sources (all under Apify's documentation):
- "API tokens with limited permissions" — https://docs.apify.com/platform/integrations/api
  (account-level vs resource-specific permissions, explicit Create, permission
  dependencies, Actor execution run modes, default run storages, schedules, webhooks).
- "List of permissions" — https://docs.apify.com/platform/collaboration/list-of-permissions
- "General resource access" —
  https://docs.apify.com/platform/collaboration/general-resource-access

This module holds the vocabulary and the wire format of a scope (DESIGN §3). The decision
function ("may this token do this operation on this resource, and why") lives below the
vocabulary in this same module. The sandbox does NOT import this module: it enforces its own
reading of the same pages, and property tests compare the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ResourceType(StrEnum):
    """Resource types that take resource-specific permissions (token form, "Add resource")."""

    ACTOR = "actor"
    TASK = "task"
    DATASET = "dataset"
    KEY_VALUE_STORE = "key-value-store"
    REQUEST_QUEUE = "request-queue"
    SCHEDULE = "schedule"


class AccountGroup(StrEnum):
    """Account-level permission groups (token form: Actors, Tasks, Schedules, Storages)."""

    ACTORS = "actors"
    TASKS = "tasks"
    SCHEDULES = "schedules"
    STORAGES = "storages"


class Permission(StrEnum):
    """Permissions as they appear, lowercased, in the token API's scope."""

    READ = "read"
    WRITE = "write"
    RUN = "run"
    CREATE = "create"


class RunMode(StrEnum):
    """What token a run started by a scoped token receives ("Actor execution")."""

    RESTRICTED = "restricted"  # the same scope, transitively
    FULL = "full"  # an unscoped token: the Actor reaches everything


class GeneralAccess(StrEnum):
    """The account's "General resource access" setting."""

    RESTRICTED = "RESTRICTED"
    ANYONE_WITH_ID_CAN_READ = "ANYONE_WITH_ID_CAN_READ"


STORAGE_TYPES: frozenset[ResourceType] = frozenset(
    {ResourceType.DATASET, ResourceType.KEY_VALUE_STORE, ResourceType.REQUEST_QUEUE}
)

#: The account-level group each resource type falls under.
GROUP_OF: Mapping[ResourceType, AccountGroup] = {
    ResourceType.ACTOR: AccountGroup.ACTORS,
    ResourceType.TASK: AccountGroup.TASKS,
    ResourceType.SCHEDULE: AccountGroup.SCHEDULES,
    ResourceType.DATASET: AccountGroup.STORAGES,
    ResourceType.KEY_VALUE_STORE: AccountGroup.STORAGES,
    ResourceType.REQUEST_QUEUE: AccountGroup.STORAGES,
}

_R, _W, _X, _C = Permission.READ, Permission.WRITE, Permission.RUN, Permission.CREATE

#: Resource-specific permissions a scoped token may hold, per resource type.
#: "List of permissions" gives Read/Write/Run for Actors, Read/Write for tasks, storages and
#: schedules. Actors take no Write for tokens: "We do not allow scoped tokens to create or
#: modify Actors" (API tokens with limited permissions). Collaboration-only permissions
#: (Build, View owner runs, Manage access rights) are not token permissions and are omitted.
RESOURCE_PERMISSIONS: Mapping[ResourceType, frozenset[Permission]] = {
    ResourceType.ACTOR: frozenset({_R, _X}),
    ResourceType.TASK: frozenset({_R, _W}),
    ResourceType.DATASET: frozenset({_R, _W}),
    ResourceType.KEY_VALUE_STORE: frozenset({_R, _W}),
    ResourceType.REQUEST_QUEUE: frozenset({_R, _W}),
    ResourceType.SCHEDULE: frozenset({_R, _W}),
}

#: Account-level permissions per group. Create must be granted explicitly ("Allow tokens to
#: create resources"); Actors have no Create or Write for scoped tokens.
ACCOUNT_PERMISSIONS: Mapping[AccountGroup, frozenset[Permission]] = {
    AccountGroup.ACTORS: frozenset({_R, _X}),
    AccountGroup.TASKS: frozenset({_R, _W, _C}),
    AccountGroup.SCHEDULES: frozenset({_R, _W, _C}),
    AccountGroup.STORAGES: frozenset({_R, _W, _C}),
}


@dataclass(frozen=True, slots=True)
class ResourceGrant:
    """Resource-specific permissions on one resource, addressed by ID or ``username~name``."""

    type: ResourceType
    id: str
    permissions: frozenset[Permission]

    def to_api(self) -> dict[str, Any]:
        """The token API's JSON form."""
        return {
            "type": self.type.value,
            "id": self.id,
            "permissions": sorted(p.value for p in self.permissions),
        }

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> ResourceGrant:
        """Parse the token API's JSON form (raises ``ValueError`` on bad input)."""
        return cls(
            type=ResourceType(data["type"]),
            id=str(data["id"]),
            permissions=frozenset(Permission(p) for p in data.get("permissions", [])),
        )


@dataclass(frozen=True, slots=True)
class Scope:
    """What a token may do. ``unscoped=True`` is a full-access token (``scope: null``)."""

    account: Mapping[AccountGroup, frozenset[Permission]] = field(default_factory=dict)
    resources: tuple[ResourceGrant, ...] = ()
    actor_run_mode: RunMode = RunMode.RESTRICTED
    default_run_storage_access: bool = False
    unscoped: bool = False

    @classmethod
    def full(cls) -> Scope:
        """An unscoped (full-access) token's scope."""
        return cls(unscoped=True, actor_run_mode=RunMode.FULL)

    def account_permissions(self, group: AccountGroup) -> frozenset[Permission]:
        """Account-level permissions granted for ``group`` (empty when none)."""
        return self.account.get(group, frozenset())

    def grants_for(self, rtype: ResourceType, ids: Iterable[str]) -> frozenset[Permission]:
        """Union of resource-specific permissions on a resource known by any of ``ids``."""
        wanted = set(ids)
        out: set[Permission] = set()
        for grant in self.resources:
            if grant.type is rtype and grant.id in wanted:
                out |= grant.permissions
        return frozenset(out)

    def to_api(self) -> dict[str, Any] | None:
        """The token API's ``scope`` value (``None`` for an unscoped token)."""
        if self.unscoped:
            return None
        return {
            "account": {
                g.value: sorted(p.value for p in self.account.get(g, frozenset()))
                for g in AccountGroup
            },
            "resources": [r.to_api() for r in self.resources],
            "actorRunMode": self.actor_run_mode.value,
            "defaultRunStorageAccess": self.default_run_storage_access,
        }

    @classmethod
    def from_api(cls, data: Mapping[str, Any] | None) -> Scope:
        """Parse the token API's ``scope`` value (``None`` means unscoped)."""
        if data is None:
            return cls.full()
        account_raw = data.get("account") or {}
        account = {
            AccountGroup(g): frozenset(Permission(p) for p in perms)
            for g, perms in account_raw.items()
            if perms
        }
        return cls(
            account=account,
            resources=tuple(ResourceGrant.from_api(r) for r in data.get("resources") or []),
            actor_run_mode=RunMode(data.get("actorRunMode") or RunMode.RESTRICTED.value),
            default_run_storage_access=bool(data.get("defaultRunStorageAccess", False)),
        )
