"""Rollback detection: remember the highest generation seen per vault id on this machine.

A restored older file (from a backup, a copy, an attacker) has a lower generation than one
already seen here. That is worth a warning, not a refusal: restoring a backup is sometimes
exactly what the admin meant to do. The state file is best effort; if it cannot be read or
written, detection is skipped silently (logged at debug level).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from tokenguard.vault.paths import state_dir

log = logging.getLogger(__name__)
STATE_FILE = "seen-generations.json"
_MAX_STATE = 1024 * 1024


def _state_path() -> Path:
    return state_dir() / STATE_FILE


def _load(path: Path) -> dict[str, int]:
    try:
        with path.open("rb") as fh:
            raw = json.loads(fh.read(_MAX_STATE))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.debug("ignoring unreadable rollback state %s: %s", path, exc)
        return {}
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if isinstance(k, str) and type(v) is int}


def last_seen(vault_id: str) -> int | None:
    """The highest generation recorded for ``vault_id`` on this machine."""
    return _load(_state_path()).get(vault_id)


def record_seen(vault_id: str, generation: int) -> None:
    """Remember ``generation`` for ``vault_id`` if it is the highest so far."""
    path = _state_path()
    try:
        state = _load(path)
        if state.get(vault_id, 0) >= generation:
            return
        state[vault_id] = generation
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".seen-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(state, fh, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.debug("cannot record vault generation in %s: %s", path, exc)
