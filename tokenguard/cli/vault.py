"""``tokenguard vault`` — create the vault, add, list, show and remove tokens, rekey, verify.

Secrets never come from argv: ``add`` reads the token from stdin (or a hidden prompt on a
terminal) and passphrases come from the environment or a prompt. Nothing prints a secret
except ``show --reveal``. Summaries go to stderr, data (tables, JSON) to stdout.
"""

from __future__ import annotations

import getpass
import hmac
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from tabulate import tabulate

from tokenguard.cli.common import vault_option
from tokenguard.cli.main import main
from tokenguard.errors import (
    ExitCode,
    RecordNotFoundError,
    UsageError,
    VaultFormatError,
    VaultUnlockError,
)
from tokenguard.secrets import Secret, looks_like_token, redact
from tokenguard.vault import Check, FileStorage, TokenRecord, TokenStatus, Vault, check_backups
from tokenguard.vault.unlock import (
    ENV_KEY_FILE,
    ENV_PASSPHRASE,
    ENV_PASSPHRASE_FILE,
    read_passphrase_file,
)

ENV_NEW_PASSPHRASE = "TOKENGUARD_NEW_PASSPHRASE"
ENV_NEW_PASSPHRASE_FILE = "TOKENGUARD_NEW_PASSPHRASE_FILE"
MAX_SECRET_LEN = 4096
_RELATIVE = re.compile(r"\+?(\d{1,6})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (ValueError, OSError, AttributeError):
        return False


def _echo_err(text: str) -> None:
    click.echo(text, err=True)


def _open(vault_path: str | None) -> Vault:
    return Vault.open(vault_path)


def _prompt_new_passphrase() -> Secret:
    first = getpass.getpass("New vault passphrase: ", stream=sys.stderr)
    if not first:
        raise UsageError("the passphrase is empty", hint="Type a passphrase at the prompt")
    second = getpass.getpass("Repeat the passphrase: ", stream=sys.stderr)
    if not hmac.compare_digest(first.encode(), second.encode()):
        raise UsageError("the passphrases do not match", hint="Run the command again")
    return Secret(first)


def _new_passphrase(file_var: str, value_var: str) -> Secret:
    """A new passphrase: from ``file_var``/``value_var`` in the environment, or a prompt."""
    if os.environ.get(file_var):
        return read_passphrase_file(Path(os.environ[file_var]))
    if os.environ.get(value_var):
        return Secret(os.environ[value_var])
    if _stdin_is_tty():
        return _prompt_new_passphrase()
    raise VaultUnlockError(
        "no passphrase given and no terminal to ask for one",
        hint=f"Set {file_var} to a file holding it, or {value_var}",
    )


def _parse_expires(value: str | None) -> datetime | None:
    if value is None:
        return None
    relative = _RELATIVE.fullmatch(value.strip())
    if relative:
        amount, unit = int(relative.group(1)), _UNITS[relative.group(2)]
        return datetime.now(UTC).replace(microsecond=0) + timedelta(**{unit: amount})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(
            f"cannot read --expires {value!r}",
            hint="Use an ISO 8601 date or time (2027-01-31, 2027-01-31T12:00Z) or 30d / 12h",
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _read_token() -> Secret:
    if _stdin_is_tty():
        value = getpass.getpass("Token (input hidden): ", stream=sys.stderr)
    else:
        value = sys.stdin.read(MAX_SECRET_LEN + 1)
    value = value.strip()
    if not value:
        raise UsageError(
            "no token given",
            hint="Pipe it on stdin (`tokenguard vault add NAME < file`) or type it at the prompt",
        )
    if len(value) > MAX_SECRET_LEN or any(c.isspace() for c in value):
        raise UsageError(
            "the token must be one line without spaces, at most 4096 characters",
            hint="Pipe only the token itself (`tokenguard vault add NAME < token.txt`)",
        )
    return Secret(value)


def _date(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def record_json(record: TokenRecord, *, reveal: bool = False) -> dict[str, Any]:
    """A record as JSON data: fingerprint always, the secret only with ``reveal``."""
    if record.scope is None:
        scope: Any = None
    elif record.scope.unscoped:
        scope = {"unscoped": True}
    else:
        scope = record.scope.to_api()
    out: dict[str, Any] = {
        "name": record.name,
        "fingerprint": record.fingerprint,
        "status": record.status.value,
        "policy": record.policy,
        "scope": scope,
        "created_at": _date(record.created_at),
        "expires_at": _date(record.expires_at),
        "rotated_at": _date(record.rotated_at),
        "retire_at": _date(record.retire_at),
        "issuer_id": record.issuer_id,
        "policy_digest": record.policy_digest,
        "compromised": record.compromised,
        "notes": record.notes,
    }
    if reveal:
        out["secret"] = record.secret.reveal()
    return out


def _scope_summary(record: TokenRecord) -> str:
    if record.scope is None:
        return "unknown"
    if record.scope.unscoped:
        return "unscoped (full access)"
    groups = sum(1 for perms in record.scope.account.values() if perms)
    return f"scoped: {groups} account group(s), {len(record.scope.resources)} resource grant(s)"


@main.group("vault")
def vault_group() -> None:
    """The encrypted local vault of governed tokens.

    Unlock with TOKENGUARD_KEY_FILE, TOKENGUARD_PASSPHRASE_FILE or TOKENGUARD_PASSPHRASE,
    or at the prompt on a terminal. Exit code 3 when the vault cannot be opened or written.
    """


@vault_group.command("init")
@vault_option
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Unlock with this 32-byte key file (created, 0600, if it does not exist).",
)
@click.option(
    "--passphrase",
    "with_passphrase",
    is_flag=True,
    help="Also add a passphrase slot (from TOKENGUARD_PASSPHRASE(_FILE) or a prompt).",
)
@click.option(
    "--keyring", is_flag=True, help="Also add an OS keyring slot (needs the keyring extra)."
)
def init_cmd(
    *, vault_path: str | None, key_file: Path | None, with_passphrase: bool, keyring: bool
) -> None:
    """Create a new, empty vault (file 0600 in a 0700 directory).

    Without --key-file or --keyring, a passphrase is required.
    """
    if key_file is None and os.environ.get(ENV_KEY_FILE):
        key_file = Path(os.environ[ENV_KEY_FILE])
    passphrase = None
    env_passphrase = bool(os.environ.get(ENV_PASSPHRASE_FILE) or os.environ.get(ENV_PASSPHRASE))
    if with_passphrase or env_passphrase or (key_file is None and not keyring):
        passphrase = _new_passphrase(ENV_PASSPHRASE_FILE, ENV_PASSPHRASE)
    created = key_file is not None and not key_file.exists()
    vault = Vault.init(vault_path, passphrase=passphrase, key_file=key_file, keyring=keyring)
    slots = ", ".join(s.kind.value for s in vault.slots())
    _echo_err(f"created vault {vault.path} (key slots: {slots})")
    if created:
        _echo_err(f"created key file {key_file} (0600) — back it up; without it the vault is lost")


@vault_group.command("add")
@vault_option
@click.argument("name")
@click.option("--policy", default=None, help="The policy this token belongs to.")
@click.option("--notes", default="", help="Free-text notes (not secret).")
@click.option("--expires", default=None, help="Expiry: ISO 8601 date/time, or 30d / 12h / 2w.")
@click.option(
    "--status",
    type=click.Choice([s.value for s in TokenStatus]),
    default=TokenStatus.ACTIVE.value,
    show_default=True,
    help="Lifecycle status.",
)
@click.option("--issuer-id", default=None, help="The token's ID on the platform, if known.")
@click.option("--replace", is_flag=True, help="Replace an existing token of the same name.")
@click.argument("extra", nargs=-1, required=False, metavar="")
def add_cmd(
    *,
    vault_path: str | None,
    name: str,
    extra: tuple[str, ...],
    policy: str | None,
    notes: str,
    expires: str | None,
    status: str,
    issuer_id: str | None,
    replace: bool,
) -> None:
    """Add a token; the secret is read from stdin or a hidden prompt, never from argv."""
    # A token pasted as NAME or into an option would be stored and printed in the clear
    # (names, notes and policies are not secret); refuse it, and never echo the arguments.
    token_shaped = any(redact(v) != v for v in (name, notes, policy or "", issuer_id or ""))
    if extra or token_shaped:
        raise UsageError(
            "`vault add` takes only a NAME; tokens are never taken from the command line"
            + (" (an argument looks like an API token)" if token_shaped else ""),
            hint="Pipe the token on stdin or type it at the prompt (and clear your shell history)",
        )
    expires_at = _parse_expires(expires)
    vault = _open(vault_path)
    secret = _read_token()
    record = TokenRecord(
        name=name,
        secret=secret,
        status=TokenStatus(status),
        policy=policy,
        created_at=datetime.now(UTC).replace(microsecond=0),
        expires_at=expires_at,
        issuer_id=issuer_id,
        notes=notes,
    )
    if replace:
        vault.put(record)
    else:
        vault.add(record)
    if not looks_like_token(secret.reveal()):
        _echo_err("warning: the value does not look like an Apify API token (apify_api_…)")
    _echo_err(f"added {name} ({record.fingerprint}) to {vault.path}")


@vault_group.command("list")
@vault_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_cmd(*, vault_path: str | None, as_json: bool) -> None:
    """List tokens: name, status, fingerprint, policy, expiry (never secrets)."""
    vault = _open(vault_path)
    records = vault.list()
    if as_json:
        click.echo(json.dumps([record_json(r) for r in records], indent=2))
        return
    if not records:
        _echo_err(f"vault {vault.path} holds no tokens")
        return
    rows = [
        [r.name, r.status.value, r.fingerprint, r.policy or "-", _date(r.expires_at) or "-"]
        for r in records
    ]
    click.echo(tabulate(rows, headers=["NAME", "STATUS", "FINGERPRINT", "POLICY", "EXPIRES"]))


def _lookup(vault: Vault, name: str) -> TokenRecord:
    record = vault.find(name)
    if record is not None:
        return record
    active = vault.active_for(name)
    if active is not None:
        return active
    raise RecordNotFoundError(
        f"no token or policy with an active token named {name!r}",
        hint="`tokenguard vault list` shows the names",
    )


@vault_group.command("show")
@vault_option
@click.argument("name")
@click.option("--reveal", is_flag=True, help="Also print the secret itself.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show_cmd(*, vault_path: str | None, name: str, reveal: bool, as_json: bool) -> None:
    """Show one token, or a policy's active token and any retiring one beside it.

    The secret only with --reveal.
    """
    vault = _open(vault_path)
    record = _lookup(vault, name)
    # Addressed by policy name: during a rotation the old token is still live; show it too.
    retiring = (
        [
            r
            for r in vault.list()
            if r.policy == name and r.status is TokenStatus.RETIRING and r.name != record.name
        ]
        if vault.find(name) is None
        else []
    )
    if as_json:
        data = record_json(record, reveal=reveal)
        if retiring:
            data["retiring"] = [record_json(r, reveal=reveal) for r in retiring]
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(tabulate(_show_rows(record, reveal=reveal), tablefmt="plain"))
    for old in retiring:
        until = _date(old.retire_at) or "the end of its grace"
        click.echo(f"\nRETIRING (replaced; still valid until {until}):")
        click.echo(tabulate(_show_rows(old, reveal=reveal), tablefmt="plain"))


def _show_rows(record: TokenRecord, *, reveal: bool) -> list[list[str]]:
    rows = [
        ["name", record.name],
        ["fingerprint", record.fingerprint],
        ["status", record.status.value + (" (compromised)" if record.compromised else "")],
        ["policy", record.policy or "-"],
        ["scope", _scope_summary(record)],
        ["created", _date(record.created_at) or "-"],
        ["expires", _date(record.expires_at) or "-"],
        ["rotated", _date(record.rotated_at) or "-"],
        ["retire at", _date(record.retire_at) or "-"],
        ["issuer id", record.issuer_id or "-"],
        ["notes", record.notes or "-"],
    ]
    if reveal:
        rows.append(["secret", record.secret.reveal()])
    return rows


@vault_group.command("remove")
@vault_option
@click.argument("name")
def remove_cmd(*, vault_path: str | None, name: str) -> None:
    """Remove a token from the vault (it stays valid on the platform)."""
    vault = _open(vault_path)
    record = vault.get(name)
    vault.remove(name)
    _echo_err(f"removed {name} ({record.fingerprint}); revoke it on the platform if unused")


@vault_group.command("rekey")
@vault_option
@click.option(
    "--key-file",
    "new_key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="New key file (created, 0600, if it does not exist).",
)
@click.option(
    "--passphrase",
    "new_passphrase",
    is_flag=True,
    help=f"New passphrase (from {ENV_NEW_PASSPHRASE}(_FILE) or a prompt).",
)
@click.option("--keyring", is_flag=True, help="New OS keyring slot (needs the keyring extra).")
@click.option("--keep-existing", is_flag=True, help="Add the new slots; keep the old ones.")
@click.option("--remove-slot", "remove_slots", multiple=True, help="Drop a key slot by id.")
@click.option(
    "--new-data-key",
    is_flag=True,
    help="Also re-encrypt under a fresh data key (not with --keep-existing).",
)
def rekey_cmd(
    *,
    vault_path: str | None,
    new_key_file: Path | None,
    new_passphrase: bool,
    keyring: bool,
    keep_existing: bool,
    remove_slots: tuple[str, ...],
    new_data_key: bool,
) -> None:
    """Change how the vault is unlocked; the tokens are untouched.

    Unlock with the current key file or passphrase (environment or prompt); the new ones
    come from --key-file and --passphrase. Without --keep-existing they replace all slots.
    """
    adds = new_key_file is not None or new_passphrase or keyring
    if not adds and not remove_slots:
        raise UsageError(
            "nothing to do",
            hint="Give --key-file PATH, --passphrase and/or --keyring, or --remove-slot ID",
        )
    if remove_slots and not adds:
        keep_existing = True
    vault = _open(vault_path)
    passphrase = (
        _new_passphrase(ENV_NEW_PASSPHRASE_FILE, ENV_NEW_PASSPHRASE) if new_passphrase else None
    )
    slots = vault.rekey(
        passphrase=passphrase,
        key_file=new_key_file,
        keyring=keyring,
        keep_existing=keep_existing,
        remove_slots=remove_slots,
        new_data_key=new_data_key,
    )
    _echo_err(f"re-keyed {vault.path}; key slots now:")
    for slot in slots:
        _echo_err(f"  {slot.id}  {slot.kind.value:<10}  {slot.detail}")
    storage = vault.storage
    if not isinstance(storage, FileStorage):
        return
    backups = storage.backups()
    if backups and (remove_slots or not keep_existing):
        # A removed slot is not revoked: older generations still carry it, and without
        # --new-data-key they wrap the very data key the vault uses now.
        _echo_err(
            f"note: the {len(backups)} backup(s) from before this rekey still open with the "
            "old key slots. If a key or passphrase leaked: rekey with --new-data-key, rotate "
            f"the tokens, then delete the backups (rm {storage.path}.bak-*)."
        )


def _check_json(check: Check) -> dict[str, Any]:
    return {"subject": check.subject, "ok": check.ok, "detail": check.detail}


def _check_row(check: Check) -> list[str]:
    return ["ok" if check.ok else "PROBLEM", check.subject, check.detail]


@vault_group.command("verify")
@vault_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def verify_cmd(ctx: click.Context, *, vault_path: str | None, as_json: bool) -> None:
    """Check the vault, its backups and permissions; exit 1 if anything is wrong.

    When the vault itself cannot be read, its backups are checked one by one (exit 3).
    """
    try:
        vault = _open(vault_path)
    except VaultFormatError:
        checks = check_backups(vault_path)
        if as_json:
            backups = [_check_json(c) for c in checks]
            click.echo(json.dumps({"ok": False, "backups": backups}, indent=2))
        elif checks:
            click.echo(tabulate([_check_row(c) for c in checks], tablefmt="plain"))
        raise
    report = vault.verify()
    slots = vault.slots()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "path": str(report.path),
                    "ok": report.ok,
                    "generation": report.generation,
                    "records": report.records,
                    "slots": [
                        {"id": s.id, "kind": s.kind.value, "detail": s.detail} for s in slots
                    ],
                    "checks": [_check_json(c) for c in report.checks],
                },
                indent=2,
            )
        )
    else:
        rows = [_check_row(c) for c in report.checks]
        rows += [["ok", f"key slot {s.id}", f"{s.kind.value}: {s.detail}"] for s in slots]
        click.echo(tabulate(rows, tablefmt="plain"))
        _echo_err(f"{report.path}: " + ("all checks passed" if report.ok else "problems found"))
    if not report.ok:
        ctx.exit(int(ExitCode.FINDINGS))
