"""Every endpoint the sandbox serves answers bodies that match Apify's OpenAPI schemas.

The schemas come from ``tests/data/apify_response_schemas.json`` (derived from the spec by
``scripts/derive_response_schemas.py``; the tests never read the spec). Success bodies are
checked per endpoint; error bodies (401, 403, 404, 400, 429, unknown route) against the
documented error response of each endpoint. tokenguard's own endpoints (token API, test
controls) are checked against the hand-written schemas in the same file. Run logs are
text/plain (the spec gives no JSON schema for them): their content type is checked.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from schema_helpers import (
    SCHEMAS_PATH,
    assert_conforms,
    endpoint_key,
    endpoints,
    response_problems,
    schema_document,
    template_key,
    validator,
)

from tokenguard.sandbox.testing import running_sandbox
from tokenguard.secrets import Secret

pytestmark = pytest.mark.timeout(120)

_names = itertools.count()
MISSING_ID = "zzzzzzzzzzzzzzzzz"  # well-formed (17 alphanumerics) but never issued
BOGUS_TOKEN = "apify_api_" + "Q" * 36


def unique(prefix: str) -> str:
    """A resource name no other test in this module uses."""
    return f"schema-{prefix}-{next(_names)}"


@dataclass(frozen=True, slots=True)
class World:
    """Resources created once for the module, addressed by the calls below."""

    actor: str
    task: str
    run: str
    task_run: str
    dataset: str
    kvs: str
    request_queue: str
    schedule: str
    webhook: str
    token_id: str
    scoped_token: Secret  # a token with an empty scope: every non-list call is 403


def _data_id(response: httpx.Response) -> str:
    assert response.status_code in (200, 201), response.text[:300]
    value: str = response.json()["data"]["id"]
    return value


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    # One server for the module: each call creates what it changes, so tests stay independent.
    with running_sandbox(seed="demo") as handle:
        yield handle


@pytest.fixture(scope="module")
def admin(server: Any) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server.admin_token.reveal()}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def anonymous(server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def make_actor(admin: httpx.Client) -> str:
    return _data_id(admin.post("/v2/actors", json={"name": unique("actor")}))


def make_task(admin: httpx.Client, actor: str) -> str:
    body = {"actId": actor, "name": unique("task"), "input": {"hello": "world"}}
    return _data_id(admin.post("/v2/actor-tasks", json=body))


def make_storage(admin: httpx.Client, collection: str) -> str:
    return _data_id(admin.post(f"/v2/{collection}", params={"name": unique(collection)}))


def make_schedule(admin: httpx.Client, actor: str) -> str:
    body = {
        "name": unique("schedule"),
        "cronExpression": "0 3 * * *",
        "timezone": "UTC",
        "isEnabled": True,
        "isExclusive": False,
        "actions": [{"type": "RUN_ACTOR", "actorId": actor}],
    }
    return _data_id(admin.post("/v2/schedules", json=body))


def make_webhook(admin: httpx.Client, actor: str) -> str:
    body = {
        "eventTypes": ["ACTOR.RUN.SUCCEEDED"],
        "condition": {"actorId": actor},
        "requestUrl": "https://example.com/hook",
    }
    return _data_id(admin.post("/v2/webhooks", json=body))


def make_token(admin: httpx.Client, scope: Any) -> tuple[str, str]:
    response = admin.post("/v2/users/me/tokens", json={"name": unique("token"), "scope": scope})
    assert response.status_code == 201, response.status_code
    data = response.json()["data"]
    return data["id"], data["token"]


def make_run(admin: httpx.Client, actor: str) -> tuple[str, dict[str, Any]]:
    response = admin.post(f"/v2/actors/{actor}/runs", json={"input": 1})
    assert response.status_code == 201, response.text[:300]
    run: dict[str, Any] = response.json()["data"]
    return run["id"], run


@pytest.fixture(scope="module")
def world(admin: httpx.Client) -> World:
    actor = make_actor(admin)
    task = make_task(admin, actor)
    run, run_data = make_run(admin, actor)
    task_run = _data_id(admin.post(f"/v2/actor-tasks/{task}/runs"))
    dataset = make_storage(admin, "datasets")
    assert admin.post(f"/v2/datasets/{dataset}/items", json=[{"a": 1}, {"a": 2}]).is_success
    kvs = make_storage(admin, "key-value-stores")
    assert admin.put(f"/v2/key-value-stores/{kvs}/records/INPUT", json={"x": 1}).is_success
    # The run's default storages get content too, for the run-storage routes.
    items_path = f"/v2/datasets/{run_data['defaultDatasetId']}/items"
    assert admin.post(items_path, json=[{"b": 1}]).is_success
    kvs_path = f"/v2/key-value-stores/{run_data['defaultKeyValueStoreId']}/records/OUTPUT"
    assert admin.put(kvs_path, json={"y": 2}).is_success
    token_id, _ = make_token(admin, None)
    _, scoped = make_token(admin, {"account": {}, "resources": []})
    return World(
        actor=actor,
        task=task,
        run=run,
        task_run=task_run,
        dataset=dataset,
        kvs=kvs,
        request_queue=make_storage(admin, "request-queues"),
        schedule=make_schedule(admin, actor),
        webhook=make_webhook(admin, actor),
        token_id=token_id,
        scoped_token=Secret(scoped),
    )


# -- one request per endpoint -------------------------------------------------------------------

# A Request says what to send; the path may hold {actorId}-style placeholders that are filled
# from the World (or with a missing ID for the 404 checks).


@dataclass(frozen=True, slots=True)
class Request:
    """One request to an endpoint: method, path template with World fields, body."""

    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    params: dict[str, str] | None = None
    prepare: Callable[[httpx.Client, World], dict[str, str]] | None = None

    def url(self, world: World, extra: dict[str, str], missing: bool = False) -> str:
        values = {
            "actorId": world.actor,
            "actorTaskId": world.task,
            "runId": world.run,
            "datasetId": world.dataset,
            "storeId": world.kvs,
            "queueId": world.request_queue,
            "scheduleId": world.schedule,
            "webhookId": world.webhook,
            "tokenId": world.token_id,
            "recordKey": "INPUT",
            **extra,
        }
        if missing:
            values = dict.fromkeys(values, MISSING_ID)
        return self.path.format(**values)


def _fresh(kind: str) -> Callable[[httpx.Client, World], dict[str, str]]:
    """Create a throwaway resource for calls that change or delete it."""

    def prepare(admin: httpx.Client, world: World) -> dict[str, str]:
        if kind == "actor":
            return {"actorId": make_actor(admin)}
        if kind == "task":
            return {"actorTaskId": make_task(admin, world.actor)}
        if kind == "schedule":
            return {"scheduleId": make_schedule(admin, world.actor)}
        if kind == "webhook":
            return {"webhookId": make_webhook(admin, world.actor)}
        if kind == "token":
            return {"tokenId": make_token(admin, None)[0]}
        if kind == "run":
            return {"runId": make_run(admin, world.actor)[0]}
        if kind == "record":
            key = unique("rec").replace("-", "_")
            path = f"/v2/key-value-stores/{world.kvs}/records/{key}"
            assert admin.put(path, json={"z": 1}).is_success
            return {"recordKey": key}
        if kind == "run-record":
            run_id, run = make_run(admin, world.actor)
            key = unique("rec").replace("-", "_")
            path = f"/v2/key-value-stores/{run['defaultKeyValueStoreId']}/records/{key}"
            assert admin.put(path, json={"z": 1}).is_success
            return {"runId": run_id, "recordKey": key}
        if kind in ("last-run-actor", "last-run-task"):
            return _fresh_last_run(admin, world, kind == "last-run-task")
        collection = {"dataset": "datasets", "kvs": "key-value-stores", "rq": "request-queues"}
        key = {"dataset": "datasetId", "kvs": "storeId", "rq": "queueId"}[kind]
        return {key: make_storage(admin, collection[kind])}

    return prepare


def _fresh_last_run(admin: httpx.Client, world: World, via_task: bool) -> dict[str, str]:
    """A fresh Actor (or task) whose one run, its last, has an item and a record.

    Other calls start runs of the World's Actor, so its last run moves while the module
    runs; a fresh owner keeps the last run (and what its storages hold) fixed.
    """
    if via_task:
        task = make_task(admin, world.actor)
        run = admin.post(f"/v2/actor-tasks/{task}/runs")
        assert run.status_code == 201, run.text[:300]
        data: dict[str, Any] = run.json()["data"]
        owner = {"actorTaskId": task}
    else:
        actor = make_actor(admin)
        _, data = make_run(admin, actor)
        owner = {"actorId": actor}
    assert admin.post(f"/v2/datasets/{data['defaultDatasetId']}/items", json=[{"c": 1}]).is_success
    key = unique("rec").replace("-", "_")
    record = f"/v2/key-value-stores/{data['defaultKeyValueStoreId']}/records/{key}"
    assert admin.put(record, json={"z": 1}).is_success
    return {**owner, "recordKey": key}


def _last_run_calls(base: str, kind: str) -> dict[str, Request]:
    """The calls for the last-run storage chain under ``base`` (an Actor's or a task's)."""
    fresh = _fresh(kind)
    dataset, kvs = base + "/dataset", base + "/key-value-store"
    record = kvs + "/records/{recordKey}"
    return {
        f"GET {dataset}": Request("GET", dataset, prepare=fresh),
        f"GET {dataset}/items": Request("GET", dataset + "/items", prepare=fresh),
        f"POST {dataset}/items": Request(
            "POST", dataset + "/items", json=[{"pushed": 1}], prepare=fresh
        ),
        f"GET {kvs}": Request("GET", kvs, prepare=fresh),
        f"GET {kvs}/keys": Request("GET", kvs + "/keys", prepare=fresh),
        f"GET {record}": Request("GET", record, prepare=fresh),
        f"PUT {record}": Request("PUT", record, content=RECORD_JSON, prepare=fresh),
        f"POST {record}": Request("POST", record, content=RECORD_JSON, prepare=fresh),
        f"DELETE {record}": Request("DELETE", record, prepare=fresh),
        f"GET {base}/request-queue": Request("GET", base + "/request-queue", prepare=fresh),
    }


def _new_name(prefix: str) -> Callable[[httpx.Client, World], dict[str, str]]:
    def prepare(admin: httpx.Client, world: World) -> dict[str, str]:
        return {"name": unique(prefix)}

    return prepare


RECORD_JSON = b'{"stored": true}'
_RUN_RECORD = "/v2/actor-runs/{runId}/key-value-store/records/{recordKey}"

# Keyed by the spec's endpoint key. Creates carry names generated per call (see
# _with_fresh_names) so repeated runs never collide.
CALLS: dict[str, Request] = {
    "GET /v2/users/me": Request("GET", "/v2/users/me"),
    # Actors
    "GET /v2/actors": Request("GET", "/v2/actors", params={"my": "1"}),
    "POST /v2/actors": Request("POST", "/v2/actors", json={"name": "{name}"}),
    "GET /v2/actors/{actorId}": Request("GET", "/v2/actors/{actorId}"),
    "PUT /v2/actors/{actorId}": Request(
        "PUT", "/v2/actors/{actorId}", json={"title": "Renamed"}, prepare=_fresh("actor")
    ),
    "DELETE /v2/actors/{actorId}": Request(
        "DELETE", "/v2/actors/{actorId}", prepare=_fresh("actor")
    ),
    "GET /v2/actors/{actorId}/runs": Request("GET", "/v2/actors/{actorId}/runs"),
    "POST /v2/actors/{actorId}/runs": Request(
        "POST", "/v2/actors/{actorId}/runs", json={"start": "url"}
    ),
    "GET /v2/actors/{actorId}/runs/last": Request("GET", "/v2/actors/{actorId}/runs/last"),
    **_last_run_calls("/v2/actors/{actorId}/runs/last", "last-run-actor"),
    # Actor tasks
    "GET /v2/actor-tasks": Request("GET", "/v2/actor-tasks"),
    "POST /v2/actor-tasks": Request(
        "POST", "/v2/actor-tasks", json={"actId": "{actorId}", "name": "{name}"}
    ),
    "GET /v2/actor-tasks/{actorTaskId}": Request("GET", "/v2/actor-tasks/{actorTaskId}"),
    "PUT /v2/actor-tasks/{actorTaskId}": Request(
        "PUT",
        "/v2/actor-tasks/{actorTaskId}",
        json={"title": "Updated", "input": {"k": "v"}},
        prepare=_fresh("task"),
    ),
    "DELETE /v2/actor-tasks/{actorTaskId}": Request(
        "DELETE", "/v2/actor-tasks/{actorTaskId}", prepare=_fresh("task")
    ),
    "GET /v2/actor-tasks/{actorTaskId}/runs": Request("GET", "/v2/actor-tasks/{actorTaskId}/runs"),
    "POST /v2/actor-tasks/{actorTaskId}/runs": Request(
        "POST", "/v2/actor-tasks/{actorTaskId}/runs"
    ),
    "GET /v2/actor-tasks/{actorTaskId}/runs/last": Request(
        "GET", "/v2/actor-tasks/{actorTaskId}/runs/last"
    ),
    **_last_run_calls("/v2/actor-tasks/{actorTaskId}/runs/last", "last-run-task"),
    # Actor runs
    "GET /v2/actor-runs": Request("GET", "/v2/actor-runs"),
    "GET /v2/actor-runs/{runId}": Request("GET", "/v2/actor-runs/{runId}"),
    "POST /v2/actor-runs/{runId}/abort": Request(
        "POST", "/v2/actor-runs/{runId}/abort", prepare=_fresh("run")
    ),
    # Logs are text/plain: checked by content type (the spec gives no JSON schema).
    "GET /v2/actor-runs/{runId}/log": Request("GET", "/v2/actor-runs/{runId}/log"),
    "GET /v2/logs/{buildOrRunId}": Request("GET", "/v2/logs/{runId}"),
    "GET /v2/actor-runs/{runId}/dataset": Request("GET", "/v2/actor-runs/{runId}/dataset"),
    "GET /v2/actor-runs/{runId}/dataset/items": Request(
        "GET", "/v2/actor-runs/{runId}/dataset/items"
    ),
    "POST /v2/actor-runs/{runId}/dataset/items": Request(
        "POST", "/v2/actor-runs/{runId}/dataset/items", json=[{"pushed": 1}]
    ),
    "GET /v2/actor-runs/{runId}/key-value-store": Request(
        "GET", "/v2/actor-runs/{runId}/key-value-store"
    ),
    "GET /v2/actor-runs/{runId}/key-value-store/keys": Request(
        "GET", "/v2/actor-runs/{runId}/key-value-store/keys"
    ),
    "GET /v2/actor-runs/{runId}/key-value-store/records/{recordKey}": Request(
        "GET", _RUN_RECORD, prepare=_fresh("run-record")
    ),
    "PUT /v2/actor-runs/{runId}/key-value-store/records/{recordKey}": Request(
        "PUT", _RUN_RECORD, json={"put": True}, prepare=_fresh("run-record")
    ),
    "POST /v2/actor-runs/{runId}/key-value-store/records/{recordKey}": Request(
        "POST", _RUN_RECORD, json={"posted": True}, prepare=_fresh("run-record")
    ),
    "DELETE /v2/actor-runs/{runId}/key-value-store/records/{recordKey}": Request(
        "DELETE", _RUN_RECORD, prepare=_fresh("run-record")
    ),
    "GET /v2/actor-runs/{runId}/request-queue": Request(
        "GET", "/v2/actor-runs/{runId}/request-queue"
    ),
    # Datasets
    "GET /v2/datasets": Request("GET", "/v2/datasets"),
    "POST /v2/datasets": Request("POST", "/v2/datasets", params={"name": "{name}"}),
    "GET /v2/datasets/{datasetId}": Request("GET", "/v2/datasets/{datasetId}"),
    "PUT /v2/datasets/{datasetId}": Request(
        "PUT", "/v2/datasets/{datasetId}", json={"name": "{name}"}, prepare=_fresh("dataset")
    ),
    "DELETE /v2/datasets/{datasetId}": Request(
        "DELETE", "/v2/datasets/{datasetId}", prepare=_fresh("dataset")
    ),
    "GET /v2/datasets/{datasetId}/items": Request(
        "GET", "/v2/datasets/{datasetId}/items", params={"offset": "0", "limit": "10"}
    ),
    "POST /v2/datasets/{datasetId}/items": Request(
        "POST", "/v2/datasets/{datasetId}/items", json=[{"pushed": 1}, {"pushed": 2}]
    ),
    # Key-value stores
    "GET /v2/key-value-stores": Request("GET", "/v2/key-value-stores"),
    "POST /v2/key-value-stores": Request("POST", "/v2/key-value-stores", params={"name": "{name}"}),
    "GET /v2/key-value-stores/{storeId}": Request("GET", "/v2/key-value-stores/{storeId}"),
    "PUT /v2/key-value-stores/{storeId}": Request(
        "PUT", "/v2/key-value-stores/{storeId}", json={"name": "{name}"}, prepare=_fresh("kvs")
    ),
    "DELETE /v2/key-value-stores/{storeId}": Request(
        "DELETE", "/v2/key-value-stores/{storeId}", prepare=_fresh("kvs")
    ),
    "GET /v2/key-value-stores/{storeId}/keys": Request(
        "GET", "/v2/key-value-stores/{storeId}/keys"
    ),
    "GET /v2/key-value-stores/{storeId}/records/{recordKey}": Request(
        "GET", "/v2/key-value-stores/{storeId}/records/{recordKey}"
    ),
    "PUT /v2/key-value-stores/{storeId}/records/{recordKey}": Request(
        "PUT",
        "/v2/key-value-stores/{storeId}/records/{recordKey}",
        content=RECORD_JSON,
        prepare=_fresh("record"),
    ),
    "POST /v2/key-value-stores/{storeId}/records/{recordKey}": Request(
        "POST",
        "/v2/key-value-stores/{storeId}/records/{recordKey}",
        content=RECORD_JSON,
        prepare=_fresh("record"),
    ),
    "DELETE /v2/key-value-stores/{storeId}/records/{recordKey}": Request(
        "DELETE", "/v2/key-value-stores/{storeId}/records/{recordKey}", prepare=_fresh("record")
    ),
    # Request queues
    "GET /v2/request-queues": Request("GET", "/v2/request-queues"),
    "POST /v2/request-queues": Request("POST", "/v2/request-queues", params={"name": "{name}"}),
    "GET /v2/request-queues/{queueId}": Request("GET", "/v2/request-queues/{queueId}"),
    "PUT /v2/request-queues/{queueId}": Request(
        "PUT", "/v2/request-queues/{queueId}", json={"name": "{name}"}, prepare=_fresh("rq")
    ),
    "DELETE /v2/request-queues/{queueId}": Request(
        "DELETE", "/v2/request-queues/{queueId}", prepare=_fresh("rq")
    ),
    # Schedules
    "GET /v2/schedules": Request("GET", "/v2/schedules"),
    "POST /v2/schedules": Request(
        "POST",
        "/v2/schedules",
        json={
            "name": "{name}",
            "cronExpression": "@hourly",
            "isEnabled": False,
            "isExclusive": True,
            "actions": [{"type": "RUN_ACTOR_TASK", "actorTaskId": "{actorTaskId}"}],
        },
    ),
    "GET /v2/schedules/{scheduleId}": Request("GET", "/v2/schedules/{scheduleId}"),
    "PUT /v2/schedules/{scheduleId}": Request(
        "PUT",
        "/v2/schedules/{scheduleId}",
        json={"cronExpression": "@weekly", "isEnabled": False},
        prepare=_fresh("schedule"),
    ),
    "DELETE /v2/schedules/{scheduleId}": Request(
        "DELETE", "/v2/schedules/{scheduleId}", prepare=_fresh("schedule")
    ),
    # Webhooks
    "GET /v2/webhooks": Request("GET", "/v2/webhooks"),
    "POST /v2/webhooks": Request(
        "POST",
        "/v2/webhooks",
        json={
            "eventTypes": ["ACTOR.RUN.FAILED", "ACTOR.RUN.SUCCEEDED"],
            "condition": {"actorTaskId": "{actorTaskId}"},
            "requestUrl": "https://example.com/webhook",
        },
    ),
    "GET /v2/webhooks/{webhookId}": Request("GET", "/v2/webhooks/{webhookId}"),
    "PUT /v2/webhooks/{webhookId}": Request(
        "PUT",
        "/v2/webhooks/{webhookId}",
        json={"requestUrl": "https://example.com/changed", "doNotRetry": True},
        prepare=_fresh("webhook"),
    ),
    "DELETE /v2/webhooks/{webhookId}": Request(
        "DELETE", "/v2/webhooks/{webhookId}", prepare=_fresh("webhook")
    ),
    # tokenguard's own: the token API (DESIGN §3) and the sandbox test controls
    "POST /v2/users/me/tokens": Request(
        "POST",
        "/v2/users/me/tokens",
        json={
            "name": "{name}",
            "description": "schema test",
            "expiresAt": None,
            "scope": {
                "account": {"storages": ["read"]},
                "resources": [{"type": "actor", "id": "{actorId}", "permissions": ["run"]}],
                "actorRunMode": "restricted",
                "defaultRunStorageAccess": True,
            },
        },
    ),
    "GET /v2/users/me/tokens": Request("GET", "/v2/users/me/tokens"),
    "GET /v2/users/me/tokens/{tokenId}": Request("GET", "/v2/users/me/tokens/{tokenId}"),
    "DELETE /v2/users/me/tokens/{tokenId}": Request(
        "DELETE", "/v2/users/me/tokens/{tokenId}", prepare=_fresh("token")
    ),
    "GET /v2/_sandbox/clock": Request("GET", "/v2/_sandbox/clock"),
    "POST /v2/_sandbox/clock": Request("POST", "/v2/_sandbox/clock", json={"advanceSeconds": 1}),
    "GET /v2/_sandbox/faults": Request("GET", "/v2/_sandbox/faults"),
    "DELETE /v2/_sandbox/faults": Request("DELETE", "/v2/_sandbox/faults"),
    "GET /v2/_sandbox/settings": Request("GET", "/v2/_sandbox/settings"),
    "POST /v2/_sandbox/settings": Request(
        "POST", "/v2/_sandbox/settings", json={"generalResourceAccess": "RESTRICTED"}
    ),
    "DELETE /v2/_sandbox/stats": Request("DELETE", "/v2/_sandbox/stats"),
    "POST /v2/_sandbox/faults": Request(
        "POST", "/v2/_sandbox/faults", json={"kind": "latency", "ms": 1, "count": 1}
    ),
    "PUT /v2/_sandbox/settings": Request(
        "PUT", "/v2/_sandbox/settings", json={"generalResourceAccess": "RESTRICTED"}
    ),
    "GET /v2/_sandbox/stats": Request("GET", "/v2/_sandbox/stats"),
}


def _fill(value: Any, values: dict[str, str]) -> Any:
    """Substitute ``{placeholders}`` inside a JSON body or query."""
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return values.get(value[1:-1], value)
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


def send(
    endpoint: str,
    client: httpx.Client,
    admin: httpx.Client,
    world: World,
    *,
    missing: bool = False,
    headers: dict[str, str] | None = None,
    path_prefix: tuple[str, str] | None = None,
) -> httpx.Response:
    """Send the request for ``endpoint`` (setup calls, if any, go through ``admin``)."""
    call = CALLS[endpoint]
    values = {
        "name": unique("n"),
        "actorId": world.actor,
        "actorTaskId": world.task,
        **(call.prepare(admin, world) if call.prepare else {}),
    }
    url = call.url(world, values, missing)
    if path_prefix:
        url = url.replace(path_prefix[0], path_prefix[1], 1)
    return client.request(
        call.method,
        url,
        json=_fill(call.json, values),
        content=call.content,
        params=_fill(call.params, values),
        headers={
            **(headers or {}),
            **({"Content-Type": "application/json"} if call.content is not None else {}),
        },
    )


ALL = sorted(endpoints())
APIFY = sorted(k for k, v in endpoints().items() if v["origin"] == "apify-openapi")
WITH_ID = sorted(k for k in ALL if "{" in k)
LISTS = {
    "GET /v2/actors",
    "GET /v2/actor-tasks",
    "GET /v2/actor-runs",
    "GET /v2/datasets",
    "GET /v2/key-value-stores",
    "GET /v2/request-queues",
    "GET /v2/schedules",
    "GET /v2/webhooks",
    "GET /v2/users/me/tokens",
    "GET /v2/actors/{actorId}/runs",
    "GET /v2/actor-tasks/{actorTaskId}/runs",
}


def _error_type(response: httpx.Response) -> str | None:
    try:
        value = response.json()["error"]["type"]
    except (ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


# -- the data file itself -----------------------------------------------------------------------


def test_every_schema_endpoint_has_a_call() -> None:
    assert sorted(CALLS) == ALL


def test_tokenguard_endpoints_are_marked_as_ours() -> None:
    ours = {k for k, v in endpoints().items() if v["origin"] == "tokenguard"}
    assert ours == {k for k in ALL if "/users/me/tokens" in k or "/_sandbox/" in k}


def test_schemas_are_valid_draft_2020_12() -> None:
    from jsonschema import Draft202012Validator
    from referencing.exceptions import Unresolvable

    document = schema_document()
    Draft202012Validator.check_schema({"$defs": document["$defs"]})
    for key, entry in endpoints().items():
        for status, response in entry["responses"].items():
            assert status.isdigit(), key
            if "schema" in response:
                Draft202012Validator.check_schema(response["schema"])
    # Every $ref points at an existing definition.
    refs = set(re.findall(r'"\$ref": "#/\$defs/([^"]+)"', json.dumps(document)))
    missing = refs - set(document["$defs"])
    assert not missing, missing
    with pytest.raises(Unresolvable):
        validator({"$ref": "#/$defs/NoSuchDefinition"}).validate({})


def _load_script() -> Any:
    path = Path(__file__).parent.parent / "scripts" / "derive_response_schemas.py"
    spec = importlib.util.spec_from_file_location("derive_response_schemas", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_data_file_is_regenerated_from_the_script() -> None:
    # The spec is not here (no ../shared in a clone), but the script's own parts are: its
    # endpoint list and the hand-written tokenguard schemas must match the checked-in file.
    pytest.importorskip("yaml")
    script = _load_script()
    document = schema_document()
    expected = set(script.SERVED_ENDPOINTS) | set(script.TOKENGUARD_ENDPOINTS)
    assert set(document["endpoints"]) == expected
    for key, entry in script.TOKENGUARD_ENDPOINTS.items():
        assert document["endpoints"][key] == entry, key
    for name, schema in script.TOKENGUARD_DEFS.items():
        assert document["$defs"][name] == schema, name
    assert script.render(document) == SCHEMAS_PATH.read_text(encoding="utf-8")


def test_validation_catches_a_missing_required_field() -> None:
    # Guards against a data file so loose that nothing could fail.
    response = httpx.Response(
        200, json={"data": {"id": "x", "name": "y"}}, request=httpx.Request("GET", "http://x")
    )
    problems = response_problems("GET /v2/actors/{actorId}", response)
    assert any("missing required field 'username'" in p for p in problems), problems


# -- route coverage -----------------------------------------------------------------------------


def _served_routes() -> list[tuple[str, str]]:
    from tokenguard.sandbox import routes

    return sorted({(r.method, r.pattern) for r in routes.ROUTES})


def test_every_served_route_has_a_schema() -> None:
    missing = [
        f"{method} {pattern}"
        for method, pattern in _served_routes()
        if template_key(method, pattern) not in endpoints()
    ]
    assert not missing, f"routes without a response schema (add them to the script): {missing}"


CONTROL_NAMES = ("clock", "faults", "settings", "stats")


def _served_controls(admin: httpx.Client) -> set[str]:
    """The test controls answer outside the route table: ask the server which it serves."""
    served = set()
    for name, method in itertools.product(CONTROL_NAMES, ("GET", "POST", "PUT", "DELETE")):
        response = admin.request(method, f"/v2/_sandbox/{name}", json={})
        if _error_type(response) not in ("page-not-found", "method-not-allowed"):
            served.add(f"{method} /v2/_sandbox/{name}")
    return served


def test_every_served_control_has_a_schema(admin: httpx.Client) -> None:
    served = _served_controls(admin)
    assert served, "no test control answered"
    assert not served - set(ALL), sorted(served - set(ALL))


def test_every_schema_endpoint_is_served(admin: httpx.Client) -> None:
    served = {template_key(m, p) for m, p in _served_routes()} | _served_controls(admin)
    assert not set(ALL) - served, sorted(set(ALL) - served)


# -- success bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ALL)
def test_success_body_matches_schema(endpoint: str, admin: httpx.Client, world: World) -> None:
    response = send(endpoint, admin, admin, world)
    documented = [s for s in endpoints()[endpoint]["responses"] if s.startswith("2")]
    assert str(response.status_code) in documented, (
        f"{endpoint}: status {response.status_code} ({_error_type(response)}), "
        f"spec documents {documented}"
    )
    assert_conforms(endpoint, response)


ACTS_ALIAS = sorted(k for k in APIFY if k.split(" ")[1].startswith("/v2/actors"))


@pytest.mark.parametrize("endpoint", ACTS_ALIAS)
def test_acts_alias_matches_actors_schema(endpoint: str, admin: httpx.Client, world: World) -> None:
    response = send(endpoint, admin, admin, world, path_prefix=("/v2/actors", "/v2/acts"))
    assert endpoint_key(response.request.method, response.request.url.path) == endpoint
    assert response.is_success, (response.status_code, _error_type(response))
    assert_conforms(endpoint, response)


# Every resource already in the account (the demo seed plus what the module created), read
# through its list and its get endpoint: seeded shapes (task runs, schedules with task
# actions, webhooks on tasks, ...) are validated too, not only the ones the calls create.
SEEDED = [
    ("GET /v2/actors", "GET /v2/actors/{actorId}", "/v2/actors/{}"),
    ("GET /v2/actor-tasks", "GET /v2/actor-tasks/{actorTaskId}", "/v2/actor-tasks/{}"),
    # An Actor or task that never ran answers the last run with a documented 404.
    ("GET /v2/actors", "GET /v2/actors/{actorId}/runs/last", "/v2/actors/{}/runs/last"),
    (
        "GET /v2/actor-tasks",
        "GET /v2/actor-tasks/{actorTaskId}/runs/last",
        "/v2/actor-tasks/{}/runs/last",
    ),
    (
        "GET /v2/actor-tasks",
        "GET /v2/actor-tasks/{actorTaskId}/runs/last/dataset/items",
        "/v2/actor-tasks/{}/runs/last/dataset/items",
    ),
    ("GET /v2/actor-runs", "GET /v2/actor-runs/{runId}", "/v2/actor-runs/{}"),
    ("GET /v2/datasets", "GET /v2/datasets/{datasetId}", "/v2/datasets/{}"),
    ("GET /v2/datasets", "GET /v2/datasets/{datasetId}/items", "/v2/datasets/{}/items"),
    ("GET /v2/key-value-stores", "GET /v2/key-value-stores/{storeId}", "/v2/key-value-stores/{}"),
    (
        "GET /v2/key-value-stores",
        "GET /v2/key-value-stores/{storeId}/keys",
        "/v2/key-value-stores/{}/keys",
    ),
    ("GET /v2/request-queues", "GET /v2/request-queues/{queueId}", "/v2/request-queues/{}"),
    ("GET /v2/schedules", "GET /v2/schedules/{scheduleId}", "/v2/schedules/{}"),
    ("GET /v2/webhooks", "GET /v2/webhooks/{webhookId}", "/v2/webhooks/{}"),
    ("GET /v2/users/me/tokens", "GET /v2/users/me/tokens/{tokenId}", "/v2/users/me/tokens/{}"),
]


@pytest.mark.parametrize(
    ("list_endpoint", "get_endpoint", "path"), SEEDED, ids=[get for _, get, _ in SEEDED]
)
def test_every_existing_resource_matches_schema(
    list_endpoint: str, get_endpoint: str, path: str, admin: httpx.Client, world: World
) -> None:
    listed = admin.get(list_endpoint.split(" ")[1], params={"limit": "1000"})
    assert listed.status_code == 200, listed.status_code
    items = listed.json()["data"]["items"]
    assert items, f"{list_endpoint} listed nothing"
    problems = [f"(list) {p}" for p in response_problems(list_endpoint, listed)]
    for item in items:
        response = admin.get(path.format(item["id"]))
        problems += [f"{item['id']}: {p}" for p in response_problems(get_endpoint, response)]
    if problems:
        raise AssertionError(f"{get_endpoint}:\n  " + "\n  ".join(problems))


def test_non_json_record_is_served_with_its_content_type(admin: httpx.Client, world: World) -> None:
    path = f"/v2/key-value-stores/{world.kvs}/records/{unique('text').replace('-', '_')}"
    put = admin.put(path, content=b"plain text", headers={"Content-Type": "text/plain"})
    assert put.status_code == 201, put.status_code
    response = admin.get(path)
    assert response.content == b"plain text"
    assert response.headers["content-type"].startswith("text/plain")
    assert_conforms("GET /v2/key-value-stores/{storeId}/records/{recordKey}", response)


ITEMS_GETS = sorted(k for k in APIFY if k.startswith("GET ") and k.endswith("/items"))


def test_every_items_get_requires_pagination_headers() -> None:
    assert len(ITEMS_GETS) == 4, ITEMS_GETS  # direct, a run's, an Actor's and a task's last run
    for endpoint in ITEMS_GETS:
        required = endpoints()[endpoint]["responses"]["200"].get("requiredHeaders", [])
        assert "X-Apify-Pagination-Total" in required, endpoint


@pytest.mark.parametrize("endpoint", ITEMS_GETS)
def test_dataset_items_pagination_headers(endpoint: str, admin: httpx.Client, world: World) -> None:
    call = CALLS[endpoint]
    extra = call.prepare(admin, world) if call.prepare else {}
    path = call.url(world, extra)
    if "{datasetId}" in endpoint:
        dataset = world.dataset
    else:
        # The run's (or last run's) dataset, through the sibling dataset endpoint.
        dataset = _data_id(admin.get(path.removesuffix("/items")))
    total = len(admin.get(f"/v2/datasets/{dataset}/items").json())
    assert total > 0, f"{endpoint}: the dataset behind it is empty, paging is untested"
    response = admin.get(path, params={"offset": "1", "limit": "1"})
    assert_conforms(endpoint, response)
    assert response.headers["X-Apify-Pagination-Total"] == str(total)
    assert response.headers["X-Apify-Pagination-Offset"] == "1"
    assert response.headers["X-Apify-Pagination-Limit"] == "1"
    assert response.headers["X-Apify-Pagination-Count"] == str(len(response.json()))
    assert len(response.json()) == min(1, max(total - 1, 0))


LOGS = ["GET /v2/actor-runs/{runId}/log", "GET /v2/logs/{buildOrRunId}"]


@pytest.mark.parametrize("endpoint", LOGS)
def test_log_is_plain_text(endpoint: str, admin: httpx.Client, world: World) -> None:
    # The spec documents the log's 200 as text/plain with no JSON schema: the content type
    # is what can be checked, and a JSON answer must be flagged.
    assert endpoints()[endpoint]["responses"]["200"] == {"contentTypes": ["text/plain"]}
    response = admin.get(CALLS[endpoint].url(world, {}))
    assert response.status_code == 200, (response.status_code, _error_type(response))
    assert response.headers["content-type"].split(";")[0].strip() == "text/plain"
    assert_conforms(endpoint, response)
    as_json = httpx.Response(200, json={"data": response.text}, request=response.request)
    assert response_problems(endpoint, as_json) == [
        "content type 'application/json', spec documents ['text/plain']"
    ]


def test_log_of_every_existing_run_is_plain_text(admin: httpx.Client, world: World) -> None:
    listed = admin.get("/v2/actor-runs", params={"limit": "1000"})
    assert listed.status_code == 200, listed.status_code
    runs = [item["id"] for item in listed.json()["data"]["items"]]
    assert world.run in runs
    problems = []
    for run, (endpoint, path) in itertools.product(
        runs, zip(LOGS, ("/v2/actor-runs/{}/log", "/v2/logs/{}"), strict=True)
    ):
        response = admin.get(path.format(run))
        problems += [f"{run} {endpoint}: {p}" for p in response_problems(endpoint, response)]
        if response.status_code != 200:
            problems.append(f"{run} {endpoint}: status {response.status_code}")
    assert not problems, "\n  ".join(problems)


# -- error bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ALL)
def test_401_without_token(
    endpoint: str, anonymous: httpx.Client, admin: httpx.Client, world: World
) -> None:
    response = send(endpoint, anonymous, admin, world)
    assert response.status_code == 401, (response.status_code, _error_type(response))
    assert _error_type(response) == "token-not-provided"
    assert_conforms(endpoint, response)


@pytest.mark.parametrize("endpoint", ALL)
def test_401_unknown_token(
    endpoint: str, anonymous: httpx.Client, admin: httpx.Client, world: World
) -> None:
    headers = {"Authorization": f"Bearer {BOGUS_TOKEN}"}
    response = send(endpoint, anonymous, admin, world, headers=headers)
    assert response.status_code == 401, (response.status_code, _error_type(response))
    assert _error_type(response) == "user-or-token-not-found"
    assert_conforms(endpoint, response)


FORBIDDEN = sorted(set(ALL) - LISTS)


@pytest.mark.parametrize("endpoint", FORBIDDEN)
def test_403_for_a_token_without_permissions(
    endpoint: str, anonymous: httpx.Client, admin: httpx.Client, world: World
) -> None:
    headers = {"Authorization": f"Bearer {world.scoped_token.reveal()}"}
    response = send(endpoint, anonymous, admin, world, headers=headers)
    assert response.status_code == 403, (response.status_code, _error_type(response))
    assert _error_type(response) == "insufficient-permissions"
    assert_conforms(endpoint, response)


NOT_FOUND = sorted(k for k in WITH_ID if "/_sandbox/" not in k)


@pytest.mark.parametrize("endpoint", NOT_FOUND)
def test_404_for_a_missing_resource(endpoint: str, admin: httpx.Client, world: World) -> None:
    call = CALLS[endpoint]
    response = admin.request(
        call.method,
        call.url(world, {}, missing=True),
        json=_fill(call.json, {"name": unique("n"), "actorId": world.actor}),
    )
    assert response.status_code == 404, (response.status_code, _error_type(response))
    assert _error_type(response) == "record-not-found"
    assert_conforms(endpoint, response)


WITH_BODY = sorted(k for k in ALL if CALLS[k].json is not None and CALLS[k].method != "GET")


@pytest.mark.parametrize("endpoint", WITH_BODY)
def test_400_for_malformed_json(endpoint: str, admin: httpx.Client, world: World) -> None:
    call = CALLS[endpoint]
    extra = call.prepare(admin, world) if call.prepare else {}
    response = admin.request(
        call.method,
        call.url(world, extra),
        content=b'{"broken": ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, (response.status_code, _error_type(response))
    assert _error_type(response) == "invalid-input"
    assert_conforms(endpoint, response)


@pytest.mark.parametrize("endpoint", APIFY)
def test_429_body(endpoint: str, admin: httpx.Client, world: World) -> None:
    call = CALLS[endpoint]
    extra = call.prepare(admin, world) if call.prepare else {}
    fault = admin.post("/v2/_sandbox/faults", json={"status": 429, "count": 1})
    assert fault.is_success, fault.status_code
    response = admin.request(
        call.method,
        call.url(world, extra),
        json=_fill(call.json, {"name": unique("n"), "actorId": world.actor, **extra}),
    )
    assert response.status_code == 429, (response.status_code, _error_type(response))
    assert _error_type(response) == "rate-limit-exceeded"
    assert_conforms(endpoint, response)


def test_429_from_the_real_rate_limit_carries_the_limit_header() -> None:
    with running_sandbox(seed="empty", rate_limit=1) as handle:
        headers = {"Authorization": f"Bearer {handle.admin_token.reveal()}"}
        with httpx.Client(base_url=handle.url, headers=headers, timeout=10) as client:
            # 1 request/s: of 20 back-to-back requests at most a couple fit in the budget.
            responses = [client.get("/v2/datasets") for _ in range(20)]
    limited = [r for r in responses if r.status_code == 429]
    assert limited, [r.status_code for r in responses]
    assert_conforms("GET /v2/datasets", limited[0])
    assert _error_type(limited[0]) == "rate-limit-exceeded"
    assert "X-RateLimit-Limit" in limited[0].headers


def test_unknown_route_answers_page_not_found(admin: httpx.Client) -> None:
    response = admin.get("/v2/no-such-thing/here")
    assert response.status_code == 404
    assert _error_type(response) == "page-not-found"
    # Any endpoint will do: an unknown route answers the common error body.
    problems = response_problems("GET /v2/actors", response)
    assert not problems, problems
    assert json.loads(response.text)["error"]["message"]
