"""Seeds: what each one contains, and bad seed names."""

from __future__ import annotations

import pytest

from tokenguard.sandbox.seed import build
from tokenguard.sandbox.state import Kind


def test_empty_seed_has_only_the_admin_token() -> None:
    state = build("empty")
    assert [t.name for t in state.tokens.values()] == ["sandbox-admin"]
    assert state.admin_token.scope is None
    assert all(not state.all(kind) for kind in Kind)


def test_bench_seed_has_n_of_each_storage() -> None:
    state = build("bench:7")
    for kind in (Kind.DATASET, Kind.KEY_VALUE_STORE, Kind.REQUEST_QUEUE):
        assert len(state.all(kind)) == 7
    assert not state.all(Kind.ACTOR)


def test_demo_seed_names_resolve() -> None:
    state = build("demo")
    for kind, name in (
        (Kind.ACTOR, "web-scraper"),
        (Kind.ACTOR, "pdf-export"),
        (Kind.ACTOR, "seo-audit"),
        (Kind.TASK, "nightly-crawl"),
        (Kind.DATASET, "products"),
        (Kind.KEY_VALUE_STORE, "crawler-state"),
        (Kind.REQUEST_QUEUE, "crawl-queue"),
        (Kind.SCHEDULE, "nightly"),
        (Kind.SCHEDULE, "weekly-audit"),
    ):
        resource, by_name = state.lookup(kind, f"demo~{name}")
        assert resource is not None and by_name
        assert state.lookup(kind, resource.id) == (resource, False)
    assert state.lookup(Kind.ACTOR, "someone-else~web-scraper") == (None, True)
    assert len(state.all(Kind.WEBHOOK)) == 1 and len(state.all(Kind.RUN)) == 2
    # Seeded grants are stored resolved to IDs, like the token API does (D16).
    runner = state.token_named("scraper-runner")
    assert runner.scope is not None
    assert {g["id"] for g in runner.scope["resources"]} == {
        state.names[Kind.ACTOR]["web-scraper"],
        state.names[Kind.DATASET]["products"],
    }


@pytest.mark.parametrize("seed", ["", "full", "bench:", "bench:0", "bench:x", "bench:-1"])
def test_bad_seed_names(seed: str) -> None:
    with pytest.raises(ValueError):
        build(seed)
