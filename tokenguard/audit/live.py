"""Live verification: probe with each held token and compare with the static prediction.

Probes are read-only (GET) unless ``probe_writes`` is set. They run concurrently on one
``httpx.AsyncClient`` under a global request budget (``max_rps``, paced evenly so bursts never
trip the platform's limits), back off exponentially with jitter on 429, and go through a guard
transport that (a) refuses to send any non-read request unless write probes were asked for and
(b) aborts the audit if any non-read request ever succeeds.

Write probes (``--probe-writes``) are a risk of their own: they send ``PUT`` to storages with a
deliberately invalid body (``{"name": 0}``) so that an authorised token gets 400 and an
unauthorised one 403, and nothing is changed. If the server ever accepts one (2xx), the guard
aborts at once.
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace

import httpx

from tokenguard.audit.checks import dead_token_finding
from tokenguard.audit.findings import Finding, FindingKind, make_finding, sort_findings
from tokenguard.audit.inventory import Inventory, InventoryToken
from tokenguard.audit.report import AuditMode, AuditReport, LiveStats, ProbeResult
from tokenguard.errors import ApiUnreachableError, ExitCode, TokenGuardError
from tokenguard.permissions import GROUP_OF, STORAGE_KINDS, Permission, ResourceKind
from tokenguard.secrets import Secret

READ_METHODS = frozenset({"GET", "HEAD"})

#: Item path of each kind (API v2), for read probes.
ITEM_PATHS: dict[ResourceKind, str] = {
    ResourceKind.ACTOR: "/actors/",
    ResourceKind.TASK: "/actor-tasks/",
    ResourceKind.DATASET: "/datasets/",
    ResourceKind.KEY_VALUE_STORE: "/key-value-stores/",
    ResourceKind.REQUEST_QUEUE: "/request-queues/",
    ResourceKind.SCHEDULE: "/schedules/",
    ResourceKind.WEBHOOK: "/webhooks/",
    ResourceKind.RUN: "/actor-runs/",
}

Sleep = Callable[[float], Awaitable[None]]


class ProbeGuardError(TokenGuardError):
    """A probe broke the read-only guarantee: the audit stops (exit 4)."""

    exit_code = ExitCode.API


@dataclass(frozen=True, slots=True)
class LiveConfig:
    """How to probe. ``sleep`` and ``clock`` are injectable so tests never wait."""

    base_url: str
    max_rps: float = 20.0
    probe_writes: bool = False
    # A few requests in flight already saturate the budget (rate x latency); more only add
    # httpx connection-pool overhead (measured: 8 keeps 95% of 400 req/s, 16 drops to 80%).
    concurrency: int = 8
    timeout: float = 30.0
    max_retries: int = 8
    backoff_base: float = 0.5
    sleep: Sleep = field(default=asyncio.sleep)
    clock: Callable[[], float] = field(default=time.monotonic)
    transport: httpx.AsyncBaseTransport | None = None


class RateBudget:
    """Spaces requests evenly at ``rate`` per second across all workers."""

    def __init__(self, rate: float, clock: Callable[[], float], sleep: Sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0

    async def acquire(self) -> None:
        """Wait for the next slot (no await between reading and moving the slot)."""
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await self._sleep(slot - now)

    def penalise(self, seconds: float) -> None:
        """Push every later slot back (after a 429 the whole budget slows down)."""
        self._next = max(self._next, self._clock()) + seconds


class ReadOnlyGuard(httpx.AsyncBaseTransport):
    """Refuses non-read requests unless allowed; aborts if one ever succeeds."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, allow_writes: bool) -> None:
        self._inner = inner
        self._allow_writes = allow_writes
        self.sent: dict[str, int] = {}
        # Set when a write succeeded: from then on nothing else is sent, whatever asks.
        self.tripped: ProbeGuardError | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.tripped is not None:
            raise self.tripped
        method = request.method.upper()
        if method not in READ_METHODS and not self._allow_writes:
            raise ProbeGuardError(
                f"Refused to send {method} {request.url.path}: live probes are read-only",
                hint="Write probes need --probe-writes (read its documentation first).",
            )
        self.sent[method] = self.sent.get(method, 0) + 1
        response = await self._inner.handle_async_request(request)
        if method not in READ_METHODS and 200 <= response.status_code < 300:
            await response.aclose()
            self.tripped = ProbeGuardError(
                f"A write probe ({method} {request.url.path}) succeeded (HTTP "
                f"{response.status_code}): the audit was stopped so nothing else changes",
                hint="Check the resource; write probes rely on the API rejecting invalid "
                "bodies after the permission check.",
            )
            raise self.tripped
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass(frozen=True, slots=True)
class _Probe:
    token: InventoryToken
    secret: Secret
    resource_key: str
    kind: ResourceKind
    rid: str
    permission: Permission
    predicted: bool

    @property
    def method(self) -> str:
        return "GET" if self.permission is Permission.READ else "PUT"


@dataclass(slots=True)
class _Counters:
    requests: int = 0
    retries: int = 0
    done: int = 0
    dead: dict[str, int] = field(default_factory=dict)


def plan_probes(report: AuditReport, inventory: Inventory, *, probe_writes: bool) -> list[_Probe]:
    """One read probe per held token x resource (and a write probe per storage if asked)."""
    reach = {r.token: r for r in report.reach}
    probes: list[_Probe] = []
    for token in inventory.tokens:
        if token.secret is None:
            continue
        tr = reach.get(token.entry.key)
        for res in report.resources:
            grants = tr.grants_on(res) if tr is not None else ()
            held = {g.permission for g in grants}
            perms: tuple[Permission, ...] = (Permission.READ,)
            if probe_writes and res.kind in STORAGE_KINDS:
                perms = (Permission.READ, Permission.WRITE)
            probes.extend(
                _Probe(token, token.secret, res.key, res.kind, res.id, perm, perm in held)
                for perm in perms
            )
    return probes


async def _send(
    client: httpx.AsyncClient,
    probe: _Probe,
    budget: RateBudget,
    config: LiveConfig,
    counters: _Counters,
) -> int:
    url = config.base_url.rstrip("/")
    root = url if url.endswith("/v2") else url + "/v2"
    path = ITEM_PATHS[probe.kind] + probe.rid
    headers = {"Authorization": f"Bearer {probe.secret.reveal()}"}
    for attempt in range(config.max_retries + 1):
        await budget.acquire()
        counters.requests += 1
        try:
            if probe.method == "GET":
                response = await client.get(root + path, headers=headers)
            else:
                response = await client.put(root + path, headers=headers, json={"name": 0})
        except httpx.HTTPError:
            raise ApiUnreachableError(
                f"Live probes could not reach the API at {config.base_url}",
                hint="Check --api-url and that the server is running.",
            ) from None
        status = response.status_code
        if status != 429 and status < 500:
            return status
        if attempt == config.max_retries:
            return status
        counters.retries += 1
        retry_after = response.headers.get("Retry-After")
        try:
            delay = float(retry_after) if retry_after else 0.0
        except ValueError:
            delay = 0.0
        # Apify's clients back off from 500 ms, doubling, randomised (DESIGN §1).
        delay = max(delay, config.backoff_base * (2**attempt) * random.uniform(0.5, 1.5))
        if status == 429:
            budget.penalise(delay / 2)
        await config.sleep(delay)
    raise AssertionError("unreachable")


def _cache_missing_sniffio() -> None:
    """Make httpcore's failing ``import sniffio`` instant when sniffio is not installed.

    httpcore runs ``import sniffio`` for every async lock it creates (several per request).
    Without sniffio installed, each of those imports searches ``sys.path`` again and fails:
    measured, a quarter to a third of a probe's client-side time. A ``None`` entry in
    ``sys.modules`` is Python's documented way to make an import fail at once; httpcore then
    assumes asyncio, exactly as it does after the slow failure.
    """
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


async def run_probes(
    probes: list[_Probe],
    config: LiveConfig,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[tuple[_Probe, int]], _Counters, float, dict[str, int]]:
    """Send every probe; return (probe, status) pairs, counters, seconds and methods sent."""
    _cache_missing_sniffio()
    inner = config.transport or httpx.AsyncHTTPTransport(retries=0)
    guard = ReadOnlyGuard(inner, allow_writes=config.probe_writes)
    budget = RateBudget(config.max_rps, config.clock, config.sleep)
    counters = _Counters()
    results: list[tuple[_Probe, int]] = []
    it: Iterator[_Probe] = iter(probes)
    total = len(probes)
    limits = httpx.Limits(
        max_connections=config.concurrency, max_keepalive_connections=config.concurrency
    )

    async def worker(client: httpx.AsyncClient) -> None:
        for probe in it:
            key = probe.token.entry.key
            if key in counters.dead:
                continue  # the token is dead: no point probing it further
            status = await _send(client, probe, budget, config, counters)
            if status == 401:
                counters.dead.setdefault(key, status)
            results.append((probe, status))
            counters.done += 1
            if progress is not None:
                progress(counters.done, total)

    started = config.clock()
    async with httpx.AsyncClient(transport=guard, timeout=config.timeout, limits=limits) as client:
        # A task group, not gather: when one worker fails (the guard tripped, the API went
        # away) the others are cancelled at once instead of sending on in the background.
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(max(1, config.concurrency)):
                    group.create_task(worker(client))
        except BaseExceptionGroup as failed:
            raise _first_error(failed) from None
    seconds = config.clock() - started
    return results, counters, seconds, dict(guard.sent)


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report from failed workers: a tokenguard error (guard, API) first."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            leaves.append(exc)
    for exc in leaves:
        if isinstance(exc, TokenGuardError):
            return exc
    return leaves[0]


def _allowed(status: int) -> bool | None:
    if 200 <= status < 300:
        return True
    if status == 400:
        return True  # a write probe got past the permission check to body validation
    if status == 403:
        return False
    return None  # 401 (dead token), 404 (gone meanwhile), 429/5xx (gave up): no verdict


async def live_verify(
    report: AuditReport,
    inventory: Inventory,
    config: LiveConfig,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    """Probe, compare with the static prediction and add the differences as findings."""
    probes = plan_probes(report, inventory, probe_writes=config.probe_writes)
    results, counters, seconds, _sent = await run_probes(probes, config, progress=progress)
    out: list[ProbeResult] = []
    findings: list[Finding] = []
    mismatches = 0
    unverified: dict[int, int] = {}  # status -> probes that gave no verdict (401 aside)
    for probe, status in sorted(
        results, key=lambda ps: (ps[0].token.entry.key, ps[0].resource_key, ps[0].permission.value)
    ):
        allowed = _allowed(status)
        if allowed is None:
            if status != 401:
                unverified[status] = unverified.get(status, 0) + 1
            continue
        result = ProbeResult(
            token=probe.token.entry.key,
            resource=probe.resource_key,
            permission=probe.permission,
            method=probe.method,
            status=status,
            predicted=probe.predicted,
            allowed=allowed,
        )
        out.append(result)
        if probe.token.entry.scope is None or result.agrees:
            continue
        mismatches += 1
        name = probe.token.entry.name
        said = "allowed" if probe.predicted else "denied"
        got = "allowed" if allowed else "denied"
        hint = ""
        scope = probe.token.entry.scope
        group = probe.kind.resource_type
        if (
            allowed
            and group is not None
            and Permission.CREATE in scope.account_permissions(GROUP_OF[group])
        ):
            hint = (
                " It may have created the resource (tokens hold full access to what they create)."
            )
        findings.append(
            make_finding(
                FindingKind.LIVE_DRIFT,
                f"Token {name}: {probe.permission.value} on {probe.resource_key} is {got} by "
                f"the API (HTTP {status}) but its declared scope says {said}.{hint}",
                token=probe.token.entry.key,
                resource=probe.resource_key,
                identity=(probe.permission.value, said),
                path=(
                    f"token {name}",
                    f"declared: {probe.permission.value} {said}",
                    f"effective: {probe.method} {probe.resource_key} -> HTTP {status}",
                ),
            )
        )
    known_dead = {f.token for f in report.findings if f.kind is FindingKind.DEAD_TOKEN}
    for token in inventory.tokens:
        key = token.entry.key
        if key in counters.dead and key not in known_dead:
            expired = (
                token.entry.expires_at is not None and token.entry.expires_at <= report.generated_at
            )
            if token.record is not None and not expired:
                findings.append(dead_token_finding(token, counters.dead[key]))
    held = sum(1 for t in inventory.tokens if t.secret is not None)
    notes = report.notes
    unknown: dict[str, int] = {}
    scope_unknown = {t.entry.key for t in inventory.tokens if t.entry.scope is None}
    for r in out:
        if r.token in scope_unknown and r.allowed:
            unknown[r.token] = unknown.get(r.token, 0) + 1
    notes = (
        *notes,
        *(
            f"live: token {key} (scope unknown) could read {n} resources when probed"
            for key, n in sorted(unknown.items())
        ),
    )
    if unverified:
        # Not silently dropped: an unverified claim is not a verified one.
        statuses = ", ".join(f"HTTP {code}: {n}" for code, n in sorted(unverified.items()))
        notes = (
            *notes,
            f"live: {sum(unverified.values())} probes gave no verdict ({statuses}); "
            "their static claims are unverified (re-run, or lower --max-rps after 429s)",
        )
    if held:
        notes = (
            *notes,
            f"live: {len(probes)} probes planned for {held} held tokens "
            f"({len(probes) / held:.1f} per token)",
        )
    return replace(
        report,
        mode=AuditMode.LIVE,
        probes=tuple(out),
        live=LiveStats(
            probes=len(results),
            requests=counters.requests,
            retries=counters.retries,
            seconds=seconds,
            max_rps=config.max_rps,
            mismatches=mismatches,
        ),
        findings=sort_findings((*report.findings, *findings)),
        notes=notes,
    )
