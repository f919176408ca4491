"""Key derivation for key slots: Argon2id for passphrases, HKDF for key files.

Passphrase slots use Argon2id at or above OWASP's floor (m=19 MiB, t=2, p=1). The defaults
(m=64 MiB, t=3, p=1) take 0.15-0.25 s on a current server core: slow for guessing, quick
enough for a cron job. A file whose parameters fall below the floor is rejected as a
downgrade, and parameters above the caps are rejected so a hostile file cannot make us
allocate gigabytes or spin for minutes; a machine that cannot spare the memory a file asks
for gets a vault error, never a ``MemoryError``. Only tests may lower the floor, through
:func:`weak_params_for_testing`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tokenguard.errors import VaultError

KEY_LEN = 32
SALT_LEN = 16

# OWASP Password Storage Cheat Sheet, Argon2id minimum configuration.
OWASP_MIN_MEMORY_KIB = 19 * 1024
OWASP_MIN_ITERATIONS = 2
OWASP_MIN_LANES = 1

# Caps: anything above is a hostile or broken file, not a real setting.
MAX_MEMORY_KIB = 1024 * 1024  # 1 GiB
MAX_ITERATIONS = 64
MAX_LANES = 16
# Memory x passes: 1 GiB x 4 takes about 30 s here. Without it, 1 GiB x 64 passes (both
# within their own caps) would hold an unlock for minutes, times every passphrase slot.
MAX_WORK_KIB = 4 * 1024 * 1024
MAX_SALT_LEN = 64

_KEK_INFO = b"tokenguard-vault-kek-v1"
_KEY_ID_INFO = b"tokenguard-vault-key-id-v1"


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """Argon2id cost parameters: memory in KiB, iterations, lanes."""

    memory_kib: int
    iterations: int
    lanes: int


#: Production defaults (0.15-0.25 s here; bench/vault_bench.py measures it).
DEFAULT_ARGON2 = Argon2Params(memory_kib=64 * 1024, iterations=3, lanes=1)
_WEAK_ARGON2 = Argon2Params(memory_kib=64, iterations=1, lanes=1)

# A one-element list rather than a ``global`` statement; flipped only by the test hook.
_weak_global = [False]


def _weak() -> bool:
    return _weak_global[0]


@contextmanager
def weak_params_for_testing() -> Iterator[None]:
    """Tests only: new passphrase slots use tiny Argon2 costs and the floor is lifted.

    Production code never calls this; without it, files below the OWASP floor are refused.
    """
    previous = _weak_global[0]
    _weak_global[0] = True
    try:
        yield
    finally:
        _weak_global[0] = previous


def default_argon2_params() -> Argon2Params:
    """Parameters for a new passphrase slot."""
    return _WEAK_ARGON2 if _weak() else DEFAULT_ARGON2


def check_argon2_params(params: Argon2Params) -> str | None:
    """Why ``params`` are unacceptable in a vault file, or ``None`` when they are fine."""
    floor_m, floor_t, floor_p = (
        (8, 1, 1) if _weak() else (OWASP_MIN_MEMORY_KIB, OWASP_MIN_ITERATIONS, OWASP_MIN_LANES)
    )
    if not floor_p <= params.lanes <= MAX_LANES:
        return f"Argon2 lanes {params.lanes} outside {floor_p}..{MAX_LANES}"
    if not floor_t <= params.iterations <= MAX_ITERATIONS:
        return f"Argon2 iterations {params.iterations} outside {floor_t}..{MAX_ITERATIONS}"
    if not max(floor_m, 8 * params.lanes) <= params.memory_kib <= MAX_MEMORY_KIB:
        return f"Argon2 memory {params.memory_kib} KiB outside {floor_m}..{MAX_MEMORY_KIB}"
    if params.memory_kib * params.iterations > MAX_WORK_KIB:
        return (
            f"Argon2 cost m={params.memory_kib} KiB x t={params.iterations} beyond the cap "
            f"of {MAX_WORK_KIB} KiB x passes"
        )
    return None


def normalize_passphrase(passphrase: str) -> bytes:
    """NFC-normalise so the same passphrase typed on different systems unlocks the vault."""
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def derive_passphrase_kek(passphrase: str, salt: bytes, params: Argon2Params) -> bytes:
    """The key-encryption key of a passphrase slot (Argon2id)."""
    kdf = Argon2id(
        salt=salt,
        length=KEY_LEN,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    )
    try:
        return kdf.derive(normalize_passphrase(passphrase))
    except MemoryError:
        raise VaultError(
            f"not enough memory to unlock: the passphrase slot asks Argon2id for "
            f"{params.memory_kib // 1024} MiB",
            hint="Unlock with the key file instead, or on a machine with more free memory",
        ) from None


def derive_key_kek(key: bytes, salt: bytes) -> bytes:
    """The key-encryption key of a key-file or keyring slot (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_LEN, salt=salt, info=_KEK_INFO).derive(key)


def key_id(key: bytes) -> str:
    """A short public identifier of a 32-byte key, so the right slot is found without trying.

    It lets a wrong key file be told apart from a tampered slot. Derived one-way from a
    256-bit random key, it reveals nothing usable.
    """
    return HKDF(algorithm=hashes.SHA256(), length=8, salt=None, info=_KEY_ID_INFO).derive(key).hex()
