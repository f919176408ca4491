"""Where sealed vault bytes live: a small interface with the local file as first backend.

The vault hands a backend only ciphertext. A backend reads the sealed blob with its
generation, writes a new blob only if the generation is still the one the writer read
(compare-and-swap), and offers two locks: the short write lock around read-modify-write and
the long rotation lock held by ``tokenguard rotate``. A PostgreSQL backend (shared by several
machines: a row per vault, CAS on the generation column, advisory locks) fits the same shape.
"""

from __future__ import annotations

from collections.abc import Hashable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class SealedBlob:
    """The encrypted vault as stored, with its generation and a cheap change marker."""

    data: bytes
    generation: int
    stamp: Hashable


@runtime_checkable
class VaultStorage(Protocol):
    """A backend that stores one sealed vault."""

    @property
    def location(self) -> str:
        """Where the vault lives, for messages."""
        ...

    def exists(self) -> bool:
        """True when a vault is stored there."""
        ...

    def read(self) -> SealedBlob:
        """The stored blob (VaultError when missing or unreadable)."""
        ...

    def stamp(self) -> Hashable | None:
        """A cheap marker that changes whenever the blob does (``None`` when missing)."""
        ...

    def write_lock(self, timeout: float) -> AbstractContextManager[None]:
        """Exclusive lock for read-modify-write (VaultLockedError after ``timeout`` s)."""
        ...

    def write(
        self, data: bytes | bytearray, *, generation: int, expected_generation: int | None
    ) -> Hashable:
        """Store ``data`` if the current generation is ``expected_generation``.

        ``None`` means the vault must not exist yet. Returns the new stamp. The old blob stays
        intact on any failure.
        """
        ...

    def rotation_lock(self, timeout: float) -> AbstractContextManager[None]:
        """The long-held lock serialising rotation jobs (VaultLockedError on timeout)."""
        ...
