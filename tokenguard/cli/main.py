"""The root ``tokenguard`` group and the error-to-exit-code boundary."""

from __future__ import annotations

import logging
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click

from tokenguard.errors import ExitCode, TokenGuardError
from tokenguard.secrets import redact


def _version() -> str:
    try:
        return version("tokenguard")
    except PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


class TokenGuardGroup(click.Group):
    """A click group that turns tokenguard errors into exit codes and one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TokenGuardError as exc:
            if ctx.find_root().params.get("verbose"):
                raise
            click.echo(f"error: {redact(exc.diagnosis)}", err=True)
            ctx.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=TokenGuardGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", prog_name="tokenguard")
@click.option("-v", "--verbose", is_flag=True, help="Show debug logs and tracebacks on errors.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Govern Apify API tokens: policies, an encrypted vault, failover, rotation and audit."""
    ctx.ensure_object(dict)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _register() -> None:
    # One import per command family; each module adds its commands to ``main``.
    import tokenguard.cli.audit  # noqa: F401
    import tokenguard.cli.demo
    import tokenguard.cli.policy  # noqa: F401
    import tokenguard.cli.rotate  # noqa: F401
    import tokenguard.cli.vault  # noqa: F401
    from tokenguard.cli import sandbox  # noqa: F401


_register()

__all__ = ["ExitCode", "main"]
