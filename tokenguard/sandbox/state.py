"""The sandbox's in-memory account: resources, tokens, ids and the sandbox clock.

Everything here is mutated only on the server's event-loop thread (aiohttp runs every handler
on one loop), so no locks are needed. Records are mutable slotted dataclasses on purpose: they
model server-side rows that change (renames, pushed items, revocation), unlike the frozen
value objects elsewhere in tokenguard.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

_ALNUM = string.ascii_letters + string.digits
ID_LENGTH = 17
TOKEN_PREFIX = "apify_api_"
TOKEN_BODY_LENGTH = 36


def new_id() -> str:
    """A 17-character alphanumeric resource ID, like Apify's."""
    return "".join(secrets.choice(_ALNUM) for _ in range(ID_LENGTH))


def new_token_secret() -> str:
    """A fresh API token: ``apify_api_`` + 36 alphanumerics from :mod:`secrets`."""
    return TOKEN_PREFIX + "".join(secrets.choice(_ALNUM) for _ in range(TOKEN_BODY_LENGTH))


def iso(value: datetime | None) -> str | None:
    """Apify's timestamp format: ISO 8601 UTC with milliseconds and ``Z``."""
    if value is None:
        return None
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


class SandboxClock:
    """Wall-clock time plus an offset that the test controls can only move forward.

    All sandbox time (createdAt, token expiry) comes from here, so tests can expire tokens
    with ``POST /v2/_sandbox/clock`` instead of sleeping.
    """

    __slots__ = ("_offset",)

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        """The sandbox's current time (timezone-aware UTC)."""
        return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward by ``seconds`` (>= 0) and return the new time."""
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        self._offset += timedelta(seconds=seconds)
        return self.now()


class Kind(StrEnum):
    """Resource kinds the sandbox stores. Values match the token API's resource types."""

    ACTOR = "actor"
    TASK = "task"
    RUN = "run"
    DATASET = "dataset"
    KEY_VALUE_STORE = "key-value-store"
    REQUEST_QUEUE = "request-queue"
    SCHEDULE = "schedule"
    WEBHOOK = "webhook"


STORAGE_KINDS = frozenset({Kind.DATASET, Kind.KEY_VALUE_STORE, Kind.REQUEST_QUEUE})

#: Kinds addressable as ``username~name``.
NAMED_KINDS = frozenset(
    {Kind.ACTOR, Kind.TASK, Kind.DATASET, Kind.KEY_VALUE_STORE, Kind.REQUEST_QUEUE, Kind.SCHEDULE}
)


class GeneralResourceAccess(StrEnum):
    """The account's "General resource access" setting."""

    RESTRICTED = "RESTRICTED"
    ANYONE_WITH_ID_CAN_READ = "ANYONE_WITH_ID_CAN_READ"


class ResourceAccess(StrEnum):
    """A storage's own general access ("Share" dialog); it overrides the account setting
    unless it is FOLLOW_USER_SETTING (the default)."""

    FOLLOW_USER_SETTING = "FOLLOW_USER_SETTING"
    RESTRICTED = "RESTRICTED"
    ANYONE_WITH_ID_CAN_READ = "ANYONE_WITH_ID_CAN_READ"
    ANYONE_WITH_NAME_CAN_READ = "ANYONE_WITH_NAME_CAN_READ"


@dataclass(slots=True)
class Resource:
    """Fields every stored resource has. ``created_by`` is the creating token's ID (D4)."""

    kind: Kind
    id: str
    name: str | None
    created_at: datetime
    modified_at: datetime
    created_by: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Record:
    """One key-value store record."""

    value: bytes
    content_type: str


@dataclass(slots=True)
class Run(Resource):
    """An Actor run (finishes SUCCEEDED at once) and its default storages."""

    act_id: str = ""
    task_id: str | None = None
    status: str = "SUCCEEDED"
    dataset_id: str = ""
    kvs_id: str = ""
    rq_id: str = ""
    finished_at: datetime | None = None


@dataclass(slots=True)
class Dataset(Resource):
    """A dataset and its items."""

    items: list[Any] = field(default_factory=list)
    run_id: str | None = None


@dataclass(slots=True)
class KeyValueStore(Resource):
    """A key-value store and its records (sorted by key when listed)."""

    records: dict[str, Record] = field(default_factory=dict)
    run_id: str | None = None


@dataclass(slots=True)
class RequestQueue(Resource):
    """A request queue (the sandbox keeps no requests in it)."""

    run_id: str | None = None


@dataclass(slots=True)
class TokenRow:
    """A token as the sandbox stores it. ``scope`` None means unscoped (full access)."""

    id: str
    name: str
    description: str | None
    secret: str = field(repr=False)  # never in a repr, a log line or a test failure
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    expires_at: datetime | None = None
    scope: dict[str, Any] | None = None

    def expired(self, now: datetime) -> bool:
        """True once the sandbox clock has reached the expiry."""
        return self.expires_at is not None and now >= self.expires_at

    @property
    def preview(self) -> str:
        """Last 4 characters: enough to recognise, useless to attack."""
        return self.secret[-4:]


@dataclass(slots=True)
class SandboxState:
    """The whole account: one user, resources by kind, tokens and settings."""

    username: str
    user_id: str = field(default_factory=new_id)
    clock: SandboxClock = field(default_factory=SandboxClock)
    general_access: GeneralResourceAccess = GeneralResourceAccess.RESTRICTED
    resources: dict[Kind, dict[str, Resource]] = field(
        default_factory=lambda: {kind: {} for kind in Kind}
    )
    names: dict[Kind, dict[str, str]] = field(default_factory=lambda: {kind: {} for kind in Kind})
    tokens: dict[str, TokenRow] = field(default_factory=dict, repr=False)
    tokens_by_secret: dict[str, str] = field(default_factory=dict, repr=False)
    admin_token_id: str = ""
    run_of_storage: dict[str, str] = field(default_factory=dict)

    # -- resources -------------------------------------------------------------------------

    def add(self, resource: Resource) -> Resource:
        """Store a resource (its name must be free for its kind)."""
        self.resources[resource.kind][resource.id] = resource
        if resource.name is not None:
            self.names[resource.kind][resource.name] = resource.id
        return resource

    def remove(self, resource: Resource) -> None:
        """Delete a resource and its name."""
        self.resources[resource.kind].pop(resource.id, None)
        if resource.name is not None and self.names[resource.kind].get(resource.name) == (
            resource.id
        ):
            del self.names[resource.kind][resource.name]

    def rename(self, resource: Resource, name: str | None) -> None:
        """Change a resource's name, keeping the name index right."""
        if resource.name is not None:
            self.names[resource.kind].pop(resource.name, None)
        resource.name = name
        if name is not None:
            self.names[resource.kind][name] = resource.id

    def lookup(self, kind: Kind, ref: str) -> tuple[Resource | None, bool]:
        """Find a resource by ID or ``username~name``; returns (resource, addressed_by_name)."""
        if "~" in ref:
            user, _, name = ref.partition("~")
            if user != self.username or kind not in NAMED_KINDS:
                return None, True
            rid = self.names[kind].get(name)
            return (self.resources[kind].get(rid) if rid else None), True
        return self.resources[kind].get(ref), False

    def get(self, kind: Kind, rid: str) -> Resource | None:
        """A resource by ID only."""
        return self.resources[kind].get(rid)

    def all(self, kind: Kind) -> list[Resource]:
        """All resources of a kind in creation order."""
        return list(self.resources[kind].values())

    def new_resource(
        self,
        kind: Kind,
        name: str | None,
        *,
        created_by: str | None = None,
        **fields: Any,
    ) -> Resource:
        """Create and store a plain resource of ``kind``."""
        now = self.clock.now()
        return self.add(Resource(kind, new_id(), name, now, now, created_by, dict(fields)))

    def new_storage(
        self, kind: Kind, name: str | None, *, created_by: str | None = None
    ) -> Resource:
        """Create and store an empty dataset, key-value store or request queue."""
        now = self.clock.now()
        rid = new_id()
        storage: Resource
        if kind is Kind.DATASET:
            storage = Dataset(kind, rid, name, now, now, created_by)
        elif kind is Kind.KEY_VALUE_STORE:
            storage = KeyValueStore(kind, rid, name, now, now, created_by)
        elif kind is Kind.REQUEST_QUEUE:
            storage = RequestQueue(kind, rid, name, now, now, created_by)
        else:  # pragma: no cover - programming error
            raise ValueError(f"not a storage kind: {kind}")
        return self.add(storage)

    def start_run(
        self, actor: Resource, *, task: Resource | None = None, run_input: Record | None = None
    ) -> Run:
        """A run that finishes SUCCEEDED at once, with fresh default storages."""
        now = self.clock.now()
        run = Run(Kind.RUN, new_id(), None, now, now, act_id=actor.id, finished_at=now)
        run.task_id = task.id if task is not None else None
        dataset = self.new_storage(Kind.DATASET, None)
        kvs = self.new_storage(Kind.KEY_VALUE_STORE, None)
        queue = self.new_storage(Kind.REQUEST_QUEUE, None)
        for storage in (dataset, kvs, queue):
            assert isinstance(storage, Dataset | KeyValueStore | RequestQueue)
            storage.run_id = run.id
            self.run_of_storage[storage.id] = run.id
        run.dataset_id, run.kvs_id, run.rq_id = dataset.id, kvs.id, queue.id
        if run_input is not None:
            assert isinstance(kvs, KeyValueStore)
            kvs.records["INPUT"] = run_input
        actor.fields["totalRuns"] = int(actor.fields.get("totalRuns", 0)) + 1
        actor.fields["lastRunStartedAt"] = now
        if task is not None:
            task.fields["totalRuns"] = int(task.fields.get("totalRuns", 0)) + 1
        self.add(run)
        return run

    # -- tokens ----------------------------------------------------------------------------

    def add_token(
        self,
        name: str,
        *,
        scope: dict[str, Any] | None,
        expires_at: datetime | None = None,
        description: str | None = None,
    ) -> TokenRow:
        """Create a token. ``scope`` must already be validated and resolved (see grants)."""
        secret = new_token_secret()
        row = TokenRow(
            id=new_id(),
            name=name,
            description=description,
            secret=secret,
            created_at=self.clock.now(),
            expires_at=expires_at,
            scope=scope,
        )
        self.tokens[row.id] = row
        self.tokens_by_secret[secret] = row.id
        return row

    def revoke_token(self, token_id: str) -> bool:
        """Delete a token; False when it does not exist."""
        row = self.tokens.pop(token_id, None)
        if row is None:
            return False
        self.tokens_by_secret.pop(row.secret, None)
        return True

    def token_by_secret(self, secret: str) -> TokenRow | None:
        """The token whose secret is ``secret`` (revoked tokens are gone)."""
        tid = self.tokens_by_secret.get(secret)
        return self.tokens.get(tid) if tid else None

    @property
    def admin_token(self) -> TokenRow:
        """The sandbox's own unscoped admin token."""
        return self.tokens[self.admin_token_id]

    def token_named(self, name: str) -> TokenRow:
        """A token by its name (seeded tokens have unique names); KeyError if absent."""
        for row in self.tokens.values():
            if row.name == name:
                return row
        raise KeyError(name)


def new_state(username: str) -> SandboxState:
    """An account with just its user and the unscoped admin token ``sandbox-admin``."""
    state = SandboxState(username=username)
    admin = state.add_token(
        "sandbox-admin", scope=None, description="The sandbox's own admin token (unscoped)."
    )
    state.admin_token_id = admin.id
    return state
