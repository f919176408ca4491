"""The encrypted local vault: token records in one sealed, locked, atomically written file.

``Vault.open()`` unlocks the vault (key file, passphrase, keyring or prompt); reads come
from memory, every change is one locked read-modify-write. See ``format`` for the file
layout, ``keyslots`` for unlocking, ``filestore`` for the write protocol.
"""

from __future__ import annotations

from tokenguard.vault.filestore import FileStorage, VaultConflictError
from tokenguard.vault.format import SlotKind
from tokenguard.vault.paths import default_vault_path, resolve_vault_path
from tokenguard.vault.records import TokenRecord, TokenStatus
from tokenguard.vault.storage import SealedBlob, VaultStorage
from tokenguard.vault.unlock import Unlocker, create_key_file
from tokenguard.vault.vault import Check, SlotInfo, Vault, VerifyReport, check_backups

__all__ = [
    "Check",
    "FileStorage",
    "SealedBlob",
    "SlotInfo",
    "SlotKind",
    "TokenRecord",
    "TokenStatus",
    "Unlocker",
    "Vault",
    "VaultConflictError",
    "VaultStorage",
    "VerifyReport",
    "check_backups",
    "create_key_file",
    "default_vault_path",
    "resolve_vault_path",
]
