"""Unit tests of FailoverAuth's decisions on httpx.MockTransport (no sandbox needed)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tokenguard.errors import ExitCode, UsageError
from tokenguard.failover import (
    IDEMPOTENT,
    Backoff,
    EventKind,
    FailoverAuth,
    FailoverEvent,
    FailoverTransport,
    NoUsableToken,
    PoolToken,
    TokenHealth,
    TokenPool,
    failover_async_client,
    failover_client,
    set_testing,
    sleepless,
)
from tokenguard.secrets import Secret
from tokenguard.vault.records import TokenRecord, TokenStatus

A = Secret("apify_api_" + "A" * 36)
B = Secret("apify_api_" + "B" * 36)
C = Secret("apify_api_" + "C" * 36)
ALL = (A, B, C)
URL = "http://api.test/v2"


@pytest.fixture(autouse=True)
def _no_sleep() -> Iterator[None]:
    with sleepless():
        yield


def _error(status: int, etype: str, message: str = "") -> httpx.Response:
    return httpx.Response(status, json={"error": {"type": etype, "message": message or etype}})


@dataclass
class FakeApi:
    """A tiny Apify-like server: dead tokens get 401, scripted faults come first."""

    dead: set[str] = field(default_factory=set)
    faults: list[Callable[[httpx.Request], httpx.Response]] = field(default_factory=list)
    seen: list[tuple[str, str | None, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def token_of(self, request: httpx.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        return auth.removeprefix("Bearer ") or None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        token = self.token_of(request)
        with self.lock:
            self.seen.append((request.method, token, request.content))
            fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            return fault(request)
        if token is None:
            return _error(401, "token-not-provided")
        if token in self.dead:
            return _error(401, "user-or-token-not-found", f"token {token} is invalid")
        if request.url.path.endswith("/missing"):
            return _error(404, "record-not-found")
        return httpx.Response(200, json={"data": {"ok": True}})

    def tokens_used(self) -> list[str | None]:
        return [t for _, t, _ in self.seen]


def _client(api: FakeApi, pool: TokenPool, **kw: object) -> httpx.Client:
    return failover_client(pool, transport=httpx.MockTransport(api), base_url=URL, **kw)  # type: ignore[arg-type]


def test_401_marks_dead_and_resends_with_next_token() -> None:
    events: list[FailoverEvent] = []
    api = FakeApi(dead={A.reveal()})
    pool = TokenPool([A, B], on_event=events.append)
    with _client(api, pool) as client:
        assert client.get("/acts").status_code == 200
        assert client.get("/acts").status_code == 200
    assert api.tokens_used() == [A.reveal(), B.reveal(), B.reveal()]
    status = pool.status()
    assert status.get(A.fingerprint).health is TokenHealth.DEAD
    assert "401 user-or-token-not-found" in (status.get(A.fingerprint).reason or "")
    assert A.reveal() not in (status.get(A.fingerprint).reason or "")  # redacted
    assert status.get(B.fingerprint).health is TokenHealth.HEALTHY
    kinds = [e.kind for e in events]
    assert kinds == [EventKind.TOKEN_DEAD, EventKind.FAILOVER]
    assert events[1].fingerprint == A.fingerprint and events[1].next_fingerprint == B.fingerprint


def test_all_dead_raises_no_usable_token_naming_each_fingerprint() -> None:
    api = FakeApi(dead={A.reveal(), B.reveal()})
    pool = TokenPool([PoolToken(A, name="first"), B])
    with _client(api, pool) as client, pytest.raises(NoUsableToken) as info:
        client.get("/acts")
    err = info.value
    assert err.exit_code is ExitCode.API
    text = str(err)
    assert A.fingerprint in text and B.fingerprint in text and "(first)" in text
    assert "401" in text
    for secret in (A, B):
        assert secret.reveal() not in text
        assert secret.reveal() not in repr(pool)
    assert [fp for fp, _ in err.failures] == [f"{A.fingerprint} (first)", B.fingerprint]
    # Later requests fail fast without touching the API.
    before = len(api.seen)
    with _client(api, pool) as client, pytest.raises(NoUsableToken):
        client.get("/acts")
    assert len(api.seen) == before


def test_429_backs_off_on_the_same_token_honouring_retry_after() -> None:
    sleeps: list[float] = []
    events: list[FailoverEvent] = []
    api = FakeApi()
    api.faults = [
        lambda r: httpx.Response(
            429, headers={"Retry-After": "3"}, json={"error": {"type": "rate-limit-exceeded"}}
        ),
        lambda r: _error(429, "rate-limit-exceeded"),
        lambda r: _error(429, "rate-limit-exceeded"),
    ]
    pool = TokenPool([A, B], on_event=events.append)
    backoff = Backoff(sleep=sleeps.append)
    with _client(api, pool, backoff=backoff) as client:
        assert client.get("/acts").status_code == 200
    assert api.tokens_used() == [A.reveal()] * 4  # no token switch on 429
    assert sleeps[0] == 3.0
    assert 1.0 <= sleeps[1] <= 2.0  # 500 ms base, randomised, doubling per retry
    assert 2.0 <= sleeps[2] <= 4.0
    assert [e.kind for e in events] == [EventKind.COOLDOWN] * 3
    assert pool.status().get(A.fingerprint).health is TokenHealth.COOLING
    assert pool.status().get(B.fingerprint).requests == 0


def test_429_retries_are_bounded_and_the_last_answer_passes_through() -> None:
    api = FakeApi()
    api.faults = [lambda r: _error(429, "rate-limit-exceeded")] * 10
    pool = TokenPool([A, B])
    with _client(api, pool, backoff=Backoff(max_retries=2)) as client:
        response = client.get("/acts")
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "rate-limit-exceeded"
    assert api.tokens_used() == [A.reveal()] * 3


def test_5xx_retries_idempotent_requests_only() -> None:
    api = FakeApi()
    api.faults = [lambda r: _error(503, "server-error"), lambda r: _error(500, "server-error")]
    pool = TokenPool([A, B])
    with _client(api, pool) as client:
        assert client.get("/acts").status_code == 200
        assert len(api.seen) == 3
        # A POST that reached the server is not resent ...
        api.faults = [lambda r: _error(500, "server-error")]
        assert client.post("/acts/x/runs", content=b"{}").status_code == 500
        assert len(api.seen) == 4
        # ... unless the caller says it is idempotent.
        api.faults = [lambda r: _error(502, "server-error")]
        response = client.post("/acts/x/runs", content=b"{}", extensions={IDEMPOTENT: True})
        assert response.status_code == 200
        assert len(api.seen) == 6
    assert pool.status().get(B.fingerprint).requests == 0


def test_transport_errors_connect_is_retried_even_for_post_but_a_drop_is_not() -> None:
    api = FakeApi()

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def dropped(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected", request=request)

    pool = TokenPool([A])
    with _client(api, pool) as client:
        api.faults = [refused, refused]
        assert client.post("/datasets/d/items", content=b"[1]").status_code == 200
        assert [m for m, _, _ in api.seen] == ["POST"] * 3
        api.faults = [dropped]
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/datasets/d/items", content=b"[1]")
        assert len(api.seen) == 4
        api.faults = [dropped, dropped]
        assert client.get("/acts").status_code == 200
        assert len(api.seen) == 7
        api.faults = [dropped] * 20
        with (
            pytest.raises(httpx.RemoteProtocolError),
            failover_client(
                pool,
                transport=httpx.MockTransport(api),
                base_url=URL,
                backoff=Backoff(max_retries=3),
            ) as short,
        ):
            short.get("/acts")
    assert pool.status().get(A.fingerprint).in_flight == 0


@pytest.mark.parametrize(
    ("status", "etype"),
    [
        (400, "invalid-input"),
        (402, "not-enough-usage-to-run-paid-actor"),
        (404, "record-not-found"),
    ],
)
def test_errors_no_token_can_fix_pass_through_unretried(status: int, etype: str) -> None:
    api = FakeApi()
    api.faults = [lambda r: _error(status, etype)]
    pool = TokenPool([A, B])
    with _client(api, pool) as client:
        response = client.get("/acts/x")
    assert response.status_code == status
    assert response.json()["error"]["type"] == etype
    assert len(api.seen) == 1


def test_query_token_is_dropped_for_the_header_and_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="tokenguard.failover")
    caplog.set_level(logging.DEBUG, logger="httpx")
    api = FakeApi(dead={A.reveal()})
    pool = TokenPool([A, B])
    seen: list[tuple[str | None, str]] = []
    inner = httpx.MockTransport(api)

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.params.get("token"), request.headers["Authorization"]))
        return inner.handle_request(request)

    with failover_client(pool, transport=httpx.MockTransport(spy), base_url=URL) as client:
        response = client.get("/acts", params={"token": C.reveal(), "limit": 5})
    assert response.status_code == 200
    # The URL's token is dropped; each attempt carries the pool's token in the header.
    assert seen == [(None, f"Bearer {A.reveal()}"), (None, f"Bearer {B.reveal()}")]
    assert response.request.url.params["limit"] == "5"
    assert "token" not in response.request.url.params
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "HTTP Request: GET" in logged  # httpx logged the request lines
    for secret in ALL:
        assert secret.reveal() not in logged
    assert A.fingerprint in logged


def test_streamed_bodies_are_buffered_and_replayed() -> None:
    api = FakeApi(dead={A.reveal()})
    pool = TokenPool([A, B])

    def body() -> Iterator[bytes]:
        yield b'{"a":'
        yield b"1}"

    with _client(api, pool) as client:
        assert client.post("/datasets/d/items", content=body()).status_code == 200
    assert [c for _, _, c in api.seen] == [b'{"a":1}', b'{"a":1}']


def test_streamed_bodies_are_refused_when_buffering_is_off() -> None:
    api = FakeApi()
    auth = FailoverAuth(TokenPool([A]), buffer_streams=False)
    client = httpx.Client(auth=auth, transport=httpx.MockTransport(api))
    with client, pytest.raises(UsageError, match="stream"):
        client.post(URL + "/datasets/d/items", content=iter([b"x"]))
    assert api.seen == []


def test_in_flight_requests_on_a_dead_token_do_not_kill_the_next_one() -> None:
    n = 8
    barrier = threading.Barrier(n)
    api = FakeApi(dead={A.reveal()})
    real = api.__call__

    def handler(request: httpx.Request) -> httpx.Response:
        if api.token_of(request) == A.reveal():
            barrier.wait(timeout=10)  # all n requests are in flight on A together
        return real(request)

    pool = TokenPool([A, B, C])
    results: list[int] = []
    with failover_client(pool, transport=httpx.MockTransport(handler), base_url=URL) as client:
        threads = [
            threading.Thread(target=lambda: results.append(client.get("/acts").status_code))
            for _ in range(n)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [200] * n
    status = pool.status()
    a = status.get(A.fingerprint)
    assert a.in_flight_at_death == n
    assert a.hits_after_death == n - 1
    assert status.get(B.fingerprint).health is TokenHealth.HEALTHY
    assert status.get(C.fingerprint).requests == 0


def test_async_client_uses_the_same_flow_and_awaits_its_sleeps() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    api = FakeApi(dead={A.reveal()})
    api.faults = [
        lambda r: _error(401, "invalid-token"),
        lambda r: _error(429, "rate-limit-exceeded"),
    ]
    pool = TokenPool([A, B, C])

    async def main() -> list[int]:
        async with failover_async_client(
            pool,
            transport=httpx.MockTransport(api),
            base_url=URL,
            backoff=Backoff(async_sleep=fake_sleep),
        ) as client:
            return [(await client.get("/acts")).status_code for _ in range(3)]

    assert asyncio.run(main()) == [200, 200, 200]
    # A: fault 401 -> dead; B: 429 -> sleep, retry on B -> 200; then B serves the rest.
    assert api.tokens_used() == [A.reveal(), B.reveal(), B.reveal(), B.reveal(), B.reveal()]
    assert len(slept) == 1
    assert pool.status().get(A.fingerprint).health is TokenHealth.DEAD


def test_test_mode_skips_real_sleeps() -> None:
    api = FakeApi()
    api.faults = [lambda r: httpx.Response(429, headers={"Retry-After": "100"})]
    pool = TokenPool([A])
    with _client(api, pool) as client:
        assert client.get("/acts").status_code == 200  # would take 100 s without test mode


def test_set_testing_toggles() -> None:
    from tokenguard.failover import is_testing

    set_testing(False)
    assert not is_testing()
    set_testing(True)
    assert is_testing()


def test_transport_marker_only_with_failover_auth() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    transport = FailoverTransport(httpx.MockTransport(boom))
    response = transport.handle_request(httpx.Request("GET", URL))
    assert response.status_code == 599


class FakeVault:
    """Implements the VaultSource protocol over an in-memory list of records."""

    def __init__(self, records: list[TokenRecord]) -> None:
        self.records = records
        self.changed = False
        self.reloads = 0
        self.stats = 0

    def list(self) -> list[TokenRecord]:
        return list(self.records)

    def changed_on_disk(self) -> bool:
        self.stats += 1
        return self.changed

    def reload(self) -> bool:
        self.reloads += 1
        changed, self.changed = self.changed, False
        return changed


def _rec(name: str, secret: Secret, status: TokenStatus, policy: str = "p") -> TokenRecord:
    return TokenRecord(name=name, secret=secret, status=status, policy=policy)


def test_from_vault_orders_active_then_retiring_and_skips_the_rest() -> None:
    d = Secret("apify_api_" + "D" * 36)
    vault = FakeVault(
        [
            _rec("p.1", A, TokenStatus.RETIRING),
            _rec("p.2", B, TokenStatus.ACTIVE),
            _rec("p.3", C, TokenStatus.PENDING),
            _rec("p.0", d, TokenStatus.REVOKED),
            _rec("q.1", Secret("apify_api_" + "E" * 36), TokenStatus.ACTIVE, policy="q"),
        ]
    )
    pool = TokenPool.from_vault(vault, policy="p")
    assert [t.fingerprint for t in pool.status().tokens] == [B.fingerprint, A.fingerprint]
    assert [t.name for t in pool.status().tokens] == ["p.2", "p.1"]


def test_hot_reload_picks_up_a_rotated_token_without_restart() -> None:
    vault = FakeVault([_rec("p.1", A, TokenStatus.ACTIVE)])
    api = FakeApi()
    pool = TokenPool.from_vault(vault, policy="p")
    with _client(api, pool) as client:
        assert client.get("/acts").status_code == 200
        # Rotation: B becomes active, A retiring; then A is revoked on the platform.
        vault.records = [_rec("p.1", A, TokenStatus.RETIRING), _rec("p.2", B, TokenStatus.ACTIVE)]
        vault.changed = True
        assert client.get("/acts").status_code == 200
        assert api.tokens_used()[-1] == B.reveal()
        # A further rotation lands while B dies: the next 401 finds the new token.
        api.dead.add(B.reveal())
        api.dead.add(A.reveal())
        vault.records = [_rec("p.3", C, TokenStatus.ACTIVE)]
        vault.changed = True
        assert client.get("/acts").status_code == 200
    assert api.tokens_used()[-1] == C.reveal()
    assert vault.reloads == 2
    assert [t.fingerprint for t in pool.status().tokens] == [C.fingerprint]


def test_listener_errors_do_not_break_requests(caplog: pytest.LogCaptureFixture) -> None:
    def bad(event: FailoverEvent) -> None:
        raise RuntimeError("listener bug")

    api = FakeApi(dead={A.reveal()})
    pool = TokenPool([A, B], on_event=bad)
    with _client(api, pool) as client:
        assert client.get("/acts").status_code == 200
    assert any("listener" in r.getMessage() for r in caplog.records)


def test_pool_refuses_plain_strings() -> None:
    with pytest.raises(UsageError):
        TokenPool([A.reveal()])  # type: ignore[list-item]


def test_event_records_carry_fingerprints_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tokenguard.failover")
    api = FakeApi(dead={A.reveal()})
    pool = TokenPool([A, B])
    with _client(api, pool) as client:
        client.get("/acts")
    records = [r for r in caplog.records if r.name == "tokenguard.failover"]
    assert records
    dumped = json.dumps([r.getMessage() for r in records])
    assert A.fingerprint in dumped
    for secret in ALL:
        assert secret.reveal() not in dumped
    assert all(isinstance(getattr(r, "tokenguard_event", None), FailoverEvent) for r in records)


def test_dead_reason_mentions_a_recorded_expiry() -> None:
    from datetime import UTC, datetime, timedelta

    api = FakeApi(dead={A.reveal()})
    expired = PoolToken(A, name="old", expires_at=datetime.now(UTC) - timedelta(hours=1))
    pool = TokenPool([expired, B])
    with _client(api, pool) as client:
        assert client.get("/acts").status_code == 200
    reason = pool.status().get(A.fingerprint).reason or ""
    assert "401" in reason and "expired at" in reason


def test_backoff_timing_and_retry_after_forms() -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from tokenguard.failover.backoff import parse_retry_after

    backoff = Backoff(max_delay=5.0)
    for retry, low, high in [(1, 0.5, 1.0), (2, 1.0, 2.0), (3, 2.0, 4.0), (9, 5.0, 5.0)]:
        delay = backoff.delay(retry)
        assert low <= delay <= high, (retry, delay)
    assert backoff.delay_for(1, "7") == 7.0
    assert backoff.delay_for(1, "1000") == backoff.max_retry_after
    assert 0.5 <= backoff.delay_for(1, "soon") <= 1.0  # invalid header: normal backoff
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    seconds = parse_retry_after(when)
    assert seconds is not None and 25 <= seconds <= 31
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("nan") is None
