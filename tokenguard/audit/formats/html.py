"""``--format html``: one self-contained file (no scripts, no external assets).

A colour matrix a person reads at a glance (rows: resources, columns: tokens; colour by the
strongest permission), the findings with their fixes, and each escalation path drawn as a
chain of boxes.
"""

from __future__ import annotations

from html import escape

from tokenguard.audit.formats.common import LEGEND, letters, resource_label, summary
from tokenguard.audit.report import AuditReport, Grant, Route
from tokenguard.permissions import Permission

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d1d1f}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}
table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:3px 6px;text-align:center}
th.res,td.res{text-align:left;white-space:nowrap}
th.tok{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap}
td.none{background:#f4f4f5;color:#aaa}td.read{background:#d1fae5}
td.write{background:#fde68a}td.run{background:#fdba74}td.full{background:#f87171;color:#fff}
td.anon{background:#c7d2fe}td.unknown{background:#e5e7eb;color:#555}
.sev{display:inline-block;border-radius:4px;padding:1px 6px;color:#fff;font-weight:600}
.critical{background:#7f1d1d}.high{background:#dc2626}.medium{background:#d97706}
.low{background:#2563eb}.info{background:#6b7280}
.finding{border:1px solid #e5e7eb;border-radius:6px;padding:8px 12px;margin:8px 0}
.fid{font-family:monospace;color:#555}.fix{color:#065f46}
.chain{display:flex;flex-wrap:wrap;align-items:center;gap:4px;margin:8px 0}
.step{border:1px solid #9ca3af;border-radius:6px;padding:4px 8px;background:#f9fafb}
.step:last-child{background:#fee2e2;border-color:#dc2626}.arrow{color:#6b7280}
.legend span{display:inline-block;padding:1px 6px;margin-right:6px}
"""


def _cell_class(grants: tuple[Grant, ...]) -> str:
    if not grants:
        return "none"
    perms = {g.permission for g in grants}
    if any(g.route is Route.UNSCOPED for g in grants):
        return "full"
    if Permission.RUN in perms:
        return "run"
    if Permission.WRITE in perms:
        return "write"
    if all(g.route is Route.ANONYMOUS for g in grants):
        return "anon"
    return "read"


def _title(grants: tuple[Grant, ...]) -> str:
    return "; ".join(f"{g.permission.value} via {g.reason}" for g in grants) or "no access"


def render(report: AuditReport) -> str:
    """The HTML document."""
    e = escape
    parts: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>tokenguard audit</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>tokenguard audit</h1>",
        f"<p>{e(summary(report))}</p>",
        f"<p>API: {e(report.api_url)} &middot; generated {e(report.generated_at.isoformat())}"
        f" &middot; general resource access: "
        f"{e(report.general_access.value if report.general_access else 'unknown')}</p>",
        "<h2>Access matrix</h2>",
        '<p class="legend"><span class="sev" style="background:#d1fae5;color:#000">read</span>'
        '<span style="background:#fde68a">write</span><span style="background:#fdba74">run'
        '</span><span style="background:#f87171;color:#fff">unscoped</span>'
        f'<span style="background:#c7d2fe">anyone with ID</span> {e(LEGEND)}</p>',
        "<table><thead><tr><th class='res'>resource</th>",
    ]
    for t in report.tokens:
        parts.append(f"<th class='tok' title='{e(t.key)}'>{e(t.name)}</th>")
    parts.append("</tr></thead><tbody>")
    reach = {r.token: r for r in report.reach}
    for res in report.resources:
        parts.append(f"<tr><td class='res' title='{e(res.key)}'>{e(resource_label(res))}</td>")
        for t in report.tokens:
            tr = reach.get(t.key)
            if tr is None or tr.access is None:
                parts.append("<td class='unknown' title='scope unknown'>?</td>")
                continue
            grants = tr.grants_on(res)
            parts.append(
                f"<td class='{_cell_class(grants)}' title='{e(_title(grants))}'>"
                f"{e(letters(grants))}</td>"
            )
        parts.append("</tr>")
    parts.append("</tbody></table>")

    parts.append(f"<h2>Findings ({len(report.findings)})</h2>")
    if not report.findings:
        parts.append("<p>No findings.</p>")
    for f in report.findings:
        parts.append(
            f"<div class='finding' id='{e(f.id)}'><span class='sev {e(f.severity.value)}'>"
            f"{e(f.severity.value)}</span> <strong>{e(f.title)}</strong> "
            f"<span class='fid'>{e(f.id)}</span><p>{e(f.message)}</p>"
            f"<p class='fix'>Fix: {e(f.fix)}</p>"
        )
        if f.path:
            parts.append(_chain(f.path))
        parts.append("</div>")

    parts.append(f"<h2>Indirect routes ({len(report.escalations)})</h2>")
    for p in report.escalations:
        parts.append(f"<div><em>{e(p.kind)}</em>{_chain(p.steps)}</div>")
    if report.suppressed:
        parts.append(f"<h2>Accepted by the baseline ({len(report.suppressed)})</h2><ul>")
        parts.extend(
            f"<li><span class='fid'>{e(f.id)}</span> {e(f.title)}: {e(f.message)}</li>"
            for f in report.suppressed
        )
        parts.append("</ul>")
    if report.notes:
        parts.append("<h2>Notes</h2><ul>")
        parts.extend(f"<li>{e(n)}</li>" for n in report.notes)
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _chain(steps: tuple[str, ...]) -> str:
    inner = "<span class='arrow'>&rarr;</span>".join(
        f"<span class='step'>{escape(s)}</span>" for s in steps
    )
    return f"<div class='chain'>{inner}</div>"
