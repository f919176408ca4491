"""One scenario per indirect route and per finding type, against the real loopback sandbox.

Each builds a small account and tokens through the sandbox's API, runs the audit library and
checks that exactly the expected finding appears for the token under test, with its path.
A clean scenario (every token governed and within its policy) produces no finding at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tokenguard.api.client import ApifyApi
from tokenguard.api.issuer import HttpTokenIssuer, IssuedToken
from tokenguard.audit import FindingKind, analyze, build_inventory
from tokenguard.audit.engine import audit
from tokenguard.audit.inventory import HeldToken
from tokenguard.audit.live import LiveConfig, live_verify
from tokenguard.audit.report import AuditReport, TokenSource
from tokenguard.audit.routes import EVERYTHING
from tokenguard.permissions import (
    AccountGroup,
    Permission,
    ResourceGrant,
    ResourceType,
    RunMode,
    Scope,
)
from tokenguard.policy import load_policies_from_text
from tokenguard.sandbox.testing import SandboxHandle
from tokenguard.vault.records import TokenRecord, TokenStatus

NOW = datetime.now(UTC)
LATER = NOW + timedelta(days=60)


class Account:
    """A sandbox account plus helpers to make resources, tokens and vault records."""

    def __init__(self, sb: SandboxHandle) -> None:
        self.sb = sb
        self.api = ApifyApi(sb.url, sb.admin_token)
        self.issuer = HttpTokenIssuer(self.api)

    def post(self, path: str, body: Any = None, **params: Any) -> dict[str, Any]:
        data: dict[str, Any] = self.api.request(
            "POST", path, json=body, params=params or None
        ).json()["data"]
        return data

    def actor(self, name: str) -> str:
        return str(self.post("/actors", {"name": name})["id"])

    def task(self, name: str, actor_id: str) -> str:
        return str(self.post("/actor-tasks", {"name": name, "actId": actor_id})["id"])

    def dataset(self, name: str) -> str:
        return str(self.post("/datasets", name=name)["id"])

    def token(self, name: str, scope: Scope, *, expires_at: datetime | None = LATER) -> IssuedToken:
        return self.issuer.issue(name, scope=scope, expires_at=expires_at)

    def record(self, issued: IssuedToken, policy: str | None, **changes: Any) -> TokenRecord:
        base = TokenRecord(
            name=f"{policy or 'hand'}.1",
            secret=issued.secret,
            policy=policy,
            scope=issued.info.scope,
            created_at=issued.info.created_at,
            expires_at=issued.info.expires_at,
            issuer_id=issued.info.id,
        )
        return base.evolve(**changes)

    def admin_record(self) -> TokenRecord:
        info = next(t for t in self.issuer.list() if t.scope.unscoped)
        return TokenRecord(
            name="admin.1",
            secret=self.sb.admin_token,
            policy="admin",
            scope=Scope.full(),
            issuer_id=info.id,
            created_at=info.created_at,
        )

    def report(
        self,
        *,
        records: list[TokenRecord] = (),  # type: ignore[assignment]
        held: list[HeldToken] = (),  # type: ignore[assignment]
        policies: str | None = None,
        now: datetime | None = None,
        within: timedelta | None = None,
    ) -> AuditReport:
        pset = load_policies_from_text(policies) if policies is not None else None
        names = frozenset(pset.names) if pset is not None else None
        inventory = build_inventory(self.api, records=records, held=held, policy_names=names)
        return analyze(inventory, policies=pset, now=now, expiring_within=within)


@pytest.fixture
def account(empty_sandbox: SandboxHandle) -> Iterator[Account]:
    acc = Account(empty_sandbox)
    yield acc
    acc.api.close()


def kinds_for(report: AuditReport, token: str) -> list[FindingKind]:
    return sorted(f.kind for f in report.findings if f.token == token)


def only(report: AuditReport, token: str | None, kind: FindingKind) -> Any:
    found = [f for f in report.findings if f.token == token and f.kind is kind]
    assert len(found) == 1, [(f.kind, f.message) for f in report.findings]
    return found[0]


def scoped(**kwargs: Any) -> Scope:
    return Scope(**kwargs)


def test_unscoped_token(account: Account) -> None:
    issued = account.token("ops", Scope.full())
    rec = account.record(issued, "ops")
    report = account.report(records=[rec])
    f = only(report, rec.name, FindingKind.UNSCOPED_TOKEN)
    assert kinds_for(report, rec.name) == [FindingKind.UNSCOPED_TOKEN]
    assert f.path[-1] == "everything in the account"
    assert f.severity.value == "high"


def test_escalation_full_run_mode(account: Account) -> None:
    actor = account.actor("crawler")
    issued = account.token(
        "runner",
        scoped(
            resources=(ResourceGrant(ResourceType.ACTOR, actor, frozenset({Permission.RUN})),),
            actor_run_mode=RunMode.FULL,
        ),
    )
    rec = account.record(issued, "runner")
    report = account.report(records=[rec])
    f = only(report, rec.name, FindingKind.ESCALATION_FULL_RUN)
    assert f.severity.value == "critical"
    assert f.path[0] == f"token {rec.name}"
    assert "crawler" in f.path[1] and "run" in f.path[1]
    assert "unscoped token" in f.path[2]
    assert f.path[-1] == EVERYTHING
    # Run on an Actor also lets it manage the Actor's webhooks (D14): that route is reported
    # alongside; nothing else is.
    assert kinds_for(report, rec.name) == sorted(
        [FindingKind.ESCALATION_FULL_RUN, FindingKind.WEBHOOK_ROUTE]
    )


def test_restricted_run_mode_is_no_escalation(account: Account) -> None:
    actor = account.actor("crawler")
    issued = account.token(
        "runner",
        scoped(resources=(ResourceGrant(ResourceType.ACTOR, actor, frozenset({Permission.RUN})),)),
    )
    report = account.report(records=[account.record(issued, "runner")])
    assert FindingKind.ESCALATION_FULL_RUN not in kinds_for(report, "runner.1")


def test_escalation_through_schedule_create(account: Account) -> None:
    actor = account.actor("crawler")
    task = account.task("nightly", actor)
    issued = account.token(
        "scheduler",
        scoped(
            account={AccountGroup.SCHEDULES: frozenset({Permission.CREATE})},
            resources=(ResourceGrant(ResourceType.TASK, task, frozenset({Permission.READ})),),
        ),
    )
    rec = account.record(issued, "scheduler")
    report = account.report(records=[rec])
    f = only(report, rec.name, FindingKind.ESCALATION_SCHEDULE)
    assert kinds_for(report, rec.name) == [FindingKind.ESCALATION_SCHEDULE]
    assert f.path == (
        f"token {rec.name}",
        "create a schedule (account-level schedules: create)",
        f"schedule action: run task task {account.sb.username}~nightly "
        f"(resource task {task}: read)",
        "scheduled runs always get an unscoped token",
        EVERYTHING,
    )


def test_escalation_through_schedule_write(account: Account) -> None:
    actor = account.actor("crawler")
    schedule = account.post(
        "/schedules",
        {
            "name": "weekly",
            "cronExpression": "0 3 * * 1",
            "actions": [{"type": "RUN_ACTOR", "actorId": actor}],
        },
    )["id"]
    issued = account.token(
        "editor",
        scoped(
            account={AccountGroup.ACTORS: frozenset({Permission.RUN})},
            resources=(
                ResourceGrant(ResourceType.SCHEDULE, schedule, frozenset({Permission.WRITE})),
            ),
        ),
    )
    rec = account.record(issued, "editor")
    report = account.report(records=[rec])
    f = only(report, rec.name, FindingKind.ESCALATION_SCHEDULE)
    assert f.path[1].startswith("change schedule ")
    assert "weekly" in f.path[1]
    assert f.path[-2:] == ("scheduled runs always get an unscoped token", EVERYTHING)


def test_webhook_route(account: Account) -> None:
    actor = account.actor("crawler")
    issued = account.token(
        "hooker",
        scoped(resources=(ResourceGrant(ResourceType.ACTOR, actor, frozenset({Permission.RUN})),)),
    )
    rec = account.record(issued, "hooker")
    report = account.report(records=[rec])
    f = only(report, rec.name, FindingKind.WEBHOOK_ROUTE)
    assert kinds_for(report, rec.name) == [FindingKind.WEBHOOK_ROUTE]
    assert f.path == (
        f"token {rec.name}",
        f"resource actor {actor}: run",
        f"create a webhook on actor {account.sb.username}~crawler",
        "the webhook is dispatched later with this token's scope",
    )


def test_anonymous_access(account: Account) -> None:
    account.dataset("public-data")
    account.api.request(
        "PUT", "/_sandbox/settings", json={"generalResourceAccess": "ANYONE_WITH_ID_CAN_READ"}
    )
    report = account.report()
    f = only(report, None, FindingKind.ANONYMOUS_ACCESS)
    assert report.general_access is not None
    assert report.general_access.value == "ANYONE_WITH_ID_CAN_READ"
    assert f.path[0] == "anyone (no token)"
    assert f.path[-1] == "read 1 storages and 0 runs"
    assert [x for x in report.findings if x.token is None] == [f]


def test_restricted_account_has_no_anonymous_finding(account: Account) -> None:
    account.dataset("private-data")
    report = account.report()
    assert report.general_access is not None and report.general_access.value == "RESTRICTED"
    assert not [f for f in report.findings if f.kind is FindingKind.ANONYMOUS_ACCESS]


def test_ungoverned_token(account: Account) -> None:
    issued = account.token(
        "adhoc", scoped(account={AccountGroup.STORAGES: frozenset({Permission.READ})})
    )
    held = HeldToken("file:adhoc", TokenSource.FILE, issued.secret)
    report = account.report(held=[held])
    f = only(report, "file:adhoc", FindingKind.UNGOVERNED_TOKEN)
    assert kinds_for(report, "file:adhoc") == [FindingKind.UNGOVERNED_TOKEN]
    # Matched on the platform by its preview: its ID and scope are known.
    entry = report.token("file:adhoc")
    assert entry.token_id == issued.info.id and entry.scope == issued.info.scope
    assert "file" in f.message


def test_platform_tokens_not_in_the_vault_are_ungoverned(account: Account) -> None:
    report = account.report()
    admin = [t for t in report.tokens if t.unscoped]
    assert len(admin) == 1 and not admin[0].governed and admin[0].key.startswith("platform:")
    assert sorted(kinds_for(report, admin[0].key)) == sorted(
        [FindingKind.UNSCOPED_TOKEN, FindingKind.UNGOVERNED_TOKEN]
    )


POLICIES = """
[[token]]
name = "reporter"
expires_after = "60d"
rotate_after = "7d"
[token.account]
storages = ["read"]

[[token]]
name = "admin"
unscoped = true
"""


def test_access_beyond_policy(account: Account) -> None:
    issued = account.token(
        "reporter",
        scoped(account={AccountGroup.STORAGES: frozenset({Permission.READ, Permission.WRITE})}),
    )
    account.dataset("sales")
    rec = account.record(issued, "reporter")
    report = account.report(records=[rec, account.admin_record()], policies=POLICIES)
    f = only(report, rec.name, FindingKind.POLICY_DRIFT)
    assert kinds_for(report, rec.name) == [FindingKind.POLICY_DRIFT]
    assert "write on dataset" in f.message
    assert f.path[1] == "policy reporter" and f.path[2].startswith("beyond it: write on dataset")


def test_expired_token_still_active(account: Account) -> None:
    issued = account.token(
        "reporter",
        scoped(account={AccountGroup.STORAGES: frozenset({Permission.READ})}),
        expires_at=NOW + timedelta(hours=1),
    )
    rec = account.record(issued, "reporter")
    report = account.report(records=[rec], now=NOW + timedelta(hours=2))
    only(report, rec.name, FindingKind.EXPIRED_ACTIVE)
    assert kinds_for(report, rec.name) == [FindingKind.EXPIRED_ACTIVE]


def test_expiring_soon(account: Account) -> None:
    issued = account.token(
        "reporter",
        scoped(account={AccountGroup.STORAGES: frozenset({Permission.READ})}),
        expires_at=NOW + timedelta(days=2),
    )
    rec = account.record(issued, "reporter")
    assert kinds_for(account.report(records=[rec], within=timedelta(days=1)), rec.name) == []
    report = account.report(records=[rec], within=timedelta(days=7))
    only(report, rec.name, FindingKind.EXPIRING_SOON)
    assert kinds_for(report, rec.name) == [FindingKind.EXPIRING_SOON]


def test_rotation_overdue(account: Account) -> None:
    issued = account.token(
        "reporter", scoped(account={AccountGroup.STORAGES: frozenset({Permission.READ})})
    )
    rec = account.record(issued, "reporter", created_at=NOW - timedelta(days=8))
    report = account.report(records=[rec, account.admin_record()], policies=POLICIES)
    f = only(report, rec.name, FindingKind.ROTATION_OVERDUE)
    assert kinds_for(report, rec.name) == [FindingKind.ROTATION_OVERDUE]
    assert "rotate_after" in f.message


def test_retiring_past_grace(account: Account) -> None:
    issued = account.token(
        "reporter", scoped(account={AccountGroup.STORAGES: frozenset({Permission.READ})})
    )
    rec = account.record(
        issued,
        "reporter",
        status=TokenStatus.RETIRING,
        rotated_at=NOW - timedelta(days=3),
        retire_at=NOW - timedelta(days=2),
    )
    report = account.report(records=[rec])
    only(report, rec.name, FindingKind.GRACE_PAST)
    assert kinds_for(report, rec.name) == [FindingKind.GRACE_PAST]


def test_dead_token_in_vault(account: Account) -> None:
    issued = account.token(
        "reporter", scoped(account={AccountGroup.STORAGES: frozenset({Permission.READ})})
    )
    account.issuer.revoke(issued.info.id)
    rec = account.record(issued, "reporter")
    report = account.report(records=[rec])
    only(report, rec.name, FindingKind.DEAD_TOKEN)
    assert kinds_for(report, rec.name) == [FindingKind.DEAD_TOKEN]
    assert report.token(rec.name).on_platform is False


def test_dead_token_found_by_live_probe(account: Account) -> None:
    account.dataset("sales")
    issued = account.token(
        "reporter", scoped(account={AccountGroup.STORAGES: frozenset({Permission.READ})})
    )
    account.issuer.revoke(issued.info.id)
    # A record without the platform ID: only a probe can tell the token is dead.
    rec = account.record(issued, "reporter", issuer_id=None)
    inventory = build_inventory(account.api, records=[rec])
    report = analyze(inventory)
    assert FindingKind.DEAD_TOKEN not in kinds_for(report, rec.name)
    live = asyncio.run(live_verify(report, inventory, LiveConfig(account.sb.url, max_rps=500)))
    only(live, rec.name, FindingKind.DEAD_TOKEN)


def test_live_drift_between_declared_and_effective(account: Account) -> None:
    ds = account.dataset("sales")
    issued = account.token("reader", scoped())  # the platform: no permissions at all
    rec = account.record(issued, "reader")
    inventory = build_inventory(account.api, records=[rec])
    # The vault's declared scope says it may read every storage.
    declared = Scope(account={AccountGroup.STORAGES: frozenset({Permission.READ})})
    tokens = tuple(
        replace(t, entry=replace(t.entry, scope=declared)) if t.entry.key == rec.name else t
        for t in inventory.tokens
    )
    inventory = replace(inventory, tokens=tokens)
    report = analyze(inventory)
    live = asyncio.run(live_verify(report, inventory, LiveConfig(account.sb.url, max_rps=500)))
    f = only(live, rec.name, FindingKind.LIVE_DRIFT)
    assert f.resource == f"dataset:{ds}"
    assert f.path == (
        f"token {rec.name}",
        "declared: read allowed",
        f"effective: GET dataset:{ds} -> HTTP 403",
    )
    assert live.live is not None and live.live.mismatches == 1


def test_clean_account_has_no_findings(account: Account) -> None:
    account.dataset("sales")
    issued = account.token(
        "reporter", scoped(account={AccountGroup.STORAGES: frozenset({Permission.READ})})
    )
    rec = account.record(issued, "reporter")
    report = account.report(records=[rec, account.admin_record()], policies=POLICIES)
    assert report.findings == ()
    live = audit(
        account.api,
        records=[rec, account.admin_record()],
        policies=load_policies_from_text(POLICIES),
        live=True,
        max_rps=500,
    )
    assert live.findings == ()
    assert live.live is not None and live.live.mismatches == 0 and live.live.probes > 0


def test_created_resources_are_noted_statically_and_seen_live(account: Account) -> None:
    issued = account.token(
        "maker", scoped(account={AccountGroup.STORAGES: frozenset({Permission.CREATE})})
    )
    made = ApifyApi(account.sb.url, issued.secret)
    ds = made.request("POST", "/datasets", params={"name": "made-by-token"}).json()["data"]["id"]
    made.close()
    rec = account.record(issued, "maker")
    inventory = build_inventory(account.api, records=[rec])
    report = analyze(inventory)
    assert any("maker.1" in n and "create" in n for n in report.notes)
    live = asyncio.run(live_verify(report, inventory, LiveConfig(account.sb.url, max_rps=500)))
    f = only(live, rec.name, FindingKind.LIVE_DRIFT)
    assert f.resource == f"dataset:{ds}" and "may have created" in f.message


def test_revoked_in_vault_but_alive_on_platform(account: Account) -> None:
    issued = account.token(
        "reporter", scoped(account={AccountGroup.STORAGES: frozenset({Permission.READ})})
    )
    rec = account.record(issued, "reporter", status=TokenStatus.REVOKED)
    report = account.report(records=[rec])
    f = only(report, rec.name, FindingKind.GRACE_PAST)
    assert "marked revoked" in f.message
    assert kinds_for(report, rec.name) == [FindingKind.GRACE_PAST]
    # Once really revoked, the record drops out of the inventory.
    account.issuer.revoke(issued.info.id)
    assert rec.name not in {t.key for t in account.report(records=[rec]).tokens}
