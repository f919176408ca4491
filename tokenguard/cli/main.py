"""The root ``tokenguard`` group and the error-to-exit-code boundary."""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
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


#: Command families, imported on first use so `tokenguard policy check` does not pay for
#: the audit's or the sandbox's imports. Each module registers its commands on ``main``.
LAZY_COMMANDS: dict[str, str] = {
    "audit": "tokenguard.cli.audit",
    "demo": "tokenguard.cli.demo",
    "policy": "tokenguard.cli.policy",
    "rotate": "tokenguard.cli.rotate",
    "sandbox": "tokenguard.cli.sandbox",
    "vault": "tokenguard.cli.vault",
}

#: Exit code for an unexpected internal error (a bug): sysexits' EX_SOFTWARE.
INTERNAL_ERROR_EXIT = 70


def _print_traceback() -> None:
    # --verbose: the traceback first, then the same one-line diagnosis and exit code as
    # without it, so scripts see identical exit codes either way. Redacted: a frame's
    # repr could hold a token.
    click.echo(redact(traceback.format_exc()), err=True, nl=False)


class TokenGuardGroup(click.Group):
    """A click group that turns tokenguard errors into exit codes and one-line messages."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            importlib.import_module(LAZY_COMMANDS[cmd_name])
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        verbose = bool(ctx.params.get("verbose"))
        try:
            return super().invoke(ctx)
        except TokenGuardError as exc:
            if verbose:
                _print_traceback()
            click.echo(f"error: {redact(exc.diagnosis)}", err=True)
            ctx.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except OSError as exc:
            if verbose:
                _print_traceback()
            # File-system trouble outside the vault (an -o FILE, a policy path): bad input.
            where = f" ({exc.filename})" if exc.filename else ""
            click.echo(
                f"error: {redact(exc.strerror or type(exc).__name__)}{where}. "
                "Check the path and its permissions.",
                err=True,
            )
            ctx.exit(int(ExitCode.USAGE))
        except Exception as exc:
            if verbose:
                _print_traceback()
            click.echo(
                f"error: internal error ({type(exc).__name__}). This is a bug: rerun with "
                "--verbose for the traceback and report it (see SECURITY.md to report "
                "privately; check the output for secrets before sharing).",
                err=True,
            )
            ctx.exit(INTERNAL_ERROR_EXIT)


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


__all__ = ["ExitCode", "main"]
