"""The :class:`Vault`: token records in one encrypted, locked, atomically written file."""

from __future__ import annotations

import builtins
import contextlib
import itertools
import logging
import operator
import os
import secrets
import stat
import threading
import uuid
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tokenguard.errors import (
    ConfigError,
    RecordNotFoundError,
    TokenGuardError,
    UsageError,
    VaultError,
    VaultFormatError,
    VaultUnlockError,
)
from tokenguard.secrets import Secret
from tokenguard.vault import codec, keyslots, rollback
from tokenguard.vault import format as fmt
from tokenguard.vault.filestore import DEFAULT_LOCK_TIMEOUT, FileStorage, prepare_directory
from tokenguard.vault.format import Header, KeySlot, SlotKind
from tokenguard.vault.paths import resolve_vault_path
from tokenguard.vault.records import TokenRecord, TokenStatus
from tokenguard.vault.storage import VaultStorage
from tokenguard.vault.unlock import (
    ENV_KEY_FILE,
    ENV_PASSPHRASE,
    ENV_PASSPHRASE_FILE,
    Unlocker,
    create_key_file,
    keyring_store,
    read_key_file,
    read_passphrase_file,
)

log = logging.getLogger(__name__)


def _damaged_payload() -> VaultFormatError:
    return VaultFormatError(
        "vault contents failed authentication: the file was altered or is corrupt",
        hint="Restore it from a backup (`tokenguard vault verify` lists them)",
    )


def _with_backup_hint(exc: VaultFormatError, storage: VaultStorage) -> VaultFormatError:
    if not isinstance(storage, FileStorage):
        return exc
    backups = storage.backups()
    if not backups:
        return VaultFormatError(exc.message, hint="No backups exist next to it")
    newest = backups[0][1]
    return VaultFormatError(
        exc.message,
        hint=f"`tokenguard vault verify` checks the {len(backups)} backup(s); to restore the "
        f"newest: `cp -p {newest} {storage.path}`",
    )


def check_backups(
    path: str | os.PathLike[str] | None = None, *, unlocker: Unlocker | None = None
) -> builtins.list[Check]:
    """Check each backup of a vault on its own (for when the vault itself is damaged)."""
    storage = FileStorage(resolve_vault_path(path))
    backups = storage.backups()
    if not backups:
        return []
    if unlocker is None:
        unlocker = Unlocker.from_env()
    cache: dict[bytes, bytes] = {}  # backups usually share slots: one Argon2 run, not three
    out = []
    for generation, backup in backups:
        subject = f"backup {backup.name}"
        try:
            parsed = fmt.parse(storage.read_backup(backup))
            header = parsed.header
            key, _ = keyslots.unlock(header.vault_id, header.slots, unlocker, cache)
            try:
                payload = ChaCha20Poly1305(key).decrypt(header.nonce, parsed.ciphertext, parsed.aad)
            except InvalidTag:
                raise _damaged_payload() from None
            count = len(codec.decode_payload(payload))
        except TokenGuardError as exc:
            out.append(Check(subject, False, exc.message))
            continue
        out.append(
            Check(
                subject,
                True,
                f"generation {generation}, {count} tokens, intact; "
                f"restore with `cp -p {backup} {storage.path}`",
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class SlotInfo:
    """A non-secret description of a key slot."""

    id: str
    kind: SlotKind
    detail: str
    in_use: bool = False  # the slot that unlocked this session


@dataclass(frozen=True, slots=True)
class Check:
    """One finding of :meth:`Vault.verify`."""

    subject: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What :meth:`Vault.verify` found."""

    path: Path
    generation: int
    records: int
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)


class Vault:
    """An unlocked vault. Build one with :meth:`init` or :meth:`open`.

    Reads are served from memory; :meth:`reload` picks up changes other processes made.
    Every change is one locked read-modify-write of the whole file (:meth:`update`).
    A ``Vault`` is safe to share between threads.
    """

    def __init__(
        self,
        storage: VaultStorage,
        *,
        unlocker: Unlocker,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        """Internal: use :meth:`open` or :meth:`init`."""
        self._storage = storage
        self._unlocker = unlocker
        self._lock_timeout = lock_timeout
        self._mutex = threading.RLock()
        self._kek_cache: dict[bytes, bytes] = {}
        self._data_key = b""
        self._header: Header | None = None
        self._slot_id = ""
        self._records: dict[str, TokenRecord] = {}
        # The encoded line of every record as last read or written, keyed by name, with the
        # record object it encodes: a save re-encodes only records that are not that object.
        self._line_recs: dict[str, TokenRecord] = {}
        self._lines: dict[str, bytes] = {}
        self._stamp: Hashable | None = None
        self.rollback_warning: str | None = None
        """Set when the file's generation is lower than one already seen on this machine."""

    # -- construction -------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        passphrase: Secret | None = None,
        key_file: str | os.PathLike[str] | None = None,
        keyring: bool = False,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> Vault:
        """Create a new, empty vault (file 0600, directory 0700) with at least one key slot.

        ``key_file`` is created (32 random bytes, 0600) when it does not exist. Without any
        credential, ``TOKENGUARD_KEY_FILE``, ``TOKENGUARD_PASSPHRASE_FILE`` and
        ``TOKENGUARD_PASSPHRASE`` are consulted.
        """
        if passphrase is None and key_file is None and not keyring:
            if os.environ.get(ENV_KEY_FILE):
                key_file = os.environ[ENV_KEY_FILE]
            elif os.environ.get(ENV_PASSPHRASE_FILE):
                passphrase = read_passphrase_file(Path(os.environ[ENV_PASSPHRASE_FILE]))
            elif os.environ.get(ENV_PASSPHRASE):
                passphrase = Secret(os.environ[ENV_PASSPHRASE])
            else:
                raise ConfigError(
                    "a new vault needs a key file or a passphrase",
                    hint=f"Pass --key-file PATH, or set {ENV_KEY_FILE}, {ENV_PASSPHRASE_FILE} "
                    f"or {ENV_PASSPHRASE}",
                )
        vault_path = resolve_vault_path(path)
        prepare_directory(vault_path)
        storage = FileStorage(vault_path)
        storage.check_directory()
        if storage.exists():
            raise VaultError(
                f"a vault already exists at {vault_path}",
                hint="Use it, remove it first, or pass another --vault path",
            )
        vault_id = uuid.uuid4().hex
        data_key = os.urandom(32)
        slots: list[KeySlot] = []
        unlocker: Unlocker | None = None
        if key_file is not None:
            kf = Path(key_file)
            create_key_file(kf)
            slots.append(keyslots.key_slot(vault_id, data_key, read_key_file(kf), slots))
            unlocker = Unlocker(key_file=kf)
        if passphrase is not None:
            slots.append(keyslots.passphrase_slot(vault_id, data_key, passphrase, slots))
            unlocker = unlocker or Unlocker(passphrase=passphrase)
        if keyring:
            key = os.urandom(32)
            keyring_store(vault_id, key)
            slots.append(
                keyslots.key_slot(
                    vault_id, data_key, key, slots, kind=SlotKind.KEYRING, label=vault_id
                )
            )
            unlocker = unlocker or Unlocker(keyring=True)
        assert unlocker is not None
        vault = cls(storage, unlocker=unlocker, lock_timeout=lock_timeout)
        vault._data_key = data_key
        vault._slot_id = slots[0].id
        vault._header = Header(vault_id=vault_id, generation=0, nonce=b"", slots=tuple(slots))
        with storage.write_lock(lock_timeout):
            vault._commit({}, expected_generation=None)
        return vault

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        unlocker: Unlocker | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        storage: VaultStorage | None = None,
    ) -> Vault:
        """Open and unlock a vault.

        Without ``unlocker``: ``TOKENGUARD_KEY_FILE``, ``TOKENGUARD_PASSPHRASE_FILE``,
        ``TOKENGUARD_PASSPHRASE``, the OS keyring (if the vault has a keyring slot), then a
        hidden prompt on a TTY; otherwise :class:`~tokenguard.errors.VaultUnlockError`.
        """
        store = storage if storage is not None else FileStorage(resolve_vault_path(path))
        try:
            blob = store.read()
            parsed = fmt.parse(blob.data)
            if unlocker is None:
                has_keyring = any(s.kind is SlotKind.KEYRING for s in parsed.header.slots)
                unlocker = Unlocker.from_env(allow_keyring=has_keyring)
            vault = cls(store, unlocker=unlocker, lock_timeout=lock_timeout)
            with vault._mutex:
                vault._load(parsed, blob.stamp)
        except VaultFormatError as exc:
            raise _with_backup_hint(exc, store) from None
        return vault

    # -- loading ------------------------------------------------------------------------

    def _decrypt(self, parsed: fmt.ParsedFile, data_key: bytes) -> bytes | None:
        try:
            return ChaCha20Poly1305(data_key).decrypt(
                parsed.header.nonce, parsed.ciphertext, parsed.aad
            )
        except InvalidTag:
            return None

    def _load(self, parsed: fmt.ParsedFile, stamp: Hashable) -> None:
        header = parsed.header
        if self._header is not None and header.vault_id != self._header.vault_id:
            raise VaultError(
                f"{self._storage.location} now holds a different vault (id {header.vault_id})",
                hint="Open it again",
            )
        payload = self._decrypt(parsed, self._data_key) if self._data_key else None
        data_key, slot_id = self._data_key, self._slot_id
        if payload is None:
            # First open, or another process re-keyed with a new data key.
            data_key, slot = keyslots.unlock(
                header.vault_id, header.slots, self._unlocker, self._kek_cache
            )
            slot_id = slot.id
            payload = self._decrypt(parsed, data_key)
            if payload is None:
                raise _damaged_payload()
        known = dict(zip(self._lines.values(), self._line_recs.values(), strict=True))
        entries = codec.decode_payload(payload, known)
        del payload, known
        self._check_rollback(header)
        self._data_key, self._slot_id, self._header, self._stamp = data_key, slot_id, header, stamp
        self._records = {rec.name: rec for rec, _ in entries}
        self._line_recs = {rec.name: rec for rec, _ in entries}
        self._lines = {rec.name: line for rec, line in entries}

    def _check_rollback(self, header: Header) -> None:
        seen = rollback.last_seen(header.vault_id)
        if seen is not None and header.generation < seen:
            self.rollback_warning = (
                f"vault {self._storage.location} is at generation {header.generation}, but "
                f"generation {seen} was seen on this machine before: an older copy was "
                "restored; tokens changed since then are missing"
            )
            log.warning("%s", self.rollback_warning)
        else:
            self.rollback_warning = None
        rollback.record_seen(header.vault_id, header.generation)

    def _refresh_locked(self) -> bool:
        stamp = self._storage.stamp()
        if stamp is not None and stamp == self._stamp:
            return False
        blob = self._storage.read()
        parsed = fmt.parse(blob.data)
        assert self._header is not None
        changed = parsed.header.generation != self._header.generation or blob.data[
            : len(parsed.aad)
        ] != fmt.encode_aad(self._header)
        if changed:
            self._load(parsed, blob.stamp)
        else:
            self._stamp = blob.stamp
        return changed

    # -- properties ---------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The vault file."""
        return Path(self._storage.location)

    @property
    def storage(self) -> VaultStorage:
        """The storage backend."""
        return self._storage

    @property
    def generation(self) -> int:
        """The generation counter of the state in memory (bumped by every write)."""
        assert self._header is not None
        return self._header.generation

    @property
    def vault_id(self) -> str:
        """The vault's random, stable id."""
        assert self._header is not None
        return self._header.vault_id

    def __repr__(self) -> str:
        return f"Vault(path={str(self.path)!r}, generation={self.generation}, records={len(self)})"

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the keys and records from this object (best effort in Python)."""
        with self._mutex:
            self._data_key = b""
            self._kek_cache.clear()
            self._records = {}
            self._line_recs = {}
            self._lines = {}

    # -- reading ------------------------------------------------------------------------

    def get(self, name: str) -> TokenRecord:
        """The record named ``name`` (:class:`RecordNotFoundError` if absent)."""
        record = self._records.get(name)
        if record is None:
            raise RecordNotFoundError(
                f"no token named {name!r} in the vault",
                hint="`tokenguard vault list` shows the names",
            )
        return record

    def find(self, name: str) -> TokenRecord | None:
        """The record named ``name``, or ``None``."""
        return self._records.get(name)

    def list(self) -> list[TokenRecord]:
        """All records, sorted by name."""
        records = self._records
        return [records[n] for n in sorted(records)]

    def records(self) -> Mapping[str, TokenRecord]:
        """A read-only snapshot of all records by name."""
        return dict(self._records)

    def active_for(self, policy: str) -> TokenRecord | None:
        """The active record of ``policy`` (the newest one if several are active)."""
        active = [
            r
            for r in self._records.values()
            if r.policy == policy and r.status is TokenStatus.ACTIVE
        ]
        if not active:
            return None
        # Newest created first; records without a date sort before dated ones.
        return max(active, key=lambda r: (r.created_at.timestamp() if r.created_at else 0, r.name))

    def changed_on_disk(self) -> bool:
        """Cheap check (inode, size, mtime, ctime) whether the file differs from memory."""
        return self._storage.stamp() != self._stamp

    def reload(self) -> bool:
        """Re-read the file if it changed on disk; True when the records may have changed."""
        with self._mutex:
            if not self.changed_on_disk():
                return False
            return self._refresh_locked()

    # -- writing ------------------------------------------------------------------------

    def update(self, fn: Callable[[dict[str, TokenRecord]], None]) -> None:
        """Read-modify-write under the write lock.

        Re-reads the file, lets ``fn`` mutate a dict of records by name, then encrypts and
        atomically replaces the file. If ``fn`` raises, nothing is written. If ``fn``
        changes nothing, nothing is written either.
        """
        with self._mutex, self._storage.write_lock(self._lock_timeout):
            self._refresh_locked()
            working = dict(self._records)
            fn(working)
            for name, record in working.items():
                if not isinstance(record, TokenRecord):
                    raise UsageError(
                        f"vault entry {name!r} is not a TokenRecord",
                        hint="Store TokenRecord objects keyed by their name",
                    )
                if record.name != name:
                    raise UsageError(
                        f"vault entry {name!r} holds a record named {record.name!r}",
                        hint="Key the dict by record.name",
                    )
            # Unchanged: same names in the same order, each the very same object.
            if working.keys() == self._records.keys() and all(
                map(operator.is_, working.values(), self._records.values())
            ):
                return
            self._commit(working, expected_generation=self.generation)

    def put(self, record: TokenRecord) -> None:
        """Insert or replace ``record`` (one locked atomic write)."""
        codec.check_name(record.name)

        def apply(records: dict[str, TokenRecord]) -> None:
            records[record.name] = record

        self.update(apply)

    def add(self, record: TokenRecord) -> None:
        """Insert ``record``; :class:`UsageError` if the name is taken."""

        def apply(records: dict[str, TokenRecord]) -> None:
            if record.name in records:
                raise UsageError(
                    f"a token named {record.name!r} already exists",
                    hint="Pick another name, or replace it explicitly",
                )
            records[record.name] = record

        codec.check_name(record.name)
        self.update(apply)

    def remove(self, name: str) -> None:
        """Delete the record ``name`` (:class:`RecordNotFoundError` if absent)."""

        def apply(records: dict[str, TokenRecord]) -> None:
            if name not in records:
                raise RecordNotFoundError(
                    f"no token named {name!r} in the vault",
                    hint="`tokenguard vault list` shows the names",
                )
            del records[name]

        self.update(apply)

    def _commit(
        self,
        records: Mapping[str, TokenRecord],
        *,
        expected_generation: int | None,
        slots: tuple[KeySlot, ...] | None = None,
        data_key: bytes | None = None,
    ) -> None:
        """Seal and store ``records``; caller holds the write lock."""
        assert self._header is not None
        # C-level passes over all records; Python work only for the changed ones. This keeps
        # a save of 10,000 tokens close to the cost of encrypting and writing the bytes.
        names = sorted(records)
        recs = list(map(records.__getitem__, names))
        same = list(map(operator.is_, recs, map(self._line_recs.get, names)))
        lines = list(map(self._lines.get, names))
        for i in itertools.compress(range(len(names)), map(operator.not_, same)):
            lines[i] = codec.encode_record(recs[i])
        payload = codec.encode_payload(lines, len(lines))  # type: ignore[arg-type]
        # After a rollback, jump past the highest generation seen so the warning ends here.
        seen = rollback.last_seen(self._header.vault_id) or 0
        generation = max(self._header.generation, seen) + 1
        header = Header(
            vault_id=self._header.vault_id,
            generation=generation,
            nonce=os.urandom(fmt.NONCE_LEN),
            slots=slots if slots is not None else self._header.slots,
        )
        key = data_key if data_key is not None else self._data_key
        aad = fmt.encode_aad(header)
        # Encrypt straight into the file image: one copy of a multi-megabyte payload fewer.
        image, offset = fmt.file_buffer(aad, len(payload))
        ChaCha20Poly1305(key).encrypt_into(header.nonce, payload, aad, memoryview(image)[offset:])
        del payload
        stamp = self._storage.write(
            image,
            generation=generation,
            expected_generation=expected_generation,
        )
        self._header, self._stamp, self._data_key = header, stamp, key
        self._records = dict(zip(names, recs, strict=True))
        self._line_recs = self._records
        self._lines = dict(zip(names, lines, strict=True))  # type: ignore[arg-type]
        self.rollback_warning = None
        rollback.record_seen(header.vault_id, generation)

    # -- key slots ----------------------------------------------------------------------

    def slots(self) -> builtins.list[SlotInfo]:
        """Non-secret descriptions of the key slots."""
        assert self._header is not None
        out = []
        for s in self._header.slots:
            if s.kind is SlotKind.PASSPHRASE:
                assert s.argon2 is not None
                detail = (
                    f"argon2id m={s.argon2.memory_kib}KiB t={s.argon2.iterations} "
                    f"p={s.argon2.lanes}"
                )
            else:
                detail = f"key id {s.key_id}"
            out.append(SlotInfo(id=s.id, kind=s.kind, detail=detail, in_use=s.id == self._slot_id))
        return out

    def rekey(
        self,
        *,
        passphrase: Secret | None = None,
        key_file: str | os.PathLike[str] | None = None,
        keyring: bool = False,
        keep_existing: bool = False,
        remove_slots: tuple[str, ...] = (),
        new_data_key: bool = False,
    ) -> builtins.list[SlotInfo]:
        """Change how the vault is unlocked; the records are untouched.

        New slots are made for the given credentials (``key_file`` is created if missing).
        Without ``keep_existing`` they replace all old slots; with it they are added, and
        ``remove_slots`` (ids) are dropped. ``new_data_key`` also replaces the data key
        (after a suspected compromise); it needs all slots to be replaced.
        Returns the new slot list.
        """
        if new_data_key and keep_existing:
            raise UsageError(
                "a new data key needs every slot to be replaced",
                hint="Drop --keep-existing, or do not ask for a new data key",
            )
        new_key_file = Path(key_file) if key_file is not None else None
        if new_key_file is not None:
            create_key_file(new_key_file)
        with self._mutex, self._storage.write_lock(self._lock_timeout):
            self._refresh_locked()
            assert self._header is not None
            vault_id = self._header.vault_id
            data_key = os.urandom(32) if new_data_key else self._data_key
            slots: list[KeySlot] = list(self._header.slots) if keep_existing else []
            unknown = set(remove_slots) - {s.id for s in self._header.slots}
            if unknown:
                raise UsageError(
                    f"no key slot with id {', '.join(sorted(unknown))}",
                    hint="`tokenguard vault verify` lists the key slots",
                )
            slots = [s for s in slots if s.id not in remove_slots]
            unlocker = self._unlocker
            used = self._slot_id
            if new_key_file is not None:
                slot = keyslots.key_slot(vault_id, data_key, read_key_file(new_key_file), slots)
                slots.append(slot)
                unlocker, used = Unlocker(key_file=new_key_file), slot.id
            if passphrase is not None:
                slot = keyslots.passphrase_slot(vault_id, data_key, passphrase, slots)
                slots.append(slot)
                if new_key_file is None:
                    unlocker, used = Unlocker(passphrase=passphrase), slot.id
            if keyring:
                key = os.urandom(32)
                # A fresh keyring entry, never the one an existing slot reads: if this write
                # fails, the old slot still finds its key (overwriting it could lock us out).
                account = f"{vault_id}.{secrets.token_hex(4)}"
                keyring_store(account, key)
                slot = keyslots.key_slot(
                    vault_id, data_key, key, slots, kind=SlotKind.KEYRING, label=account
                )
                slots.append(slot)
                if new_key_file is None and passphrase is None:
                    unlocker, used = Unlocker(keyring=True), slot.id
            if not slots:
                raise UsageError(
                    "the vault would have no key slot left",
                    hint="Give a new key file or passphrase, or keep another slot",
                )
            if len(slots) > fmt.MAX_SLOTS:
                raise UsageError(
                    f"a vault holds at most {fmt.MAX_SLOTS} key slots",
                    hint="Remove one first (`tokenguard vault rekey --remove-slot ID`)",
                )
            if used not in {s.id for s in slots}:
                used = slots[0].id
            self._commit(
                self._records,
                expected_generation=self.generation,
                slots=tuple(slots),
                data_key=data_key,
            )
            self._unlocker, self._slot_id = unlocker, used
            self._kek_cache.clear()
        return self.slots()

    def add_passphrase_slot(self, passphrase: Secret) -> builtins.list[SlotInfo]:
        """Add a passphrase slot, keeping the others."""
        return self.rekey(passphrase=passphrase, keep_existing=True)

    def add_key_file_slot(self, key_file: str | os.PathLike[str]) -> builtins.list[SlotInfo]:
        """Add a key-file slot (the file is created if missing), keeping the others."""
        return self.rekey(key_file=key_file, keep_existing=True)

    def add_keyring_slot(self) -> builtins.list[SlotInfo]:
        """Add an OS keyring slot (needs the ``keyring`` extra), keeping the others."""
        return self.rekey(keyring=True, keep_existing=True)

    def remove_slot(self, slot_id: str) -> builtins.list[SlotInfo]:
        """Remove one key slot (never the last one)."""
        return self.rekey(keep_existing=True, remove_slots=(slot_id,))

    # -- locks --------------------------------------------------------------------------

    def rotation_lock(self, timeout: float = 0) -> contextlib.AbstractContextManager[None]:
        """The long-held lock for ``tokenguard rotate`` (its own lock file).

        Raises :class:`~tokenguard.errors.VaultLockedError` ("another rotation is running")
        when it cannot be taken within ``timeout`` seconds.
        """
        return self._storage.rotation_lock(timeout)

    # -- verification -------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Check the file, its backups, permissions and leftovers; report what was found."""
        with self._mutex:
            self.reload()
            checks: list[Check] = [
                Check(
                    "vault",
                    True,
                    f"generation {self.generation}, {len(self._records)} tokens, "
                    f"{len(self.slots())} key slot(s), decrypts and authenticates",
                )
            ]
            if self.rollback_warning:
                checks.append(Check("rollback", False, self.rollback_warning))
            storage = self._storage
            if isinstance(storage, FileStorage):
                checks.extend(self._verify_files(storage))
            return VerifyReport(
                path=self.path,
                generation=self.generation,
                records=len(self._records),
                checks=tuple(checks),
            )

    def _verify_files(self, storage: FileStorage) -> Iterator[Check]:
        mode = stat.S_IMODE(os.stat(storage.path).st_mode)
        yield Check("permissions", True, f"vault file mode {mode:04o}")
        dmode = stat.S_IMODE(os.stat(storage.directory).st_mode)
        yield Check("directory", True, f"{storage.directory} mode {dmode:04o}")
        for lock in (storage.lock_path, storage.rotation_lock_path):
            try:
                st = os.lstat(lock)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
                yield Check("lock file", False, f"{lock} is not a regular file; remove it")
        backups = storage.backups()
        if not backups:
            yield Check("backups", True, "none yet (they appear after the next writes)")
        for generation, path in backups:
            yield self._verify_backup(storage, generation, path)
        for tmp in storage.stale_temps():
            yield Check("leftover", False, f"{tmp} is a temp file from an interrupted write")

    def _verify_backup(self, storage: FileStorage, generation: int, path: Path) -> Check:
        subject = f"backup {path.name}"
        try:
            data = storage.read_backup(path)
            parsed = fmt.parse(data)
            if parsed.header.vault_id != self.vault_id:
                return Check(subject, False, "belongs to a different vault")
            if parsed.header.generation != generation:
                return Check(subject, False, f"holds generation {parsed.header.generation}")
            payload = self._decrypt(parsed, self._data_key)
            if payload is None:
                key, _ = keyslots.unlock(
                    self.vault_id, parsed.header.slots, self._unlocker, self._kek_cache
                )
                payload = self._decrypt(parsed, key)
            if payload is None:
                raise _damaged_payload()
            count = len(codec.decode_payload(payload))
        except VaultUnlockError:
            return Check(subject, True, f"generation {generation}, written with older keys")
        except TokenGuardError as exc:
            return Check(subject, False, exc.message)
        return Check(subject, True, f"generation {generation}, {count} tokens, intact")
