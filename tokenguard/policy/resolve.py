"""Resolving policy resource references against the account, through the API.

The token API stores resource IDs (D16), so a plan resolves every ``username~name`` (and
checks every ID) before anything is created: a reference to a resource that does not exist
is a policy error at plan time, not a half-applied plan. Tasks and schedules are read to
learn which Actor (or task) they use, for the dependency notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenguard.api.client import ApifyApi
from tokenguard.errors import ApiError
from tokenguard.permissions import ResourceType

#: API collection of each resource type (Apify API v2).
COLLECTION: dict[ResourceType, str] = {
    ResourceType.ACTOR: "acts",
    ResourceType.TASK: "actor-tasks",
    ResourceType.DATASET: "datasets",
    ResourceType.KEY_VALUE_STORE: "key-value-stores",
    ResourceType.REQUEST_QUEUE: "request-queues",
    ResourceType.SCHEDULE: "schedules",
}


@dataclass(frozen=True, slots=True)
class ResolvedResource:
    """A resource as the account knows it.

    ``actor_id`` is a task's Actor; ``triggers`` are a schedule's actions as
    ``(type, id)`` pairs (an Actor it runs, or a task it runs).
    """

    type: ResourceType
    ref: str
    id: str
    name: str | None = None
    actor_id: str | None = None
    triggers: tuple[tuple[ResourceType, str], ...] = ()


class ResourceResolver:
    """Looks resources up by ID or ``username~name`` with a management token; caches answers."""

    def __init__(self, api: ApifyApi) -> None:
        self.api = api
        self._cache: dict[tuple[ResourceType, str], ResolvedResource | None] = {}

    def __repr__(self) -> str:
        return f"ResourceResolver({self.api!r})"

    def resolve(self, rtype: ResourceType, ref: str) -> ResolvedResource | None:
        """The resource ``ref`` of type ``rtype``, or None when it does not exist (404)."""
        key = (rtype, ref)
        if key not in self._cache:
            self._cache[key] = self._fetch(rtype, ref)
        return self._cache[key]

    def _fetch(self, rtype: ResourceType, ref: str) -> ResolvedResource | None:
        try:
            data: dict[str, Any] = self.api.get_data(f"/{COLLECTION[rtype]}/{ref}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        resolved = ResolvedResource(
            type=rtype,
            ref=ref,
            id=str(data["id"]),
            name=data.get("name"),
            actor_id=str(data["actId"])
            if rtype is ResourceType.TASK and data.get("actId")
            else None,
            triggers=_triggers(data) if rtype is ResourceType.SCHEDULE else (),
        )
        # Cache under the ID too, so a policy naming the same resource both ways hits once.
        self._cache.setdefault((rtype, resolved.id), resolved)
        return resolved


def _triggers(data: dict[str, Any]) -> tuple[tuple[ResourceType, str], ...]:
    out: list[tuple[ResourceType, str]] = []
    for action in data.get("actions") or []:
        if not isinstance(action, dict):
            continue
        if action.get("type") == "RUN_ACTOR" and action.get("actorId"):
            out.append((ResourceType.ACTOR, str(action["actorId"])))
        elif action.get("type") == "RUN_ACTOR_TASK" and action.get("actorTaskId"):
            out.append((ResourceType.TASK, str(action["actorTaskId"])))
    return tuple(out)
