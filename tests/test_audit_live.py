"""Live probes: read-only by default (counted server-side), backoff on 429 without sleeping,
the non-read guard, write probes only on request, and the rate budget's pacing."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tokenguard.api.client import ApifyApi
from tokenguard.audit import analyze, audit, build_inventory
from tokenguard.audit.inventory import HeldToken
from tokenguard.audit.live import (
    LiveConfig,
    ProbeGuardError,
    RateBudget,
    ReadOnlyGuard,
    live_verify,
)
from tokenguard.audit.report import TokenSource
from tokenguard.permissions import Permission
from tokenguard.sandbox.testing import SandboxHandle

HELD = ("scraper-runner", "storage-reader", "task-manager", "seo-readonly", "no-permissions")


def _held(sb: SandboxHandle) -> list[HeldToken]:
    return [HeldToken(f"file:{n}", TokenSource.FILE, sb.token(n)) for n in HELD]


def _methods(api: ApifyApi) -> Counter[str]:
    stats = api.get_data("/_sandbox/stats")
    out: Counter[str] = Counter()
    for item in stats["items"]:
        out[item["method"]] += item["count"]
    return out


@pytest.fixture
def admin(sandbox: SandboxHandle) -> Iterator[ApifyApi]:
    api = ApifyApi(sandbox.url, sandbox.admin_token)
    yield api
    api.close()


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def test_live_audit_sends_only_reads(sandbox: SandboxHandle, admin: ApifyApi) -> None:
    admin.request("DELETE", "/_sandbox/stats")
    report = audit(admin, held=_held(sandbox), live=True, max_rps=1000)
    methods = _methods(admin)
    assert set(methods) == {"GET"}, methods
    assert report.live is not None
    assert report.live.probes == len(HELD) * len(report.resources)
    assert report.live.mismatches == 0
    assert all(p.method == "GET" for p in report.probes)


def test_write_probes_only_with_the_flag(sandbox: SandboxHandle, admin: ApifyApi) -> None:
    before = {r["id"]: r["name"] for r in admin.iter_list("/datasets", unnamed=1)}
    admin.request("DELETE", "/_sandbox/stats")
    report = audit(admin, held=_held(sandbox), live=True, max_rps=1000, probe_writes=True)
    methods = _methods(admin)
    assert set(methods) == {"GET", "PUT"}
    writes = [p for p in report.probes if p.permission is Permission.WRITE]
    assert writes and {p.status for p in writes} <= {400, 403}
    assert report.live is not None and report.live.mismatches == 0
    after = {r["id"]: r["name"] for r in admin.iter_list("/datasets", unnamed=1)}
    assert after == before  # the invalid bodies changed nothing


def test_backs_off_on_429_without_sleeping(sandbox: SandboxHandle, admin: ApifyApi) -> None:
    inventory = build_inventory(admin, held=_held(sandbox)[:1])
    report = analyze(inventory)
    admin.request("POST", "/_sandbox/faults", json={"status": 429, "count": 5})
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    config = LiveConfig(sandbox.url, max_rps=1000, concurrency=1, sleep=fake_sleep)
    live = asyncio.run(live_verify(report, inventory, config))
    assert live.live is not None
    assert live.live.retries == 5
    assert live.live.mismatches == 0
    assert live.live.requests == live.live.probes + 5
    # Five consecutive 429s on one probe: backoff from 0.5 s, doubling, randomised x0.5-1.5,
    # so at least 0.25+0.5+1+2+4 s in total and one wait of 4 s or more (never really slept).
    assert sum(slept) >= 7.75
    assert max(slept) >= 4.0


def test_guard_refuses_non_read_requests(sandbox: SandboxHandle) -> None:
    async def go() -> None:
        guard = ReadOnlyGuard(httpx.AsyncHTTPTransport(), allow_writes=False)
        async with httpx.AsyncClient(transport=guard) as client:
            await client.post(sandbox.url + "/v2/datasets")

    with pytest.raises(ProbeGuardError):
        asyncio.run(go())


def test_guard_aborts_when_a_write_succeeds(sandbox: SandboxHandle) -> None:
    dataset = sandbox.resource_id("dataset", "products")
    secret = sandbox.admin_token.reveal()

    async def go() -> None:
        guard = ReadOnlyGuard(httpx.AsyncHTTPTransport(), allow_writes=True)
        async with httpx.AsyncClient(transport=guard) as client:
            await client.put(
                f"{sandbox.url}/v2/datasets/{dataset}",
                json={},
                headers={"Authorization": f"Bearer {secret}"},
            )

    with pytest.raises(ProbeGuardError) as info:
        asyncio.run(go())
    assert secret not in str(info.value)


def test_rate_budget_spaces_requests_evenly() -> None:
    now = [100.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    budget = RateBudget(10.0, lambda: now[0], sleep)

    async def go() -> None:
        for _ in range(5):
            await budget.acquire()

    asyncio.run(go())
    assert waits == pytest.approx([0.1, 0.2, 0.3, 0.4])
    budget.penalise(1.0)
    asyncio.run(go())
    assert waits[4] == pytest.approx(1.5)


def test_unreachable_api_during_probes(sandbox: SandboxHandle, admin: ApifyApi) -> None:
    from tokenguard.errors import ApiUnreachableError

    inventory = build_inventory(admin, held=_held(sandbox)[:1])
    report = analyze(inventory)
    config = LiveConfig("http://127.0.0.1:9", max_rps=1000)
    with pytest.raises(ApiUnreachableError):
        asyncio.run(live_verify(report, inventory, config))


def test_audit_stops_sending_once_a_write_probe_succeeds(
    sandbox: SandboxHandle, admin: ApifyApi
) -> None:
    """A server that accepts a write probe: the audit aborts and nothing more is sent."""
    inventory = build_inventory(admin, held=_held(sandbox)[:3])
    report = analyze(inventory)
    seen: list[str] = []

    async def accepting(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        await asyncio.sleep(0)  # let the other workers interleave
        return httpx.Response(200, json={"data": {}})

    config = LiveConfig(
        sandbox.url,
        max_rps=1000,
        probe_writes=True,
        sleep=_no_sleep,
        transport=httpx.MockTransport(accepting),
    )
    with pytest.raises(ProbeGuardError, match="succeeded"):
        asyncio.run(live_verify(report, inventory, config))
    assert "PUT" in seen
    first_put = seen.index("PUT")
    # Requests already in flight when the write came back may finish; none starts after.
    assert len(seen) <= first_put + config.concurrency
    assert seen.count("PUT") <= config.concurrency


def test_probes_without_a_verdict_are_reported(sandbox: SandboxHandle, admin: ApifyApi) -> None:
    inventory = build_inventory(admin, held=_held(sandbox)[:1])
    report = analyze(inventory)
    # One probe meets more 503s than its retries: it gives up without a verdict.
    admin.request("POST", "/_sandbox/faults", json={"status": 503, "count": 3})
    config = LiveConfig(sandbox.url, max_rps=1000, concurrency=1, max_retries=2, sleep=_no_sleep)
    live = asyncio.run(live_verify(report, inventory, config))
    assert live.live is not None
    assert len(live.probes) == live.live.probes - 1
    assert any("1 probes gave no verdict (HTTP 503: 1)" in n for n in live.notes), live.notes
