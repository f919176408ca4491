"""Options and helpers shared by command families (configuration: flags > env > defaults)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tokenguard.api.client import DEFAULT_API_URL
from tokenguard.errors import ConfigError
from tokenguard.secrets import Secret

F = TypeVar("F", bound=Callable[..., Any])


def api_url_option(func: F) -> F:
    """``--api-url`` with ``APIFY_API_BASE_URL`` and the public API as fallbacks."""
    return click.option(
        "--api-url",
        envvar="APIFY_API_BASE_URL",
        default=DEFAULT_API_URL,
        show_default=True,
        help="Apify API base URL (env APIFY_API_BASE_URL).",
    )(func)


def vault_option(func: F) -> F:
    """``--vault PATH`` with ``TOKENGUARD_VAULT`` as fallback (default: user data dir)."""
    return click.option(
        "--vault",
        "vault_path",
        envvar="TOKENGUARD_VAULT",
        default=None,
        type=click.Path(dir_okay=False),
        help="Vault file (env TOKENGUARD_VAULT; default under the user data dir).",
    )(func)


def management_token() -> Secret:
    """The management token from ``APIFY_TOKEN`` (never from argv)."""
    value = os.environ.get("APIFY_TOKEN", "").strip()
    if not value:
        raise ConfigError(
            "No management token: APIFY_TOKEN is not set",
            hint="Export APIFY_TOKEN with an unscoped token (tokens never go on the command line).",
        )
    return Secret(value)
