"""Key slots: wrap the vault's random data key for each unlock method, and unwrap it.

Adding, removing or re-keying a slot re-wraps the same data key; the payload is untouched.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, MutableMapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tokenguard.errors import VaultFormatError, VaultUnlockError
from tokenguard.secrets import Secret
from tokenguard.vault import kdf
from tokenguard.vault.format import NONCE_LEN, KeySlot, SlotKind
from tokenguard.vault.unlock import (
    UNLOCK_OPTIONS_HINT,
    Unlocker,
    keyring_get,
    read_key_file,
)

#: Cache of key-encryption keys by slot description, so a re-read after another process
#: changed the file does not pay for Argon2 again.
KekCache = MutableMapping[bytes, bytes]


def new_slot_id(existing: Iterable[KeySlot]) -> str:
    """A fresh 8-hex-digit slot id."""
    taken = {s.id for s in existing}
    while True:
        slot_id = secrets.token_hex(4)
        if slot_id not in taken:
            return slot_id


def _wrap(slot: KeySlot, vault_id: str, kek: bytes, data_key: bytes) -> KeySlot:
    nonce = os.urandom(NONCE_LEN)
    wrapped = ChaCha20Poly1305(kek).encrypt(nonce, data_key, slot.wrap_aad(vault_id))
    return KeySlot(
        id=slot.id,
        kind=slot.kind,
        salt=slot.salt,
        nonce=nonce,
        wrapped=wrapped,
        argon2=slot.argon2,
        key_id=slot.key_id,
        label=slot.label,
    )


def passphrase_slot(
    vault_id: str,
    data_key: bytes,
    passphrase: Secret,
    existing: Iterable[KeySlot] = (),
    params: kdf.Argon2Params | None = None,
) -> KeySlot:
    """A new passphrase slot (Argon2id)."""
    if not passphrase:
        raise VaultUnlockError("the passphrase is empty", hint="Choose a non-empty passphrase")
    params = params or kdf.default_argon2_params()
    problem = kdf.check_argon2_params(params)
    if problem:
        raise ValueError(problem)
    draft = KeySlot(
        id=new_slot_id(existing),
        kind=SlotKind.PASSPHRASE,
        salt=os.urandom(kdf.SALT_LEN),
        nonce=b"",
        wrapped=b"",
        argon2=params,
    )
    kek = kdf.derive_passphrase_kek(passphrase.reveal(), draft.salt, params)
    return _wrap(draft, vault_id, kek, data_key)


def key_slot(
    vault_id: str,
    data_key: bytes,
    key: bytes,
    existing: Iterable[KeySlot] = (),
    *,
    kind: SlotKind = SlotKind.KEY_FILE,
    label: str = "",
) -> KeySlot:
    """A new key-file (or keyring) slot (HKDF of a 32-byte key)."""
    draft = KeySlot(
        id=new_slot_id(existing),
        kind=kind,
        salt=os.urandom(kdf.SALT_LEN),
        nonce=b"",
        wrapped=b"",
        key_id=kdf.key_id(key),
        label=label,
    )
    return _wrap(draft, vault_id, kdf.derive_key_kek(key, draft.salt), data_key)


def _try(slot: KeySlot, vault_id: str, kek: bytes) -> bytes | None:
    try:
        return ChaCha20Poly1305(kek).decrypt(slot.nonce, slot.wrapped, slot.wrap_aad(vault_id))
    except InvalidTag:
        return None


def _damaged(slot: KeySlot) -> VaultFormatError:
    return VaultFormatError(
        f"key slot {slot.id} ({slot.kind.value}) is damaged: the key matches but does not unwrap",
        hint="Restore the vault from a backup, or unlock with another key slot",
    )


def unlock(
    vault_id: str, slots: Iterable[KeySlot], unlocker: Unlocker, cache: KekCache
) -> tuple[bytes, KeySlot]:
    """Unwrap the data key with ``unlocker``; return it and the slot that opened it."""
    slots = tuple(slots)
    if unlocker.key_file is not None:
        key = read_key_file(unlocker.key_file)
        return _unlock_with_key(
            vault_id,
            slots,
            key=key,
            kind=SlotKind.KEY_FILE,
            what=f"key file {unlocker.key_file}",
            cache=cache,
        )
    if unlocker.keyring:
        return _unlock_with_keyring(vault_id, slots, cache)
    assert unlocker.passphrase is not None
    candidates = [s for s in slots if s.kind is SlotKind.PASSPHRASE]
    if not candidates:
        raise VaultUnlockError(
            "this vault has no passphrase slot", hint="Unlock it with its key file"
        )
    for slot in candidates:
        cache_key = b"p" + slot.wrap_aad(vault_id)
        kek = cache.get(cache_key)
        if kek is None:
            assert slot.argon2 is not None
            kek = kdf.derive_passphrase_kek(unlocker.passphrase.reveal(), slot.salt, slot.argon2)
        data_key = _try(slot, vault_id, kek)
        if data_key is not None:
            cache[cache_key] = kek
            return data_key, slot
    raise VaultUnlockError("wrong passphrase for this vault", hint=UNLOCK_OPTIONS_HINT)


def _own_account(vault_id: str, account: str) -> bool:
    # A keyring slot may name only this vault's own entries.
    return account == vault_id or account.startswith(vault_id + ".")


def _unlock_with_keyring(
    vault_id: str, slots: tuple[KeySlot, ...], cache: KekCache
) -> tuple[bytes, KeySlot]:
    # Each keyring slot names its entry (label): the vault id for the first, the vault id
    # plus a random suffix for later ones, so adding a slot never overwrites another's key.
    accounts = sorted(
        {s.label for s in slots if s.kind is SlotKind.KEYRING and _own_account(vault_id, s.label)}
    )
    for account in accounts:
        key = keyring_get(account)
        if key is None:
            continue
        kid = kdf.key_id(key)
        if any(s.kind is SlotKind.KEYRING and s.key_id == kid for s in slots):
            return _unlock_with_key(
                vault_id, slots, key=key, kind=SlotKind.KEYRING, what="keyring", cache=cache
            )
    raise VaultUnlockError("the OS keyring holds no key for this vault", hint=UNLOCK_OPTIONS_HINT)


def _unlock_with_key(
    vault_id: str,
    slots: tuple[KeySlot, ...],
    *,
    key: bytes,
    kind: SlotKind,
    what: str,
    cache: KekCache,
) -> tuple[bytes, KeySlot]:
    kid = kdf.key_id(key)
    candidates = [s for s in slots if s.kind is kind and s.key_id == kid]
    if not candidates:
        raise VaultUnlockError(
            f"the {what} does not match any key slot of this vault",
            hint="Use the key file or passphrase this vault was created or re-keyed with",
        )
    for slot in candidates:
        kek = kdf.derive_key_kek(key, slot.salt)
        data_key = _try(slot, vault_id, kek)
        if data_key is not None:
            return data_key, slot
    raise _damaged(candidates[0])
