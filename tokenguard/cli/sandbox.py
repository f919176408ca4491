"""``tokenguard sandbox`` — placeholder until the sandbox server lands."""

from __future__ import annotations

from tokenguard.cli.main import main


@main.group()
def sandbox() -> None:
    """The Apify-compatible local sandbox server."""
