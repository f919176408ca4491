"""The audit's result as typed, frozen data: what the CLI renders and scripts consume.

Keys tie the parts together: a token's ``key`` (its vault record name, ``env:VAR``,
``file:NAME``, ``management`` or ``platform:ID``) and a resource's ``key`` (``<kind>:<id>``)
are used by access entries, escalation paths and findings alike.

Access is held per token lazily (:class:`TokenReach` wraps the scope model's
``EffectiveAccess``, where resources the scope does not name share one answer per class), so
a report over 1,000 tokens x 10,000 resources is cheap to build. :meth:`AuditReport.iter_access`
expands it into one :class:`Access` per (token, resource) with any permission, which is what
the formats show.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tokenguard.audit.findings import Finding, Severity
from tokenguard.permissions import Access as ModelAccess
from tokenguard.permissions import (
    GeneralAccess,
    GrantRoute,
    Permission,
    ResourceKind,
    Scope,
)

#: Version of the report layout; the JSON Schema file carries the same number.
SCHEMA_VERSION = 1


#: How a token reaches a resource (the sandbox's ``X-Sandbox-Grant`` names, D18).
Route = GrantRoute


class TokenSource(StrEnum):
    """Where the audit learned of a token."""

    VAULT = "vault"
    ENV = "env"
    FILE = "file"
    MANAGEMENT = "management"
    PLATFORM = "platform"


class AuditMode(StrEnum):
    """Static (scope model only) or live (plus probes)."""

    STATIC = "static"
    LIVE = "live"


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """A token in the inventory. Never the secret: a fingerprint when the audit holds it."""

    key: str
    name: str
    sources: tuple[TokenSource, ...]
    governed: bool
    fingerprint: str | None = None
    token_id: str | None = None
    policy: str | None = None
    status: str | None = None
    scope: Scope | None = None  # None: unknown (not in the vault, not matched on the platform)
    created_at: datetime | None = None
    expires_at: datetime | None = None
    on_platform: bool | None = None  # None: could not tell

    @property
    def unscoped(self) -> bool:
        """True for a full-access token."""
        return self.scope is not None and self.scope.unscoped


@dataclass(frozen=True, slots=True)
class ResourceEntry:
    """A resource of the account."""

    key: str
    kind: ResourceKind
    id: str
    name: str | None = None
    #: Facts the reasoning used, as short strings (e.g. ``actor:ID`` of a task's Actor).
    related: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """Name when it has one, else ID."""
        return self.name or self.id


def resource_key(kind: ResourceKind | str, rid: str) -> str:
    """The report key of a resource."""
    return f"{ResourceKind(kind).value}:{rid}"


@dataclass(frozen=True, slots=True)
class Grant:
    """One permission held and the reason for it (``route`` + human text)."""

    permission: Permission
    route: Route
    reason: str


@dataclass(frozen=True, slots=True)
class Access:
    """Everything one token holds on one resource."""

    token: str
    resource: str
    grants: tuple[Grant, ...]

    @property
    def permissions(self) -> frozenset[Permission]:
        """The permissions held (any route)."""
        return frozenset(g.permission for g in self.grants)


@dataclass(frozen=True, slots=True)
class TokenReach:
    """A token's access to every resource, looked up lazily (see module doc).

    ``access`` maps resource keys to what :func:`tokenguard.permissions.effective_access`
    computed; ``None`` when the token's scope is unknown (``note`` says why).
    """

    token: str
    access: Mapping[str, ModelAccess] | None
    note: str | None = None

    def grants_on(self, resource: ResourceEntry) -> tuple[Grant, ...]:
        """The grants the token holds on ``resource`` (empty: none or unknown)."""
        if self.access is None:
            return ()
        # The audit's own mapping parses each shared answer once (see reach.KeyedAccess).
        fast = getattr(self.access, "grants", None)
        if fast is not None:
            grants: tuple[Grant, ...] = fast(resource.key)
            return grants
        found = self.access.get(resource.key)
        if found is None or not found.permissions:
            return ()
        return grants_of(found)


def grants_of(access: ModelAccess) -> tuple[Grant, ...]:
    """Split the model's per-permission reasons (``"read via ..."``) into grants."""
    out: list[Grant] = []
    for text in access.reasons:
        head, sep, reason = text.partition(" via ")
        try:
            perm = Permission(head)
        except ValueError:
            continue
        if not sep or perm not in access.permissions:
            continue
        route = access.routes.get(perm, GrantRoute.RESOURCE)
        out.append(Grant(perm, route, reason))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class EscalationPath:
    """An indirect route, as a chain of steps from the token to what it ends up reaching."""

    token: str
    kind: str  # a FindingKind value
    steps: tuple[str, ...]
    via: str | None = None  # the resource key the route goes through


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One live probe: what the model predicted and what the API answered."""

    token: str
    resource: str
    permission: Permission
    method: str
    status: int
    predicted: bool
    allowed: bool

    @property
    def agrees(self) -> bool:
        """True when the prediction matched the answer."""
        return self.predicted == self.allowed


@dataclass(frozen=True, slots=True)
class LiveStats:
    """Figures of a live run."""

    probes: int
    requests: int
    retries: int
    seconds: float
    max_rps: float
    mismatches: int

    @property
    def requests_per_second(self) -> float:
        """Achieved request rate."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The whole audit result."""

    generated_at: datetime
    api_url: str
    mode: AuditMode
    general_access: GeneralAccess | None
    tokens: tuple[TokenEntry, ...]
    resources: tuple[ResourceEntry, ...]
    reach: tuple[TokenReach, ...]
    escalations: tuple[EscalationPath, ...]
    findings: tuple[Finding, ...]
    suppressed: tuple[Finding, ...] = ()  # accepted by the baseline
    probes: tuple[ProbeResult, ...] = ()
    live: LiveStats | None = None
    notes: tuple[str, ...] = ()
    schema_version: int = SCHEMA_VERSION

    def token(self, key: str) -> TokenEntry:
        """The token entry with ``key`` (KeyError when absent)."""
        for t in self.tokens:
            if t.key == key:
                return t
        raise KeyError(key)

    def resource(self, key: str) -> ResourceEntry:
        """The resource entry with ``key`` (KeyError when absent)."""
        for r in self.resources:
            if r.key == key:
                return r
        raise KeyError(key)

    def iter_access(self) -> Iterator[Access]:
        """One :class:`Access` per (token, resource) pair with at least one permission."""
        for reach in self.reach:
            for res in self.resources:
                grants = reach.grants_on(res)
                if grants:
                    yield Access(reach.token, res.key, grants)

    def access_map(self) -> dict[tuple[str, str], frozenset[Permission]]:
        """``{(token key, resource key): permissions}`` for every non-empty pair."""
        return {(a.token, a.resource): a.permissions for a in self.iter_access()}

    def at_or_above(self, threshold: Severity) -> tuple[Finding, ...]:
        """Findings (not suppressed) at ``threshold`` or worse."""
        return tuple(f for f in self.findings if f.severity.at_least(threshold))

    def counts(self) -> dict[Severity, int]:
        """Number of findings per severity."""
        out = dict.fromkeys(Severity, 0)
        for f in self.findings:
            out[f.severity] += 1
        return out
