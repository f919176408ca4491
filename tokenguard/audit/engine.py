"""The audit entry points: :func:`analyze` (static, no network) and :func:`audit`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tokenguard.api.client import ApifyApi
from tokenguard.audit.baseline import Baseline
from tokenguard.audit.checks import (
    all_hygiene,
    governed_policy,
    policy_drift_finding,
)
from tokenguard.audit.findings import Finding, sort_findings
from tokenguard.audit.inventory import HeldToken, Inventory, build_inventory
from tokenguard.audit.reach import entry_of, token_reach
from tokenguard.audit.report import (
    AuditMode,
    AuditReport,
    EscalationPath,
    TokenReach,
    resource_key,
)
from tokenguard.audit.routes import (
    anonymous_finding,
    full_run_paths,
    override_findings,
    route_findings,
    schedule_paths,
    webhook_paths,
)
from tokenguard.permissions import (
    Account,
    GeneralAccess,
    Permission,
    Resource,
    ResourceIndex,
    ResourceKind,
)
from tokenguard.policy.model import PolicySet
from tokenguard.vault.records import TokenRecord

#: Default live probe budget: far below the platform's 250,000/min (~4,166/s) account limit
#: and its 60 req/s per-resource limit, so an audit never disturbs production traffic.
DEFAULT_MAX_RPS = 20.0


def analyze(
    inventory: Inventory,
    *,
    api_url: str = "",
    policies: PolicySet | None = None,
    now: datetime | None = None,
    expiring_within: timedelta | None = None,
) -> AuditReport:
    """Static audit of an inventory: reach, routes and findings (no network)."""
    now = now or datetime.now(UTC)
    resources = inventory.resources
    index = ResourceIndex(resources)
    account = Account(
        inventory.username or "", inventory.general_access or GeneralAccess.RESTRICTED
    )
    by_key = {resource_key(r.kind, r.id): r for r in resources}
    labels = {k: f"{r.kind.value} {r.tilde_name or r.id}" for k, r in by_key.items()}
    by_kind: dict[ResourceKind, list[Resource]] = {}
    for r in resources:
        by_kind.setdefault(r.kind, []).append(r)

    reach: list[TokenReach] = []
    paths: list[EscalationPath] = []
    findings: list[Finding] = list(
        all_hygiene(inventory.tokens, policies, now=now, expiring_within=expiring_within)
    )
    for token in inventory.tokens:
        entry, ea = token_reach(token, index, account, by_key, now=now)
        reach.append(entry)
        if ea is None:
            continue
        mine = [
            *full_run_paths(token.entry, ea, by_kind.get(ResourceKind.ACTOR, ())),
            *schedule_paths(token.entry, ea, index, account, by_kind, now=now),
            *webhook_paths(token.entry, ea, by_kind, now=now),
        ]
        paths.extend(mine)
        findings.extend(route_findings(token.entry, mine, labels))
        policy = governed_policy(token, policies)
        if policy is not None:
            drift = policy_drift_finding(token, policy, ea, index, account, now=now)
            if drift is not None:
                findings.append(drift)
    notes = list(inventory.notes)
    creators = [
        t.entry.name
        for t in inventory.tokens
        if t.entry.scope is not None
        and not t.entry.scope.unscoped
        and any(Permission.CREATE in p for p in t.entry.scope.account.values())
    ]
    if creators:
        # D4: a token holds read+write on what it created, but the API does not say who
        # created a resource, so that access cannot be shown statically (live probes see it).
        notes.append(
            "tokens with create permissions also hold read and write on resources they "
            "created, which the API cannot attribute: " + ", ".join(sorted(creators))
        )
    anon_paths, anon_findings = anonymous_finding(inventory.general_access, resources)
    paths.extend(anon_paths)
    findings.extend(anon_findings)
    own_paths, own_findings, own_notes = override_findings(
        inventory.general_access, inventory.overrides, resources
    )
    paths.extend(own_paths)
    findings.extend(own_findings)
    notes.extend(own_notes)
    return AuditReport(
        generated_at=now,
        api_url=api_url,
        mode=AuditMode.STATIC,
        general_access=inventory.general_access,
        tokens=tuple(t.entry for t in inventory.tokens),
        resources=tuple(entry_of(r) for r in resources),
        reach=tuple(reach),
        escalations=tuple(paths),
        findings=sort_findings(findings),
        notes=tuple(notes),
    )


def apply_baseline(report: AuditReport, baseline: Baseline | None) -> AuditReport:
    """Move findings the baseline accepts (and has not expired) to ``suppressed``."""
    if baseline is None:
        return report
    new, suppressed, expired = baseline.split(report.findings, today=report.generated_at.date())
    notes = report.notes + tuple(
        f"baseline entry {e.id} expired on {e.expires.isoformat()}: the finding counts again"
        for e in expired
    )
    return replace(report, findings=new, suppressed=suppressed, notes=notes)


def audit(
    api: ApifyApi,
    *,
    records: Sequence[TokenRecord] = (),
    held: Sequence[HeldToken] = (),
    policies: PolicySet | None = None,
    live: bool = False,
    now: datetime | None = None,
    expiring_within: timedelta | None = None,
    baseline: Baseline | None = None,
    max_rps: float = DEFAULT_MAX_RPS,
    probe_writes: bool = False,
    concurrency: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    """Audit the account behind ``api`` (bound to the management token).

    ``records``: the vault's token records; ``held``: other tokens to audit (env, file);
    ``policies``: the loaded policies (for "not covered", drift and rotation checks);
    ``live``: also probe with every held token (read-only unless ``probe_writes``).
    """
    policy_names = frozenset(policies.names) if policies is not None else None
    inventory = build_inventory(api, records=records, held=held, policy_names=policy_names)
    report = analyze(
        inventory,
        api_url=api.base_url,
        policies=policies,
        now=now,
        expiring_within=expiring_within,
    )
    if live:
        from tokenguard.audit.live import LiveConfig, live_verify

        report = asyncio.run(
            live_verify(
                report,
                inventory,
                LiveConfig(
                    base_url=api.base_url,
                    max_rps=max_rps,
                    probe_writes=probe_writes,
                    concurrency=concurrency,
                ),
                progress=progress,
            )
        )
    return apply_baseline(report, baseline)
