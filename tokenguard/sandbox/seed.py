"""Seeds: the accounts a sandbox can start with (``demo``, ``empty``, ``bench:N``).

``empty`` — user ``sandbox`` and the unscoped admin token ``sandbox-admin``, nothing else.

``demo`` — user ``demo``, a small believable account (address anything as ``demo~<name>``):

- Actors: ``web-scraper``, ``pdf-export``, ``seo-audit``.
- Tasks: ``nightly-crawl`` (web-scraper), ``weekly-seo`` (seo-audit), ``invoice-pdfs``
  (pdf-export).
- Datasets: ``products`` (3 items), ``seo-reports`` (2 items), ``invoices`` (empty).
- Key-value stores: ``crawler-state`` (records ``STATE``, ``config``), ``exports``
  (record ``latest.pdf``).
- Request queues: ``crawl-queue``, ``seo-queue``.
- One finished run of ``web-scraper`` started from ``nightly-crawl``, with its unnamed default
  dataset (2 items), key-value store (``INPUT``, ``OUTPUT``) and request queue; and one run of
  ``seo-audit``.
- Schedules ``nightly`` (RUN_ACTOR_TASK nightly-crawl) and ``weekly-audit`` (RUN_ACTOR
  seo-audit, Mondays 06:00).
- Webhook on ``web-scraper`` (``ACTOR.RUN.FAILED`` -> https://hooks.example.com/apify).
- Tokens, made through the token API's own code path (:func:`handlers.create_token`):

  ================== ===========================================================================
  name               scope
  ================== ===========================================================================
  sandbox-admin      unscoped (the admin token; ``SandboxHandle.admin_token``)
  ops-unscoped       unscoped
  scraper-runner     actor web-scraper [read, run]; dataset products [read, write];
                     defaultRunStorageAccess true; actorRunMode restricted
  storage-reader     account storages [read]
  seo-readonly       actor seo-audit [read]; task weekly-seo [read]; dataset seo-reports [read]
  task-manager       account tasks [read, write, create]; account actors [run]
  schedule-creator   account schedules [create]; task nightly-crawl [read]
  storage-creator    account storages [create]
  expiring-reporter  account storages [read]; expires 1 day after the sandbox starts
  no-permissions     an empty scope (valid token, may do nothing)
  ================== ===========================================================================

  Secrets are never printed; tests get them with ``SandboxHandle.token("scraper-runner")``
  (or ``state.token_named(name).secret`` on the server thread).

``bench:N`` — user ``sandbox``, the admin token, and N each of datasets (``bench-dataset-N``,
5 items each), key-value stores (``bench-kvs-N``, one record ``RECORD``) and request queues
(``bench-queue-N``).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from tokenguard.sandbox.handlers import create_token
from tokenguard.sandbox.state import (
    Dataset,
    KeyValueStore,
    Kind,
    Record,
    Resource,
    SandboxState,
    new_state,
)

_JSON = "application/json; charset=utf-8"

DEMO_TOKENS: dict[str, dict[str, Any] | None] = {
    "ops-unscoped": None,
    "scraper-runner": {
        "resources": [
            {"type": "actor", "id": "demo~web-scraper", "permissions": ["read", "run"]},
            {"type": "dataset", "id": "demo~products", "permissions": ["read", "write"]},
        ],
        "defaultRunStorageAccess": True,
        "actorRunMode": "restricted",
    },
    "storage-reader": {"account": {"storages": ["read"]}},
    "seo-readonly": {
        "resources": [
            {"type": "actor", "id": "demo~seo-audit", "permissions": ["read"]},
            {"type": "task", "id": "demo~weekly-seo", "permissions": ["read"]},
            {"type": "dataset", "id": "demo~seo-reports", "permissions": ["read"]},
        ]
    },
    "task-manager": {"account": {"tasks": ["read", "write", "create"], "actors": ["run"]}},
    "schedule-creator": {
        "account": {"schedules": ["create"]},
        "resources": [{"type": "task", "id": "demo~nightly-crawl", "permissions": ["read"]}],
    },
    "storage-creator": {"account": {"storages": ["create"]}},
    "expiring-reporter": {"account": {"storages": ["read"]}},
    "no-permissions": {},
}

SEEDS = ("demo", "empty", "bench:N")


def _record(value: Any) -> Record:
    return Record(json.dumps(value).encode(), _JSON)


def _named_storage(state: SandboxState, kind: Kind, name: str) -> Resource:
    return state.new_storage(kind, name)


def demo() -> SandboxState:
    """The ``demo`` account (see the module docstring)."""
    state = new_state("demo")
    scraper = state.new_resource(
        Kind.ACTOR, "web-scraper", title="Web Scraper", description="Crawls websites."
    )
    pdf = state.new_resource(
        Kind.ACTOR, "pdf-export", title="PDF Export", description="Renders pages to PDF."
    )
    seo = state.new_resource(
        Kind.ACTOR, "seo-audit", title="SEO Audit", description="Audits pages for SEO issues."
    )
    nightly = state.new_resource(
        Kind.TASK,
        "nightly-crawl",
        actId=scraper.id,
        input={"startUrls": [{"url": "https://shop.example.com"}]},
    )
    weekly = state.new_resource(
        Kind.TASK, "weekly-seo", actId=seo.id, input={"url": "https://www.example.com"}
    )
    state.new_resource(Kind.TASK, "invoice-pdfs", actId=pdf.id, input={})

    products = _named_storage(state, Kind.DATASET, "products")
    assert isinstance(products, Dataset)
    products.items.extend(
        [
            {"sku": "A-100", "title": "Blue mug", "price": 9.5},
            {"sku": "A-101", "title": "Red mug", "price": 9.5},
            {"sku": "B-200", "title": "Teapot", "price": 24.0},
        ]
    )
    reports = _named_storage(state, Kind.DATASET, "seo-reports")
    assert isinstance(reports, Dataset)
    reports.items.extend(
        [
            {"url": "https://www.example.com/", "score": 91},
            {"url": "https://www.example.com/blog", "score": 78},
        ]
    )
    _named_storage(state, Kind.DATASET, "invoices")
    crawler_state = _named_storage(state, Kind.KEY_VALUE_STORE, "crawler-state")
    assert isinstance(crawler_state, KeyValueStore)
    crawler_state.records["STATE"] = _record({"lastUrl": "https://shop.example.com/p/3"})
    crawler_state.records["config"] = _record({"maxPages": 100})
    exports = _named_storage(state, Kind.KEY_VALUE_STORE, "exports")
    assert isinstance(exports, KeyValueStore)
    exports.records["latest.pdf"] = Record(b"%PDF-1.4 sandbox\n", "application/pdf")
    _named_storage(state, Kind.REQUEST_QUEUE, "crawl-queue")
    _named_storage(state, Kind.REQUEST_QUEUE, "seo-queue")

    run = state.start_run(scraper, task=nightly, run_input=_record({"maxPages": 10}))
    run_dataset = state.get(Kind.DATASET, run.dataset_id)
    assert isinstance(run_dataset, Dataset)
    run_dataset.items.extend(
        [{"url": "https://shop.example.com/p/1"}, {"url": "https://shop.example.com/p/2"}]
    )
    run_kvs = state.get(Kind.KEY_VALUE_STORE, run.kvs_id)
    assert isinstance(run_kvs, KeyValueStore)
    run_kvs.records["OUTPUT"] = _record({"pages": 2})
    state.start_run(seo, task=weekly)

    state.new_resource(
        Kind.SCHEDULE,
        "nightly",
        cronExpression="0 2 * * *",
        timezone="UTC",
        isEnabled=True,
        isExclusive=True,
        actions=[{"id": "nightlyAction0001", "type": "RUN_ACTOR_TASK", "actorTaskId": nightly.id}],
    )
    state.new_resource(
        Kind.SCHEDULE,
        "weekly-audit",
        cronExpression="0 6 * * 1",
        timezone="Europe/Prague",
        isEnabled=True,
        isExclusive=False,
        description="Weekly SEO audit of the main site",
        actions=[{"id": "weeklyAction00001", "type": "RUN_ACTOR", "actorId": seo.id}],
    )
    state.new_resource(
        Kind.WEBHOOK,
        None,
        condition={"actorId": scraper.id},
        eventTypes=["ACTOR.RUN.FAILED"],
        requestUrl="https://hooks.example.com/apify",
        description="Alert on failed scrapes",
    )

    expiry = state.clock.now() + timedelta(days=1)
    for name, scope in DEMO_TOKENS.items():
        body: dict[str, Any] = {"name": name, "scope": scope}
        if name == "expiring-reporter":
            body["expiresAt"] = expiry.isoformat()
        create_token(state, body)
    return state


def empty() -> SandboxState:
    """Just the user and the admin token."""
    return new_state("sandbox")


def bench(count: int) -> SandboxState:
    """``count`` of each storage type, for benchmarks."""
    state = new_state("sandbox")
    for i in range(count):
        dataset = state.new_storage(Kind.DATASET, f"bench-dataset-{i}")
        assert isinstance(dataset, Dataset)
        dataset.items.extend({"n": n, "text": f"item {n} of dataset {i}"} for n in range(5))
        kvs = state.new_storage(Kind.KEY_VALUE_STORE, f"bench-kvs-{i}")
        assert isinstance(kvs, KeyValueStore)
        kvs.records["RECORD"] = _record({"n": i})
        state.new_storage(Kind.REQUEST_QUEUE, f"bench-queue-{i}")
    return state


def build(seed: str) -> SandboxState:
    """The state for a seed name: ``demo``, ``empty`` or ``bench:N`` (ValueError otherwise)."""
    if seed == "demo":
        return demo()
    if seed == "empty":
        return empty()
    if seed.startswith("bench:"):
        raw = seed.partition(":")[2]
        if raw.isdigit() and 0 < int(raw) <= 100_000:
            return bench(int(raw))
        raise ValueError(f"bench seed needs a count from 1 to 100000, got {raw!r}")
    raise ValueError(f"unknown seed {seed!r} (use demo, empty or bench:N)")
