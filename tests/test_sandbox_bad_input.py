"""Bad input never yields a 500 or a traceback, for every route family; the server keeps serving."""

from __future__ import annotations

import gzip
import json
import logging
import socket
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenguard.sandbox.protocol import MAX_BODY_BYTES
from tokenguard.sandbox.testing import SandboxHandle, running_sandbox


@pytest.fixture
def http(sandbox: SandboxHandle) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sandbox.api_url,
        headers={"Authorization": f"Bearer {sandbox.admin_token.reveal()}"},
    ) as client:
        yield client


def assert_error(r: httpx.Response, status: int, error_type: str | None = None) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
    if error_type is not None:
        assert body["error"]["type"] == error_type
    assert "Traceback" not in r.text


def assert_alive(http: httpx.Client) -> None:
    assert http.get("/users/me").status_code == 200


# One JSON-body route per family: (method, path).
JSON_ROUTES = [
    ("POST", "/users/me/tokens"),
    ("POST", "/acts"),
    ("PUT", "/acts/demo~web-scraper"),
    ("POST", "/actor-tasks"),
    ("PUT", "/actor-tasks/demo~nightly-crawl"),
    ("POST", "/datasets/demo~products/items"),
    ("PUT", "/datasets/demo~products"),
    ("PUT", "/key-value-stores/demo~exports"),
    ("PUT", "/request-queues/demo~crawl-queue"),
    ("POST", "/schedules"),
    ("PUT", "/schedules/demo~nightly"),
    ("POST", "/webhooks"),
    ("POST", "/_sandbox/faults"),
    ("PUT", "/_sandbox/settings"),
    ("POST", "/_sandbox/clock"),
]


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_malformed_json(http: httpx.Client, method: str, path: str) -> None:
    r = http.request(
        method, path, content=b'{"name": ', headers={"Content-Type": "application/json"}
    )
    assert_error(r, 400, "invalid-input")
    assert_alive(http)


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_wrong_content_type(http: httpx.Client, method: str, path: str) -> None:
    r = http.request(method, path, content=b"name=x", headers={"Content-Type": "text/plain"})
    assert_error(r, 400, "invalid-content-type-header")


# Routes that take any content type (run input, records) but parse what claims to be JSON.
ANY_BODY_ROUTES = [
    ("POST", "/acts/demo~web-scraper/runs"),
    ("POST", "/actor-tasks/demo~nightly-crawl/runs"),
    ("PUT", "/key-value-stores/demo~exports/records/data.json"),
    ("POST", "/key-value-stores/demo~exports/records/data.json"),
]


@pytest.mark.parametrize(("method", "path"), ANY_BODY_ROUTES)
def test_malformed_json_where_any_body_is_allowed(
    http: httpx.Client, method: str, path: str
) -> None:
    r = http.request(
        method, path, content=b'{"name": ', headers={"Content-Type": "application/json"}
    )
    assert_error(r, 400, "invalid-input")
    # The same bytes with their honest content type are fine.
    r = http.request(method, path, content=b'{"name": ', headers={"Content-Type": "text/plain"})
    assert r.status_code == 201, r.text
    assert_alive(http)


@pytest.mark.parametrize(
    ("method", "path"),
    [(m, p) for m, p in JSON_ROUTES if p not in ("/datasets/demo~products/items",)],
)
def test_json_that_is_not_an_object(http: httpx.Client, method: str, path: str) -> None:
    r = http.request(method, path, json=["not", "an", "object"])
    assert_error(r, 400, "invalid-input")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/acts", {"name": "bad name!"}),
        ("POST", "/actor-tasks", {"name": "x"}),
        ("POST", "/actor-tasks", {"actId": 5, "name": "x"}),
        ("POST", "/actor-tasks", {"actId": "demo~web-scraper", "name": "x", "input": []}),
        ("POST", "/datasets/demo~products/items", [1, 2]),
        ("POST", "/datasets/demo~products/items", "text"),
        ("POST", "/schedules", {"name": "s", "actions": [{"type": "NOPE"}]}),
        ("POST", "/schedules", {"name": "s", "actions": {}}),
        ("POST", "/schedules", {"name": "s", "isEnabled": "yes"}),
        ("POST", "/webhooks", {"condition": {}, "eventTypes": ["TEST"], "requestUrl": "x"}),
        (
            "POST",
            "/webhooks",
            {"condition": {"actorId": "demo~web-scraper"}, "eventTypes": [], "requestUrl": "x"},
        ),
        (
            "POST",
            "/webhooks",
            {
                "condition": {"actorId": "demo~web-scraper"},
                "eventTypes": ["TEST"],
                "requestUrl": "ftp://x",
            },
        ),
        ("POST", "/_sandbox/faults", {"status": 404, "count": 1}),
        ("POST", "/_sandbox/faults", {"kind": "latency", "ms": -1}),
        ("POST", "/_sandbox/faults", {"status": 500, "count": 0}),
        ("POST", "/_sandbox/clock", {"advanceSeconds": -5}),
        ("POST", "/_sandbox/clock", {"advanceSeconds": "soon"}),
        ("PUT", "/_sandbox/settings", {"generalResourceAccess": "PUBLIC"}),
    ],
)
def test_invalid_fields(http: httpx.Client, method: str, path: str, body: Any) -> None:
    assert_error(http.request(method, path, json=body), 400, "invalid-input")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error_type"),
    [
        ("POST", "/acts", {"name": "web-scraper"}, 400, "actor-name-not-unique"),
        ("PUT", "/acts/demo~pdf-export", {"name": "web-scraper"}, 400, "actor-name-not-unique"),
        (
            "POST",
            "/actor-tasks",
            {"actId": "demo~web-scraper", "name": "weekly-seo"},
            409,
            "actor-task-name-not-unique",
        ),
        (
            "PUT",
            "/actor-tasks/demo~invoice-pdfs",
            {"name": "weekly-seo"},
            409,
            "actor-task-name-not-unique",
        ),
        ("POST", "/schedules", {"name": "nightly"}, 409, "schedule-name-not-unique"),
        (
            "PUT",
            "/schedules/demo~weekly-audit",
            {"name": "nightly"},
            400,
            "schedule-name-not-unique",
        ),
        ("PUT", "/datasets/demo~invoices", {"name": "products"}, 400, "name-not-unique"),
        (
            "PUT",
            "/key-value-stores/demo~exports",
            {"name": "crawler-state"},
            400,
            "name-not-unique",
        ),
    ],
)
def test_taken_names(
    http: httpx.Client, method: str, path: str, body: Any, status: int, error_type: str
) -> None:
    r = http.request(method, path, json=body)
    assert_error(r, status, error_type)
    assert "already exists" in r.json()["error"]["message"]
    # Keeping one's own name is no conflict.
    own = path.rsplit("~", 1)[1] if method == "PUT" else None
    if own is not None:
        assert http.request(method, path, json={"name": own}).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/acts/bad%20id",
        "/actor-tasks/%3Cscript%3E",
        "/actor-runs/a%22b",
        "/datasets/" + "a" * 300,
        "/key-value-stores/x%00y",
        "/request-queues/a%2Fb",
        "/schedules/semi;colon",
        "/webhooks/%C3%A9t%C3%A9",
        "/users/me/tokens/not-a-token!",
    ],
)
def test_bad_ids(http: httpx.Client, path: str) -> None:
    assert_error(http.get(path), 400, "invalid-input")


def test_bad_record_key_and_params(http: httpx.Client) -> None:
    assert_error(http.get("/key-value-stores/demo~exports/records/a%20b"), 400, "invalid-input")
    assert_error(http.get("/datasets/demo~products/items?offset=-1"), 400, "invalid-input")
    assert_error(http.get("/datasets/demo~products/items?limit=ten"), 400, "invalid-input")
    assert_error(http.get("/datasets?desc=maybe"), 400, "invalid-input")
    assert_error(http.get("/key-value-stores/demo~exports/keys?limit=0"), 400, "invalid-input")
    assert_error(http.get("/acts?offset=x"), 400, "invalid-input")
    assert_error(http.post("/acts/demo~web-scraper/runs?timeout=abc", json={}), 400)


def test_unknown_routes_and_methods(http: httpx.Client) -> None:
    assert_error(http.get("/nope"), 404, "page-not-found")
    assert_error(http.get("/datasets/demo~products/nope"), 404, "page-not-found")
    assert_error(httpx.get(str(http.base_url).replace("/v2", "/")), 404, "page-not-found")
    r = http.patch("/datasets/demo~products")
    assert_error(r, 405, "method-not-allowed")
    assert r.headers["Allow"] == "DELETE, GET, PUT"
    assert r.json()["error"]["message"].endswith("methods: DELETE,GET,PUT")
    r = http.post("/users/me")
    assert_error(r, 405, "method-not-allowed")
    assert r.headers["Allow"] == "GET"
    assert_error(http.get("/_sandbox/nope"), 404, "page-not-found")
    assert_alive(http)


def test_missing_resources_are_404(http: httpx.Client) -> None:
    for path in (
        "/acts/demo~nope",
        "/actor-tasks/demo~nope",
        "/actor-runs/AAAAAAAAAAAAAAAAA",
        "/actor-runs/AAAAAAAAAAAAAAAAA/dataset/items",
        "/datasets/other-user~products",
        "/key-value-stores/demo~exports/records/nope",
        "/request-queues/demo~nope",
        "/schedules/demo~nope",
        "/webhooks/AAAAAAAAAAAAAAAAA",
    ):
        assert_error(http.get(path), 404, "record-not-found")
    r = http.post("/actor-tasks", json={"actId": "demo~nope", "name": "t"})
    assert_error(r, 404, "record-not-found")


def test_oversized_body(http: httpx.Client) -> None:
    big = b"[" + b"0," * (MAX_BODY_BYTES // 2) + b"0]"
    r = http.post(
        "/datasets/demo~products/items", content=big, headers={"Content-Type": "application/json"}
    )
    assert_error(r, 413, "request-too-large")
    assert_alive(http)


def test_compressed_bodies(http: httpx.Client) -> None:
    items = b'[{"a": 1}, {"a": 2}]'
    for encoding, payload in (
        ("gzip", gzip.compress(items)),
        ("deflate", zlib.compress(items)),
    ):
        r = http.post(
            "/datasets/demo~invoices/items",
            content=payload,
            headers={"Content-Type": "application/json", "Content-Encoding": encoding},
        )
        assert r.status_code == 201, r.text
    assert len(http.get("/datasets/demo~invoices/items").json()) == 4
    r = http.post(
        "/datasets/demo~invoices/items",
        content=b"not gzip at all",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert_error(r, 400, "invalid-input")
    r = http.post(
        "/datasets/demo~invoices/items",
        content=items,
        headers={"Content-Type": "application/json", "Content-Encoding": "compress"},
    )
    assert_error(r, 415, "unsupported-content-encoding")
    bomb = gzip.compress(b"[" + b" " * (MAX_BODY_BYTES + 10) + b"]")
    r = http.post(
        "/datasets/demo~invoices/items",
        content=bomb,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert_error(r, 413, "request-too-large")
    assert_alive(http)


def test_malformed_auth_headers(sandbox: SandboxHandle) -> None:
    for value in ("Basic abc", "Bearer", "token", "Bearer a b"):
        r = httpx.get(sandbox.api_url + "/users/me", headers={"Authorization": value})
        assert_error(r, 401, "user-or-token-not-found")


def test_deeply_nested_json_is_a_400(http: httpx.Client) -> None:
    for path in ("/datasets/demo~products/items", "/users/me/tokens", "/_sandbox/clock"):
        for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
            r = http.post(path, content=body, headers={"Content-Type": "application/json"})
            assert_error(r, 400, "invalid-input")
            assert "nested too deeply" in r.json()["error"]["message"]
    assert_alive(http)


@pytest.mark.parametrize("value", [b"1e400", b"Infinity", b"NaN", b"1e308", b"1" + b"0" * 400])
def test_clock_cannot_leave_the_calendar(http: httpx.Client, value: bytes) -> None:
    r = http.post(
        "/_sandbox/clock",
        content=b'{"advanceSeconds": ' + value + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert_error(r, 400, "invalid-input")
    assert_alive(http)


def test_clock_stops_before_the_end_of_datetime(http: httpx.Client) -> None:
    century = 100 * 366 * 86400
    statuses = [
        http.post("/_sandbox/clock", json={"advanceSeconds": century}).status_code
        for _ in range(80)
    ]
    assert statuses[0] == 200 and statuses[-1] == 400
    assert_alive(http)  # every request still reads the (far-future) clock fine
    r = http.post("/users/me/tokens", json={"name": "late"})
    assert r.status_code == 201


def test_garbage_on_the_wire_keeps_the_server_up(
    sandbox: SandboxHandle, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = sandbox.url.removeprefix("http://").split(":")
    for junk in (
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET /v2/users/me HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /v2/datasets/demo~products/items HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n",
    ):
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(junk)
            sock.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
            assert b"Traceback" not in reply
            assert not reply.startswith(b"HTTP/1.1 500")
    assert_alive(http)
    # Bad client input is not logged as a server error with a traceback either.
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not noisy, [r.getMessage() for r in noisy]


def test_head_and_binary_records(http: httpx.Client) -> None:
    r = http.head("/key-value-stores/demo~exports/records/latest.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    r = http.put(
        "/key-value-stores/demo~exports/records/blob",
        content=bytes(range(256)),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201
    assert http.get("/key-value-stores/demo~exports/records/blob").content == bytes(range(256))


# Fuzz: any JSON body on any JSON route is answered without a 500 -------------------------


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
_keys = st.sampled_from(
    [
        "name",
        "actId",
        "scope",
        "expiresAt",
        "actions",
        "condition",
        "eventTypes",
        "requestUrl",
        "input",
        "options",
        "status",
        "kind",
        "count",
        "ms",
        "advanceSeconds",
        "generalResourceAccess",
        "description",
        "title",
        "isEnabled",
        "type",
        "resources",
        "account",
    ]
)
_bodies = _json | st.dictionaries(_keys, _json, max_size=5)


@given(route=st.sampled_from(JSON_ROUTES), body=_bodies)
def test_fuzzed_bodies_never_500(route: tuple[str, str], body: Any) -> None:
    method, path = route
    with (
        running_sandbox("demo", rate_limit=None) as sb,
        httpx.Client(
            base_url=sb.api_url, headers={"Authorization": f"Bearer {sb.admin_token.reveal()}"}
        ) as client,
    ):
        # json.dumps writes NaN/Infinity for out-of-range floats (invalid JSON): the
        # server must answer those with a 400, so send the text as is.
        r = client.request(
            method,
            path,
            content=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code < 500, r.text  # (an injected fault shows only on the next call)
        assert "Traceback" not in r.text
        if r.status_code >= 400:
            assert set(r.json()["error"]) == {"type", "message"}
        assert client.get("/users/me").status_code in (200, 401, 429, 500, 502, 503, 504)


@given(
    collection=st.sampled_from(
        [
            "acts",
            "actor-tasks",
            "actor-runs",
            "datasets",
            "key-value-stores",
            "request-queues",
            "schedules",
            "webhooks",
            "users/me/tokens",
        ]
    ),
    ref=st.text(min_size=1, max_size=40).filter(lambda s: s not in (".", "..")),
    suffix=st.sampled_from(
        [
            "",
            "/items",
            "/keys",
            "/runs",
            "/records/x",
            "/abort",
            "/dataset",
            "/log",
            "/runs/last",
            "/runs/last/key-value-store/records/x",
            "/key-value-store/records/%FF",
        ]
    ),
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE"]),
)
def test_fuzzed_paths_never_500(collection: str, ref: str, suffix: str, method: str) -> None:
    from urllib.parse import quote

    with (
        running_sandbox("demo") as sb,
        httpx.Client(
            base_url=sb.api_url, headers={"Authorization": f"Bearer {sb.admin_token.reveal()}"}
        ) as client,
    ):
        r = client.request(method, f"/{collection}/{quote(ref, safe='')}{suffix}")
        assert r.status_code < 500, r.text
        if r.status_code >= 400:
            assert set(r.json()["error"]) == {"type", "message"}
