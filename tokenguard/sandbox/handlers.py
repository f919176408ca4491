"""Route handlers: one plain function per operation, ``(Call) -> Reply``.

The server has already authenticated the caller, resolved the route's target resource and,
for routes whose table entry names a permission, checked it (``call.grant`` holds the D18
route). Handlers do the composite checks the table cannot express (task run, schedule and
webhook conditions, creates) and the D2 filtering of lists.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from tokenguard.sandbox import objects
from tokenguard.sandbox.grants import (
    READ,
    RUN,
    Denied,
    InvalidScope,
    authorize,
    authorize_create,
    authorize_webhook,
    may,
    validate_scope,
)
from tokenguard.sandbox.protocol import (
    Call,
    Reply,
    SandboxApiError,
    data,
    forbidden,
    invalid,
    no_content,
    not_found,
)
from tokenguard.sandbox.state import (
    Dataset,
    KeyValueStore,
    Kind,
    Record,
    Resource,
    ResourceAccess,
    Run,
    SandboxState,
    TokenRow,
    iso,
    new_id,
)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_LIST_LIMIT = 1000
_KIND_LABEL = {
    Kind.ACTOR: "Actor",
    Kind.TASK: "Actor task",
    Kind.RUN: "Actor run",
    Kind.DATASET: "Dataset",
    Kind.KEY_VALUE_STORE: "Key-value store",
    Kind.REQUEST_QUEUE: "Request queue",
    Kind.SCHEDULE: "Schedule",
    Kind.WEBHOOK: "Webhook",
}
WEBHOOK_EVENT_TYPES = frozenset(
    {
        "ACTOR.BUILD.ABORTED",
        "ACTOR.BUILD.CREATED",
        "ACTOR.BUILD.FAILED",
        "ACTOR.BUILD.SUCCEEDED",
        "ACTOR.BUILD.TIMED_OUT",
        "ACTOR.RUN.ABORTED",
        "ACTOR.RUN.CREATED",
        "ACTOR.RUN.FAILED",
        "ACTOR.RUN.RESURRECTED",
        "ACTOR.RUN.SUCCEEDED",
        "ACTOR.RUN.TIMED_OUT",
        "TEST",
    }
)


# -- helpers -----------------------------------------------------------------------------------


def label(kind: Kind) -> str:
    """Human label of a kind for messages."""
    return _KIND_LABEL[kind]


def _token(call: Call) -> TokenRow:
    # Every handler except anonymous-capable reads runs behind an authenticated token.
    assert call.token is not None
    return call.token


def _target(call: Call) -> Resource:
    assert call.target is not None
    return call.target


def _check(call: Call, perm: str, resource: Resource) -> str:
    try:
        return authorize(call.state, _token(call), perm, resource)
    except Denied as exc:
        raise forbidden(str(exc)) from None


def _check_create(call: Call, group: str) -> str:
    try:
        return authorize_create(_token(call), group)
    except Denied as exc:
        raise forbidden(str(exc)) from None


def _paginate(call: Call, items: list[Any]) -> Reply:
    offset = call.int_param("offset", 0)
    limit = call.int_param("limit", MAX_LIST_LIMIT, maximum=MAX_LIST_LIMIT)
    desc = call.flag("desc")
    if desc:
        items = list(reversed(items))
    page = items[offset : offset + limit] if limit else []
    return Reply(
        200, objects.list_envelope(page, total=len(items), offset=offset, limit=limit, desc=desc)
    )


def _name(value: Any, what: str, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise invalid(f"{what} name is required")
        return None
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise invalid(
            f"{what} name must be 1-100 characters of letters, digits, '.', '_' or '-' "
            "and start with a letter or digit"
        )
    return value


#: The error type for a name that is taken, per kind (types from the spec's ErrorType enum).
_NAME_TAKEN = {
    Kind.ACTOR: "actor-name-not-unique",
    Kind.TASK: "actor-task-name-not-unique",
    Kind.SCHEDULE: "schedule-name-not-unique",
}


def _free_name(call: Call, kind: Kind, name: str | None, current: Resource | None = None) -> None:
    if name is None:
        return
    existing = call.state.names[kind].get(name)
    if existing is not None and (current is None or existing != current.id):
        # The spec documents 409 Conflict where it lists one (task create and update,
        # schedule create); elsewhere a taken name is a 400.
        conflict = kind is Kind.TASK or (kind is Kind.SCHEDULE and current is None)
        raise SandboxApiError(
            409 if conflict else 400,
            _NAME_TAKEN.get(kind, "name-not-unique"),
            f"{label(kind)} with name {name!r} already exists: pick another name",
        )


def _resolve(call: Call, kind: Kind, ref: Any) -> Resource:
    if not isinstance(ref, str) or not ref:
        raise invalid(f"{label(kind)} ID must be a non-empty string")
    resource, _ = call.state.lookup(kind, ref)
    if resource is None:
        raise not_found(f"{label(kind)} {ref!r}")
    return resource


def _resolve_allowed(call: Call, kind: Kind, ref: Any, perm: str) -> Resource:
    """Resolve a reference from the body and require ``perm`` on it (404 before 403)."""
    resource = _resolve(call, kind, ref)
    _check(call, perm, resource)
    return resource


def _new_owned(call: Call, kind: Kind, name: str | None, route: str, /, **fields: Any) -> Resource:
    """Create a resource owned by the calling token (D4) and name the create's grant route."""
    resource = call.state.new_resource(kind, name, created_by=_token(call).id, **fields)
    call.grant = route
    return resource


def _rename_from_body(
    call: Call, resource: Resource, body: dict[str, Any], what: str, *, required: bool = True
) -> None:
    """Apply ``body["name"]`` (if given) to ``resource``, refusing a name another one holds."""
    if "name" in body:
        name = _name(body["name"], what, required=required)
        _free_name(call, resource.kind, name, resource)
        call.state.rename(resource, name)


def _touch(resource: Resource, call: Call) -> None:
    resource.modified_at = call.state.clock.now()


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{key} must be a string")
    return value


def _opt_bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(f"{key} must be true or false")
    return value


def _opt_dict(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        raise invalid(f"{key} must be an object")
    return value


# -- users and the token API -------------------------------------------------------------------


def me_get(call: Call) -> Reply:
    """GET /v2/users/me (D13: unscoped only, checked by the table)."""
    return data(objects.user(call.state))


def tokens_list(call: Call) -> Reply:
    """GET /v2/users/me/tokens — every token, never a secret."""
    rows = sorted(call.state.tokens.values(), key=lambda r: r.created_at)
    return _paginate(call, [objects.token(r) for r in rows])


def _parse_expiry(state: SandboxState, raw: Any) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise invalid("expiresAt must be an ISO 8601 timestamp or null")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise invalid("expiresAt must be an ISO 8601 timestamp or null") from None
    if value.tzinfo is None:
        raise invalid("expiresAt must include a timezone (e.g. 2030-01-01T00:00:00Z)")
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is past year 9999 in UTC
        raise invalid("expiresAt is out of range (use a date between 1970 and 9999)") from None
    if value <= state.clock.now():
        raise invalid("expiresAt is in the past")  # D17
    return value


_TOKEN_FIELDS = frozenset({"name", "description", "expiresAt", "scope"})


def create_token(state: SandboxState, body: Any) -> TokenRow:
    """Validate a token API create body and store the token (the seeds use this too)."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object")
    extra = sorted(set(body) - _TOKEN_FIELDS)
    if extra:
        allowed = ", ".join(sorted(_TOKEN_FIELDS))
        raise invalid(f"Unknown field {', '.join(extra)} (allowed: {allowed})")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise invalid("name is required: a non-empty string of at most 200 characters")
    description = _opt_str(body, "description")
    expires_at = _parse_expiry(state, body.get("expiresAt"))
    try:
        scope = validate_scope(state, body.get("scope"))
    except InvalidScope as exc:
        raise invalid(str(exc)) from None
    return state.add_token(name, scope=scope, expires_at=expires_at, description=description)


def token_create(call: Call) -> Reply:
    """POST /v2/users/me/tokens — the secret is returned only here."""
    row = create_token(call.state, call.json_object())
    return data(objects.token(row, preview=False, secret=True), 201)


def _token_row(call: Call) -> TokenRow:
    tid = call.params["tokenId"]
    if not tid.isalnum() or len(tid) > 64:
        raise invalid(f"Invalid token ID: {tid[:80]!r}")
    row = call.state.tokens.get(tid)
    if row is None:
        raise not_found(f"Token {tid!r}")
    return row


def token_get(call: Call) -> Reply:
    """GET /v2/users/me/tokens/{tokenId}."""
    return data(objects.token(_token_row(call)))


def token_delete(call: Call) -> Reply:
    """DELETE /v2/users/me/tokens/{tokenId} — revocation is immediate."""
    call.state.revoke_token(_token_row(call).id)
    return no_content()


# -- actors ------------------------------------------------------------------------------------


def actors_list(call: Call) -> Reply:
    """GET /v2/acts (``?my=1`` accepted; every Actor here is the user's own)."""
    call.flag("my")
    token = _token(call)
    items = [
        objects.actor(call.state, a, short=True)
        for a in call.state.all(Kind.ACTOR)
        if may(call.state, token, READ, a)
    ]
    return _paginate(call, items)


_ACTOR_FIELDS = ("title", "description")


def actor_create(call: Call) -> Reply:
    """POST /v2/acts (D5: unscoped tokens only, checked by the table)."""
    body = call.json_object()
    name = _name(body.get("name"), "Actor", required=True)
    _free_name(call, Kind.ACTOR, name)
    fields = {k: _opt_str(body, k) for k in _ACTOR_FIELDS}
    actor = _new_owned(call, Kind.ACTOR, name, "unscoped", **fields)
    return data(objects.actor(call.state, actor), 201)


def actor_get(call: Call) -> Reply:
    """GET /v2/acts/{actorId}."""
    return data(objects.actor(call.state, _target(call)))


def actor_update(call: Call) -> Reply:
    """PUT /v2/acts/{actorId} (D5: unscoped only)."""
    actor = _target(call)
    body = call.json_object()
    _rename_from_body(call, actor, body, "Actor")
    for key in _ACTOR_FIELDS:
        if key in body:
            actor.fields[key] = _opt_str(body, key)
    _touch(actor, call)
    return data(objects.actor(call.state, actor))


def _remove_with_webhooks(call: Call, resource: Resource) -> None:
    """Delete an Actor or a task together with the webhooks whose condition names it."""
    key = "actorId" if resource.kind is Kind.ACTOR else "actorTaskId"
    for webhook in call.state.all(Kind.WEBHOOK):
        if webhook.fields.get("condition", {}).get(key) == resource.id:
            call.state.remove(webhook)
    call.state.remove(resource)


def actor_delete(call: Call) -> Reply:
    """DELETE /v2/acts/{actorId} (D5: unscoped only); its webhooks go with it."""
    _remove_with_webhooks(call, _target(call))
    return no_content()


def _run_input(call: Call) -> Record | None:
    if not call.body:
        return None
    content_type = call.content_type or "application/json"
    if content_type.split(";", 1)[0].strip().lower() == "application/json":
        call.json()  # malformed JSON input is a 400 like on the platform
    return Record(call.body, content_type)


def _run_options(call: Call) -> None:
    # Validate the numeric run options apify-client sends; their values do not matter here.
    for name in ("timeout", "memory", "maxItems", "waitForFinish"):
        call.int_param(name, 0)


def actor_run_start(call: Call) -> Reply:
    """POST /v2/acts/{actorId}/runs — a run that is SUCCEEDED at once (D5: run on the Actor)."""
    _run_options(call)
    run = call.state.start_run(_target(call), run_input=_run_input(call))
    return data(objects.run(call.state, run), 201)


def _actor_runs(call: Call, actor: Resource) -> list[Run]:
    return [r for r in call.state.all(Kind.RUN) if isinstance(r, Run) and r.act_id == actor.id]


def _require_actor_read_or_run(call: Call, actor: Resource) -> None:
    token = _token(call)
    if may(call.state, token, READ, actor) or may(call.state, token, RUN, actor):
        return
    raise forbidden(f"Insufficient permissions: the token requires read or run on actor {actor.id}")


def _status_filter(call: Call, runs: list[Run]) -> list[Run]:
    status = call.query.get("status")
    if status:
        wanted = {s.strip().upper() for s in status.split(",")}
        runs = [r for r in runs if r.status in wanted]
    return runs


def actor_runs_list(call: Call) -> Reply:
    """GET /v2/acts/{actorId}/runs (D6: read or run on the Actor)."""
    actor = _target(call)
    _require_actor_read_or_run(call, actor)
    runs = _status_filter(call, _actor_runs(call, actor))
    return _paginate(call, [objects.run(call.state, r, short=True) for r in runs])


def last_run(state: SandboxState, owner: Resource, status: str | None = None) -> Run | None:
    """The most recent run of an Actor or a task, optionally with ``status`` (None: none)."""
    key = "act_id" if owner.kind is Kind.ACTOR else "task_id"
    wanted = status.strip().upper() if status else None
    for run in reversed(state.all(Kind.RUN)):
        mine = isinstance(run, Run) and getattr(run, key) == owner.id
        if mine and (wanted is None or getattr(run, "status", None) == wanted):
            assert isinstance(run, Run)
            return run
    return None


def actor_last_run(call: Call) -> Reply:
    """GET /v2/acts/{actorId}/runs/last (D6: read on the run)."""
    actor = _target(call)
    run = last_run(call.state, actor, call.query.get("status"))
    if run is None:
        raise not_found(f"Last run of Actor {actor.id!r}")
    call.grant = _check(call, READ, run)
    return data(objects.run(call.state, run))


def task_last_run(call: Call) -> Reply:
    """GET /v2/actor-tasks/{taskId}/runs/last (D6: read on the run)."""
    task = _target(call)
    run = last_run(call.state, task, call.query.get("status"))
    if run is None:
        raise not_found(f"Last run of Actor task {task.id!r}")
    call.grant = _check(call, READ, run)
    return data(objects.run(call.state, run))


def run_log(call: Call) -> Reply:
    """GET /v2/actor-runs/{runId}/log and /v2/logs/{runId}: a short plain-text log (D6)."""
    run = _target(call)
    assert isinstance(run, Run)
    lines = [
        f"{iso(run.created_at)} Sandbox run {run.id} of Actor {run.act_id} started",
        f"{iso(run.finished_at)} Finished: {run.status}",
    ]
    return Reply(200, ("\n".join(lines) + "\n").encode(), content_type="text/plain; charset=utf-8")


# -- tasks -------------------------------------------------------------------------------------


def tasks_list(call: Call) -> Reply:
    """GET /v2/actor-tasks (D2: the tasks the token may read)."""
    token = _token(call)
    items = [
        objects.task(call.state, t, short=True)
        for t in call.state.all(Kind.TASK)
        if may(call.state, token, READ, t)
    ]
    return _paginate(call, items)


def _task_fields(body: dict[str, Any], fields: dict[str, Any]) -> None:
    for key in ("title", "description"):
        if key in body:
            fields[key] = _opt_str(body, key)
    for key in ("options", "input"):
        if key in body:
            fields[key] = _opt_dict(body, key)


def task_create(call: Call) -> Reply:
    """POST /v2/actor-tasks (D7: tasks:create + run on its Actor)."""
    body = call.json_object()
    actor_ref = body.get("actId")
    if not isinstance(actor_ref, str) or not actor_ref:
        raise invalid("actId is required: the ID or username~name of the task's Actor")
    name = _name(body.get("name"), "Actor task", required=True)
    # The create permission first, then the reference: a token that may not create tasks
    # learns nothing about which Actor IDs exist (403 before 404).
    route = _check_create(call, "tasks")
    actor = _resolve_allowed(call, Kind.ACTOR, actor_ref, RUN)
    _free_name(call, Kind.TASK, name)
    fields: dict[str, Any] = {"actId": actor.id}
    _task_fields(body, fields)
    task = _new_owned(call, Kind.TASK, name, route, **fields)
    return data(objects.task(call.state, task), 201)


def task_get(call: Call) -> Reply:
    """GET /v2/actor-tasks/{taskId} (D7: read)."""
    return data(objects.task(call.state, _target(call)))


def task_update(call: Call) -> Reply:
    """PUT /v2/actor-tasks/{taskId} (D7: write on the task + run on its (new) Actor)."""
    task = _target(call)
    body = call.json_object()
    actor_ref = body.get("actId", task.fields.get("actId"))
    actor = _resolve_allowed(call, Kind.ACTOR, actor_ref, RUN)
    _rename_from_body(call, task, body, "Actor task")
    task.fields["actId"] = actor.id
    _task_fields(body, task.fields)
    _touch(task, call)
    return data(objects.task(call.state, task))


def task_delete(call: Call) -> Reply:
    """DELETE /v2/actor-tasks/{taskId} (D7: write); its webhooks go with it."""
    _remove_with_webhooks(call, _target(call))
    return no_content()


def task_run_start(call: Call) -> Reply:
    """POST /v2/actor-tasks/{taskId}/runs (D7: read on the task + run on its Actor)."""
    task = _target(call)
    actor = call.state.get(Kind.ACTOR, str(task.fields.get("actId", "")))
    if actor is None:
        raise not_found(f"Actor of task {task.id!r}")
    _check(call, RUN, actor)
    _run_options(call)
    run_input = _run_input(call)
    if run_input is None and task.fields.get("input") is not None:
        # Without a body the task's saved input is the run's INPUT, as on the platform.
        run_input = Record(json.dumps(task.fields["input"]).encode(), "application/json")
    run = call.state.start_run(actor, task=task, run_input=run_input)
    return data(objects.run(call.state, run), 201)


def task_runs_list(call: Call) -> Reply:
    """GET /v2/actor-tasks/{taskId}/runs (D6: read on the task, or read/run on its Actor)."""
    task = _target(call)
    token = _token(call)
    actor = call.state.get(Kind.ACTOR, str(task.fields.get("actId", "")))
    allowed = may(call.state, token, READ, task) or (
        actor is not None
        and (may(call.state, token, READ, actor) or may(call.state, token, RUN, actor))
    )
    if not allowed:
        raise forbidden(
            f"Insufficient permissions: the token requires read on task {task.id} "
            f"(or read or run on its Actor)"
        )
    runs = [r for r in call.state.all(Kind.RUN) if isinstance(r, Run) and r.task_id == task.id]
    runs = _status_filter(call, runs)
    return _paginate(call, [objects.run(call.state, r, short=True) for r in runs])


# -- runs --------------------------------------------------------------------------------------


def runs_list(call: Call) -> Reply:
    """GET /v2/actor-runs (D2 + D6: the runs the token may read)."""
    token = _token(call)
    runs = [r for r in call.state.all(Kind.RUN) if isinstance(r, Run)]
    runs = [r for r in _status_filter(call, runs) if may(call.state, token, READ, r)]
    return _paginate(call, [objects.run(call.state, r, short=True) for r in runs])


def run_get(call: Call) -> Reply:
    """GET /v2/actor-runs/{runId} (D6, D11)."""
    return data(objects.run(call.state, _target(call)))


def run_abort(call: Call) -> Reply:
    """POST /v2/actor-runs/{runId}/abort (D6: run on the Actor). Finished runs stay as they are."""
    return data(objects.run(call.state, _target(call)))


# -- storages ----------------------------------------------------------------------------------

_KIND_BY_PATH = {
    "datasets": Kind.DATASET,
    "key-value-stores": Kind.KEY_VALUE_STORE,
    "request-queues": Kind.REQUEST_QUEUE,
}


def _collection_kind(call: Call) -> Kind:
    return _KIND_BY_PATH[call.path.split("/")[2]]


def storages_list(call: Call) -> Reply:
    """GET /v2/datasets | key-value-stores | request-queues (D2; named only unless ?unnamed=1)."""
    kind = _collection_kind(call)
    unnamed = call.flag("unnamed")
    token = _token(call)
    items = [
        objects.storage(call.state, s, call.base_url)
        for s in call.state.all(kind)
        if (unnamed or s.name is not None) and may(call.state, token, READ, s)
    ]
    for item in items:
        if item["name"] is None:
            # The list item schemas require a string name; unnamed storages list as "".
            item["name"] = ""
    return _paginate(call, items)


def storage_create(call: Call) -> Reply:
    """POST /v2/datasets?name=... etc. (D4: storages:create; an existing name needs read)."""
    kind = _collection_kind(call)
    body = call.json_object(required=False)
    raw_name = call.query.get("name") or body.get("name")
    name = _name(raw_name, label(kind), required=False)
    token = _token(call)
    if name is not None:
        existing_id = call.state.names[kind].get(name)
        if existing_id is not None:
            existing = call.state.resources[kind][existing_id]
            call.grant = _check(call, READ, existing)
            return data(objects.storage(call.state, existing, call.base_url), 200)
    call.grant = _check_create(call, "storages")
    storage = call.state.new_storage(kind, name, created_by=token.id)
    return data(objects.storage(call.state, storage, call.base_url), 201)


def storage_get(call: Call) -> Reply:
    """GET a storage by ID or ``username~name`` (D9 read, D10, D11)."""
    return data(objects.storage(call.state, _target(call), call.base_url))


def storage_update(call: Call) -> Reply:
    """PUT a storage: rename, share (``generalAccess``) (D9: write)."""
    storage = _target(call)
    body = call.json_object()
    access = body.get("generalAccess")
    if access is not None and access not in [a.value for a in ResourceAccess]:
        allowed = ", ".join(ResourceAccess)
        raise invalid(f"generalAccess must be one of {allowed}")
    _rename_from_body(call, storage, body, label(storage.kind), required=False)
    if access == ResourceAccess.FOLLOW_USER_SETTING:
        storage.fields.pop("generalAccess", None)
    elif access is not None:
        storage.fields["generalAccess"] = ResourceAccess(access).value
    _touch(storage, call)
    return data(objects.storage(call.state, storage, call.base_url))


def storage_delete(call: Call) -> Reply:
    """DELETE a storage (D9: write)."""
    storage = _target(call)
    call.state.remove(storage)
    call.state.run_of_storage.pop(storage.id, None)
    return no_content()


_ITEM_FORMATS = {"json": "application/json; charset=utf-8", "jsonl": "application/jsonl"}


def _keys(raw: str | None) -> list[str]:
    return [k for k in (raw or "").split(",") if k]


def _shape_item(item: Any, fields: list[str], omit: list[str], skip_hidden: bool) -> Any:
    if not isinstance(item, dict):
        return item
    if fields:
        item = {k: item[k] for k in fields if k in item}
    if omit or skip_hidden:
        item = {
            k: v for k, v in item.items() if k not in omit and not (skip_hidden and k[:1] == "#")
        }
    return item


def dataset_items_get(call: Call) -> Reply:
    """GET .../items: a bare JSON array with the X-Apify-Pagination-* headers (D9 read).

    Supports offset, limit, desc, fields, omit, clean, skipEmpty, skipHidden and
    format=json|jsonl. ``Count`` is the number of rows in the page window before
    skipEmpty/clean drop any (apify-client pages on it).
    """
    dataset = _target(call)
    assert isinstance(dataset, Dataset)
    offset = call.int_param("offset", 0)
    limit_raw = call.query.get("limit")
    limit = call.int_param("limit", 0) if limit_raw else None
    desc = call.flag("desc")
    clean = call.flag("clean")
    skip_empty = call.flag("skipEmpty") or clean
    skip_hidden = call.flag("skipHidden") or clean
    item_format = (call.query.get("format") or "json").lower()
    if item_format not in _ITEM_FORMATS:
        raise invalid(
            f"format={item_format[:20]!r} is not supported by the sandbox (use json or jsonl)"
        )
    items = list(reversed(dataset.items)) if desc else dataset.items
    end = None if limit is None or limit == 0 else offset + limit
    window = items[offset:end]
    fields, omit = _keys(call.query.get("fields")), _keys(call.query.get("omit"))
    page = [_shape_item(item, fields, omit, skip_hidden) for item in window]
    if skip_empty:
        page = [item for item in page if item != {}]
    headers = {
        "X-Apify-Pagination-Total": str(len(items)),
        "X-Apify-Pagination-Offset": str(offset),
        "X-Apify-Pagination-Count": str(len(window)),
        "X-Apify-Pagination-Limit": str(limit if limit else max(len(items), 1)),
        "X-Apify-Pagination-Desc": "true" if desc else "false",
    }
    if item_format == "jsonl":
        body = "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in page)
        return Reply(200, body.encode(), headers, content_type=_ITEM_FORMATS["jsonl"])
    return Reply(200, page, headers)


def dataset_items_post(call: Call) -> Reply:
    """POST .../items: push one object or an array of objects (D9 write)."""
    dataset = _target(call)
    assert isinstance(dataset, Dataset)
    payload = call.json()
    items = payload if isinstance(payload, list) else [payload]
    if not all(isinstance(item, dict) for item in items):
        raise invalid("Dataset items must be JSON objects (or an array of objects)")
    dataset.items.extend(items)
    _touch(dataset, call)
    return Reply(201, {}, {"Location": f"{call.base_url}/v2/datasets/{dataset.id}/items"})


def _kvs(call: Call) -> KeyValueStore:
    store = _target(call)
    assert isinstance(store, KeyValueStore)
    return store


def kvs_keys(call: Call) -> Reply:
    """GET .../keys (D9 read): keys in order, ``exclusiveStartKey`` paging."""
    store = _kvs(call)
    limit = call.int_param("limit", MAX_LIST_LIMIT, minimum=1, maximum=MAX_LIST_LIMIT)
    start = call.query.get("exclusiveStartKey")
    prefix = call.query.get("prefix") or ""
    keys = sorted(k for k in store.records if k.startswith(prefix))
    if start:
        keys = [k for k in keys if k > start]
    page = keys[:limit]
    truncated = len(keys) > limit
    return data(
        {
            "items": [objects.record_key(store, k, call.base_url) for k in page],
            "count": len(page),
            "limit": limit,
            "exclusiveStartKey": start,
            "isTruncated": truncated,
            "nextExclusiveStartKey": page[-1] if truncated and page else None,
        }
    )


_KEY_PATTERN = re.compile(r"[A-Za-z0-9!\-_.'()]{1,256}")


def _record_key(call: Call) -> str:
    key = call.params["recordKey"]
    if not _KEY_PATTERN.fullmatch(key):
        raise invalid("Record key must be 1-256 characters of letters, digits and !-_.'()")
    return key


def record_get(call: Call) -> Reply:
    """GET .../records/{key}: the stored bytes with their content type (D9 read)."""
    store = _kvs(call)
    key = _record_key(call)
    record = store.records.get(key)
    if record is None:
        raise not_found(f"Record {key!r}")
    return Reply(200, record.value, content_type=record.content_type)


def record_put(call: Call) -> Reply:
    """PUT .../records/{key} (D9 write)."""
    store = _kvs(call)
    key = _record_key(call)
    content_type = call.content_type or "application/octet-stream"
    if content_type.split(";", 1)[0].strip().lower() == "application/json":
        call.json(required=False)
    store.records[key] = Record(call.body, content_type)
    _touch(store, call)
    location = f"{call.base_url}/v2/key-value-stores/{store.id}/records/{key}"
    return Reply(201, {}, {"Location": location})


def record_delete(call: Call) -> Reply:
    """DELETE .../records/{key} (D9 write)."""
    store = _kvs(call)
    key = _record_key(call)
    if store.records.pop(key, None) is None:
        raise not_found(f"Record {key!r}")
    _touch(store, call)
    return no_content()


# -- schedules ---------------------------------------------------------------------------------


def schedules_list(call: Call) -> Reply:
    """GET /v2/schedules (D2)."""
    token = _token(call)
    items = [
        objects.schedule(call.state, s)
        for s in call.state.all(Kind.SCHEDULE)
        if may(call.state, token, READ, s)
    ]
    return _paginate(call, items)


def _schedule_actions(call: Call, raw: Any) -> list[dict[str, Any]]:
    """Validate actions and check D8: RUN_ACTOR -> run on the Actor, RUN_ACTOR_TASK -> read."""
    if not isinstance(raw, list):
        raise invalid("actions must be a list")
    actions: list[dict[str, Any]] = []
    for index, action in enumerate(raw):
        if not isinstance(action, dict):
            raise invalid(f"actions[{index}] must be an object")
        kind = action.get("type")
        out: dict[str, Any] = {"id": action.get("id") or new_id(), "type": kind}
        if kind == "RUN_ACTOR":
            actor = _resolve_allowed(call, Kind.ACTOR, action.get("actorId"), RUN)
            out["actorId"] = actor.id
        elif kind == "RUN_ACTOR_TASK":
            task = _resolve_allowed(call, Kind.TASK, action.get("actorTaskId"), READ)
            out["actorTaskId"] = task.id
        else:
            raise invalid(f"actions[{index}].type must be RUN_ACTOR or RUN_ACTOR_TASK")
        for extra in ("runInput", "runOptions"):
            if action.get(extra) is not None:
                out[extra] = _opt_dict(action, extra)
        actions.append(out)
    return actions


_SCHEDULE_STR = ("cronExpression", "timezone", "description", "title")


def _schedule_fields(body: dict[str, Any], fields: dict[str, Any]) -> None:
    for key in _SCHEDULE_STR:
        if key in body:
            fields[key] = _opt_str(body, key)
    for key, default in (("isEnabled", True), ("isExclusive", False)):
        if key in body:
            fields[key] = _opt_bool(body, key, default)


def schedule_create(call: Call) -> Reply:
    """POST /v2/schedules (D8: schedules:create + the action checks)."""
    body = call.json_object()
    name = _name(body.get("name"), "Schedule", required=True)
    route = _check_create(call, "schedules")
    actions = _schedule_actions(call, body.get("actions", []))
    _free_name(call, Kind.SCHEDULE, name)
    fields: dict[str, Any] = {"cronExpression": "@daily", "timezone": "UTC", "actions": actions}
    _schedule_fields(body, fields)
    schedule = _new_owned(call, Kind.SCHEDULE, name, route, **fields)
    return data(objects.schedule(call.state, schedule), 201)


def schedule_get(call: Call) -> Reply:
    """GET /v2/schedules/{scheduleId} (D8: read)."""
    return data(objects.schedule(call.state, _target(call)))


def schedule_update(call: Call) -> Reply:
    """PUT /v2/schedules/{scheduleId} (D8: write + the action checks on the resulting actions)."""
    schedule = _target(call)
    body = call.json_object()
    raw_actions = body.get("actions", schedule.fields.get("actions", []))
    actions = _schedule_actions(call, raw_actions)
    _rename_from_body(call, schedule, body, "Schedule")
    schedule.fields["actions"] = actions
    _schedule_fields(body, schedule.fields)
    _touch(schedule, call)
    return data(objects.schedule(call.state, schedule))


def schedule_delete(call: Call) -> Reply:
    """DELETE /v2/schedules/{scheduleId} (D8: write)."""
    call.state.remove(_target(call))
    return no_content()


# -- webhooks ----------------------------------------------------------------------------------


def _may_manage_webhook(call: Call, webhook: Resource) -> bool:
    try:
        authorize_webhook(call.state, _token(call), webhook.fields.get("condition", {}))
    except (Denied, LookupError):
        return False
    return True


def webhooks_list(call: Call) -> Reply:
    """GET /v2/webhooks (D14: those the token may manage)."""
    items = [
        objects.webhook(call.state, w)
        for w in call.state.all(Kind.WEBHOOK)
        if _may_manage_webhook(call, w)
    ]
    return _paginate(call, items)


def _webhook_condition(call: Call, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise invalid("condition must be an object with actorId or actorTaskId")
    out: dict[str, Any] = {}
    if raw.get("actorTaskId"):
        out["actorTaskId"] = _resolve(call, Kind.TASK, raw["actorTaskId"]).id
    elif raw.get("actorId"):
        out["actorId"] = _resolve(call, Kind.ACTOR, raw["actorId"]).id
    elif raw.get("actorRunId"):
        run = _resolve(call, Kind.RUN, raw["actorRunId"])
        assert isinstance(run, Run)
        out["actorRunId"] = run.id
    else:
        raise invalid("condition must name actorId or actorTaskId")
    return out


def _authorize_webhook(call: Call, condition: dict[str, Any]) -> str:
    if "actorRunId" in condition and len(condition) == 1:
        run = call.state.get(Kind.RUN, condition["actorRunId"])
        assert isinstance(run, Run)
        condition = {"actorId": run.act_id}
    try:
        return authorize_webhook(call.state, _token(call), condition)
    except Denied as exc:
        raise forbidden(str(exc)) from None
    except LookupError as exc:
        raise not_found(str(exc)) from None


def _webhook_fields(body: dict[str, Any], fields: dict[str, Any], *, creating: bool) -> None:
    if creating or "eventTypes" in body:
        events = body.get("eventTypes")
        if (
            not isinstance(events, list)
            or not events
            or not all(isinstance(e, str) and e in WEBHOOK_EVENT_TYPES for e in events)
        ):
            raise invalid("eventTypes must be a non-empty list of webhook event types")
        fields["eventTypes"] = events
    if creating or "requestUrl" in body:
        url = body.get("requestUrl")
        parsed = urlparse(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise invalid("requestUrl must be an http(s) URL")
        fields["requestUrl"] = url
    for key in ("payloadTemplate", "headersTemplate", "description"):
        if key in body:
            fields[key] = _opt_str(body, key)
    for key in ("ignoreSslErrors", "doNotRetry"):
        if key in body:
            fields[key] = _opt_bool(body, key, False)


def webhook_create(call: Call) -> Reply:
    """POST /v2/webhooks (D14); the webhook records its creating token."""
    body = call.json_object()
    condition = _webhook_condition(call, body.get("condition"))
    call.grant = _authorize_webhook(call, condition)
    fields: dict[str, Any] = {"condition": condition}
    _webhook_fields(body, fields, creating=True)
    webhook = call.state.new_resource(Kind.WEBHOOK, None, created_by=_token(call).id, **fields)
    return data(objects.webhook(call.state, webhook), 201)


def webhook_get(call: Call) -> Reply:
    """GET /v2/webhooks/{webhookId} (D14)."""
    webhook = _target(call)
    call.grant = _authorize_webhook(call, webhook.fields.get("condition", {}))
    return data(objects.webhook(call.state, webhook))


def webhook_update(call: Call) -> Reply:
    """PUT /v2/webhooks/{webhookId} (D14: the current and the new condition)."""
    webhook = _target(call)
    call.grant = _authorize_webhook(call, webhook.fields.get("condition", {}))
    body = call.json_object()
    if "condition" in body:
        condition = _webhook_condition(call, body["condition"])
        _authorize_webhook(call, condition)
        webhook.fields["condition"] = condition
    _webhook_fields(body, webhook.fields, creating=False)
    _touch(webhook, call)
    return data(objects.webhook(call.state, webhook))


def webhook_delete(call: Call) -> Reply:
    """DELETE /v2/webhooks/{webhookId} (D14)."""
    webhook = _target(call)
    call.grant = _authorize_webhook(call, webhook.fields.get("condition", {}))
    call.state.remove(webhook)
    return no_content()
