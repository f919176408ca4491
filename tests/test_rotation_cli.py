"""The real ``tokenguard rotate`` in subprocesses: crashes, overlapping runs, real seconds."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_rotation_support import CRASH_EXIT, World, assert_settled, make_world, policy_text

from tokenguard.sandbox.testing import SandboxHandle
from tokenguard.vault import TokenRecord, TokenStatus

NAMES = ["alpha", "beta"]


def _rows(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("crash", ["issue-api", "issue", "verify", "promote"])
def test_crash_during_rotation_is_finished_by_the_next_run(
    sandbox: SandboxHandle, tmp_path: Path, crash: str
) -> None:
    world = make_world(sandbox, tmp_path, policy_text(NAMES), datetime.now(UTC))
    world.write_policies(policy_text(NAMES, expires_after="31d"))  # both policies changed: due
    old = {r.policy: r for r in world.records()}

    died = world.cli("--json", crash=crash)
    assert died.returncode == CRASH_EXIT, died.stderr
    # The process died right after this step's vault write (or, for issue-api, after the
    # platform call and before the write): the vault alone shows how far it got.
    _assert_recorded(world, crash, old)

    done = world.cli("--json")
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    expected = {
        "issue-api": ["orphan-revoked", "rotated", "rotated"],  # the unstored one is revoked
        "issue": ["rotated", "rotated"],
        "verify": ["rotated", "rotated"],
        "promote": ["in-grace", "in-grace", "not-due", "not-due"],  # promoted before the crash
    }[crash]
    assert sorted(str(r["outcome"]) for r in rows) == expected
    assert_settled(world, NAMES)
    for name in NAMES:
        (retiring,) = world.by_status(name, TokenStatus.RETIRING)
        assert retiring.name == old[name].name
        assert world.status_with(retiring.secret) == 200  # not revoked early
        assert not world.by_status(name, TokenStatus.PENDING)
    assert {r["outcome"] for r in _rows(world.cli("--json").stdout)} == {"not-due", "in-grace"}


def _assert_recorded(world: World, crash: str, old: dict[str, TokenRecord]) -> None:
    records = world.records()
    first = records_of(records, "alpha")
    if crash == "issue-api":
        # alpha's replacement exists on the platform only (an orphan); nothing was stored.
        assert [r.name for r in records] == ["alpha.1", "beta.1"]
        assert "tokenguard/alpha/2" in {t.name for t in world.platform()}
        return
    new = first["alpha.2"]
    if crash == "issue":
        assert new.status is TokenStatus.PENDING and "verified_at" not in new.meta
        assert "beta.2" not in {r.name for r in records}  # died before the next issue
    elif crash == "verify":
        for name in NAMES:
            pending = records_of(records, name)[f"{name}.2"]
            assert pending.status is TokenStatus.PENDING and "verified_at" in pending.meta
    else:  # promote
        assert new.status is TokenStatus.ACTIVE
        assert first["alpha.1"].status is TokenStatus.RETIRING
    for name in NAMES:  # nothing revoked early: the old tokens still work
        assert world.status_with(old[name].secret) == 200


def records_of(records: list[TokenRecord], policy: str) -> dict[str, TokenRecord]:
    return {r.name: r for r in records if r.policy == policy}


@pytest.mark.slow
@pytest.mark.parametrize("crash", ["revoke-api", "revoke"])
def test_crash_during_revoke_is_finished_by_the_next_run(
    sandbox: SandboxHandle, tmp_path: Path, crash: str
) -> None:
    world = make_world(sandbox, tmp_path, policy_text(NAMES), datetime.now(UTC))
    world.write_policies(policy_text(NAMES, expires_after="31d"))
    assert world.cli().returncode == 0
    assert_settled(world, NAMES)

    # `--now` on a retiring token ends its grace at once, so the revoke runs in this run.
    died = world.cli("--now", "alpha.1", crash=crash)
    assert died.returncode == CRASH_EXIT, died.stderr
    done = world.cli("--json")
    assert done.returncode == 0, done.stderr
    assert_settled(world, NAMES)
    (revoked,) = world.by_status("alpha", TokenStatus.REVOKED)
    assert revoked.name == "alpha.1" and world.status_with(revoked.secret) == 401
    (retiring,) = world.by_status("beta", TokenStatus.RETIRING)
    assert world.status_with(retiring.secret) == 200  # the other one keeps its grace


@pytest.mark.slow
def test_two_runs_started_together_rotate_each_token_once(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    names = [f"job{i:02d}" for i in range(20)]
    world = make_world(sandbox, tmp_path, policy_text(names), datetime.now(UTC))
    world.write_policies(policy_text(names, expires_after="31d"))

    procs = [world.cli_popen("--json", "--wait", "60") for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    rotated = [r for out, _ in outputs for r in _rows(out) if r["outcome"] == "rotated"]
    assert sorted(str(r["name"]) for r in rotated) == [f"{n}.1" for n in names]
    assert_settled(world, names)
    assert len(world.platform()) == 40  # 20 retiring + 20 active, nothing twice
    assert len(world.records()) == 40


@pytest.mark.slow
def test_second_run_exits_0_when_another_rotation_holds_the_lock(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    world = make_world(sandbox, tmp_path, policy_text(["svc"]), datetime.now(UTC))
    with world.vault.rotation_lock(0):
        busy = world.cli("--wait", "0", "--now", "svc")
    assert busy.returncode == 0
    assert "another rotation is running" in busy.stderr and busy.stdout == ""
    assert [r.status for r in world.records()] == [TokenStatus.ACTIVE]


@pytest.mark.slow
def test_real_seconds_rotate_then_revoke_after_grace(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    # The one test on the real clock: rotate_after 3s, grace 1s.
    text = policy_text(["svc"], expires_after="1h", rotate_after="3s", grace="1s")
    start = datetime.now(UTC)
    world = make_world(sandbox, tmp_path, text, start)
    (old,) = world.records()

    first = world.cli("--json")
    assert first.returncode == 0 and [r["outcome"] for r in _rows(first.stdout)] == ["not-due"]

    time.sleep(max(0.0, (start + timedelta(seconds=3.1) - datetime.now(UTC)).total_seconds()))
    rotated = world.cli("--json")
    assert rotated.returncode == 0, rotated.stderr
    assert [r["outcome"] for r in _rows(rotated.stdout)] == ["rotated"]
    (new,) = world.by_status("svc", TokenStatus.ACTIVE)
    assert world.status_with(new.secret) == 200 and world.status_with(old.secret) == 200

    (retiring,) = world.by_status("svc", TokenStatus.RETIRING)
    assert retiring.retire_at is not None
    time.sleep(max(0.0, (retiring.retire_at - datetime.now(UTC)).total_seconds() + 0.1))
    revoked = world.cli("--json")
    assert revoked.returncode == 0, revoked.stderr
    outcomes = {r["name"]: r["outcome"] for r in _rows(revoked.stdout)}
    assert outcomes == {"svc.1": "revoked", "svc.2": "not-due"}
    assert world.status_with(old.secret) == 401
    assert world.by_status("svc", TokenStatus.REVOKED)[0].name == "svc.1"

    again = world.cli("--json")
    assert [r["outcome"] for r in _rows(again.stdout)] == ["not-due"]
    assert_settled(world, ["svc"])
