"""JSON shapes of sandbox resources, following the Apify OpenAPI schemas.

apify-client 3.x validates responses with pydantic models generated from the same spec, so
every field listed in a schema's ``required`` is always present here with the right type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from tokenguard.sandbox.state import (
    Dataset,
    KeyValueStore,
    Kind,
    Resource,
    Run,
    SandboxState,
    TokenRow,
    iso,
)

CONSOLE = "https://console.apify.com"
_STORAGE_PATH = {
    Kind.DATASET: "datasets",
    Kind.KEY_VALUE_STORE: "key-value-stores",
    Kind.REQUEST_QUEUE: "request-queues",
}


def list_envelope(items: Sequence[Any], *, total: int, offset: int, limit: int, desc: bool) -> Any:
    """The list envelope ``{"data": {total, offset, limit, count, desc, items}}``."""
    return {
        "data": {
            "total": total,
            "offset": offset,
            "limit": limit,
            "count": len(items),
            "desc": desc,
            "items": list(items),
        }
    }


def user(state: SandboxState) -> dict[str, Any]:
    """``GET /v2/users/me`` (UserPrivateInfo)."""
    feature = {
        "isEnabled": True,
        "disabledReason": None,
        "disabledReasonType": None,
        "isTrial": False,
        "trialExpirationAt": None,
    }
    features = [
        "ACTORS",
        "STORAGE",
        "SCHEDULER",
        "PROXY",
        "PROXY_EXTERNAL_ACCESS",
        "PROXY_RESIDENTIAL",
        "PROXY_SERPS",
        "WEBHOOKS",
        "ACTORS_PUBLIC_ALL",
        "ACTORS_PUBLIC_DEVELOPER",
    ]
    return {
        "id": state.user_id,
        "username": state.username,
        "profile": {"name": state.username.title()},
        "email": f"{state.username}@example.com",
        "plan": {
            "id": "SANDBOX",
            "description": "Local sandbox plan",
            "isEnabled": True,
            "monthlyBasePriceUsd": 0,
            "monthlyUsageCreditsUsd": 0,
            "availableProxyGroups": {},
        },
        "effectivePlatformFeatures": {name: dict(feature) for name in features},
        "createdAt": iso(state.clock.now().replace(year=2024, month=1, day=1)),
        "isPaying": False,
    }


def token(row: TokenRow, *, preview: bool = True, secret: bool = False) -> dict[str, Any]:
    """A token-API object; the secret only when ``secret`` (the 201 create answer)."""
    out: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "createdAt": iso(row.created_at),
        "expiresAt": iso(row.expires_at),
        "scope": row.scope,
    }
    if preview:
        out["tokenPreview"] = row.preview
    if secret:
        out["token"] = row.secret
    return out


def _stamp(resource: Resource) -> dict[str, Any]:
    return {"createdAt": iso(resource.created_at), "modifiedAt": iso(resource.modified_at)}


def actor(state: SandboxState, res: Resource, *, short: bool = False) -> dict[str, Any]:
    """Actor (or ActorShort for lists)."""
    f = res.fields
    out: dict[str, Any] = {
        "id": res.id,
        "name": res.name,
        "username": state.username,
        **_stamp(res),
    }
    # The spec types title, description and lastRunStartedAt as non-null strings: omit them.
    if f.get("title") is not None:
        out["title"] = f["title"]
    if short:
        out["stats"] = {"totalRuns": int(f.get("totalRuns", 0))}
        return out
    out.update(
        {
            "userId": state.user_id,
            "isPublic": False,
            "stats": {
                "totalBuilds": 1,
                "totalRuns": int(f.get("totalRuns", 0)),
                "totalUsers": 1,
                "totalUsers7Days": 1,
                "totalUsers30Days": 1,
                "totalUsers90Days": 1,
            },
            "versions": [
                {"versionNumber": "0.0", "sourceType": "SOURCE_FILES", "buildTag": "latest"}
            ],
            "defaultRunOptions": {"build": "latest", "timeoutSecs": 3600, "memoryMbytes": 1024},
            "exampleRunInput": {"body": "{}", "contentType": "application/json; charset=utf-8"},
            "isDeprecated": False,
        }
    )
    if f.get("description") is not None:
        out["description"] = f["description"]
    if f.get("lastRunStartedAt") is not None:
        out["stats"]["lastRunStartedAt"] = iso(f["lastRunStartedAt"])
    return out


def task(state: SandboxState, res: Resource, *, short: bool = False) -> dict[str, Any]:
    """Task (TaskShort has the same required fields)."""
    f = res.fields
    act = state.get(Kind.ACTOR, str(f.get("actId", "")))
    out: dict[str, Any] = {
        "id": res.id,
        "userId": state.user_id,
        "actId": f.get("actId"),
        "actName": act.name if act else None,
        "name": res.name,
        "username": state.username,
        "actUsername": state.username,
        **_stamp(res),
        "stats": {"totalRuns": int(f.get("totalRuns", 0))},
        "title": f.get("title"),
    }
    if not short:
        out["options"] = f.get("options") or {
            "build": "latest",
            "timeoutSecs": 3600,
            "memoryMbytes": 1024,
        }
        out["input"] = f.get("input") or {}
        out["description"] = f.get("description")
    return out


def run(state: SandboxState, res: Resource, *, short: bool = False) -> dict[str, Any]:
    """Run (or RunShort for lists)."""
    assert isinstance(res, Run)
    out: dict[str, Any] = {
        "id": res.id,
        "actId": res.act_id,
        "actorTaskId": res.task_id,
        "status": res.status,
        "startedAt": iso(res.created_at),
        "finishedAt": iso(res.finished_at),
        "buildId": "sandboxBuild00001",
        "buildNumber": "0.0.1",
        "meta": {"origin": "API"},
        "usageTotalUsd": 0.0,
        "defaultKeyValueStoreId": res.kvs_id,
        "defaultDatasetId": res.dataset_id,
        "defaultRequestQueueId": res.rq_id,
    }
    if short:
        return out
    out.update(
        {
            "userId": state.user_id,
            "statusMessage": "Finished in the sandbox",
            "isStatusMessageTerminal": True,
            "stats": {"runTimeSecs": 0.0, "computeUnits": 0.0, "restartCount": 0},
            "options": {
                "build": "latest",
                "timeoutSecs": 3600,
                "memoryMbytes": 1024,
                "diskMbytes": 2048,
            },
            "exitCode": 0,
            "generalAccess": "FOLLOW_USER_SETTING",
            "usageUsd": {},
        }
    )
    return out


def _storage_common(state: SandboxState, res: Resource) -> dict[str, Any]:
    run_id = state.run_of_storage.get(res.id)
    run_obj = state.get(Kind.RUN, run_id) if run_id else None
    return {
        "id": res.id,
        "name": res.name,
        "userId": state.user_id,
        "username": state.username,
        **_stamp(res),
        "accessedAt": iso(res.modified_at),
        "actId": run_obj.act_id if isinstance(run_obj, Run) else None,
        "actRunId": run_id,
        "consoleUrl": f"{CONSOLE}/storage/{_STORAGE_PATH[res.kind]}/{res.id}",
        "generalAccess": res.fields.get("generalAccess", "FOLLOW_USER_SETTING"),
    }


def dataset(state: SandboxState, res: Resource, base_url: str) -> dict[str, Any]:
    """Dataset (a superset of DatasetListItem)."""
    assert isinstance(res, Dataset)
    out = _storage_common(state, res)
    count = len(res.items)
    out.update(
        {
            "itemCount": count,
            "cleanItemCount": count,
            "itemsPublicUrl": f"{base_url}/v2/datasets/{res.id}/items",
            "stats": {"readCount": 0, "writeCount": count, "storageBytes": 0},
        }
    )
    return out


def key_value_store(state: SandboxState, res: Resource, base_url: str) -> dict[str, Any]:
    """KeyValueStore."""
    assert isinstance(res, KeyValueStore)
    out = _storage_common(state, res)
    out.update(
        {
            "keysPublicUrl": f"{base_url}/v2/key-value-stores/{res.id}/keys",
            "stats": {"readCount": 0, "writeCount": len(res.records), "storageBytes": 0},
        }
    )
    return out


def request_queue(state: SandboxState, res: Resource) -> dict[str, Any]:
    """RequestQueue (a superset of RequestQueueShort)."""
    out = _storage_common(state, res)
    out.update(
        {
            "totalRequestCount": 0,
            "handledRequestCount": 0,
            "pendingRequestCount": 0,
            "hadMultipleClients": False,
            "stats": {"readCount": 0, "writeCount": 0, "storageBytes": 0},
        }
    )
    return out


def storage(state: SandboxState, res: Resource, base_url: str) -> dict[str, Any]:
    """Any storage kind."""
    if res.kind is Kind.DATASET:
        return dataset(state, res, base_url)
    if res.kind is Kind.KEY_VALUE_STORE:
        return key_value_store(state, res, base_url)
    return request_queue(state, res)


def record_key(res: KeyValueStore, key: str, base_url: str) -> dict[str, Any]:
    """KeyValueStoreKey."""
    return {
        "key": key,
        "size": len(res.records[key].value),
        "recordPublicUrl": f"{base_url}/v2/key-value-stores/{res.id}/records/{quote(key, safe='')}",
    }


def schedule(state: SandboxState, res: Resource) -> dict[str, Any]:
    """Schedule (a superset of ScheduleShort)."""
    f = res.fields
    return {
        "id": res.id,
        "userId": state.user_id,
        "name": res.name,
        "cronExpression": f.get("cronExpression", "@daily"),
        "timezone": f.get("timezone", "UTC"),
        "isEnabled": bool(f.get("isEnabled", True)),
        "isExclusive": bool(f.get("isExclusive", False)),
        **_stamp(res),
        "description": f.get("description"),
        "title": f.get("title"),
        "notifications": {"email": False},
        "nextRunAt": None,
        "lastRunAt": None,
        "actions": [dict(a) for a in f.get("actions", [])],
    }


def webhook(state: SandboxState, res: Resource) -> dict[str, Any]:
    """Webhook (a superset of WebhookShort)."""
    f = res.fields
    return {
        "id": res.id,
        "userId": state.user_id,
        **_stamp(res),
        "isAdHoc": False,
        "shouldInterpolateStrings": False,
        "eventTypes": list(f.get("eventTypes", [])),
        "condition": dict(f.get("condition", {})),
        "ignoreSslErrors": bool(f.get("ignoreSslErrors", False)),
        "doNotRetry": bool(f.get("doNotRetry", False)),
        "requestUrl": f.get("requestUrl"),
        "payloadTemplate": f.get("payloadTemplate"),
        "headersTemplate": f.get("headersTemplate"),
        "description": f.get("description"),
        "lastDispatch": None,
        "stats": {"totalDispatches": 0},
    }
