"""The sealed vault file format, version 1.

Layout (all integers big-endian)::

    magic    8 bytes   b"TGVAULT\\0"
    version  1 byte    1
    hlen     4 bytes   length of the header
    header   hlen      canonical JSON (sorted keys, no spaces): vault id, generation,
                       cipher, payload nonce, key slots (each with its KDF parameters)
    digest   32 bytes  SHA-256 of magic..header
    sealed   rest      ChaCha20-Poly1305(data key, nonce, payload, aad=magic..header)

The AEAD authenticates the whole header with the payload. The unkeyed digest adds no
security; it tells accidental corruption of the header apart from a wrong key, so a damaged
file says "corrupt" rather than "wrong passphrase". Each key slot wraps the random data key
with its own key-encryption key; the slot's description (kind, KDF parameters, key id) is
bound into the wrap as associated data.

The parser is strict: unknown versions, ciphers, slot kinds or fields, duplicate keys,
non-canonical encodings, trailing bytes, truncation and out-of-range parameters are all
:class:`~tokenguard.errors.VaultFormatError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import struct
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tokenguard.errors import VaultError, VaultFormatError
from tokenguard.vault import kdf

MAGIC = b"TGVAULT\x00"
VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
CIPHER = "chacha20-poly1305"
NONCE_LEN = 12
TAG_LEN = 16
DIGEST_LEN = 32
_PREFIX = struct.Struct(">8sBI")
PREFIX_LEN = _PREFIX.size

MAX_HEADER_LEN = 64 * 1024
# About 400,000 records: far beyond any real vault, and small enough that reading,
# decrypting and splitting a hostile file of this size cannot exhaust memory.
MAX_FILE_LEN = 256 * 1024 * 1024
MAX_SLOTS = 16
MAX_GENERATION = 2**53
MAX_LABEL_LEN = 256
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_HEX8 = re.compile(r"[0-9a-f]{8}")

_SLOT_AAD_PREFIX = b"tokenguard-vault-slot-v1\x00"


class SlotKind(StrEnum):
    """How a key slot's key-encryption key is obtained."""

    PASSPHRASE = "passphrase"
    KEY_FILE = "key-file"
    KEYRING = "keyring"


@dataclass(frozen=True, slots=True)
class KeySlot:
    """One way to unwrap the data key.

    ``argon2`` is set for passphrase slots; ``key_id`` (derived from the key) for key-file
    and keyring slots; ``label`` is free text (the keyring service/account).
    """

    id: str
    kind: SlotKind
    salt: bytes
    nonce: bytes
    wrapped: bytes
    argon2: kdf.Argon2Params | None = None
    key_id: str | None = None
    label: str = ""

    def describe(self) -> dict[str, Any]:
        """The slot's JSON form without the wrap (what the wrap authenticates)."""
        out: dict[str, Any] = {"id": self.id, "kind": self.kind.value, "salt": _b64(self.salt)}
        if self.argon2 is not None:
            out["kdf"] = {
                "alg": "argon2id",
                "m": self.argon2.memory_kib,
                "t": self.argon2.iterations,
                "p": self.argon2.lanes,
            }
        else:
            out["kdf"] = {"alg": "hkdf-sha256"}
        if self.key_id is not None:
            out["key_id"] = self.key_id
        if self.label:
            out["label"] = self.label
        return out

    def to_json(self) -> dict[str, Any]:
        """The slot's full JSON form in the header."""
        out = self.describe()
        out["nonce"] = _b64(self.nonce)
        out["wrapped"] = _b64(self.wrapped)
        return out

    def wrap_aad(self, vault_id: str) -> bytes:
        """Associated data binding the wrap to this vault and this slot's description."""
        return _SLOT_AAD_PREFIX + vault_id.encode() + b"\x00" + canonical_json(self.describe())


@dataclass(frozen=True, slots=True)
class Header:
    """The authenticated header of a vault file."""

    vault_id: str
    generation: int
    nonce: bytes
    slots: tuple[KeySlot, ...]
    cipher: str = CIPHER
    version: int = VERSION

    def to_json(self) -> dict[str, Any]:
        """The header's JSON form."""
        return {
            "cipher": self.cipher,
            "generation": self.generation,
            "nonce": _b64(self.nonce),
            "slots": [s.to_json() for s in self.slots],
            "vault_id": self.vault_id,
        }


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """A structurally valid vault file, not yet decrypted."""

    header: Header
    aad: bytes
    ciphertext: bytes


def canonical_json(value: Any) -> bytes:
    """Deterministic compact JSON (sorted keys, ASCII only)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode(header: Header, ciphertext: bytes) -> bytes:
    """Serialise a file from its header and sealed payload."""
    return encode_with_aad(encode_aad(header), ciphertext)


def encode_with_aad(aad: bytes, ciphertext: bytes) -> bytes:
    """Serialise a file from its already encoded header (``encode_aad``) and sealed payload."""
    return b"".join((aad, hashlib.sha256(aad).digest(), ciphertext))


def file_buffer(aad: bytes, payload_len: int) -> tuple[bytearray, int]:
    """A file image with header and digest filled in, and the offset of the sealed part."""
    offset = len(aad) + DIGEST_LEN
    image = bytearray(offset + payload_len + TAG_LEN)
    image[: len(aad)] = aad
    image[len(aad) : offset] = hashlib.sha256(aad).digest()
    return image, offset


def encode_aad(header: Header) -> bytes:
    """Magic, version, length and header: the payload's associated data."""
    body = canonical_json(header.to_json())
    aad = _PREFIX.pack(MAGIC, header.version, min(len(body), 2**32 - 1)) + body
    # The writer must never produce a file its own parser refuses: it could not be opened.
    try:
        parse_header(aad + hashlib.sha256(aad).digest())
    except VaultFormatError as exc:
        raise VaultError(
            f"refusing to write a vault header this version could not read back ({exc.message})",
            hint="Remove key slots you no longer use",
        ) from None
    return aad


def corrupt(what: str) -> VaultFormatError:
    """The error for a file that is not a well-formed vault (``what`` is public detail)."""
    return VaultFormatError(
        f"vault file is corrupt or not a tokenguard vault: {what}",
        hint="Restore it from a backup (`tokenguard vault verify` lists them)",
    )


def file_too_large(size: int) -> str:
    """Why a file of ``size`` bytes is refused unread."""
    return f"file of {size} bytes is larger than the {MAX_FILE_LEN // (1024 * 1024)} MiB cap"


def parse(data: bytes) -> ParsedFile:
    """Parse and check the structure of a vault file (no decryption)."""
    if len(data) > MAX_FILE_LEN:
        raise corrupt(file_too_large(len(data)))
    header, end = parse_header(data)
    if len(data) < end + TAG_LEN:
        raise corrupt("file is truncated")
    return ParsedFile(header=header, aad=data[: end - DIGEST_LEN], ciphertext=data[end:])


def header_span(prefix: bytes) -> int:
    """How many leading bytes hold magic, version, length, header and digest."""
    if len(prefix) < PREFIX_LEN:
        raise corrupt("file is empty" if not prefix else "file is truncated")
    _check_prefix(prefix)
    return PREFIX_LEN + int(_PREFIX.unpack_from(prefix)[2]) + DIGEST_LEN


def _check_prefix(data: bytes) -> int:
    magic, version, hlen = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise corrupt("bad magic bytes")
    if version not in SUPPORTED_VERSIONS:
        raise VaultFormatError(
            f"unsupported vault format version {version}",
            hint="Upgrade tokenguard, or restore a backup written by this version",
        )
    if hlen > MAX_HEADER_LEN:
        raise corrupt("header length beyond the cap")
    return int(version)


def parse_header(data: bytes) -> tuple[Header, int]:
    """Parse the header at the start of ``data``; return it and where the sealed part starts.

    ``data`` may be the whole file or just its first :func:`header_span` bytes.
    """
    if len(data) < PREFIX_LEN:
        raise corrupt("file is empty" if not data else "file is truncated")
    version = _check_prefix(data)
    end = PREFIX_LEN + int(_PREFIX.unpack_from(data)[2])
    if len(data) < end + DIGEST_LEN:
        raise corrupt("file is truncated")
    aad = data[:end]
    if hashlib.sha256(aad).digest() != data[end : end + DIGEST_LEN]:
        raise corrupt("header checksum mismatch")
    header = _parse_header(data[PREFIX_LEN:end], version)
    if canonical_json(header.to_json()) != data[PREFIX_LEN:end]:
        raise corrupt("header is not in canonical form")
    return header, end + DIGEST_LEN


def peek_generation(data: bytes) -> int:
    """The generation recorded in a vault file (structure checked, nothing decrypted)."""
    return parse(data).header.generation


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise corrupt(f"duplicate key {key!r} in header")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise corrupt("non-finite number in header")


def _parse_header(body: bytes, version: int) -> Header:
    try:
        raw = json.loads(
            body.decode("ascii"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
        )
    except VaultFormatError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise corrupt("header is not valid JSON") from None
    obj = _object(raw, "header", {"cipher", "generation", "nonce", "slots", "vault_id"})
    if obj["cipher"] != CIPHER:
        raise corrupt(f"unknown cipher {str(obj['cipher'])[:40]!r}")
    vault_id = _str(obj["vault_id"], "vault_id")
    if not _HEX32.fullmatch(vault_id):
        raise corrupt("bad vault id")
    generation = _int(obj["generation"], "generation", 1, MAX_GENERATION)
    nonce = _bytes(obj["nonce"], "nonce", NONCE_LEN, NONCE_LEN)
    slots_raw = obj["slots"]
    if not isinstance(slots_raw, list) or not 1 <= len(slots_raw) <= MAX_SLOTS:
        raise corrupt(f"header must hold 1..{MAX_SLOTS} key slots")
    slots = tuple(_parse_slot(s) for s in slots_raw)
    if len({s.id for s in slots}) != len(slots):
        raise corrupt("duplicate key slot id")
    return Header(
        vault_id=vault_id, generation=generation, nonce=nonce, slots=slots, version=version
    )


def _parse_slot(raw: Any) -> KeySlot:
    if not isinstance(raw, dict):
        raise corrupt("key slot is not an object")
    try:
        kind = SlotKind(str(raw.get("kind")))
    except ValueError:
        raise corrupt("unknown key slot kind") from None
    required = {"id", "kind", "salt", "kdf", "nonce", "wrapped"}
    optional = {"label"}
    if kind is not SlotKind.PASSPHRASE:
        required.add("key_id")
    obj = _object(raw, "key slot", required, optional)
    slot_id = _str(obj["id"], "slot id")
    if not _HEX8.fullmatch(slot_id):
        raise corrupt("bad key slot id")
    kdf_raw = obj["kdf"]
    argon2: kdf.Argon2Params | None = None
    if kind is SlotKind.PASSPHRASE:
        k = _object(kdf_raw, "kdf", {"alg", "m", "t", "p"})
        if k["alg"] != "argon2id":
            raise corrupt("passphrase slot KDF must be argon2id")
        argon2 = kdf.Argon2Params(
            memory_kib=_int(k["m"], "argon2 m", 1, 2**32),
            iterations=_int(k["t"], "argon2 t", 1, 2**32),
            lanes=_int(k["p"], "argon2 p", 1, 2**24),
        )
        problem = kdf.check_argon2_params(argon2)
        if problem:
            raise corrupt(problem)
    else:
        k = _object(kdf_raw, "kdf", {"alg"})
        if k["alg"] != "hkdf-sha256":
            raise corrupt("key slot KDF must be hkdf-sha256")
    key_id = None
    if kind is not SlotKind.PASSPHRASE:
        key_id = _str(obj["key_id"], "key id")
        if not _HEX16.fullmatch(key_id):
            raise corrupt("bad key id")
    label = _str(obj.get("label", ""), "label")
    if "label" in obj and not 0 < len(label) <= MAX_LABEL_LEN:
        raise corrupt("bad slot label")
    return KeySlot(
        id=slot_id,
        kind=kind,
        salt=_bytes(obj["salt"], "salt", kdf.SALT_LEN, kdf.MAX_SALT_LEN),
        nonce=_bytes(obj["nonce"], "slot nonce", NONCE_LEN, NONCE_LEN),
        wrapped=_bytes(obj["wrapped"], "wrapped key", kdf.KEY_LEN + TAG_LEN, kdf.KEY_LEN + TAG_LEN),
        argon2=argon2,
        key_id=key_id,
        label=label,
    )


def _object(
    raw: Any, what: str, required: set[str], optional: frozenset[str] | set[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise corrupt(f"{what} is not an object")
    keys = set(raw)
    if not required <= keys or not keys <= required | set(optional):
        raise corrupt(f"{what} has missing or unknown fields")
    return raw


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise corrupt(f"{what} is not a string")
    return value


def _int(value: Any, what: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise corrupt(f"{what} out of range")
    return value


def _bytes(value: Any, what: str, low: int, high: int) -> bytes:
    text = _str(value, what)
    if len(text) > 4 * high:
        raise corrupt(f"{what} too long")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise corrupt(f"{what} is not base64") from None
    if not low <= len(data) <= high or _b64(data) != text:
        raise corrupt(f"bad {what}")
    return data
