"""Report formats: one module per format, each with ``render(report) -> str``.

``table`` (default, for a person at a terminal), ``json`` (a documented, versioned schema),
``csv`` (one row per token, resource, permission, reason), ``sarif`` (SARIF 2.1.0 for code
scanning dashboards) and ``html`` (one self-contained file).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from tokenguard.audit.report import AuditReport


class Format(StrEnum):
    """The output formats of ``tokenguard audit --format``."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    SARIF = "sarif"
    HTML = "html"


def renderer(fmt: Format) -> Callable[[AuditReport], str]:
    """The render function of ``fmt``."""
    if fmt is Format.TABLE:
        from tokenguard.audit.formats.table import render
    elif fmt is Format.JSON:
        from tokenguard.audit.formats.json import render
    elif fmt is Format.CSV:
        from tokenguard.audit.formats.csv import render
    elif fmt is Format.SARIF:
        from tokenguard.audit.formats.sarif import render
    else:
        from tokenguard.audit.formats.html import render
    return render


def render(report: AuditReport, fmt: Format | str) -> str:
    """Render ``report`` in ``fmt``."""
    return renderer(Format(fmt))(report)


__all__ = ["Format", "render", "renderer"]
