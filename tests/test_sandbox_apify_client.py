"""The official apify-client (3.x) against the sandbox, with scoped and unscoped tokens."""

from __future__ import annotations

import pytest

apify_client = pytest.importorskip("apify_client")

from apify_client import ApifyClient  # noqa: E402
from apify_client.errors import ApifyApiError  # noqa: E402

from tokenguard.api.client import ApifyApi  # noqa: E402
from tokenguard.api.issuer import HttpTokenIssuer  # noqa: E402
from tokenguard.permissions import Scope  # noqa: E402
from tokenguard.sandbox.testing import SandboxHandle  # noqa: E402
from tokenguard.secrets import Secret  # noqa: E402


def client(sb: SandboxHandle, token: Secret) -> ApifyClient:
    # No retries: 4xx are not retried anyway and 5xx/429 tests must not wait for backoffs.
    return ApifyClient(token.reveal(), api_url=sb.url, max_retries=0)


def test_unscoped_lists_actors_runs_and_reads_storages(sandbox: SandboxHandle) -> None:
    c = client(sandbox, sandbox.admin_token)
    assert c.user().get().username == "demo"
    actors = c.actors().list(my=True)
    assert {a.name for a in actors.items} == {"web-scraper", "pdf-export", "seo-audit"}
    assert actors.total == 3

    run = c.actor("demo/web-scraper").start(run_input={"maxPages": 1})
    assert run.status == "SUCCEEDED"
    assert c.run(run.id).get().default_dataset_id == run.default_dataset_id

    c.dataset(run.default_dataset_id).push_items([{"n": i, "pad": "x" * 64} for i in range(40)])
    page = c.dataset(run.default_dataset_id).list_items(offset=5, limit=10)
    assert (page.total, page.offset, page.count, page.limit) == (40, 5, 10, 10)
    assert page.items[0]["n"] == 5

    store = c.key_value_store(run.default_key_value_store_id)
    assert store.get_record("INPUT")["value"] == {"maxPages": 1}
    store.set_record("OUTPUT", {"ok": True})
    assert store.get_record("OUTPUT")["value"] == {"ok": True}
    assert [k.key for k in store.list_keys().items] == ["INPUT", "OUTPUT"]
    assert store.record_exists("OUTPUT") and not store.record_exists("missing")


def test_scoped_token_reads_what_it_may(sandbox: SandboxHandle) -> None:
    c = client(sandbox, sandbox.token("scraper-runner"))
    assert [a.name for a in c.actors().list().items] == ["web-scraper"]
    run = c.actor("demo/web-scraper").start()
    # Default-run-storage access (D10) lets it reach the run's dataset and store.
    c.run(run.id).dataset().push_items({"url": "https://example.com"})
    assert c.run(run.id).dataset().list_items().items == [{"url": "https://example.com"}]
    products = c.dataset("demo/products").list_items().items
    assert len(products) == 3
    reader = client(sandbox, sandbox.token("storage-reader"))
    record = reader.key_value_store("demo/crawler-state").get_record("config")
    assert record is not None and record["value"] == {"maxPages": 100}


def test_denied_token_gets_insufficient_permissions(sandbox: SandboxHandle) -> None:
    c = client(sandbox, sandbox.token("seo-readonly"))
    with pytest.raises(ApifyApiError) as info:
        c.dataset("demo/products").list_items()
    assert info.value.type == "insufficient-permissions"
    assert info.value.status_code == 403
    with pytest.raises(ApifyApiError) as info:
        c.actor("demo/seo-audit").start()  # read but not run
    assert info.value.type == "insufficient-permissions"


def test_revoked_token_gets_user_or_token_not_found(sandbox: SandboxHandle) -> None:
    issuer = HttpTokenIssuer(ApifyApi(sandbox.url, sandbox.admin_token))
    issued = issuer.issue("short-lived", scope=Scope.full(), expires_at=None)
    c = client(sandbox, issued.secret)
    assert c.user().get().username == "demo"
    issuer.revoke(issued.info.id)
    with pytest.raises(ApifyApiError) as info:
        c.actors().list()
    assert info.value.type == "user-or-token-not-found"
    assert info.value.status_code == 401


def test_tasks_schedules_webhooks_and_queues(sandbox: SandboxHandle) -> None:
    c = client(sandbox, sandbox.admin_token)
    task = c.tasks().create(actor_id="demo~pdf-export", name="monthly-pdfs", task_input={})
    assert task.name == "monthly-pdfs"
    assert c.task(task.id).start().actor_task_id == task.id
    assert c.task(task.id).runs().list().total == 1
    assert c.schedules().list().items[0].name == "nightly"
    hook = c.webhooks().list().items[0]
    assert c.webhook(hook.id).get().event_types == ["ACTOR.RUN.FAILED"]
    queue = c.request_queues().get_or_create(name="new-queue")
    assert c.request_queue(queue.id).get().name == "new-queue"
    assert c.dataset("demo/nope") is not None and c.dataset("demo~nope").get() is None


def test_server_errors_surface_as_api_errors(sandbox: SandboxHandle) -> None:
    import httpx

    httpx.post(
        sandbox.api_url + "/_sandbox/faults",
        json={"status": 500, "count": 1},
        headers={"Authorization": f"Bearer {sandbox.admin_token.reveal()}"},
    ).raise_for_status()
    with pytest.raises(ApifyApiError) as info:
        client(sandbox, sandbox.admin_token).actors().list()
    assert info.value.status_code == 500
