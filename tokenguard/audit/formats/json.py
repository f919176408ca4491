"""``--format json``: the report as JSON, versioned and described by a JSON Schema.

The schema ships in the package: ``tokenguard/audit/schema/audit-report.v1.json``
(:func:`schema`). ``schemaVersion`` changes only when a field is removed or changes meaning;
new optional fields may appear within a version.
"""

from __future__ import annotations

import json
from datetime import datetime
from importlib import resources
from typing import Any

from tokenguard.audit.findings import Finding, Severity
from tokenguard.audit.report import AuditReport

SCHEMA_ID = "https://tokenguard.invalid/schemas/audit-report.v1.json"


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def finding_json(f: Finding) -> dict[str, Any]:
    """A finding's JSON form."""
    return {
        "id": f.id,
        "kind": f.kind.value,
        "severity": f.severity.value,
        "title": f.title,
        "message": f.message,
        "fix": f.fix,
        "token": f.token,
        "resource": f.resource,
        "path": list(f.path),
    }


def to_json(report: AuditReport) -> dict[str, Any]:
    """The report as JSON-ready data (see the schema)."""
    counts = report.counts()
    return {
        "$schema": SCHEMA_ID,
        "schemaVersion": report.schema_version,
        "generatedAt": _time(report.generated_at),
        "apiUrl": report.api_url,
        "mode": report.mode.value,
        "generalAccess": report.general_access.value if report.general_access else None,
        "summary": {
            "tokens": len(report.tokens),
            "resources": len(report.resources),
            "findings": {s.value: counts[s] for s in Severity},
            "suppressed": len(report.suppressed),
        },
        "tokens": [
            {
                "key": t.key,
                "name": t.name,
                "sources": [s.value for s in t.sources],
                "governed": t.governed,
                "fingerprint": t.fingerprint,
                "tokenId": t.token_id,
                "policy": t.policy,
                "status": t.status,
                "unscoped": t.unscoped,
                "scopeKnown": t.scope is not None,
                "scope": t.scope.to_api() if t.scope is not None else None,
                "createdAt": _time(t.created_at),
                "expiresAt": _time(t.expires_at),
                "onPlatform": t.on_platform,
            }
            for t in report.tokens
        ],
        "resources": [
            {"key": r.key, "kind": r.kind.value, "id": r.id, "name": r.name}
            for r in report.resources
        ],
        "access": [
            {
                "token": a.token,
                "resource": a.resource,
                "permissions": sorted(p.value for p in a.permissions),
                "grants": [
                    {"permission": g.permission.value, "route": g.route.value, "reason": g.reason}
                    for g in a.grants
                ],
            }
            for a in report.iter_access()
        ],
        "escalations": [
            {"token": p.token, "kind": p.kind, "steps": list(p.steps), "via": p.via}
            for p in report.escalations
        ],
        "findings": [finding_json(f) for f in report.findings],
        "suppressed": [finding_json(f) for f in report.suppressed],
        "probes": [
            {
                "token": p.token,
                "resource": p.resource,
                "permission": p.permission.value,
                "method": p.method,
                "status": p.status,
                "predicted": p.predicted,
                "allowed": p.allowed,
            }
            for p in report.probes
        ],
        "live": None
        if report.live is None
        else {
            "probes": report.live.probes,
            "requests": report.live.requests,
            "retries": report.live.retries,
            "seconds": round(report.live.seconds, 3),
            "maxRps": report.live.max_rps,
            "requestsPerSecond": round(report.live.requests_per_second, 2),
            "mismatches": report.live.mismatches,
        },
        "notes": list(report.notes),
    }


def render(report: AuditReport) -> str:
    """Pretty-printed JSON."""
    return json.dumps(to_json(report), indent=2) + "\n"


def schema() -> dict[str, Any]:
    """The JSON Schema of this format (shipped in the package)."""
    text = (
        resources.files("tokenguard.audit")
        .joinpath("schema/audit-report.v1.json")
        .read_text(encoding="utf-8")
    )
    data: dict[str, Any] = json.loads(text)
    return data
