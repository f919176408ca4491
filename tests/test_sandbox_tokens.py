"""The sandbox's token API (DESIGN §3), directly and through HttpTokenIssuer."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tokenguard.api.client import ApifyApi
from tokenguard.api.issuer import HttpTokenIssuer
from tokenguard.errors import ApiError
from tokenguard.permissions import AccountGroup, Permission, ResourceGrant, ResourceType, Scope
from tokenguard.sandbox.testing import SandboxHandle
from tokenguard.secrets import TOKEN_PATTERN


def admin_http(sb: SandboxHandle) -> httpx.Client:
    return httpx.Client(
        base_url=sb.api_url, headers={"Authorization": f"Bearer {sb.admin_token.reveal()}"}
    )


def test_create_returns_secret_once(empty_sandbox: SandboxHandle) -> None:
    http = admin_http(empty_sandbox)
    r = http.post("/users/me/tokens", json={"name": "ci", "description": "CI reader"})
    assert r.status_code == 201
    data = r.json()["data"]
    assert TOKEN_PATTERN.fullmatch(data["token"]) is not None, "not an apify_api_ token"
    assert set(data) == {"id", "name", "description", "createdAt", "expiresAt", "scope", "token"}
    assert data["scope"] is None and data["expiresAt"] is None
    assert re.fullmatch(r"[A-Za-z0-9]{17}", data["id"])
    listed = http.get("/users/me/tokens").json()["data"]
    assert listed["total"] == 2  # the admin token and this one
    for item in listed["items"]:
        assert "token" not in item and len(item["tokenPreview"]) == 4
    one = http.get(f"/users/me/tokens/{data['id']}").json()["data"]
    assert "token" not in one and one["tokenPreview"] == data["token"][-4:]
    listed_secret = data["token"] in http.get("/users/me/tokens").text
    assert not listed_secret, "the token list shows a secret"


def test_secrets_are_random_and_distinct(empty_sandbox: SandboxHandle) -> None:
    http = admin_http(empty_sandbox)
    secrets = {
        http.post("/users/me/tokens", json={"name": f"t{i}"}).json()["data"]["token"]
        for i in range(20)
    }
    assert len(secrets) == 20


def test_issuer_roundtrip_with_scope_and_expiry(sandbox: SandboxHandle) -> None:
    issuer = HttpTokenIssuer(ApifyApi(sandbox.url, sandbox.admin_token))
    products = sandbox.resource_id("dataset", "products")
    scope = Scope(
        account={AccountGroup.TASKS: frozenset({Permission.READ, Permission.CREATE})},
        resources=(
            ResourceGrant(ResourceType.DATASET, "demo~products", frozenset({Permission.READ})),
        ),
        default_run_storage_access=True,
    )
    expires = datetime.now(UTC) + timedelta(days=7)
    issued = issuer.issue("reporting", scope=scope, expires_at=expires)
    assert issued.info.name == "reporting"
    assert issued.info.scope.resources[0].id == products  # resolved to the ID (D16)
    assert issued.info.scope.account_permissions(AccountGroup.TASKS) == {
        Permission.READ,
        Permission.CREATE,
    }
    assert issued.info.expires_at is not None
    assert abs((issued.info.expires_at - expires).total_seconds()) < 1
    fetched = issuer.get(issued.info.id)
    assert fetched.scope == issued.info.scope and fetched.token_preview
    assert issued.info.id in {t.id for t in issuer.list()}
    issuer.revoke(issued.info.id)
    issuer.revoke(issued.info.id)  # already gone: not an error
    assert issued.info.id not in {t.id for t in issuer.list()}


def test_token_api_errors(sandbox: SandboxHandle) -> None:
    http = admin_http(sandbox)
    assert http.get("/users/me/tokens/AAAAAAAAAAAAAAAAA").status_code == 404
    assert http.delete("/users/me/tokens/AAAAAAAAAAAAAAAAA").status_code == 404
    for body in (
        {},
        {"name": ""},
        {"name": 5},
        {"name": "x", "expiresAt": "tomorrow"},
        {"name": "x", "expiresAt": "2030-01-01T00:00:00"},  # no timezone
        {"name": "x", "expiresAt": "9999-12-31T23:59:59-01:00"},  # past year 9999 in UTC
        {"name": "x", "expiresAt": "0001-01-01T00:00:00+01:00"},  # before year 1 in UTC
        {"name": "x", "scope": "all"},
        {"name": "x", "scope": {"account": {"actors": "read"}}},
        {"name": "x", "scope": {"actorRunMode": "sometimes"}},
        {"name": "x", "scope": {"defaultRunStorageAccess": "yes"}},
        {"name": "x", "scope": {"resources": [{"type": "dataset"}]}},
        {"name": "x", "scope": {"account": []}},  # falsy, but not an object
        {"name": "x", "scope": {"resources": {}}},
        {"name": "x", "scope": {"resources": 0}},
        {"name": "x", "scopes": None},
        [{"name": "x"}],
    ):
        r = http.post("/users/me/tokens", json=body)
        assert r.status_code == 400, body
        assert r.json()["error"]["type"] == "invalid-input"


def test_scoped_token_cannot_use_token_api(sandbox: SandboxHandle) -> None:
    api = ApifyApi(sandbox.url, sandbox.token("storage-reader"))
    with pytest.raises(ApiError) as info:
        HttpTokenIssuer(api).list()
    assert info.value.status == 403


def test_seeded_tokens_have_documented_scopes(sandbox: SandboxHandle) -> None:
    issuer = HttpTokenIssuer(ApifyApi(sandbox.url, sandbox.admin_token))
    by_name = {t.name: t for t in issuer.list()}
    assert set(by_name) == {
        "sandbox-admin",
        "ops-unscoped",
        "scraper-runner",
        "storage-reader",
        "seo-readonly",
        "task-manager",
        "schedule-creator",
        "storage-creator",
        "expiring-reporter",
        "no-permissions",
    }
    assert by_name["sandbox-admin"].scope.unscoped
    assert by_name["scraper-runner"].scope.default_run_storage_access
    assert by_name["expiring-reporter"].expires_at is not None
    assert not by_name["no-permissions"].scope.unscoped


def test_revocation_is_immediate(sandbox: SandboxHandle) -> None:
    http = admin_http(sandbox)
    data = http.post("/users/me/tokens", json={"name": "gone"}).json()["data"]
    headers = {"Authorization": f"Bearer {data['token']}"}
    assert httpx.get(sandbox.api_url + "/users/me", headers=headers).status_code == 200
    assert http.delete(f"/users/me/tokens/{data['id']}").status_code == 204
    r = httpx.get(sandbox.api_url + "/users/me", headers=headers)
    assert r.status_code == 401 and r.json()["error"]["type"] == "user-or-token-not-found"
