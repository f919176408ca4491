"""The sealed format: golden files, truncation and byte flips, strict parsing, caps."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
from vault_helpers import (  # noqa: F401
    GOLDEN,
    Setup,
    cli,
    copy_golden,
    key_vault_fixture,
    record,
    vault_env_fixture,
)

from tokenguard.cli.vault import record_json
from tokenguard.errors import VaultFormatError, VaultUnlockError
from tokenguard.secrets import Secret
from tokenguard.vault import Unlocker, Vault, kdf
from tokenguard.vault import format as fmt

VERSIONS = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir())


def _expected(version: str) -> list[dict[str, object]]:
    return json.loads((GOLDEN / version / "expected.json").read_text(encoding="utf-8"))


def _rendered(vault: Vault) -> list[dict[str, object]]:
    return [{**record_json(r, reveal=True), "meta": dict(r.meta)} for r in vault.list()]


def test_every_format_version_has_golden_files() -> None:
    assert [f"v{v}" for v in sorted(fmt.SUPPORTED_VERSIONS)] == VERSIONS


@pytest.mark.parametrize("version", VERSIONS)
def test_golden_opens_with_key_file(version: str, vault_env: Path) -> None:
    setup = copy_golden(version, vault_env / "g")
    vault = Vault.open(setup.path, unlocker=Unlocker(key_file=setup.key_file))
    assert _rendered(vault) == _expected(version)
    assert vault.generation >= 2


@pytest.mark.parametrize("version", VERSIONS)
def test_golden_opens_with_passphrase(version: str, vault_env: Path) -> None:
    setup = copy_golden(version, vault_env / "g")
    passphrase = (GOLDEN / version / "passphrase.txt").read_text(encoding="utf-8").rstrip("\n")
    vault = Vault.open(setup.path, unlocker=Unlocker(passphrase=Secret(passphrase)))
    assert _rendered(vault) == _expected(version)
    with pytest.raises(VaultUnlockError):
        Vault.open(setup.path, unlocker=Unlocker(passphrase=Secret(passphrase + "x")))


@pytest.mark.parametrize("version", VERSIONS)
def test_golden_can_be_written_by_this_release(version: str, vault_env: Path) -> None:
    setup = copy_golden(version, vault_env / "g")
    vault = setup.open()
    vault.put(record("new.1"))
    again = setup.open()
    assert [r.name for r in again.list()] == sorted(
        [e["name"] for e in _expected(version)] + ["new.1"]
    )  # type: ignore[misc]


def _secrets(version: str) -> list[str]:
    return [str(e["secret"]) for e in _expected(version)]


def _assert_rejected(path: Path, unlocker: Unlocker, data: bytes, secrets: list[str]) -> None:
    # A fresh file each time: truncating and rewriting one file makes ext4 flush (slow).
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    with pytest.raises(VaultFormatError) as info:
        Vault.open(path, unlocker=unlocker)
    text = str(info.value) + repr(info.value)
    assert not any(s in text for s in secrets)
    # Raised "from None" (or from a harmless cause): nothing secret rides along.
    assert info.value.__cause__ is None or not any(s in str(info.value.__cause__) for s in secrets)
    assert path.read_bytes() == data


@pytest.mark.parametrize("version", VERSIONS)
def test_truncation_at_every_offset_is_a_format_error(version: str, vault_env: Path) -> None:
    setup = copy_golden(version, vault_env / "g")
    original = setup.path.read_bytes()
    secrets = _secrets(version)
    for cut in range(len(original)):
        _assert_rejected(setup.path, setup.unlocker, original[:cut], secrets)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("mask", [0x01, 0x80])  # 0xFF: the CLI test below
def test_every_single_byte_flip_is_a_format_error(version: str, mask: int, vault_env: Path) -> None:
    setup = copy_golden(version, vault_env / "g")
    original = setup.path.read_bytes()
    secrets = _secrets(version)
    for offset in range(len(original)):
        flipped = bytearray(original)
        flipped[offset] ^= mask
        _assert_rejected(setup.path, setup.unlocker, bytes(flipped), secrets)


@pytest.mark.parametrize("version", VERSIONS)
def test_trailing_bytes_are_a_format_error(version: str, vault_env: Path) -> None:
    setup = copy_golden(version, vault_env / "g")
    original = setup.path.read_bytes()
    for extra in (b"\x00", b"x" * 17, original):
        _assert_rejected(setup.path, setup.unlocker, original + extra, _secrets(version))


@pytest.mark.parametrize("version", VERSIONS)
def test_cli_on_damaged_file_exits_3_and_leaves_it_alone(version: str, vault_env: Path) -> None:
    setup = copy_golden(version, vault_env / "g")
    original = setup.path.read_bytes()
    secrets = _secrets(version)
    commands: list[tuple[list[str], str | None]] = [
        (["vault", "list", "--json"], None),
        (["vault", "show", "admin", "--reveal"], None),
        (["vault", "add", "x.1"], "apify_api_" + "Q" * 36),
        (["vault", "remove", "admin"], None),
        (["vault", "verify"], None),
        (["vault", "rekey", "--key-file", str(vault_env / "new.key")], None),
    ]
    # A spread of offsets through every region (prefix, header, digest, ciphertext, tag).
    for offset in range(0, len(original), 97):
        flipped = bytearray(original)
        flipped[offset] ^= 0x40
        for cut_or_flip in (bytes(flipped), original[:offset]):
            setup.path.write_bytes(cut_or_flip)
            for args, stdin in commands:
                result = cli(args, input=stdin, env=setup.env())
                assert result.exit_code == 3, (offset, args, result.output)
                assert not any(s in result.output for s in secrets)
                assert setup.path.read_bytes() == cut_or_flip


def _header_json(data: bytes) -> dict[str, object]:
    _, _, hlen = fmt._PREFIX.unpack_from(data)
    return json.loads(data[fmt.PREFIX_LEN : fmt.PREFIX_LEN + hlen])


def _reseal_header(data: bytes, header: dict[str, object]) -> bytes:
    """Rewrite the header (with a valid checksum) keeping the sealed part: a forgery."""
    _, version, hlen = fmt._PREFIX.unpack_from(data)
    body = fmt.canonical_json(header)
    aad = fmt._PREFIX.pack(fmt.MAGIC, version, len(body)) + body
    return fmt.encode_with_aad(aad, data[fmt.PREFIX_LEN + hlen + fmt.DIGEST_LEN :])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("m", 8 * 1024 * 1024),  # 8 GiB: beyond the cap
        ("m", 1024),  # below the OWASP floor: a downgrade
        ("t", 1),
        ("t", 10_000),
        ("p", 1000),
        ("m", -1),
        ("m", True),
        ("m", 65536.0),
    ],
)
def test_kdf_parameters_outside_bounds_are_format_errors(
    field: str, value: object, vault_env: Path
) -> None:
    setup = copy_golden("v1", vault_env / "g")
    data = setup.path.read_bytes()
    header = _header_json(data)
    slots = header["slots"]
    assert isinstance(slots, list)
    for slot in slots:
        if slot["kind"] == "passphrase":
            slot["kdf"][field] = value
    forged = _reseal_header(data, header)
    setup.path.write_bytes(forged)
    with pytest.raises(VaultFormatError):
        Vault.open(setup.path, unlocker=setup.unlocker)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h: h.update(cipher="aes-128-ecb"),
        lambda h: h.update(extra=1),
        lambda h: h.pop("nonce"),
        lambda h: h.update(generation=0),
        lambda h: h.update(generation=2**60),
        lambda h: h.update(slots=[]),
        lambda h: h.update(slots=h["slots"] * 9),
        lambda h: h["slots"][0].update(kind="telepathy"),
        lambda h: h["slots"][0].update(salt="not base64!"),
        lambda h: h["slots"][0].update(wrapped="AAAA"),
        lambda h: h["slots"][0].update(unknown="x"),
        lambda h: h.update(vault_id="../../etc/passwd"),
    ],
)
def test_strict_header_parser(mutate: object, vault_env: Path) -> None:
    setup = copy_golden("v1", vault_env / "g")
    data = setup.path.read_bytes()
    header = _header_json(data)
    mutate(header)  # type: ignore[operator]
    setup.path.write_bytes(_reseal_header(data, header))
    with pytest.raises(VaultFormatError):
        Vault.open(setup.path, unlocker=setup.unlocker)


def test_unknown_version_and_magic(vault_env: Path) -> None:
    setup = copy_golden("v1", vault_env / "g")
    data = bytearray(setup.path.read_bytes())
    data[8] = 2
    setup.path.write_bytes(bytes(data))
    with pytest.raises(VaultFormatError, match="unsupported vault format version 2"):
        Vault.open(setup.path, unlocker=setup.unlocker)
    setup.path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(VaultFormatError, match="not a tokenguard vault"):
        Vault.open(setup.path, unlocker=setup.unlocker)


def test_duplicate_json_keys_are_rejected(vault_env: Path) -> None:
    setup = copy_golden("v1", vault_env / "g")
    data = setup.path.read_bytes()
    _, version, hlen = fmt._PREFIX.unpack_from(data)
    body = data[fmt.PREFIX_LEN : fmt.PREFIX_LEN + hlen]
    body = body.replace(b'{"cipher"', b'{"cipher":"x","cipher"', 1)
    aad = fmt._PREFIX.pack(fmt.MAGIC, version, len(body)) + body
    setup.path.write_bytes(fmt.encode_with_aad(aad, data[fmt.PREFIX_LEN + hlen + 32 :]))
    with pytest.raises(VaultFormatError):
        Vault.open(setup.path, unlocker=setup.unlocker)


def test_forged_header_fails_authentication(vault_env: Path) -> None:
    """A header change with a recomputed checksum still fails: the AEAD covers the header."""
    setup = copy_golden("v1", vault_env / "g")
    data = setup.path.read_bytes()
    header = _header_json(data)
    header["generation"] = int(header["generation"]) + 5  # type: ignore[call-overload]
    setup.path.write_bytes(_reseal_header(data, header))
    with pytest.raises(VaultFormatError, match="failed authentication"):
        Vault.open(setup.path, unlocker=setup.unlocker)


def test_production_floor_is_owasp_and_hook_is_scoped() -> None:
    assert kdf.DEFAULT_ARGON2.memory_kib >= 19 * 1024
    assert kdf.DEFAULT_ARGON2.iterations >= 2
    assert kdf.default_argon2_params() == kdf.DEFAULT_ARGON2
    weak = kdf.Argon2Params(memory_kib=64, iterations=1, lanes=1)
    assert kdf.check_argon2_params(weak) is not None
    with kdf.weak_params_for_testing():
        assert kdf.check_argon2_params(weak) is None
        assert kdf.default_argon2_params().memory_kib < 19 * 1024
    assert kdf.check_argon2_params(weak) is not None


def test_no_plaintext_in_the_file(key_vault: Setup) -> None:
    vault = key_vault.open()
    secret = "apify_api_" + "S" * 36
    vault.put(record("plain.1", secret, notes="visible-notes-marker"))
    data = key_vault.path.read_bytes()
    assert secret.encode() not in data
    assert b"visible-notes-marker" not in data
    assert b"plain.1" not in data
    assert os.stat(key_vault.path).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("version", VERSIONS)
def test_cli_add_at_every_offset_exits_3(version: str, vault_env: Path) -> None:
    """Every truncation and every byte flip: `vault add` exits 3 and writes nothing."""
    setup = copy_golden(version, vault_env / "g")
    original = setup.path.read_bytes()
    secrets = _secrets(version)
    new_secret = "apify_api_" + "N" * 36
    for offset in range(len(original)):
        flipped = bytearray(original)
        flipped[offset] ^= 0xFF
        for damaged in (original[:offset], bytes(flipped)):
            setup.path.unlink()
            fd = os.open(setup.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(damaged)
            result = cli(["vault", "add", "new.1"], input=new_secret, env=setup.env())
            assert result.exit_code == 3, (offset, result.output)
            assert not any(s in result.output for s in [*secrets, new_secret])
            assert setup.path.read_bytes() == damaged
    assert sorted(p.name for p in setup.dir.iterdir()) == ["key", "vault.tgv"]
