"""Due detection and probe selection: pure functions, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tokenguard.permissions import AccountGroup, Permission, ResourceGrant, ResourceType, Scope
from tokenguard.policy import TokenPolicy, load_policies_from_text
from tokenguard.rotation import DEFAULT_MARGIN, DueReason, due_reasons, expiring_window, probes_for
from tokenguard.secrets import Secret
from tokenguard.vault.records import TokenRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SECRET = Secret("apify_api_" + "x" * 36)

POLICY_TOML = """
[[token]]
name = "ci"
expires_after = "30d"
rotate_after = "7d"
grace = "24h"
[token.account]
storages = ["read"]
"""


def _policy(text: str = POLICY_TOML) -> TokenPolicy:
    policy = load_policies_from_text(text).policies[0]
    assert policy.digest
    return policy


def _record(policy: TokenPolicy, **changes: object) -> TokenRecord:
    record = TokenRecord(
        name="ci.1",
        secret=SECRET,
        policy=policy.name,
        created_at=T0,
        expires_at=T0 + timedelta(days=30),
        policy_digest=policy.digest,
    )
    return record.evolve(**changes)


def test_fresh_token_is_not_due() -> None:
    policy = _policy()
    assert due_reasons(_record(policy), policy, now=T0 + timedelta(days=1)) == ()


def test_age_past_rotate_after_is_due_exactly_at_the_boundary() -> None:
    policy = _policy()
    record = _record(policy)
    assert due_reasons(record, policy, now=T0 + timedelta(days=7) - timedelta(seconds=1)) == ()
    assert due_reasons(record, policy, now=T0 + timedelta(days=7)) == (DueReason.AGE,)


def test_expiring_within_default_is_grace_plus_margin() -> None:
    policy = _policy()
    window = expiring_window(policy)
    assert window == timedelta(hours=24) + DEFAULT_MARGIN
    # Age would not be due yet: a short-lived record created recently but expiring soon.
    record = _record(policy, created_at=T0, expires_at=T0 + timedelta(days=2))
    assert due_reasons(record, policy, now=T0) == ()
    now = T0 + timedelta(days=2) - window
    assert due_reasons(record, policy, now=now) == (DueReason.EXPIRING,)
    # An explicit window overrides the default.
    assert due_reasons(record, policy, now=T0, expiring_within=timedelta(days=3)) == (
        DueReason.EXPIRING,
    )


def test_default_window_never_makes_a_fresh_token_due() -> None:
    # Lifetime shorter than grace + margin: without the cap every run would rotate again.
    policy = _policy(POLICY_TOML.replace('"30d"', '"1h"').replace('"7d"', '"20m"'))
    assert expiring_window(policy) == timedelta(minutes=30)
    record = _record(policy, expires_at=T0 + timedelta(hours=1))
    assert due_reasons(record, policy, now=T0) == ()


def test_compromised_and_policy_change_are_due() -> None:
    policy = _policy()
    assert due_reasons(_record(policy, compromised=True), policy, now=T0) == (
        DueReason.COMPROMISED,
    )
    assert due_reasons(_record(policy, policy_digest="sha256:old"), policy, now=T0) == (
        DueReason.POLICY_CHANGED,
    )
    # Hand-added records carry no digest: never "changed"; of unknown age: due by age.
    assert due_reasons(_record(policy, policy_digest=None, created_at=None), policy, now=T0) == (
        DueReason.AGE,
    )


def test_probes_sample_one_per_resource_type_then_account_groups() -> None:
    scope = Scope(
        account={AccountGroup.STORAGES: frozenset({Permission.READ})},
        resources=(
            ResourceGrant(ResourceType.ACTOR, "a1", frozenset({Permission.RUN})),
            ResourceGrant(ResourceType.ACTOR, "a2", frozenset({Permission.READ})),
            ResourceGrant(ResourceType.DATASET, "u~d", frozenset({Permission.WRITE})),
        ),
    )
    probes = probes_for(scope, limit=5)
    assert [p.path for p in probes] == ["/acts/a1/runs", "/datasets/u~d", "/datasets"]
    assert probes_for(scope, limit=1)[0].path == "/acts/a1/runs"
    assert [p.path for p in probes_for(Scope.full())] == ["/users/me"]
    # Nothing readable: a list call still proves the token authenticates (lists never 403).
    create_only = Scope(account={AccountGroup.TASKS: frozenset({Permission.CREATE})})
    assert [p.path for p in probes_for(create_only)] == ["/datasets"]
