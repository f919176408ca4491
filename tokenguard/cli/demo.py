"""``tokenguard demo`` — the whole product against an in-process sandbox, step by step."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import click

from tokenguard.cli.main import main
from tokenguard.demo import DEFAULT_REPORT, DemoOptions, DemoStep, StepKind, run_demo

_WIDTH = 88
_STEPS = len(StepKind)


def _render(step: DemoStep, number: int) -> str:
    lines = [f"{number}/{_STEPS} {step.title}"]
    lines.append(textwrap.fill(step.paragraph, width=_WIDTH, break_on_hyphens=False))
    label = "For real:" if step.kind is not StepKind.CLEANUP else "Next:"
    for command in step.commands:
        lines.append(f"  {label} {command}")
        label = " " * len(label)
    if step.detail:
        lines.append("")
        lines.append(textwrap.indent(step.detail, "    "))
    return "\n".join(lines) + "\n"


@main.command("demo")
@click.option(
    "--keep",
    is_flag=True,
    help="Keep the temporary directory (vault and key file) and print where it is.",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=str(DEFAULT_REPORT),
    show_default=True,
    help="Where to write the HTML audit report.",
)
@click.option(
    "--policies",
    "policy_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Example policy directory (default: policies/ of the source tree).",
)
@click.option("--static", is_flag=True, help="Audit without live probes.")
@click.pass_context
def demo_cmd(
    ctx: click.Context, *, keep: bool, report: Path, policy_dir: Path | None, static: bool
) -> None:
    """Show the whole product working against a local sandbox, in seconds.

    Starts the sandbox in this process, creates a throwaway vault, applies the example
    policies, fails over while a token is revoked, rotates a leaked token, audits, and
    stops everything again. Each step says which command does it for real. Secrets are
    never shown, only fingerprints.
    """
    counter = iter(range(1, _STEPS + 1))

    def show(step: DemoStep) -> None:
        click.echo(_render(step, next(counter)))

    failover_log = logging.getLogger("tokenguard.failover")
    level = failover_log.level
    if not ctx.find_root().params.get("verbose"):
        # The failover paragraph tells the story; the per-event warnings would repeat it.
        failover_log.setLevel(logging.ERROR)
    try:
        result = run_demo(
            DemoOptions(policies=policy_dir, report=report, keep=keep, live_audit=not static),
            on_step=show,
        )
    finally:
        failover_log.setLevel(level)  # the demo may run inside a larger process (tests)
    click.echo(
        f"tokenguard demo: {len(result.steps)} steps in {result.seconds:.1f} s, "
        f"{result.requests - result.failed_requests}/{result.requests} requests answered, "
        f"report {result.report_path}",
        err=True,
    )
