"""``tokenguard policy check|plan|apply`` — parse, call :mod:`tokenguard.policy`, render."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click
from tabulate import tabulate

from tokenguard.api.client import ApifyApi
from tokenguard.api.issuer import HttpTokenIssuer
from tokenguard.cli.common import api_url_option, management_token, vault_option
from tokenguard.cli.main import main
from tokenguard.errors import UsageError
from tokenguard.policy import (
    AppliedAction,
    Diagnostic,
    Plan,
    PolicySet,
    PolicyValidationError,
    ResourceResolver,
    apply,
    format_duration,
    load_policies,
    plan,
)

if TYPE_CHECKING:
    from tokenguard.vault import Vault

DEFAULT_PATHS = ("policies",)
#: Seconds apply waits for a running `tokenguard rotate` to release the rotation lock.
APPLY_LOCK_WAIT = 30.0


def _stdin_is_tty() -> bool:
    # A function (not inline) so tests can stand in for a terminal.
    return sys.stdin.isatty()


def _open_vault(vault_path: str | None) -> Vault:
    from tokenguard.vault import Vault

    return Vault.open(vault_path)


def _paths_argument(func: Any) -> Any:
    return click.argument("paths", nargs=-1, type=click.Path(path_type=str))(func)


def _echo_notes(notes: Sequence[Diagnostic]) -> None:
    for item in notes:
        click.echo(item.render(), err=True)


@contextmanager
def _problems_as_json(as_json: bool) -> Iterator[None]:
    """With --json, policy problems go to stdout as JSON (exit 2) instead of an error line."""
    try:
        yield
    except PolicyValidationError as exc:
        if not as_json:
            raise
        doc = {"ok": False, "problems": [p.to_json() for p in exc.problems]}
        click.echo(json.dumps(doc, indent=2))
        click.get_current_context().exit(int(exc.exit_code))


def _load(paths: Sequence[str], as_json: bool) -> PolicySet:
    with _problems_as_json(as_json):
        return load_policies(paths or DEFAULT_PATHS)
    raise AssertionError("unreachable")  # pragma: no cover - exit() raised above


@main.group()
def policy() -> None:
    """Policies as code: scoped, expiring tokens created from TOML policy files.

    check validates the files (no network); plan compares them with the vault and the
    platform; apply creates the tokens and stores them in the vault.
    """


@policy.command("check", short_help="Validate policy files and guardrails (no network).")
@_paths_argument
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check_cmd(paths: tuple[str, ...], as_json: bool) -> None:
    """Validate policy files and guardrails; no network. PATHS: files or dirs (default policies/).

    Exit 0 when every policy is valid, 2 with every problem (file:line, policy, key) otherwise.
    """
    policy_set = _load(paths, as_json)
    if as_json:
        doc = {
            "ok": True,
            "files": [str(f) for f in policy_set.files],
            "policies": [
                {
                    "name": p.name,
                    "file": str(p.source),
                    "line": p.line,
                    "digest": p.digest,
                    "expiresAfter": format_duration(p.expires_after) if p.expires_after else None,
                    "scope": p.scope.to_api(),
                }
                for p in policy_set
            ],
            "notes": [n.to_json() for n in policy_set.notes],
        }
        click.echo(json.dumps(doc, indent=2))
        return
    _echo_notes(policy_set.notes)
    rails = policy_set.guardrails
    source = f"guardrails from {rails.source}" if rails.source else "no guardrails"
    click.echo(
        f"ok: {len(policy_set)} policies in {len(policy_set.files)} file(s) are valid ({source})"
    )


def _make_plan(policy_set: PolicySet, vault: Vault, api: ApifyApi, *, prune: bool) -> Plan:
    return plan(
        policy_set,
        vault,
        HttpTokenIssuer(api),
        now=datetime.now(UTC),
        resolver=ResourceResolver(api),
        prune=prune,
    )


def _plan_table(the_plan: Plan) -> str:
    rows = [
        [
            a.kind.value,
            a.policy or "-",
            a.record or a.token_name or "-",
            a.fingerprint or (f"id {a.token_id}" if a.token_id else "-"),
            a.reason,
        ]
        for a in the_plan.actions
    ]
    if not rows:
        return "No policies and no governed tokens."
    return tabulate(rows, headers=["ACTION", "POLICY", "TOKEN", "FINGERPRINT", "REASON"])


def _plan_summary(the_plan: Plan) -> str:
    s = the_plan.summary()
    return (
        f"Plan: {s['create']} to create, {s['replace']} to replace, {s['revoke']} to revoke, "
        f"{s['unchanged']} unchanged, {s['orphan']} orphaned."
    )


def _prune_option(func: Any) -> Any:
    return click.option(
        "--prune",
        is_flag=True,
        help="Revoke tokens of policies that no longer exist (otherwise only reported).",
    )(func)


@policy.command("plan", short_help="Show what apply would change (changes nothing).")
@_paths_argument
@api_url_option
@vault_option
@_prune_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan_cmd(
    paths: tuple[str, ...], api_url: str, vault_path: str | None, prune: bool, as_json: bool
) -> None:
    """Show what apply would change: create, replace, revoke, unchanged, orphan.

    Needs the management token in APIFY_TOKEN (never on the command line) and the vault.
    Resolves username~name references through the API; a missing resource is exit 2.
    """
    policy_set = _load(paths, as_json)
    vault = _open_vault(vault_path)
    with ApifyApi(api_url, management_token()) as api, _problems_as_json(as_json):
        the_plan = _make_plan(policy_set, vault, api, prune=prune)
    if as_json:
        click.echo(json.dumps(the_plan.to_json(), indent=2))
        return
    _echo_notes(the_plan.notes)
    click.echo(_plan_table(the_plan))
    click.echo(_plan_summary(the_plan))


def _applied_table(steps: Sequence[AppliedAction]) -> str:
    rows = [
        [
            s.action.kind.value,
            s.action.policy or "-",
            s.record or s.action.record or s.action.token_name or "-",
            s.fingerprint or s.action.fingerprint or "-",
            s.outcome,
        ]
        for s in steps
    ]
    return tabulate(rows, headers=["ACTION", "POLICY", "TOKEN", "FINGERPRINT", "OUTCOME"])


@policy.command(
    "apply", short_help="Create the tokens the policies call for, store them in the vault."
)
@_paths_argument
@api_url_option
@vault_option
@_prune_option
@click.option("--yes", "-y", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and the result as JSON.")
def apply_cmd(
    *,
    paths: tuple[str, ...],
    api_url: str,
    vault_path: str | None,
    prune: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Create the tokens the policies call for and store them in the vault.

    Prints the plan first and asks for confirmation on a terminal; without a terminal it
    refuses unless --yes is given. Each new token is stored in the vault as soon as it is
    created; replaced tokens become "retiring" and `tokenguard rotate` revokes them after
    the policy's grace. Output shows fingerprints, never secrets.
    """
    policy_set = _load(paths, as_json)
    vault = _open_vault(vault_path)
    # Hold the rotation lock from plan to the last write: a `tokenguard rotate` running at
    # the same time could otherwise replace the same token too (two active tokens).
    with (
        vault.rotation_lock(APPLY_LOCK_WAIT),
        ApifyApi(api_url, management_token()) as api,
    ):
        vault.reload()
        with _problems_as_json(as_json):
            the_plan = _make_plan(policy_set, vault, api, prune=prune)
        if not as_json:
            _echo_notes(the_plan.notes)
            click.echo(_plan_table(the_plan))
            click.echo(_plan_summary(the_plan))
        if not the_plan.has_changes:
            if as_json:
                click.echo(json.dumps({"plan": the_plan.to_json(), "applied": []}, indent=2))
            else:
                click.echo("Nothing to do: the tokens match the policies.")
            return
        if not yes:
            if not _stdin_is_tty():
                raise UsageError(
                    "Refusing to apply without confirmation: stdin is not a terminal",
                    hint="Review `tokenguard policy plan`, then run apply with --yes.",
                )
            click.confirm(f"Apply {len(the_plan.changes)} change(s)?", abort=True, err=True)

        def progress(step: AppliedAction) -> None:
            if not as_json:
                target = step.record or step.action.record or step.action.token_name
                shown = step.fingerprint or step.action.fingerprint or step.token_id or ""
                click.echo(f"{step.outcome}: {step.action.policy} {target} {shown}", err=True)

        result = apply(
            the_plan,
            vault,
            HttpTokenIssuer(api),
            now=the_plan.now,
            on_step=progress,
            holding_rotation_lock=True,
        )
    if as_json:
        click.echo(json.dumps({"plan": the_plan.to_json(), **result.to_json()}, indent=2))
        return
    click.echo("")
    click.echo(_applied_table(result.applied))
    click.echo(f"Applied {len(result.applied)} change(s).")
