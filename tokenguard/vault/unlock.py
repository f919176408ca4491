"""How a vault is unlocked: key file, passphrase, OS keyring, or a prompt.

Resolution when the caller gives no :class:`Unlocker` (flags > environment > prompt):
``TOKENGUARD_KEY_FILE``, ``TOKENGUARD_PASSPHRASE_FILE``, ``TOKENGUARD_PASSPHRASE``, the OS
keyring (only when the vault has a keyring slot), then a hidden prompt when stdin is a TTY.
"""

from __future__ import annotations

import getpass
import os
import secrets
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tokenguard.errors import VaultError, VaultPermissionError, VaultUnlockError
from tokenguard.secrets import Secret
from tokenguard.vault import kdf

ENV_KEY_FILE = "TOKENGUARD_KEY_FILE"
ENV_PASSPHRASE_FILE = "TOKENGUARD_PASSPHRASE_FILE"
ENV_PASSPHRASE = "TOKENGUARD_PASSPHRASE"
KEYRING_SERVICE = "tokenguard-vault"
MAX_PASSPHRASE_FILE = 64 * 1024

UNLOCK_OPTIONS_HINT = (
    f"Set {ENV_KEY_FILE} to a key file, {ENV_PASSPHRASE_FILE} to a file holding the "
    f"passphrase, or {ENV_PASSPHRASE}; or run on a terminal to be prompted"
)


@dataclass(frozen=True, slots=True)
class Unlocker:
    """One way to unlock a vault: exactly one of a key file, a passphrase or the keyring.

    ``Unlocker(key_file=Path(...))``, ``Unlocker(passphrase=Secret(...))`` or
    ``Unlocker(keyring=True)``; or :meth:`from_env` for the documented resolution order.
    """

    key_file: Path | None = None
    # Not even the fingerprint: a passphrase has little entropy, and an unsalted hash of it
    # in a log line could be brute-forced.
    passphrase: Secret | None = field(default=None, repr=False)
    keyring: bool = False

    def __post_init__(self) -> None:
        chosen = sum((self.key_file is not None, self.passphrase is not None, self.keyring))
        if chosen != 1:
            raise ValueError("an Unlocker takes exactly one of key_file, passphrase, keyring")
        if self.key_file is not None and not isinstance(self.key_file, Path):
            object.__setattr__(self, "key_file", Path(self.key_file))
        if self.passphrase is not None and not isinstance(self.passphrase, Secret):
            raise TypeError("passphrase must be a tokenguard.secrets.Secret")

    @classmethod
    def from_key_file(cls, path: str | os.PathLike[str]) -> Unlocker:
        """Unlock with a 32-byte key file."""
        return cls(key_file=Path(path))

    @classmethod
    def from_passphrase(cls, passphrase: Secret | str) -> Unlocker:
        """Unlock with a passphrase."""
        if isinstance(passphrase, str):
            passphrase = Secret(passphrase)
        return cls(passphrase=passphrase)

    @classmethod
    def from_keyring(cls) -> Unlocker:
        """Unlock with the key stored in the OS keyring (needs the ``keyring`` extra)."""
        return cls(keyring=True)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        allow_keyring: bool = False,
        prompt: Callable[[str], str] | None = None,
        interactive: bool | None = None,
    ) -> Unlocker:
        """Resolve an unlocker from the environment, then the keyring, then a TTY prompt."""
        env = os.environ if environ is None else environ
        if env.get(ENV_KEY_FILE):
            return cls(key_file=Path(env[ENV_KEY_FILE]))
        if env.get(ENV_PASSPHRASE_FILE):
            return cls(passphrase=read_passphrase_file(Path(env[ENV_PASSPHRASE_FILE])))
        if env.get(ENV_PASSPHRASE):
            return cls(passphrase=Secret(env[ENV_PASSPHRASE]))
        if allow_keyring and keyring_available():
            return cls(keyring=True)
        if interactive is None:
            interactive = _stdin_is_tty()
        if interactive:
            ask = prompt or _hidden_prompt
            value = ask("Vault passphrase: ")
            if value:
                return cls(passphrase=Secret(value))
            raise VaultUnlockError("empty passphrase", hint=UNLOCK_OPTIONS_HINT)
        raise VaultUnlockError("no way to unlock the vault was given", hint=UNLOCK_OPTIONS_HINT)

    def __repr__(self) -> str:
        return f"Unlocker({self.describe()})"

    def describe(self) -> str:
        """A non-secret description (for messages)."""
        if self.key_file is not None:
            return f"key file {self.key_file}"
        if self.passphrase is not None:
            return "passphrase"
        return "OS keyring"


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False


def _hidden_prompt(text: str) -> str:
    return getpass.getpass(text, stream=sys.stderr)


def check_private(path: Path, st: os.stat_result, what: str) -> None:
    """Refuse a secret-bearing file that group or others can access, ssh-style."""
    if not stat.S_ISREG(st.st_mode):
        raise VaultPermissionError(
            f"{what} {path} is not a regular file", hint=f"Point it at the real {what}"
        )
    if st.st_uid != os.geteuid():
        raise VaultPermissionError(
            f"{what} {path} is owned by uid {st.st_uid}, not by you (uid {os.geteuid()})",
            hint=f"Fix it with `chown {os.geteuid()} {path}`",
        )
    if st.st_mode & 0o077:
        raise VaultPermissionError(
            f"permissions {stat.S_IMODE(st.st_mode):04o} for {what} {path} are too open; "
            "it must not be accessible by group or others",
            hint=f"Fix it with `chmod 600 {path}`",
        )


def _read_private(path: Path, what: str, limit: int) -> bytes:
    try:
        # O_NONBLOCK: a FIFO in its place must not hang the unlock (check_private refuses it).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise VaultUnlockError(f"{what} {path} does not exist", hint=UNLOCK_OPTIONS_HINT) from None
    except OSError as exc:
        raise VaultUnlockError(
            f"cannot open {what} {path}: {exc.strerror}",
            hint="Check the path and that you own the file",
        ) from None
    try:
        check_private(path, os.fstat(fd), what)
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(limit + 1)
    finally:
        os.close(fd)


def read_key_file(path: Path) -> bytes:
    """The 32 raw bytes of a key file (checked for permissions and size)."""
    data = _read_private(path, "key file", kdf.KEY_LEN)
    if len(data) != kdf.KEY_LEN:
        raise VaultUnlockError(
            f"key file {path} must hold exactly {kdf.KEY_LEN} bytes",
            hint=f"Create one with `head -c 32 /dev/urandom > {path} && chmod 600 {path}`",
        )
    return data


def read_passphrase_file(path: Path) -> Secret:
    """A passphrase from a private file (one trailing newline is dropped)."""
    data = _read_private(path, "passphrase file", MAX_PASSPHRASE_FILE)
    if len(data) > MAX_PASSPHRASE_FILE:
        raise VaultUnlockError(
            f"passphrase file {path} is too large",
            hint=f"It must hold only the passphrase (at most {MAX_PASSPHRASE_FILE} bytes)",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise VaultUnlockError(
            f"passphrase file {path} is not UTF-8", hint="Save the passphrase as UTF-8 text"
        ) from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise VaultUnlockError(
            f"passphrase file {path} is empty", hint="Write the passphrase into it"
        )
    return Secret(text)


def create_key_file(path: Path) -> bool:
    """Create a new random 32-byte key file (0600) unless one exists; True if created."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except FileExistsError:
        read_key_file(path)  # validate the existing one now, not at first unlock
        return False
    except OSError as exc:
        raise VaultError(
            f"cannot create key file {path}: {exc.strerror}",
            hint="Check that its directory exists and is writable by you",
        ) from None
    try:
        try:
            os.write(fd, secrets.token_bytes(kdf.KEY_LEN))
            os.fsync(fd)
        finally:
            os.close(fd)
        # The vault written next is fsynced with its directory; the key file's name must be
        # as durable, or a power loss could keep the vault and lose the only key to it.
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        path.unlink(missing_ok=True)  # a short key file must not be mistaken for a key later
        raise VaultError(
            f"cannot write key file {path}: {exc.strerror}", hint="No vault was changed"
        ) from None
    return True


def keyring_available() -> bool:
    """True when the optional ``keyring`` package is importable."""
    try:
        import keyring  # noqa: F401
    except ImportError:
        return False
    return True


def keyring_get(account: str) -> bytes | None:
    """The key stored in the OS keyring for ``account`` (a vault id), if any."""
    import base64

    try:
        import keyring
    except ImportError:
        raise VaultUnlockError(
            "the keyring slot needs the optional keyring package",
            hint="Install it with `pip install 'tokenguard[keyring]'`",
        ) from None
    try:
        value = keyring.get_password(KEYRING_SERVICE, account)
    except Exception:  # any backend failure; its text could be anything
        raise VaultUnlockError(
            "the OS keyring could not be read", hint=UNLOCK_OPTIONS_HINT
        ) from None
    if value is None:
        return None
    try:
        key = base64.b64decode(value, validate=True)
    except ValueError:
        return None
    return key if len(key) == kdf.KEY_LEN else None


def keyring_store(account: str, key: bytes) -> None:
    """Store ``key`` in the OS keyring under ``account``."""
    import base64

    try:
        import keyring

        keyring.set_password(KEYRING_SERVICE, account, base64.b64encode(key).decode())
    except ImportError:
        raise VaultUnlockError(
            "the keyring slot needs the optional keyring package",
            hint="Install it with `pip install 'tokenguard[keyring]'`",
        ) from None
    except Exception:
        raise VaultError(
            "the key could not be stored in the OS keyring",
            hint="Unlock the keyring (or use --key-file / a passphrase instead)",
        ) from None
