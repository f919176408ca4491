"""The Apify scope model as data.

Sources (all under Apify's documentation):
- "API tokens with limited permissions" — https://docs.apify.com/platform/integrations/api
  (account-level vs resource-specific permissions, explicit Create, permission
  dependencies, Actor execution run modes, default run storages, schedules, webhooks).
- "List of permissions" — https://docs.apify.com/platform/collaboration/list-of-permissions
- "General resource access" —
  https://docs.apify.com/platform/collaboration/general-resource-access

This module holds, top to bottom:

- the vocabulary and wire format of a scope (DESIGN §3): ``ResourceType``, ``AccountGroup``,
  ``Permission``, ``RunMode``, ``GeneralAccess``, ``ResourceGrant``, ``Scope``;
- resource facts (``Resource``, ``Account``, ``TokenContext``) and ``Operation``;
- :func:`general_access_of` and :func:`anonymous_read_allowed` — general resource access per
  resource (a storage's or run's own setting takes precedence over the account's, D11);
- :func:`decide` — "may this token do this operation on this resource, and why" — with the
  HTTP status it implies and the grant route (``unscoped``, ``created``, ``resource``,
  ``account``, ``default-run-storage``, ``anonymous``, first applicable wins);
- :func:`effective_access` — for the audit, every resource's read/write/run with reasons,
  lazily and fast for many tokens over one :class:`ResourceIndex`;
- :func:`required_access` and :func:`scope_covers` — what an HTTP request needs, and whether a
  scope clearly grants it without resource facts (for failover);
- escalation facts: :func:`unscoped_run_paths`, :func:`schedule_escalation_paths`,
  :func:`webhook_conditions`.

The rules are the project's D1-D18 (notes/common.md), each read from the pages above and
cited where it is implemented. Where the pages are silent, the choices made here are:

- Lists of the account (``GET /v2/datasets`` ...) never deny a valid token (D2); listing the
  runs of one Actor or task is reading those runs (D6), so it needs read or run on the Actor
  (or read on the task).
- "Full access to what it created" applies to what a token creates under a Create permission
  (tasks, schedules, storages); a webhook is managed through its condition only (D14), and a
  run's default storages belong to the run (reached through D10, never "created").
- Write implies read everywhere (D3), including account-level groups.
- A request that references a resource that does not exist (a task's Actor, a schedule
  action's target, a webhook's condition) is a 404 (D1) — but only after the primary check
  (the target's own permission or the create permission) passed, so a token without it
  learns nothing about which IDs exist. :func:`decide` can tell "does not exist" from
  "unknown" only when told its facts are complete (``facts_complete=True``).

The sandbox does NOT import this module: it enforces its own reading of the same pages, and
the property test (tests/test_scope_property.py) compares the two over real HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = [
    "ACCOUNT_PERMISSIONS",
    "CREATABLE_KINDS",
    "DOC_GENERAL_ACCESS",
    "DOC_PERMISSIONS",
    "DOC_TOKENS",
    "GROUP_OF",
    "KIND_PERMISSIONS",
    "RESOURCE_PERMISSIONS",
    "STORAGE_KINDS",
    "STORAGE_TYPES",
    "Access",
    "Account",
    "AccountGroup",
    "Decision",
    "EffectiveAccess",
    "GeneralAccess",
    "GrantRoute",
    "Operation",
    "Permission",
    "RequiredAccess",
    "Resource",
    "ResourceGrant",
    "ResourceIndex",
    "ResourceKind",
    "ResourceType",
    "RunMode",
    "ScheduleAction",
    "ScheduleActionType",
    "Scope",
    "TokenContext",
    "anonymous_read_allowed",
    "decide",
    "effective_access",
    "general_access_of",
    "is_anonymous_readable",
    "is_create_operation",
    "is_list_operation",
    "operation_kind",
    "required_access",
    "schedule_escalation_paths",
    "scope_covers",
    "unscoped_run_paths",
    "webhook_conditions",
]


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
    """General resource access: the account's setting, or a storage's or run's own.

    DOC_GENERAL_ACCESS: the account setting is RESTRICTED ("Restricted (default)") or
    ANYONE_WITH_ID_CAN_READ; "Per-resource access control" lets one resource override it,
    and "Sharing storages by name" adds ANYONE_WITH_NAME_CAN_READ ("Anyone with ID or name can
    read"), which "applies to storages only". A resource that follows the account
    (the API's ``FOLLOW_USER_SETTING``) is ``Resource.general_access=None``.
    """

    RESTRICTED = "RESTRICTED"
    ANYONE_WITH_ID_CAN_READ = "ANYONE_WITH_ID_CAN_READ"
    ANYONE_WITH_NAME_CAN_READ = "ANYONE_WITH_NAME_CAN_READ"


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
_RESTRICTED = GeneralAccess.RESTRICTED

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


# ---------------------------------------------------------------------------------------------
# Resource facts: what the decision needs to know about the account and its resources.
# ---------------------------------------------------------------------------------------------

#: Short names of the documentation pages rules come from (cited in comments and docstrings).
DOC_TOKENS = "API tokens with limited permissions (docs.apify.com/platform/integrations/api)"
DOC_PERMISSIONS = "List of permissions (docs.apify.com/account/collaboration/list-of-permissions)"
DOC_GENERAL_ACCESS = (
    "General resource access (docs.apify.com/account/collaboration/general-resource-access)"
)


class ResourceKind(StrEnum):
    """Every kind of resource a decision can be about: the six :class:`ResourceType` values
    (which take token permissions) plus runs and webhooks (which are governed through their
    Actor or task, DOC_TOKENS "Actor execution" and "Webhooks configuration")."""

    ACTOR = "actor"
    TASK = "task"
    DATASET = "dataset"
    KEY_VALUE_STORE = "key-value-store"
    REQUEST_QUEUE = "request-queue"
    SCHEDULE = "schedule"
    RUN = "run"
    WEBHOOK = "webhook"

    @property
    def resource_type(self) -> ResourceType | None:
        """The matching :class:`ResourceType`, or None for runs and webhooks."""
        return _TYPE_OF.get(self)


_TYPE_OF: dict[ResourceKind, ResourceType] = {ResourceKind(t.value): t for t in ResourceType}
_KIND_OF: dict[ResourceType, ResourceKind] = {t: k for k, t in _TYPE_OF.items()}

STORAGE_KINDS: frozenset[ResourceKind] = frozenset(
    {ResourceKind.DATASET, ResourceKind.KEY_VALUE_STORE, ResourceKind.REQUEST_QUEUE}
)

#: Kinds a token creates under an explicit Create permission and then holds "full access" to
#: (D4, DOC_TOKENS "Allow tokens to create resources": tasks, schedules, storages). Webhooks
#: record their creating token only to dispatch with its scope; managing them is governed by
#: their condition alone (D14, DOC_TOKENS "Webhooks configuration"). Runs are started, not
#: created, and are governed by their Actor (D6); Actors are never created by scoped tokens (D5).
CREATABLE_KINDS: frozenset[ResourceKind] = frozenset(
    {ResourceKind.TASK, ResourceKind.SCHEDULE, *STORAGE_KINDS}
)


class ScheduleActionType(StrEnum):
    """The two kinds of schedule action (OpenAPI ``ScheduleActionType``)."""

    RUN_ACTOR = "RUN_ACTOR"
    RUN_ACTOR_TASK = "RUN_ACTOR_TASK"


@dataclass(frozen=True, slots=True)
class ScheduleAction:
    """One action of a schedule: run an Actor (``actorId``) or a task (``actorTaskId``)."""

    type: ScheduleActionType
    target_id: str


@dataclass(frozen=True, slots=True)
class Resource:
    """A resource as the decision needs it.

    ``actor_id``: a task's Actor, a run's Actor, or a webhook whose condition is an Actor.
    ``task_id``: a run's task (if started from one), or a webhook whose condition is a task.
    ``actions``: a schedule's actions. ``default_*_id``: a run's default storages.
    ``created_by_token``: ID of the token that created the resource (None: unknown/other).
    ``general_access``: a storage's or run's own general access (DOC_GENERAL_ACCESS,
    "Per-resource access control": it "takes precedence over the account setting"); None
    follows the account (the API's ``FOLLOW_USER_SETTING``). Ignored for other kinds.
    """

    kind: ResourceKind
    id: str
    name: str | None = None
    username: str | None = None
    actor_id: str | None = None
    task_id: str | None = None
    actions: tuple[ScheduleAction, ...] = ()
    default_dataset_id: str | None = None
    default_key_value_store_id: str | None = None
    default_request_queue_id: str | None = None
    created_by_token: str | None = None
    general_access: GeneralAccess | None = None

    @property
    def key(self) -> tuple[ResourceKind, str]:
        """``(kind, id)``: identity of the resource."""
        return (self.kind, self.id)

    @property
    def tilde_name(self) -> str | None:
        """The ``username~name`` address (D16), when the resource has a name."""
        if self.name and self.username:
            return f"{self.username}~{self.name}"
        return None

    @property
    def label(self) -> str:
        """Human label used in reasons, e.g. ``dataset abc123``."""
        return f"{self.kind.value} {self.id}"

    def default_storages(self) -> tuple[tuple[ResourceKind, str], ...]:
        """A run's default storages as ``(kind, id)`` pairs."""
        pairs = (
            (ResourceKind.DATASET, self.default_dataset_id),
            (ResourceKind.KEY_VALUE_STORE, self.default_key_value_store_id),
            (ResourceKind.REQUEST_QUEUE, self.default_request_queue_id),
        )
        return tuple((k, i) for k, i in pairs if i)


@dataclass(frozen=True, slots=True)
class Account:
    """The account the resources live in (DOC_GENERAL_ACCESS: the account-wide setting)."""

    username: str
    general_access: GeneralAccess = GeneralAccess.RESTRICTED


@dataclass(frozen=True, slots=True)
class TokenContext:
    """The token a request carries: its ID, scope, expiry and whether it was revoked.

    A token the platform does not know at all answers like a revoked one (D12): pass
    ``revoked=True``. A request with no token is ``token=None`` in :func:`decide`.
    """

    id: str
    scope: Scope
    expires_at: datetime | None = None
    revoked: bool = False

    def invalid_reason(self, now: datetime) -> str | None:
        """Why the token no longer authenticates (D12, D17), or None when it is valid.

        DOC_TOKENS "Expiration": tokens "become invalid after a specified period".
        """
        if self.revoked:
            return "token revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return f"token expired at {self.expires_at.isoformat()}"
        return None


# ---------------------------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------------------------


class Operation(StrEnum):
    """Every API operation the sandbox serves (and the decision knows)."""

    ACTOR_LIST = "actor.list"
    ACTOR_GET = "actor.get"
    ACTOR_CREATE = "actor.create"
    ACTOR_UPDATE = "actor.update"
    ACTOR_DELETE = "actor.delete"
    ACTOR_RUN = "actor.run"
    ACTOR_RUNS_LIST = "actor.runs.list"
    RUN_LIST = "run.list"
    RUN_GET = "run.get"
    RUN_ABORT = "run.abort"
    TASK_LIST = "task.list"
    TASK_GET = "task.get"
    TASK_CREATE = "task.create"
    TASK_UPDATE = "task.update"
    TASK_DELETE = "task.delete"
    TASK_RUN = "task.run"
    TASK_RUNS_LIST = "task.runs.list"
    DATASET_LIST = "dataset.list"
    DATASET_GET = "dataset.get"
    DATASET_CREATE = "dataset.create"
    DATASET_UPDATE = "dataset.update"
    DATASET_DELETE = "dataset.delete"
    DATASET_ITEMS_GET = "dataset.items.get"
    DATASET_ITEMS_PUSH = "dataset.items.push"
    KV_STORE_LIST = "key-value-store.list"
    KV_STORE_GET = "key-value-store.get"
    KV_STORE_CREATE = "key-value-store.create"
    KV_STORE_UPDATE = "key-value-store.update"
    KV_STORE_DELETE = "key-value-store.delete"
    KV_STORE_KEYS = "key-value-store.keys"
    RECORD_GET = "key-value-store.record.get"
    RECORD_PUT = "key-value-store.record.put"
    RECORD_DELETE = "key-value-store.record.delete"
    REQUEST_QUEUE_LIST = "request-queue.list"
    REQUEST_QUEUE_GET = "request-queue.get"
    REQUEST_QUEUE_CREATE = "request-queue.create"
    REQUEST_QUEUE_UPDATE = "request-queue.update"
    REQUEST_QUEUE_DELETE = "request-queue.delete"
    SCHEDULE_LIST = "schedule.list"
    SCHEDULE_GET = "schedule.get"
    SCHEDULE_CREATE = "schedule.create"
    SCHEDULE_UPDATE = "schedule.update"
    SCHEDULE_DELETE = "schedule.delete"
    WEBHOOK_LIST = "webhook.list"
    WEBHOOK_GET = "webhook.get"
    WEBHOOK_CREATE = "webhook.create"
    WEBHOOK_UPDATE = "webhook.update"
    WEBHOOK_DELETE = "webhook.delete"
    USERS_ME = "users.me"
    TOKENS_MANAGE = "tokens.manage"


class _Verb(StrEnum):
    LIST = "list"
    GET = "get"  # read the resource or its data
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    WRITE_DATA = "write-data"  # push items, put/delete records
    RUN = "run"
    ABORT = "abort"
    RUNS_LIST = "runs-list"  # list runs of one Actor / task
    ACCOUNT = "account"  # users-me, token management


@dataclass(frozen=True, slots=True)
class _OpSpec:
    kind: ResourceKind | None
    verb: _Verb


_K = ResourceKind
_V = _Verb
_SPECS: dict[Operation, _OpSpec] = {}


def _spec_family(kind: ResourceKind, prefix: str, extra: Mapping[str, _Verb]) -> None:
    verbs = {
        "LIST": _V.LIST,
        "GET": _V.GET,
        "CREATE": _V.CREATE,
        "UPDATE": _V.UPDATE,
        "DELETE": _V.DELETE,
        **extra,
    }
    for suffix, verb in verbs.items():
        _SPECS[Operation[f"{prefix}_{suffix}"]] = _OpSpec(kind, verb)


_spec_family(_K.ACTOR, "ACTOR", {"RUN": _V.RUN, "RUNS_LIST": _V.RUNS_LIST})
_spec_family(_K.TASK, "TASK", {"RUN": _V.RUN, "RUNS_LIST": _V.RUNS_LIST})
_spec_family(_K.DATASET, "DATASET", {"ITEMS_GET": _V.GET, "ITEMS_PUSH": _V.WRITE_DATA})
_spec_family(_K.KEY_VALUE_STORE, "KV_STORE", {"KEYS": _V.GET})
_spec_family(_K.REQUEST_QUEUE, "REQUEST_QUEUE", {})
_spec_family(_K.SCHEDULE, "SCHEDULE", {})
_spec_family(_K.WEBHOOK, "WEBHOOK", {})
_SPECS.update(
    {
        Operation.RECORD_GET: _OpSpec(_K.KEY_VALUE_STORE, _V.GET),
        Operation.RECORD_PUT: _OpSpec(_K.KEY_VALUE_STORE, _V.WRITE_DATA),
        Operation.RECORD_DELETE: _OpSpec(_K.KEY_VALUE_STORE, _V.WRITE_DATA),
        Operation.RUN_LIST: _OpSpec(_K.RUN, _V.LIST),
        Operation.RUN_GET: _OpSpec(_K.RUN, _V.GET),
        Operation.RUN_ABORT: _OpSpec(_K.RUN, _V.ABORT),
        Operation.USERS_ME: _OpSpec(None, _V.ACCOUNT),
        Operation.TOKENS_MANAGE: _OpSpec(None, _V.ACCOUNT),
    }
)
assert set(_SPECS) == set(Operation), "every operation needs a spec"


def operation_kind(operation: Operation) -> ResourceKind | None:
    """The kind of resource ``operation`` targets (None for users-me and token management)."""
    return _SPECS[operation].kind


def is_list_operation(operation: Operation) -> bool:
    """True for account-wide list endpoints (D2: never 403 for a valid token)."""
    return _SPECS[operation].verb is _Verb.LIST


def is_create_operation(operation: Operation) -> bool:
    """True for create endpoints (the target describes the resource to be created)."""
    return _SPECS[operation].verb is _Verb.CREATE


def is_anonymous_readable(operation: Operation) -> bool:
    """True for reads that general resource access may open to anyone holding the ID (D11).

    DOC_GENERAL_ACCESS: the setting "affects ... Actor runs, Actor builds, Storages"; "Access
    to resources that require explicit access - such as Actors, tasks or schedules are not
    affected". Only reads: "Anyone with ID can read".
    """
    spec = _SPECS[operation]
    return spec.verb is _Verb.GET and (spec.kind in STORAGE_KINDS or spec.kind is _K.RUN)


def general_access_of(resource: Resource, account: Account) -> GeneralAccess:
    """The general access that governs anonymous reads of ``resource``.

    DOC_GENERAL_ACCESS "Per-resource access control": "the account level access control can
    be changed on individual resources ... the resource level setting takes precedence over
    the account setting". The setting covers storages and runs only ("This setting affects
    ... Actor runs, Actor builds, Storages"), so other kinds always follow the account.
    """
    own = resource.general_access
    if own is not None and (resource.kind in STORAGE_KINDS or resource.kind is _K.RUN):
        return own
    return account.general_access


def _opens(general: GeneralAccess, kind: ResourceKind | None, by_name: bool) -> bool:
    """Does ``general`` let anyone read a ``kind`` addressed by ID (or by name)? (D11)

    DOC_GENERAL_ACCESS: "Anyone with ID can read" opens reads by ID only; "Sharing storages
    by name": "Anyone with ID or name can read" also opens ``username~name`` and "applies to
    storages only" (runs have no name: there it opens reads by ID).
    """
    if general is GeneralAccess.RESTRICTED or not (kind in STORAGE_KINDS or kind is _K.RUN):
        return False
    if general is GeneralAccess.ANYONE_WITH_NAME_CAN_READ and kind in STORAGE_KINDS:
        return True
    return not by_name


def anonymous_read_allowed(resource: Resource, account: Account, *, by_name: bool = False) -> bool:
    """May anyone (no token, or a token without read) read ``resource``? (D11)

    Its own general access when it has one, else the account's (:func:`general_access_of`);
    ``by_name``: the read addresses it as ``username~name``. Only reads (GETs of the storage,
    its items, keys and records, or of the run) are ever opened: see :func:`is_anonymous_readable`.
    """
    return _opens(general_access_of(resource, account), resource.kind, by_name)


def _anonymous_reason(resource: Resource | None, account: Account) -> str:
    """The reason an anonymous read names: the account's setting or the resource's own."""
    if resource is not None and general_access_of(resource, account) is not account.general_access:
        own = general_access_of(resource, account)
        who = "ID or name" if own is GeneralAccess.ANYONE_WITH_NAME_CAN_READ else "ID"
        return f"anyone with the {who} may read (its own general access: {own.value})"
    if account.general_access is GeneralAccess.ANYONE_WITH_NAME_CAN_READ:
        return "anyone with the ID or name may read (general resource access)"
    return "anyone with the ID may read (general resource access)"


# ---------------------------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------------------------


class GrantRoute(StrEnum):
    """How access to the target was granted (D18), in priority order: first applicable wins."""

    UNSCOPED = "unscoped"
    CREATED = "created"
    RESOURCE = "resource"
    ACCOUNT = "account"
    DEFAULT_RUN_STORAGE = "default-run-storage"
    ANONYMOUS = "anonymous"


_ROUTE_RANK: dict[GrantRoute, int] = {route: i for i, route in enumerate(GrantRoute)}


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to "may this token do this operation on this resource, and why".

    ``status`` is the HTTP status class the platform answers with: 200 (any success), 401,
    403 or 404. ``grant`` names the route of the primary target's access on success (None for
    account list endpoints and for denials). For the runs of one Actor or task, ``grant`` is
    the route of the check on that Actor or task, though the endpoint, being a list, carries
    no ``X-Sandbox-Grant`` header (D18).
    """

    allowed: bool
    status: int
    grant: GrantRoute | None
    reasons: tuple[str, ...]

    def explain(self) -> str:
        """One line: verdict, status, route and reasons."""
        verdict = "allowed" if self.allowed else "denied"
        route = f" via {self.grant.value}" if self.grant else ""
        return f"{verdict} ({self.status}){route}: " + "; ".join(self.reasons)


@dataclass(frozen=True, slots=True)
class _Via:
    """One way a permission is held."""

    route: GrantRoute
    reason: str


def _best(vias: Iterable[_Via]) -> _Via | None:
    return min(vias, key=lambda v: _ROUTE_RANK[v.route], default=None)


def _implied(perms: Iterable[Permission]) -> frozenset[Permission]:
    """Close a permission set under "write implies read" (D3; DOC_TOKENS "Automatic
    dependencies": "when you grant the Write permission ... the Read permission is
    automatically selected")."""
    out = set(perms)
    if Permission.WRITE in out:
        out.add(Permission.READ)
    return frozenset(out)


def _granting(held: frozenset[Permission], perm: Permission) -> Permission | None:
    """Which held permission grants ``perm`` (itself, or write for read), for reasons."""
    if perm in held:
        return perm
    if perm is Permission.READ and Permission.WRITE in held:
        return Permission.WRITE
    return None


@dataclass(frozen=True, slots=True)
class _CompiledScope:
    """A scope indexed for O(1) look-ups: grants by (type, id-or-name)."""

    unscoped: bool
    account: Mapping[AccountGroup, frozenset[Permission]]
    by_ref: Mapping[tuple[ResourceType, str], frozenset[Permission]]
    default_run_storage_access: bool
    run_mode: RunMode

    @classmethod
    def of(cls, scope: Scope) -> _CompiledScope:
        by_ref: dict[tuple[ResourceType, str], set[Permission]] = {}
        for grant in scope.resources:
            by_ref.setdefault((grant.type, grant.id), set()).update(grant.permissions)
        return cls(
            unscoped=scope.unscoped,
            account={g: frozenset(p) for g, p in scope.account.items()},
            by_ref={k: frozenset(v) for k, v in by_ref.items()},
            default_run_storage_access=scope.default_run_storage_access,
            run_mode=scope.actor_run_mode,
        )

    def resource_perms(self, resource: Resource) -> frozenset[Permission]:
        """Resource-specific permissions on ``resource`` by ID or ``username~name`` (D16)."""
        rtype = resource.kind.resource_type
        if rtype is None:
            return frozenset()
        held = self.by_ref.get((rtype, resource.id), frozenset())
        tilde = resource.tilde_name
        if tilde is not None:
            held = held | self.by_ref.get((rtype, tilde), frozenset())
        return held


class ResourceIndex:
    """Resources indexed for the decision: by key, dependants by Actor / task, default
    storages by run, and created resources by token. Build once, reuse for many tokens."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        self.resources: tuple[Resource, ...] = tuple(resources)
        self.by_key: dict[tuple[ResourceKind, str], Resource] = {}
        self.by_tilde: dict[tuple[ResourceKind, str], Resource] = {}
        self.tasks_by_actor: dict[str, list[Resource]] = {}
        self.runs_by_actor: dict[str, list[Resource]] = {}
        self.runs_by_task: dict[str, list[Resource]] = {}
        self.webhooks_by_actor: dict[str, list[Resource]] = {}
        self.webhooks_by_task: dict[str, list[Resource]] = {}
        self.runs_by_storage: dict[tuple[ResourceKind, str], list[Resource]] = {}
        self.created_by: dict[str, list[Resource]] = {}
        #: Position of each resource, by object identity and by ``(kind, id)``.
        self.position: dict[int, int] = {}
        self.position_by_key: dict[tuple[ResourceKind, str], int] = {}
        #: Per position: a small class number. Resources of one class that no grant names
        #: get the same access from a token (see :class:`EffectiveAccess`).
        self.class_of: list[int] = []
        #: Per position: for a run's default storage, the first run it belongs to.
        self.dra_run: list[str | None] = []
        for r in self.resources:
            self.by_key[r.key] = r
            if r.tilde_name:
                self.by_tilde[(r.kind, r.tilde_name)] = r
            if r.created_by_token:
                self.created_by.setdefault(r.created_by_token, []).append(r)
            if r.kind is _K.TASK and r.actor_id:
                self.tasks_by_actor.setdefault(r.actor_id, []).append(r)
            elif r.kind is _K.RUN:
                if r.actor_id:
                    self.runs_by_actor.setdefault(r.actor_id, []).append(r)
                if r.task_id:
                    self.runs_by_task.setdefault(r.task_id, []).append(r)
                for storage in r.default_storages():
                    self.runs_by_storage.setdefault(storage, []).append(r)
            elif r.kind is _K.WEBHOOK:
                if r.actor_id:
                    self.webhooks_by_actor.setdefault(r.actor_id, []).append(r)
                if r.task_id:
                    self.webhooks_by_task.setdefault(r.task_id, []).append(r)

        classes: dict[tuple[object, ...], int] = {}
        for pos, r in enumerate(self.resources):
            self.position[id(r)] = pos
            self.position_by_key.setdefault(r.key, pos)
            runs = self.runs_by_storage.get(r.key)
            self.class_of.append(classes.setdefault(self._shape(r, pos), len(classes)))
            self.dra_run.append(runs[0].id if runs else None)
        self.n_classes = len(classes)
        #: Members of each class, by position.
        self.class_members: list[list[int]] = [[] for _ in range(self.n_classes)]
        for pos, cls in enumerate(self.class_of):
            self.class_members[cls].append(pos)

    def _shape(self, r: Resource, pos: int) -> tuple[object, ...]:
        """What the rules look at besides grants: resources with the same shape that no grant
        names (directly or through what they depend on) get the same access.

        A storage's or run's own general access decides its anonymous read (DOC_GENERAL_ACCESS
        "Per-resource access control"), so it is part of the shape."""
        shape = self._dependency_shape(r, pos)
        if r.general_access is not None and (r.kind in STORAGE_KINDS or r.kind is _K.RUN):
            return (*shape, r.general_access)
        return shape

    def _dependency_shape(self, r: Resource, pos: int) -> tuple[object, ...]:
        """The part of the shape that comes from what ``r`` depends on."""
        if r.kind is _K.TASK:
            return (r.kind, self._ref_state(_K.ACTOR, r.actor_id))
        if r.kind is _K.RUN:
            return (
                r.kind,
                self._ref_state(_K.ACTOR, r.actor_id),
                self._ref_state(_K.TASK, r.task_id),
            )
        if r.kind is _K.WEBHOOK:
            task = self.resolve(_K.TASK, r.task_id) if r.task_id else None
            return (
                r.kind,
                self._ref_state(_K.ACTOR, r.actor_id),
                self._ref_state(_K.TASK, r.task_id),
                self._ref_state(_K.ACTOR, task.actor_id if task else None),
            )
        runs = self.runs_by_storage.get(r.key)
        if not runs:
            return (r.kind,)
        if len(runs) > 1:
            return ("own", pos)  # shared by several runs: always evaluated on its own
        return (r.kind, "default storage", self._dependency_shape(runs[0], pos))

    def _ref_state(self, kind: ResourceKind, ref: str | None) -> int:
        """0: no reference; 1: refers to an indexed resource; 2: to a missing one."""
        if not ref:
            return 0
        return 1 if self.resolve(kind, ref) is not None else 2

    def __len__(self) -> int:
        return len(self.resources)

    def get(self, kind: ResourceKind, ref: str) -> Resource:
        """The resource known by ID or ``username~name``; a bare stub when unknown."""
        found = self.by_key.get((kind, ref)) or self.by_tilde.get((kind, ref))
        return found if found is not None else Resource(kind, ref)

    def resolve(self, kind: ResourceKind, ref: str) -> Resource | None:
        """The resource known by ID or ``username~name``, or None."""
        return self.by_key.get((kind, ref)) or self.by_tilde.get((kind, ref))


class _Evaluator:
    """Answers "how does this token hold permission P on resource R" for one token."""

    def __init__(
        self,
        token_id: str | None,
        scope: _CompiledScope,
        index: ResourceIndex,
        *,
        complete: bool = False,
    ):
        self.token_id = token_id
        self.scope = scope
        self.index = index
        #: ``index`` holds every resource: a reference it lacks does not exist (D1).
        self.complete = complete

    def existing(self, kind: ResourceKind, ref: str) -> Resource | None:
        """A resource an alternative route goes through (a run's Actor or task): its facts, a
        bare stub when merely unknown, or None when it is known not to exist (then there is
        no Actor or task to hold a permission on, D6)."""
        found = self.index.resolve(kind, ref)
        if found is not None or self.complete:
            return found
        return Resource(kind, ref)

    def referenced(self, kind: ResourceKind, ref: str) -> Resource | None:
        """A resource a requirement depends on: its facts, a bare stub when it is merely
        unknown, or None when it is known not to exist."""
        found = self.index.resolve(kind, ref)
        if found is not None or self.complete:
            return found
        return Resource(kind, ref)

    # -- the primitive routes --------------------------------------------------------------

    def direct(self, perm: Permission, r: Resource) -> list[_Via]:
        """Routes through which ``perm`` is held on a resource that takes permissions
        (Actor, task, storage, schedule): created, resource-specific, account-level."""
        vias: list[_Via] = []
        # DOC_TOKENS "Allow tokens to create resources": "the token will gain full access to
        # that resource, regardless of other permissions" (D4). Full access = read + write.
        if (
            self.token_id is not None
            and r.created_by_token == self.token_id
            and r.kind in CREATABLE_KINDS
            and perm in (Permission.READ, Permission.WRITE)
        ):
            vias.append(_Via(GrantRoute.CREATED, "created by this token"))
        rtype = r.kind.resource_type
        if rtype is None:
            return vias
        # DOC_TOKENS "Account-level vs resource-specific permissions"; write implies read (D3).
        held = self.scope.resource_perms(r)
        via = _granting(held, perm) if held else None
        if via is not None:
            vias.append(_Via(GrantRoute.RESOURCE, f"resource {r.label}: {via.value}"))
        group = GROUP_OF[rtype]
        acc = self.scope.account.get(group)
        via = _granting(acc, perm) if acc else None
        if via is not None:
            vias.append(_Via(GrantRoute.ACCOUNT, f"account-level {group.value}: {via.value}"))
        if r.kind in STORAGE_KINDS and perm in (Permission.READ, Permission.WRITE):
            vias.extend(self.default_run_storage(r))
        return vias

    def default_run_storage(self, storage: Resource) -> list[_Via]:
        """D10; DOC_TOKENS "Default run storages": with the toggle on, "the token can
        implicitly access the default storage of ... any Actor run in your account that falls
        within its scope"; off: "the token cannot read or write to default storages"."""
        if not self.scope.default_run_storage_access:
            return []
        for run in self.index.runs_by_storage.get(storage.key, ()):
            if self.run_read(run):
                return [
                    _Via(
                        GrantRoute.DEFAULT_RUN_STORAGE,
                        f"default storage of run {run.id} which it may read",
                    )
                ]
        return []

    def run_read(self, run: Resource) -> list[_Via]:
        """D6: a run is readable with read or run on its Actor, or read on its task.

        DOC_TOKENS "Default run storages": "the token can still trigger and inspect runs";
        DOC_PERMISSIONS: Actor/task "View owner runs" is a collaborator permission, so for
        tokens the Actor's (or task's) own permissions govern its runs.
        """
        vias: list[_Via] = []
        if run.actor_id:
            actor = self.existing(_K.ACTOR, run.actor_id)
            if actor is not None:
                vias += self.direct(Permission.READ, actor)
                vias += self.direct(Permission.RUN, actor)
        if run.task_id:
            task = self.existing(_K.TASK, run.task_id)
            if task is not None:
                vias += self.direct(Permission.READ, task)
        return vias

    def run_abort(self, run: Resource) -> list[_Via]:
        """D6: aborting a run needs run on its Actor."""
        if not run.actor_id:
            return []
        actor = self.existing(_K.ACTOR, run.actor_id)
        return self.direct(Permission.RUN, actor) if actor is not None else []

    # -- composite requirements -------------------------------------------------------------

    def task_run(self, task: Resource, actor_id: str | None) -> list[_Requirement]:
        """DOC_TOKENS "How do I allow a token to run a task?": "Run on the Actor that the task
        is executing" and "Read on the task" (D7)."""
        return [
            _Requirement(f"read on {task.label}", self.direct(Permission.READ, task)),
            self.actor_run_requirement(actor_id),
        ]

    def actor_run_requirement(self, actor_id: str | None) -> _Requirement:
        """Run on an Actor (task create/update/run, schedule action, webhook condition)."""
        if not actor_id:
            return _Requirement("run on an unknown actor", [])
        actor = self.referenced(_K.ACTOR, actor_id)
        if actor is None:
            return _Requirement(
                f"run on actor {actor_id}", [], absent=f"actor {actor_id} does not exist"
            )
        return _Requirement(f"run on {actor.label}", self.direct(Permission.RUN, actor))

    def schedule_actions(self, actions: Iterable[ScheduleAction]) -> list[_Requirement]:
        """DOC_TOKENS "Manual dependencies": "To create or update a Schedule, the token needs
        access not only to the Schedule itself, but also to the Actor (the Run permission) or
        task (the Read permission) that is being scheduled" (D8)."""
        reqs: list[_Requirement] = []
        for action in actions:
            if action.type is ScheduleActionType.RUN_ACTOR:
                reqs.append(self.actor_run_requirement(action.target_id))
            else:
                task = self.referenced(_K.TASK, action.target_id)
                what = f"read on task {action.target_id}"
                if task is None:
                    absent = f"task {action.target_id} does not exist"
                    reqs.append(_Requirement(what, [], absent=absent))
                else:
                    reqs.append(_Requirement(what, self.direct(Permission.READ, task)))
        return reqs

    def webhook_condition(self, hook: Resource) -> list[_Requirement]:
        """DOC_TOKENS "Webhooks configuration": "If you allow a token to run an Actor, it'll
        also be able to manage the Actor's webhooks (similarly for tasks)" (D14): an Actor
        condition needs run on it; a task condition needs read on the task + run on its
        Actor."""
        if hook.task_id:
            task = self.referenced(_K.TASK, hook.task_id)
            if task is None:
                absent = f"task {hook.task_id} does not exist"
                return [_Requirement(f"read on task {hook.task_id}", [], absent=absent)]
            return self.task_run(task, task.actor_id)
        if hook.actor_id:
            return [self.actor_run_requirement(hook.actor_id)]
        return [_Requirement("a webhook condition (actor or task)", [])]

    def webhook_manage(self, hook: Resource) -> list[_Requirement]:
        """Manage an existing webhook: the condition check (D14), whoever created it."""
        return self.webhook_condition(hook)


@dataclass(frozen=True, slots=True)
class _Requirement:
    """One thing an operation needs, with the routes through which the token holds it."""

    what: str
    vias: list[_Via]
    #: Set when what the requirement depends on does not exist (D1: 404).
    absent: str | None = None

    @property
    def met(self) -> bool:
        return bool(self.vias)


def _merge_any(what: str, *alternatives: list[_Via]) -> _Requirement:
    vias: list[_Via] = []
    for alt in alternatives:
        vias.extend(alt)
    return _Requirement(what, vias)


def _deny(status: int, *reasons: str) -> Decision:
    return Decision(allowed=False, status=status, grant=None, reasons=tuple(reasons))


def _utcnow() -> datetime:
    return datetime.now(UTC)


def decide(
    token: TokenContext | None,
    operation: Operation,
    target: Resource | None,
    account: Account,
    *,
    related: Iterable[Resource] | ResourceIndex = (),
    now: datetime | None = None,
    new: Resource | None = None,
    by_name: bool = False,
    facts_complete: bool = False,
) -> Decision:
    """May ``token`` perform ``operation`` on ``target``, and why (rules D1-D18).

    - ``token``: None for a request without a token.
    - ``target``: the existing resource the operation addresses; None when it does not exist
      (-> 404) and for list / users-me / token operations. For a create, the resource to be
      created (its ``id`` empty; a task's ``actor_id``, a schedule's ``actions``, a webhook's
      condition). A storage create whose ``id`` is set is a get-or-create of an existing named
      storage (D4: returned only if the token may read it).
    - ``related``: facts about other resources the rules consult (a task's Actor, a run's
      Actor and task, the runs whose default storages the target is, a webhook's task).
    - ``new``: for an update, the resource as the update would leave it (a task's new Actor, a
      schedule's new actions, a webhook's new condition). Omitted: the current values.
    - ``by_name``: the request addressed the target as ``username~name`` (D11 needs the ID).
    - ``facts_complete``: ``related`` holds every resource of the account, so a reference the
      operation depends on (a task's Actor, a schedule action's target, a webhook's condition)
      that is not there does not exist: 404 (D1), whoever asks. Otherwise such a reference
      is only unknown, and cannot grant anything.
    """
    now = now or _utcnow()
    spec = _SPECS[operation]
    # D11 per resource: DOC_GENERAL_ACCESS "Per-resource access control" (a storage's or run's
    # own setting "takes precedence over the account setting") and "Sharing storages by name"
    # (ANYONE_WITH_NAME_CAN_READ also opens ``username~name``). A target that does not exist
    # has no setting of its own: the account's decides between 401 and 404.
    general = general_access_of(target, account) if target is not None else account.general_access
    anonymous_ok = is_anonymous_readable(operation) and _opens(general, spec.kind, by_name)
    anon_reason = _anonymous_reason(target, account)

    # D12: authentication comes first. DOC_GENERAL_ACCESS: with "Restricted (default)" "a
    # valid token needs to be provided"; with "Anyone with ID can read" resources "can be
    # accessed using just their unique resource ID" without a token.
    if token is None:
        if not anonymous_ok:
            return _deny(401, "no token provided")
        if target is None:
            return _deny(404, "resource does not exist")
        return Decision(True, 200, GrantRoute.ANONYMOUS, (anon_reason,))
    invalid = token.invalid_reason(now)
    if invalid is not None:
        return _deny(401, invalid)

    scope = _CompiledScope.of(token.scope)

    # D13: /v2/users/me and the token API need an unscoped token (NOTES.md: limited-permission
    # tokens do not reach /v2/users/me; DESIGN §3: token API for unscoped tokens only).
    if spec.verb is _Verb.ACCOUNT:
        if scope.unscoped:
            return Decision(True, 200, GrantRoute.UNSCOPED, ("unscoped token",))
        return _deny(403, "missing: an unscoped token (scoped tokens cannot do this)")

    # D2: lists never deny a valid token; they show only what it may read.
    if spec.verb is _Verb.LIST:
        return Decision(True, 200, None, ("lists show only what the token may read",))

    if target is None and spec.verb is not _Verb.CREATE:
        return _deny(404, "resource does not exist")  # D1: 404 whoever asks

    assert target is not None or spec.verb is _Verb.CREATE
    facts = related if isinstance(related, ResourceIndex) else ResourceIndex(related)
    ev = _Evaluator(token.id, scope, facts, complete=facts_complete)
    reqs = _requirements(ev, operation, spec, target, new)
    # D1 for what the operation depends on, in this order: the primary check (the target's
    # own permission, the create permission, a webhook's condition) first, then what it
    # references (a task's Actor, a schedule's actions): a missing reference is a 404 only
    # for a token that passes the primary check, so nothing leaks to one that does not.
    primary_req, rest = reqs[0], reqs[1:]
    absent = [req.absent for req in rest if req.absent]
    if primary_req.absent:
        return _deny(404, primary_req.absent)
    # D15: unscoped tokens may do everything (DOC_TOKENS: "By default, tokens can access all
    # data in your account").
    if scope.unscoped:
        if absent:
            return _deny(404, *absent)
        return Decision(True, 200, GrantRoute.UNSCOPED, ("unscoped token",))
    if primary_req.met and absent:
        return _deny(404, *absent)
    if all(req.met for req in reqs):
        primary = _best(reqs[0].vias)
        assert primary is not None
        reasons = [primary.reason]
        for req in reqs[1:]:
            extra = _best(req.vias)
            assert extra is not None
            reasons.append(extra.reason)
        return Decision(True, 200, primary.route, tuple(dict.fromkeys(reasons)))
    if anonymous_ok:
        return Decision(True, 200, GrantRoute.ANONYMOUS, (anon_reason,))
    reasons = []
    for req in reqs:
        best = _best(req.vias)
        if best is not None:
            reasons.append(best.reason)
        else:
            reasons.append(f"missing: {req.what}" + (f" ({req.absent})" if req.absent else ""))
    return Decision(False, 403, None, tuple(dict.fromkeys(reasons)))


def _requirements(
    ev: _Evaluator,
    operation: Operation,
    spec: _OpSpec,
    target: Resource | None,
    new: Resource | None,
) -> list[_Requirement]:
    """What a scoped token needs for ``operation``; the first requirement is the primary one
    (its route is the decision's grant, D18)."""
    kind, verb = spec.kind, spec.verb
    assert kind is not None
    r = _W_PERM if verb in (_V.UPDATE, _V.DELETE, _V.WRITE_DATA) else Permission.READ

    if verb is _V.CREATE:
        return _create_requirements(ev, kind, target)

    assert target is not None
    after = new or target
    if kind is _K.ACTOR:
        if verb in (_V.UPDATE, _V.DELETE):
            # D5; DOC_TOKENS: "We do not allow scoped tokens to create or modify Actors."
            return [_Requirement("an unscoped token (scoped tokens never modify Actors)", [])]
        if verb is _V.RUN:
            return [_Requirement(f"run on {target.label}", ev.direct(Permission.RUN, target))]
        if verb is _V.RUNS_LIST:
            # D6: reading runs of an Actor needs read or run on it.
            return [
                _merge_any(
                    f"read or run on {target.label}",
                    ev.direct(Permission.READ, target),
                    ev.direct(Permission.RUN, target),
                )
            ]
        return [_Requirement(f"read on {target.label}", ev.direct(Permission.READ, target))]

    if kind is _K.RUN:
        if verb is _V.ABORT:
            return [_Requirement(f"run on actor {target.actor_id}", ev.run_abort(target))]
        what = f"read or run on actor {target.actor_id}"
        if target.task_id:
            what += f", or read on task {target.task_id}"
        return [_Requirement(what, ev.run_read(target))]

    if kind is _K.TASK:
        if verb is _V.RUN:
            return ev.task_run(target, target.actor_id)
        if verb is _V.RUNS_LIST:
            # D6: the runs of a task are readable with read on the task, or read or run on
            # its Actor; listing them is reading them, like "list runs of an actor".
            actor = ev.existing(_K.ACTOR, target.actor_id) if target.actor_id else None
            alts = [ev.direct(Permission.READ, target)]
            if actor is not None:
                alts += [ev.direct(Permission.READ, actor), ev.direct(Permission.RUN, actor)]
            what = f"read on {target.label} (or read or run on actor {target.actor_id})"
            return [_merge_any(what, *alts)]
        own = _Requirement(f"{r.value} on {target.label}", ev.direct(r, target))
        if verb is _V.UPDATE:
            # D7; DOC_TOKENS "Manual dependencies": "to create, update or run a task, the token
            # needs the Run permission on the task's Actor".
            return [own, ev.actor_run_requirement(after.actor_id)]
        return [own]

    if kind is _K.SCHEDULE:
        own = _Requirement(f"{r.value} on {target.label}", ev.direct(r, target))
        if verb is _V.UPDATE:
            return [own, *ev.schedule_actions(after.actions)]
        return [own]

    if kind is _K.WEBHOOK:
        manage = ev.webhook_manage(target)
        if verb is _V.UPDATE and (
            after.actor_id != target.actor_id or after.task_id != target.task_id
        ):
            # Moving a webhook to another Actor/task is creating one there (D14).
            return [*manage, *ev.webhook_condition(after)]
        return manage

    # Storages (D9; DOC_PERMISSIONS "Storage": Read = "View storage information and its
    # data"; Write = "Edit storage settings, push data to it, and remove data from it").
    return [_Requirement(f"{r.value} on {target.label}", ev.direct(r, target))]


_W_PERM = Permission.WRITE
_CREATE_GROUP: Mapping[ResourceKind, AccountGroup] = {
    _K.TASK: AccountGroup.TASKS,
    _K.SCHEDULE: AccountGroup.SCHEDULES,
    _K.DATASET: AccountGroup.STORAGES,
    _K.KEY_VALUE_STORE: AccountGroup.STORAGES,
    _K.REQUEST_QUEUE: AccountGroup.STORAGES,
}


def _create_requirements(
    ev: _Evaluator, kind: ResourceKind, target: Resource | None
) -> list[_Requirement]:
    if kind is _K.ACTOR:
        return [_Requirement("an unscoped token (scoped tokens never create Actors)", [])]
    if kind is _K.WEBHOOK:
        if target is None:
            return [_Requirement("a webhook condition (actor or task)", [])]
        return ev.webhook_condition(target)
    if kind in STORAGE_KINDS and target is not None and target.id:
        # D4: creating a named storage that exists returns it only if the token may read it.
        return [_Requirement(f"read on {target.label}", ev.direct(Permission.READ, target))]
    group = _CREATE_GROUP[kind]
    # DOC_TOKENS "Allow tokens to create resources": "you need to explicitly allow that".
    create: list[_Via] = []
    if Permission.CREATE in ev.scope.account.get(group, frozenset()):
        create.append(_Via(GrantRoute.ACCOUNT, f"account-level {group.value}: create"))
    reqs = [_Requirement(f"create on {group.value}", create)]
    if target is None:
        return reqs
    if kind is _K.TASK:
        reqs.append(ev.actor_run_requirement(target.actor_id))
    elif kind is _K.SCHEDULE:
        reqs.extend(ev.schedule_actions(target.actions))
    return reqs


# ---------------------------------------------------------------------------------------------
# Effective access (for the audit)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Access:
    """What a token holds on one resource: ``permissions`` among read/write/run, and a reason
    per permission (``"write via resource dataset X: write"``).

    Meaning per kind: Actor read/run (write only for unscoped tokens); task read/write and run
    (= read on the task + run on its Actor, D7); storage and schedule read/write; run read (get)
    and write (abort, D6); webhook read/write (= may manage it, D14).
    """

    permissions: frozenset[Permission]
    reasons: tuple[str, ...]
    routes: Mapping[Permission, GrantRoute] = field(default_factory=dict)


_NO_ACCESS = Access(frozenset(), ())
_RWX = (Permission.READ, Permission.WRITE, Permission.RUN)

#: Permissions meaningful per kind in :class:`Access` (an unscoped token holds all of them).
KIND_PERMISSIONS: Mapping[ResourceKind, tuple[Permission, ...]] = {
    _K.ACTOR: _RWX,
    _K.TASK: _RWX,
    _K.DATASET: _RWX[:2],
    _K.KEY_VALUE_STORE: _RWX[:2],
    _K.REQUEST_QUEUE: _RWX[:2],
    _K.SCHEDULE: _RWX[:2],
    _K.RUN: _RWX[:2],
    _K.WEBHOOK: _RWX[:2],
}


def _access_of(ev: _Evaluator, r: Resource, anonymous: str | None) -> Access:
    """The access ``ev``'s token holds on ``r`` (consistent with :func:`decide`).

    ``anonymous``: the reason anyone may read ``r`` (D11), or None when nobody may."""
    options: dict[Permission, list[_Via]] = {}
    if ev.scope.unscoped:
        route = _Via(GrantRoute.UNSCOPED, "unscoped token")
        options = {p: [route] for p in KIND_PERMISSIONS[r.kind]}
    elif r.kind is _K.ACTOR:
        options = {p: ev.direct(p, r) for p in (Permission.READ, Permission.RUN)}
    elif r.kind is _K.TASK:
        options = {p: ev.direct(p, r) for p in (Permission.READ, Permission.WRITE)}
        options[Permission.RUN] = _all_met(ev.task_run(r, r.actor_id))
    elif r.kind is _K.RUN:
        options = {Permission.READ: ev.run_read(r), Permission.WRITE: ev.run_abort(r)}
    elif r.kind is _K.WEBHOOK:
        manage = _all_met(ev.webhook_manage(r))
        options = {Permission.READ: manage, Permission.WRITE: manage}
    else:
        options = {p: ev.direct(p, r) for p in (Permission.READ, Permission.WRITE)}
    if anonymous is not None and Permission.READ in options and not options[Permission.READ]:
        options[Permission.READ] = [_Via(GrantRoute.ANONYMOUS, anonymous)]
    held: list[Permission] = []
    reasons: list[str] = []
    routes: dict[Permission, GrantRoute] = {}
    for perm, vias in options.items():
        best = _best(vias)
        if best is not None:
            held.append(perm)
            routes[perm] = best.route
            reasons.append(f"{perm.value} via {best.reason}")
    if not held:
        return _NO_ACCESS
    return Access(frozenset(held), tuple(reasons), routes)


def _all_met(reqs: list[_Requirement]) -> list[_Via]:
    """Combine requirements that must all hold: the primary one's routes, joined reasons."""
    if not reqs or not all(req.met for req in reqs):
        return []
    rest = [b.reason for req in reqs[1:] if (b := _best(req.vias)) is not None]
    return [_Via(v.route, " + ".join([v.reason, *rest])) for v in reqs[0].vias]


class EffectiveAccess(Mapping[Resource, Access]):
    """Resource -> :class:`Access` for one token, computed lazily.

    Building it costs O(size of the scope + what the named resources fan out to); each
    look-up is O(1). Resources the scope does not name, that the token did not create and
    that do not depend on a named one (a task of a named Actor, a run of a named Actor or
    task, a webhook on either, a default storage of such a run) get the same answer as every
    other such resource of their class, computed once. Keys are the indexed resources;
    ``reachable()`` yields only those with some access.
    """

    def __init__(
        self,
        ev: _Evaluator | None,
        index: ResourceIndex,
        *,
        invalid: str | None = None,
        anonymous: Account | None = None,
    ) -> None:
        self._ev = ev
        self._index = index
        self._invalid = Access(frozenset(), (invalid,)) if invalid else None
        self._anonymous = anonymous
        self._results: dict[int, Access] = {}
        self._class_cache: list[tuple[Access, str | None] | None] = [None] * index.n_classes
        self._touched = self._compute_touched() if ev is not None else set()

    def _compute_touched(self) -> set[int]:
        """Positions whose answer may differ from their class's shared answer."""
        ev, index = self._ev, self._index
        assert ev is not None
        if ev.scope.unscoped:
            return set()
        named: list[Resource] = []
        for rtype, ref in ev.scope.by_ref:
            found = index.resolve(_KIND_OF[rtype], ref)
            if found is not None:
                named.append(found)
        if ev.token_id is not None:
            named.extend(index.created_by.get(ev.token_id, ()))
        actors = {r.id for r in named if r.kind is _K.ACTOR}
        tasks = {r.id for r in named if r.kind is _K.TASK}
        for actor_id in actors:
            for task in index.tasks_by_actor.get(actor_id, ()):
                named.append(task)
                tasks.add(task.id)
        runs: list[Resource] = []
        for actor_id in actors:
            runs.extend(index.runs_by_actor.get(actor_id, ()))
            named.extend(index.webhooks_by_actor.get(actor_id, ()))
        for task_id in tasks:
            runs.extend(index.runs_by_task.get(task_id, ()))
            named.extend(index.webhooks_by_task.get(task_id, ()))
        named.extend(runs)
        if ev.scope.default_run_storage_access:
            for run in runs:
                for key in run.default_storages():
                    found = index.by_key.get(key)
                    if found is not None:
                        named.append(found)
        pos = index.position_by_key
        return {pos[r.key] for r in named if r.key in pos}

    def _at(self, pos: int) -> Access:
        found = self._results.get(pos)
        if found is not None:
            return found
        ev, index = self._ev, self._index
        assert ev is not None
        resource = index.resources[pos]
        if pos in self._touched:
            found = self._results[pos] = _access_of(ev, resource, self._anonymous_for(resource))
            return found
        cls = index.class_of[pos]
        cached = self._class_cache[cls]
        if cached is None:
            access = _access_of(ev, resource, self._anonymous_for(resource))
            named_run = index.dra_run[pos]
            uses_run = any(r is GrantRoute.DEFAULT_RUN_STORAGE for r in access.routes.values())
            cached = self._class_cache[cls] = (access, named_run if uses_run else None)
        access, run_id = cached
        if run_id is None or index.dra_run[pos] == run_id:
            return access
        # Same class, same routes; only the run named in the reason differs.
        other = index.dra_run[pos]
        old, new = f"default storage of run {run_id} ", f"default storage of run {other} "
        found = self._results[pos] = Access(
            access.permissions,
            tuple(reason.replace(old, new) for reason in access.reasons),
            access.routes,
        )
        return found

    def _anonymous_for(self, resource: Resource) -> str | None:
        """Why anyone may read ``resource`` by ID (D11, per resource), or None.

        The resource's own general access is part of its class shape, so a class shares one
        answer (DOC_GENERAL_ACCESS "Per-resource access control")."""
        account = self._anonymous
        if account is None or not anonymous_read_allowed(resource, account):
            return None
        return _anonymous_reason(resource, account)

    def __getitem__(self, resource: Resource) -> Access:
        if self._invalid is not None:
            if resource.key not in self._index.position_by_key:
                raise KeyError(resource)
            return self._invalid
        # The index keeps its resources alive, so their id() values are unique keys.
        pos = self._index.position.get(id(resource))
        if pos is None:
            pos = self._index.position_by_key.get(resource.key)
            if pos is None:
                raise KeyError(resource)
        return self._at(pos)

    def __iter__(self) -> Iterator[Resource]:
        return iter(self._index.resources)

    def __len__(self) -> int:
        return len(self._index.resources)

    def __contains__(self, item: object) -> bool:
        return isinstance(item, Resource) and item.key in self._index.position_by_key

    def table(self) -> list[Access]:
        """Every resource's access, aligned with the index's ``resources`` (the fast way to
        look at all of them: one shared answer per class, then the exceptions)."""
        index = self._index
        if self._invalid is not None:
            return [self._invalid] * len(index.resources)
        shared: list[Access] = []
        exceptions: list[int] = list(self._touched)
        for cls, members in enumerate(index.class_members):
            rep = next((p for p in members if p not in self._touched), None)
            if rep is None:
                shared.append(_NO_ACCESS)  # every member is evaluated on its own
                continue
            shared.append(self._at(rep))
            cached = self._class_cache[cls]
            if cached is not None and cached[1] is not None:
                exceptions.extend(members)  # reasons name each storage's own run
        out = [shared[cls] for cls in index.class_of]
        at = self._at
        for pos in exceptions:
            out[pos] = at(pos)
        return out

    def pairs(self) -> Iterator[tuple[Resource, Access]]:
        """``(resource, access)`` for every indexed resource, via :meth:`table`."""
        return zip(self._index.resources, self.table(), strict=True)

    def reachable(self) -> Iterator[tuple[Resource, Access]]:
        """Resources on which the token holds at least one permission."""
        return ((r, a) for r, a in self.pairs() if a.permissions)


_INDEX_CACHE: list[tuple[tuple[Resource, ...], ResourceIndex]] = []


def _index_of(resources: ResourceIndex | Iterable[Resource]) -> ResourceIndex:
    if isinstance(resources, ResourceIndex):
        return resources
    # A tuple is immutable: reuse its index when the same tuple is passed again (an audit
    # calls this once per token with the same resources).
    if isinstance(resources, tuple):
        for cached, index in _INDEX_CACHE:
            if cached is resources:
                return index
        index = ResourceIndex(resources)
        _INDEX_CACHE[:] = [(resources, index)]
        return index
    return ResourceIndex(resources)


def effective_access(
    token_id: str | None,
    scope: Scope,
    resources: ResourceIndex | Iterable[Resource],
    account: Account,
    *,
    now: datetime | None = None,
    expires_at: datetime | None = None,
    revoked: bool = False,
    include_anonymous: bool = False,
) -> EffectiveAccess:
    """For every resource, which of read/write/run the token holds and why (for the audit).

    Same rules as :func:`decide`. Pass a :class:`ResourceIndex` (or the same tuple each time)
    when evaluating many tokens against one account. ``include_anonymous`` adds reads that
    general resource access opens to anyone with the ID (D11): each storage's or run's own
    ``general_access`` when set, else the account's. They are not the token's own access, so
    they are off by default.
    """
    index = _index_of(resources)
    token = TokenContext(token_id or "", scope, expires_at, revoked)
    invalid = token.invalid_reason(now or _utcnow())
    if invalid is not None:
        return EffectiveAccess(None, index, invalid=invalid)
    ev = _Evaluator(token_id, _CompiledScope.of(scope), index, complete=True)
    # Per resource (DOC_GENERAL_ACCESS "Per-resource access control"): a shared storage of a
    # restricted account is readable by anyone, a restricted one of an open account is not.
    return EffectiveAccess(ev, index, anonymous=account if include_anonymous else None)


# ---------------------------------------------------------------------------------------------
# HTTP routes -> required access (for failover: which token to try for a request)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequiredAccess:
    """What an API request needs: the operation, the resource it addresses (as written in the
    path: an ID or ``username~name``), the permission on it and the account-level group that
    could grant it. ``permission`` is None for operations only unscoped tokens may do."""

    operation: Operation
    resource_type: ResourceKind | None
    resource_ref: str | None
    permission: Permission | None
    group: AccountGroup | None
    #: For a run's default storage addressed through the run (``/actor-runs/{id}/dataset``):
    #: the run's ID (``resource_ref`` is then None: the storage's ID is not in the path).
    via_run: str | None = None


_COLLECTIONS: Mapping[str, ResourceKind] = {
    "acts": _K.ACTOR,
    "actors": _K.ACTOR,
    "actor-tasks": _K.TASK,
    "actor-runs": _K.RUN,
    "datasets": _K.DATASET,
    "key-value-stores": _K.KEY_VALUE_STORE,
    "request-queues": _K.REQUEST_QUEUE,
    "schedules": _K.SCHEDULE,
    "webhooks": _K.WEBHOOK,
}
_PREFIX: Mapping[ResourceKind, str] = {
    _K.ACTOR: "ACTOR",
    _K.TASK: "TASK",
    _K.RUN: "RUN",
    _K.DATASET: "DATASET",
    _K.KEY_VALUE_STORE: "KV_STORE",
    _K.REQUEST_QUEUE: "REQUEST_QUEUE",
    _K.SCHEDULE: "SCHEDULE",
    _K.WEBHOOK: "WEBHOOK",
}
_BY_METHOD_ITEM = {"GET": "GET", "PUT": "UPDATE", "PATCH": "UPDATE", "DELETE": "DELETE"}
_RUN_SUFFIXES = frozenset({"runs", "run-sync", "run-sync-get-dataset-items"})
_RUN_STORAGES: Mapping[str, ResourceKind] = {
    "dataset": _K.DATASET,
    "key-value-store": _K.KEY_VALUE_STORE,
    "request-queue": _K.REQUEST_QUEUE,
}


def _route(method: str, kind: ResourceKind, rest: list[str]) -> tuple[Operation, str | None] | None:
    prefix = _PREFIX[kind]
    if not rest:
        if method == "GET":
            return Operation[f"{prefix}_LIST"], None
        if method == "POST" and kind is not _K.RUN:
            return Operation[f"{prefix}_CREATE"], None
        return None
    ref, tail = rest[0], rest[1:]
    if not tail:
        name = _BY_METHOD_ITEM.get(method)
        if name is None or (kind is _K.RUN and name != "GET"):
            return None
        return Operation[f"{prefix}_{name}"], ref
    sub = tail[0]
    if kind in (_K.ACTOR, _K.TASK) and sub in _RUN_SUFFIXES:
        if len(tail) == 2 and sub == "runs" and method == "GET":
            if tail[1] == "last":  # the last run: reading runs of the Actor / task (D6)
                return Operation[f"{prefix}_RUNS_LIST"], ref
            return Operation.RUN_GET, tail[1]
        if len(tail) != 1:
            return None
        if sub == "runs" and method == "GET":
            return Operation[f"{prefix}_RUNS_LIST"], ref
        if method == "POST" or (sub != "runs" and method == "GET"):
            return Operation[f"{prefix}_RUN"], ref
        return None
    table: dict[tuple[ResourceKind, str, str, int], Operation] = {
        (_K.RUN, "abort", "POST", 1): Operation.RUN_ABORT,
        (_K.DATASET, "items", "GET", 1): Operation.DATASET_ITEMS_GET,
        (_K.DATASET, "items", "POST", 1): Operation.DATASET_ITEMS_PUSH,
        (_K.KEY_VALUE_STORE, "keys", "GET", 1): Operation.KV_STORE_KEYS,
        (_K.KEY_VALUE_STORE, "records", "GET", 2): Operation.RECORD_GET,
        (_K.KEY_VALUE_STORE, "records", "PUT", 2): Operation.RECORD_PUT,
        (_K.KEY_VALUE_STORE, "records", "POST", 2): Operation.RECORD_PUT,
        (_K.KEY_VALUE_STORE, "records", "DELETE", 2): Operation.RECORD_DELETE,
    }
    op = table.get((kind, sub, method, len(tail)))
    return (op, ref) if op is not None else None


def _permission_for(operation: Operation) -> tuple[Permission | None, AccountGroup | None]:
    spec = _SPECS[operation]
    kind, verb = spec.kind, spec.verb
    if kind is None:
        return None, None
    rtype = kind.resource_type
    # Runs and webhooks are governed through Actors (D6, D14).
    group = GROUP_OF[rtype] if rtype is not None else AccountGroup.ACTORS
    if kind is _K.WEBHOOK:
        return Permission.RUN, group
    perm = {
        _V.LIST: Permission.READ,
        _V.GET: Permission.READ,
        _V.RUNS_LIST: Permission.READ,
        _V.CREATE: Permission.CREATE,
        _V.UPDATE: Permission.WRITE,
        _V.DELETE: Permission.WRITE,
        _V.WRITE_DATA: Permission.WRITE,
        _V.ABORT: Permission.RUN,
        # Task run: Read on the task (the Run on its Actor is the other half, D7).
        _V.RUN: Permission.RUN if kind is _K.ACTOR else Permission.READ,
    }[verb]
    return perm, group


def required_access(method: str, path: str) -> RequiredAccess | None:
    """Map an HTTP method and Apify API path to what it needs; None for unknown paths.

    Accepts paths with or without ``/v2``, full URLs, query strings, ``/acts`` or
    ``/actors``, and resources as IDs or ``username~name`` (``~`` may be %-encoded).
    """
    method = method.upper()
    if method == "HEAD":
        method = "GET"
    raw = urlsplit(path).path if "://" in path else path.split("?", 1)[0]
    segments = [unquote(s) for s in raw.split("/") if s]
    if segments and segments[0] == "v2":
        segments = segments[1:]
    if not segments:
        return None
    head, rest = segments[0], segments[1:]
    if head == "users":
        if rest == ["me"] and method == "GET":
            return RequiredAccess(Operation.USERS_ME, None, None, None, None)
        if rest[:2] == ["me", "tokens"] and len(rest) <= 3:
            return RequiredAccess(Operation.TOKENS_MANAGE, None, None, None, None)
        return None
    kind = _COLLECTIONS.get(head)
    if kind is None:
        return None
    via_run: str | None = None
    storage = _RUN_STORAGES.get(rest[1]) if kind is _K.RUN and len(rest) >= 2 else None
    if storage is not None:
        # A run's default storage through the run: same operations as on the storage.
        via_run, kind, rest = rest[0], storage, ["", *rest[2:]]
    routed = _route(method, kind, rest)
    if routed is None or (via_run is not None and is_create_operation(routed[0])):
        return None
    operation, ref = routed
    perm, group = _permission_for(operation)
    op_kind = _SPECS[operation].kind
    if via_run is not None:
        ref = None
    return RequiredAccess(operation, op_kind, ref, perm, group, via_run)


def scope_covers(
    scope: Scope,
    access: RequiredAccess,
    *,
    general_access: GeneralAccess | None = None,
) -> bool | None:
    """Does ``scope`` allow ``access`` without knowing the resources?

    True: it clearly does; False: it clearly does not; None: it depends on facts the scope
    does not hold (a task's Actor, a run's Actor, who created the resource, whether it is a
    run's default storage, the account's general resource access, or an ID/``username~name``
    alias). Pass ``general_access`` when known to rule the anonymous-read route in or out: the
    setting that applies to the addressed resource (its own when it has one, else the
    account's, :func:`general_access_of`). The account's setting alone does not rule it out:
    one storage may be shared on a restricted account (DOC_GENERAL_ACCESS "Per-resource
    access control").
    """
    if scope.unscoped:
        return True  # D15
    operation = access.operation
    spec = _SPECS[operation]
    kind, verb = spec.kind, spec.verb
    if verb is _V.ACCOUNT:
        return False  # D13
    if verb is _V.LIST:
        return True  # D2
    cs = _CompiledScope.of(scope)
    acc = {g: _implied(p) for g, p in cs.account.items()}
    actors_run = Permission.RUN in acc.get(AccountGroup.ACTORS, frozenset())
    any_actor_run = actors_run or any(
        t is ResourceType.ACTOR and Permission.RUN in p for (t, _), p in cs.by_ref.items()
    )
    assert kind is not None
    if kind is _K.ACTOR and verb in (_V.CREATE, _V.UPDATE, _V.DELETE):
        return False  # D5
    if kind is _K.WEBHOOK:
        tasks_read = Permission.READ in acc.get(AccountGroup.TASKS, frozenset())
        if actors_run and tasks_read:
            return True
        # Without Run on any Actor it can neither manage nor have created a webhook.
        return None if any_actor_run else False
    if verb is _V.CREATE:
        group = _CREATE_GROUP[kind]
        if Permission.CREATE not in acc.get(group, frozenset()):
            # A create of an existing named storage is a get-or-create (D4).
            return None if kind in STORAGE_KINDS else False
        if kind is _K.TASK:
            return True if actors_run else None
        if kind is _K.SCHEDULE:
            return None  # depends on the actions' targets (D8)
        return True
    ref = access.resource_ref
    if access.via_run is not None and kind in STORAGE_KINDS:
        rtype = kind.resource_type
        assert rtype is not None and access.permission is not None
        if access.permission in acc.get(AccountGroup.STORAGES, frozenset()):
            return True
        possible = (
            cs.default_run_storage_access  # D10, if it may read the run
            or any(t is rtype for t, _ in cs.by_ref)  # a grant may name this storage
            or (access.permission is Permission.READ and general_access is not _RESTRICTED)
        )
        return None if possible else False
    if ref is None:
        return None
    if kind is _K.RUN:
        need = Permission.RUN if verb is _V.ABORT else Permission.READ
        actor_perms = acc.get(AccountGroup.ACTORS, frozenset())
        if need in actor_perms or (need is Permission.READ and actors_run):
            return True
        possible = any_actor_run or (
            need is Permission.READ
            and (
                bool(acc.get(AccountGroup.TASKS))
                or any(t in (ResourceType.ACTOR, ResourceType.TASK) for t, _ in cs.by_ref)
                or general_access is not GeneralAccess.RESTRICTED
            )
        )
        return None if possible else False
    rtype = kind.resource_type
    assert rtype is not None
    held = acc.get(GROUP_OF[rtype], frozenset()) | _implied(cs.by_ref.get((rtype, ref), ()))
    needed = access.permission
    assert needed is not None
    actor_access = acc.get(AccountGroup.ACTORS, frozenset()) & {Permission.READ, Permission.RUN}
    if kind is _K.ACTOR and verb is _V.RUNS_LIST:
        wanted = {Permission.READ, Permission.RUN}  # D6: read or run on the Actor
    else:
        wanted = {needed}
    if held & wanted:
        if (kind is _K.TASK and verb in (_V.RUN, _V.UPDATE)) and not actors_run:
            return None  # also needs Run on the task's Actor (D7)
        return True
    if kind is _K.TASK and verb is _V.RUNS_LIST:
        # D6: the task's runs are also readable through its Actor.
        if actor_access:
            return True
        if any(
            t is ResourceType.ACTOR and _implied(p) & {Permission.READ, Permission.RUN}
            for (t, _), p in cs.by_ref.items()
        ):
            return None
    # Not granted by what the scope names; could another route apply?
    if kind in CREATABLE_KINDS and Permission.CREATE in acc.get(GROUP_OF[rtype], frozenset()):
        return None  # the token may have created it (D4)
    if kind in STORAGE_KINDS and cs.default_run_storage_access:
        return None  # may be a default storage of a run it may read (D10)
    if (
        kind in STORAGE_KINDS
        and needed is Permission.READ
        and (general_access is None or _opens(general_access, kind, "~" in ref))
    ):
        # Anyone with the ID (or, for ANYONE_WITH_NAME_CAN_READ, the name) may read, if the
        # setting that applies to the storage allows it (D11, DOC_GENERAL_ACCESS).
        return None
    if any(t is rtype for t, _ in cs.by_ref):
        return None  # a grant by ID may name this ``username~name`` (or the reverse), D16
    return False


# ---------------------------------------------------------------------------------------------
# Escalation facts (for the audit)
# ---------------------------------------------------------------------------------------------


def unscoped_run_paths(scope: Scope) -> tuple[str, ...]:
    """Ways a token starts runs that receive an *unscoped* run token (empty: none).

    DOC_TOKENS "Actor execution": in "Full access" mode "Apify will inject an unscoped token
    to the Actor runtime"; in "Restricted access" mode the run gets the same scope. So a
    scope in FULL mode with Run on any Actor (account-level: every Actor) reaches everything
    through the runs it starts. (Running a task also needs Run on its Actor, so tasks add no
    path of their own.)
    """
    if scope.unscoped:
        return ("unscoped token: its runs get an unscoped token",)
    if scope.actor_run_mode is not RunMode.FULL:
        return ()
    paths: list[str] = []
    if Permission.RUN in scope.account_permissions(AccountGroup.ACTORS):
        paths.append("run mode full + account-level actors: run (any Actor)")
    for grant in scope.resources:
        if grant.type is ResourceType.ACTOR and Permission.RUN in grant.permissions:
            paths.append(f"run mode full + resource actor {grant.id}: run")
    return tuple(paths)


def schedule_escalation_paths(scope: Scope) -> tuple[str, ...]:
    """Ways a token makes a schedule start runs (empty: none). Scheduled runs always get an
    unscoped token, whatever the run mode (DOC_TOKENS "Schedules": "this token is always
    unscoped").

    It needs to create a schedule (account-level schedules: create) or update one (write on a
    schedule), plus a target it may schedule (D8: Run on an Actor or Read on a task).
    """
    if scope.unscoped:
        return ("unscoped token: may schedule anything",)
    can: list[str] = []
    sched = _implied(scope.account_permissions(AccountGroup.SCHEDULES))
    if Permission.CREATE in sched:
        can.append("account-level schedules: create")
    if Permission.WRITE in sched:
        can.append("account-level schedules: write")
    can += [
        f"resource schedule {g.id}: write"
        for g in scope.resources
        if g.type is ResourceType.SCHEDULE and Permission.WRITE in g.permissions
    ]
    targets: list[str] = []
    if Permission.RUN in scope.account_permissions(AccountGroup.ACTORS):
        targets.append("account-level actors: run (any Actor)")
    if Permission.READ in _implied(scope.account_permissions(AccountGroup.TASKS)):
        targets.append("account-level tasks: read (any task)")
    for g in scope.resources:
        if g.type is ResourceType.ACTOR and Permission.RUN in g.permissions:
            targets.append(f"resource actor {g.id}: run")
        elif g.type is ResourceType.TASK and Permission.READ in _implied(g.permissions):
            targets.append(f"resource task {g.id}: read")
    if not can or not targets:
        return ()
    return tuple(f"{c} + {t}" for c in can for t in targets)


def webhook_conditions(
    token_id: str | None, scope: Scope, resources: ResourceIndex | Iterable[Resource]
) -> tuple[tuple[Resource, str], ...]:
    """The Actors and tasks on which the token may create webhooks, with reasons.

    DOC_TOKENS "Webhooks configuration": a token that may run an Actor may manage its
    webhooks (tasks: Read on the task + Run on its Actor, D14), and "that webhook will be
    dispatched with a token with the same limited permissions" — so these webhooks act with
    this scope (or unscoped, for an unscoped token).
    """
    index = _index_of(resources)
    ev = _Evaluator(token_id, _CompiledScope.of(scope), index)
    out: list[tuple[Resource, str]] = []
    for r in index.resources:
        if r.kind is _K.ACTOR:
            reqs = [ev.actor_run_requirement(r.id)]
        elif r.kind is _K.TASK:
            reqs = ev.task_run(r, r.actor_id)
        else:
            continue
        if scope.unscoped:
            out.append((r, "unscoped token"))
            continue
        vias = _all_met(reqs)
        best = _best(vias)
        if best is not None:
            out.append((r, best.reason))
    return tuple(out)
