"""A pool built from a vault, shared by threads, while `rotate --now` revokes its token at once.

The rotation writes the replacement token to the vault, then revokes the old one on the
platform with no grace. One worker thread is re-reading the vault (the pool lets a single
thread do that while the others carry on); the others get a 401 on the old token and have
no other token in the pool. They must wait for that re-read and pick up the new token, not
give up with NoUsableToken.

The race depends on a re-read being in progress when the 401s arrive. Left to chance it is
hit in a few percent of runs, so the test holds the re-read open with a gated vault source
(a slow disk or a large vault looks the same to the pool) until the 401 has been seen.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tokenguard.api import ApifyApi, HttpTokenIssuer, IssuedToken
from tokenguard.failover import (
    EventKind,
    FailoverEvent,
    NoUsableToken,
    TokenHealth,
    TokenPool,
    failover_client,
    sleepless,
)
from tokenguard.permissions import Scope
from tokenguard.sandbox.testing import SandboxHandle
from tokenguard.vault import TokenRecord, TokenStatus, Unlocker, Vault

THREADS = 4
RUNS = 3  # each run hits the race by construction; a few runs cover the thread orderings
GATE_TIMEOUT = 30.0  # a safety net only: the test opens the gate itself


@pytest.fixture(autouse=True)
def _no_sleep() -> Iterator[None]:
    with sleepless():
        yield


class GatedVault:
    """A VaultSource over a real Vault whose next re-read (once armed) waits for the test."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.armed = False
        self.holding = threading.Event()  # a re-read is waiting at the gate
        self.gate = threading.Event()

    @property
    def generation(self) -> int:
        return self.vault.generation

    def list(self) -> list[TokenRecord]:
        return self.vault.list()

    def changed_on_disk(self) -> bool:
        return self.vault.changed_on_disk()

    def reload(self) -> bool:
        # The pool calls reload() under its reload lock, so one thread at a time gets here.
        if self.armed:
            self.armed = False
            self.holding.set()
            self.gate.wait(GATE_TIMEOUT)
        return self.vault.reload()


class Workers:
    """Threads sending GET /v2/acts through one failover client until stopped."""

    def __init__(self, pool: TokenPool, client: httpx.Client) -> None:
        self.client = client
        self.statuses: list[int] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._work) for _ in range(THREADS)]
        self.lock = threading.Lock()

    def _work(self) -> None:
        while not self.stop.is_set():
            try:
                status = self.client.get("/acts").status_code
            except Exception as exc:  # any exception is a failed request
                with self.lock:
                    self.errors.append(exc)
                continue
            with self.lock:
                self.statuses.append(status)
            self.stop.wait(0.002)  # leave the GIL to the rotation now and then

    def wait_for(self, n: int) -> bool:
        """Until ``n`` more requests completed; False on a timeout."""
        target = len(self.statuses) + n
        for _ in range(2000):
            if len(self.statuses) >= target:
                return True
            self.stop.wait(0.005)
        return False

    def __enter__(self) -> Workers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def _issue(api: ApifyApi, name: str) -> IssuedToken:
    return HttpTokenIssuer(api).issue(name, scope=Scope.full(), expires_at=None)


def _record(name: str, token: IssuedToken, status: TokenStatus) -> TokenRecord:
    return TokenRecord(
        name=name,
        secret=token.secret,
        status=status,
        policy="svc",
        scope=token.info.scope,
        issuer_id=token.info.id,
    )


def _rotate_now(api: ApifyApi, rotation: Vault, old: IssuedToken) -> IssuedToken:
    """What `tokenguard rotate --now svc` does, in its order: the replacement is promoted in
    the vault first, then the old token is revoked on the platform at once (no grace)."""
    new = _issue(api, "svc.2")

    def promote(records: dict[str, TokenRecord]) -> None:
        records["svc.1"] = records["svc.1"].evolve(status=TokenStatus.RETIRING, compromised=True)
        records["svc.2"] = _record("svc.2", new, TokenStatus.ACTIVE)

    rotation.update(promote)
    HttpTokenIssuer(api).revoke(old.info.id)
    rotation.update(lambda r: r.__setitem__("svc.1", r["svc.1"].evolve(status=TokenStatus.REVOKED)))
    return new


def _one_run(sandbox: SandboxHandle, tmp: Path) -> None:
    key, path = tmp / "vault.key", tmp / "vault" / "tokens.tgv"
    with ApifyApi(sandbox.url, sandbox.admin_token) as api:
        rotation = Vault.init(path, key_file=key)  # the rotation job's handle
        old = _issue(api, "svc.1")
        rotation.add(_record("svc.1", old, TokenStatus.ACTIVE))

        # The long-running program: its own handle on the file, a pool shared by threads.
        gated = GatedVault(Vault.open(path, unlocker=Unlocker(key_file=key)))
        dead = threading.Event()
        exhausted = threading.Event()

        def on_event(event: FailoverEvent) -> None:
            if event.kind is EventKind.TOKEN_DEAD:
                dead.set()
            elif event.kind is EventKind.EXHAUSTED:
                exhausted.set()

        pool = TokenPool.from_vault(gated, policy="svc", on_event=on_event)
        limits = httpx.Limits(max_connections=THREADS, max_keepalive_connections=THREADS)
        with (
            failover_client(pool, base_url=sandbox.api_url, limits=limits) as client,
            Workers(pool, client) as workers,
        ):
            assert workers.wait_for(2 * THREADS)
            gated.armed = True  # the next re-read of the vault holds the reload lock
            new = _rotate_now(api, rotation, old)
            try:
                assert gated.holding.wait(10), "no worker re-read the vault after the rotation"
                assert dead.wait(10), "no worker saw the old token's 401"
                # Without the fix a worker gives up (EXHAUSTED) right after the 401; with it,
                # the workers wait for the re-read. Either way the gate opens after this.
                exhausted.wait(0.5)
            finally:
                gated.gate.set()
            assert workers.wait_for(2 * THREADS)

    failed = [type(e).__name__ for e in workers.errors]
    assert failed == [], f"requests failed during the rotation: {failed}"
    assert not exhausted.is_set()
    assert set(workers.statuses) == {200}
    status = pool.status()
    assert [t.fingerprint for t in status.tokens] == [new.secret.fingerprint]
    assert status.tokens[0].health is TokenHealth.HEALTHY
    assert status.tokens[0].in_flight == 0


def test_threads_sharing_a_vault_pool_wait_for_the_reload_after_rotate_now(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    for run in range(RUNS):
        _one_run(sandbox, tmp_path / f"run{run}")


def test_a_pool_with_no_replacement_in_the_vault_still_gives_up(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    # The wait for a reload must not turn "every token is dead" into a hang or a retry loop.
    key, path = tmp_path / "vault.key", tmp_path / "vault" / "tokens.tgv"
    with ApifyApi(sandbox.url, sandbox.admin_token) as api:
        vault = Vault.init(path, key_file=key)
        old = _issue(api, "svc.1")
        vault.add(_record("svc.1", old, TokenStatus.ACTIVE))
        pool = TokenPool.from_vault(Vault.open(path, unlocker=Unlocker(key_file=key)))
        HttpTokenIssuer(api).revoke(old.info.id)  # revoked, and the vault never hears of it
        with failover_client(pool, base_url=sandbox.api_url) as client:
            for _ in range(2):
                with pytest.raises(NoUsableToken) as info:
                    client.get("/acts")
                assert old.secret.reveal() not in str(info.value)
    assert pool.status().usable == 0
