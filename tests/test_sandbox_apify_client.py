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
    assert c.dataset("demo/nope").get() is None and c.dataset("demo~nope").get() is None


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


@pytest.fixture
def no_final_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """``call()`` with its default logger sleeps 6 s after the run to catch a last status
    message (apify-client's StatusMessageWatcher); tests never sleep through that."""
    from apify_client._status_message_watcher import StatusMessageWatcherBase

    monkeypatch.setattr(StatusMessageWatcherBase, "_final_sleep_time_s", 0)


@pytest.mark.usefixtures("no_final_sleep")
def test_call_iterate_items_and_records_with_a_scoped_token(sandbox: SandboxHandle) -> None:
    c = client(sandbox, sandbox.token("scraper-runner"))
    # The default logger streams the run's log and polls its status, as against the platform.
    run = c.actor("demo/web-scraper").call(run_input={"maxPages": 2})
    assert run is not None and run.status == "SUCCEEDED"
    quiet = c.actor("demo~web-scraper").call(run_input={"maxPages": 3}, logger=None)
    assert quiet is not None and quiet.id != run.id
    assert c.run(quiet.id).wait_for_finish() is not None

    # Default-run-storage access (D10): the run's dataset and store, through the client.
    dataset = c.dataset(run.default_dataset_id)
    dataset.push_items([{"n": i} for i in range(25)])
    assert [item["n"] for item in dataset.iterate_items()] == list(range(25))
    assert [item["n"] for item in dataset.iterate_items(chunk_size=4)] == list(range(25))
    assert [item["n"] for item in dataset.iterate_items(offset=5, limit=3)] == [5, 6, 7]
    assert [item["n"] for item in dataset.iterate_items(desc=True, limit=2)] == [24, 23]

    store = c.key_value_store(run.default_key_value_store_id)
    assert store.get_record("INPUT")["value"] == {"maxPages": 2}
    store.set_record("OUTPUT", {"pages": [1, 2]})
    store.set_record("note.txt", "hello", content_type="text/plain")
    store.set_record("big", {"pad": "x" * 4096})  # over 1 KiB: sent gzip-compressed
    assert store.get_record("OUTPUT")["value"] == {"pages": [1, 2]}
    note = store.get_record("note.txt")
    assert note is not None and note["value"] == "hello"
    assert note["content_type"].startswith("text/plain")
    assert store.get_record("big")["value"] == {"pad": "x" * 4096}
    assert store.get_record("missing") is None
    store.delete_record("note.txt")
    assert [k.key for k in store.list_keys().items] == ["INPUT", "OUTPUT", "big"]

    # The same token, outside its scope: the client raises the platform's error type.
    with pytest.raises(ApifyApiError) as info:
        c.key_value_store("demo~crawler-state").set_record("STATE", {"x": 1})
    assert info.value.type == "insufficient-permissions"


def test_get_or_create_storages(sandbox: SandboxHandle) -> None:
    creator = client(sandbox, sandbox.token("storage-creator"))
    made = creator.datasets().get_or_create(name="exports-2025")
    again = creator.datasets().get_or_create(name="exports-2025")
    assert made.id == again.id and made.name == "exports-2025"
    store = creator.key_value_stores().get_or_create(name="exports-kvs")
    creator.key_value_store(store.id).set_record("k", {"v": 1})  # D4: write on its creation
    queue = creator.request_queues().get_or_create(name="exports-queue")
    assert creator.request_queue(queue.id).get() is not None
    # An existing storage the token may not read is not handed out by name (D4).
    with pytest.raises(ApifyApiError) as info:
        creator.datasets().get_or_create(name="products")
    assert info.value.type == "insufficient-permissions"
    reader = client(sandbox, sandbox.token("storage-reader"))
    assert reader.datasets().get_or_create(name="products").name == "products"
    with pytest.raises(ApifyApiError) as info:
        reader.datasets().get_or_create(name="brand-new")
    assert info.value.type == "insufficient-permissions"


def test_webhooks_and_schedules_created_through_the_client(sandbox: SandboxHandle) -> None:
    admin = client(sandbox, sandbox.admin_token)
    actor_id = admin.actor("demo~web-scraper").get().id
    task_id = admin.task("demo~nightly-crawl").get().id
    hook = admin.webhooks().create(
        event_types=["ACTOR.RUN.SUCCEEDED"],
        request_url="https://hooks.example.com/done",
        actor_id=actor_id,
    )
    assert hook.condition.actor_id == actor_id
    assert admin.webhook(hook.id).update(request_url="https://hooks.example.com/v2").request_url
    admin.webhook(hook.id).delete()
    assert admin.webhook(hook.id).get() is None

    # A scoped token: schedules:create + read on the task it triggers (D8).
    creator = client(sandbox, sandbox.token("schedule-creator"))
    schedule = creator.schedules().create(
        cron_expression="0 4 * * *",
        is_enabled=True,
        is_exclusive=False,
        name="early-crawl",
        actions=[{"type": "RUN_ACTOR_TASK", "actorTaskId": task_id}],
    )
    assert schedule.name == "early-crawl" and schedule.actions[0].actor_task_id == task_id
    assert creator.schedule(schedule.id).update(cron_expression="0 5 * * *").cron_expression
    with pytest.raises(ApifyApiError) as info:
        creator.schedules().create(
            cron_expression="@daily",
            is_enabled=True,
            is_exclusive=False,
            name="run-scraper",
            actions=[{"type": "RUN_ACTOR", "actorId": actor_id}],  # no run on the Actor
        )
    assert info.value.type == "insufficient-permissions"
    with pytest.raises(ApifyApiError) as info:
        creator.webhooks().create(
            event_types=["ACTOR.RUN.FAILED"],
            request_url="https://hooks.example.com/x",
            actor_id=actor_id,
        )
    assert info.value.type == "insufficient-permissions"
