"""Unit tests of the scope model: each documented rule (D1-D18) with an allow and a deny case,
plus required_access, scope_covers, the escalation helpers and effective_access."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenguard.permissions import (
    Account,
    AccountGroup,
    Decision,
    GeneralAccess,
    GrantRoute,
    Operation,
    Permission,
    RequiredAccess,
    Resource,
    ResourceGrant,
    ResourceIndex,
    ResourceKind,
    ResourceType,
    RunMode,
    ScheduleAction,
    ScheduleActionType,
    Scope,
    TokenContext,
    anonymous_read_allowed,
    decide,
    effective_access,
    general_access_of,
    required_access,
    schedule_escalation_paths,
    scope_covers,
    unscoped_run_paths,
    webhook_conditions,
)

#: Budgets come from the profile in tests/conftest.py; TG_HYPOTHESIS_EXAMPLES=N digs deeper.
_BUDGET = (
    {"max_examples": int(os.environ["TG_HYPOTHESIS_EXAMPLES"])}
    if os.environ.get("TG_HYPOTHESIS_EXAMPLES")
    else {}
)
R, W, X, C = Permission.READ, Permission.WRITE, Permission.RUN, Permission.CREATE
K = ResourceKind
KV = ResourceKind.KEY_VALUE_STORE
NOW = datetime(2026, 1, 1, tzinfo=UTC)
ACCOUNT = Account("alice")
OPEN = Account("alice", GeneralAccess.ANYONE_WITH_ID_CAN_READ)

ACTOR = Resource(K.ACTOR, "act1", name="scraper", username="alice")
ACTOR2 = Resource(K.ACTOR, "act2", name="other", username="alice")
TASK = Resource(K.TASK, "task1", name="daily", username="alice", actor_id="act1")
RUN = Resource(
    K.RUN,
    "run1",
    actor_id="act1",
    default_dataset_id="dsRun",
    default_key_value_store_id="kvRun",
    default_request_queue_id="rqRun",
)
TASK_RUN = Resource(K.RUN, "run2", actor_id="act1", task_id="task1", default_dataset_id="dsT")
DATASET = Resource(K.DATASET, "ds1", name="results", username="alice")
RUN_DATASET = Resource(K.DATASET, "dsRun")
KVS = Resource(K.KEY_VALUE_STORE, "kv1")
RQ = Resource(K.REQUEST_QUEUE, "rq1")
SCHEDULE = Resource(
    K.SCHEDULE, "sch1", actions=(ScheduleAction(ScheduleActionType.RUN_ACTOR, "act1"),)
)
HOOK_ACTOR = Resource(K.WEBHOOK, "wh1", actor_id="act1")
HOOK_TASK = Resource(K.WEBHOOK, "wh2", task_id="task1")
ALL = (
    ACTOR,
    ACTOR2,
    TASK,
    RUN,
    TASK_RUN,
    DATASET,
    RUN_DATASET,
    KVS,
    RQ,
    SCHEDULE,
    HOOK_ACTOR,
    HOOK_TASK,
)


def scope(
    account: dict[AccountGroup, set[Permission]] | None = None,
    *grants: tuple[ResourceType, str, set[Permission]],
    dra: bool = False,
    mode: RunMode = RunMode.RESTRICTED,
) -> Scope:
    return Scope(
        account={g: frozenset(p) for g, p in (account or {}).items()},
        resources=tuple(ResourceGrant(t, i, frozenset(p)) for t, i, p in grants),
        default_run_storage_access=dra,
        actor_run_mode=mode,
    )


def tok(s: Scope, **kw: object) -> TokenContext:
    return TokenContext("tok1", s, **kw)  # type: ignore[arg-type]


def check(
    s: Scope | TokenContext | None,
    op: Operation,
    target: Resource | None,
    account: Account = ACCOUNT,
    **kw: object,
) -> Decision:
    token = tok(s) if isinstance(s, Scope) else s
    return decide(token, op, target, account, related=ALL, now=NOW, **kw)  # type: ignore[arg-type]


def allowed(d: Decision, route: GrantRoute | None) -> None:
    assert d.allowed, d.explain()
    assert d.status == 200
    assert d.grant is route, d.explain()


def denied(d: Decision, status: int = 403) -> None:
    assert not d.allowed, d.explain()
    assert d.status == status, d.explain()
    assert d.grant is None


EMPTY = scope()


# D1: out of scope -> 403; not existing -> 404 whoever asks.
def test_d1_outside_scope_is_403_and_missing_is_404() -> None:
    d = check(EMPTY, Operation.DATASET_GET, DATASET)
    denied(d, 403)
    assert "missing: read on dataset ds1" in d.reasons
    denied(check(EMPTY, Operation.DATASET_GET, None), 404)
    denied(check(Scope.full(), Operation.DATASET_GET, None), 404)
    allowed(check(Scope.full(), Operation.DATASET_GET, DATASET), GrantRoute.UNSCOPED)


# D2: lists never 403 for a valid token; anonymous lists are 401.
def test_d2_lists_never_forbidden() -> None:
    for op in (Operation.DATASET_LIST, Operation.ACTOR_LIST, Operation.RUN_LIST):
        allowed(check(EMPTY, op, None), None)
        denied(check(None, op, None, OPEN), 401)


# D3: write implies read, for resource grants and account-level.
def test_d3_write_implies_read() -> None:
    by_resource = scope(None, (ResourceType.DATASET, "ds1", {W}))
    d = check(by_resource, Operation.DATASET_ITEMS_GET, DATASET)
    allowed(d, GrantRoute.RESOURCE)
    assert d.reasons == ("resource dataset ds1: write",)
    by_account = scope({AccountGroup.STORAGES: {W}})
    d = check(by_account, Operation.KV_STORE_KEYS, KVS)
    allowed(d, GrantRoute.ACCOUNT)
    assert d.reasons == ("account-level storages: write",)
    read_only = scope(None, (ResourceType.DATASET, "ds1", {R}))
    denied(check(read_only, Operation.DATASET_ITEMS_PUSH, DATASET))


# D4: create needs explicit account-level create; full access to what the token created.
def test_d4_create_needs_create_permission() -> None:
    creator = scope({AccountGroup.STORAGES: {C}})
    new = Resource(K.DATASET, "")
    d = check(creator, Operation.DATASET_CREATE, new)
    allowed(d, GrantRoute.ACCOUNT)
    assert d.reasons == ("account-level storages: create",)
    denied(check(scope({AccountGroup.STORAGES: {R, W}}), Operation.DATASET_CREATE, new))
    denied(check(scope({AccountGroup.TASKS: {C}}), Operation.DATASET_CREATE, new))


def test_d4_created_resources_are_fully_accessible() -> None:
    mine = Resource(K.DATASET, "dsMine", created_by_token="tok1")
    theirs = Resource(K.DATASET, "dsTheirs", created_by_token="tok2")
    creator = scope({AccountGroup.STORAGES: {C}})
    for op in (Operation.DATASET_ITEMS_PUSH, Operation.DATASET_DELETE, Operation.DATASET_GET):
        d = check(creator, op, mine)
        allowed(d, GrantRoute.CREATED)
        assert d.reasons == ("created by this token",)
        denied(check(creator, op, theirs))


def test_d4_get_or_create_of_existing_named_storage_needs_read() -> None:
    existing = Resource(K.DATASET, "ds1", name="results", username="alice")
    allowed(
        check(scope(None, (ResourceType.DATASET, "ds1", {R})), Operation.DATASET_CREATE, existing),
        GrantRoute.RESOURCE,
    )
    denied(check(scope({AccountGroup.STORAGES: {C}}), Operation.DATASET_CREATE, existing))


# D5: scoped tokens never create/update/delete Actors; get needs read, run needs run.
def test_d5_actors() -> None:
    strong = scope({AccountGroup.ACTORS: {R, X}})
    for op in (Operation.ACTOR_CREATE, Operation.ACTOR_UPDATE, Operation.ACTOR_DELETE):
        target = Resource(K.ACTOR, "") if op is Operation.ACTOR_CREATE else ACTOR
        d = check(strong, op, target)
        denied(d)
        assert "scoped tokens never" in d.reasons[0]
        allowed(check(Scope.full(), op, target), GrantRoute.UNSCOPED)
    runner = scope(None, (ResourceType.ACTOR, "act1", {X}))
    allowed(check(runner, Operation.ACTOR_RUN, ACTOR), GrantRoute.RESOURCE)
    denied(check(runner, Operation.ACTOR_RUN, ACTOR2))
    denied(check(runner, Operation.ACTOR_GET, ACTOR))  # run does not imply read
    allowed(check(strong, Operation.ACTOR_GET, ACTOR), GrantRoute.ACCOUNT)


# D6: runs readable with read or run on the Actor, or read on the task; abort needs run.
def test_d6_runs() -> None:
    actor_read = scope(None, (ResourceType.ACTOR, "act1", {R}))
    actor_run = scope(None, (ResourceType.ACTOR, "act1", {X}))
    task_read = scope(None, (ResourceType.TASK, "task1", {R}))
    allowed(check(actor_read, Operation.RUN_GET, RUN), GrantRoute.RESOURCE)
    allowed(check(actor_run, Operation.RUN_GET, RUN), GrantRoute.RESOURCE)
    allowed(check(actor_read, Operation.ACTOR_RUNS_LIST, ACTOR), GrantRoute.RESOURCE)
    denied(check(task_read, Operation.ACTOR_RUNS_LIST, ACTOR))
    allowed(check(task_read, Operation.TASK_RUNS_LIST, TASK), GrantRoute.RESOURCE)
    allowed(check(actor_run, Operation.TASK_RUNS_LIST, TASK), GrantRoute.RESOURCE)
    denied(check(EMPTY, Operation.TASK_RUNS_LIST, TASK))
    denied(check(EMPTY, Operation.TASK_RUNS_LIST, None), 404)
    allowed(check(task_read, Operation.RUN_GET, TASK_RUN), GrantRoute.RESOURCE)
    denied(check(task_read, Operation.RUN_GET, RUN))  # not a run of the task
    denied(check(EMPTY, Operation.RUN_GET, RUN))
    allowed(check(actor_run, Operation.RUN_ABORT, RUN), GrantRoute.RESOURCE)
    d = check(actor_read, Operation.RUN_ABORT, RUN)
    denied(d)
    assert d.reasons == ("missing: run on actor act1",)


# D7: tasks.
def test_d7_task_run_needs_read_on_task_and_run_on_actor() -> None:
    both = scope(None, (ResourceType.TASK, "task1", {R}), (ResourceType.ACTOR, "act1", {X}))
    d = check(both, Operation.TASK_RUN, TASK)
    allowed(d, GrantRoute.RESOURCE)
    assert d.reasons == ("resource task task1: read", "resource actor act1: run")
    only_task = scope(None, (ResourceType.TASK, "task1", {R, W}))
    d = check(only_task, Operation.TASK_RUN, TASK)
    denied(d)
    assert "missing: run on actor act1" in d.reasons
    denied(check(scope(None, (ResourceType.ACTOR, "act1", {X})), Operation.TASK_RUN, TASK))


def test_d7_task_create_update_delete() -> None:
    new_task = Resource(K.TASK, "", actor_id="act1")
    creator = scope({AccountGroup.TASKS: {C}}, (ResourceType.ACTOR, "act1", {X}))
    allowed(check(creator, Operation.TASK_CREATE, new_task), GrantRoute.ACCOUNT)
    denied(check(scope({AccountGroup.TASKS: {C}}), Operation.TASK_CREATE, new_task))
    writer = scope(None, (ResourceType.TASK, "task1", {W}), (ResourceType.ACTOR, "act1", {X}))
    allowed(check(writer, Operation.TASK_UPDATE, TASK), GrantRoute.RESOURCE)
    moved = Resource(K.TASK, "task1", actor_id="act2")
    d = check(writer, Operation.TASK_UPDATE, TASK, new=moved)
    denied(d)
    assert "missing: run on actor act2" in d.reasons
    write_only = scope(None, (ResourceType.TASK, "task1", {W}))
    allowed(check(write_only, Operation.TASK_DELETE, TASK), GrantRoute.RESOURCE)
    denied(check(write_only, Operation.TASK_UPDATE, TASK))
    denied(check(scope(None, (ResourceType.TASK, "task1", {R})), Operation.TASK_DELETE, TASK))
    allowed(check(write_only, Operation.TASK_GET, TASK), GrantRoute.RESOURCE)


# D8: schedules.
def test_d8_schedules() -> None:
    to_task = Resource(
        K.SCHEDULE, "", actions=(ScheduleAction(ScheduleActionType.RUN_ACTOR_TASK, "task1"),)
    )
    to_actor = Resource(K.SCHEDULE, "", actions=SCHEDULE.actions)
    creator = scope({AccountGroup.SCHEDULES: {C}}, (ResourceType.TASK, "task1", {R}))
    allowed(check(creator, Operation.SCHEDULE_CREATE, to_task), GrantRoute.ACCOUNT)
    d = check(creator, Operation.SCHEDULE_CREATE, to_actor)
    denied(d)
    assert "missing: run on actor act1" in d.reasons
    denied(
        check(scope(None, (ResourceType.TASK, "task1", {R})), Operation.SCHEDULE_CREATE, to_task)
    )
    writer = scope(None, (ResourceType.SCHEDULE, "sch1", {W}), (ResourceType.ACTOR, "act1", {X}))
    allowed(check(writer, Operation.SCHEDULE_UPDATE, SCHEDULE), GrantRoute.RESOURCE)
    retarget = Resource(
        K.SCHEDULE, "sch1", actions=(ScheduleAction(ScheduleActionType.RUN_ACTOR, "act2"),)
    )
    denied(check(writer, Operation.SCHEDULE_UPDATE, SCHEDULE, new=retarget))
    write_only = scope(None, (ResourceType.SCHEDULE, "sch1", {W}))
    allowed(check(write_only, Operation.SCHEDULE_DELETE, SCHEDULE), GrantRoute.RESOURCE)
    denied(check(write_only, Operation.SCHEDULE_UPDATE, SCHEDULE))
    allowed(check(write_only, Operation.SCHEDULE_GET, SCHEDULE), GrantRoute.RESOURCE)
    denied(check(EMPTY, Operation.SCHEDULE_GET, SCHEDULE))


# D9: storage reads vs writes.
@pytest.mark.parametrize(
    ("op", "target", "perm"),
    [
        (Operation.DATASET_GET, DATASET, R),
        (Operation.DATASET_ITEMS_GET, DATASET, R),
        (Operation.DATASET_ITEMS_PUSH, DATASET, W),
        (Operation.DATASET_UPDATE, DATASET, W),
        (Operation.DATASET_DELETE, DATASET, W),
        (Operation.KV_STORE_GET, KVS, R),
        (Operation.KV_STORE_KEYS, KVS, R),
        (Operation.RECORD_GET, KVS, R),
        (Operation.RECORD_PUT, KVS, W),
        (Operation.RECORD_DELETE, KVS, W),
        (Operation.KV_STORE_DELETE, KVS, W),
        (Operation.REQUEST_QUEUE_GET, RQ, R),
        (Operation.REQUEST_QUEUE_UPDATE, RQ, W),
    ],
)
def test_d9_storage_operations(op: Operation, target: Resource, perm: Permission) -> None:
    rtype = ResourceType(target.kind.value)
    allowed(check(scope(None, (rtype, target.id, {perm})), op, target), GrantRoute.RESOURCE)
    other = R if perm is W else None
    weaker = scope(None, (rtype, target.id, {other})) if other else EMPTY
    denied(check(weaker, op, target))
    denied(check(scope(None, (rtype, "elsewhere", {R, W})), op, target))


# D10: default run storages follow the run's readability when the toggle is on.
def test_d10_default_run_storage_access() -> None:
    reader = (ResourceType.ACTOR, "act1", {X})
    on = scope(None, reader, dra=True)
    off = scope(None, reader, dra=False)
    d = check(on, Operation.DATASET_ITEMS_PUSH, RUN_DATASET)
    allowed(d, GrantRoute.DEFAULT_RUN_STORAGE)
    assert d.reasons == ("default storage of run run1 which it may read",)
    denied(check(off, Operation.DATASET_ITEMS_GET, RUN_DATASET))
    denied(check(scope(None, dra=True), Operation.DATASET_ITEMS_GET, RUN_DATASET))
    denied(check(on, Operation.DATASET_GET, DATASET))  # not a default storage


# D11: anyone with the ID may read storages and runs; never by name, never writes.
def test_d11_general_resource_access() -> None:
    d = check(None, Operation.DATASET_ITEMS_GET, DATASET, OPEN)
    allowed(d, GrantRoute.ANONYMOUS)
    allowed(check(EMPTY, Operation.RUN_GET, RUN, OPEN), GrantRoute.ANONYMOUS)
    allowed(check(EMPTY, Operation.RECORD_GET, KVS, OPEN), GrantRoute.ANONYMOUS)
    denied(check(None, Operation.DATASET_ITEMS_GET, DATASET, ACCOUNT), 401)
    denied(check(EMPTY, Operation.DATASET_ITEMS_GET, DATASET, ACCOUNT), 403)
    denied(check(None, Operation.DATASET_GET, DATASET, OPEN, by_name=True), 401)
    denied(check(EMPTY, Operation.DATASET_GET, DATASET, OPEN, by_name=True), 403)
    denied(check(None, Operation.DATASET_ITEMS_PUSH, DATASET, OPEN), 401)
    denied(check(EMPTY, Operation.RECORD_PUT, KVS, OPEN), 403)
    denied(check(EMPTY, Operation.TASK_GET, TASK, OPEN), 403)  # tasks are not affected
    denied(check(None, Operation.DATASET_GET, None, OPEN), 404)
    # A token's own route wins over anonymous (D18 order).
    own = scope(None, (ResourceType.DATASET, "ds1", {R}))
    allowed(check(own, Operation.DATASET_GET, DATASET, OPEN), GrantRoute.RESOURCE)


# D11 per resource (general-resource-access.md, "Per-resource access control" and "Sharing
# storages by name"): a storage's or run's own setting takes precedence over the account's.
SHARED_DS = Resource(
    K.DATASET,
    "dsShared",
    name="public",
    username="alice",
    general_access=GeneralAccess.ANYONE_WITH_ID_CAN_READ,
)
NAMED_DS = Resource(
    K.DATASET,
    "dsNamed",
    name="feed",
    username="alice",
    general_access=GeneralAccess.ANYONE_WITH_NAME_CAN_READ,
)
CLOSED_KVS = Resource(K.KEY_VALUE_STORE, "kvClosed", general_access=GeneralAccess.RESTRICTED)
SHARED_RUN = replace(TASK_RUN, id="run9", general_access=GeneralAccess.ANYONE_WITH_ID_CAN_READ)


def test_d11_a_shared_storage_of_a_restricted_account_is_read_by_anyone_with_its_id() -> None:
    for token in (None, EMPTY):
        allowed(check(token, Operation.DATASET_GET, SHARED_DS), GrantRoute.ANONYMOUS)
        allowed(check(token, Operation.DATASET_ITEMS_GET, SHARED_DS), GrantRoute.ANONYMOUS)
    d = check(None, Operation.DATASET_GET, SHARED_DS)
    assert d.reasons == ("anyone with the ID may read (its own general access: "
                         "ANYONE_WITH_ID_CAN_READ)",)  # fmt: skip
    # Never writes, never by name, and other storages of the account stay restricted.
    denied(check(None, Operation.DATASET_ITEMS_PUSH, SHARED_DS), 401)
    denied(check(EMPTY, Operation.DATASET_DELETE, SHARED_DS), 403)
    denied(check(None, Operation.DATASET_GET, SHARED_DS, by_name=True), 401)
    denied(check(EMPTY, Operation.DATASET_GET, SHARED_DS, by_name=True), 403)
    denied(check(None, Operation.DATASET_GET, DATASET), 401)
    denied(check(None, Operation.DATASET_GET, None), 401)  # missing: the account decides
    # A token's own route still wins (D18 order).
    own = scope(None, (ResourceType.DATASET, "dsShared", {R}))
    allowed(check(own, Operation.DATASET_GET, SHARED_DS), GrantRoute.RESOURCE)


def test_d11_a_restricted_storage_of_an_open_account_needs_a_token() -> None:
    denied(check(None, Operation.KV_STORE_GET, CLOSED_KVS, OPEN), 401)
    denied(check(None, Operation.RECORD_GET, CLOSED_KVS, OPEN), 401)
    denied(check(EMPTY, Operation.KV_STORE_KEYS, CLOSED_KVS, OPEN), 403)
    reader = scope(None, (ResourceType.KEY_VALUE_STORE, "kvClosed", {R}))
    allowed(check(reader, Operation.KV_STORE_KEYS, CLOSED_KVS, OPEN), GrantRoute.RESOURCE)
    # The rest of the open account is still open; a missing one is a 404.
    allowed(check(None, Operation.KV_STORE_GET, KVS, OPEN), GrantRoute.ANONYMOUS)
    denied(check(None, Operation.KV_STORE_GET, None, OPEN), 404)


def test_d11_anyone_with_name_can_read_opens_reads_by_id_and_by_name() -> None:
    for by_name in (False, True):
        for token in (None, EMPTY):
            d = check(token, Operation.DATASET_ITEMS_GET, NAMED_DS, by_name=by_name)
            allowed(d, GrantRoute.ANONYMOUS)
    assert "ID or name" in check(None, Operation.DATASET_GET, NAMED_DS).reasons[0]
    denied(check(None, Operation.DATASET_ITEMS_PUSH, NAMED_DS, by_name=True), 401)
    denied(check(EMPTY, Operation.DATASET_UPDATE, NAMED_DS, by_name=True), 403)
    # The account's "anyone with ID" never opens names (it is the storage's own level).
    denied(check(None, Operation.DATASET_GET, DATASET, OPEN, by_name=True), 401)


def test_d11_own_general_access_of_runs_and_other_kinds() -> None:
    # A run's own setting follows the same page (runs are shared like storages).
    allowed(check(None, Operation.RUN_GET, SHARED_RUN), GrantRoute.ANONYMOUS)
    denied(check(EMPTY, Operation.RUN_ABORT, SHARED_RUN), 403)
    closed_run = replace(RUN, general_access=GeneralAccess.RESTRICTED)
    denied(check(None, Operation.RUN_GET, closed_run, OPEN), 401)
    # Tasks, Actors and schedules are "not affected by this setting".
    open_task = replace(TASK, general_access=GeneralAccess.ANYONE_WITH_ID_CAN_READ)
    denied(check(None, Operation.TASK_GET, open_task), 401)
    assert general_access_of(open_task, ACCOUNT) is GeneralAccess.RESTRICTED
    assert general_access_of(SHARED_DS, ACCOUNT) is GeneralAccess.ANYONE_WITH_ID_CAN_READ
    assert general_access_of(DATASET, OPEN) is GeneralAccess.ANYONE_WITH_ID_CAN_READ
    assert anonymous_read_allowed(NAMED_DS, ACCOUNT, by_name=True) is True
    assert anonymous_read_allowed(SHARED_DS, ACCOUNT, by_name=True) is False
    assert anonymous_read_allowed(CLOSED_KVS, OPEN) is False


def test_d11_effective_access_applies_the_own_setting_per_resource() -> None:
    twin = replace(SHARED_DS, id="dsTwin", name=None, general_access=None)
    closed = replace(DATASET, id="dsClosed", general_access=GeneralAccess.RESTRICTED)
    resources = (*ALL, SHARED_DS, NAMED_DS, CLOSED_KVS, SHARED_RUN, twin, closed)
    index = ResourceIndex(resources)
    for account in (ACCOUNT, OPEN):
        ea = effective_access("tok1", EMPTY, index, account, now=NOW, include_anonymous=True)
        table = dict(zip(resources, ea.table(), strict=True))
        for r in resources:
            assert ea[r] == table[r]
            expected = anonymous_read_allowed(r, account) and (
                r.kind in (K.DATASET, K.KEY_VALUE_STORE, K.REQUEST_QUEUE, K.RUN)
            )
            assert (R in table[r].permissions) is expected, (account, r.label, table[r])
            if expected:
                assert table[r].routes[R] is GrantRoute.ANONYMOUS
        # Same shape but for the own setting: different classes, different answers.
        assert index.class_of[resources.index(twin)] != index.class_of[resources.index(closed)]
        assert (R in ea[SHARED_DS].permissions) and (R not in ea[CLOSED_KVS].permissions)
        assert (R in ea[twin].permissions) is (account is OPEN)
        assert R not in ea[closed].permissions
    # Without include_anonymous, nothing is opened.
    plain = effective_access("tok1", EMPTY, index, ACCOUNT, now=NOW)
    assert not plain[SHARED_DS].permissions


# D12: authentication first.
def test_d12_invalid_tokens_are_401_even_for_open_reads() -> None:
    full = Scope.full()
    expired = tok(full, expires_at=NOW - timedelta(seconds=1))
    revoked = tok(full, revoked=True)
    for token in (expired, revoked):
        d = check(token, Operation.DATASET_GET, DATASET, OPEN)
        denied(d, 401)
        denied(check(token, Operation.DATASET_LIST, None), 401)
    assert check(expired, Operation.DATASET_GET, DATASET).reasons[0].startswith("token expired")
    assert check(revoked, Operation.DATASET_GET, DATASET).reasons == ("token revoked",)
    valid = tok(full, expires_at=NOW + timedelta(seconds=1))
    allowed(check(valid, Operation.DATASET_GET, DATASET), GrantRoute.UNSCOPED)
    denied(check(None, Operation.DATASET_GET, DATASET), 401)


# D13: users-me and token management need an unscoped token.
@pytest.mark.parametrize("op", [Operation.USERS_ME, Operation.TOKENS_MANAGE])
def test_d13_account_endpoints_unscoped_only(op: Operation) -> None:
    allowed(check(Scope.full(), op, None), GrantRoute.UNSCOPED)
    everything = scope({g: {R, W, X, C} for g in AccountGroup})
    denied(check(everything, op, None), 403)
    denied(check(None, op, None), 401)


# D14: webhooks follow their condition.
def test_d14_webhooks() -> None:
    runner = scope(None, (ResourceType.ACTOR, "act1", {X}))
    for op in (Operation.WEBHOOK_GET, Operation.WEBHOOK_UPDATE, Operation.WEBHOOK_DELETE):
        allowed(check(runner, op, HOOK_ACTOR), GrantRoute.RESOURCE)
        denied(check(runner, op, HOOK_TASK))  # also needs read on the task
        denied(check(scope(None, (ResourceType.ACTOR, "act1", {R})), op, HOOK_ACTOR))
    both = scope(None, (ResourceType.TASK, "task1", {R}), (ResourceType.ACTOR, "act1", {X}))
    allowed(check(both, Operation.WEBHOOK_GET, HOOK_TASK), GrantRoute.RESOURCE)
    new_hook = Resource(K.WEBHOOK, "", actor_id="act1")
    allowed(check(runner, Operation.WEBHOOK_CREATE, new_hook), GrantRoute.RESOURCE)
    denied(check(runner, Operation.WEBHOOK_CREATE, Resource(K.WEBHOOK, "", actor_id="act2")))
    moved = Resource(K.WEBHOOK, "wh1", actor_id="act2")
    denied(check(runner, Operation.WEBHOOK_UPDATE, HOOK_ACTOR, new=moved))
    # Creating a webhook gives no access of its own: the condition governs (D14).
    mine = Resource(K.WEBHOOK, "wh9", actor_id="act1", created_by_token="tok1")
    allowed(check(runner, Operation.WEBHOOK_GET, mine), GrantRoute.RESOURCE)
    denied(check(EMPTY, Operation.WEBHOOK_GET, mine))


# D15: unscoped tokens may do everything that exists.
def test_d15_unscoped() -> None:
    for op, target in [
        (Operation.TASK_RUN, TASK),
        (Operation.RECORD_DELETE, KVS),
        (Operation.SCHEDULE_CREATE, Resource(K.SCHEDULE, "")),
    ]:
        allowed(check(Scope.full(), op, target), GrantRoute.UNSCOPED)
    denied(check(Scope.full(), Operation.TASK_RUN, None), 404)


# D1 for references: with complete facts, a reference to a missing resource is a 404.
def test_d1_missing_references() -> None:
    orphan = Resource(K.TASK, "task9", actor_id="gone")
    hook = Resource(K.WEBHOOK, "wh9", task_id="deleted")
    runner = scope({AccountGroup.ACTORS: {X}, AccountGroup.TASKS: {R}})
    facts = (*ALL, orphan, hook)
    for op, target in [(Operation.TASK_RUN, orphan), (Operation.WEBHOOK_GET, hook)]:
        d = decide(tok(runner), op, target, ACCOUNT, related=facts, now=NOW, facts_complete=True)
        denied(d, 404)
        assert d.reasons[0].endswith("does not exist")
        d = decide(tok(Scope.full()), op, target, ACCOUNT, related=facts, facts_complete=True)
        denied(d, 404)
    # Without complete facts an unknown Actor is just unknown: account-level run covers it.
    d = decide(tok(runner), Operation.TASK_RUN, orphan, ACCOUNT, related=facts, now=NOW)
    allowed(d, GrantRoute.ACCOUNT)
    ea = effective_access("tok1", runner, facts, ACCOUNT, now=NOW)
    assert ea[orphan].permissions == {R}
    assert ea[hook].permissions == frozenset()


def test_d1_primary_check_comes_before_missing_references() -> None:
    dangling = Resource(
        K.SCHEDULE, "sch9", actions=(ScheduleAction(ScheduleActionType.RUN_ACTOR_TASK, "gone"),)
    )
    facts = (*ALL, dangling)
    no_write = scope({AccountGroup.SCHEDULES: {R}})
    d = decide(
        tok(no_write),
        Operation.SCHEDULE_UPDATE,
        dangling,
        ACCOUNT,
        related=facts,
        now=NOW,
        facts_complete=True,
    )
    denied(d, 403)
    writer = scope({AccountGroup.SCHEDULES: {W}})
    d = decide(
        tok(writer),
        Operation.SCHEDULE_UPDATE,
        dangling,
        ACCOUNT,
        related=facts,
        now=NOW,
        facts_complete=True,
    )
    denied(d, 404)
    assert d.reasons == ("task gone does not exist",)
    # Deleting needs no action check, so the dangling action does not matter.
    d = decide(
        tok(writer),
        Operation.SCHEDULE_DELETE,
        dangling,
        ACCOUNT,
        related=facts,
        now=NOW,
        facts_complete=True,
    )
    allowed(d, GrantRoute.ACCOUNT)


# D16: grants by username~name match resources addressed either way.
def test_d16_grants_by_name() -> None:
    by_name = scope(None, (ResourceType.DATASET, "alice~results", {R}))
    allowed(check(by_name, Operation.DATASET_GET, DATASET), GrantRoute.RESOURCE)
    denied(check(by_name, Operation.DATASET_GET, KVS))
    runner = scope(None, (ResourceType.ACTOR, "alice~scraper", {X}))
    allowed(check(runner, Operation.ACTOR_RUN, ACTOR), GrantRoute.RESOURCE)
    denied(check(runner, Operation.ACTOR_RUN, ACTOR2))


# D18: the first applicable route wins: created > resource > account > default-run-storage.
def test_d18_route_priority() -> None:
    mine = Resource(K.DATASET, "dsRun", created_by_token="tok1")
    every = scope(
        {AccountGroup.STORAGES: {R}, AccountGroup.ACTORS: {R}},
        (ResourceType.DATASET, "dsRun", {R}),
        dra=True,
    )
    assert check(every, Operation.DATASET_GET, mine).grant is GrantRoute.CREATED
    assert check(every, Operation.DATASET_GET, RUN_DATASET).grant is GrantRoute.RESOURCE
    acc_dra = scope({AccountGroup.STORAGES: {R}, AccountGroup.ACTORS: {R}}, dra=True)
    assert check(acc_dra, Operation.DATASET_GET, RUN_DATASET).grant is GrantRoute.ACCOUNT
    d = check(acc_dra, Operation.DATASET_ITEMS_PUSH, RUN_DATASET)
    assert d.grant is GrantRoute.DEFAULT_RUN_STORAGE


# ------------------------------------------------------------------------- required_access


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v2/acts", (Operation.ACTOR_LIST, K.ACTOR, None, R)),
        ("GET", "/v2/actors/alice~scraper", (Operation.ACTOR_GET, K.ACTOR, "alice~scraper", R)),
        ("POST", "/v2/acts", (Operation.ACTOR_CREATE, K.ACTOR, None, C)),
        ("PUT", "/acts/a1", (Operation.ACTOR_UPDATE, K.ACTOR, "a1", W)),
        ("POST", "/v2/acts/a1/runs?build=latest", (Operation.ACTOR_RUN, K.ACTOR, "a1", X)),
        ("POST", "/v2/acts/a1/run-sync", (Operation.ACTOR_RUN, K.ACTOR, "a1", X)),
        ("GET", "/v2/acts/a1/runs", (Operation.ACTOR_RUNS_LIST, K.ACTOR, "a1", R)),
        ("GET", "/v2/actor-runs", (Operation.RUN_LIST, K.RUN, None, R)),
        ("GET", "/v2/actor-runs/r1", (Operation.RUN_GET, K.RUN, "r1", R)),
        ("POST", "/v2/actor-runs/r1/abort", (Operation.RUN_ABORT, K.RUN, "r1", X)),
        (
            "POST",
            "/v2/actor-tasks/alice%7Edaily/runs",
            (Operation.TASK_RUN, K.TASK, "alice~daily", R),
        ),
        ("DELETE", "/v2/actor-tasks/t1", (Operation.TASK_DELETE, K.TASK, "t1", W)),
        ("POST", "/v2/actor-tasks", (Operation.TASK_CREATE, K.TASK, None, C)),
        ("GET", "/v2/datasets/d1/items", (Operation.DATASET_ITEMS_GET, K.DATASET, "d1", R)),
        ("POST", "/v2/datasets/d1/items", (Operation.DATASET_ITEMS_PUSH, K.DATASET, "d1", W)),
        (
            "GET",
            "/v2/key-value-stores/k1/keys",
            (Operation.KV_STORE_KEYS, KV, "k1", R),
        ),
        (
            "PUT",
            "/v2/key-value-stores/k1/records/OUT",
            (Operation.RECORD_PUT, KV, "k1", W),
        ),
        (
            "GET",
            "/v2/key-value-stores/k1/records/OUT",
            (Operation.RECORD_GET, KV, "k1", R),
        ),
        ("POST", "/v2/request-queues", (Operation.REQUEST_QUEUE_CREATE, K.REQUEST_QUEUE, None, C)),
        ("PUT", "/v2/schedules/s1", (Operation.SCHEDULE_UPDATE, K.SCHEDULE, "s1", W)),
        ("DELETE", "/v2/webhooks/w1", (Operation.WEBHOOK_DELETE, K.WEBHOOK, "w1", X)),
        ("GET", "https://api.apify.com/v2/users/me", (Operation.USERS_ME, None, None, None)),
        ("POST", "/v2/users/me/tokens", (Operation.TOKENS_MANAGE, None, None, None)),
        ("DELETE", "/v2/users/me/tokens/t1", (Operation.TOKENS_MANAGE, None, None, None)),
    ],
)
def test_required_access(method: str, path: str, expected: tuple[object, ...]) -> None:
    got = required_access(method, path)
    assert got is not None
    assert (got.operation, got.resource_type, got.resource_ref, got.permission) == expected


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/_sandbox/stats"),
        ("GET", "/v2/unknown"),
        ("PATCH", "/v2/datasets/d1/items"),
        ("DELETE", "/v2/actor-runs/r1"),
        ("GET", "/"),
        ("GET", "/v2/users/someone"),
    ],
)
def test_required_access_unknown(method: str, path: str) -> None:
    assert required_access(method, path) is None


def test_required_access_run_default_storages() -> None:
    got = required_access("GET", "/v2/actor-runs/r1/dataset/items?clean=1")
    assert got == RequiredAccess(
        Operation.DATASET_ITEMS_GET, K.DATASET, None, R, AccountGroup.STORAGES, via_run="r1"
    )
    put = required_access("PUT", "/v2/actor-runs/r1/key-value-store/records/OUTPUT")
    assert put is not None
    assert (put.operation, put.via_run, put.permission) == (Operation.RECORD_PUT, "r1", W)
    assert required_access("POST", "/v2/actor-runs/r1/dataset") is None
    last = required_access("GET", "/v2/acts/a1/runs/last")
    assert last is not None
    assert (last.operation, last.resource_ref) == (Operation.ACTOR_RUNS_LIST, "a1")
    reader = scope({AccountGroup.STORAGES: {R}})
    assert scope_covers(reader, got) is True
    assert scope_covers(reader, put) is False
    assert scope_covers(scope(dra=True), put) is None  # if it may read run r1 (D10)


def test_every_operation_has_a_route() -> None:
    paths = [
        (m, p.format(ref="x", run="r"))
        for m, p in [*_PATHS.values(), *(("GET", v) for v in _VIA_RUN.values())]
    ]
    extra = [
        ("GET", "/v2/acts"), ("POST", "/v2/acts"), ("GET", "/v2/actor-runs"),
        ("GET", "/v2/actor-tasks"), ("DELETE", "/v2/actor-tasks/x"),
        ("PUT", "/v2/datasets/x"), ("GET", "/v2/key-value-stores"),
        ("POST", "/v2/key-value-stores"), ("GET", "/v2/key-value-stores/x"),
        ("PUT", "/v2/key-value-stores/x"), ("DELETE", "/v2/key-value-stores/x"),
        ("DELETE", "/v2/key-value-stores/x/records/k"), ("GET", "/v2/request-queues"),
        ("POST", "/v2/request-queues"), ("GET", "/v2/request-queues/x"),
        ("PUT", "/v2/request-queues/x"), ("DELETE", "/v2/request-queues/x"),
        ("GET", "/v2/schedules"), ("GET", "/v2/webhooks"), ("DELETE", "/v2/webhooks/x"),
    ]  # fmt: skip
    seen = set()
    for method, path in [*paths, *extra]:
        got = required_access(method, path)
        assert got is not None, (method, path)
        seen.add(got.operation)
    assert seen == set(Operation)


def _ra(method: str, path: str) -> RequiredAccess:
    got = required_access(method, path)
    assert got is not None
    return got


def test_scope_covers() -> None:
    reader = scope(None, (ResourceType.DATASET, "d1", {W}))
    assert scope_covers(reader, _ra("GET", "/v2/datasets/d1/items")) is True
    assert scope_covers(reader, _ra("POST", "/v2/datasets/d1/items")) is True
    assert scope_covers(reader, _ra("GET", "/v2/datasets")) is True
    assert scope_covers(reader, _ra("GET", "/v2/users/me")) is False
    assert scope_covers(Scope.full(), _ra("GET", "/v2/users/me")) is True
    assert scope_covers(reader, _ra("POST", "/v2/acts")) is False
    # Another dataset addressed by name might be d1: cannot tell.
    assert scope_covers(reader, _ra("GET", "/v2/datasets/alice~x")) is None
    # Another dataset by ID: only anonymous reads could let it through.
    other = _ra("GET", "/v2/datasets/d2")
    assert scope_covers(EMPTY, other) is None
    assert scope_covers(EMPTY, other, general_access=GeneralAccess.RESTRICTED) is False
    # The storage's own "anyone with ID or name" (D11 per resource) may open names too.
    by_name = _ra("GET", "/v2/datasets/alice~feed/items")
    assert (
        scope_covers(EMPTY, by_name, general_access=GeneralAccess.ANYONE_WITH_ID_CAN_READ) is False
    )
    assert (
        scope_covers(EMPTY, by_name, general_access=GeneralAccess.ANYONE_WITH_NAME_CAN_READ) is None
    )
    assert scope_covers(EMPTY, by_name) is None  # unknown: the storage may be shared by name
    assert scope_covers(EMPTY, _ra("POST", "/v2/datasets/d2/items")) is False
    creator = scope({AccountGroup.STORAGES: {C}})
    assert scope_covers(creator, _ra("POST", "/v2/datasets")) is True
    assert scope_covers(creator, _ra("POST", "/v2/datasets/d2/items")) is None  # maybe created
    task_reader = scope(None, (ResourceType.TASK, "t1", {R}))
    assert scope_covers(task_reader, _ra("POST", "/v2/actor-tasks/t1/runs")) is None
    task_runner = scope({AccountGroup.ACTORS: {X}}, (ResourceType.TASK, "t1", {R}))
    assert scope_covers(task_runner, _ra("POST", "/v2/actor-tasks/t1/runs")) is True
    assert scope_covers(task_runner, _ra("GET", "/v2/actor-runs/r1")) is True
    assert scope_covers(EMPTY, _ra("POST", "/v2/actor-runs/r1/abort")) is False
    assert scope_covers(EMPTY, _ra("GET", "/v2/webhooks/w1")) is False


# ------------------------------------------------------------------------- escalation


def test_unscoped_run_paths() -> None:
    assert unscoped_run_paths(scope({AccountGroup.ACTORS: {X}})) == ()
    full = unscoped_run_paths(scope({AccountGroup.ACTORS: {X}}, mode=RunMode.FULL))
    assert full == ("run mode full + account-level actors: run (any Actor)",)
    one = unscoped_run_paths(scope(None, (ResourceType.ACTOR, "a1", {X}), mode=RunMode.FULL))
    assert one == ("run mode full + resource actor a1: run",)
    assert unscoped_run_paths(scope(None, (ResourceType.ACTOR, "a1", {R}), mode=RunMode.FULL)) == ()
    assert unscoped_run_paths(Scope.full())


def test_schedule_escalation_paths() -> None:
    assert schedule_escalation_paths(scope({AccountGroup.SCHEDULES: {C}})) == ()
    assert schedule_escalation_paths(scope(None, (ResourceType.ACTOR, "a1", {X}))) == ()
    paths = schedule_escalation_paths(
        scope({AccountGroup.SCHEDULES: {C}}, (ResourceType.TASK, "t1", {R}))
    )
    assert paths == ("account-level schedules: create + resource task t1: read",)
    writer = scope(None, (ResourceType.SCHEDULE, "s1", {W}), (ResourceType.ACTOR, "a1", {X}))
    assert schedule_escalation_paths(writer) == (
        "resource schedule s1: write + resource actor a1: run",
    )


def test_webhook_conditions() -> None:
    s = scope(None, (ResourceType.ACTOR, "act1", {X}), (ResourceType.TASK, "task1", {R}))
    got = {r.id: why for r, why in webhook_conditions("tok1", s, ALL)}
    assert got == {
        "act1": "resource actor act1: run",
        "task1": "resource task task1: read + resource actor act1: run",
    }
    assert webhook_conditions("tok1", EMPTY, ALL) == ()
    assert len(webhook_conditions(None, Scope.full(), ALL)) == 3


# ------------------------------------------------------------------------- effective_access


def test_effective_access_reasons() -> None:
    s = scope(
        {AccountGroup.STORAGES: {R}},
        (ResourceType.DATASET, "ds1", {W}),
        (ResourceType.ACTOR, "act1", {X}),
        dra=True,
    )
    ea = effective_access("tok1", s, ALL, ACCOUNT, now=NOW)
    assert len(ea) == len(ALL)
    assert ea[DATASET].permissions == {R, W}
    assert ea[DATASET].reasons == (
        "read via resource dataset ds1: write",
        "write via resource dataset ds1: write",
    )
    assert ea[KVS].permissions == {R}
    assert ea[KVS].reasons == ("read via account-level storages: read",)
    assert ea[RUN_DATASET].permissions == {R, W}
    assert ea[RUN_DATASET].routes[W] is GrantRoute.DEFAULT_RUN_STORAGE
    assert ea[ACTOR].permissions == {X}
    assert ea[ACTOR2].permissions == frozenset()
    assert ea[TASK].permissions == frozenset()  # run on the Actor but no read on the task
    assert ea[HOOK_ACTOR].permissions == {R, W}
    reachable = {r.id for r, _ in ea.reachable()}
    assert "act2" not in reachable
    assert "ds1" in reachable
    revoked = effective_access("tok1", s, ALL, ACCOUNT, now=NOW, revoked=True)
    assert revoked[DATASET].permissions == frozenset()
    assert revoked[DATASET].reasons == ("token revoked",)
    expired = effective_access("tok1", s, ALL, ACCOUNT, now=NOW, expires_at=NOW)
    assert expired[DATASET].permissions == frozenset()
    anon = effective_access("tok1", EMPTY, ALL, OPEN, now=NOW, include_anonymous=True)
    assert anon[KVS].routes == {R: GrantRoute.ANONYMOUS}
    assert anon[TASK].permissions == frozenset()


def test_effective_access_index_reuse() -> None:
    index = ResourceIndex(ALL)
    s = scope({AccountGroup.STORAGES: {R}})
    a = effective_access("tok1", s, index, ACCOUNT, now=NOW)
    b = effective_access("tok2", s, index, ACCOUNT, now=NOW)
    assert a[KVS] == b[KVS]
    assert Resource(K.DATASET, "nope") not in a
    assert KVS in a


# Property: effective_access agrees with decide on every (scope, resource).
_OP_FOR: dict[tuple[ResourceKind, Permission], Operation] = {
    (K.ACTOR, R): Operation.ACTOR_GET,
    (K.ACTOR, X): Operation.ACTOR_RUN,
    (K.TASK, R): Operation.TASK_GET,
    (K.TASK, W): Operation.TASK_DELETE,
    (K.TASK, X): Operation.TASK_RUN,
    (K.DATASET, R): Operation.DATASET_GET,
    (K.DATASET, W): Operation.DATASET_DELETE,
    (K.KEY_VALUE_STORE, R): Operation.KV_STORE_GET,
    (K.KEY_VALUE_STORE, W): Operation.KV_STORE_DELETE,
    (K.REQUEST_QUEUE, R): Operation.REQUEST_QUEUE_GET,
    (K.REQUEST_QUEUE, W): Operation.REQUEST_QUEUE_DELETE,
    (K.SCHEDULE, R): Operation.SCHEDULE_GET,
    (K.SCHEDULE, W): Operation.SCHEDULE_DELETE,
    (K.RUN, R): Operation.RUN_GET,
    (K.RUN, W): Operation.RUN_ABORT,
    (K.WEBHOOK, R): Operation.WEBHOOK_GET,
    (K.WEBHOOK, W): Operation.WEBHOOK_DELETE,
}

_GRANTABLE = [
    (ResourceType.ACTOR, "act1"),
    (ResourceType.ACTOR, "alice~other"),
    (ResourceType.TASK, "task1"),
    (ResourceType.DATASET, "ds1"),
    (ResourceType.DATASET, "dsRun"),
    (ResourceType.KEY_VALUE_STORE, "kvRun"),
    (ResourceType.SCHEDULE, "sch1"),
]


@st.composite
def scopes(draw: st.DrawFn) -> Scope:
    account = {
        g: frozenset(draw(st.sets(st.sampled_from([R, W, X, C]), max_size=2)))
        for g in draw(st.sets(st.sampled_from(list(AccountGroup))))
    }
    grants = tuple(
        ResourceGrant(t, i, frozenset(draw(st.sets(st.sampled_from([R, W, X]), min_size=1))))
        for t, i in draw(st.lists(st.sampled_from(_GRANTABLE_RANDOM), max_size=5, unique=True))
    )
    return Scope(
        account=account,
        resources=grants,
        default_run_storage_access=draw(st.booleans()),
        actor_run_mode=draw(st.sampled_from(list(RunMode))),
    )


@st.composite
def accounts(draw: st.DrawFn) -> tuple[Resource, ...]:
    """A random account: Actors, tasks, runs sharing or owning default storages, storages
    (some created by tok1), schedules and webhooks on Actors or tasks."""
    actor_ids = ["act1", "act2", "act3"]
    out: list[Resource] = [
        Resource(K.ACTOR, "act1", name="scraper", username="alice"),
        Resource(K.ACTOR, "act2", name="other", username="alice"),
        Resource(K.ACTOR, "act3"),
    ]
    creator = st.sampled_from([None, "tok1", "tok2"])
    for i in range(draw(st.integers(0, 4))):
        actor = draw(st.sampled_from([*actor_ids, "gone", None]))
        out.append(Resource(K.TASK, f"task{i}", actor_id=actor, created_by_token=draw(creator)))
    task_ids = [r.id for r in out if r.kind is K.TASK]
    storage_pool = st.sampled_from([None, "dsRun", "ds1", "ds2", "kvRun"])
    for i in range(draw(st.integers(0, 5))):
        task = draw(st.sampled_from([None, "deleted-task", *task_ids]))
        out.append(
            Resource(
                K.RUN,
                f"run{i}",
                actor_id=draw(st.sampled_from([*actor_ids, None, "gone"])),
                task_id=task,
                default_dataset_id=draw(storage_pool),
                default_key_value_store_id=draw(st.sampled_from([None, "kvRun", "kv1"])),
            )
        )
    # Storages (and runs, above) sometimes carry their own general access (D11 per resource).
    own = st.sampled_from([None, None, *GeneralAccess])
    out = [replace(r, general_access=draw(own)) if r.kind is K.RUN else r for r in out]
    for sid in ("dsRun", "ds1", "ds2", "ds3"):
        out.append(
            Resource(K.DATASET, sid, created_by_token=draw(creator), general_access=draw(own))
        )
    for sid in ("kvRun", "kv1"):
        out.append(
            Resource(
                K.KEY_VALUE_STORE, sid, created_by_token=draw(creator), general_access=draw(own)
            )
        )
    out.append(Resource(K.SCHEDULE, "sch1", created_by_token=draw(creator)))
    for i in range(draw(st.integers(0, 3))):
        on_task = draw(st.booleans()) and task_ids
        out.append(
            Resource(
                K.WEBHOOK,
                f"wh{i}",
                task_id=draw(st.sampled_from([*task_ids, "deleted-task"])) if on_task else None,
                actor_id=None if on_task else draw(st.sampled_from(actor_ids)),
                created_by_token=draw(creator),
            )
        )
    return tuple(out)


_GRANTABLE_RANDOM = [
    *_GRANTABLE,
    (ResourceType.TASK, "task0"),
    (ResourceType.TASK, "task2"),
    (ResourceType.DATASET, "ds2"),
    (ResourceType.ACTOR, "act3"),
]


@settings(deadline=None, **_BUDGET)
@given(scopes(), accounts(), st.booleans())
def test_effective_access_agrees_with_decide(
    s: Scope, resources: tuple[Resource, ...], open_access: bool
) -> None:
    account = OPEN if open_access else ACCOUNT
    index = ResourceIndex(resources)
    ea = effective_access("tok1", s, index, account, now=NOW)
    table = ea.table()
    for r, row in zip(resources, table, strict=True):
        assert ea[r] == row
        held = row.permissions
        for (kind, perm), op in _OP_FOR.items():
            if kind is not r.kind:
                continue
            d = decide(tok(s), op, r, account, related=index, now=NOW, facts_complete=True)
            own = d.allowed and d.grant is not GrantRoute.ANONYMOUS
            assert own == (perm in held), (r.label, perm, d.explain(), row)
            if own:
                assert row.routes[perm] is d.grant
    # With anonymous reads: each storage's or run's own general access, else the account's.
    anon = effective_access("tok1", s, index, account, now=NOW, include_anonymous=True)
    for r, row in zip(resources, anon.table(), strict=True):
        assert anon[r] == row
        for (kind, perm), op in _OP_FOR.items():
            if kind is not r.kind or perm is not R:
                continue
            d = decide(tok(s), op, r, account, related=index, now=NOW, facts_complete=True)
            assert d.allowed == (R in row.permissions), (r.label, d.explain(), row)
            if d.allowed:
                assert row.routes[R] is d.grant


# Property: scope_covers (no facts) never contradicts decide (all facts).
_PATHS: dict[Operation, tuple[str, str]] = {
    Operation.ACTOR_GET: ("GET", "/v2/acts/{ref}"),
    Operation.ACTOR_UPDATE: ("PUT", "/v2/actors/{ref}"),
    Operation.ACTOR_DELETE: ("DELETE", "/v2/acts/{ref}"),
    Operation.ACTOR_RUN: ("POST", "/v2/acts/{ref}/runs"),
    Operation.ACTOR_RUNS_LIST: ("GET", "/v2/acts/{ref}/runs"),
    Operation.RUN_GET: ("GET", "/v2/actor-runs/{ref}"),
    Operation.RUN_ABORT: ("POST", "/v2/actor-runs/{ref}/abort"),
    Operation.TASK_GET: ("GET", "/v2/actor-tasks/{ref}"),
    Operation.TASK_UPDATE: ("PUT", "/v2/actor-tasks/{ref}"),
    Operation.TASK_DELETE: ("DELETE", "/v2/actor-tasks/{ref}"),
    Operation.TASK_RUN: ("POST", "/v2/actor-tasks/{ref}/runs"),
    Operation.TASK_RUNS_LIST: ("GET", "/v2/actor-tasks/{ref}/runs"),
    Operation.DATASET_GET: ("GET", "/v2/datasets/{ref}"),
    Operation.DATASET_DELETE: ("DELETE", "/v2/datasets/{ref}"),
    Operation.DATASET_ITEMS_GET: ("GET", "/v2/datasets/{ref}/items"),
    Operation.DATASET_ITEMS_PUSH: ("POST", "/v2/datasets/{ref}/items"),
    Operation.KV_STORE_KEYS: ("GET", "/v2/key-value-stores/{ref}/keys"),
    Operation.RECORD_PUT: ("PUT", "/v2/key-value-stores/{ref}/records/K"),
    Operation.RECORD_GET: ("GET", "/v2/key-value-stores/{ref}/records/K"),
    Operation.SCHEDULE_GET: ("GET", "/v2/schedules/{ref}"),
    Operation.SCHEDULE_UPDATE: ("PUT", "/v2/schedules/{ref}"),
    Operation.SCHEDULE_DELETE: ("DELETE", "/v2/schedules/{ref}"),
    Operation.WEBHOOK_GET: ("GET", "/v2/webhooks/{ref}"),
    Operation.WEBHOOK_UPDATE: ("PUT", "/v2/webhooks/{ref}"),
    Operation.USERS_ME: ("GET", "/v2/users/me"),
    Operation.TOKENS_MANAGE: ("POST", "/v2/users/me/tokens"),
    Operation.DATASET_LIST: ("GET", "/v2/datasets"),
    Operation.DATASET_CREATE: ("POST", "/v2/datasets"),
    Operation.TASK_CREATE: ("POST", "/v2/actor-tasks"),
    Operation.SCHEDULE_CREATE: ("POST", "/v2/schedules"),
    Operation.WEBHOOK_CREATE: ("POST", "/v2/webhooks"),
}
_VIA_RUN: dict[Operation, str] = {
    Operation.DATASET_ITEMS_GET: "/v2/actor-runs/{run}/dataset/items",
    Operation.DATASET_ITEMS_PUSH: "/v2/actor-runs/{run}/dataset/items",
    Operation.RECORD_GET: "/v2/actor-runs/{run}/key-value-store/records/K",
    Operation.RECORD_PUT: "/v2/actor-runs/{run}/key-value-store/records/K",
}


_CREATE_GROUP = {
    K.TASK: AccountGroup.TASKS,
    K.SCHEDULE: AccountGroup.SCHEDULES,
    K.DATASET: AccountGroup.STORAGES,
    K.KEY_VALUE_STORE: AccountGroup.STORAGES,
}


def _realistic(resources: tuple[Resource, ...], s: Scope) -> tuple[Resource, ...]:
    """Drop what the platform cannot produce: tasks and runs without their Actor (deleting an
    Actor deletes them), and "created by tok1" on a resource whose Create tok1 lacks or on a
    run's default storage (the run makes those)."""
    actors = {r.id for r in resources if r.kind is K.ACTOR}
    run_storages = {key for r in resources if r.kind is K.RUN for key in r.default_storages()}
    out = []
    for r in resources:
        if r.kind in (K.RUN, K.TASK) and r.actor_id not in actors:
            continue
        group = _CREATE_GROUP.get(r.kind)
        lacks_create = group is not None and C not in s.account_permissions(group)
        if r.created_by_token == "tok1" and (lacks_create or r.key in run_storages):
            r = replace(r, created_by_token=None)
        out.append(r)
    return tuple(out)


@settings(deadline=None, **_BUDGET)
@given(scopes(), accounts(), st.booleans(), st.data())
def test_scope_covers_never_contradicts_decide(
    s: Scope, resources: tuple[Resource, ...], open_access: bool, data: st.DataObject
) -> None:
    account = OPEN if open_access else ACCOUNT
    resources = _realistic(resources, s)
    index = ResourceIndex(resources)
    for op, (method, template) in _PATHS.items():
        kind = op.value.split(".")[0]
        target: Resource | None = None
        by_name = False
        ref = ""
        if "{ref}" in template:
            pool = [r for r in resources if r.kind.value == kind]
            if not pool:
                continue
            target = data.draw(st.sampled_from(pool))
            by_name = bool(target.tilde_name) and data.draw(st.booleans())
            ref = (target.tilde_name or "") if by_name else target.id
        elif op is Operation.TASK_CREATE:
            target = Resource(K.TASK, "", actor_id=data.draw(st.sampled_from(["act1", "act2"])))
        elif op is Operation.SCHEDULE_CREATE:
            task_or_actor = data.draw(st.sampled_from(["act1", "task0"]))
            kind_ = (
                ScheduleActionType.RUN_ACTOR
                if task_or_actor.startswith("act")
                else (ScheduleActionType.RUN_ACTOR_TASK)
            )
            target = Resource(K.SCHEDULE, "", actions=(ScheduleAction(kind_, task_or_actor),))
            if task_or_actor == "task0" and index.resolve(K.TASK, "task0") is None:
                continue
        elif op is Operation.WEBHOOK_CREATE:
            target = Resource(K.WEBHOOK, "", actor_id=data.draw(st.sampled_from(["act1", "act3"])))
        elif op is Operation.DATASET_CREATE:
            target = Resource(K.DATASET, "")
        paths = [(template.format(ref=ref), by_name)]
        if op in _VIA_RUN and target is not None:
            runs = index.runs_by_storage.get(target.key, [])
            if len(runs) == 1:  # through a run: the storage is addressed by the run's ID
                paths.append((_VIA_RUN[op].format(run=runs[0].id), False))
        for path, named in paths:
            access = required_access(method, path)
            assert access is not None and access.operation is op, (method, path, access)
            general = general_access_of(target, account) if target else account.general_access
            covers = scope_covers(s, access, general_access=general)
            d = decide(
                tok(s),
                op,
                target,
                account,
                related=index,
                now=NOW,
                by_name=named,
                facts_complete=True,
            )
            if covers is True:
                assert d.allowed or d.status == 404, (path, d.explain())
            elif covers is False:
                assert not d.allowed, (path, d.explain())


def test_all_is_complete() -> None:
    import inspect

    import tokenguard.permissions as module

    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), name
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and getattr(value, "__module__", module.__name__) == module.__name__
        and name != "UTC"
    }
    assert public <= set(module.__all__)
