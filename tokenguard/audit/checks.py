"""Token hygiene and policy checks: the findings that are about a token's life, not its reach.

Unscoped tokens, tokens no policy covers, expired tokens still stored as active, tokens
expiring soon, overdue rotations, retiring tokens past their grace, dead tokens in the
vault, and access beyond the token's policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from tokenguard.audit.findings import Finding, FindingKind, make_finding
from tokenguard.audit.inventory import InventoryToken
from tokenguard.permissions import (
    Account,
    EffectiveAccess,
    Permission,
    ResourceIndex,
    RunMode,
    Scope,
    effective_access,
)
from tokenguard.policy.model import PolicySet, TokenPolicy
from tokenguard.vault.records import TokenStatus


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def hygiene_findings(
    token: InventoryToken,
    policies: PolicySet | None,
    *,
    now: datetime,
    expiring_within: timedelta | None,
) -> list[Finding]:
    """Lifecycle findings for one token."""
    e = token.entry
    record = token.record
    out: list[Finding] = []
    policy = policies.get(e.policy) if policies is not None and e.policy else None
    expired = e.expires_at is not None and e.expires_at <= now

    if e.unscoped and not expired and e.on_platform is not False:
        declared = policy is not None and policy.scope.unscoped
        if not declared:
            out.append(
                make_finding(
                    FindingKind.UNSCOPED_TOKEN,
                    f"Token {e.name} is unscoped: it can do anything in the account.",
                    token=e.key,
                    path=(f"token {e.name}", "unscoped", "everything in the account"),
                )
            )
    if not e.governed and not expired and e.on_platform is not False:
        where = ", ".join(s.value for s in e.sources)
        why = f"its policy {e.policy!r} no longer exists" if e.policy else "no policy covers it"
        out.append(
            make_finding(
                FindingKind.UNGOVERNED_TOKEN,
                f"Token {e.name} (seen in: {where}) is ungoverned: {why}.",
                token=e.key,
            )
        )
    if record is not None and record.status is TokenStatus.ACTIVE and expired:
        assert e.expires_at is not None
        out.append(
            make_finding(
                FindingKind.EXPIRED_ACTIVE,
                f"Token {e.name} expired at {_when(e.expires_at)} but the vault still holds it "
                "as active.",
                token=e.key,
            )
        )
    if (
        expiring_within is not None
        and e.expires_at is not None
        and now < e.expires_at <= now + expiring_within
        and (record is None or record.status is TokenStatus.ACTIVE)
    ):
        left = e.expires_at - now
        out.append(
            make_finding(
                FindingKind.EXPIRING_SOON,
                f"Token {e.name} expires at {_when(e.expires_at)} (in {left.days}d "
                f"{left.seconds // 3600}h).",
                token=e.key,
            )
        )
    if (
        record is not None
        and record.status is TokenStatus.ACTIVE
        and not expired
        and policy is not None
        and policy.rotate_after is not None
        and record.created_at is not None
        and record.created_at + policy.rotate_after <= now
    ):
        due = record.created_at + policy.rotate_after
        out.append(
            make_finding(
                FindingKind.ROTATION_OVERDUE,
                f"Token {e.name} was due for rotation at {_when(due)} (policy {policy.name}: "
                "rotate_after).",
                token=e.key,
            )
        )
    if record is not None and record.status is TokenStatus.RETIRING:
        retire_at = record.retire_at
        if retire_at is None and record.rotated_at is not None and policy is not None:
            retire_at = record.rotated_at + policy.grace
        if (
            retire_at is not None
            and retire_at <= now
            and not expired
            and e.on_platform is not False
        ):
            out.append(
                make_finding(
                    FindingKind.GRACE_PAST,
                    f"Token {e.name} was replaced; its grace ended at {_when(retire_at)} but "
                    "it is still valid on the platform.",
                    token=e.key,
                )
            )
    if (
        record is not None
        and record.status in (TokenStatus.REVOKED, TokenStatus.FAILED)
        and e.on_platform
        and not expired
    ):
        out.append(
            make_finding(
                FindingKind.GRACE_PAST,
                f"Token {e.name} is marked {record.status.value} in the vault but is still "
                "valid on the platform.",
                token=e.key,
            )
        )
    if record is not None and e.on_platform is False and not expired:
        out.append(
            make_finding(
                FindingKind.DEAD_TOKEN,
                f"Token {e.name} is in the vault ({record.status.value}) but the platform no "
                "longer knows it (revoked or deleted).",
                token=e.key,
            )
        )
    return out


def dead_token_finding(token: InventoryToken, status: int) -> Finding:
    """A held token the API rejected with 401 during live probes."""
    e = token.entry
    return make_finding(
        FindingKind.DEAD_TOKEN,
        f"Token {e.name} was rejected by the API (HTTP {status}): revoked, expired or unknown.",
        token=e.key,
    )


def policy_drift_finding(
    token: InventoryToken,
    policy: TokenPolicy,
    actual: EffectiveAccess,
    index: ResourceIndex,
    account: Account,
    *,
    now: datetime,
    limit: int = 5,
) -> Finding | None:
    """Access the token holds that its policy does not grant (None: none)."""
    e = token.entry
    scope = e.scope
    if scope is None:
        return None
    declared = effective_access(e.token_id, policy.scope, index, account, now=now)
    extras: list[str] = []
    for resource, access in actual.reachable():
        allowed = declared[resource].permissions
        extra = access.permissions - allowed
        # Anonymous reads are open to anyone; they are not this token's drift.
        extra = frozenset(p for p in extra if access.routes.get(p) != "anonymous")
        for perm in sorted(extra):
            extras.append(f"{perm.value} on {resource.kind.value} {resource.id}")
    extras.extend(_scope_extras(scope, policy.scope))
    if not extras:
        return None
    shown = "; ".join(extras[:limit]) + (
        f" (+{len(extras) - limit} more)" if len(extras) > limit else ""
    )
    return make_finding(
        FindingKind.POLICY_DRIFT,
        f"Token {e.name} holds access its policy {policy.name} does not grant: {shown}.",
        token=e.key,
        path=(f"token {e.name}", f"policy {policy.name}", f"beyond it: {extras[0]}"),
    )


def _scope_extras(actual: Scope, declared: Scope) -> list[str]:
    out: list[str] = []
    if actual.unscoped and not declared.unscoped:
        out.append("unscoped (policy: scoped)")
        return out
    if actual.actor_run_mode is RunMode.FULL and declared.actor_run_mode is not RunMode.FULL:
        out.append("actorRunMode full (policy: restricted)")
    if actual.default_run_storage_access and not declared.default_run_storage_access:
        out.append("defaultRunStorageAccess on (policy: off)")
    for group, perms in actual.account.items():
        if Permission.CREATE in perms and Permission.CREATE not in declared.account_permissions(
            group
        ):
            out.append(f"account-level {group.value}: create")
    return out


def governed_policy(token: InventoryToken, policies: PolicySet | None) -> TokenPolicy | None:
    """The policy a token was issued from, when it is loaded."""
    if policies is None or token.entry.policy is None:
        return None
    return policies.get(token.entry.policy)


def all_hygiene(
    tokens: Sequence[InventoryToken],
    policies: PolicySet | None,
    *,
    now: datetime,
    expiring_within: timedelta | None,
) -> list[Finding]:
    """Hygiene findings for every token."""
    out: list[Finding] = []
    for t in tokens:
        out.extend(hygiene_findings(t, policies, now=now, expiring_within=expiring_within))
    return out
