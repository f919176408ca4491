"""Crash safety and concurrency: SIGKILLed writers, failing syscalls, a full disk, 8 writers."""

from __future__ import annotations

import errno
import os
import random
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from vault_helpers import Setup, key_vault_fixture, record, token, vault_env_fixture  # noqa: F401

from tokenguard.errors import VaultError
from tokenguard.vault import FileStorage, Vault
from tokenguard.vault import filestore as filestore_mod

KILLS = 200


def _secret_for(name: str) -> str:
    return token(sum(name.encode()) * 7919 + len(name), "K")


def _writer_child(setup: Setup, round_no: int, report_fd: int) -> None:
    """Runs in a forked child: write records forever, reporting each committed generation."""
    try:
        vault = setup.open()
        i = 0
        while True:
            name = f"c{round_no}.{i}"
            vault.put(record(name, _secret_for(name)))
            os.write(report_fd, f"{vault.generation}\n".encode())
            i += 1
    finally:
        os._exit(0)


def _check_consistent(setup: Setup) -> int:
    vault = setup.open()
    records = vault.list()
    # Generation 1 is the empty vault and every write adds exactly one new record.
    assert len(records) == vault.generation - 1
    for rec in records:
        assert rec.secret.reveal() == _secret_for(rec.name)
    return vault.generation


@pytest.mark.slow
def test_sigkilled_writer_leaves_old_or_new_generation(key_vault: Setup) -> None:
    rng = random.Random(1234)
    committed = _check_consistent(key_vault)
    storage = FileStorage(key_vault.path)
    # Where the kills landed: proof that they hit the write sequence, not just idle time.
    mid_write = after_replace = 0
    for round_no in range(KILLS):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os.close(read_fd)
            _writer_child(key_vault, round_no, write_fd)
        os.close(write_fd)
        time.sleep(rng.uniform(0, 0.025))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with os.fdopen(read_fd, "rb") as pipe:
            reports = [int(x) for x in pipe.read().split()]
        if reports:
            committed = reports[-1]
        for tmp in storage.stale_temps():  # killed between creating the temp and replacing
            mid_write += 1
            assert b"apify_api_" not in tmp.read_bytes()  # sealed, never plaintext
        generation = _check_consistent(key_vault)
        assert generation in (committed, committed + 1), (round_no, committed, generation)
        after_replace += generation == committed + 1  # killed after the replace
        committed = generation
    assert mid_write > 0
    assert after_replace > 0
    vault = key_vault.open()
    vault.put(record("final", _secret_for("final")))
    assert FileStorage(key_vault.path).stale_temps() == []
    assert _check_consistent(key_vault) == committed + 1


def _no_temps(setup: Setup) -> None:
    assert FileStorage(setup.path).stale_temps() == []


@pytest.mark.parametrize("syscall", ["replace", "fsync", "write"])
def test_failing_syscalls_leave_the_file_untouched(
    key_vault: Setup, monkeypatch: pytest.MonkeyPatch, syscall: str
) -> None:
    vault = key_vault.open()
    vault.put(record("before"))
    before = key_vault.path.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(filestore_mod.os, syscall, boom)
        with pytest.raises(VaultError, match="cannot write vault") as info:
            vault.put(record("lost"))
    assert "was not changed" in str(info.value)
    assert key_vault.path.read_bytes() == before
    _no_temps(key_vault)
    assert [r.name for r in vault.list()] == ["before"]
    vault.put(record("after"))  # the same object keeps working
    assert [r.name for r in key_vault.open().list()] == ["after", "before"]


_CLI = "from tokenguard.cli import main; main()"


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))


def test_full_disk_is_exit_3_and_file_untouched(key_vault: Setup) -> None:
    vault = key_vault.open()
    vault.put(record("small"))
    before = key_vault.path.read_bytes()
    env = {**os.environ, **key_vault.env()}
    result = subprocess.run(
        [sys.executable, "-c", _CLI, "vault", "add", "big", "--notes", "n" * 40_000],
        input=token(1, "F"),
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert "disk full or file size limit" in result.stderr
    assert token(1, "F") not in result.stderr + result.stdout
    assert key_vault.path.read_bytes() == before
    _no_temps(key_vault)
    assert [r.name for r in key_vault.open().list()] == ["small"]


_ADDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tokenguard.secrets import Secret
    from tokenguard.vault import TokenRecord, Unlocker, Vault

    path, key, worker = sys.argv[1], sys.argv[2], sys.argv[3]
    vault = Vault.open(path, unlocker=Unlocker(key_file=Path(key)), lock_timeout=120)
    print("ready", flush=True)
    sys.stdin.readline()  # start together: every process is up before any writes
    for i in range(50):
        vault.put(TokenRecord(name=f"w{worker}.{i}", secret=Secret(f"secret-{worker}-{i}")))
    """
)


@pytest.mark.slow
def test_eight_processes_adding_fifty_tokens_each(key_vault: Setup) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _ADDER, str(key_vault.path), str(key_vault.key_file), str(n)],
            env={**os.environ},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(8)
    ]
    assert [p.stdout.readline() for p in procs] == ["ready\n"] * 8  # type: ignore[union-attr]
    for p in procs:
        p.stdin.write("go\n")  # type: ignore[union-attr]
        p.stdin.close()  # type: ignore[union-attr]
    assert [p.wait(timeout=240) for p in procs] == [0] * 8
    vault = key_vault.open()
    records = vault.list()
    assert len(records) == 400
    assert {r.name for r in records} == {f"w{n}.{i}" for n in range(8) for i in range(50)}
    assert all(r.secret.reveal() == "secret-" + r.name[1:].replace(".", "-") for r in records)
    assert vault.generation == 401
    assert len(FileStorage(key_vault.path).backups()) == 3
    _no_temps(key_vault)


def test_path_helpers_are_private(vault_env: Path) -> None:
    # The lock and backups sit next to the vault and are never world-accessible.
    vault = Vault.init(vault_env / "d" / "vault.tgv", key_file=vault_env / "k")
    vault.put(record("a"))
    for path in (vault.path.with_name("vault.tgv.lock"), *vault.path.parent.glob("*.bak-*")):
        assert path.stat().st_mode & 0o077 == 0


def test_directory_fsync_failure_after_replace_is_a_warning(
    key_vault: Setup, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Once the new file is in place, the write happened: report the durability risk only."""
    import stat as stat_mod

    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat_mod.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    vault = key_vault.open()
    monkeypatch.setattr(filestore_mod.os, "fsync", fsync)
    vault.put(record("written"))
    monkeypatch.undo()
    assert [r.name for r in key_vault.open().list()] == ["written"]
    assert any("may not survive a power loss" in r.getMessage() for r in caplog.records)


def test_backup_copies_are_private_from_the_start(
    key_vault: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where hard links fail, the backup is a copy created 0600, not chmod-ed afterwards."""
    vault = key_vault.open()
    generations = {vault.generation: key_vault.path.read_bytes()}

    def no_link(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(filestore_mod.os, "link", no_link)
    monkeypatch.setattr(filestore_mod.os, "chmod", lambda *a, **k: None)
    old_umask = os.umask(0o022)
    try:
        for i in range(4):
            vault.put(record(f"b{i}"))
            generations[vault.generation] = key_vault.path.read_bytes()
    finally:
        os.umask(old_umask)
    backups = FileStorage(key_vault.path).backups()
    assert [g for g, _ in backups] == [4, 3, 2]
    for generation, path in backups:
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert path.read_bytes() == generations[generation]
