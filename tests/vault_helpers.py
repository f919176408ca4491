"""Shared helpers for the vault tests: isolated environment, vault factories, CLI runner.

Import the fixture functions into a test module to activate them there, e.g.
``from vault_helpers import vault_env_fixture``; the fixtures are named without ``_fixture``.
"""

from __future__ import annotations

import os
import shutil
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tokenguard.cli import main
from tokenguard.secrets import Secret
from tokenguard.vault import TokenRecord, Unlocker, Vault, kdf

GOLDEN = Path(__file__).parent / "golden" / "vault"
ENV_VARS = (
    "TOKENGUARD_KEY_FILE",
    "TOKENGUARD_PASSPHRASE_FILE",
    "TOKENGUARD_PASSPHRASE",
    "TOKENGUARD_NEW_PASSPHRASE",
    "TOKENGUARD_NEW_PASSPHRASE_FILE",
    "TOKENGUARD_VAULT",
)


def token(n: int, tag: str = "T") -> str:
    """A token-shaped fake secret, unique per ``n``."""
    body = f"{tag}{n:035d}"
    return "apify_api_" + body[-36:].rjust(36, "0")


def record(name: str, secret: str | None = None, **changes: Any) -> TokenRecord:
    """A minimal record."""
    value = secret or token(zlib.crc32(name.encode()))
    return TokenRecord(name=name, secret=Secret(value), **changes)


@dataclass
class Setup:
    """A vault created for one test."""

    dir: Path
    path: Path
    key_file: Path

    @property
    def unlocker(self) -> Unlocker:
        return Unlocker(key_file=self.key_file)

    def open(self, **kw: Any) -> Vault:
        return Vault.open(self.path, unlocker=self.unlocker, **kw)

    def env(self) -> dict[str, str]:
        return {"TOKENGUARD_VAULT": str(self.path), "TOKENGUARD_KEY_FILE": str(self.key_file)}


@pytest.fixture(name="vault_env")
def vault_env_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No tokenguard variables from the outer environment; state and data dirs under tmp."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path


@pytest.fixture(name="weak_kdf")
def weak_kdf_fixture() -> Iterator[None]:
    """Tiny Argon2 costs for passphrase slots (test hook; production never lowers them)."""
    with kdf.weak_params_for_testing():
        yield


@pytest.fixture(name="key_vault")
def key_vault_fixture(vault_env: Path) -> Setup:
    """An empty vault with one key-file slot."""
    directory = vault_env / "vaultdir"
    setup = Setup(dir=directory, path=directory / "vault.tgv", key_file=vault_env / "vault.key")
    Vault.init(setup.path, key_file=setup.key_file)
    return setup


def copy_golden(version: str, dest: Path) -> Setup:
    """Copy a golden vault and its key file into ``dest`` (0700 dir, 0600 files)."""
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    src = GOLDEN / version
    for name in ("vault.tgv", "key"):
        shutil.copyfile(src / name, dest / name)
        os.chmod(dest / name, 0o600)
    return Setup(dir=dest, path=dest / "vault.tgv", key_file=dest / "key")


def cli(
    args: list[str], *, input: str | bytes | None = None, env: Mapping[str, str] | None = None
) -> Result:
    """Run ``tokenguard`` in-process; stdout and stderr are captured separately."""
    return CliRunner().invoke(main, args, input=input, env=dict(env or {}), catch_exceptions=False)


def write_sealed_payload(vault: Vault, payload: bytes) -> None:
    """Replace ``vault``'s file with ``payload`` sealed under its real data key.

    For testing the payload decoder: the result passes authentication, so whatever the
    payload holds reaches the strict decoder (what only a key holder could produce).
    """
    from dataclasses import replace

    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    from tokenguard.vault import format as fmt

    header = replace(vault._header, nonce=os.urandom(fmt.NONCE_LEN))  # type: ignore[type-var]
    aad = fmt.encode_aad(header)
    sealed = ChaCha20Poly1305(vault._data_key).encrypt(header.nonce, payload, aad)
    tmp = vault.path.with_name("forged")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(fmt.encode_with_aad(aad, sealed))
    os.replace(tmp, vault.path)
