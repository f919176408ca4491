"""Test controls (clock, faults, settings, stats) and rate limits."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tokenguard.sandbox.testing import SandboxHandle, running_sandbox


@pytest.fixture
def admin(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sandbox.api_url,
        headers={"Authorization": f"Bearer {sandbox.admin_token.reveal()}"},
    ) as client:
        yield client


def test_controls_are_admin_only(sandbox: SandboxHandle, admin: httpx.Client) -> None:
    url = sandbox.api_url + "/_sandbox/stats"
    assert httpx.get(url).status_code == 401
    other = sandbox.token("ops-unscoped")  # unscoped, but not the admin token
    r = httpx.get(url, headers={"Authorization": f"Bearer {other.reveal()}"})
    assert r.status_code == 403 and r.json()["error"]["type"] == "insufficient-permissions"
    assert admin.get("/_sandbox/stats").status_code == 200


def test_clock_moves_expiry(sandbox: SandboxHandle, admin: httpx.Client) -> None:
    before = admin.get("/_sandbox/clock").json()["data"]["now"]
    token = admin.post(
        "/users/me/tokens", json={"name": "hour", "expiresAt": "2100-01-01T00:00:00Z"}
    ).json()["data"]
    headers = {"Authorization": f"Bearer {token['token']}"}
    assert httpx.get(sandbox.api_url + "/users/me", headers=headers).status_code == 200
    r = admin.post("/_sandbox/clock", json={"advanceSeconds": 100 * 365 * 86400})
    assert r.status_code == 200 and r.json()["data"]["now"] > before
    assert httpx.get(sandbox.api_url + "/users/me", headers=headers).status_code == 401
    # New resources are stamped with the sandbox clock.
    created = admin.post("/datasets", params={"name": "later"}).json()["data"]["createdAt"]
    assert created >= "2100-01-01"


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (500, "internal-server-error"),
        (502, "internal-server-error"),
        (429, "rate-limit-exceeded"),
        (401, "user-or-token-not-found"),
    ],
)
def test_status_faults(admin: httpx.Client, status: int, error_type: str) -> None:
    assert admin.post("/_sandbox/faults", json={"status": status, "count": 2}).status_code == 200
    for _ in range(2):
        r = admin.get("/acts")
        assert r.status_code == status and r.json()["error"]["type"] == error_type
        if status == 429:
            assert r.headers["X-RateLimit-Limit"]
    # Controls are not consumed by faults, and the third request is normal again.
    assert admin.get("/_sandbox/faults").json()["data"]["pending"] == []
    assert admin.get("/acts").status_code == 200


def test_latency_and_drop_faults(admin: httpx.Client) -> None:
    pending = admin.post("/_sandbox/faults", json={"kind": "latency", "ms": 20, "count": 1})
    assert pending.json()["data"]["pending"] == [{"kind": "latency", "ms": 20, "count": 1}]
    # A delayed request still succeeds, and it used the fault up (no timing assertions).
    assert admin.get("/acts").status_code == 200
    assert admin.get("/_sandbox/faults").json()["data"]["pending"] == []
    admin.post("/_sandbox/faults", json={"kind": "drop", "count": 1})
    with pytest.raises(httpx.TransportError):
        admin.get("/acts")
    assert admin.get("/acts").status_code == 200
    admin.post("/_sandbox/faults", json={"status": 500, "count": 5})
    assert admin.delete("/_sandbox/faults").json()["data"]["pending"] == []
    assert admin.get("/acts").status_code == 200


def test_stats_count_by_method_route_and_status(admin: httpx.Client) -> None:
    admin.delete("/_sandbox/stats")
    admin.get("/acts/demo~web-scraper")
    admin.get("/actors/demo~pdf-export")
    admin.get("/acts/demo~nope")
    admin.get("/nope")
    stats = admin.get("/_sandbox/stats").json()["data"]
    counts = {(i["method"], i["route"], i["status"]): i["count"] for i in stats["items"]}
    assert counts == {
        ("GET", "/v2/acts/{id}", 200): 1,
        ("GET", "/v2/acts/{id}", 404): 1,
        ("GET", "/v2/actors/{id}", 200): 1,
        ("GET", "<unknown>", 404): 1,
    }
    assert stats["total"] == 4


def test_settings_roundtrip(admin: httpx.Client) -> None:
    assert admin.get("/_sandbox/settings").json()["data"] == {"generalResourceAccess": "RESTRICTED"}
    r = admin.put("/_sandbox/settings", json={"generalResourceAccess": "ANYONE_WITH_ID_CAN_READ"})
    assert r.json()["data"]["generalResourceAccess"] == "ANYONE_WITH_ID_CAN_READ"


def _freeze_limiter(sb: SandboxHandle) -> None:
    """Stop token-bucket refills so limits trip deterministically (no racing real time)."""

    def freeze(_: object) -> None:
        limiter = sb.server.app.limiter
        frozen = limiter.clock()
        limiter.clock = lambda: frozen

    sb.on_loop(freeze)


def test_account_rate_limit() -> None:
    with (
        running_sandbox("empty", rate_limit=5) as sb,
        httpx.Client(
            base_url=sb.api_url, headers={"Authorization": f"Bearer {sb.admin_token.reveal()}"}
        ) as http,
    ):
        _freeze_limiter(sb)
        statuses = [http.get("/users/me").status_code for _ in range(8)]
        assert statuses == [200] * 5 + [429] * 3
        r = http.get("/users/me")
        assert r.json()["error"]["type"] == "rate-limit-exceeded"
        assert r.headers["X-RateLimit-Limit"] == "5"
        # Controls are exempt.
        assert all(http.get("/_sandbox/stats").status_code == 200 for _ in range(20))


def test_per_resource_rate_limits(sandbox: SandboxHandle, admin: httpx.Client) -> None:
    _freeze_limiter(sandbox)
    statuses = [admin.get("/datasets/demo~products").status_code for _ in range(65)]
    assert statuses == [200] * 60 + [429] * 5
    r = admin.get("/datasets/demo~products/items")  # same resource, same 60/s bucket
    assert r.status_code == 429 and r.headers["X-RateLimit-Limit"] == "60"
    # Records have their own 200/s bucket, pushes 400/s; other resources are unaffected.
    records = [
        admin.get("/key-value-stores/demo~exports/records/latest.pdf").status_code
        for _ in range(201)
    ]
    assert records == [200] * 200 + [429]
    assert admin.get("/datasets/demo~invoices").status_code == 200
    pushes = [
        admin.post("/datasets/demo~products/items", json={"n": i}).status_code for i in range(5)
    ]
    assert pushes == [201] * 5
    # Collections only count against the account limit.
    assert all(admin.get("/datasets").status_code == 200 for _ in range(70))


def test_keep_alive_and_no_secret_in_reprs(sandbox: SandboxHandle) -> None:
    import http.client

    host, port = sandbox.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Authorization": f"Bearer {sandbox.admin_token.reveal()}"}
    conn.request("GET", "/v2/users/me", headers=headers)
    first = conn.getresponse()
    first.read()
    sock = conn.sock
    for _ in range(5):
        conn.request("GET", "/v2/datasets", headers=headers)
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    assert conn.sock is sock  # the same connection served every request
    conn.close()
    secret = sandbox.admin_token.reveal()
    # Booleans, so a failure never prints the secret it found.
    in_handle = secret in repr(sandbox)
    assert not in_handle, "the admin token shows in the handle's repr"
    in_state = sandbox.on_loop(lambda state: secret in repr(state) + repr(state.admin_token))
    assert not in_state, "the admin token shows in the state's repr"
