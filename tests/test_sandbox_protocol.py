"""Wire details of the sandbox that clients rely on: envelopes and paging, dataset items,
``username~name`` addressing, rate limits across tokens, admin-only controls, dropped
connections. (Bodies are checked against the OpenAPI schemas in test_sandbox_schemas.py.)"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tokenguard.sandbox.limits import DEFAULT_ACCOUNT_PER_MINUTE, RateLimiter
from tokenguard.sandbox.testing import SandboxHandle, running_sandbox
from tokenguard.secrets import Secret


def _client(sb: SandboxHandle, token: Secret | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token.reveal()}"} if token is not None else {}
    return httpx.Client(base_url=sb.api_url, headers=headers)


@pytest.fixture
def admin(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    with _client(sandbox, sandbox.admin_token) as client:
        yield client


def _data(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    return r.json()["data"]


# -- list envelopes: offset, limit, desc ------------------------------------------------------


def test_list_envelope_paging_and_desc(admin: httpx.Client) -> None:
    for i in range(5):
        assert admin.post("/datasets", params={"name": f"page-{i}"}).status_code == 201
    everything = _data(admin.get("/datasets"))
    names = [d["name"] for d in everything["items"]]
    assert names[-5:] == [f"page-{i}" for i in range(5)]  # creation order
    total = everything["total"]
    assert (everything["offset"], everything["count"], everything["desc"]) == (0, total, False)

    page = _data(admin.get("/datasets", params={"offset": 1, "limit": 2}))
    assert set(page) == {"total", "offset", "limit", "count", "desc", "items"}
    assert (page["total"], page["offset"], page["limit"], page["count"]) == (total, 1, 2, 2)
    assert [d["name"] for d in page["items"]] == names[1:3]

    newest = _data(admin.get("/datasets", params={"desc": "1", "limit": 2}))
    assert newest["desc"] is True
    assert [d["name"] for d in newest["items"]] == ["page-4", "page-3"]
    past_the_end = _data(admin.get("/datasets", params={"offset": total + 5}))
    assert (past_the_end["count"], past_the_end["items"], past_the_end["total"]) == (0, [], total)
    capped = _data(admin.get("/datasets", params={"limit": 5000}))
    assert capped["limit"] == 1000  # Apify's maximum page size


def test_get_of_one_object_is_a_data_envelope(admin: httpx.Client) -> None:
    r = admin.get("/actor-tasks/demo~nightly-crawl")
    assert set(r.json()) == {"data"} and r.json()["data"]["name"] == "nightly-crawl"
    assert r.headers["content-type"] == "application/json; charset=utf-8"


# -- dataset items: a bare array with X-Apify-Pagination-* -------------------------------------


def test_dataset_items_are_a_bare_array_with_pagination_headers(admin: httpx.Client) -> None:
    pushed = [{"n": i} for i in range(7)]
    assert admin.post("/datasets/demo~invoices/items", json=pushed).status_code == 201
    r = admin.get("/datasets/demo~invoices/items")
    assert r.json() == pushed  # no envelope
    assert r.headers["X-Apify-Pagination-Total"] == "7"
    assert r.headers["X-Apify-Pagination-Offset"] == "0"
    assert r.headers["X-Apify-Pagination-Count"] == "7"

    r = admin.get("/datasets/demo~invoices/items", params={"offset": 2, "limit": 3})
    assert [item["n"] for item in r.json()] == [2, 3, 4]
    headers = {k: r.headers[f"X-Apify-Pagination-{k}"] for k in ("Total", "Offset", "Limit")}
    assert headers == {"Total": "7", "Offset": "2", "Limit": "3"}
    assert r.headers["X-Apify-Pagination-Count"] == "3"

    r = admin.get("/datasets/demo~invoices/items", params={"desc": "true", "limit": 2})
    assert [item["n"] for item in r.json()] == [6, 5]
    r = admin.get("/datasets/demo~invoices/items", params={"desc": "1", "offset": 5})
    assert [item["n"] for item in r.json()] == [1, 0]
    r = admin.get("/datasets/demo~invoices/items", params={"offset": 50})
    assert r.json() == [] and r.headers["X-Apify-Pagination-Count"] == "0"
    # A single object pushes one item; fields= picks keys.
    assert admin.post("/datasets/demo~invoices/items", json={"n": 7, "x": 1}).status_code == 201
    r = admin.get("/datasets/demo~invoices/items", params={"offset": 7, "fields": "x"})
    assert r.json() == [{"x": 1}]
    # apify-client reads every one of these headers (Desc included) on each page.
    assert r.headers["X-Apify-Pagination-Desc"] == "false"


def test_dataset_items_filters_and_formats(admin: httpx.Client) -> None:
    rows = [{"a": 1, "#hidden": 2}, {}, {"a": 3, "b": 4}]
    assert admin.post("/datasets/demo~invoices/items", json=rows).status_code == 201
    items = "/datasets/demo~invoices/items"
    assert admin.get(items, params={"omit": "b,#hidden"}).json() == [{"a": 1}, {}, {"a": 3}]
    r = admin.get(items, params={"skipEmpty": "1"})
    assert r.json() == [rows[0], rows[2]]
    assert r.headers["X-Apify-Pagination-Count"] == "3"  # rows scanned, as the client pages on
    assert admin.get(items, params={"clean": "true"}).json() == [{"a": 1}, {"a": 3, "b": 4}]
    r = admin.get(items, params={"format": "jsonl", "limit": 2})
    assert r.headers["content-type"].startswith("application/jsonl")
    assert r.text == '{"a":1,"#hidden":2}\n{}\n'
    r = admin.get(items, params={"format": "csv"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid-input"


# -- username~name addressing -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/acts/demo~web-scraper",
        "/acts/demo%7Eweb-scraper",
        "/actors/demo%7eweb-scraper",
        "/actor-tasks/demo%7Enightly-crawl",
        "/datasets/demo%7Eproducts/items",
        "/key-value-stores/demo%7Ecrawler-state/records/STATE",
        "/request-queues/demo%7Ecrawl-queue",
        "/schedules/demo%7Enightly",
    ],
)
def test_username_tilde_name_also_url_encoded(admin: httpx.Client, path: str) -> None:
    # httpx would leave "%7E" as is: the server must decode it like "~".
    r = admin.get(path)
    assert r.status_code == 200, (path, r.text)
    assert r.headers["X-Sandbox-Grant"] == "unscoped"


def test_name_and_id_reach_the_same_resource(sandbox: SandboxHandle, admin: httpx.Client) -> None:
    by_id = _data(admin.get(f"/datasets/{sandbox.resource_id('dataset', 'products')}"))
    assert _data(admin.get("/datasets/demo%7Eproducts")) == by_id
    assert admin.get("/datasets/someone%7Eproducts").status_code == 404  # another user's name
    # A grant stored by ID covers the resource addressed by name (encoded or not), and back.
    token = admin.post(
        "/users/me/tokens",
        json={
            "name": "named",
            "scope": {
                "resources": [{"type": "dataset", "id": "demo~products", "permissions": ["read"]}]
            },
        },
    ).json()["data"]["token"]
    with _client(sandbox, Secret(token)) as scoped:
        assert scoped.get("/datasets/demo%7Eproducts/items").status_code == 200
        assert scoped.get(f"/datasets/{by_id['id']}").status_code == 200
        assert scoped.get("/datasets/demo%7Eseo-reports").status_code == 403


# -- rate limits --------------------------------------------------------------------------------


def _freeze(sb: SandboxHandle) -> None:
    """Stop token-bucket refills so limits trip deterministically (no racing real time)."""

    def freeze(_: object) -> None:
        limiter = sb.server.app.limiter
        frozen = limiter.clock()
        limiter.clock = lambda: frozen

    sb.on_loop(freeze)


def test_account_limit_is_shared_by_every_token_of_the_account() -> None:
    with running_sandbox("demo", rate_limit=6) as sb:
        _freeze(sb)
        clients = [
            _client(sb, sb.admin_token),
            _client(sb, sb.token("ops-unscoped")),
            _client(sb, sb.token("storage-reader")),
        ]
        try:
            statuses = [
                clients[i % 3].get(f"/datasets/demo~{name}").status_code
                for i, name in enumerate(["products", "seo-reports", "invoices"] * 3)
            ]
            # Six requests in all (two per token) fit, whichever token sent them.
            assert statuses == [200] * 6 + [429] * 3
            for client in clients:
                r = client.get("/actor-tasks")
                assert r.status_code == 429
                assert r.json()["error"]["type"] == "rate-limit-exceeded"
                assert r.headers["X-RateLimit-Limit"] == "6"
            # A fresh token of the same account is limited too.
            r = httpx.get(
                sb.api_url + "/users/me",
                headers={"Authorization": f"Bearer {sb.token('task-manager').reveal()}"},
            )
            assert r.status_code == 429
        finally:
            for client in clients:
                client.close()


def test_default_account_limit_is_250000_per_minute() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert limiter.account_limit == str(DEFAULT_ACCOUNT_PER_MINUTE) == "250000"
    assert sum(limiter.take_account() for _ in range(250_000)) == 250_000
    assert not limiter.take_account()
    now[0] = 60.0  # a minute later the whole budget is back, and no more than that
    assert sum(limiter.take_account() for _ in range(250_001)) == 250_000


def test_a_limit_under_one_per_second_still_lets_requests_through() -> None:
    now = [0.0]
    limiter = RateLimiter(0.5, clock=lambda: now[0])
    assert limiter.account_limit == "0.5"
    assert limiter.take_account() and not limiter.take_account()
    now[0] = 1.0
    assert not limiter.take_account()
    now[0] = 2.0
    assert limiter.take_account()
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_default_account_limit_answers_429_with_its_limit(sandbox: SandboxHandle) -> None:
    _freeze(sandbox)

    def drain(_: object) -> None:
        limiter = sandbox.server.app.limiter
        limiter.account.tokens, limiter.account.stamp = 0, limiter.clock()

    sandbox.on_loop(drain)
    with _client(sandbox, sandbox.token("storage-reader")) as client:
        r = client.get("/datasets")
    assert r.status_code == 429 and r.headers["X-RateLimit-Limit"] == "250000"


def test_resource_limits_per_route_kind() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    for rate in (60, 200, 400):
        assert sum(limiter.take_resource("abc", rate) for _ in range(rate + 10)) == rate
    assert limiter.take_resource("other", 60)  # another resource has its own bucket
    now[0] = 0.5  # half a second refills half of each bucket
    assert sum(limiter.take_resource("abc", 60) for _ in range(60)) == 30


def test_run_start_has_the_400_per_second_limit(sandbox: SandboxHandle) -> None:
    _freeze(sandbox)
    with _client(sandbox, sandbox.admin_token) as admin:
        # 60 GETs of the Actor use up its 60/s bucket; starting runs has its own 400/s one.
        assert all(admin.get("/acts/demo~pdf-export").status_code == 200 for _ in range(60))
        assert admin.get("/acts/demo~pdf-export").status_code == 429
        r = admin.post("/acts/demo~pdf-export/runs", json={})
        assert r.status_code == 201, r.text


# -- test controls: the admin token only --------------------------------------------------------

CONTROLS = [
    ("GET", "/_sandbox/clock", None),
    ("POST", "/_sandbox/clock", {"advanceSeconds": 86400 * 365}),
    ("GET", "/_sandbox/faults", None),
    ("POST", "/_sandbox/faults", {"status": 500, "count": 5}),
    ("DELETE", "/_sandbox/faults", None),
    ("GET", "/_sandbox/settings", None),
    ("PUT", "/_sandbox/settings", {"generalResourceAccess": "ANYONE_WITH_ID_CAN_READ"}),
    ("GET", "/_sandbox/stats", None),
    ("DELETE", "/_sandbox/stats", None),
]


@pytest.mark.parametrize(("method", "path", "body"), CONTROLS)
def test_controls_answer_only_the_admin_token(
    sandbox: SandboxHandle, admin: httpx.Client, method: str, path: str, body: Any
) -> None:
    before = {name: _data(admin.get(f"/_sandbox/{name}")) for name in ("faults", "settings")}
    clock = _data(admin.get("/_sandbox/clock"))["now"]
    for token, status, error_type in (
        (None, 401, "token-not-provided"),
        (sandbox.token("ops-unscoped"), 403, "insufficient-permissions"),  # unscoped, not admin
        (sandbox.token("storage-reader"), 403, "insufficient-permissions"),
        (Secret("apify_api_" + "Z" * 36), 401, "user-or-token-not-found"),
    ):
        with _client(sandbox, token) as other:
            r = other.request(method, path, json=body)
        assert r.status_code == status, (token, r.text)
        assert r.json()["error"]["type"] == error_type
    # Nothing changed: no fault queued, settings and clock where they were.
    assert {name: _data(admin.get(f"/_sandbox/{name}")) for name in before} == before
    assert _data(admin.get("/_sandbox/clock"))["now"][:16] == clock[:16]
    r = admin.request(method, path, json=body)
    assert r.status_code == 200, r.text


# -- faults -------------------------------------------------------------------------------------


def test_drop_closes_the_connection_without_an_answer(
    sandbox: SandboxHandle, admin: httpx.Client
) -> None:
    admin.delete("/_sandbox/stats")
    assert admin.post("/_sandbox/faults", json={"kind": "drop", "count": 2}).status_code == 200
    host, port = sandbox.url.removeprefix("http://").split(":")
    secret = sandbox.admin_token.reveal()
    for _ in range(2):
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            request = f"GET /v2/acts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\n\r\n"
            sock.sendall(request.encode())
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        assert received == b""  # closed, not a single byte of a status line
    assert admin.get("/acts").status_code == 200
    counts = {
        (i["route"], i["status"]): i["count"] for i in _data(admin.get("/_sandbox/stats"))["items"]
    }
    assert counts == {("/v2/acts", 0): 2, ("/v2/acts", 200): 1}


def test_faults_apply_in_order_to_the_next_requests(admin: httpx.Client) -> None:
    admin.post("/_sandbox/faults", json={"status": 502, "count": 1})
    admin.post("/_sandbox/faults", json={"status": 429, "count": 2})
    statuses = [admin.get("/actor-tasks").status_code for _ in range(4)]
    assert statuses == [502, 429, 429, 200]


# -- independence from the scope model ----------------------------------------------------------


def test_sandbox_never_imports_the_scope_model() -> None:
    # The sandbox's grant check and permissions.py are independent readings of the docs,
    # compared by the property test: the sandbox must not borrow from the model.
    import ast
    from pathlib import Path

    import tokenguard.sandbox

    package = Path(tokenguard.sandbox.__file__).parent
    allowed = {"tokenguard.sandbox", "tokenguard.secrets", "tokenguard.errors"}
    offending = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("tokenguard") and not any(
                    name == ok or name.startswith(ok + ".") for ok in allowed
                ):
                    offending.append(f"{path.name}: {name}")
    assert not offending, offending
    assert len(list(package.glob("*.py"))) >= 10  # the walk did see the modules
