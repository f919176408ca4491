"""The sandbox's own reading of Apify's scoped-token rules: scope validation and grant checks.

Independent of :mod:`tokenguard.permissions` on purpose (DESIGN §2): the two are separate
readings of the same documentation, compared by property tests. Sources:

- "API tokens with limited permissions" (docs.apify.com/platform/integrations/api):
  account-level vs resource-specific permissions, explicit Create with full access to what the
  token creates, write implies read, task run = Run on the Actor + Read on the task, schedule
  create/update = Run on the Actor or Read on the task it triggers, scoped tokens never create
  or modify Actors, default-run-storage access toggle, webhooks dispatched with the creating
  token's scope.
- "List of permissions" (docs.apify.com/platform/collaboration/list-of-permissions).
- "General resource access" (docs.apify.com/platform/collaboration/general-resource-access):
  ANYONE_WITH_ID_CAN_READ opens runs and storages to anyone holding the ID.

The project's decisions D1-D18 (notes) pin the corners the pages leave open; each check below
names the rule it implements. A successful check returns the D18 grant route; a failed one
raises :class:`Denied` whose message names the missing permission and the resource.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tokenguard.sandbox.state import (
    STORAGE_KINDS,
    GeneralResourceAccess,
    Kind,
    Resource,
    ResourceAccess,
    Run,
    SandboxState,
    TokenRow,
)

READ, WRITE, RUN, CREATE = "read", "write", "run", "create"

#: Account-level groups and the permissions each takes (token form "Account-level").
ACCOUNT_GROUPS: Mapping[str, frozenset[str]] = {
    "actors": frozenset({READ, RUN}),
    "tasks": frozenset({READ, WRITE, CREATE}),
    "schedules": frozenset({READ, WRITE, CREATE}),
    "storages": frozenset({READ, WRITE, CREATE}),
}

#: Resource types and the resource-specific permissions each takes ("Add resource").
RESOURCE_TYPES: Mapping[str, frozenset[str]] = {
    "actor": frozenset({READ, RUN}),
    "task": frozenset({READ, WRITE}),
    "dataset": frozenset({READ, WRITE}),
    "key-value-store": frozenset({READ, WRITE}),
    "request-queue": frozenset({READ, WRITE}),
    "schedule": frozenset({READ, WRITE}),
}

#: Which account-level group covers a resource kind.
GROUP_OF_KIND: Mapping[Kind, str] = {
    Kind.ACTOR: "actors",
    Kind.TASK: "tasks",
    Kind.SCHEDULE: "schedules",
    Kind.DATASET: "storages",
    Kind.KEY_VALUE_STORE: "storages",
    Kind.REQUEST_QUEUE: "storages",
}

#: D18: grant routes in the order the header reports the first that applies.
ROUTE_ORDER = ("unscoped", "created", "resource", "account", "default-run-storage", "anonymous")

RUN_MODES = frozenset({"restricted", "full"})
_SCOPE_KEYS = frozenset({"account", "resources", "actorRunMode", "defaultRunStorageAccess"})
_GRANT_KEYS = frozenset({"type", "id", "permissions"})


class Denied(Exception):
    """403 insufficient-permissions; the message names the permission and resource (D18)."""


class InvalidScope(ValueError):
    """400 invalid-input for a scope the token API cannot accept (D16)."""


# -- scope validation (token API) ------------------------------------------------------------


def _join(values: Iterable[str]) -> str:
    return ", ".join(sorted(values))


def _perm_list(value: Any, allowed: frozenset[str], where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise InvalidScope(f"{where}: permissions must be a list of strings")
    unknown = sorted(set(value) - allowed)
    if unknown:
        names = ", ".join(unknown)
        raise InvalidScope(f"{where}: unknown permission {names} (allowed: {_join(allowed)})")
    return sorted(set(value))


def validate_scope(state: SandboxState, raw: Any) -> dict[str, Any] | None:
    """Validate a token API ``scope`` and return it normalised with grant IDs resolved.

    ``None`` stays ``None`` (unscoped). Unknown groups, types or permissions, and grants that
    name a resource that does not exist, raise :class:`InvalidScope` (D16).
    """
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidScope("scope must be an object or null")
    unknown_keys = sorted(set(raw) - _SCOPE_KEYS)
    if unknown_keys:
        raise InvalidScope(f"scope: unknown field {', '.join(unknown_keys)}")
    account_raw = raw.get("account")
    account_raw = {} if account_raw is None else account_raw
    if not isinstance(account_raw, dict):
        raise InvalidScope("scope.account must be an object")
    account: dict[str, list[str]] = {group: [] for group in ACCOUNT_GROUPS}
    for group, perms in account_raw.items():
        if group not in ACCOUNT_GROUPS:
            raise InvalidScope(
                f"scope.account: unknown group {group!r} (allowed: {', '.join(ACCOUNT_GROUPS)})"
            )
        account[group] = _perm_list(perms, ACCOUNT_GROUPS[group], f"scope.account.{group}")
    resources_raw = raw.get("resources")
    resources_raw = [] if resources_raw is None else resources_raw
    if not isinstance(resources_raw, list):
        raise InvalidScope("scope.resources must be a list")
    resources: list[dict[str, Any]] = []
    for index, grant in enumerate(resources_raw):
        where = f"scope.resources[{index}]"
        if not isinstance(grant, dict):
            raise InvalidScope(f"{where} must be an object")
        extra = sorted(set(grant) - _GRANT_KEYS)
        if extra:
            raise InvalidScope(f"{where}: unknown field {', '.join(extra)}")
        rtype = grant.get("type")
        if not isinstance(rtype, str) or rtype not in RESOURCE_TYPES:
            raise InvalidScope(
                f"{where}: unknown resource type {rtype!r} (allowed: {', '.join(RESOURCE_TYPES)})"
            )
        ref = grant.get("id")
        if not isinstance(ref, str) or not ref:
            raise InvalidScope(f"{where}: id must be a resource ID or username~name")
        perms = _perm_list(grant.get("permissions", []), RESOURCE_TYPES[rtype], where)
        resource, _ = state.lookup(Kind(rtype), ref)
        if resource is None:
            raise InvalidScope(f"{where}: {rtype} {ref!r} does not exist")
        resources.append({"type": rtype, "id": resource.id, "permissions": perms})
    mode = raw.get("actorRunMode", "restricted")
    if mode is None:
        mode = "restricted"
    if mode not in RUN_MODES:
        raise InvalidScope("scope.actorRunMode must be 'restricted' or 'full'")
    storage_access = raw.get("defaultRunStorageAccess", False)
    if storage_access is None:
        storage_access = False
    if not isinstance(storage_access, bool):
        raise InvalidScope("scope.defaultRunStorageAccess must be true or false")
    return {
        "account": account,
        "resources": resources,
        "actorRunMode": mode,
        "defaultRunStorageAccess": storage_access,
    }


# -- grant check -------------------------------------------------------------------------------


def _implied(perms: Iterable[str]) -> set[str]:
    # D3: write implies read, everywhere.
    out = set(perms)
    if WRITE in out:
        out.add(READ)
    return out


def _resource_perms(scope: Mapping[str, Any], kind: Kind, rid: str) -> set[str]:
    out: set[str] = set()
    for grant in scope.get("resources", ()):
        if grant["type"] == kind.value and grant["id"] == rid:
            out |= set(grant["permissions"])
    return _implied(out)


def _account_perms(scope: Mapping[str, Any], kind: Kind) -> set[str]:
    group = GROUP_OF_KIND.get(kind)
    if group is None:
        return set()
    # Create is about new resources only; it grants nothing on existing ones (D4).
    return _implied(scope.get("account", {}).get(group, ())) - {CREATE}


def grant_routes(state: SandboxState, token: TokenRow, perm: str, resource: Resource) -> set[str]:
    """Every D18 route (except ``anonymous``) through which ``token`` holds ``perm``."""
    if token.scope is None:
        return {"unscoped"}  # D15
    if resource.kind is Kind.RUN:
        return _run_routes(state, token, perm, resource)
    scope = token.scope
    routes: set[str] = set()
    # D4: a token has read+write on what it created (never Actors: D5 forbids creating them).
    if resource.created_by == token.id and perm in (READ, WRITE):
        routes.add("created")
    if perm in _resource_perms(scope, resource.kind, resource.id):
        routes.add("resource")
    if perm in _account_perms(scope, resource.kind):
        routes.add("account")
    if (
        resource.kind in STORAGE_KINDS
        and perm in (READ, WRITE)
        and scope.get("defaultRunStorageAccess")
    ):
        run_id = state.run_of_storage.get(resource.id)
        run = state.get(Kind.RUN, run_id) if run_id else None
        # D10: default storages of every run the token may read (D6).
        if run is not None and _run_routes(state, token, READ, run):
            routes.add("default-run-storage")
    return routes


def _run_routes(state: SandboxState, token: TokenRow, perm: str, run: Resource) -> set[str]:
    assert isinstance(run, Run)
    actor = state.get(Kind.ACTOR, run.act_id)
    routes: set[str] = set()
    if actor is not None:
        # D6: reading a run needs read or run on its Actor; aborting needs run.
        wanted = (READ, RUN) if perm == READ else (RUN,)
        for p in wanted:
            routes |= grant_routes(state, token, p, actor)
    if perm == READ and run.task_id:
        task = state.get(Kind.TASK, run.task_id)
        if task is not None:
            # D6: for a task's run, read on the task also suffices.
            routes |= grant_routes(state, token, READ, task)
    return routes


def first_route(routes: Iterable[str]) -> str:
    """The D18 route to report: the first of :data:`ROUTE_ORDER` present in ``routes``."""
    present = set(routes)
    for route in ROUTE_ORDER:
        if route in present:
            return route
    raise ValueError("no route")


def describe(perm: str, resource: Resource) -> str:
    """``run on actor <id>`` — the D18 wording for a missing permission."""
    if resource.kind is Kind.RUN:
        assert isinstance(resource, Run)
        if perm == READ:
            target = f"read or run on actor {resource.act_id}"
            if resource.task_id:
                target += f" (or read on task {resource.task_id})"
            return f"{target} to read run {resource.id}"
        return f"run on actor {resource.act_id} to {perm} run {resource.id}"
    return f"{perm} on {resource.kind.value} {resource.id}"


def general_access(state: SandboxState, resource: Resource) -> str:
    """The general access that applies to ``resource``: its own setting when it has one
    other than FOLLOW_USER_SETTING (general-resource-access, "Per-resource access control":
    it takes precedence), else the account's."""
    own = resource.fields.get("generalAccess", ResourceAccess.FOLLOW_USER_SETTING)
    if own == ResourceAccess.FOLLOW_USER_SETTING:
        return state.general_access.value
    return str(own)


def anonymous_allowed(state: SandboxState, perm: str, resource: Resource, by_name: bool) -> bool:
    """D11: with ANYONE_WITH_ID_CAN_READ, reads of runs and storages by ID need no token.

    A storage's own ANYONE_WITH_NAME_CAN_READ opens it by ``username~name`` as well.
    """
    if perm != READ or not (resource.kind in STORAGE_KINDS or resource.kind is Kind.RUN):
        return False
    access = general_access(state, resource)
    if access == ResourceAccess.ANYONE_WITH_NAME_CAN_READ:
        return resource.kind in STORAGE_KINDS
    return access == GeneralResourceAccess.ANYONE_WITH_ID_CAN_READ and not by_name


def authorize(
    state: SandboxState,
    token: TokenRow | None,
    perm: str,
    resource: Resource,
    *,
    by_name: bool = False,
    anonymous_ok: bool = False,
) -> str:
    """The D18 route through which the request may act, or :class:`Denied`.

    ``token`` is None for an anonymous request (only let through when D11 applies);
    ``anonymous_ok`` marks routes where D11 may apply at all (GETs of runs and storages).
    """
    routes = grant_routes(state, token, perm, resource) if token is not None else set()
    if routes:
        return first_route(routes)
    if anonymous_ok and anonymous_allowed(state, perm, resource, by_name):
        return "anonymous"
    raise Denied(f"Insufficient permissions: the token requires {describe(perm, resource)}")


def may(state: SandboxState, token: TokenRow, perm: str, resource: Resource) -> bool:
    """True when the token holds ``perm`` on ``resource`` (D2 list filtering)."""
    return bool(grant_routes(state, token, perm, resource))


def authorize_create(token: TokenRow, group: str) -> str:
    """D4: creating tasks, schedules or storages needs the account-level ``create``."""
    if token.scope is None:
        return "unscoped"
    if CREATE in token.scope.get("account", {}).get(group, ()):
        return "account"
    raise Denied(f"Insufficient permissions: the token requires create on account {group}")


def require_unscoped(token: TokenRow, what: str) -> str:
    """D5/D13: some operations are for unscoped tokens only."""
    if token.scope is None:
        return "unscoped"
    raise Denied(f"Insufficient permissions: {what} requires an unscoped token")


def authorize_webhook(state: SandboxState, token: TokenRow, condition: Mapping[str, Any]) -> str:
    """D14: managing a webhook needs run on its Actor, or read on its task + run on its Actor.

    The route reported is the one for the condition's target (the Actor or the task).
    Raises :class:`LookupError` naming the condition's resource when it does not exist.
    """
    actor_id = condition.get("actorId")
    task_id = condition.get("actorTaskId")
    if task_id:
        task = state.get(Kind.TASK, str(task_id))
        if task is None:
            raise LookupError(f"Actor task {str(task_id)!r} of the webhook's condition")
        route = authorize(state, token, READ, task)
        actor = state.get(Kind.ACTOR, str(task.fields.get("actId", "")))
        if actor is not None:
            authorize(state, token, RUN, actor)
        return route
    if actor_id:
        actor = state.get(Kind.ACTOR, str(actor_id))
        if actor is None:
            raise LookupError(f"Actor {str(actor_id)!r} of the webhook's condition")
        return authorize(state, token, RUN, actor)
    # A webhook with no Actor or task condition can only be managed by an unscoped token.
    return require_unscoped(token, "a webhook without an Actor or task condition")


__all__ = [
    "ACCOUNT_GROUPS",
    "RESOURCE_TYPES",
    "ROUTE_ORDER",
    "Denied",
    "InvalidScope",
    "anonymous_allowed",
    "authorize",
    "authorize_create",
    "authorize_webhook",
    "describe",
    "first_route",
    "general_access",
    "grant_routes",
    "may",
    "require_unscoped",
    "validate_scope",
]
