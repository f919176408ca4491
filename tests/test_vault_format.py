"""The sealed format: golden files, truncation and byte flips, strict parsing, caps."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
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
from tokenguard.errors import VaultFormatError, VaultPermissionError, VaultUnlockError
from tokenguard.secrets import Secret
from tokenguard.vault import Unlocker, Vault, kdf
from tokenguard.vault import filestore as filestore_mod
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


def _forge_kdf(setup: Setup, **params: object) -> None:
    data = setup.path.read_bytes()
    header = _header_json(data)
    slots = header["slots"]
    assert isinstance(slots, list)
    for slot in slots:
        if slot["kind"] == "passphrase":
            slot["kdf"].update(params)
    setup.path.write_bytes(_reseal_header(data, header))


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
    _forge_kdf(setup, **{field: value})
    # Refused by the parser, before any key is tried (not merely by the AEAD later).
    with pytest.raises(VaultFormatError, match=r"outside|out of range|beyond the cap"):
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
    with pytest.raises(VaultFormatError, match="not a tokenguard vault"):
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


def test_argon2_work_cap(vault_env: Path) -> None:
    """Memory and passes may each be within their caps and still add up to minutes."""
    gib = 1024 * 1024
    assert kdf.check_argon2_params(kdf.Argon2Params(gib, 4, 1)) is None
    assert "beyond the cap" in str(kdf.check_argon2_params(kdf.Argon2Params(gib, 5, 1)))
    assert kdf.check_argon2_params(kdf.Argon2Params(64 * 1024, 64, 1)) is None
    setup = copy_golden("v1", vault_env / "g")
    _forge_kdf(setup, m=gib, t=64)
    with pytest.raises(VaultFormatError, match="beyond the cap"):
        Vault.open(setup.path, unlocker=setup.unlocker)


_LOW_MEMORY_CLI = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (768 * 1024 * 1024, 768 * 1024 * 1024))
from tokenguard.cli import main
sys.argv[0] = "tokenguard"
main()
"""


def test_argon2_out_of_memory_is_a_vault_error(vault_env: Path) -> None:
    """A file asking for more memory than the machine grants: exit 3, not a MemoryError."""
    setup = copy_golden("v1", vault_env / "g")
    _forge_kdf(setup, m=1024 * 1024, t=2)  # 1 GiB, within the caps
    before = setup.path.read_bytes()
    passphrase = (GOLDEN / "v1" / "passphrase.txt").read_text(encoding="utf-8").rstrip("\n")
    env = {
        **os.environ,
        "TOKENGUARD_VAULT": str(setup.path),
        "TOKENGUARD_PASSPHRASE": passphrase,
        "XDG_STATE_HOME": str(vault_env / "state"),
    }
    for var in ("TOKENGUARD_KEY_FILE", "TOKENGUARD_PASSPHRASE_FILE"):
        env.pop(var, None)
    result = subprocess.run(
        [sys.executable, "-c", _LOW_MEMORY_CLI, "vault", "add", "x.1"],
        input="apify_api_" + "M" * 36,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert "not enough memory to unlock" in result.stderr
    assert "Traceback" not in result.stderr
    assert setup.path.read_bytes() == before


def test_oversized_file_is_refused_unread(
    key_vault: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open(key_vault.path, "r+b") as fh:  # sparse: no disk space used
        fh.truncate(fmt.MAX_FILE_LEN + 1)

    def no_read(*args: object) -> bytes:
        raise AssertionError("an oversized vault file must be refused before it is read")

    monkeypatch.setattr(filestore_mod.os, "read", no_read)
    with pytest.raises(VaultFormatError, match="MiB cap"):
        key_vault.open()


def test_fifo_in_place_of_vault_or_key_file_does_not_hang(key_vault: Setup) -> None:
    key_vault.path.unlink()
    os.mkfifo(key_vault.path, 0o600)
    with pytest.raises(VaultPermissionError, match="not a regular file"):
        key_vault.open()
    fifo_key = key_vault.dir / "fifo.key"
    os.mkfifo(fifo_key, 0o600)
    with pytest.raises(VaultPermissionError, match="not a regular file"):
        Vault.open(
            copy_golden("v1", key_vault.dir / "g").path, unlocker=Unlocker(key_file=fifo_key)
        )


def test_key_slot_is_bound_to_its_vault(vault_env: Path) -> None:
    """A slot moved into another vault (same key file) no longer unwraps."""
    key = vault_env / "shared.key"
    a = Vault.init(vault_env / "a" / "vault.tgv", key_file=key)
    b = Vault.init(vault_env / "b" / "vault.tgv", key_file=key)
    b.put(record("b-only"))
    a_data = a.path.read_bytes()
    a_header = _header_json(a_data)
    a_header["slots"] = _header_json(b.path.read_bytes())["slots"]
    a.path.write_bytes(_reseal_header(a_data, a_header))
    with pytest.raises(VaultFormatError, match=r"key slot .* is damaged"):
        Vault.open(a.path, unlocker=Unlocker(key_file=key))
    # The whole of vault b relabelled as vault a: refused at the slot, before the payload.
    b_data = b.path.read_bytes()
    b_header = _header_json(b_data)
    b_header["vault_id"] = a.vault_id
    b.path.write_bytes(_reseal_header(b_data, b_header))
    with pytest.raises(VaultFormatError, match=r"key slot .* is damaged"):
        Vault.open(b.path, unlocker=Unlocker(key_file=key))


def test_every_write_and_every_wrap_uses_a_fresh_nonce(key_vault: Setup) -> None:
    vault = key_vault.open()
    nonces, slot_nonces, salts = [], [], []
    for i in range(20):
        vault.put(record(f"n{i}"))
        header = fmt.parse(key_vault.path.read_bytes()).header
        assert len(header.nonce) == fmt.NONCE_LEN == 12
        nonces.append(header.nonce)
    for i in range(5):
        vault.rekey(key_file=key_vault.dir.parent / f"k{i}")
        (slot,) = fmt.parse(key_vault.path.read_bytes()).header.slots
        slot_nonces.append(slot.nonce)
        salts.append(slot.salt)
        assert len(slot.wrapped) == kdf.KEY_LEN + fmt.TAG_LEN
    assert len(set(nonces)) == len(nonces)
    assert len(set(slot_nonces)) == len(slot_nonces)
    assert len(set(salts)) == len(salts)
