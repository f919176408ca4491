"""``tokenguard vault``: commands, exit codes, wrong credentials, and the secret leak check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from vault_helpers import (  # noqa: F401
    Setup,
    cli,
    key_vault_fixture,
    record,
    token,
    vault_env_fixture,
    weak_kdf_fixture,
)

from tokenguard.vault import FileStorage, Unlocker, Vault

SECRET = token(777, "LEAK")
PASSPHRASE = "leak-check passphrase 9f3k"
NEW_PASSPHRASE = "leak-check new passphrase 2x7q"


def test_init_add_list_show_remove(vault_env: Path) -> None:
    path = vault_env / "v" / "vault.tgv"
    key = vault_env / "k.key"
    env = {"TOKENGUARD_VAULT": str(path)}
    result = cli(["vault", "init", "--key-file", str(key)], env=env)
    assert result.exit_code == 0, result.output
    assert "created key file" in result.stderr
    env["TOKENGUARD_KEY_FILE"] = str(key)
    result = cli(
        ["vault", "add", "scraper.1", "--policy", "scraper", "--expires", "2030-01-01"],
        input=SECRET + "\n",
        env=env,
    )
    assert result.exit_code == 0, result.output
    listed = json.loads(cli(["vault", "list", "--json"], env=env).stdout)
    assert [(r["name"], r["status"], r["policy"]) for r in listed] == [
        ("scraper.1", "active", "scraper")
    ]
    assert listed[0]["expires_at"] == "2030-01-01T00:00:00+00:00"
    assert listed[0]["fingerprint"].startswith("tg:")
    by_policy = json.loads(cli(["vault", "show", "scraper", "--json"], env=env).stdout)
    assert by_policy["name"] == "scraper.1"
    revealed = json.loads(cli(["vault", "show", "scraper.1", "--json", "--reveal"], env=env).stdout)
    assert revealed["secret"] == SECRET
    assert cli(["vault", "add", "scraper.1"], input=SECRET, env=env).exit_code == 2
    assert cli(["vault", "add", "scraper.1", "--replace"], input=SECRET, env=env).exit_code == 0
    assert cli(["vault", "remove", "scraper.1"], env=env).exit_code == 0
    assert cli(["vault", "remove", "scraper.1"], env=env).exit_code == 2
    assert cli(["vault", "show", "scraper.1"], env=env).exit_code == 2
    assert json.loads(cli(["vault", "list", "--json"], env=env).stdout) == []


def test_add_refuses_secret_in_argv_without_echoing_it(key_vault: Setup) -> None:
    result = cli(["vault", "add", "x", SECRET], env=key_vault.env())
    assert result.exit_code == 2
    assert SECRET not in result.output
    assert "never taken from the command line" in result.stderr
    assert key_vault.open().list() == []


@pytest.mark.parametrize(
    "args",
    [
        ["vault", "add", SECRET],
        ["vault", "add", "x", "--notes", f"old one was {SECRET}"],
        ["vault", "add", "x", "--policy", SECRET],
        ["vault", "add", "x", "--issuer-id", SECRET],
    ],
)
def test_add_refuses_a_token_pasted_as_name_or_option(key_vault: Setup, args: list[str]) -> None:
    """Names, notes and policies are shown in the clear: a token there would leak."""
    result = cli(args, input=token(3, "P"), env=key_vault.env())
    assert result.exit_code == 2
    assert SECRET not in result.output
    assert "looks like an API token" in result.stderr
    assert key_vault.open().list() == []


def test_add_rejects_empty_input_and_bad_expiry(key_vault: Setup) -> None:
    assert cli(["vault", "add", "x"], input="", env=key_vault.env()).exit_code == 2
    bad = cli(["vault", "add", "x", "--expires", "soon"], input=SECRET, env=key_vault.env())
    assert bad.exit_code == 2
    ok = cli(["vault", "add", "x", "--expires", "30d"], input=SECRET, env=key_vault.env())
    assert ok.exit_code == 0
    assert key_vault.open().get("x").expires_at is not None


def test_verify_reports_and_exit_codes(key_vault: Setup) -> None:
    vault = key_vault.open()
    vault.put(record("a"))
    result = cli(["vault", "verify", "--json"], env=key_vault.env())
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["generation"] == 2
    assert [s["kind"] for s in report["slots"]] == ["key-file"]
    (key_vault.dir / ".vault.tgv.tmp-0123").write_bytes(b"x")
    result = cli(["vault", "verify"], env=key_vault.env())
    assert result.exit_code == 1
    assert "PROBLEM" in result.stdout


def test_permission_refusal_on_the_cli(key_vault: Setup) -> None:
    os.chmod(key_vault.path, 0o644)
    result = cli(["vault", "list"], env=key_vault.env())
    assert result.exit_code == 3
    assert f"chmod 600 {key_vault.path}" in result.stderr
    os.chmod(key_vault.path, 0o600)
    os.chmod(key_vault.key_file, 0o604)
    result = cli(["vault", "list"], env=key_vault.env())
    assert result.exit_code == 3
    assert f"chmod 600 {key_vault.key_file}" in result.stderr


def test_no_unlock_method_lists_the_options(key_vault: Setup) -> None:
    result = cli(["vault", "list"], env={"TOKENGUARD_VAULT": str(key_vault.path)})
    assert result.exit_code == 3
    for option in ("TOKENGUARD_KEY_FILE", "TOKENGUARD_PASSPHRASE_FILE", "TOKENGUARD_PASSPHRASE"):
        assert option in result.stderr


@pytest.fixture
def two_slot_vault(vault_env: Path, weak_kdf: None) -> Setup:
    setup = Setup(dir=vault_env / "v", path=vault_env / "v" / "vault.tgv", key_file=vault_env / "k")
    vault = Vault.init(setup.path, key_file=setup.key_file)
    vault.add_passphrase_slot(Unlocker.from_passphrase(PASSPHRASE).passphrase)  # type: ignore[arg-type]
    vault.put(record("existing", SECRET, policy="p"))
    return setup


WRITING_COMMANDS: list[tuple[list[str], str | None]] = [
    (["vault", "add", "new.1"], token(5, "W")),
    (["vault", "add", "existing", "--replace"], token(6, "W")),
    (["vault", "remove", "existing"], None),
    (["vault", "rekey", "--passphrase"], None),
    (["vault", "rekey", "--key-file", "NEWKEY"], None),
    (["vault", "rekey", "--remove-slot", "00000000"], None),
    (["vault", "init"], None),
]


@pytest.mark.parametrize(("args", "stdin"), WRITING_COMMANDS)
@pytest.mark.parametrize("credential", ["passphrase", "key-file"])
def test_wrong_credentials_on_every_writing_command(
    two_slot_vault: Setup, vault_env: Path, args: list[str], stdin: str | None, credential: str
) -> None:
    setup = two_slot_vault
    if credential == "passphrase":
        env = {"TOKENGUARD_PASSPHRASE": PASSPHRASE + "-wrong"}
    else:
        wrong = vault_env / "wrong.key"
        wrong.write_bytes(os.urandom(32))
        os.chmod(wrong, 0o600)
        env = {"TOKENGUARD_KEY_FILE": str(wrong)}
    env["TOKENGUARD_VAULT"] = str(setup.path)
    env["TOKENGUARD_NEW_PASSPHRASE"] = NEW_PASSPHRASE
    before = {p.name: p.read_bytes() for p in setup.dir.iterdir() if p.is_file()}
    args = [str(vault_env / "new.key") if a == "NEWKEY" else a for a in args]
    result = cli(args, input=stdin, env=env)
    assert result.exit_code == 3, result.output
    assert {p.name: p.read_bytes() for p in setup.dir.iterdir() if p.is_file()} == before
    assert not (vault_env / "new.key").exists()
    assert SECRET not in result.output


def test_right_credentials_work_on_the_two_slot_vault(two_slot_vault: Setup) -> None:
    env = {"TOKENGUARD_VAULT": str(two_slot_vault.path), "TOKENGUARD_PASSPHRASE": PASSPHRASE}
    assert cli(["vault", "add", "new.1"], input=token(5, "W"), env=env).exit_code == 0
    env = {"TOKENGUARD_VAULT": str(two_slot_vault.path)}
    env["TOKENGUARD_KEY_FILE"] = str(two_slot_vault.key_file)
    assert cli(["vault", "remove", "new.1"], env=env).exit_code == 0


def _all_commands(vault_env: Path) -> list[tuple[list[str], str | None, dict[str, str], int]]:
    """Every vault command, with the known secret and passphrases in play."""
    path = str(vault_env / "leak" / "vault.tgv")
    key = str(vault_env / "leak.key")
    pp = {"TOKENGUARD_VAULT": path, "TOKENGUARD_PASSPHRASE": PASSPHRASE}
    kf = {"TOKENGUARD_VAULT": path, "TOKENGUARD_KEY_FILE": key}
    new_pp = {**kf, "TOKENGUARD_NEW_PASSPHRASE": NEW_PASSPHRASE}
    return [
        (["vault", "init", "--key-file", key, "--passphrase"], None, pp, 0),
        (["vault", "add", "leak.1", "--policy", "leak", "--notes", "n"], SECRET, pp, 0),
        (["vault", "add", "leak.1"], SECRET, kf, 2),  # duplicate: error path
        (["vault", "add", "other", SECRET], None, kf, 2),  # secret in argv: refused
        (["vault", "add", SECRET], token(8, "N"), kf, 2),  # pasted as the NAME: refused
        (
            ["vault", "add", "leak.1", "--replace", "--policy", "leak", "--expires", "7d"],
            SECRET + "\n",
            kf,
            0,
        ),
        (["vault", "list"], None, kf, 0),
        (["vault", "list", "--json"], None, kf, 0),
        (["vault", "show", "leak.1"], None, kf, 0),
        (["vault", "show", "leak.1", "--json"], None, kf, 0),
        (["vault", "show", "leak"], None, kf, 0),
        (["vault", "show", "missing"], None, kf, 2),
        (["vault", "verify"], None, kf, 0),
        (["vault", "verify", "--json"], None, kf, 0),
        (["vault", "rekey", "--passphrase", "--keep-existing"], None, new_pp, 0),
        (["vault", "rekey", "--key-file", key + "2", "--keep-existing"], None, kf, 0),
        (["vault", "rekey", "--remove-slot", "0000ffff"], None, kf, 2),
        (["vault", "list"], None, {**pp, "TOKENGUARD_PASSPHRASE": PASSPHRASE + "x"}, 3),
        (["vault", "show", "leak.1", "--reveal"], None, kf, 0),
        (["vault", "show", "leak.1", "--json", "--reveal"], None, kf, 0),
        (["vault", "remove", "leak.1"], None, kf, 0),
        (["vault", "show", "leak.1"], None, kf, 2),
    ]


@pytest.mark.usefixtures("weak_kdf")
def test_leak_check_every_command(vault_env: Path) -> None:
    saw_reveal = False
    for args, stdin, env, code in _all_commands(vault_env):
        result = cli(args, input=stdin, env=env)
        assert result.exit_code == code, (args, result.stderr)
        out = result.stdout + result.stderr
        for secret in (PASSPHRASE, NEW_PASSPHRASE):
            assert secret not in out, args
        if "--reveal" in args:
            assert SECRET in result.stdout, args
            saw_reveal = True
        else:
            assert SECRET not in out, (args, out)
    assert saw_reveal
    directory = vault_env / "leak"
    for path in [*directory.iterdir(), *(vault_env / "state").rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            for secret in (SECRET, PASSPHRASE, NEW_PASSPHRASE):
                assert secret.encode() not in data, path


_CLI = "from tokenguard.cli import main; main()"


def test_leak_check_with_verbose_traceback(key_vault: Setup) -> None:
    """Even the --verbose traceback of a failing add must not show the token."""
    vault = key_vault.open()
    vault.put(record("dup", SECRET))
    result = subprocess.run(
        [sys.executable, "-c", _CLI, "-v", "vault", "add", "dup"],
        input=token(9, "V"),
        env={**os.environ, **key_vault.env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert token(9, "V") not in result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert FileStorage(key_vault.path).stale_temps() == []


def test_verify_checks_backups_when_the_vault_is_damaged(key_vault: Setup) -> None:
    vault = key_vault.open()
    for name in ("a", "b", "c"):
        vault.put(record(name, SECRET if name == "b" else None))
    damaged = bytearray(key_vault.path.read_bytes())
    damaged[-5] ^= 0x10
    key_vault.path.write_bytes(bytes(damaged))
    listed = cli(["vault", "list"], env=key_vault.env())
    assert listed.exit_code == 3
    newest = FileStorage(key_vault.path).backup_path(3)
    assert f"cp -p {newest} {key_vault.path}" in listed.stderr
    result = cli(["vault", "verify"], env=key_vault.env())
    assert result.exit_code == 3
    assert result.stdout.count("intact") == 3
    assert SECRET not in result.output
    report = json.loads(cli(["vault", "verify", "--json"], env=key_vault.env()).stdout)
    assert [b["ok"] for b in report["backups"]] == [True, True, True]
    os.replace(newest, key_vault.path)  # what `cp -p` would do
    assert [r.name for r in key_vault.open().list()] == ["a", "b"]


def test_rekey_says_backups_still_open_with_the_old_slots(key_vault: Setup) -> None:
    key_vault.open().put(record("a"))
    new_key = key_vault.dir.parent / "new.key"
    result = cli(["vault", "rekey", "--key-file", str(new_key)], env=key_vault.env())
    assert result.exit_code == 0, result.output
    assert "backup(s) from before this rekey still open with the old key slots" in result.stderr
    assert "--new-data-key" in result.stderr
    # True: the newest backup still opens with the replaced key file.
    backup = FileStorage(key_vault.path).backups()[0][1]
    os.replace(backup, key_vault.path)
    assert [r.name for r in key_vault.open().list()] == ["a"]


def test_show_by_policy_marks_the_retiring_token_beside_the_active_one(key_vault: Setup) -> None:
    from datetime import UTC, datetime

    from tokenguard.vault import TokenStatus

    vault = key_vault.open()
    old, new = token(1, "OLD"), token(2, "NEW")
    vault.put(
        record(
            "ci.1",
            old,
            policy="ci",
            status=TokenStatus.RETIRING,
            retire_at=datetime(2030, 1, 2, tzinfo=UTC),
        )
    )
    vault.put(record("ci.2", new, policy="ci", status=TokenStatus.ACTIVE))
    env = {"TOKENGUARD_VAULT": str(key_vault.path), "TOKENGUARD_KEY_FILE": str(key_vault.key_file)}
    text = cli(["vault", "show", "ci"], env=env)
    assert text.exit_code == 0, text.output
    head, _, tail = text.stdout.partition("RETIRING")
    assert "ci.2" in head and "ci.1" not in head
    assert "ci.1" in tail and "2030-01-02" in tail
    assert old not in text.output and new not in text.output
    data = json.loads(cli(["vault", "show", "ci", "--json"], env=env).stdout)
    assert data["name"] == "ci.2"
    assert [r["name"] for r in data["retiring"]] == ["ci.1"]
    # Addressed by record name: just that record.
    single = json.loads(cli(["vault", "show", "ci.2", "--json"], env=env).stdout)
    assert "retiring" not in single
