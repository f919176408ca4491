"""The local-file storage backend: locked, atomic, backed-up writes.

A write: exclusive ``flock`` on ``<vault>.lock`` (never deleted, opened with O_NOFOLLOW) ->
check the generation is still the one the writer read -> temp file in the same directory
(0600), write, fsync -> hard-link the current file as a backup -> ``os.replace`` -> fsync
the directory -> prune backups beyond the last three. Any failure before the replace leaves
the old file untouched and removes the temp file; a temp file left by a killed writer is
removed by the next writer (under the lock, so never one in use).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Hashable, Iterator
from pathlib import Path

from tokenguard.errors import VaultError, VaultLockedError, VaultPermissionError
from tokenguard.vault import format as fmt
from tokenguard.vault.storage import SealedBlob
from tokenguard.vault.unlock import check_private

log = logging.getLogger(__name__)

KEEP_BACKUPS = 3
DEFAULT_LOCK_TIMEOUT = 10.0
_TMP_MARK = ".tmp-"
_BAK_MARK = ".bak-"


class VaultConflictError(VaultError):
    """The vault changed on disk between the read and the write (compare-and-swap failed)."""


def _no_vault(path: Path) -> VaultError:
    return VaultError(
        f"no vault at {path}",
        hint="Create one with `tokenguard vault init`, or point --vault/TOKENGUARD_VAULT at it",
    )


def _os_error(action: str, path: Path, exc: OSError) -> VaultError:
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        reason += " (disk full or file size limit)"
    return VaultError(f"cannot {action} {path}: {reason}", hint="The vault file was not changed")


class FileStorage:
    """A vault stored in one local file, with sibling lock, backup and temp files."""

    def __init__(self, path: Path, *, keep_backups: int = KEEP_BACKUPS) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.rotation_lock_path = self.path.with_name(self.path.name + ".rotate.lock")
        self.keep_backups = keep_backups
        self._mutex = threading.RLock()
        self._write_fd: int | None = None
        self._depth = 0

    @property
    def location(self) -> str:
        """The vault file path."""
        return str(self.path)

    @property
    def directory(self) -> Path:
        """The directory holding the vault and its siblings."""
        return self.path.parent

    # -- reading ------------------------------------------------------------------------

    def exists(self) -> bool:
        """True when the vault file (or a symlink in its place) exists."""
        return os.path.lexists(self.path)

    def stamp(self) -> Hashable | None:
        """Inode, size, mtime and ctime: changes with every replace."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return None
        return _stamp(st)

    def check_directory(self) -> None:
        """Refuse a vault directory that others may write to (they could swap the file)."""
        try:
            st = os.stat(self.directory)
        except FileNotFoundError:
            raise _no_vault(self.path) from None
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o022 and not mode & stat.S_ISVTX:
            raise VaultPermissionError(
                f"permissions {mode:04o} for vault directory {self.directory} are too open; "
                "others could replace the vault",
                hint=f"Fix it with `chmod 700 {self.directory}`",
            )

    def read(self) -> SealedBlob:
        """The vault bytes, after refusing symlinks and files others can read."""
        data, st = self._read_file(self.path)
        return SealedBlob(data=data, generation=fmt.peek_generation(data), stamp=_stamp(st))

    def _read_file(self, path: Path) -> tuple[bytes, os.stat_result]:
        self.check_directory()
        try:
            # O_NONBLOCK: a FIFO planted in its place must not hang us (fstat refuses it).
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise _no_vault(path) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise VaultPermissionError(
                    f"vault {path} is a symbolic link",
                    hint="Point --vault/TOKENGUARD_VAULT at the real file",
                ) from None
            raise _os_error("read", path, exc) from None
        try:
            st = os.fstat(fd)
            check_private(path, st, "vault")
            if st.st_size > fmt.MAX_FILE_LEN:
                raise fmt.corrupt(fmt.file_too_large(st.st_size))
            chunks = []
            remaining = fmt.MAX_FILE_LEN + 1
            while remaining > 0:
                chunk = os.read(fd, min(remaining, 1 << 24))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            return b"".join(chunks), st
        except OSError as exc:
            raise _os_error("read", path, exc) from None
        finally:
            os.close(fd)

    def _current_generation(self) -> int | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _os_error("read", self.path, exc) from None
        try:
            with os.fdopen(os.dup(fd), "rb") as fh:
                head = fh.read(fmt.PREFIX_LEN)
                rest = fh.read(fmt.header_span(head) - len(head))
            return fmt.parse_header(head + rest)[0].generation
        finally:
            os.close(fd)

    # -- locks --------------------------------------------------------------------------

    def _open_lock(self, path: Path) -> int:
        self.check_directory()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise VaultPermissionError(
                    f"lock file {path} is a symbolic link",
                    hint=f"Remove it (`rm {path}`); tokenguard recreates it",
                ) from None
            raise _os_error("open lock file", path, exc) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            os.close(fd)
            raise VaultPermissionError(
                f"lock file {path} is not a regular file owned by you",
                hint=f"Remove it (`rm {path}`); tokenguard recreates it",
            )
        return fd

    def _flock(self, path: Path, timeout: float, locked: VaultLockedError) -> int:
        import fcntl

        fd = self._open_lock(path)
        deadline = time.monotonic() + max(0.0, timeout)
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    os.close(fd)
                    raise locked from None
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, 0.05)
            except OSError as exc:
                os.close(fd)
                raise _os_error("lock", path, exc) from None

    @contextlib.contextmanager
    def write_lock(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
        """Exclusive write lock; re-entrant within one thread of this process."""
        locked = VaultLockedError(
            f"vault {self.path} is locked by another process",
            hint="Another tokenguard command is writing it; retry in a moment",
        )
        got = self._mutex.acquire(timeout=timeout) if timeout > 0 else self._mutex.acquire(False)
        if not got:
            raise locked
        try:
            if self._depth == 0:
                self._write_fd = self._flock(self.lock_path, timeout, locked)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._write_fd is not None:
                    os.close(self._write_fd)  # closing releases the flock
                    self._write_fd = None
        finally:
            self._mutex.release()

    @contextlib.contextmanager
    def rotation_lock(self, timeout: float = 0.0) -> Iterator[None]:
        """The long-held rotation lock (its own lock file)."""
        fd = self._flock(
            self.rotation_lock_path,
            timeout,
            VaultLockedError(
                "another rotation is running",
                hint=f"Wait for it to finish (lock file {self.rotation_lock_path})",
            ),
        )
        try:
            yield
        finally:
            os.close(fd)

    # -- writing ------------------------------------------------------------------------

    def write(
        self, data: bytes | bytearray, *, generation: int, expected_generation: int | None
    ) -> Hashable:
        """Atomically replace the vault with ``data`` if the generation is unchanged."""
        with self.write_lock():
            current = self._current_generation()
            if current != expected_generation:
                raise VaultConflictError(
                    f"vault {self.path} changed on disk (generation {current}, "
                    f"expected {expected_generation})",
                    hint="Retry the command",
                )
            self.check_directory()
            self._remove_stale_temps()
            tmp = self.directory / f".{self.path.name}{_TMP_MARK}{secrets.token_hex(8)}"
            try:
                self._write_temp(tmp, data)
                if current is not None:
                    self._backup(current)
                os.replace(tmp, self.path)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise _os_error("write vault", self.path, exc) from None
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._fsync_dir()
            self._prune_backups()
            return self.stamp()

    def _write_temp(self, tmp: Path, data: bytes | bytearray) -> None:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _fsync_dir(self) -> None:
        try:
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            log.debug("cannot open %s to fsync it: %s", self.directory, exc)
            return
        try:
            os.fsync(fd)
        except OSError as exc:
            # The new file is already in place and visible to every reader: reporting the
            # write as failed would be a lie that makes callers redo it. Say what is at risk.
            log.warning(
                "vault %s was written, but syncing its directory failed (%s): the change may "
                "not survive a power loss",
                self.path,
                exc.strerror,
            )
        finally:
            os.close(fd)

    def backup_path(self, generation: int) -> Path:
        """Where the backup of ``generation`` lives."""
        return self.directory / f"{self.path.name}{_BAK_MARK}{generation}"

    def backups(self) -> list[tuple[int, Path]]:
        """Existing backups, newest generation first."""
        prefix = self.path.name + _BAK_MARK
        out = []
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        for name in names:
            if name.startswith(prefix) and name[len(prefix) :].isdigit():
                out.append((int(name[len(prefix) :]), self.directory / name))
        return sorted(out, reverse=True)

    def stale_temps(self) -> list[Path]:
        """Temp files left by writers that died before finishing."""
        prefix = f".{self.path.name}{_TMP_MARK}"
        try:
            return [self.directory / n for n in os.listdir(self.directory) if n.startswith(prefix)]
        except OSError:
            return []

    def _remove_stale_temps(self) -> None:
        # Only called under the write lock, so no live writer owns these.
        for tmp in self.stale_temps():
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _backup(self, generation: int) -> None:
        target = self.backup_path(generation)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)
        try:
            # A hard link costs nothing: the old inode lives on under the backup name.
            os.link(self.path, target, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK):
                raise
            _copy_private(self.path, target)

    def _prune_backups(self) -> None:
        for _, path in self.backups()[self.keep_backups :]:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def read_backup(self, path: Path) -> bytes:
        """The bytes of a backup file (same checks as the vault)."""
        return self._read_file(path)[0]


def _copy_private(source: Path, target: Path) -> None:
    # Created 0600 up front (not chmod-ed after a copy): never readable by others, even briefly.
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        dst = os.open(
            target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            while chunk := os.read(src, 1 << 20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(dst, view) :]
            os.fsync(dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _stamp(st: os.stat_result) -> Hashable:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def prepare_directory(path: Path) -> None:
    """Create the vault's directory (0700) if missing."""
    directory = path.parent
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
