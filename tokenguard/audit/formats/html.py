"""``--format html``: one self-contained file (no scripts, no external assets).

Laid out for a person reading it top to bottom: a header with the severity counts (each a
link to its findings), the tokens, a colour matrix read at a glance (rows: resources,
columns: tokens; colour by the strongest permission, the reasons in each cell's tooltip), the
findings grouped by severity with their fixes, and each escalation path drawn as a chain of
boxes ending in what the token reaches.
"""

from __future__ import annotations

from html import escape

from tokenguard.audit.findings import Finding, Severity
from tokenguard.audit.formats.common import LEGEND, letters, resource_label, summary
from tokenguard.audit.report import AuditReport, EscalationPath, Grant, Route, TokenEntry
from tokenguard.permissions import Permission

_CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#fff;--panel:#f9fafb}
*{box-sizing:border-box}
body{font:14px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:var(--fg);
background:var(--bg)}
header{background:#111827;color:#f9fafb;padding:20px 32px}
header h1{margin:0 0 4px;font-size:22px}header p{margin:2px 0;color:#d1d5db}
main{padding:8px 32px 40px;max-width:1400px}
h2{font-size:18px;margin:32px 0 10px;padding-bottom:4px;border-bottom:2px solid var(--line)}
h3{font-size:15px;margin:20px 0 6px}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0 0}
.tile{display:block;min-width:110px;padding:8px 14px;border-radius:8px;color:#fff;
text-decoration:none}
.tile b{display:block;font-size:24px;line-height:1.1}.tile.zero{opacity:.35}
.critical{background:#7f1d1d}.high{background:#dc2626}.medium{background:#d97706}
.low{background:#2563eb}.info{background:#6b7280}
.sev{display:inline-block;border-radius:4px;padding:0 7px;color:#fff;font-weight:600;
font-size:12px;text-transform:uppercase;letter-spacing:.03em}
table{border-collapse:collapse}
.list td,.list th{border-bottom:1px solid var(--line);padding:4px 10px;text-align:left}
.list th{background:var(--panel)}
.tag{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;background:#e5e7eb}
.tag.bad{background:#fee2e2;color:#991b1b}.tag.ok{background:#d1fae5;color:#065f46}
.scroll{overflow:auto;max-height:80vh;border:1px solid var(--line);border-radius:6px}
.matrix th,.matrix td{border:1px solid var(--line);padding:2px 6px;text-align:center;
font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.matrix thead th{position:sticky;top:0;background:var(--panel);z-index:2;
vertical-align:bottom}
.matrix th.tok{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;
font-family:inherit;font-weight:600;padding:6px 2px}
.matrix td.res,.matrix th.res{position:sticky;left:0;background:var(--panel);text-align:left;
white-space:nowrap;font-family:inherit;z-index:1}
.matrix thead th.res{z-index:3}
.matrix tbody tr:hover td{outline:1px solid #9ca3af}
.c-none{background:#fafafa;color:#c4c4c4}.c-read{background:#d1fae5}
.c-write{background:#fde68a}.c-run{background:#fdba74}.c-full{background:#f87171;color:#fff}
.c-anon{background:#c7d2fe}.c-unknown{background:#e5e7eb;color:#555}
.legend{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin:6px 0 10px;
color:var(--muted)}
.legend span{display:inline-block;padding:0 8px;border-radius:4px;border:1px solid #ddd}
.finding{border:1px solid var(--line);border-left:6px solid #9ca3af;border-radius:6px;
padding:10px 14px;margin:10px 0;background:var(--bg)}
.finding.critical,.finding.high,.finding.medium,.finding.low,.finding.info{background:var(--bg)}
.finding.critical{border-left-color:#7f1d1d}.finding.high{border-left-color:#dc2626}
.finding.medium{border-left-color:#d97706}.finding.low{border-left-color:#2563eb}
.finding.info{border-left-color:#6b7280}
.finding p{margin:6px 0}
.fid{font-family:ui-monospace,monospace;color:var(--muted);font-size:12px}
.fix{color:#065f46;background:#ecfdf5;border-radius:4px;padding:4px 8px}
.chain{display:flex;flex-wrap:wrap;align-items:center;gap:4px;margin:8px 0}
.step{border:1px solid #9ca3af;border-radius:6px;padding:3px 9px;background:var(--panel)}
.step:first-child{background:#e0e7ff;border-color:#6366f1}
.step:last-child{background:#fee2e2;border-color:#dc2626;font-weight:600}
.arrow{color:var(--muted);font-weight:700}
.route{margin:6px 0 14px}.route .who{color:var(--muted);font-size:12px}
details summary{cursor:pointer;color:var(--muted)}
footer{color:var(--muted);font-size:12px;margin-top:40px}
@media print{.scroll{max-height:none;overflow:visible}header{background:none;color:#000}}
"""

#: What the matrix colours mean, in the order of strength.
_SWATCHES = (
    ("read", "read"),
    ("write", "write"),
    ("run", "run"),
    ("full", "unscoped (everything)"),
    ("anon", "anyone with the ID"),
    ("none", "no access"),
    ("unknown", "scope unknown"),
)

#: Routes of one kind longer than this are folded (still in the file, one click away).
_FOLD_AFTER = 12

_ROUTE_TITLES = {
    "escalation-full-run-mode": "Runs in FULL run mode get an unscoped token",
    "escalation-schedule": "Scheduled runs are always unscoped",
    "webhook-dispatch-scope": "Webhooks dispatched with the creator's scope",
    "anonymous-storage-access": "Anyone with an ID may read",
}


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


def _token_tags(t: TokenEntry) -> str:
    tags: list[str] = []
    if t.unscoped:
        tags.append("<span class='tag bad'>unscoped</span>")
    elif t.scope is None:
        tags.append("<span class='tag'>scope unknown</span>")
    else:
        tags.append("<span class='tag ok'>scoped</span>")
    if not t.governed:
        tags.append("<span class='tag bad'>ungoverned</span>")
    if t.on_platform is False:
        tags.append("<span class='tag bad'>not on the platform</span>")
    return " ".join(tags)


def render(report: AuditReport) -> str:
    """The HTML document."""
    e = escape
    counts = report.counts()
    general = report.general_access.value if report.general_access else "unknown"
    parts: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>tokenguard audit</title>",
        f"<style>{_CSS}</style></head><body>",
        "<header><h1>tokenguard audit</h1>",
        f"<p>{e(summary(report))}</p>",
        f"<p>API {e(report.api_url)} &middot; generated {e(report.generated_at.isoformat())}"
        f" &middot; {e(report.mode.value)} mode &middot; general resource access: "
        f"{e(general)}</p>",
        "<nav class='tiles'>",
    ]
    for sev in Severity:
        zero = "" if counts[sev] else " zero"
        parts.append(
            f"<a class='tile {sev.value}{zero}' href='#sev-{sev.value}'>"
            f"<b>{counts[sev]}</b>{e(sev.value)}</a>"
        )
    parts.append("</nav></header><main>")

    parts.append(f"<h2>Tokens ({len(report.tokens)})</h2>")
    parts.append(
        "<table class='list'><thead><tr><th>token</th><th>source</th><th>policy</th>"
        "<th>scope</th><th>expires</th><th>fingerprint</th></tr></thead><tbody>"
    )
    for t in report.tokens:
        expires = t.expires_at.date().isoformat() if t.expires_at else "never"
        parts.append(
            f"<tr><td title='{e(t.key)}'><strong>{e(t.name)}</strong></td>"
            f"<td>{e(', '.join(s.value for s in t.sources))}</td>"
            f"<td>{e(t.policy or '-')}</td><td>{_token_tags(t)}</td>"
            f"<td>{e(expires)}</td><td class='fid'>{e(t.fingerprint or '-')}</td></tr>"
        )
    parts.append("</tbody></table>")

    parts.append("<h2>Access matrix</h2><div class='legend'>")
    parts.extend(f"<span class='c-{cls}'>{e(label)}</span>" for cls, label in _SWATCHES)
    parts.append(f"&nbsp; letters: {e(LEGEND)}; hover a cell for the reasons</div>")
    parts.append(
        "<div class='scroll'><table class='matrix'><thead><tr><th class='res'>resource</th>"
    )
    for t in report.tokens:
        mark = " (unscoped)" if t.unscoped else ""
        parts.append(f"<th class='tok' title='{e(t.key)}'>{e(t.name)}{e(mark)}</th>")
    parts.append("</tr></thead><tbody>")
    reach = {r.token: r for r in report.reach}
    for res in report.resources:
        parts.append(f"<tr><td class='res' title='{e(res.key)}'>{e(resource_label(res))}</td>")
        for t in report.tokens:
            tr = reach.get(t.key)
            if tr is None or tr.access is None:
                parts.append("<td class='c-unknown' title='scope unknown'>?</td>")
                continue
            grants = tr.grants_on(res)
            parts.append(
                f"<td class='c-{_cell_class(grants)}' title='{e(_title(grants))}'>"
                f"{e(letters(grants))}</td>"
            )
        parts.append("</tr>")
    parts.append("</tbody></table></div>")

    parts.append(f"<h2>Findings ({len(report.findings)})</h2>")
    if not report.findings:
        parts.append("<p>No findings.</p>")
    for sev in Severity:
        mine = [f for f in report.findings if f.severity is sev]
        if mine:
            parts.append(f"<h3 id='sev-{sev.value}'>{e(sev.value.capitalize())} ({len(mine)})</h3>")
            parts.extend(_finding(f) for f in mine)

    names = {t.key: t.name for t in report.tokens}
    parts.append(f"<h2>Indirect routes ({len(report.escalations)})</h2>")
    if not report.escalations:
        parts.append("<p>No indirect route reaches beyond a token's scope.</p>")
    by_kind: dict[str, list[EscalationPath]] = {}
    for p in report.escalations:
        by_kind.setdefault(p.kind, []).append(p)
    for kind, paths in by_kind.items():
        parts.append(f"<h3>{e(_ROUTE_TITLES.get(kind, kind))} ({len(paths)})</h3>")
        shown = [_route(p, names) for p in paths]
        parts.extend(shown[:_FOLD_AFTER])
        if len(shown) > _FOLD_AFTER:
            parts.append(f"<details><summary>{len(shown) - _FOLD_AFTER} more</summary>")
            parts.extend(shown[_FOLD_AFTER:])
            parts.append("</details>")

    if report.suppressed:
        parts.append(f"<h2>Accepted by the baseline ({len(report.suppressed)})</h2><ul>")
        parts.extend(
            f"<li><span class='sev {e(f.severity.value)}'>{e(f.severity.value)}</span> "
            f"<span class='fid'>{e(f.id)}</span> {e(f.title)}: {e(f.message)}</li>"
            for f in report.suppressed
        )
        parts.append("</ul>")
    if report.notes:
        parts.append("<h2>Notes</h2><ul>")
        parts.extend(f"<li>{e(n)}</li>" for n in report.notes)
        parts.append("</ul>")
    parts.append("<footer>Generated by tokenguard. Tokens appear by name and fingerprint only.")
    parts.append("</footer></main></body></html>")
    return "\n".join(parts) + "\n"


def _finding(f: Finding) -> str:
    e = escape
    chain = _chain(f.path) if f.path else ""
    return (
        f"<div class='finding {e(f.severity.value)}' id='{e(f.id)}'>"
        f"<span class='sev {e(f.severity.value)}'>{e(f.severity.value)}</span> "
        f"<strong>{e(f.title)}</strong> <span class='fid'>{e(f.id)}</span>"
        f"<p>{e(f.message)}</p>{chain}<p class='fix'>Fix: {e(f.fix)}</p></div>"
    )


def _route(p: EscalationPath, names: dict[str, str]) -> str:
    who = names.get(p.token, p.token)
    return f"<div class='route'><span class='who'>{escape(who)}</span>{_chain(p.steps)}</div>"


def _chain(steps: tuple[str, ...]) -> str:
    inner = "<span class='arrow'>&rarr;</span>".join(
        f"<span class='step'>{escape(s)}</span>" for s in steps
    )
    return f"<div class='chain'>{inner}</div>"
