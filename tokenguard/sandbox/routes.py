"""The route table: method, path pattern, handler, and what each route needs on which resource.

Each :class:`Route` names the resource its path parameter addresses (``target``) and the
permission needed on it (``permission``); the server resolves the target (404 when missing,
D1) and checks that permission (403, D18 route otherwise) before the handler runs. Routes
whose rule is composite (creates, task run, schedule and webhook conditions, lists) leave
``permission`` empty and their handler does the checks. Both ``/v2/actors`` and the
deprecated ``/v2/acts`` prefix are served by the same entries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from tokenguard.sandbox import handlers as h
from tokenguard.sandbox.grants import READ, RUN, WRITE
from tokenguard.sandbox.protocol import Call, Reply
from tokenguard.sandbox.state import Kind

Handler = Callable[[Call], Reply]

#: Per-resource rate limits (requests/second), Apify's documented defaults.
DEFAULT_RESOURCE_RATE = 60
RECORDS_RATE = 200
RUN_OR_PUSH_RATE = 400


_KVS = Kind.KEY_VALUE_STORE
_FAST = RUN_OR_PUSH_RATE


class Via(StrEnum):
    """How the path parameter ``{id}`` leads to the route's target."""

    DIRECT = "direct"  # {id} is the target itself
    RUN = "run"  # {id} is a run; the target is its default storage of the route's kind
    ACTOR_LAST_RUN = "actor-last-run"  # {id} is an Actor; the target: its last run's storage
    TASK_LAST_RUN = "task-last-run"  # {id} is a task; the target: its last run's storage


@dataclass(frozen=True, slots=True)
class Route:
    """One served operation."""

    method: str
    pattern: str
    handler: Handler
    target: Kind | None = None  # kind of the resource the route acts on ({id} leads to it)
    via: Via = Via.DIRECT
    permission: str | None = None  # checked by the server on the target
    anonymous_ok: bool = False  # D11 may let an anonymous read through
    unscoped_only: str | None = None  # D5/D13: what needs an unscoped token
    rate: int = DEFAULT_RESOURCE_RATE
    listing: bool = False  # D18: lists carry no grant header

    @property
    def segments(self) -> tuple[str, ...]:
        """Path segments of the pattern."""
        return tuple(self.pattern.strip("/").split("/"))


def _storage_routes(prefix: str, kind: Kind) -> list[Route]:
    p = f"/v2/{prefix}"
    return [
        Route("GET", p, h.storages_list, listing=True),
        Route("POST", p, h.storage_create),
        Route("GET", p + "/{id}", h.storage_get, kind, permission=READ, anonymous_ok=True),
        Route("PUT", p + "/{id}", h.storage_update, kind, permission=WRITE),
        Route("DELETE", p + "/{id}", h.storage_delete, kind, permission=WRITE),
    ]


def _dataset_items(base: str, via: Via) -> list[Route]:
    k = Kind.DATASET
    anon = via in (Via.DIRECT, Via.RUN)  # D11: addressed by the storage's or run's ID
    return [
        Route("GET", base + "/items", h.dataset_items_get, k, via, READ, anonymous_ok=anon),
        Route("POST", base + "/items", h.dataset_items_post, k, via, WRITE, rate=_FAST),
    ]


def _kvs_content(base: str, via: Via) -> list[Route]:
    k = Kind.KEY_VALUE_STORE
    anon = via in (Via.DIRECT, Via.RUN)
    rec = base + "/records/{recordKey}"
    return [
        Route("GET", base + "/keys", h.kvs_keys, k, via, READ, anonymous_ok=anon),
        Route("GET", rec, h.record_get, k, via, READ, anonymous_ok=anon, rate=RECORDS_RATE),
        Route("PUT", rec, h.record_put, k, via, WRITE, rate=RECORDS_RATE),
        Route("POST", rec, h.record_put, k, via, WRITE, rate=RECORDS_RATE),
        Route("DELETE", rec, h.record_delete, k, via, WRITE, rate=RECORDS_RATE),
    ]


def _run_storages(base: str, via: Via) -> list[Route]:
    """A run's default storages under ``base`` (``/actor-runs/{id}``, ``.../runs/last``)."""
    anon = via is Via.RUN
    return [
        Route("GET", base + "/dataset", h.storage_get, Kind.DATASET, via, READ, anon),
        *_dataset_items(base + "/dataset", via),
        Route(
            "GET", base + "/key-value-store", h.storage_get, Kind.KEY_VALUE_STORE, via, READ, anon
        ),
        *_kvs_content(base + "/key-value-store", via),
        Route("GET", base + "/request-queue", h.storage_get, Kind.REQUEST_QUEUE, via, READ, anon),
    ]


def _actor_routes(prefix: str) -> list[Route]:
    a = Kind.ACTOR
    p = f"/v2/{prefix}"
    return [
        Route("GET", p, h.actors_list, listing=True),
        Route("POST", p, h.actor_create, unscoped_only="creating an Actor"),
        Route("GET", p + "/{id}", h.actor_get, a, permission=READ),
        Route("PUT", p + "/{id}", h.actor_update, a, unscoped_only="modifying an Actor"),
        Route("DELETE", p + "/{id}", h.actor_delete, a, unscoped_only="deleting an Actor"),
        Route("GET", p + "/{id}/runs", h.actor_runs_list, a, listing=True),
        Route(
            "POST", p + "/{id}/runs", h.actor_run_start, a, permission=RUN, rate=RUN_OR_PUSH_RATE
        ),
        Route("GET", p + "/{id}/runs/last", h.actor_last_run, a),
        *_run_storages(p + "/{id}/runs/last", Via.ACTOR_LAST_RUN),
    ]


def _build_table() -> list[Route]:
    t, r, s, w = Kind.TASK, Kind.RUN, Kind.SCHEDULE, Kind.WEBHOOK
    me = "the account and token API"
    routes: list[Route] = [
        Route("GET", "/v2/users/me", h.me_get, unscoped_only=me),
        Route("GET", "/v2/users/me/tokens", h.tokens_list, unscoped_only=me, listing=True),
        Route("POST", "/v2/users/me/tokens", h.token_create, unscoped_only=me),
        Route("GET", "/v2/users/me/tokens/{tokenId}", h.token_get, unscoped_only=me),
        Route("DELETE", "/v2/users/me/tokens/{tokenId}", h.token_delete, unscoped_only=me),
        *_actor_routes("acts"),
        *_actor_routes("actors"),
        Route("GET", "/v2/actor-tasks", h.tasks_list, listing=True),
        Route("POST", "/v2/actor-tasks", h.task_create),
        Route("GET", "/v2/actor-tasks/{id}", h.task_get, t, permission=READ),
        Route("PUT", "/v2/actor-tasks/{id}", h.task_update, t, permission=WRITE),
        Route("DELETE", "/v2/actor-tasks/{id}", h.task_delete, t, permission=WRITE),
        Route("GET", "/v2/actor-tasks/{id}/runs", h.task_runs_list, t, listing=True),
        Route(
            "POST",
            "/v2/actor-tasks/{id}/runs",
            h.task_run_start,
            t,
            permission=READ,
            rate=RUN_OR_PUSH_RATE,
        ),
        Route("GET", "/v2/actor-tasks/{id}/runs/last", h.task_last_run, t),
        *_run_storages("/v2/actor-tasks/{id}/runs/last", Via.TASK_LAST_RUN),
        Route("GET", "/v2/actor-runs", h.runs_list, listing=True),
        Route("GET", "/v2/actor-runs/{id}", h.run_get, r, permission=READ, anonymous_ok=True),
        Route("POST", "/v2/actor-runs/{id}/abort", h.run_abort, r, permission=RUN),
        Route("GET", "/v2/actor-runs/{id}/log", h.run_log, r, permission=READ, anonymous_ok=True),
        Route("GET", "/v2/logs/{id}", h.run_log, r, permission=READ, anonymous_ok=True),
        *_run_storages("/v2/actor-runs/{id}", Via.RUN),
        *_storage_routes("datasets", Kind.DATASET),
        *_dataset_items("/v2/datasets/{id}", Via.DIRECT),
        *_storage_routes("key-value-stores", Kind.KEY_VALUE_STORE),
        *_kvs_content("/v2/key-value-stores/{id}", Via.DIRECT),
        *_storage_routes("request-queues", Kind.REQUEST_QUEUE),
        Route("GET", "/v2/schedules", h.schedules_list, listing=True),
        Route("POST", "/v2/schedules", h.schedule_create),
        Route("GET", "/v2/schedules/{id}", h.schedule_get, s, permission=READ),
        Route("PUT", "/v2/schedules/{id}", h.schedule_update, s, permission=WRITE),
        Route("DELETE", "/v2/schedules/{id}", h.schedule_delete, s, permission=WRITE),
        Route("GET", "/v2/webhooks", h.webhooks_list, listing=True),
        Route("POST", "/v2/webhooks", h.webhook_create),
        Route("GET", "/v2/webhooks/{id}", h.webhook_get, w),
        Route("PUT", "/v2/webhooks/{id}", h.webhook_update, w),
        Route("DELETE", "/v2/webhooks/{id}", h.webhook_delete, w),
    ]
    return routes


ROUTES: tuple[Route, ...] = tuple(_build_table())


class RouteTable:
    """Matches (method, path) to a route and its path parameters."""

    def __init__(self, routes: tuple[Route, ...] | list[Route]) -> None:
        self._by_length: dict[int, list[tuple[tuple[str, ...], Route]]] = {}
        for route in routes:
            segs = route.segments
            self._by_length.setdefault(len(segs), []).append((segs, route))

    def match(
        self, method: str, segments: list[str]
    ) -> tuple[Route | None, dict[str, str], tuple[str, ...]]:
        """Match decoded path segments (of ``/v2/...``, leading empty segment included).

        Returns ``(route, params, allowed)`` where ``allowed`` lists the methods served on
        the path; no route with a non-empty ``allowed`` means 405, an empty one 404.
        """
        parts = segments[1:] if segments and segments[0] == "" else segments
        if parts and parts[-1] == "":
            parts = parts[:-1]  # a trailing slash
        allowed: list[str] = []
        for segs, route in self._by_length.get(len(parts), ()):
            params: dict[str, str] = {}
            for pattern_seg, seg in zip(segs, parts, strict=True):
                if pattern_seg.startswith("{"):
                    if not seg:
                        break
                    params[pattern_seg[1:-1]] = seg
                elif pattern_seg != seg:
                    break
            else:
                if route.method == method:
                    return route, params, (method,)
                allowed.append(route.method)
        return None, {}, tuple(sorted(set(allowed)))
