"""``--format sarif``: findings as SARIF 2.1.0 results (for code-scanning dashboards).

Each finding kind is a rule; each finding a result with the stable finding id as its partial
fingerprint (so dashboards track it across runs), the token and resource as logical
locations, and the escalation chain as a code flow, one step per thread-flow location.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from tokenguard.audit.findings import RULES, Finding, FindingKind, Severity
from tokenguard.audit.report import AuditReport

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/tokenguard/tokenguard"

_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub code scanning reads ``security-severity`` (CVSS-like, 0.0-10.0).
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def _tool_version() -> str:
    try:
        return version("tokenguard")
    except PackageNotFoundError:
        return "0+unknown"


def _rules() -> tuple[list[dict[str, Any]], dict[FindingKind, int]]:
    rules: list[dict[str, Any]] = []
    index: dict[FindingKind, int] = {}
    for i, (kind, info) in enumerate(RULES.items()):
        index[kind] = i
        rules.append(
            {
                "id": kind.value,
                "name": "".join(part.title() for part in kind.value.split("-")),
                "shortDescription": {"text": info.title},
                "fullDescription": {"text": info.why},
                "help": {"text": info.fix},
                "defaultConfiguration": {"level": _LEVEL[info.severity]},
                "properties": {
                    "security-severity": _SECURITY_SEVERITY[info.severity],
                    "tags": ["security", "apify-token"],
                },
            }
        )
    return rules, index


def _result(f: Finding, rule_index: int) -> dict[str, Any]:
    logical = []
    if f.token:
        logical.append({"name": f.token, "fullyQualifiedName": f"token/{f.token}", "kind": "token"})
    if f.resource:
        logical.append(
            {"name": f.resource, "fullyQualifiedName": f"resource/{f.resource}", "kind": "resource"}
        )
    if not logical:
        logical.append({"name": "account", "fullyQualifiedName": "account", "kind": "account"})
    result: dict[str, Any] = {
        "ruleId": f.kind.value,
        "ruleIndex": rule_index,
        "level": _LEVEL[f.severity],
        "message": {"text": f"{f.message} Fix: {f.fix}"},
        "locations": [{"logicalLocations": logical}],
        "partialFingerprints": {"tokenguardFindingId/v1": f.id},
        "properties": {
            "findingId": f.id,
            "severity": f.severity.value,
            "security-severity": _SECURITY_SEVERITY[f.severity],
            "fix": f.fix,
            "path": list(f.path),
        },
    }
    if len(f.path) >= 2:
        result["codeFlows"] = [
            {
                "message": {"text": " -> ".join(f.path)},
                "threadFlows": [
                    {
                        "locations": [
                            {
                                "location": {"message": {"text": step}},
                                "executionOrder": i,
                                "nestingLevel": 0,
                            }
                            for i, step in enumerate(f.path)
                        ]
                    }
                ],
            }
        ]
    return result


def to_sarif(report: AuditReport) -> dict[str, Any]:
    """The SARIF log as JSON-ready data."""
    rules, index = _rules()
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "tokenguard",
                        "fullName": "tokenguard audit",
                        "version": _tool_version(),
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "results": [_result(f, index[f.kind]) for f in report.findings],
                "columnKind": "unicodeCodePoints",
                "properties": {
                    "mode": report.mode.value,
                    "apiUrl": report.api_url,
                    "generatedAt": report.generated_at.isoformat(),
                    "suppressedByBaseline": [f.id for f in report.suppressed],
                },
            }
        ],
    }


def render(report: AuditReport) -> str:
    """Pretty-printed SARIF 2.1.0."""
    return json.dumps(to_sarif(report), indent=2) + "\n"
