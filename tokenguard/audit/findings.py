"""Findings: what is wrong, how bad it is, and how to fix it.

Each finding has a stable id derived from what it is about (its kind, the token, the
resource and the path), never from the time or the order of discovery, so a baseline written
today still matches the same finding tomorrow.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """How urgent a finding is (the order used by ``--fail-on``)."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse: critical=4 ... info=0."""
        return _RANKS[self]

    def at_least(self, threshold: Severity) -> bool:
        """True when this severity is ``threshold`` or worse."""
        return self.rank >= threshold.rank


_RANKS = {
    Severity.CRITICAL: 4,
    Severity.HIGH: 3,
    Severity.MEDIUM: 2,
    Severity.LOW: 1,
    Severity.INFO: 0,
}


class FindingKind(StrEnum):
    """The kinds of finding the audit reports (the ``rule`` in SARIF)."""

    UNSCOPED_TOKEN = "unscoped-token"
    ESCALATION_FULL_RUN = "escalation-full-run-mode"
    ESCALATION_SCHEDULE = "escalation-schedule"
    WEBHOOK_ROUTE = "webhook-dispatch-scope"
    ANONYMOUS_ACCESS = "anonymous-storage-access"
    UNGOVERNED_TOKEN = "ungoverned-token"
    POLICY_DRIFT = "access-beyond-policy"
    LIVE_DRIFT = "declared-effective-drift"
    EXPIRED_ACTIVE = "expired-token-active"
    EXPIRING_SOON = "expiring-soon"
    ROTATION_OVERDUE = "rotation-overdue"
    GRACE_PAST = "retiring-past-grace"
    DEAD_TOKEN = "dead-token"


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """Static description of a finding kind: default severity, title, why, fix."""

    kind: FindingKind
    severity: Severity
    title: str
    why: str
    fix: str


#: One entry per kind; findings copy severity and fix from here unless they know better.
RULES: dict[FindingKind, RuleInfo] = {
    r.kind: r
    for r in (
        RuleInfo(
            FindingKind.UNSCOPED_TOKEN,
            Severity.HIGH,
            "Unscoped (full-access) token",
            "The token can read, change and delete everything in the account.",
            "Replace it with a scoped token holding only what its job needs, or declare it "
            "unscoped in a reviewed policy if it really must be.",
        ),
        RuleInfo(
            FindingKind.ESCALATION_FULL_RUN,
            Severity.CRITICAL,
            "Escalation to full access through a run in FULL run mode",
            "A scoped token with Run on an Actor and actorRunMode=full starts runs that get an "
            "unscoped token: whoever holds the token controls code with full access.",
            "Set the token's Actor run mode to restricted (policy: actor_run_mode = "
            '"restricted"), or drop Run on the Actor.',
        ),
        RuleInfo(
            FindingKind.ESCALATION_SCHEDULE,
            Severity.CRITICAL,
            "Escalation to full access through a schedule",
            "Scheduled runs always get an unscoped token; a token that can create or change a "
            "schedule and may run its target gets everything through it.",
            "Remove schedules:create and write on schedules from the token, or Run on the "
            "Actors/Read on the tasks it could schedule.",
        ),
        RuleInfo(
            FindingKind.WEBHOOK_ROUTE,
            Severity.LOW,
            "Webhooks dispatched with the token's scope",
            "The token may create or change webhooks on an Actor or task; they are dispatched "
            "later with the token's scope, so its access outlives any single request.",
            "Drop Run on the Actor (it implies managing its webhooks) if the job does not need "
            "webhooks, and review the account's webhooks.",
        ),
        RuleInfo(
            FindingKind.ANONYMOUS_ACCESS,
            Severity.HIGH,
            "Storages readable by anyone with their ID",
            "General resource access is 'Anyone with ID can read': runs and storages are "
            "readable without a token by whoever learns an ID.",
            "Set Settings > Security & Privacy > General resource access to Restricted.",
        ),
        RuleInfo(
            FindingKind.UNGOVERNED_TOKEN,
            Severity.MEDIUM,
            "Token not covered by any policy",
            "The token exists on the platform or in use but no reviewed policy says it should, "
            "so nothing rotates, expires or reviews it.",
            "Write a policy for it and re-issue it with `tokenguard policy apply`, or revoke it.",
        ),
        RuleInfo(
            FindingKind.POLICY_DRIFT,
            Severity.HIGH,
            "Access beyond its policy",
            "The token reaches resources or permissions its policy does not grant.",
            "Re-issue the token from its policy (`tokenguard policy apply`) and revoke this one.",
        ),
        RuleInfo(
            FindingKind.LIVE_DRIFT,
            Severity.HIGH,
            "Declared and effective access differ",
            "A live probe's answer differs from what the token's declared scope predicts.",
            "Check the token's scope on the platform; re-issue it from its policy; report a "
            "model bug if the platform is right.",
        ),
        RuleInfo(
            FindingKind.EXPIRED_ACTIVE,
            Severity.MEDIUM,
            "Expired token still stored as active",
            "Programs using the vault's active token for this policy will fail.",
            "Run `tokenguard rotate` (or `tokenguard policy apply`) to issue a fresh token.",
        ),
        RuleInfo(
            FindingKind.EXPIRING_SOON,
            Severity.LOW,
            "Token expires soon",
            "The token expires within the --expiring-within window.",
            "Run `tokenguard rotate` before it expires.",
        ),
        RuleInfo(
            FindingKind.ROTATION_OVERDUE,
            Severity.MEDIUM,
            "Rotation overdue",
            "The token is older than its policy's rotate_after.",
            "Run `tokenguard rotate` (schedule it from cron or a systemd timer).",
        ),
        RuleInfo(
            FindingKind.GRACE_PAST,
            Severity.HIGH,
            "Retiring token past its grace period not revoked",
            "A replaced token is still valid on the platform after its grace period ended.",
            "Run `tokenguard rotate` to revoke it, or revoke it in Console.",
        ),
        RuleInfo(
            FindingKind.DEAD_TOKEN,
            Severity.LOW,
            "Dead token in the vault",
            "The vault holds a token the platform no longer accepts (revoked or unknown).",
            "Remove it with `tokenguard vault remove NAME`, or mark it revoked.",
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem the audit found.

    ``token`` and ``resource`` are report keys (see :mod:`tokenguard.audit.report`);
    ``path`` is the chain of steps for route findings (first step: the token).
    """

    id: str
    kind: FindingKind
    severity: Severity
    title: str
    message: str
    fix: str
    token: str | None = None
    resource: str | None = None
    path: tuple[str, ...] = ()

    @property
    def rule(self) -> RuleInfo:
        """The static description of this finding's kind."""
        return RULES[self.kind]


def finding_id(kind: FindingKind, *parts: str | None) -> str:
    """A stable id: ``TG-`` + kind + a short digest of what the finding is about."""
    material = "\x1f".join([kind.value, *(p or "" for p in parts)])
    digest = hashlib.sha256(material.encode("utf-8")).hexdigest()[:12]
    return f"TG-{kind.value}-{digest}"


def make_finding(
    kind: FindingKind,
    message: str,
    *,
    token: str | None = None,
    resource: str | None = None,
    path: Iterable[str] = (),
    identity: Iterable[str] = (),
    severity: Severity | None = None,
    fix: str | None = None,
) -> Finding:
    """Build a finding with its stable id.

    ``identity`` adds what distinguishes two findings of one kind about the same token and
    resource (e.g. the escalation's Actor). The message never takes part in the id, so
    rewording a message does not invalidate baselines.
    """
    rule = RULES[kind]
    path_t = tuple(path)
    return Finding(
        id=finding_id(kind, token, resource, *identity),
        kind=kind,
        severity=severity or rule.severity,
        title=rule.title,
        message=message,
        fix=fix or rule.fix,
        token=token,
        resource=resource,
        path=path_t,
    )


def sort_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Worst first, then by kind, token and id (deterministic output)."""
    return tuple(
        sorted(
            findings,
            key=lambda f: (-f.severity.rank, f.kind.value, f.token or "", f.resource or "", f.id),
        )
    )
