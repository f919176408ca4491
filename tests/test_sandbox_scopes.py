"""Scope enforcement in the sandbox: a few cases per decision D1-D18 (raw HTTP on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tokenguard.sandbox.testing import SandboxHandle
from tokenguard.secrets import Secret


class Api:
    """A tiny raw-HTTP helper bound to one token (None: anonymous)."""

    def __init__(self, sb: SandboxHandle, token: Secret | None) -> None:
        headers = {"Authorization": f"Bearer {token.reveal()}"} if token is not None else {}
        self.http = httpx.Client(base_url=sb.api_url, headers=headers)

    def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, **kwargs)


@pytest.fixture
def admin(sandbox: SandboxHandle) -> Iterator[Api]:
    api = Api(sandbox, sandbox.admin_token)
    yield api
    api.http.close()


def issue(admin: Api, scope: dict[str, Any] | None, **extra: Any) -> Secret:
    r = admin("POST", "/users/me/tokens", json={"name": "t", "scope": scope, **extra})
    assert r.status_code == 201, r.text
    return Secret(r.json()["data"]["token"])


def as_token(sb: SandboxHandle, admin: Api, scope: dict[str, Any] | None) -> Api:
    return Api(sb, issue(admin, scope))


def error_type(r: httpx.Response) -> str:
    return str(r.json()["error"]["type"])


def grant(r: httpx.Response) -> str | None:
    return r.headers.get("X-Sandbox-Grant")


# D1 -----------------------------------------------------------------------------------------


def test_d1_outside_scope_is_403_and_missing_is_404(sandbox: SandboxHandle, admin: Api) -> None:
    api = as_token(sandbox, admin, {"account": {"storages": ["read"]}})
    r = api("GET", "/actor-tasks/demo~nightly-crawl")
    assert r.status_code == 403 and error_type(r) == "insufficient-permissions"
    r = api("GET", "/actor-tasks/demo~does-not-exist")
    assert r.status_code == 404 and error_type(r) == "record-not-found"
    r = admin("GET", "/datasets/AAAAAAAAAAAAAAAAA")
    assert r.status_code == 404 and error_type(r) == "record-not-found"


# D2 -----------------------------------------------------------------------------------------


def test_d2_lists_filter_instead_of_403(sandbox: SandboxHandle, admin: Api) -> None:
    api = as_token(
        sandbox,
        admin,
        {"resources": [{"type": "dataset", "id": "demo~products", "permissions": ["read"]}]},
    )
    r = api("GET", "/datasets")
    assert r.status_code == 200
    assert [d["name"] for d in r.json()["data"]["items"]] == ["products"]
    assert grant(r) is None  # lists carry no grant header
    r = api("GET", "/actor-tasks")
    assert r.status_code == 200 and r.json()["data"]["total"] == 0
    everything = as_token(sandbox, admin, {"account": {"storages": ["read"]}})
    names = {d["name"] for d in everything("GET", "/datasets").json()["data"]["items"]}
    assert names == {"products", "seo-reports", "invoices"}


# D3 -----------------------------------------------------------------------------------------


def test_d3_write_implies_read(sandbox: SandboxHandle, admin: Api) -> None:
    api = as_token(
        sandbox,
        admin,
        {
            "account": {"tasks": ["write"]},
            "resources": [{"type": "dataset", "id": "demo~invoices", "permissions": ["write"]}],
        },
    )
    r = api("GET", "/datasets/demo~invoices/items")
    assert r.status_code == 200 and grant(r) == "resource"
    assert api("GET", "/actor-tasks/demo~weekly-seo").headers["X-Sandbox-Grant"] == "account"


# D4 -----------------------------------------------------------------------------------------


def test_d4_create_needs_account_create_and_grants_the_creation(
    sandbox: SandboxHandle, admin: Api
) -> None:
    without = as_token(sandbox, admin, {"account": {"storages": ["read", "write"]}})
    r = without("POST", "/datasets", params={"name": "fresh"})
    assert r.status_code == 403 and "create" in r.json()["error"]["message"]
    creator = as_token(sandbox, admin, {"account": {"storages": ["create"]}})
    r = creator("POST", "/datasets", params={"name": "fresh"})
    assert r.status_code == 201 and grant(r) == "account"
    new_id = r.json()["data"]["id"]
    r = creator("POST", f"/datasets/{new_id}/items", json=[{"a": 1}])
    assert r.status_code == 201 and grant(r) == "created"
    assert creator("GET", f"/datasets/{new_id}").headers["X-Sandbox-Grant"] == "created"
    # Existing named storage: returned only if the token may read it.
    r = creator("POST", "/datasets", params={"name": "products"})
    assert r.status_code == 403
    reader = as_token(sandbox, admin, {"account": {"storages": ["read"]}})
    r = reader("POST", "/datasets", params={"name": "products"})
    assert r.status_code == 200 and r.json()["data"]["name"] == "products"
    # Another token with the same create right does not get the first token's creation.
    other = as_token(sandbox, admin, {"account": {"storages": ["create"]}})
    assert other("GET", f"/datasets/{new_id}").status_code == 403


# D5 -----------------------------------------------------------------------------------------


def test_d5_scoped_tokens_never_create_or_modify_actors(sandbox: SandboxHandle, admin: Api) -> None:
    api = as_token(sandbox, admin, {"account": {"actors": ["read", "run"]}})
    assert api("POST", "/acts", json={"name": "mine"}).status_code == 403
    assert api("PUT", "/acts/demo~web-scraper", json={"title": "x"}).status_code == 403
    assert api("DELETE", "/acts/demo~web-scraper").status_code == 403
    r = admin("POST", "/actors", json={"name": "mine"})
    assert r.status_code == 201 and grant(r) == "unscoped"
    runner = as_token(
        sandbox,
        admin,
        {"resources": [{"type": "actor", "id": "demo~pdf-export", "permissions": ["run"]}]},
    )
    assert runner("GET", "/acts/demo~pdf-export").status_code == 403  # get needs read
    r = runner("POST", "/acts/demo~pdf-export/runs", json={})
    assert r.status_code == 201 and grant(r) == "resource"
    r = runner("POST", "/acts/demo~seo-audit/runs", json={})
    assert r.status_code == 403
    assert r.json()["error"]["message"].endswith(f"run on actor {_id(admin, 'acts', 'seo-audit')}")


def _id(admin: Api, collection: str, name: str) -> str:
    return str(admin("GET", f"/{collection}/demo~{name}").json()["data"]["id"])


# D6 -----------------------------------------------------------------------------------------


def _run_of(admin: Api, task: str) -> dict[str, Any]:
    task_id = _id(admin, "actor-tasks", task)
    runs = admin("GET", f"/actor-tasks/{task_id}/runs").json()["data"]["items"]
    return dict(runs[0])


def test_d6_runs_need_read_or_run_on_actor_or_task_read(sandbox: SandboxHandle, admin: Api) -> None:
    run = _run_of(admin, "nightly-crawl")
    runner = as_token(
        sandbox,
        admin,
        {"resources": [{"type": "actor", "id": "demo~web-scraper", "permissions": ["run"]}]},
    )
    assert runner("GET", f"/actor-runs/{run['id']}").status_code == 200
    assert runner("GET", "/acts/demo~web-scraper/runs").status_code == 200
    assert runner("POST", f"/actor-runs/{run['id']}/abort").status_code == 200
    task_reader = as_token(
        sandbox,
        admin,
        {"resources": [{"type": "task", "id": "demo~nightly-crawl", "permissions": ["read"]}]},
    )
    r = task_reader("GET", f"/actor-runs/{run['id']}")
    assert r.status_code == 200 and grant(r) == "resource"
    assert task_reader("POST", f"/actor-runs/{run['id']}/abort").status_code == 403
    assert task_reader("GET", "/acts/demo~web-scraper/runs").status_code == 403
    nobody = as_token(sandbox, admin, {"account": {"storages": ["read"]}})
    assert nobody("GET", f"/actor-runs/{run['id']}").status_code == 403
    assert nobody("GET", "/actor-runs").json()["data"]["total"] == 0
    assert task_reader("GET", "/actor-runs").json()["data"]["total"] == 1


# D7 -----------------------------------------------------------------------------------------


def test_d7_tasks(sandbox: SandboxHandle, admin: Api) -> None:
    create_only = as_token(sandbox, admin, {"account": {"tasks": ["create"]}})
    # The create permission is checked before the Actor reference: without it, a missing
    # Actor is a 403 too (no probing for IDs); with it, the missing Actor is a 404 (D1).
    nobody = as_token(sandbox, admin, {"account": {"tasks": ["read"]}})
    ghost = {"actId": "AAAAAAAAAAAAAAAAA", "name": "t0"}
    r = nobody("POST", "/actor-tasks", json=ghost)
    assert r.status_code == 403 and "create on account tasks" in r.json()["error"]["message"]
    assert create_only("POST", "/actor-tasks", json=ghost).status_code == 404
    body = {"actId": "demo~pdf-export", "name": "t1"}
    r = create_only("POST", "/actor-tasks", json=body)
    assert r.status_code == 403 and "run on actor" in r.json()["error"]["message"]
    manager = as_token(sandbox, admin, {"account": {"tasks": ["create"], "actors": ["run"]}})
    r = manager("POST", "/actor-tasks", json=body)
    assert r.status_code == 201 and grant(r) == "account"
    task_id = r.json()["data"]["id"]
    r = manager("POST", f"/actor-tasks/{task_id}/runs")
    assert r.status_code == 201 and grant(r) == "created"
    reader = as_token(
        sandbox,
        admin,
        {"resources": [{"type": "task", "id": "demo~weekly-seo", "permissions": ["read"]}]},
    )
    assert reader("POST", "/actor-tasks/demo~weekly-seo/runs").status_code == 403  # no run
    writer = as_token(
        sandbox,
        admin,
        {"resources": [{"type": "task", "id": "demo~weekly-seo", "permissions": ["write"]}]},
    )
    r = writer("PUT", "/actor-tasks/demo~weekly-seo", json={"title": "x"})
    assert r.status_code == 403  # write on the task but no run on its Actor
    assert writer("DELETE", "/actor-tasks/demo~weekly-seo").status_code == 204


def test_d7_task_update_checks_the_new_actor(sandbox: SandboxHandle, admin: Api) -> None:
    api = as_token(
        sandbox,
        admin,
        {
            "resources": [
                {"type": "task", "id": "demo~weekly-seo", "permissions": ["write"]},
                {"type": "actor", "id": "demo~seo-audit", "permissions": ["run"]},
            ]
        },
    )
    r = api("PUT", "/actor-tasks/demo~weekly-seo", json={"title": "ok"})
    assert r.status_code == 200 and grant(r) == "resource"
    r = api("PUT", "/actor-tasks/demo~weekly-seo", json={"actId": "demo~pdf-export"})
    assert r.status_code == 403


# D8 -----------------------------------------------------------------------------------------


def test_d8_schedules(sandbox: SandboxHandle, admin: Api) -> None:
    creator = Api(sandbox, sandbox.token("schedule-creator"))
    task_action = {"type": "RUN_ACTOR_TASK", "actorTaskId": "demo~nightly-crawl"}
    r = creator("POST", "/schedules", json={"name": "s1", "actions": [task_action]})
    assert r.status_code == 201 and grant(r) == "account"
    actor_action = {"type": "RUN_ACTOR", "actorId": "demo~web-scraper"}
    r = creator("POST", "/schedules", json={"name": "s2", "actions": [actor_action]})
    assert r.status_code == 403 and "run on actor" in r.json()["error"]["message"]
    reader = as_token(sandbox, admin, {"account": {"schedules": ["read"]}})
    assert reader("GET", "/schedules/demo~nightly").status_code == 200
    assert reader("DELETE", "/schedules/demo~nightly").status_code == 403
    writer = as_token(sandbox, admin, {"account": {"schedules": ["write"]}})
    # The nightly schedule triggers a task this token cannot read.
    assert writer("PUT", "/schedules/demo~nightly", json={"isEnabled": False}).status_code == 403
    assert writer("DELETE", "/schedules/demo~nightly").status_code == 204


# D9 / D10 -----------------------------------------------------------------------------------


def test_d9_storage_read_and_write(sandbox: SandboxHandle, admin: Api) -> None:
    reader = Api(sandbox, sandbox.token("storage-reader"))
    assert reader("GET", "/key-value-stores/demo~crawler-state/keys").status_code == 200
    assert reader("GET", "/key-value-stores/demo~crawler-state/records/STATE").status_code == 200
    r = reader("PUT", "/key-value-stores/demo~crawler-state/records/STATE", json={"x": 1})
    assert r.status_code == 403 and "write on key-value-store" in r.json()["error"]["message"]
    assert reader("POST", "/datasets/demo~products/items", json={"a": 1}).status_code == 403
    assert reader("DELETE", "/request-queues/demo~crawl-queue").status_code == 403
    writer = as_token(sandbox, admin, {"account": {"storages": ["write"]}})
    assert writer("DELETE", "/request-queues/demo~crawl-queue").status_code == 204


def test_d10_default_run_storage_access(sandbox: SandboxHandle, admin: Api) -> None:
    run = _run_of(admin, "nightly-crawl")
    actor_grant = {"type": "actor", "id": "demo~web-scraper", "permissions": ["read"]}
    on = as_token(sandbox, admin, {"resources": [actor_grant], "defaultRunStorageAccess": True})
    r = on("GET", f"/datasets/{run['defaultDatasetId']}/items")
    assert r.status_code == 200 and grant(r) == "default-run-storage"
    r = on("PUT", f"/key-value-stores/{run['defaultKeyValueStoreId']}/records/X", json={})
    assert r.status_code == 201
    assert on("GET", f"/actor-runs/{run['id']}/request-queue").status_code == 200
    off = as_token(sandbox, admin, {"resources": [actor_grant], "defaultRunStorageAccess": False})
    assert off("GET", f"/datasets/{run['defaultDatasetId']}/items").status_code == 403
    assert off("GET", f"/actor-runs/{run['id']}/dataset/items").status_code == 403
    # Not the default storage of a readable run: no access even with the toggle on.
    assert on("GET", "/datasets/demo~products").status_code == 403


# D11 / D12 ----------------------------------------------------------------------------------


def test_d11_anonymous_reads_by_id(sandbox: SandboxHandle, admin: Api) -> None:
    anon = Api(sandbox, None)
    products = _id(admin, "datasets", "products")
    assert anon("GET", f"/datasets/{products}").status_code == 401
    r = admin(
        "PUT", "/_sandbox/settings", json={"generalResourceAccess": "ANYONE_WITH_ID_CAN_READ"}
    )
    assert r.status_code == 200
    r = anon("GET", f"/datasets/{products}/items")
    assert r.status_code == 200 and grant(r) == "anonymous"
    assert anon("GET", "/datasets/demo~products").status_code == 401  # by name: no
    assert anon("POST", f"/datasets/{products}/items", json={"a": 1}).status_code == 401
    assert anon("GET", "/datasets").status_code == 401
    scoped = as_token(sandbox, admin, {"account": {"tasks": ["read"]}})
    r = scoped("GET", f"/datasets/{products}")
    assert r.status_code == 200 and grant(r) == "anonymous"
    assert scoped("GET", "/datasets/demo~products").status_code == 403
    assert scoped("POST", f"/datasets/{products}/items", json={"a": 1}).status_code == 403
    run = _run_of(admin, "nightly-crawl")
    assert anon("GET", f"/actor-runs/{run['id']}").status_code == 200
    assert anon("GET", "/acts/demo~web-scraper").status_code == 401  # Actors are not covered
    assert anon("GET", "/datasets/AAAAAAAAAAAAAAAAA").status_code == 404


def test_d12_auth_comes_first(sandbox: SandboxHandle, admin: Api) -> None:
    anon = Api(sandbox, None)
    r = anon("GET", "/datasets/demo~does-not-exist")
    assert r.status_code == 401 and error_type(r) == "token-not-provided"
    bogus = Api(sandbox, Secret("apify_api_" + "x" * 36))
    r = bogus("GET", "/datasets/demo~products")
    assert r.status_code == 401 and error_type(r) == "user-or-token-not-found"
    admin("PUT", "/_sandbox/settings", json={"generalResourceAccess": "ANYONE_WITH_ID_CAN_READ"})
    products = _id(admin, "datasets", "products")
    r = bogus("GET", f"/datasets/{products}")  # even for an anonymous-readable resource
    assert r.status_code == 401 and error_type(r) == "user-or-token-not-found"
    expiring = Api(sandbox, sandbox.token("expiring-reporter"))
    assert expiring("GET", "/datasets/demo~products").status_code == 200
    admin("POST", "/_sandbox/clock", json={"advanceSeconds": 2 * 86400})
    r = expiring("GET", "/datasets/demo~products")
    assert r.status_code == 401 and error_type(r) == "user-or-token-not-found"


def test_query_token_is_accepted(sandbox: SandboxHandle) -> None:
    r = httpx.get(sandbox.api_url + "/users/me", params={"token": sandbox.admin_token.reveal()})
    assert r.status_code == 200


# D13 / D15 ----------------------------------------------------------------------------------


def test_d13_account_and_token_api_need_unscoped(sandbox: SandboxHandle, admin: Api) -> None:
    scoped = as_token(sandbox, admin, {"account": {"actors": ["read"]}})
    for method, path in (
        ("GET", "/users/me"),
        ("GET", "/users/me/tokens"),
        ("POST", "/users/me/tokens"),
    ):
        r = scoped(method, path, json={"name": "x"} if method == "POST" else None)
        assert r.status_code == 403, path
    unscoped = as_token(sandbox, admin, None)
    r = unscoped("GET", "/users/me")
    assert r.status_code == 200 and grant(r) == "unscoped"


def test_d15_unscoped_does_everything(sandbox: SandboxHandle, admin: Api) -> None:
    api = Api(sandbox, sandbox.token("ops-unscoped"))
    for path in (
        "/acts/demo~web-scraper",
        "/actor-tasks/demo~nightly-crawl",
        "/schedules/demo~nightly",
    ):
        r = api("GET", path)
        assert r.status_code == 200 and grant(r) == "unscoped"
    assert api("DELETE", "/acts/demo~seo-audit").status_code == 204


# D14 ----------------------------------------------------------------------------------------


def test_d14_webhooks(sandbox: SandboxHandle, admin: Api) -> None:
    hook_id = admin("GET", "/webhooks").json()["data"]["items"][0]["id"]
    reader = as_token(sandbox, admin, {"account": {"actors": ["read"]}})
    assert reader("GET", f"/webhooks/{hook_id}").status_code == 403
    assert reader("GET", "/webhooks").json()["data"]["total"] == 0
    runner = as_token(sandbox, admin, {"account": {"actors": ["run"]}})
    r = runner("GET", f"/webhooks/{hook_id}")
    assert r.status_code == 200 and grant(r) == "account"
    assert runner("GET", "/webhooks").json()["data"]["total"] == 1
    body = {
        "eventTypes": ["ACTOR.RUN.SUCCEEDED"],
        "condition": {"actorTaskId": "demo~weekly-seo"},
        "requestUrl": "https://hooks.example.com/x",
    }
    assert runner("POST", "/webhooks", json=body).status_code == 403  # no read on the task
    both = as_token(
        sandbox,
        admin,
        {
            "account": {"actors": ["run"]},
            "resources": [{"type": "task", "id": "demo~weekly-seo", "permissions": ["read"]}],
        },
    )
    r = both("POST", "/webhooks", json=body)
    assert r.status_code == 201 and grant(r) == "resource"
    assert both("DELETE", f"/webhooks/{r.json()['data']['id']}").status_code == 204


# D16 / D17 ----------------------------------------------------------------------------------


def test_d16_grants_by_name_are_stored_as_ids(sandbox: SandboxHandle, admin: Api) -> None:
    body = {
        "name": "by-name",
        "scope": {
            "resources": [{"type": "dataset", "id": "demo~products", "permissions": ["read"]}]
        },
    }
    r = admin("POST", "/users/me/tokens", json=body)
    assert r.status_code == 201
    stored = r.json()["data"]["scope"]["resources"][0]["id"]
    assert stored == _id(admin, "datasets", "products")
    for bad in (
        {"resources": [{"type": "dataset", "id": "demo~nope", "permissions": ["read"]}]},
        {"resources": [{"type": "dataset", "id": "AAAAAAAAAAAAAAAAA", "permissions": ["read"]}]},
        {"resources": [{"type": "dataset", "id": "demo~products", "permissions": ["run"]}]},
        {"resources": [{"type": "build", "id": "demo~products", "permissions": ["read"]}]},
        {"account": {"actors": ["create"]}},
        {"account": {"proxies": ["read"]}},
        {"account": {"storages": ["READ"]}},
    ):
        r = admin("POST", "/users/me/tokens", json={"name": "bad", "scope": bad})
        assert r.status_code == 400 and error_type(r) == "invalid-input", bad


def test_d17_expiry_in_the_past_is_rejected(sandbox: SandboxHandle, admin: Api) -> None:
    r = admin("POST", "/users/me/tokens", json={"name": "old", "expiresAt": "2001-01-01T00:00:00Z"})
    assert r.status_code == 400 and "past" in r.json()["error"]["message"]


# D18 ----------------------------------------------------------------------------------------


def test_d18_route_order(sandbox: SandboxHandle, admin: Api) -> None:
    # A token holding the same read through a resource grant and account-level: "resource".
    api = as_token(
        sandbox,
        admin,
        {
            "account": {"storages": ["read", "create"]},
            "resources": [{"type": "dataset", "id": "demo~products", "permissions": ["read"]}],
        },
    )
    assert grant(api("GET", "/datasets/demo~products")) == "resource"
    assert grant(api("GET", "/datasets/demo~seo-reports")) == "account"
    created = api("POST", "/datasets", params={"name": "mine"}).json()["data"]["id"]
    assert grant(api("GET", f"/datasets/{created}")) == "created"
    r = api("GET", "/datasets/demo~products/items")
    assert r.status_code == 200
    r = api("POST", "/datasets/demo~products/items", json={"a": 1})
    assert r.status_code == 403
    assert r.json()["error"]["message"].endswith(
        f"write on dataset {_id(admin, 'datasets', 'products')}"
    )


def test_d14_deleting_an_actor_or_task_deletes_its_webhooks(
    sandbox: SandboxHandle, admin: Api
) -> None:
    task = admin("POST", "/actor-tasks", json={"actId": "demo~pdf-export", "name": "short-lived"})
    actor = admin("POST", "/acts", json={"name": "short-lived-actor"})
    hooks = []
    for condition in (
        {"actorTaskId": task.json()["data"]["id"]},
        {"actorId": actor.json()["data"]["id"]},
    ):
        body = {
            "eventTypes": ["ACTOR.RUN.FAILED"],
            "condition": condition,
            "requestUrl": "https://hooks.example.com/x",
        }
        r = admin("POST", "/webhooks", json=body)
        assert r.status_code == 201
        hooks.append(r.json()["data"]["id"])
    seeded = {h["id"] for h in admin("GET", "/webhooks").json()["data"]["items"]} - set(hooks)
    assert admin("DELETE", "/actor-tasks/demo~short-lived").status_code == 204
    assert admin("DELETE", "/acts/demo~short-lived-actor").status_code == 204
    for hook in hooks:
        r = admin("GET", f"/webhooks/{hook}")
        assert r.status_code == 404 and error_type(r) == "record-not-found"
    assert {h["id"] for h in admin("GET", "/webhooks").json()["data"]["items"]} == seeded


def test_d11_a_storage_own_general_access_overrides_the_account(
    sandbox: SandboxHandle, admin: Api
) -> None:
    # general-resource-access.md, "Per-resource access control": the resource's own setting
    # takes precedence; FOLLOW_USER_SETTING (the default) follows the account.
    anon = Api(sandbox, None)
    products, reports = _id(admin, "datasets", "products"), _id(admin, "datasets", "seo-reports")
    assert admin("GET", f"/datasets/{products}").json()["data"]["generalAccess"] == (
        "FOLLOW_USER_SETTING"
    )
    r = admin("PUT", f"/datasets/{products}", json={"generalAccess": "ANYONE_WITH_ID_CAN_READ"})
    assert r.status_code == 200 and r.json()["data"]["generalAccess"] == "ANYONE_WITH_ID_CAN_READ"
    # A restricted account with one shared dataset: only that one, only by ID, only reads.
    r = anon("GET", f"/datasets/{products}/items")
    assert r.status_code == 200 and grant(r) == "anonymous"
    assert anon("GET", "/datasets/demo~products").status_code == 401
    assert anon("POST", f"/datasets/{products}/items", json={"a": 1}).status_code == 401
    assert anon("GET", f"/datasets/{reports}").status_code == 401
    r = anon("GET", "/datasets/AAAAAAAAAAAAAAAAA")  # a restricted account tells nothing
    assert r.status_code == 401 and error_type(r) == "token-not-provided"
    # Shared by name as well.
    admin("PUT", f"/datasets/{products}", json={"generalAccess": "ANYONE_WITH_NAME_CAN_READ"})
    assert anon("GET", "/datasets/demo~products/items").status_code == 200
    # An open account with a dataset set to RESTRICTED: that one needs a token.
    admin("PUT", "/_sandbox/settings", json={"generalResourceAccess": "ANYONE_WITH_ID_CAN_READ"})
    admin("PUT", f"/datasets/{reports}", json={"generalAccess": "RESTRICTED"})
    assert anon("GET", f"/datasets/{reports}").status_code == 401
    seo_reader = Api(sandbox, sandbox.token("seo-readonly"))
    assert seo_reader("GET", f"/datasets/{reports}").status_code == 200  # a token still works
    invoices = _id(admin, "datasets", "invoices")
    assert anon("GET", f"/datasets/{invoices}").status_code == 200  # follows the account
    # Back to following the account.
    admin("PUT", f"/datasets/{reports}", json={"generalAccess": "FOLLOW_USER_SETTING"})
    assert anon("GET", f"/datasets/{reports}").status_code == 200
    for bad in ("PUBLIC", 1, ["RESTRICTED"]):
        r = admin("PUT", f"/datasets/{reports}", json={"generalAccess": bad})
        assert r.status_code == 400 and error_type(r) == "invalid-input"
