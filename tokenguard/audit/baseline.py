"""Baselines: accepted findings, each with a reason and an expiry date.

As with gitleaks and detect-secrets, a CI gate compares each run with the baseline and fails
only on findings that are new (or whose acceptance has expired). The file is JSON::

    {"version": 1, "entries": [{"id": "TG-...", "kind": "...", "token": "...",
      "resource": null, "title": "...", "reason": "...", "expires": "2027-03-01"}]}

Only ``id``, ``reason`` and ``expires`` matter for matching; the rest helps the reviewer.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from tokenguard.audit.findings import Finding
from tokenguard.errors import UsageError

BASELINE_VERSION = 1


@dataclass(frozen=True, slots=True)
class BaselineEntry:
    """One accepted finding."""

    id: str
    reason: str
    expires: date
    kind: str = ""
    token: str | None = None
    resource: str | None = None
    title: str = ""

    def active(self, today: date) -> bool:
        """True while the acceptance has not expired (the expiry day itself still counts)."""
        return today <= self.expires

    def to_json(self) -> dict[str, Any]:
        """The file form of the entry."""
        return {
            "id": self.id,
            "kind": self.kind,
            "token": self.token,
            "resource": self.resource,
            "title": self.title,
            "reason": self.reason,
            "expires": self.expires.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Baseline:
    """A set of accepted findings."""

    entries: tuple[BaselineEntry, ...] = ()

    def split(
        self, findings: Iterable[Finding], *, today: date
    ) -> tuple[tuple[Finding, ...], tuple[Finding, ...], tuple[BaselineEntry, ...]]:
        """``(new, suppressed, expired_entries_that_matched)``."""
        by_id = {e.id: e for e in self.entries}
        new: list[Finding] = []
        suppressed: list[Finding] = []
        expired: list[BaselineEntry] = []
        for f in findings:
            entry = by_id.get(f.id)
            if entry is None:
                new.append(f)
            elif entry.active(today):
                suppressed.append(f)
            else:
                new.append(f)
                expired.append(entry)
        return tuple(new), tuple(suppressed), tuple(expired)

    def to_json(self) -> dict[str, Any]:
        """The file form."""
        return {"version": BASELINE_VERSION, "entries": [e.to_json() for e in self.entries]}


def baseline_from_findings(findings: Iterable[Finding], *, reason: str, expires: date) -> Baseline:
    """A baseline accepting every finding in ``findings`` with one reason and expiry."""
    return Baseline(
        tuple(
            BaselineEntry(
                id=f.id,
                reason=reason,
                expires=expires,
                kind=f.kind.value,
                token=f.token,
                resource=f.resource,
                title=f.title,
            )
            for f in findings
        )
    )


def _bad(path: Path, what: str) -> UsageError:
    return UsageError(
        f"Baseline file {path} is invalid: {what}",
        hint="Write a fresh one with `tokenguard audit --write-baseline FILE`.",
    )


def load_baseline(path: Path) -> Baseline:
    """Read a baseline file; raise :class:`UsageError` (exit 2) when it is unreadable or bad."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"Baseline file {path} does not exist",
            hint="Create it with `tokenguard audit --write-baseline FILE`.",
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _bad(path, type(exc).__name__) from None
    if not isinstance(raw, dict) or raw.get("version") != BASELINE_VERSION:
        raise _bad(path, f"expected an object with version {BASELINE_VERSION}")
    entries_raw = raw.get("entries")
    if not isinstance(entries_raw, list):
        raise _bad(path, "'entries' must be a list")
    entries: list[BaselineEntry] = []
    for i, item in enumerate(entries_raw):
        if not isinstance(item, dict):
            raise _bad(path, f"entry {i} is not an object")
        fid, reason, expires = item.get("id"), item.get("reason"), item.get("expires")
        if not isinstance(fid, str) or not fid.startswith("TG-"):
            raise _bad(path, f"entry {i}: 'id' must be a finding id (TG-...)")
        if not isinstance(reason, str) or not reason.strip():
            raise _bad(path, f"entry {i}: every accepted finding needs a 'reason'")
        if not isinstance(expires, str):
            raise _bad(path, f"entry {i}: 'expires' must be a date (YYYY-MM-DD)")
        try:
            exp = date.fromisoformat(expires)
        except ValueError:
            raise _bad(path, f"entry {i}: 'expires' must be a date (YYYY-MM-DD)") from None
        entries.append(
            BaselineEntry(
                id=fid,
                reason=reason,
                expires=exp,
                kind=str(item.get("kind") or ""),
                token=item.get("token") if isinstance(item.get("token"), str) else None,
                resource=item.get("resource") if isinstance(item.get("resource"), str) else None,
                title=str(item.get("title") or ""),
            )
        )
    return Baseline(tuple(entries))


def write_baseline(path: Path, baseline: Baseline) -> None:
    """Write ``baseline`` atomically (temp file + rename)."""
    text = json.dumps(baseline.to_json(), indent=2, sort_keys=False) + "\n"
    directory = path.parent if str(path.parent) else Path()
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".baseline-", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise UsageError(
            f"Could not write baseline {path}: {exc.strerror}",
            hint="Check the directory exists and is writable.",
        ) from None


def today_utc(now: datetime) -> date:
    """The UTC date of ``now`` (baselines expire by calendar day)."""
    return now.date()
