"""``tokenguard rotate`` — parse, call :func:`tokenguard.rotation.rotate`, render.

Made for schedulers: a table on stdout (``--json``: one JSON object per token per line),
a one-line summary on stderr, and stable exit codes — 0 all done, nothing due, or another
rotation already running; 1 some tokens failed; 2 bad flags or policy files; 3 vault
unusable; 4 API unusable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import click
from tabulate import tabulate

from tokenguard.api.client import ApifyApi
from tokenguard.api.issuer import HttpTokenIssuer
from tokenguard.cli.common import api_url_option, management_token, vault_option
from tokenguard.cli.main import main
from tokenguard.errors import PartialFailureError
from tokenguard.policy import load_policies, parse_duration
from tokenguard.rotation import DEFAULT_WAIT, Outcome, RotationReport, rotate
from tokenguard.rotation.steps import RotationVault

DEFAULT_POLICY_PATHS = ("policies",)
#: The progress bar appears on a terminal only when more tokens than this have work.
PROGRESS_THRESHOLD = 3


def _stderr_is_tty() -> bool:
    # A function (not inline) so tests can stand in for a terminal.
    return sys.stderr.isatty()


class _ProgressBar:
    """A click progress bar on stderr, only on a terminal and only for more than a few."""

    def __init__(self) -> None:
        self._bar: Any = None

    def start(self, total: int) -> None:
        if total > PROGRESS_THRESHOLD and _stderr_is_tty():
            self._bar = click.progressbar(length=total, label="rotating", file=sys.stderr)
            self._bar.__enter__()

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _open_vault(vault_path: str | None) -> RotationVault:
    from tokenguard.vault import Vault

    vault: RotationVault = Vault.open(vault_path)
    return vault


def _render_table(report: RotationReport) -> str:
    rows = [
        [
            r.name,
            r.policy or "",
            ",".join(r.reasons),
            r.step,
            r.outcome,
            r.old_fingerprint or "",
            (f"{r.new_name} {r.new_fingerprint}" if r.new_name else r.new_fingerprint) or "",
            r.error or "",
        ]
        for r in report.results
    ]
    headers = ["token", "policy", "due", "step", "outcome", "old", "new", "error"]
    return tabulate(rows, headers=headers, tablefmt="simple")


def _summary(report: RotationReport) -> str:
    counts: dict[str, int] = {}
    for r in report.results:
        counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
    if not counts:
        return "nothing to rotate"
    prefix = "dry run: " if report.dry_run else ""
    return prefix + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))


@main.command("rotate")
@click.option("--dry-run", is_flag=True, help="Show what is due; change nothing, send only GETs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per token per line.")
@click.option("--policy", "only_policy", metavar="NAME", help="Only this policy's tokens.")
@click.option(
    "--now",
    "now_names",
    metavar="NAME",
    multiple=True,
    help="Mark a token (record or policy name) compromised and rotate it at once, revoking "
    "the old token without grace. Repeatable.",
)
@click.option(
    "--expiring-within",
    metavar="DURATION",
    callback=_duration,
    help="Rotate tokens expiring within this window (e.g. 48h). "
    "Default: the policy's grace + 1h, at most half its lifetime.",
)
@click.option(
    "--policies",
    "policy_paths",
    multiple=True,
    type=click.Path(path_type=str),
    help="Policy files or directories (repeatable; default policies/).",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=DEFAULT_WAIT,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for another running rotation before exiting 0 without doing anything.",
)
@api_url_option
@vault_option
def rotate_command(
    *,
    dry_run: bool,
    as_json: bool,
    only_policy: str | None,
    now_names: Sequence[str],
    expiring_within: timedelta | None,
    policy_paths: Sequence[str],
    wait: float,
    api_url: str,
    vault_path: str | None,
) -> None:
    """Rotate every token that is due: issue, verify, promote, and revoke after the grace.

    Safe to run from cron every few minutes: nothing due means no API call; two runs at
    once never rotate a token twice (the second waits --wait seconds, then exits 0 saying
    another rotation is running); a run that dies half-way is finished by the next one.

    Exit codes: 0 done or nothing due (or another rotation running), 1 some tokens failed,
    2 bad flags or policy files, 3 vault unusable, 4 API unusable.
    """
    policy_set = load_policies(list(policy_paths) or list(DEFAULT_POLICY_PATHS))
    vault = _open_vault(vault_path)
    api = ApifyApi(api_url, management_token())
    bar = _ProgressBar()
    try:
        report = rotate(
            vault,
            HttpTokenIssuer(api),
            policy_set.policies,
            api=api,
            only_policy=only_policy,
            compromised=now_names,
            expiring_within=expiring_within,
            dry_run=dry_run,
            wait=wait,
            progress=bar,
        )
    finally:
        bar.close()
        api.close()
    if report.skipped:
        click.echo(f"tokenguard rotate: {report.skipped}", err=True)
        return
    if as_json:
        for result in report.results:
            click.echo(json.dumps(result.to_json(), sort_keys=True))
    elif report.results:
        click.echo(_render_table(report))
    click.echo(f"tokenguard rotate: {_summary(report)}", err=True)
    if report.fatal is not None:
        raise report.fatal
    failures = report.failures
    if failures:
        failed = sum(1 for r in failures if r.outcome is Outcome.FAILED)
        raise PartialFailureError(
            f"{len(failures)} token(s) not rotated ({failed} failed verification, "
            f"{len(failures) - failed} stopped by errors)",
            hint="The old tokens stay active; see the error column. The next run retries.",
        )
