"""Helpers shared by the formats: permission letters, labels, summary."""

from __future__ import annotations

from tokenguard.audit.findings import Severity
from tokenguard.audit.report import AuditReport, Grant, ResourceEntry, Route, TokenEntry
from tokenguard.permissions import Permission

_LETTER = {Permission.READ: "r", Permission.WRITE: "w", Permission.RUN: "x"}

LEGEND = "r read, w write, x run, a read by anyone with the ID (no token needed), - none"


def letters(grants: tuple[Grant, ...]) -> str:
    """Compact permission letters: ``rwx``; ``a`` when read is only anonymous; ``-``: none."""
    held = {g.permission: g for g in grants}
    out = ""
    for perm in (Permission.READ, Permission.WRITE, Permission.RUN):
        g = held.get(perm)
        if g is None:
            continue
        out += "a" if g.route is Route.ANONYMOUS else _LETTER[perm]
    return out or "-"


def token_label(token: TokenEntry) -> str:
    """A token's short label (its name; never a secret)."""
    return token.name


def resource_label(resource: ResourceEntry) -> str:
    """``kind name-or-id``."""
    return f"{resource.kind.value} {resource.label}"


def summary(report: AuditReport) -> str:
    """One line for stderr: counts and mode."""
    counts = report.counts()
    parts = [f"{counts[s]} {s.value}" for s in Severity if counts[s]]
    found = ", ".join(parts) if parts else "no findings"
    extra = f"; {len(report.suppressed)} accepted by the baseline" if report.suppressed else ""
    live = ""
    if report.live is not None:
        lv = report.live
        live = (
            f"; live: {lv.probes} probes, {lv.requests} requests in {lv.seconds:.1f}s "
            f"({lv.requests_per_second:.1f}/s), {lv.mismatches} mismatches"
        )
    return (
        f"tokenguard audit ({report.mode.value}): {len(report.tokens)} tokens, "
        f"{len(report.resources)} resources: {found}{extra}{live}"
    )
