"""Ground truth: every (token, resource, permission) claim of the audit is tried in the sandbox.

Random accounts (Actors, tasks, storages, runs, schedules, webhooks, general resource access of
the account and of single storages) and random scoped tokens are built through the real API of
a loopback sandbox; the audit runs against it; then each claim is tried with the token itself.
No access missed, none invented. Deletes (the only way to try write on a task or schedule
alone) are undone on the server.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenguard.api.client import ApifyApi
from tokenguard.api.issuer import HttpTokenIssuer
from tokenguard.audit import analyze, build_inventory
from tokenguard.audit.inventory import HeldToken
from tokenguard.audit.report import TokenSource
from tokenguard.permissions import (
    ACCOUNT_PERMISSIONS,
    KIND_PERMISSIONS,
    RESOURCE_PERMISSIONS,
    AccountGroup,
    Permission,
    ResourceGrant,
    ResourceKind,
    ResourceType,
    RunMode,
    Scope,
)
from tokenguard.sandbox.testing import SandboxHandle, running_sandbox

_PREFIX = {
    ResourceKind.ACTOR: "/actors/",
    ResourceKind.TASK: "/actor-tasks/",
    ResourceKind.DATASET: "/datasets/",
    ResourceKind.KEY_VALUE_STORE: "/key-value-stores/",
    ResourceKind.REQUEST_QUEUE: "/request-queues/",
    ResourceKind.SCHEDULE: "/schedules/",
    ResourceKind.WEBHOOK: "/webhooks/",
    ResourceKind.RUN: "/actor-runs/",
}


def build_account(sb: SandboxHandle, spec: dict[str, Any]) -> dict[ResourceKind, list[str]]:
    """Create the resources of ``spec`` with the admin token; return IDs per kind."""
    api = ApifyApi(sb.url, sb.admin_token)
    ids: dict[ResourceKind, list[str]] = {k: [] for k in ResourceKind}

    def post(path: str, body: Any = None, **params: Any) -> dict[str, Any]:
        data: dict[str, Any] = api.request("POST", path, json=body, params=params or None).json()[
            "data"
        ]
        return data

    for i in range(spec["actors"]):
        ids[ResourceKind.ACTOR].append(post("/actors", {"name": f"actor-{i}"})["id"])
    actors = ids[ResourceKind.ACTOR]
    for i, a in enumerate(spec["tasks"]):
        ids[ResourceKind.TASK].append(
            post("/actor-tasks", {"actId": actors[a % len(actors)], "name": f"task-{i}"})["id"]
        )
    for kind, path, count in (
        (ResourceKind.DATASET, "/datasets", spec["datasets"]),
        (ResourceKind.KEY_VALUE_STORE, "/key-value-stores", spec["kvs"]),
        (ResourceKind.REQUEST_QUEUE, "/request-queues", spec["queues"]),
    ):
        for i in range(count):
            ids[kind].append(post(path, name=f"{kind.value}-{i}")["id"])
    tasks = ids[ResourceKind.TASK]
    for from_task, n in spec["runs"]:
        if from_task and tasks:
            run = post(f"/actor-tasks/{tasks[n % len(tasks)]}/runs")
        else:
            run = post(f"/actors/{actors[n % len(actors)]}/runs")
        ids[ResourceKind.RUN].append(run["id"])
        ids[ResourceKind.DATASET].append(run["defaultDatasetId"])
        ids[ResourceKind.KEY_VALUE_STORE].append(run["defaultKeyValueStoreId"])
        ids[ResourceKind.REQUEST_QUEUE].append(run["defaultRequestQueueId"])
    for i, (on_task, n) in enumerate(spec["schedules"]):
        if on_task and tasks:
            action = {"type": "RUN_ACTOR_TASK", "actorTaskId": tasks[n % len(tasks)]}
        else:
            action = {"type": "RUN_ACTOR", "actorId": actors[n % len(actors)]}
        body = {"name": f"schedule-{i}", "cronExpression": "0 3 * * *", "actions": [action]}
        ids[ResourceKind.SCHEDULE].append(post("/schedules", body)["id"])
    for on_task, n in spec["webhooks"]:
        if on_task and tasks:
            condition = {"actorTaskId": tasks[n % len(tasks)]}
        else:
            condition = {"actorId": actors[n % len(actors)]}
        body = {
            "eventTypes": ["ACTOR.RUN.SUCCEEDED"],
            "condition": condition,
            "requestUrl": "https://hooks.example.com/x",
        }
        ids[ResourceKind.WEBHOOK].append(post("/webhooks", body)["id"])
    # Storages with their own general access (general-resource-access.md, "Per-resource access
    # control"): the inventory reads it from the list items, the matrix must follow it.
    storages = [
        (kind, sid)
        for kind in (
            ResourceKind.DATASET,
            ResourceKind.KEY_VALUE_STORE,
            ResourceKind.REQUEST_QUEUE,
        )
        for sid in ids[kind]
    ]
    for n, value in spec["shared"]:
        if storages:
            kind, sid = storages[n % len(storages)]
            api.request("PUT", _PREFIX[kind] + sid, json={"generalAccess": value})
    if spec["anyone"]:
        api.request(
            "PUT", "/_sandbox/settings", json={"generalResourceAccess": "ANYONE_WITH_ID_CAN_READ"}
        )
    api.close()
    return ids


account_specs = st.fixed_dictionaries(
    {
        "actors": st.integers(1, 3),
        "tasks": st.lists(st.integers(0, 5), max_size=3),
        "datasets": st.integers(0, 2),
        "kvs": st.integers(0, 1),
        "queues": st.integers(0, 1),
        "runs": st.lists(st.tuples(st.booleans(), st.integers(0, 5)), max_size=2),
        "schedules": st.lists(st.tuples(st.booleans(), st.integers(0, 5)), max_size=2),
        "webhooks": st.lists(st.tuples(st.booleans(), st.integers(0, 5)), max_size=2),
        "anyone": st.booleans(),
        "shared": st.lists(
            st.tuples(
                st.integers(0, 9),
                st.sampled_from(
                    [
                        "FOLLOW_USER_SETTING",
                        "RESTRICTED",
                        "ANYONE_WITH_ID_CAN_READ",
                        "ANYONE_WITH_NAME_CAN_READ",
                    ]
                ),
            ),
            min_size=1,
            max_size=2,
        ),
    }
)


@st.composite
def scopes(draw: st.DrawFn, ids: dict[ResourceKind, list[str]]) -> Scope:
    """A random scope over the account's resources (or, rarely, an unscoped token)."""
    if draw(st.integers(0, 9)) == 0:
        return Scope.full()
    account = {}
    for group in AccountGroup:
        perms = draw(st.sets(st.sampled_from(sorted(ACCOUNT_PERMISSIONS[group]))))
        if perms and draw(st.booleans()):
            account[group] = frozenset(perms)
    grants = []
    for rtype in ResourceType:
        pool = ids[ResourceKind(rtype.value)]
        if not pool:
            continue
        for rid in draw(st.lists(st.sampled_from(pool), max_size=2, unique=True)):
            perms = draw(st.sets(st.sampled_from(sorted(RESOURCE_PERMISSIONS[rtype])), min_size=1))
            grants.append(ResourceGrant(rtype, rid, frozenset(perms)))
    return Scope(
        account=account,
        resources=tuple(grants),
        actor_run_mode=draw(st.sampled_from(list(RunMode))),
        default_run_storage_access=draw(st.booleans()),
    )


def try_claim(
    sb: SandboxHandle,
    client: httpx.Client,
    secret: str,
    kind: ResourceKind,
    rid: str,
    perm: Permission,
) -> bool:
    """Try ``perm`` on the resource with the token; True when the sandbox allows it."""
    url = sb.url + "/v2" + _PREFIX[kind] + rid
    headers = {"Authorization": f"Bearer {secret}"}
    restore: Callable[[], None] | None = None
    if perm is Permission.READ:
        response = client.get(url, headers=headers)
    elif perm is Permission.RUN:
        response = client.post(url + "/runs", headers=headers)
    elif kind is ResourceKind.RUN:
        response = client.post(url + "/abort", headers=headers)
    elif kind in (ResourceKind.TASK, ResourceKind.SCHEDULE):
        # Write alone is only observable through DELETE (update also checks the Actor);
        # the resource is put back on the server right after.
        from tokenguard.sandbox.state import Kind

        # Deleting a task also deletes the webhooks on it: snapshot and restore those too.
        objs = sb.on_loop(lambda s: [s.get(Kind(kind.value), rid), *s.all(Kind.WEBHOOK)])
        response = client.delete(url, headers=headers)
        if response.status_code == 204:

            def restore() -> None:
                def put_back(s: Any) -> None:
                    for obj in objs:
                        if obj is not None and s.get(obj.kind, obj.id) is None:
                            s.add(obj)

                sb.on_loop(put_back)
    else:
        response = client.put(url, headers=headers, json={})
    if restore is not None:
        restore()
    assert response.status_code in (200, 201, 204, 403), (kind, perm, response.status_code)
    return response.status_code != 403


@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_every_claim_matches_the_sandbox(data: st.DataObject) -> None:
    spec = data.draw(account_specs, label="account")
    with running_sandbox("empty") as sb:
        ids = build_account(sb, spec)
        admin = ApifyApi(sb.url, sb.admin_token)
        issuer = HttpTokenIssuer(admin)
        n_tokens = data.draw(st.integers(1, 3), label="tokens")
        held = []
        expires = datetime.now(UTC) + timedelta(days=1)
        for i in range(n_tokens):
            scope = data.draw(scopes(ids), label=f"scope{i}")
            issued = issuer.issue(f"t{i}", scope=scope, expires_at=expires)
            held.append(HeldToken(f"file:t{i}", TokenSource.FILE, issued.secret))
        inventory = build_inventory(admin, held=held)
        report = analyze(inventory)
        claims = report.access_map()
        by_key = {t.entry.key: t for t in inventory.tokens}
        checked = 0
        with httpx.Client(timeout=30) as client:
            for h in held:
                token = by_key[h.name]
                assert token.entry.scope is not None, "held token not matched on the platform"
                for res in report.resources:
                    held_perms = claims.get((h.name, res.key), frozenset())
                    for perm in KIND_PERMISSIONS[res.kind]:
                        actual = try_claim(sb, client, h.secret.reveal(), res.kind, res.id, perm)
                        predicted = perm in held_perms
                        assert predicted == actual, (
                            f"{'invented' if predicted else 'missed'}: {perm.value} on "
                            f"{res.key} for scope {token.entry.scope.to_api()}"
                        )
                        checked += 1
        admin.close()
        assert checked > 0
