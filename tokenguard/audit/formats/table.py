"""``--format table``: the token x resource matrix, then findings and escalation chains."""

from __future__ import annotations

from tabulate import tabulate

from tokenguard.audit.formats.common import LEGEND, letters, resource_label, token_label
from tokenguard.audit.report import AuditReport

_MAX_NAME = 18


def _short(text: str) -> str:
    return text if len(text) <= _MAX_NAME else text[: _MAX_NAME - 1] + "…"


def render(report: AuditReport) -> str:
    """The human report (summary line goes to stderr separately)."""
    out: list[str] = []
    reach = {r.token: r for r in report.reach}
    headers = ["resource", *(_short(token_label(t)) for t in report.tokens)]
    rows = []
    for res in report.resources:
        row = [resource_label(res)]
        for t in report.tokens:
            tr = reach.get(t.key)
            if tr is None or tr.access is None:
                row.append("?")
            else:
                row.append(letters(tr.grants_on(res)))
        rows.append(row)
    out.append("Access matrix (" + LEGEND + ", ? scope unknown)")
    out.append(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True))
    out.append("")
    if report.findings:
        out.append("Findings")
        frows = [[f.severity.value, f.id, f.token or "", f.message, f.fix] for f in report.findings]
        out.append(
            tabulate(
                frows,
                headers=["severity", "id", "token", "finding", "fix"],
                tablefmt="simple",
                maxcolwidths=[None, None, 24, 60, 50],
                disable_numparse=True,
            )
        )
    else:
        out.append("No findings.")
    if report.escalations:
        out.append("")
        out.append("Indirect routes")
        for p in report.escalations:
            out.append("  " + " -> ".join(p.steps))
    if report.suppressed:
        out.append("")
        out.append(f"{len(report.suppressed)} findings accepted by the baseline:")
        for f in report.suppressed:
            out.append(f"  {f.id} ({f.severity.value}) {f.title}")
    if report.notes:
        out.append("")
        out.extend(f"note: {n}" for n in report.notes)
    return "\n".join(out) + "\n"
