"""``tokenguard sandbox serve`` — run the Apify-compatible local sandbox."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import signal
import sys
from typing import TYPE_CHECKING

import click

from tokenguard.cli.main import main
from tokenguard.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from tokenguard.sandbox.server import SandboxServer


@main.group()
def sandbox() -> None:
    """The Apify-compatible local sandbox server."""


def _check_installed() -> None:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise ConfigError(
            "The sandbox needs aiohttp, which is not installed",
            hint="Install the extra: pip install 'tokenguard[sandbox]'",
        ) from None


@sandbox.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=8642,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to bind (0 picks a free one).",
)
@click.option(
    "--seed",
    default="demo",
    show_default=True,
    metavar="demo|empty|bench:N",
    help="Initial account: the demo account, an empty one, or N of each storage type.",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Account-wide limit in requests/second (default: Apify's 250,000/minute).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON line {url, admin_token} when ready."
)
def serve(host: str, port: int, seed: str, rate_limit: float | None, as_json: bool) -> None:
    """Serve the sandbox until SIGINT or SIGTERM.

    The admin token printed at start is the sandbox's own throwaway token: it only opens
    this local, in-memory account.
    """
    _check_installed()
    from tokenguard.sandbox.seed import build
    from tokenguard.sandbox.server import SandboxServer

    try:
        state = build(seed)
    except ValueError as exc:
        raise UsageError(str(exc), hint="Use --seed demo, empty or bench:N.") from None
    server = SandboxServer(state, host=host, port=port, rate_limit=rate_limit)
    asyncio.run(_serve(server, as_json=as_json))


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


async def _serve(server: SandboxServer, *, as_json: bool) -> None:
    try:
        url = await server.start()
    except OSError as exc:
        raise UsageError(
            f"Cannot bind the sandbox: {exc.strerror or exc}",
            hint="Pick another --port (or --port 0 for a free one).",
        ) from None
    # Handlers go in before the ready line, so a signal right after it still stops cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    state = server.state
    admin = state.admin_token.secret
    if as_json:
        # The one sanctioned place a token is printed: the sandbox's own throwaway admin token.
        click.echo(json.dumps({"url": url, "admin_token": admin}))
    else:
        click.echo(f"tokenguard sandbox serving {url} (user {state.username!r})")
        click.echo(f"Admin token (this sandbox only): {admin}")
        click.echo("Talk to it:")
        click.echo(f"  export APIFY_API_BASE_URL={url}")
        click.echo(f"  export APIFY_TOKEN={admin}")
        click.echo(f'  curl -H "Authorization: Bearer $APIFY_TOKEN" {url}/v2/users/me')
        click.echo(f'  python: ApifyClient(os.environ["APIFY_TOKEN"], api_url="{url}")')
        click.echo("Resources are addressed by ID or username~name; test controls: /v2/_sandbox/*.")
        click.echo("Press Ctrl+C to stop.")
    if not _loopback(server.host):
        click.echo(
            f"warning: the sandbox listens on {server.host}, not only on this machine; "
            "anyone who can reach it and sees the admin token controls it (plain HTTP).",
            err=True,
        )
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await server.stop()
    if not as_json:
        click.echo("sandbox stopped", err=True)
