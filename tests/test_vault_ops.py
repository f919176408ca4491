"""Vault library behaviour: records, locks, key slots, permissions, unlock order, rollback."""

from __future__ import annotations

import logging
import os
import stat
import sys
import threading
import types
from pathlib import Path

import pytest
from vault_helpers import (  # noqa: F401
    Setup,
    key_vault_fixture,
    record,
    token,
    vault_env_fixture,
    weak_kdf_fixture,
)

from tokenguard.errors import (
    ConfigError,
    RecordNotFoundError,
    UsageError,
    VaultError,
    VaultLockedError,
    VaultPermissionError,
    VaultUnlockError,
)
from tokenguard.secrets import Secret
from tokenguard.vault import (
    FileStorage,
    TokenRecord,
    TokenStatus,
    Unlocker,
    Vault,
    VaultStorage,
    create_key_file,
    default_vault_path,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_init_creates_private_files(key_vault: Setup) -> None:
    assert _mode(key_vault.dir) == 0o700
    assert _mode(key_vault.path) == 0o600
    assert _mode(key_vault.key_file) == 0o600
    assert key_vault.key_file.stat().st_size == 32
    vault = key_vault.open()
    assert vault.generation == 1
    assert vault.list() == []
    assert isinstance(vault.storage, VaultStorage)


def test_init_refuses_an_existing_vault(key_vault: Setup) -> None:
    before = key_vault.path.read_bytes()
    with pytest.raises(VaultError, match="already exists"):
        Vault.init(key_vault.path, key_file=key_vault.key_file)
    assert key_vault.path.read_bytes() == before


def test_init_needs_a_credential(vault_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError):
        Vault.init(vault_env / "v" / "vault.tgv")
    monkeypatch.setenv("TOKENGUARD_KEY_FILE", str(vault_env / "env.key"))
    vault = Vault.init(vault_env / "v" / "vault.tgv")
    assert [s.kind.value for s in vault.slots()] == ["key-file"]
    assert (vault_env / "env.key").stat().st_size == 32


def test_crud_and_reopen(key_vault: Setup) -> None:
    vault = key_vault.open()
    vault.put(record("b.1", status=TokenStatus.PENDING))
    vault.put(record("a.1", policy="a"))
    assert [r.name for r in vault.list()] == ["a.1", "b.1"]
    assert vault.get("b.1").status is TokenStatus.PENDING
    assert vault.find("zzz") is None
    with pytest.raises(RecordNotFoundError):
        vault.get("zzz")
    replaced = vault.get("b.1").evolve(status=TokenStatus.ACTIVE)
    vault.put(replaced)
    vault.remove("a.1")
    with pytest.raises(RecordNotFoundError):
        vault.remove("a.1")
    assert vault.generation == 5
    again = key_vault.open()
    assert [(r.name, r.status) for r in again.list()] == [("b.1", TokenStatus.ACTIVE)]
    assert again.get("b.1").secret == replaced.secret


def test_add_refuses_duplicates(key_vault: Setup) -> None:
    vault = key_vault.open()
    vault.add(record("x"))
    with pytest.raises(UsageError, match="already exists"):
        vault.add(record("x"))


def test_update_that_raises_writes_nothing(key_vault: Setup) -> None:
    vault = key_vault.open()
    vault.put(record("keep"))
    before = key_vault.path.read_bytes()

    def boom(records: dict[str, TokenRecord]) -> None:
        records.clear()
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError, match="abort"):
        vault.update(boom)
    assert key_vault.path.read_bytes() == before
    assert [r.name for r in vault.list()] == ["keep"]
    assert vault.generation == 2


def test_update_without_change_does_not_write(key_vault: Setup) -> None:
    vault = key_vault.open()
    before = key_vault.path.read_bytes()
    vault.update(lambda records: None)
    assert key_vault.path.read_bytes() == before


def test_update_checks_keys_and_types(key_vault: Setup) -> None:
    vault = key_vault.open()
    with pytest.raises(UsageError):
        vault.update(lambda r: r.update(wrong=record("right")))
    with pytest.raises(UsageError):
        vault.update(lambda r: r.update(x="not a record"))  # type: ignore[dict-item]
    with pytest.raises(UsageError):
        vault.put(record("has space"))
    assert vault.generation == 1


def test_two_instances_merge_via_reread(key_vault: Setup) -> None:
    first, second = key_vault.open(), key_vault.open()
    first.put(record("one"))
    assert second.changed_on_disk()
    second.put(record("two"))  # stale in memory: the write re-reads first
    assert [r.name for r in second.list()] == ["one", "two"]
    assert not second.changed_on_disk()
    assert first.changed_on_disk()
    assert first.reload() is True
    assert first.reload() is False
    assert [r.name for r in first.list()] == ["one", "two"]


def test_threads_share_one_vault(key_vault: Setup) -> None:
    vault = key_vault.open()

    def worker(n: int) -> None:
        for i in range(10):
            vault.put(record(f"t{n}.{i}"))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(key_vault.open().list()) == 40


def test_rotation_lock_is_exclusive_and_separate(key_vault: Setup) -> None:
    first, second = key_vault.open(), key_vault.open()
    with first.rotation_lock():
        with (
            pytest.raises(VaultLockedError, match="another rotation is running"),
            second.rotation_lock(timeout=0),
        ):
            pass
        second.put(record("write-while-rotating"))  # the write lock is a different file
    with second.rotation_lock(timeout=0):
        pass
    assert key_vault.path.with_name("vault.tgv.rotate.lock").exists()


def test_write_lock_timeout_names_the_problem(key_vault: Setup) -> None:
    vault = key_vault.open(lock_timeout=0.05)
    before = key_vault.path.read_bytes()
    holder = FileStorage(key_vault.path)
    with holder.write_lock(), pytest.raises(VaultLockedError, match="locked by another process"):
        vault.put(record("blocked"))
    assert key_vault.path.read_bytes() == before
    vault.put(record("after"))
    assert key_vault.path.with_name("vault.tgv.lock").exists()  # never deleted


# -- permissions --------------------------------------------------------------------------


def test_group_readable_vault_is_refused_with_the_fix(key_vault: Setup) -> None:
    os.chmod(key_vault.path, 0o644)
    with pytest.raises(VaultPermissionError) as info:
        key_vault.open()
    assert f"chmod 600 {key_vault.path}" in str(info.value)
    assert "0644" in str(info.value)


def test_group_readable_key_file_is_refused_with_the_fix(key_vault: Setup) -> None:
    os.chmod(key_vault.key_file, 0o644)
    with pytest.raises(VaultPermissionError) as info:
        key_vault.open()
    assert f"chmod 600 {key_vault.key_file}" in str(info.value)


def test_open_passphrase_file_is_refused(key_vault: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    pw = key_vault.dir.parent / "pw.txt"
    pw.write_text("x\n")
    os.chmod(pw, 0o640)
    monkeypatch.setenv("TOKENGUARD_PASSPHRASE_FILE", str(pw))
    with pytest.raises(VaultPermissionError, match=f"chmod 600 {pw}"):
        Vault.open(key_vault.path)


def test_symlinked_lock_file_is_refused(key_vault: Setup) -> None:
    lock = key_vault.path.with_name("vault.tgv.lock")
    lock.unlink()
    target = key_vault.dir.parent / "elsewhere"
    target.write_text("")
    lock.symlink_to(target)
    vault = key_vault.open()
    before = key_vault.path.read_bytes()
    with pytest.raises(VaultPermissionError, match="symbolic link"):
        vault.put(record("x"))
    assert key_vault.path.read_bytes() == before
    rlock = key_vault.path.with_name("vault.tgv.rotate.lock")
    rlock.symlink_to(target)
    with pytest.raises(VaultPermissionError, match="symbolic link"), vault.rotation_lock():
        pass


def test_symlinked_vault_is_refused(key_vault: Setup) -> None:
    link = key_vault.dir / "link.tgv"
    link.symlink_to(key_vault.path)
    with pytest.raises(VaultPermissionError, match="symbolic link"):
        Vault.open(link, unlocker=key_vault.unlocker)


def test_world_writable_directory_is_refused(key_vault: Setup) -> None:
    os.chmod(key_vault.dir, 0o777)
    try:
        with pytest.raises(VaultPermissionError, match=f"chmod 700 {key_vault.dir}"):
            key_vault.open()
    finally:
        os.chmod(key_vault.dir, 0o700)


def test_missing_vault(vault_env: Path) -> None:
    with pytest.raises(VaultError, match="tokenguard vault init"):
        Vault.open(vault_env / "none" / "vault.tgv", unlocker=Unlocker.from_passphrase("x"))


# -- unlocking ----------------------------------------------------------------------------


def test_wrong_key_file_is_an_unlock_error(key_vault: Setup) -> None:
    other = key_vault.dir.parent / "other.key"
    create_key_file(other)
    with pytest.raises(VaultUnlockError, match="does not match any key slot"):
        Vault.open(key_vault.path, unlocker=Unlocker(key_file=other))
    short = key_vault.dir.parent / "short.key"
    short.write_bytes(b"x" * 31)
    os.chmod(short, 0o600)
    with pytest.raises(VaultUnlockError, match="exactly 32 bytes"):
        Vault.open(key_vault.path, unlocker=Unlocker(key_file=short))


def test_unlock_resolution_order(tmp_path: Path) -> None:
    key = tmp_path / "k"
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    os.chmod(pw, 0o600)
    env = {
        "TOKENGUARD_KEY_FILE": str(key),
        "TOKENGUARD_PASSPHRASE_FILE": str(pw),
        "TOKENGUARD_PASSPHRASE": "from-env",
    }
    assert Unlocker.from_env(env) == Unlocker(key_file=key)
    del env["TOKENGUARD_KEY_FILE"]
    assert Unlocker.from_env(env).passphrase == Secret("from-file")
    del env["TOKENGUARD_PASSPHRASE_FILE"]
    assert Unlocker.from_env(env).passphrase == Secret("from-env")
    prompted = Unlocker.from_env({}, interactive=True, prompt=lambda _: "typed")
    assert prompted.passphrase == Secret("typed")
    with pytest.raises(VaultUnlockError) as info:
        Unlocker.from_env({}, interactive=False)
    for option in ("TOKENGUARD_KEY_FILE", "TOKENGUARD_PASSPHRASE_FILE", "TOKENGUARD_PASSPHRASE"):
        assert option in str(info.value)
    assert info.value.exit_code == 3


def test_open_without_unlocker_uses_env(key_vault: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENGUARD_KEY_FILE", str(key_vault.key_file))
    assert Vault.open(key_vault.path).generation == 1


def test_unlocker_shape() -> None:
    with pytest.raises(ValueError):
        Unlocker()
    with pytest.raises(ValueError):
        Unlocker(key_file=Path("k"), passphrase=Secret("p"))
    passphrase = Secret("correct horse")
    unlocker = Unlocker(passphrase=passphrase)
    assert repr(unlocker) == "Unlocker(passphrase)"
    assert passphrase.fingerprint not in repr(unlocker) + str(unlocker)
    assert repr(Unlocker(key_file=Path("/k"))) == "Unlocker(key file /k)"


# -- key slots ----------------------------------------------------------------------------


@pytest.mark.usefixtures("weak_kdf")
def test_rekey_and_slots(key_vault: Setup) -> None:
    vault = key_vault.open()
    vault.put(record("kept", notes="n"))
    payload_before = [(r.name, r.secret.reveal()) for r in vault.list()]

    vault.add_passphrase_slot(Secret("pass one"))
    assert sorted(s.kind.value for s in vault.slots()) == ["key-file", "passphrase"]
    assert Vault.open(key_vault.path, unlocker=Unlocker.from_passphrase("pass one")).list()
    assert key_vault.open().list()

    new_key = key_vault.dir.parent / "new.key"
    vault.rekey(key_file=new_key)  # replaces every slot
    with pytest.raises(VaultUnlockError):
        key_vault.open()
    with pytest.raises(VaultUnlockError):
        Vault.open(key_vault.path, unlocker=Unlocker.from_passphrase("pass one"))
    reopened = Vault.open(key_vault.path, unlocker=Unlocker(key_file=new_key))
    assert [(r.name, r.secret.reveal()) for r in reopened.list()] == payload_before

    slots = reopened.add_passphrase_slot(Secret("pass two"))
    key_slot = next(s for s in slots if s.kind.value == "key-file")
    reopened.remove_slot(key_slot.id)
    with pytest.raises(VaultUnlockError):
        Vault.open(key_vault.path, unlocker=Unlocker(key_file=new_key))
    last = Vault.open(key_vault.path, unlocker=Unlocker.from_passphrase("pass two"))
    with pytest.raises(UsageError, match="no key slot left"):
        last.remove_slot(last.slots()[0].id)

    last.rekey(passphrase=Secret("pass three"), new_data_key=True)
    final = Vault.open(key_vault.path, unlocker=Unlocker.from_passphrase("pass three"))
    assert [(r.name, r.secret.reveal()) for r in final.list()] == payload_before


@pytest.mark.usefixtures("weak_kdf")
def test_other_process_rekey_with_new_data_key_is_followed(key_vault: Setup) -> None:
    first, second = key_vault.open(), key_vault.open()
    second.add_key_file_slot(key_vault.dir.parent / "second.key")
    second.put(record("from-second"))
    first.put(record("from-first"))  # re-reads, same data key
    assert [r.name for r in first.list()] == ["from-first", "from-second"]
    second.rekey(key_file=key_vault.key_file, new_data_key=True)
    assert first.reload()
    first.put(record("again"))
    assert len(key_vault.open().list()) == 3


def test_keyring_slot_with_the_real_package(key_vault: Setup) -> None:
    pytest.importorskip("keyring")
    vault = key_vault.open()
    try:
        vault.add_keyring_slot()
    except VaultError as exc:  # no usable keyring backend on this machine
        pytest.skip(str(exc))
    assert any(s.kind.value == "keyring" for s in vault.slots())


@pytest.fixture
def fake_keyring(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, str], str]:
    """An in-memory stand-in for the optional ``keyring`` package."""
    store: dict[tuple[str, str], str] = {}
    module = types.ModuleType("keyring")
    module.get_password = lambda service, account: store.get((service, account))  # type: ignore[attr-defined]
    module.set_password = lambda service, account, value: store.__setitem__(  # type: ignore[attr-defined]
        (service, account), value
    )
    monkeypatch.setitem(sys.modules, "keyring", module)
    return store


def test_keyring_slot(vault_env: Path, fake_keyring: dict[tuple[str, str], str]) -> None:
    path = vault_env / "kr" / "vault.tgv"
    vault = Vault.init(path, keyring=True)
    vault.put(record("a"))
    assert [s.kind.value for s in vault.slots()] == ["keyring"]
    assert list(fake_keyring) == [("tokenguard-vault", vault.vault_id)]
    assert Vault.open(path, unlocker=Unlocker.from_keyring()).find("a") is not None
    # No environment: the keyring comes before the (absent) prompt because the vault has a slot.
    assert Vault.open(path).find("a") is not None
    fake_keyring.clear()
    with pytest.raises(VaultUnlockError, match="keyring holds no key"):
        Vault.open(path, unlocker=Unlocker.from_keyring())


def test_keyring_slot_added_by_the_cli(
    key_vault: Setup, fake_keyring: dict[tuple[str, str], str]
) -> None:
    from vault_helpers import cli

    result = cli(["vault", "rekey", "--keyring", "--keep-existing"], env=key_vault.env())
    assert result.exit_code == 0, result.output
    kinds = sorted(s.kind.value for s in key_vault.open().slots())
    assert kinds == ["key-file", "keyring"]
    assert Vault.open(key_vault.path, unlocker=Unlocker.from_keyring()).generation == 2


# -- backups, leftovers, rollback ---------------------------------------------------------


def test_keeps_last_three_generations_as_backups(key_vault: Setup) -> None:
    vault = key_vault.open()
    for i in range(5):
        vault.put(record(f"r{i}"))
    storage = FileStorage(key_vault.path)
    assert [g for g, _ in storage.backups()] == [5, 4, 3]
    for _, path in storage.backups():
        assert _mode(path) == 0o600
    report = vault.verify()
    assert report.ok, report.checks
    assert report.generation == 6


def test_verify_reports_a_damaged_backup_and_leftovers(key_vault: Setup) -> None:
    vault = key_vault.open()
    vault.put(record("a"))
    vault.put(record("b"))
    storage = FileStorage(key_vault.path)
    _, newest = storage.backups()[0]
    data = bytearray(newest.read_bytes())
    data[-1] ^= 1
    newest.unlink()  # it is a hard link of an older generation: replace, do not edit in place
    newest.write_bytes(bytes(data))
    os.chmod(newest, 0o600)
    leftover = key_vault.dir / ".vault.tgv.tmp-deadbeef"
    leftover.write_bytes(b"partial")
    report = vault.verify()
    assert not report.ok
    problems = {c.subject for c in report.checks if not c.ok}
    assert f"backup {newest.name}" in problems
    assert "leftover" in problems
    vault.put(record("c"))  # the next writer removes leftovers of dead writers
    assert not leftover.exists()


def test_rollback_is_warned_and_cleared_by_next_write(
    key_vault: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    vault = key_vault.open()
    vault.put(record("a"))
    vault.put(record("b"))
    old = FileStorage(key_vault.path).backup_path(2).read_bytes()
    restored = key_vault.dir / "restored"
    restored.write_bytes(old)
    os.chmod(restored, 0o600)
    os.replace(restored, key_vault.path)
    with caplog.at_level(logging.WARNING):
        reopened = key_vault.open()
    assert reopened.rollback_warning is not None
    assert "generation 2" in reopened.rollback_warning
    assert "generation 3" in reopened.rollback_warning
    assert any("older copy was restored" in r.getMessage() for r in caplog.records)
    reopened.put(record("c"))
    assert reopened.generation == 4
    assert key_vault.open().rollback_warning is None


def test_default_path_follows_xdg_and_env(vault_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_vault_path() == vault_env / "data" / "tokenguard" / "vault.tgv"
    monkeypatch.setenv("TOKENGUARD_VAULT", str(vault_env / "x.tgv"))
    assert default_vault_path() == vault_env / "x.tgv"
    monkeypatch.delenv("TOKENGUARD_VAULT")
    monkeypatch.setenv("TOKENGUARD_KEY_FILE", str(vault_env / "k"))
    vault = Vault.init()
    assert vault.path == vault_env / "data" / "tokenguard" / "vault.tgv"
    assert _mode(vault.path.parent) == 0o700
    assert Vault.open().generation == 1


def test_reprs_hold_no_secrets(key_vault: Setup) -> None:
    vault = key_vault.open()
    secret = token(42, "R")
    vault.put(record("r", secret))
    assert secret not in repr(vault)
    assert secret not in repr(vault.list())
    assert secret not in repr(vault.records())
    assert vault.get("r").secret.reveal() == secret


def test_active_for_policy(key_vault: Setup) -> None:
    from datetime import UTC, datetime

    vault = key_vault.open()
    vault.put(record("p.1", policy="p", created_at=datetime(2026, 1, 1, tzinfo=UTC)))
    vault.put(record("p.2", policy="p", created_at=datetime(2026, 2, 1, tzinfo=UTC)))
    vault.put(record("p.3", policy="p", status=TokenStatus.PENDING))
    active = vault.active_for("p")
    assert active is not None and active.name == "p.2"
    assert vault.active_for("q") is None


def test_new_key_file_is_durable_or_absent(
    vault_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key file and its directory entry are fsynced; a failed write leaves no key file."""
    from tokenguard.vault import unlock as unlock_mod

    synced: list[bool] = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        unlock_mod.os,
        "fsync",
        lambda fd: (synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)), real_fsync(fd))[1],
    )
    key = vault_env / "keys" / "k"
    assert create_key_file(key)
    assert synced == [False, True]
    assert _mode(key.parent) == 0o700

    def fail(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(unlock_mod.os, "fsync", fail)
    other = vault_env / "keys" / "k2"
    with pytest.raises(VaultError, match="cannot write key file"):
        Vault.init(vault_env / "v" / "vault.tgv", key_file=other)
    assert not other.exists()
    assert not (vault_env / "v" / "vault.tgv").exists()


def test_slot_limit_is_enforced_when_writing(key_vault: Setup) -> None:
    """A 17th slot used to be written, and the parser then refused the whole vault."""
    from tokenguard.vault import format as fmt

    vault = key_vault.open()
    for i in range(fmt.MAX_SLOTS - 1):
        vault.add_key_file_slot(key_vault.dir.parent / f"k{i}")
    before = key_vault.path.read_bytes()
    with pytest.raises(UsageError, match=f"at most {fmt.MAX_SLOTS} key slots"):
        vault.add_key_file_slot(key_vault.dir.parent / "one-too-many")
    assert key_vault.path.read_bytes() == before
    assert len(key_vault.open().slots()) == fmt.MAX_SLOTS
    # And the last line of defence: no header the parser would refuse is ever written.
    header = fmt.Header(
        vault_id=vault.vault_id, generation=1, nonce=bytes(12), slots=vault._header.slots * 2
    )
    with pytest.raises(VaultError, match="could not read back"):
        fmt.encode_aad(header)


def test_failed_keyring_rekey_keeps_the_old_keyring_slot_working(
    vault_env: Path, fake_keyring: dict[tuple[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new keyring slot gets its own keyring entry: a failed rekey cannot lock us out."""
    from tokenguard.vault import filestore as filestore_mod

    path = vault_env / "kr" / "vault.tgv"
    vault = Vault.init(path, keyring=True)
    vault.put(record("a"))

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(filestore_mod.os, "replace", boom)
        with pytest.raises(VaultError, match="cannot write vault"):
            vault.rekey(keyring=True)  # replace every slot with a new keyring slot
    assert Vault.open(path, unlocker=Unlocker.from_keyring()).find("a") is not None
    vault.add_keyring_slot()
    accounts = [account for _, account in fake_keyring]
    assert len(set(accounts)) == len(accounts) == 3  # one entry per slot ever made
    assert all(a.startswith(vault.vault_id) for a in accounts)
    vault.remove_slot(next(s.id for s in vault.slots() if not s.in_use))  # the first one
    assert Vault.open(path, unlocker=Unlocker.from_keyring()).find("a") is not None
