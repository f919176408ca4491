"""``tokenguard audit``: which token can reach which resource, why, and what is wrong.

Data goes to stdout (or ``-o FILE``), the one-line summary to stderr. Exit codes: 0 clean,
1 findings at or above ``--fail-on``, 2 bad input, 3 vault error, 4 API error.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import click

from tokenguard.api.client import ApifyApi
from tokenguard.audit.baseline import (
    Baseline,
    baseline_from_findings,
    load_baseline,
    write_baseline,
)
from tokenguard.audit.engine import DEFAULT_MAX_RPS, apply_baseline, audit
from tokenguard.audit.findings import Severity
from tokenguard.audit.formats import Format, render
from tokenguard.audit.formats.common import summary
from tokenguard.audit.inventory import HeldToken, read_tokens_file, tokens_from_env
from tokenguard.audit.report import TokenSource
from tokenguard.cli.common import api_url_option, management_token, vault_option
from tokenguard.cli.main import main
from tokenguard.errors import ExitCode, UsageError
from tokenguard.policy.durations import DURATION_HELP, parse_duration
from tokenguard.policy.model import PolicySet
from tokenguard.vault.paths import resolve_vault_path
from tokenguard.vault.records import TokenRecord


def _duration(value: str, option: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError:
        raise UsageError(
            f"{option}: {value!r} is not a duration", hint=f"Use {DURATION_HELP}."
        ) from None


def _records(vault_path: str | None) -> tuple[list[TokenRecord], str | None]:
    """The vault's records; no vault at the default path is not an error (a note)."""
    from tokenguard.vault.vault import Vault

    explicit = vault_path is not None or bool(os.environ.get("TOKENGUARD_VAULT"))
    path = resolve_vault_path(vault_path)
    if not explicit and not path.exists():
        return [], f"no vault at {path}: auditing only the tokens given and the platform's"
    with Vault.open(path) as vault:
        return list(vault.list()), None


def _progress(done: int, total: int) -> None:
    """A one-line progress bar on stderr (only drawn on a TTY)."""
    if done == total or done % 25 == 0:
        width = 30
        filled = width * done // max(total, 1)
        bar = "#" * filled + "." * (width - filled)
        click.echo(
            f"\rprobing [{bar}] {done}/{total} ({done / max(total, 1):.0%})",
            err=True,
            nl=done == total,
        )


@main.command("audit")
@click.option(
    "--live/--static",
    default=False,
    help="Also probe with every held token (read-only GETs) and report drift.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice([f.value for f in Format]),
    default=Format.TABLE.value,
    show_default=True,
    help="Output format.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE."
)
@click.option(
    "--fail-on",
    type=click.Choice([s.value for s in Severity]),
    default=Severity.HIGH.value,
    show_default=True,
    help="Exit 1 when a finding (not in the baseline) is at or above this severity.",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Accepted findings (each with a reason and expiry): only new ones count.",
)
@click.option(
    "--write-baseline",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every current finding to FILE as accepted (see --baseline-reason/-expires).",
)
@click.option(
    "--baseline-reason",
    default="accepted at review",
    show_default=True,
    help="Reason recorded for findings written by --write-baseline.",
)
@click.option(
    "--baseline-expires",
    default="90d",
    show_default=True,
    help="How long findings written by --write-baseline stay accepted.",
)
@click.option(
    "--token-env",
    "token_envs",
    multiple=True,
    metavar="VAR",
    help="Also audit the token in environment variable VAR (repeatable).",
)
@click.option(
    "--tokens-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also audit the tokens in FILE (NAME=TOKEN or one token per line; mode 600).",
)
@click.option(
    "--expiring-within",
    default="7d",
    show_default=True,
    help="Report tokens that expire within this duration.",
)
@click.option(
    "--max-rps",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_MAX_RPS,
    show_default=True,
    help="Live probe budget in requests per second (all tokens together).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=256),
    default=8,
    show_default=True,
    help="Live probes in flight at once.",
)
@click.option(
    "--probe-writes",
    is_flag=True,
    help="RISK: with --live, also send write probes (PUT with an invalid body to storages). "
    "The audit aborts if one is ever accepted.",
)
@click.option(
    "--policies",
    "policy_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Policy files or directories (for ungoverned, drift and rotation checks).",
)
@api_url_option
@vault_option
def audit_cmd(
    *,
    live: bool,
    fmt: str,
    output: Path | None,
    fail_on: str,
    baseline: Path | None,
    write_baseline: Path | None,
    baseline_reason: str,
    baseline_expires: str,
    token_envs: tuple[str, ...],
    tokens_file: Path | None,
    expiring_within: str,
    max_rps: float,
    concurrency: int,
    probe_writes: bool,
    policy_paths: tuple[Path, ...],
    api_url: str,
    vault_path: str | None,
) -> None:
    """Audit which token can reach which resource, why, and what is wrong.

    The management token comes from APIFY_TOKEN (never from argv). Exit codes: 0 clean,
    1 findings at or above --fail-on, 2 bad input, 3 vault error, 4 API error.
    """
    if probe_writes and not live:
        raise UsageError("--probe-writes needs --live", hint="Add --live or drop --probe-writes.")
    within = _duration(expiring_within, "--expiring-within")
    accept_for = _duration(baseline_expires, "--baseline-expires")
    accepted: Baseline | None = load_baseline(baseline) if baseline else None
    held: list[HeldToken] = []
    held.extend(tokens_from_env(token_envs))
    if tokens_file is not None:
        held.extend(read_tokens_file(tokens_file))
    policies: PolicySet | None = None
    if policy_paths:
        from tokenguard.policy import load_policies

        policies = load_policies(policy_paths)
    mgmt = management_token()
    held.insert(0, HeldToken("management", TokenSource.MANAGEMENT, mgmt))
    records, vault_note = _records(vault_path)

    progress = _progress if live and sys.stderr.isatty() else None
    with ApifyApi(api_url, mgmt) as api:
        report = audit(
            api,
            records=records,
            held=held,
            policies=policies,
            live=live,
            expiring_within=within,
            baseline=accepted,
            max_rps=max_rps,
            probe_writes=probe_writes,
            concurrency=concurrency,
            progress=progress,
        )
    if vault_note:
        report = replace(report, notes=(vault_note, *report.notes))
    if write_baseline is not None:
        expires = report.generated_at.date() + accept_for
        fresh = baseline_from_findings(report.findings, reason=baseline_reason, expires=expires)
        # Entries still in force are kept; a finding whose entry expired gets a fresh one.
        renewed = {e.id for e in fresh.entries}
        kept = tuple(e for e in (accepted.entries if accepted else ()) if e.id not in renewed)
        written = Baseline((*kept, *fresh.entries))
        write_baseline_file(write_baseline, written)
        report = apply_baseline(report, written)
        click.echo(f"wrote {len(written.entries)} accepted findings to {write_baseline}", err=True)

    text = render(report, fmt)
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                f"Cannot write {output}: {exc.strerror}", hint="Check the path."
            ) from None
    else:
        click.echo(text, nl=False)
    click.echo(summary(report), err=True)
    if report.at_or_above(Severity(fail_on)):
        click.get_current_context().exit(int(ExitCode.FINDINGS))


def write_baseline_file(path: Path, baseline: Baseline) -> None:
    """Write a baseline (kept separate so the command body reads top to bottom)."""
    write_baseline(path, baseline)
