"""``--format csv``: one row per token, resource, permission and reason."""

from __future__ import annotations

import csv
import io

from tokenguard.audit.report import AuditReport

HEADER = (
    "token",
    "token_name",
    "resource",
    "resource_kind",
    "resource_name",
    "permission",
    "route",
    "reason",
)


def render(report: AuditReport) -> str:
    """CSV with :data:`HEADER` (RFC 4180 quoting, ``\\r\\n`` line ends)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(HEADER)
    tokens = {t.key: t for t in report.tokens}
    resources = {r.key: r for r in report.resources}
    for access in report.iter_access():
        token = tokens[access.token]
        res = resources[access.resource]
        for g in access.grants:
            writer.writerow(
                (
                    token.key,
                    token.name,
                    res.key,
                    res.kind.value,
                    res.name or "",
                    g.permission.value,
                    g.route.value,
                    g.reason,
                )
            )
    return buf.getvalue()
