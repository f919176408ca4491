"""Audit benchmarks.

1. Static analysis of 1,000 tokens x 10,000 resources (no network): the time to build the
   AuditReport (reach, indirect routes, findings) — target under 2 s — and, separately, the
   time to expand the full token x resource matrix (what the formats iterate).
2. A live audit against the sandbox started with --rate-limit: achieved requests/s as a share
   of the allowed rate (target at least 90%) and probes per token.

Run: .venv/bin/python bench/audit_bench.py [--tokens 1000] [--resources 10000] [--rate 100]
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta

from _common import sandbox_process

from tokenguard.api.client import ApifyApi
from tokenguard.api.issuer import HttpTokenIssuer
from tokenguard.audit import analyze, audit
from tokenguard.audit.inventory import HeldToken, Inventory, InventoryToken
from tokenguard.audit.report import TokenEntry, TokenSource
from tokenguard.permissions import (
    ACCOUNT_PERMISSIONS,
    RESOURCE_PERMISSIONS,
    AccountGroup,
    GeneralAccess,
    Permission,
    Resource,
    ResourceGrant,
    ResourceKind,
    RunMode,
    ScheduleAction,
    ScheduleActionType,
    Scope,
)


def synthetic_account(n_resources: int, rng: random.Random) -> list[Resource]:
    """A believable mix: Actors, tasks, runs (with default storages), storages, schedules,
    webhooks, adding up to ``n_resources``."""
    share = {
        "actor": 0.02,
        "task": 0.08,
        "run": 0.10,
        "schedule": 0.05,
        "webhook": 0.05,
    }
    counts = {k: max(1, int(n_resources * v)) for k, v in share.items()}
    out: list[Resource] = []
    actors = [f"actor{i:05d}" for i in range(counts["actor"])]
    out += [Resource(ResourceKind.ACTOR, a, f"a{i}", "bench") for i, a in enumerate(actors)]
    tasks = [f"task{i:05d}" for i in range(counts["task"])]
    out += [
        Resource(ResourceKind.TASK, t, f"t{i}", "bench", actor_id=rng.choice(actors))
        for i, t in enumerate(tasks)
    ]
    for i in range(counts["run"]):
        rid = f"run{i:05d}"
        out.append(
            Resource(
                ResourceKind.RUN,
                rid,
                actor_id=rng.choice(actors),
                task_id=rng.choice(tasks) if rng.random() < 0.5 else None,
                default_dataset_id=f"d-{rid}",
                default_key_value_store_id=f"k-{rid}",
                default_request_queue_id=f"q-{rid}",
            )
        )
        out += [
            Resource(ResourceKind.DATASET, f"d-{rid}"),
            Resource(ResourceKind.KEY_VALUE_STORE, f"k-{rid}"),
            Resource(ResourceKind.REQUEST_QUEUE, f"q-{rid}"),
        ]
    for i in range(counts["schedule"]):
        if rng.random() < 0.5:
            action = ScheduleAction(ScheduleActionType.RUN_ACTOR, rng.choice(actors))
        else:
            action = ScheduleAction(ScheduleActionType.RUN_ACTOR_TASK, rng.choice(tasks))
        out.append(
            Resource(ResourceKind.SCHEDULE, f"sch{i:05d}", f"s{i}", "bench", actions=(action,))
        )
    for i in range(counts["webhook"]):
        out.append(Resource(ResourceKind.WEBHOOK, f"wh{i:05d}", actor_id=rng.choice(actors)))
    kinds = [ResourceKind.DATASET, ResourceKind.KEY_VALUE_STORE, ResourceKind.REQUEST_QUEUE]
    i = 0
    while len(out) < n_resources:
        kind = kinds[i % 3]
        out.append(Resource(kind, f"st{i:06d}", f"st{i}", "bench"))
        i += 1
    return out[:n_resources]


def synthetic_scope(resources: list[Resource], rng: random.Random) -> Scope:
    if rng.random() < 0.02:
        return Scope.full()
    account = {}
    for group in rng.sample(list(AccountGroup), rng.randint(0, 2)):
        perms = rng.sample(sorted(ACCOUNT_PERMISSIONS[group]), rng.randint(1, 2))
        account[group] = frozenset(perms)
    grants = []
    for _ in range(rng.randint(0, 8)):
        r = rng.choice(resources)
        rtype = r.kind.resource_type
        if rtype is None:
            continue
        perms = rng.sample(sorted(RESOURCE_PERMISSIONS[rtype]), 1)
        grants.append(ResourceGrant(rtype, r.id, frozenset(perms)))
    return Scope(
        account=account,
        resources=tuple(grants),
        actor_run_mode=RunMode.FULL if rng.random() < 0.1 else RunMode.RESTRICTED,
        default_run_storage_access=rng.random() < 0.3,
    )


def bench_static(n_tokens: int, n_resources: int) -> None:
    rng = random.Random(7)
    resources = synthetic_account(n_resources, rng)
    now = datetime.now(UTC)
    tokens = tuple(
        InventoryToken(
            TokenEntry(
                key=f"t{i}",
                name=f"t{i}",
                sources=(TokenSource.PLATFORM,),
                governed=rng.random() < 0.8,
                token_id=f"tok{i}",
                policy=None,
                scope=synthetic_scope(resources, rng),
                expires_at=now + timedelta(days=rng.randint(1, 90)),
                on_platform=True,
            )
        )
        for i in range(n_tokens)
    )
    inventory = Inventory(tokens, tuple(resources), GeneralAccess.RESTRICTED, "bench")
    t0 = time.perf_counter()
    report = analyze(inventory, now=now, expiring_within=timedelta(days=7))
    analysis = time.perf_counter() - t0
    t1 = time.perf_counter()
    pairs = 0
    grants = 0
    for access in report.iter_access():
        pairs += 1
        grants += len(access.grants)
    expansion = time.perf_counter() - t1
    print(f"static: {n_tokens} tokens x {n_resources} resources = {n_tokens * n_resources:,} pairs")
    print(
        f"  analysis (reach + routes + findings): {analysis:.2f} s  (target < 2 s: "
        f"{'met' if analysis < 2 else 'NOT met'}; {analysis / 2:.0%} of budget)"
    )
    print(f"  findings: {len(report.findings)}, escalation chains: {len(report.escalations)}")
    print(
        f"  full matrix expansion: {expansion:.2f} s for {pairs:,} non-empty pairs "
        f"({grants:,} grants, {pairs / max(expansion, 1e-9):,.0f} pairs/s)"
    )


def bench_live(rate: float, n_tokens: int, n_storages: int, concurrency: int) -> None:
    with sandbox_process(f"bench:{n_storages}", rate_limit=rate) as (url, admin_token):
        api = ApifyApi(url, admin_token)
        issuer = HttpTokenIssuer(api)
        rng = random.Random(3)
        held = []
        for i in range(n_tokens):
            perms = rng.choice(
                [frozenset({Permission.READ}), frozenset({Permission.READ, Permission.WRITE})]
            )
            scope = Scope(account={AccountGroup.STORAGES: perms}) if i % 2 else Scope()
            issued = issuer.issue(f"bench-{i}", scope=scope, expires_at=None)
            held.append(HeldToken(f"file:bench-{i}", TokenSource.FILE, issued.secret))
        time.sleep(1.5)  # let the account bucket refill after the setup requests
        report = audit(api, held=held, live=True, max_rps=rate, concurrency=concurrency)
        api.close()
    live = report.live
    assert live is not None
    rps = live.requests_per_second
    n_res = len(report.resources)
    print(f"live: sandbox --rate-limit {rate:g}/s, {n_tokens} held tokens, {n_res} resources")
    print(
        f"  {live.requests} requests ({live.retries} retried after 429) in {live.seconds:.2f} s "
        f"= {rps:.1f} req/s = {rps / rate:.0%} of the allowed rate (target >= 90%: "
        f"{'met' if rps / rate >= 0.9 else 'NOT met'})"
    )
    print(f"  probes per token: {live.probes / n_tokens:.0f}; mismatches: {live.mismatches}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--resources", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--live-tokens", type=int, default=20)
    parser.add_argument("--live-storages", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    bench_static(args.tokens, args.resources)
    bench_live(args.rate, args.live_tokens, args.live_storages, args.concurrency)


if __name__ == "__main__":
    main()
