"""Plan and apply: make the platform and the vault match the policies, Terraform-style.

``plan`` compares each policy with the vault and the platform's token list and says what
``apply`` would do:

- ``create``: the policy has no active token.
- ``replace``: the active token no longer matches the policy (scope or lifetime changed, a
  reference now resolves to another resource, the token expired or vanished from the
  platform). Apply issues a new active token and moves the old one to ``retiring`` until
  now + grace — the rotation path: ``tokenguard rotate`` revokes it once the grace is over,
  so programs using it get time to pick up the new one.
- ``unchanged``: nothing to do.
- ``revoke``: a platform token named ``tokenguard/<policy>/<n>`` that the vault does not
  hold (an apply or rotation died between "created" and "stored"; nobody has its secret) is
  always revoked; tokens of policies that no longer exist are revoked only with ``prune``.
  Apply runs under the rotation lock, which a rotation holds from its own orphan sweep to
  its last write, so a replacement a running rotation has issued but not stored yet is
  never taken for one.
- ``orphan``: a token of a removed policy, reported and kept (apply with ``prune`` revokes it).

Every issued secret is written to the vault immediately, before the next API call.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from tokenguard.api.client import ApifyApi
from tokenguard.api.issuer import TokenInfo, TokenIssuer
from tokenguard.permissions import (
    AccountGroup,
    Permission,
    ResourceGrant,
    ResourceType,
    Scope,
)
from tokenguard.policy.model import (
    PLATFORM_NAME_PREFIX,
    Diagnostic,
    PolicySet,
    PolicyValidationError,
    Severity,
    TokenPolicy,
)
from tokenguard.policy.notes import note
from tokenguard.policy.resolve import ResolvedResource, ResourceResolver
from tokenguard.vault.records import TokenRecord, TokenStatus

_PLATFORM_NAME = re.compile(re.escape(PLATFORM_NAME_PREFIX) + r"([^/]+)/(\d+)")
#: Statuses of a record whose token still works on the platform.
LIVE_STATUSES = frozenset({TokenStatus.ACTIVE, TokenStatus.PENDING, TokenStatus.RETIRING})


class PolicyVault(Protocol):
    """The part of :class:`tokenguard.vault.Vault` the policy engine uses."""

    def list(self) -> Sequence[TokenRecord]:
        """Every record."""
        ...

    def put(self, record: TokenRecord) -> Any:
        """Store (insert or replace) ``record`` durably."""
        ...


def store_records(vault: PolicyVault, *records: TokenRecord) -> None:
    """Write ``records`` to the vault, in one atomic write when the vault offers one."""
    update: Callable[..., Any] | None = getattr(vault, "update", None)
    if update is not None:

        def change(current: Any) -> Any:
            for record in records:
                current[record.name] = record
            return current

        update(change)
        return
    for record in records:
        vault.put(record)


class ActionKind(StrEnum):
    """What apply does for one plan line."""

    CREATE = "create"
    REPLACE = "replace"
    REVOKE = "revoke"
    ORPHAN = "orphan"
    UNCHANGED = "unchanged"

    @property
    def changes(self) -> bool:
        """True when apply calls the API for this action."""
        return self in (ActionKind.CREATE, ActionKind.REPLACE, ActionKind.REVOKE)


class ReplaceCause(StrEnum):
    """Why an active token must be replaced."""

    POLICY_CHANGED = "policy-changed"  # scope or lifetime differ from the token's digest
    RESOURCE_MOVED = "resource-moved"  # a username~name now resolves to another ID
    EXPIRED = "expired"
    GONE = "gone"  # no longer on the platform (revoked behind tokenguard's back)

    def describe(self) -> str:
        """A plan table's reason text."""
        return {
            ReplaceCause.POLICY_CHANGED: "the policy changed (scope or lifetime)",
            ReplaceCause.RESOURCE_MOVED: "a referenced resource now resolves to a different ID",
            ReplaceCause.EXPIRED: "the active token has expired",
            ReplaceCause.GONE: "the active token no longer exists on the platform",
        }[self]


@dataclass(frozen=True, slots=True)
class PlanAction:
    """One line of a plan. Never holds a secret: tokens appear by fingerprint and ID."""

    kind: ActionKind
    policy: str | None
    reason: str
    record: str | None = None  # the vault record concerned (replace: the one replaced)
    fingerprint: str | None = None
    token_id: str | None = None  # the platform token ID concerned
    token_name: str | None = None  # the platform token name (for platform-only orphans)
    cause: ReplaceCause | None = None  # why a replace is needed

    def to_json(self) -> dict[str, Any]:
        """Machine form for ``--json``."""
        return {
            "action": self.kind.value,
            "policy": self.policy,
            "reason": self.reason,
            "record": self.record,
            "fingerprint": self.fingerprint,
            "tokenId": self.token_id,
            "tokenName": self.token_name,
            "cause": self.cause.value if self.cause else None,
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """What apply would do, computed at ``now`` from policies, vault and platform."""

    actions: tuple[PlanAction, ...]
    policy_set: PolicySet
    now: datetime
    prune: bool = False
    notes: tuple[Diagnostic, ...] = ()
    scopes: Mapping[str, Scope] = field(default_factory=dict)  # policy -> scope sent (IDs)
    next_serial: Mapping[str, int] = field(default_factory=dict)

    @property
    def changes(self) -> tuple[PlanAction, ...]:
        """Actions that call the API."""
        return tuple(a for a in self.actions if a.kind.changes)

    @property
    def has_changes(self) -> bool:
        """True when apply would change anything."""
        return bool(self.changes)

    def summary(self) -> dict[str, int]:
        """Count of actions per kind."""
        out = {kind.value: 0 for kind in ActionKind}
        for action in self.actions:
            out[action.kind.value] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        """Machine form for ``--json``."""
        return {
            "now": self.now.isoformat(),
            "prune": self.prune,
            "summary": self.summary(),
            "actions": [a.to_json() for a in self.actions],
            "notes": [n.to_json() for n in self.notes],
        }


@dataclass(frozen=True, slots=True)
class AppliedAction:
    """The outcome of one plan action."""

    action: PlanAction
    outcome: str  # "created", "replaced", "revoked", "skipped"
    record: str | None = None  # the vault record written (new token for create/replace)
    fingerprint: str | None = None
    token_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Machine form for ``--json``."""
        return {
            **self.action.to_json(),
            "outcome": self.outcome,
            "newRecord": self.record,
            "newFingerprint": self.fingerprint,
            "newTokenId": self.token_id,
        }


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """Everything apply did, in order."""

    applied: tuple[AppliedAction, ...]

    def to_json(self) -> dict[str, Any]:
        """Machine form for ``--json``."""
        return {"applied": [a.to_json() for a in self.applied]}


# --- serials -----------------------------------------------------------------------------


def record_serial(policy: str, name: str) -> int | None:
    """``n`` of a record named ``<policy>.<n>``, else None."""
    prefix = policy + "."
    tail = name[len(prefix) :]
    if name.startswith(prefix) and tail.isdigit():
        return int(tail)
    return None


def platform_serial(name: str) -> tuple[str, int] | None:
    """``(policy, n)`` of a platform token named ``tokenguard/<policy>/<n>``, else None."""
    match = _PLATFORM_NAME.fullmatch(name)
    return (match.group(1), int(match.group(2))) if match else None


def next_serial(
    policy: str, records: Iterable[TokenRecord], tokens: Iterable[TokenInfo] = ()
) -> int:
    """1 + the highest serial of ``policy`` seen in vault records and platform token names."""
    highest = 0
    for record in records:
        n = record_serial(policy, record.name)
        if n is not None and (record.policy in (None, policy)):
            highest = max(highest, n)
    for token in tokens:
        parsed = platform_serial(token.name)
        if parsed is not None and parsed[0] == policy:
            highest = max(highest, parsed[1])
    return highest + 1


# --- issuing -----------------------------------------------------------------------------


def issue_token(
    policy: TokenPolicy,
    issuer: TokenIssuer,
    vault: PolicyVault,
    *,
    now: datetime,
    status: TokenStatus = TokenStatus.ACTIVE,
    scope: Scope | None = None,
    serial: int | None = None,
    also: Sequence[TokenRecord] = (),
    platform: Iterable[TokenInfo] = (),
    tag: str | None = None,
    meta: Mapping[str, Any] | None = None,
    after_issue: Callable[[], None] | None = None,
) -> TokenRecord:
    """Issue a token for ``policy`` and store it in the vault at once; return its record.

    The one place tokens are issued from policies (``policy apply`` and the rotation job):
    the token is named ``tokenguard/<policy>/<n>`` on the platform and ``<policy>.<n>`` in
    the vault (``n``: one above the highest serial in the vault and in ``platform`` unless
    ``serial`` is given). ``scope`` overrides the policy's declared scope (the plan passes it
    with references resolved to IDs). ``tag`` is appended to the platform description (the
    rotation marks its tokens with it); ``meta`` is added to the record's. ``also`` are
    records written in the same vault write (apply moves the replaced token to ``retiring``
    there). ``after_issue`` runs between the platform call and the vault write (the
    rotation's crash hook). If the vault write fails, the new token is revoked before the
    error propagates, so nothing unreachable is left behind.
    """
    if serial is None:
        serial = next_serial(policy.name, vault.list(), platform)
    description = " ".join(part for part in (policy.description, tag) if part) or None
    issued = issuer.issue(
        policy.platform_name(serial),
        scope=scope if scope is not None else policy.scope,
        expires_at=policy.expires_at(now),
        description=description,
    )
    if after_issue is not None:
        after_issue()
    record = TokenRecord(
        name=policy.record_name(serial),
        secret=issued.secret,
        status=status,
        policy=policy.name,
        scope=issued.info.scope,
        created_at=now,
        expires_at=issued.info.expires_at,
        issuer_id=issued.info.id,
        policy_digest=policy.digest,
        meta={"platform_name": issued.info.name, "labels": dict(policy.labels), **(meta or {})},
    )
    try:
        store_records(vault, record, *also)
    except BaseException:
        # The secret exists only in memory now: revoke rather than leave a token nobody holds.
        # If even that fails, the next plan (or rotation) finds it by its name and revokes it.
        with contextlib.suppress(Exception):
            issuer.revoke(issued.info.id)
        raise
    return record


# --- planning ----------------------------------------------------------------------------


def _normal(scope: Scope | None) -> Any:
    if scope is None:
        return None
    data = scope.to_api()
    if data is not None:
        data["resources"] = sorted(
            data["resources"], key=lambda r: (r["type"], r["id"], r["permissions"])
        )
    return json.dumps(data, sort_keys=True)


def _resolve_policy(
    policy: TokenPolicy,
    resolver: ResourceResolver,
    problems: list[Diagnostic],
    notes: list[Diagnostic],
) -> Scope:
    scope = policy.scope
    if scope.unscoped or not scope.resources:
        return scope
    resolved: list[tuple[int, ResourceGrant, ResolvedResource]] = []
    grants: list[ResourceGrant] = []
    for i, grant in enumerate(scope.resources):
        found = resolver.resolve(grant.type, grant.id)
        if found is None:
            problems.append(
                Diagnostic(
                    policy.location("resource", i, "id"),
                    f"{grant.type.value} {grant.id!r} does not exist on the account "
                    "(check the ID or username~name, or create the resource first)",
                    policy.name,
                )
            )
            continue
        resolved.append((i, grant, found))
        grants.append(ResourceGrant(grant.type, found.id, grant.permissions))
    resolved_scope = Scope(
        account=scope.account,
        resources=tuple(grants),
        actor_run_mode=scope.actor_run_mode,
        default_run_storage_access=scope.default_run_storage_access,
    )
    notes.extend(_dependency_notes(policy, resolved_scope, resolved))
    return resolved_scope


def _holds(scope: Scope, rtype: ResourceType, rid: str, perm: Permission) -> bool:
    group = {
        ResourceType.ACTOR: AccountGroup.ACTORS,
        ResourceType.TASK: AccountGroup.TASKS,
    }.get(rtype)
    account = scope.account_permissions(group) if group is not None else frozenset()
    granted = account | scope.grants_for(rtype, [rid])
    if perm is Permission.READ and Permission.WRITE in granted:
        return True  # write implies read
    return perm in granted


def _dependency_notes(
    policy: TokenPolicy,
    scope: Scope,
    resolved: Sequence[tuple[int, ResourceGrant, ResolvedResource]],
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for i, grant, found in resolved:
        where = ("resource", i, "permissions")
        if (
            found.type is ResourceType.TASK
            and found.actor_id
            and not _holds(scope, ResourceType.ACTOR, found.actor_id, Permission.RUN)
        ):
            out.append(
                note(
                    policy,
                    f"task {grant.id!r} cannot be run (or updated) by this token: that needs "
                    f"Run on its Actor {found.actor_id} (add a resource entry for it)",
                    *where,
                )
            )
        if found.type is ResourceType.SCHEDULE and Permission.WRITE in grant.permissions:
            for ttype, tid in found.triggers:
                need = Permission.RUN if ttype is ResourceType.ACTOR else Permission.READ
                if not _holds(scope, ttype, tid, need):
                    out.append(
                        note(
                            policy,
                            f"schedule {grant.id!r} cannot be updated by this token: it triggers "
                            f"{ttype.value} {tid}, which needs {need.value} on it",
                            *where,
                        )
                    )
    return out


def plan(
    policy_set: PolicySet,
    vault: PolicyVault,
    tokens: TokenIssuer | Sequence[TokenInfo],
    *,
    now: datetime,
    resolver: ResourceResolver | None = None,
    prune: bool = False,
) -> Plan:
    """Compare ``policy_set`` with the vault and the platform; return what apply would do.

    ``tokens`` is the platform's token list, or an issuer to fetch it from. Every resource
    reference is checked through ``resolver`` (by default one built on the issuer's API
    when ``tokens`` is an :class:`~tokenguard.api.HttpTokenIssuer`) and ``username~name``
    turned into an ID; a missing one raises :class:`PolicyValidationError` naming file,
    line and key, before apply could create anything. With no way to resolve (a bare token
    list, another issuer), the plan notes that references went unchecked and compares
    tokens by policy digest alone. Read only: plan never changes anything.
    """
    if resolver is None:
        api = getattr(tokens, "api", None)
        if isinstance(api, ApifyApi):
            resolver = ResourceResolver(api)
    platform = list(tokens.list() if isinstance(tokens, TokenIssuer) else tokens)
    platform_ids = {t.id for t in platform}
    records = list(vault.list())

    problems: list[Diagnostic] = []
    notes: list[Diagnostic] = list(policy_set.notes)
    scopes: dict[str, Scope] = {}
    for policy in policy_set:
        scopes[policy.name] = (
            _resolve_policy(policy, resolver, problems, notes) if resolver else policy.scope
        )
    if problems:
        raise PolicyValidationError(
            tuple(problems),
            hint="Fix the references in the policy files (nothing was created).",
        )
    if resolver is None:
        notes.extend(
            note(
                policy,
                "resource references were not checked against the account (no resolver): "
                "a missing resource fails only when apply issues the token",
                "resource",
            )
            for policy in policy_set
            if policy.scope.resources and not policy.scope.unscoped
        )

    actions: list[PlanAction] = []
    serials: dict[str, int] = {}
    for policy in policy_set:
        serials[policy.name] = next_serial(policy.name, records, platform)
        active = sorted(
            (r for r in records if r.policy == policy.name and r.status is TokenStatus.ACTIVE),
            key=lambda r: record_serial(policy.name, r.name) or 0,
        )
        if not active:
            actions.append(PlanAction(ActionKind.CREATE, policy.name, "no active token"))
            continue
        current = active[-1]
        for extra in active[:-1]:
            notes.append(
                Diagnostic(
                    policy.location("name"),
                    f"more than one active token: {extra.name} ({extra.fingerprint}) is older "
                    f"than {current.name}; `tokenguard rotate` or `vault remove` should settle it",
                    policy.name,
                    Severity.NOTE,
                )
            )
        # Without a resolver the declared scope still holds username~name references, so it
        # cannot be compared with the stored (ID-based) one: the digest decides alone.
        resolved = scopes[policy.name] if resolver is not None else None
        cause = _replace_cause(policy, current, resolved, platform_ids, now)
        actions.append(
            PlanAction(
                ActionKind.REPLACE if cause else ActionKind.UNCHANGED,
                policy.name,
                cause.describe() if cause else "active token matches the policy",
                record=current.name,
                fingerprint=current.fingerprint,
                token_id=current.issuer_id,
                cause=cause,
            )
        )

    # Vault tokens whose policy is gone.
    for record in records:
        if record.policy is None or record.policy in policy_set:
            continue
        if record.status not in LIVE_STATUSES:
            continue
        kind = ActionKind.REVOKE if prune else ActionKind.ORPHAN
        why = f"policy {record.policy!r} no longer exists"
        actions.append(
            PlanAction(
                kind,
                record.policy,
                why if prune else why + " (kept; --prune revokes it)",
                record=record.name,
                fingerprint=record.fingerprint,
                token_id=record.issuer_id,
            )
        )

    # Platform tokens tokenguard made but never stored: nobody holds their secret.
    # And tokens the vault says are revoked but the platform still accepts.
    held = _held_ids(records)
    revoked = {r.issuer_id: r for r in records if r.issuer_id and r.issuer_id not in held}
    for token in platform:
        if token.id in held:
            continue
        if token.expires_at is not None and token.expires_at <= now:
            continue  # already useless; revoking it would only add noise
        parsed = platform_serial(token.name)
        if token.id in revoked:
            record = revoked[token.id]
            actions.append(
                PlanAction(
                    ActionKind.REVOKE,
                    record.policy,
                    "marked revoked in the vault but still valid on the platform",
                    fingerprint=record.fingerprint,
                    token_id=token.id,
                    token_name=token.name,
                )
            )
        elif parsed is not None:
            actions.append(
                PlanAction(
                    ActionKind.REVOKE,
                    parsed[0],
                    "made by tokenguard but not in the vault (an interrupted apply or "
                    "rotation); its secret is lost",
                    token_id=token.id,
                    token_name=token.name,
                )
            )
    return Plan(
        actions=tuple(actions),
        policy_set=policy_set,
        now=now,
        prune=prune,
        notes=tuple(notes),
        scopes=scopes,
        next_serial=serials,
    )


def _replace_cause(
    policy: TokenPolicy,
    record: TokenRecord,
    scope: Scope | None,
    platform_ids: set[str],
    now: datetime,
) -> ReplaceCause | None:
    if record.issuer_id is not None and record.issuer_id not in platform_ids:
        return ReplaceCause.GONE
    if record.expires_at is not None and record.expires_at <= now:
        return ReplaceCause.EXPIRED
    if record.policy_digest != policy.digest:
        return ReplaceCause.POLICY_CHANGED
    if scope is not None and record.scope is not None and _normal(record.scope) != _normal(scope):
        return ReplaceCause.RESOURCE_MOVED
    return None


# --- applying ----------------------------------------------------------------------------


#: Seconds :func:`apply` waits for a running rotation to release the rotation lock.
APPLY_LOCK_WAIT = 30.0


def apply(
    plan: Plan,
    vault: PolicyVault,
    issuer: TokenIssuer,
    *,
    now: datetime,
    on_step: Callable[[AppliedAction], None] | None = None,
    holding_rotation_lock: bool = False,
    lock_wait: float = APPLY_LOCK_WAIT,
) -> ApplyResult:
    """Carry out ``plan``: revoke lost tokens, create and replace, then prune.

    Runs under the vault's rotation lock (waiting up to ``lock_wait`` seconds, then
    :class:`~tokenguard.errors.VaultLockedError`), so no ``tokenguard rotate`` is between
    issuing a token and storing it meanwhile: both call a ``tokenguard/<policy>/<n>`` token
    the vault does not hold an orphan, and apply must not revoke a replacement a rotation
    is about to store. Pass ``holding_rotation_lock=True`` when the caller already holds it
    (the CLI takes it before planning, so the plan cannot go stale). Under the lock the
    vault is re-read, and actions a rotation made stale since the plan was computed are
    skipped: a lost token now in the vault, a create whose policy now has an active token,
    a replace whose token is no longer active.

    Each new secret is stored in the vault before the next API call. A replaced token goes
    to ``retiring`` (until now + grace) in the same vault write that stores its successor;
    ``tokenguard rotate`` revokes it after the grace. ``on_step`` is called after each
    action (the CLI prints progress with it). The first error stops apply and propagates;
    everything done before it is already stored.
    """
    lock: Callable[[float], contextlib.AbstractContextManager[object]] | None = getattr(
        vault, "rotation_lock", None
    )
    with contextlib.ExitStack() as stack:
        if lock is not None and not holding_rotation_lock:
            stack.enter_context(lock(lock_wait))
        return _apply_locked(plan, vault, issuer, now=now, on_step=on_step)


def _apply_locked(
    plan: Plan,
    vault: PolicyVault,
    issuer: TokenIssuer,
    *,
    now: datetime,
    on_step: Callable[[AppliedAction], None] | None,
) -> ApplyResult:
    done: list[AppliedAction] = []

    def record_step(step: AppliedAction) -> None:
        done.append(step)
        if on_step is not None:
            on_step(step)

    lost = [a for a in plan.actions if a.kind is ActionKind.REVOKE and a.record is None]
    pruned = [a for a in plan.actions if a.kind is ActionKind.REVOKE and a.record is not None]
    issues = [a for a in plan.actions if a.kind in (ActionKind.CREATE, ActionKind.REPLACE)]

    # Re-read: a rotation may have finished since the plan was made.
    reload: Callable[[], object] | None = getattr(vault, "reload", None)
    if reload is not None and (lost or issues or pruned):
        reload()

    if lost:
        held = _held_ids(vault.list())
        for action in lost:
            assert action.token_id is not None
            if action.token_id in held:
                record_step(AppliedAction(action, "skipped (now in the vault)"))
                continue
            issuer.revoke(action.token_id)
            record_step(AppliedAction(action, "revoked", token_id=action.token_id))

    serials = dict(plan.next_serial)
    for action in issues:
        assert action.policy is not None
        policy = plan.policy_set.get(action.policy)
        assert policy is not None
        records = vault.list()
        also: list[TokenRecord] = []
        if action.kind is ActionKind.CREATE:
            if any(r.policy == policy.name and r.status is TokenStatus.ACTIVE for r in records):
                record_step(AppliedAction(action, "skipped (an active token appeared; plan again)"))
                continue
        elif action.record is not None:
            old = next((r for r in records if r.name == action.record), None)
            if old is None or old.status is not TokenStatus.ACTIVE:
                record_step(AppliedAction(action, "skipped (no longer active; plan again)"))
                continue
            also.append(_retire(old, action.cause, now, policy))
        serial = max(serials.get(policy.name, 1), next_serial(policy.name, records))
        record = issue_token(
            policy,
            issuer,
            vault,
            now=now,
            scope=plan.scopes.get(policy.name),
            serial=serial,
            also=also,
        )
        serials[policy.name] = serial + 1
        outcome = "created" if action.kind is ActionKind.CREATE else "replaced"
        record_step(
            AppliedAction(
                action,
                outcome,
                record=record.name,
                fingerprint=record.fingerprint,
                token_id=record.issuer_id,
            )
        )

    for action in pruned:
        assert action.record is not None
        old = _find(vault, action.record)
        if old is None or old.status not in LIVE_STATUSES:
            record_step(AppliedAction(action, "skipped (no longer live)"))
            continue
        if old.issuer_id:
            issuer.revoke(old.issuer_id)
        vault.put(old.evolve(status=TokenStatus.REVOKED))
        record_step(AppliedAction(action, "revoked", token_id=old.issuer_id))
    return ApplyResult(tuple(done))


def _retire(
    old: TokenRecord, cause: ReplaceCause | None, now: datetime, policy: TokenPolicy
) -> TokenRecord:
    """The replaced record, written in the same vault write as its successor."""
    if cause is ReplaceCause.GONE:
        # Nothing left to revoke on the platform.
        return old.evolve(status=TokenStatus.REVOKED, rotated_at=now)
    # Retiring until now + grace, then `tokenguard rotate` revokes it. An expired token
    # works for nobody, so it gets no grace.
    grace = timedelta(0) if cause is ReplaceCause.EXPIRED else policy.grace
    return old.evolve(status=TokenStatus.RETIRING, rotated_at=now, retire_at=now + grace)


def _held_ids(records: Iterable[TokenRecord]) -> set[str]:
    """Platform IDs of tokens the vault holds and has not marked revoked."""
    return {r.issuer_id for r in records if r.issuer_id and r.status is not TokenStatus.REVOKED}


def _find(vault: PolicyVault, name: str) -> TokenRecord | None:
    for record in vault.list():
        if record.name == name:
            return record
    return None
