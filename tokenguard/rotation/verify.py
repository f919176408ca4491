"""Read-only probes that show a freshly issued token works before anyone relies on it.

The probes are derived from the token's scope: the token must authenticate, and a sample of
what the scope grants must answer 2xx. Only GETs are sent, so verifying a token can never
change anything on the platform.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import quote

from tokenguard.api.client import ApifyApi
from tokenguard.errors import ApiError
from tokenguard.permissions import AccountGroup, Permission, ResourceGrant, ResourceType, Scope
from tokenguard.secrets import Secret

#: Probes sent per token by default: one is enough to authenticate; a second samples
#: another kind of grant without turning verification into an audit (the audit does that).
DEFAULT_MAX_PROBES = 2

_RESOURCE_PATHS: Mapping[ResourceType, str] = {
    ResourceType.ACTOR: "/acts",
    ResourceType.TASK: "/actor-tasks",
    ResourceType.DATASET: "/datasets",
    ResourceType.KEY_VALUE_STORE: "/key-value-stores",
    ResourceType.REQUEST_QUEUE: "/request-queues",
    ResourceType.SCHEDULE: "/schedules",
}

_GROUP_LIST_PATHS: Mapping[AccountGroup, str] = {
    AccountGroup.ACTORS: "/acts",
    AccountGroup.TASKS: "/actor-tasks",
    AccountGroup.SCHEDULES: "/schedules",
    AccountGroup.STORAGES: "/datasets",
}

# Statuses worth retrying: the answer says nothing about the token itself.
_TRANSIENT = frozenset({0, 408, 429, 500, 502, 503, 504})


class ProbeVerdict(StrEnum):
    """How a verification ended."""

    OK = "ok"
    FAILED = "failed"  # the platform answered and the token does not do what the policy says
    TRANSIENT = "transient"  # no usable answer (network, 5xx, 429): try again later


@dataclass(frozen=True, slots=True)
class Probe:
    """One read-only request and the grant it samples."""

    path: str
    what: str
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of verifying one token; ``error`` names the failed probe."""

    verdict: ProbeVerdict
    calls: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when every probe answered 2xx."""
        return self.verdict is ProbeVerdict.OK


def _resource_probe(grant: ResourceGrant) -> Probe | None:
    perms = grant.permissions
    base = f"{_RESOURCE_PATHS[grant.type]}/{quote(grant.id, safe='~')}"
    label = f"{grant.type.value} {grant.id}"
    if grant.type is ResourceType.ACTOR:
        if Permission.READ in perms:
            return Probe(base, f"read on {label}")
        if Permission.RUN in perms:
            # Listing an Actor's runs needs read or run on it (D6): a read-only probe of "run".
            return Probe(base + "/runs", f"run on {label}", {"limit": "1"})
        return None
    if perms & {Permission.READ, Permission.WRITE}:  # write implies read (D3)
        return Probe(base, f"read on {label}")
    return None


def probes_for(scope: Scope, *, limit: int = DEFAULT_MAX_PROBES) -> tuple[Probe, ...]:
    """A sample of read-only probes for ``scope``, resource grants first, at most ``limit``.

    Every list endpoint answers 200 to any valid token (D2), so when the scope grants nothing
    that can be read, a list call still proves the token authenticates.
    """
    if scope.unscoped:
        return (Probe("/users/me", "unscoped access"),)
    probes: list[Probe] = []
    seen_types: set[ResourceType] = set()
    # One probe per resource type: a wider sample for the same number of calls.
    for grant in scope.resources:
        probe = _resource_probe(grant)
        if probe is not None and grant.type not in seen_types:
            seen_types.add(grant.type)
            probes.append(probe)
    for group in AccountGroup:
        perms = scope.account_permissions(group)
        if perms & {Permission.READ, Permission.WRITE, Permission.RUN}:
            probes.append(Probe(_GROUP_LIST_PATHS[group], f"account {group.value}", {"limit": "1"}))
    if not probes:
        probes.append(Probe("/datasets", "authentication", {"limit": "1"}))
    return tuple(probes[:limit])


def verify_token(
    api: ApifyApi,
    secret: Secret,
    scope: Scope,
    *,
    limit: int = DEFAULT_MAX_PROBES,
    retries: int = 2,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> VerifyResult:
    """Send the probes of ``scope`` with ``secret``; stop at the first that fails.

    401/403/404 are definitive (the token is dead, or its scope does not reach what the
    policy grants); network errors, 429 and 5xx are retried ``retries`` times with a doubling
    ``backoff`` and then reported as transient.
    """
    client = api.with_token(secret)
    calls = 0
    for probe in probes_for(scope, limit=limit):
        attempt = 0
        while True:
            calls += 1
            try:
                client.request("GET", probe.path, params=probe.params or None)
                break
            except ApiError as exc:
                if exc.status in _TRANSIENT:
                    if attempt < retries:
                        sleep(backoff * 2**attempt)
                        attempt += 1
                        continue
                    return VerifyResult(
                        ProbeVerdict.TRANSIENT,
                        calls,
                        f"probe of {probe.what} got no usable answer (HTTP {exc.status or 'none'})",
                    )
                kind = f" {exc.error_type}" if exc.error_type else ""
                return VerifyResult(
                    ProbeVerdict.FAILED,
                    calls,
                    f"probe of {probe.what} failed: HTTP {exc.status}{kind}",
                )
    return VerifyResult(ProbeVerdict.OK, calls)
