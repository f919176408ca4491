"""The audit: which token can reach which resource, why, and what is wrong.

``audit(api, ...)`` returns a typed :class:`AuditReport`; ``analyze(inventory, ...)`` does the
static part without network; the formats in :mod:`tokenguard.audit.formats` render reports.
"""

from __future__ import annotations

from tokenguard.audit.baseline import Baseline, BaselineEntry, load_baseline, write_baseline
from tokenguard.audit.engine import DEFAULT_MAX_RPS, analyze, apply_baseline, audit
from tokenguard.audit.findings import Finding, FindingKind, Severity
from tokenguard.audit.inventory import HeldToken, Inventory, build_inventory
from tokenguard.audit.report import (
    Access,
    AuditMode,
    AuditReport,
    EscalationPath,
    Grant,
    LiveStats,
    ProbeResult,
    ResourceEntry,
    TokenEntry,
    TokenReach,
    TokenSource,
)

__all__ = [
    "DEFAULT_MAX_RPS",
    "Access",
    "AuditMode",
    "AuditReport",
    "Baseline",
    "BaselineEntry",
    "EscalationPath",
    "Finding",
    "FindingKind",
    "Grant",
    "HeldToken",
    "Inventory",
    "LiveStats",
    "ProbeResult",
    "ResourceEntry",
    "Severity",
    "TokenEntry",
    "TokenReach",
    "TokenSource",
    "analyze",
    "apply_baseline",
    "audit",
    "build_inventory",
    "load_baseline",
    "write_baseline",
]
