"""Default locations: the vault under the user data dir, state under the user state dir.

XDG base directories without a platformdirs dependency: ``$XDG_DATA_HOME`` (default
``~/.local/share``) and ``$XDG_STATE_HOME`` (default ``~/.local/state``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV_VAULT = "TOKENGUARD_VAULT"
VAULT_FILENAME = "vault.tgv"


def _xdg(environ: Mapping[str, str], var: str, fallback: str) -> Path:
    value = environ.get(var, "")
    # The XDG spec says relative paths are invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path(environ.get("HOME") or Path.home()) / fallback


def default_vault_path(environ: Mapping[str, str] | None = None) -> Path:
    """The vault used when no path is given: ``$TOKENGUARD_VAULT`` or the data-dir default."""
    env = os.environ if environ is None else environ
    if env.get(ENV_VAULT):
        return Path(env[ENV_VAULT]).expanduser()
    return _xdg(env, "XDG_DATA_HOME", ".local/share") / "tokenguard" / VAULT_FILENAME


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where tokenguard keeps machine-local state (last-seen vault generations)."""
    env = os.environ if environ is None else environ
    return _xdg(env, "XDG_STATE_HOME", ".local/state") / "tokenguard"


def resolve_vault_path(path: str | os.PathLike[str] | None) -> Path:
    """``path`` if given, else :func:`default_vault_path`."""
    if path is None or str(path) == "":
        return default_vault_path()
    return Path(path).expanduser()
