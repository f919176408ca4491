"""Rotation against the real loopback sandbox, in-process with an injected clock."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_rotation_support import World, assert_settled, make_world, policy_text

from tokenguard.api import HttpTokenIssuer, IssuedToken
from tokenguard.cli.main import main
from tokenguard.errors import ExitCode
from tokenguard.policy import ResourceResolver, plan
from tokenguard.rotation import Outcome, RotationReport, Step, rotate
from tokenguard.sandbox.testing import SandboxHandle
from tokenguard.vault import TokenRecord, TokenStatus

T0 = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)


class Clock:
    """tokenguard's clock, moved by the test (the sandbox keeps real time)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _no_sleep(seconds: float) -> None:
    pass


def _rotate(world: World, clock: Clock, **kwargs: Any) -> RotationReport:
    return rotate(
        world.vault,
        kwargs.pop("issuer", world.issuer),
        world.policies(),
        api=world.api,
        clock=clock,
        sleep=_no_sleep,
        **kwargs,
    )


@pytest.fixture
def world(sandbox: SandboxHandle, tmp_path: Path) -> World:
    return make_world(sandbox, tmp_path, policy_text(["svc"]), T0)


def test_full_cycle_rotate_then_revoke_after_grace_then_nothing(world: World) -> None:
    clock = Clock(T0 + 8 * DAY)  # past rotate_after (7d)
    (old,) = world.by_status("svc", TokenStatus.ACTIVE)

    report = _rotate(world, clock)
    assert report.exit_code is ExitCode.OK
    (row,) = report.results
    assert (row.name, row.outcome, row.step) == ("svc.1", Outcome.ROTATED, Step.PROMOTE)
    assert row.old_fingerprint == old.fingerprint
    (new,) = world.by_status("svc", TokenStatus.ACTIVE)
    (retiring,) = world.by_status("svc", TokenStatus.RETIRING)
    assert new.name == "svc.2" and row.new_fingerprint == new.fingerprint
    assert retiring.name == "svc.1" and retiring.retire_at == clock.now + DAY
    assert world.status_with(new.secret) == 200
    assert world.status_with(old.secret) == 200  # still valid during the grace
    # The policy engine sees the rotated token as matching its policy.
    resolver = ResourceResolver(world.api)
    actions = plan(
        world.policies(), world.vault, world.issuer, now=clock.now, resolver=resolver
    ).actions
    assert [a.kind.value for a in actions] == ["unchanged"]

    clock.now += timedelta(hours=23)  # grace not over yet
    report = _rotate(world, clock)
    assert {r.outcome for r in report.results} == {Outcome.NOT_DUE, Outcome.IN_GRACE}
    assert world.status_with(old.secret) == 200

    clock.now += timedelta(hours=2)  # grace over
    report = _rotate(world, clock)
    revoked = [r for r in report.results if r.outcome is Outcome.REVOKED]
    assert [(r.name, r.step) for r in revoked] == [("svc.1", Step.REVOKE)]
    assert world.status_with(old.secret) == 401
    assert [r.status for r in world.records()] == [TokenStatus.REVOKED, TokenStatus.ACTIVE]
    assert_settled(world, ["svc"])

    before = world.stats()
    report = _rotate(world, clock)
    assert [r.outcome for r in report.results] == [Outcome.NOT_DUE]
    assert world.stats() == before  # nothing due: not a single API call


class FaultyIssuer(HttpTokenIssuer):
    """Right after issuing, make the sandbox answer the next request (the probe) with 401."""

    def issue(self, name: str, **kwargs: Any) -> IssuedToken:
        issued = super().issue(name, **kwargs)
        self.api.request("POST", "/_sandbox/faults", json={"status": 401, "count": 1})
        return issued


def test_failed_verification_revokes_the_replacement_and_keeps_the_old(world: World) -> None:
    (old,) = world.by_status("svc", TokenStatus.ACTIVE)
    report = _rotate(world, Clock(T0 + 8 * DAY), issuer=FaultyIssuer(world.api))
    assert report.exit_code is ExitCode.FINDINGS
    (row,) = report.results
    assert row.outcome is Outcome.FAILED and row.step is Step.ISSUE
    assert row.error and "401" in row.error
    (failed,) = world.by_status("svc", TokenStatus.FAILED)
    assert failed.meta["platform_revoked"] is True
    assert world.status_with(failed.secret) == 401  # the replacement is revoked
    assert failed.issuer_id not in {t.id for t in world.platform()}
    assert world.by_status("svc", TokenStatus.ACTIVE) == [old]
    assert world.status_with(old.secret) == 200
    assert_settled(world, ["svc"])


def test_transient_verification_error_leaves_pending_and_next_run_finishes(world: World) -> None:
    clock = Clock(T0 + 8 * DAY)

    class FlakyIssuer(HttpTokenIssuer):
        def issue(self, name: str, **kwargs: Any) -> IssuedToken:
            issued = super().issue(name, **kwargs)
            # 1 attempt + 2 retries of the probe: all get 503.
            self.api.request("POST", "/_sandbox/faults", json={"status": 502, "count": 3})
            return issued

    report = _rotate(world, clock, issuer=FlakyIssuer(world.api))
    (row,) = report.results
    assert row.outcome is Outcome.ERROR and report.exit_code is ExitCode.FINDINGS
    (pending,) = world.by_status("svc", TokenStatus.PENDING)

    report = _rotate(world, clock)
    (row,) = report.results
    assert row.outcome is Outcome.ROTATED and row.new_name == pending.name
    assert world.by_status("svc", TokenStatus.ACTIVE)[0].name == pending.name
    assert_settled(world, ["svc"])


def test_now_marks_compromised_and_revokes_the_old_token_at_once(world: World) -> None:
    (old,) = world.by_status("svc", TokenStatus.ACTIVE)
    report = _rotate(world, Clock(T0 + DAY), compromised=["svc"])  # not due by age
    (row,) = report.results
    assert row.outcome is Outcome.ROTATED and row.step is Step.REVOKE
    assert [r.value for r in row.reasons] == ["compromised"]
    assert world.status_with(old.secret) == 401
    (revoked,) = world.by_status("svc", TokenStatus.REVOKED)
    assert revoked.compromised and revoked.name == old.name
    assert_settled(world, ["svc"])


def test_policy_change_makes_the_token_due(world: World) -> None:
    world.write_policies(policy_text(["svc"], expires_after="31d"))
    report = _rotate(world, Clock(T0 + timedelta(hours=1)))
    (row,) = report.results
    assert row.outcome is Outcome.ROTATED
    assert [r.value for r in row.reasons] == ["policy-changed"]


def test_a_held_rotation_lock_makes_the_run_do_nothing(world: World) -> None:
    before = world.records()
    with world.vault.rotation_lock(0):
        report = _rotate(world, Clock(T0 + 8 * DAY), wait=0)
    assert report.skipped and "another rotation is running" in report.skipped
    assert report.exit_code is ExitCode.OK and report.results == ()
    assert world.records() == before


def _snapshot(world: World) -> tuple[Any, ...]:
    records = [
        (r.name, r.status, r.fingerprint, r.compromised, dict(r.meta)) for r in world.records()
    ]
    tokens = sorted((t.id, t.name) for t in world.issuer.list())
    return records, tokens, world.vault_path.read_bytes()


def test_dry_run_changes_nothing_and_sends_only_gets(
    sandbox: SandboxHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI runs on the real clock: set the scene in the past.
    world = make_world(sandbox, tmp_path, policy_text(["a", "b", "c"]), T0 - 10 * DAY)
    _rotate(world, Clock(T0 - 2 * DAY), only_policy="a")  # a: rotated, its old token retiring
    # b: a crashed rotation (pending) to resume; c: due; a's retiring token: past grace.
    world.vault.update(
        lambda recs: recs.update({"b.1": recs["b.1"].evolve(status=TokenStatus.PENDING)})
    )
    before = _snapshot(world)
    stats_before = world.stats()

    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["rotate", "--dry-run", "--json", "--now", "c", "--policies", str(world.policies_path)],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    outcomes = {r["name"]: r["outcome"] for r in rows}
    assert outcomes == {
        "a.1": "would-revoke",
        "a.2": "not-due",
        "b.1": "would-resume",
        "c.1": "would-rotate",
    }
    assert _snapshot(world) == before
    sent = world.stats() - stats_before
    assert sent and {method for method, _ in sent} == {"GET"}


def test_cli_table_json_and_exit_codes_never_show_secrets(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    args = ["rotate", "--policies", str(world.policies_path)]
    result = runner.invoke(main, [*args, "--now", "svc"])
    assert result.exit_code == 0, result.output
    assert "rotated" in result.stdout and "svc.2" in result.stdout
    secrets = [r.secret.reveal() for r in world.records()]
    result_json = runner.invoke(main, [*args, "--json"])
    assert result_json.exit_code == 0
    for output in (result.output, result_json.output):
        assert not any(s in output for s in secrets)
    monkeypatch.setattr("tokenguard.cli.rotate.HttpTokenIssuer", FaultyIssuer)
    failed = runner.invoke(main, [*args, "--now", "svc"])
    assert failed.exit_code == 1
    assert "failed" in failed.stdout and "error: 1 token(s) not rotated" in failed.stderr
    monkeypatch.undo()
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    assert runner.invoke(main, [*args, "--policy", "nope"]).exit_code == 2
    assert runner.invoke(main, [*args, "--now", "nope"]).exit_code == 2
    assert runner.invoke(main, [*args, "--expiring-within", "soon"]).exit_code == 2
    monkeypatch.setenv("APIFY_API_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    assert runner.invoke(main, [*args, "--now", "svc"]).exit_code == 4
    monkeypatch.setenv("TOKENGUARD_KEY_FILE", str(world.tmp / "missing.key"))
    assert runner.invoke(main, args).exit_code == 3


def test_progress_hook_counts_the_tokens_with_work(sandbox: SandboxHandle, tmp_path: Path) -> None:
    world = make_world(sandbox, tmp_path, policy_text([f"p{i}" for i in range(5)]), T0)
    calls: list[int] = []

    class Progress:
        def start(self, total: int) -> None:
            calls.append(total)

        def advance(self) -> None:
            calls.append(-1)

    report = _rotate(world, Clock(T0 + 8 * DAY), progress=Progress())
    assert report.count(Outcome.ROTATED) == 5
    assert calls == [5, -1, -1, -1, -1, -1]


class Traffic:
    """Worker threads sending reads through a failover pool built from the vault."""

    def __init__(self, world: World, threads: int) -> None:
        from tokenguard.failover import TokenPool
        from tokenguard.vault import Unlocker, Vault

        # The pool lives in "another program": its own Vault object on the same file.
        other = Vault.open(world.vault_path, unlocker=Unlocker(key_file=world.key_file))
        self.pool = TokenPool.from_vault(other, policy="svc")
        self.url = world.sandbox.url + "/v2/datasets/demo~products"
        self.statuses: list[int] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._worker) for _ in range(threads)]

    def _worker(self) -> None:
        from tokenguard.failover import failover_client

        with failover_client(self.pool) as client:
            while not self.stop.is_set():
                try:
                    self.statuses.append(client.get(self.url).status_code)
                except Exception as exc:  # any exception is a failed request
                    self.errors.append(exc)
                # Stay under the sandbox's 60 req/s per resource (4 threads: ~40/s): a 429
                # is not what this tests.
                self.stop.wait(0.1)

    def wait_for(self, n: int) -> None:
        """Until ``n`` more requests completed (or one failed)."""
        target = len(self.statuses) + n
        deadline = time.monotonic() + 30
        while len(self.statuses) < target and not self.errors and time.monotonic() < deadline:
            time.sleep(0.005)

    def __enter__(self) -> Traffic:
        from tokenguard.failover import sleepless

        self._sleepless = sleepless()  # backoffs never sleep
        self._sleepless.__enter__()
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:

        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)
        self._sleepless.__exit__(None, None, None)


def test_failover_pool_sees_no_failed_request_during_rotation(world: World) -> None:
    clock = Clock(T0 + 8 * DAY)
    with Traffic(world, threads=4) as traffic:
        traffic.wait_for(10)
        assert _rotate(world, clock).count(Outcome.ROTATED) == 1  # svc.2 active
        traffic.wait_for(10)
        clock.now += 2 * DAY
        assert _rotate(world, clock).count(Outcome.REVOKED) == 1  # svc.1 revoked
        traffic.wait_for(10)
    assert traffic.errors == []
    assert len(traffic.statuses) >= 30 and set(traffic.statuses) == {200}
    (active,) = world.by_status("svc", TokenStatus.ACTIVE)
    assert traffic.pool.status().tokens[0].fingerprint == active.fingerprint


def test_failover_pool_follows_a_compromised_token_revoked_without_grace(world: World) -> None:
    # Four workers: the old token dies at once (no grace), so threads hit its 401 together
    # while one of them reloads the vault; the others must wait for that reload and use the
    # replacement, never fail (the pool's reload race, fixed in 7cef040).
    with Traffic(world, threads=4) as traffic:
        traffic.wait_for(5)
        report = _rotate(world, Clock(T0), compromised=["svc"])  # svc.1 revoked at once
        assert report.results[0].step is Step.REVOKE
        traffic.wait_for(5)
    assert traffic.errors == []
    assert len(traffic.statuses) >= 10 and set(traffic.statuses) == {200}
    (active,) = world.by_status("svc", TokenStatus.ACTIVE)
    assert traffic.pool.status().tokens[0].fingerprint == active.fingerprint


@pytest.mark.parametrize(
    ("tty", "tokens", "shown"), [(True, 4, True), (True, 3, False), (False, 4, False)]
)
def test_progress_bar_only_on_a_terminal_for_more_than_a_few(
    sandbox: SandboxHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tty: bool,
    tokens: int,
    shown: bool,
) -> None:
    import tokenguard.cli.rotate as rotate_cli

    names = [f"p{i}" for i in range(tokens)]
    world = make_world(sandbox, tmp_path, policy_text(names), T0 - 8 * DAY)
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(rotate_cli, "_stderr_is_tty", lambda: tty)
    result = CliRunner().invoke(main, ["rotate", "--policies", str(world.policies_path)])
    assert result.exit_code == 0, result.output
    assert ("rotating" in result.stderr) is shown
    assert f"{tokens} rotated" in result.stderr


def test_a_hand_added_token_is_replaced_but_its_revocation_is_left_to_the_admin(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    world = make_world(sandbox, tmp_path, policy_text(["svc"]), T0)
    world.vault.update(lambda recs: recs.clear())  # start from a token made in the Console
    legacy = TokenRecord(name="legacy", secret=sandbox.token("storage-reader"), policy="svc")
    world.vault.put(legacy)

    clock = Clock(T0)
    report = _rotate(world, clock)  # unknown age: due
    assert [(r.name, r.outcome) for r in report.results] == [("legacy", Outcome.ROTATED)]
    assert world.by_status("svc", TokenStatus.ACTIVE)[0].name.startswith("svc.")

    clock.now += 2 * DAY
    report = _rotate(world, clock)
    (row,) = [r for r in report.results if r.name == "legacy"]
    assert row.outcome is Outcome.ERROR and report.exit_code is ExitCode.FINDINGS
    assert row.error and "Revoke it in the Apify Console" in row.error
    (still,) = world.by_status("svc", TokenStatus.RETIRING)  # not marked revoked: it is not
    assert still.name == "legacy" and world.status_with(still.secret) == 200


def test_api_lost_mid_run_stops_with_exit_4_and_the_next_run_finishes(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    from tokenguard.errors import ApiUnreachableError

    world = make_world(sandbox, tmp_path, policy_text(["a", "b", "c"]), T0)

    class DyingIssuer(HttpTokenIssuer):
        """The API goes away after the first replacement is issued."""

        issued = 0

        def issue(self, name: str, **kwargs: Any) -> IssuedToken:
            if self.issued:
                raise ApiUnreachableError("Could not reach the Apify API", hint="test")
            self.issued += 1
            return super().issue(name, **kwargs)

    clock = Clock(T0 + 8 * DAY)
    report = _rotate(world, clock, issuer=DyingIssuer(world.api))
    assert report.exit_code is ExitCode.API
    assert [r.outcome for r in report.results] == [Outcome.ERROR] * 3
    # a's replacement was issued and stored; it stays pending (not promoted without an API).
    (pending,) = world.by_status("a", TokenStatus.PENDING)
    assert world.by_status("b", TokenStatus.PENDING) == []

    report = _rotate(world, clock)
    assert report.exit_code is ExitCode.OK
    assert [r.outcome for r in report.results] == [Outcome.ROTATED] * 3
    assert world.by_status("a", TokenStatus.ACTIVE)[0].name == pending.name
    assert_settled(world, ["a", "b", "c"])


def test_a_pending_replacement_of_an_older_policy_is_revoked_not_promoted(world: World) -> None:
    from tokenguard.policy import issue_token

    # A run crashed after issuing svc.2 (pending); then the policy changed.
    (policy,) = world.policies()
    stale = issue_token(policy, world.issuer, world.vault, now=T0 + DAY, status=TokenStatus.PENDING)
    (changed,) = world.write_policies(policy_text(["svc"], expires_after="31d"))

    report = _rotate(world, Clock(T0 + DAY))
    outcomes = {r.name: (r.outcome, [x.value for x in r.reasons]) for r in report.results}
    assert outcomes == {
        "svc.1": (Outcome.ROTATED, ["policy-changed"]),
        "svc.2": (Outcome.REVOKED, ["policy-changed"]),
    }
    assert report.exit_code is ExitCode.OK
    failed = world.vault.get("svc.2")
    assert failed.status is TokenStatus.FAILED and failed.meta["platform_revoked"] is True
    assert world.status_with(stale.secret) == 401
    (active,) = world.by_status("svc", TokenStatus.ACTIVE)
    assert active.name == "svc.3" and active.policy_digest == changed.digest
    assert [r.name for r in world.by_status("svc", TokenStatus.RETIRING)] == ["svc.1"]
    assert_settled(world, ["svc"])
