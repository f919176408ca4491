"""Every output format, validated: JSON vs its shipped schema, SARIF vs the SARIF 2.1.0
schema, CSV parsed back, HTML parsed and checked to contain every finding. No secrets."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest

from tokenguard.api.client import ApifyApi
from tokenguard.audit import AuditReport, audit
from tokenguard.audit.formats import Format, render
from tokenguard.audit.formats.csv import HEADER
from tokenguard.audit.formats.json import schema
from tokenguard.audit.inventory import HeldToken
from tokenguard.audit.report import TokenSource
from tokenguard.sandbox.testing import SandboxHandle, running_sandbox

SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-2.1.0.schema.json"
HELD = ("scraper-runner", "storage-reader", "schedule-creator", "task-manager", "no-permissions")


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[SandboxHandle, AuditReport, list[str]]]:
    """One live audit of the demo account (with anonymous reads on), shared by the tests."""
    with running_sandbox("demo") as sb:
        api = ApifyApi(sb.url, sb.admin_token)
        api.request(
            "PUT", "/_sandbox/settings", json={"generalResourceAccess": "ANYONE_WITH_ID_CAN_READ"}
        )
        held = [HeldToken("management", TokenSource.MANAGEMENT, sb.admin_token)]
        held += [HeldToken(f"file:{n}", TokenSource.FILE, sb.token(n)) for n in HELD]
        report = audit(api, held=held, live=True, max_rps=1000)
        secrets = [h.secret.reveal() for h in held]
        secrets.append(sb.token("ops-unscoped").reveal())
        api.close()
        yield sb, report, secrets


def test_demo_report_has_findings_and_access(
    demo: tuple[SandboxHandle, AuditReport, list[str]],
) -> None:
    _, report, _ = demo
    kinds = {f.kind.value for f in report.findings}
    assert {"unscoped-token", "escalation-schedule", "anonymous-storage-access"} <= kinds
    assert report.live is not None and report.live.mismatches == 0
    assert any(True for _ in report.iter_access())


@pytest.mark.parametrize("fmt", list(Format))
def test_no_secret_in_any_format(
    demo: tuple[SandboxHandle, AuditReport, list[str]], fmt: Format
) -> None:
    _, report, secrets = demo
    text = render(report, fmt)
    assert text
    for secret in secrets:
        assert secret not in text
        assert secret[-12:] not in text
    assert "apify_api_" not in text


def test_json_matches_its_schema(demo: tuple[SandboxHandle, AuditReport, list[str]]) -> None:
    _, report, _ = demo
    doc = json.loads(render(report, Format.JSON))
    validator = jsonschema.Draft202012Validator(
        schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(doc), key=str)
    assert not errors, errors[:3]
    assert doc["schemaVersion"] == 1
    assert [f["id"] for f in doc["findings"]] == [f.id for f in report.findings]
    assert len(doc["access"]) == sum(1 for _ in report.iter_access())


def test_json_schema_rejects_a_broken_report(
    demo: tuple[SandboxHandle, AuditReport, list[str]],
) -> None:
    _, report, _ = demo
    doc = json.loads(render(report, Format.JSON))
    doc["findings"][0]["severity"] = "catastrophic"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema(), cls=jsonschema.Draft202012Validator)


def test_sarif_matches_the_sarif_schema(demo: tuple[SandboxHandle, AuditReport, list[str]]) -> None:
    _, report, _ = demo
    doc = json.loads(render(report, Format.SARIF))
    sarif_schema = json.loads(SARIF_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(
        sarif_schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(doc), key=str)
    assert not errors, errors[:3]
    assert doc["version"] == "2.1.0"
    results = doc["runs"][0]["results"]
    assert len(results) == len(report.findings)
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    for result, finding in zip(results, report.findings, strict=True):
        assert result["partialFingerprints"]["tokenguardFindingId/v1"] == finding.id
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == finding.kind.value
        if len(finding.path) >= 2:
            steps = result["codeFlows"][0]["threadFlows"][0]["locations"]
            assert [s["location"]["message"]["text"] for s in steps] == list(finding.path)


def test_sarif_schema_is_strict(demo: tuple[SandboxHandle, AuditReport, list[str]]) -> None:
    _, report, _ = demo
    doc = json.loads(render(report, Format.SARIF))
    doc["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, json.loads(SARIF_SCHEMA.read_text()))


def test_csv_parses_back_to_the_access(demo: tuple[SandboxHandle, AuditReport, list[str]]) -> None:
    _, report, _ = demo
    rows = list(csv.reader(io.StringIO(render(report, Format.CSV))))
    assert tuple(rows[0]) == HEADER
    parsed = {(r[0], r[2], r[5], r[6], r[7]) for r in rows[1:]}
    expected = {
        (a.token, a.resource, g.permission.value, g.route.value, g.reason)
        for a in report.iter_access()
        for g in a.grants
    }
    assert parsed == expected
    assert len(rows) - 1 == len(expected)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.ids: set[str] = set()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for k, v in attrs:
            if k == "id" and v:
                self.ids.add(v)
            assert k not in ("src", "href") or not v or v.startswith("#"), "external asset"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_self_contained_and_shows_every_finding(
    demo: tuple[SandboxHandle, AuditReport, list[str]],
) -> None:
    _, report, _ = demo
    parser = _Collector()
    parser.feed(render(report, Format.HTML))
    parser.close()
    text = " ".join(parser.text)
    assert "script" not in parser.tags
    for f in report.findings:
        assert f.id in parser.ids
        assert f.message in text
        assert f.fix in text
        for step in f.path:
            assert step in text
    for p in report.escalations:
        for step in p.steps:
            assert step in text


def test_table_shows_matrix_and_findings(
    demo: tuple[SandboxHandle, AuditReport, list[str]],
) -> None:
    _, report, _ = demo
    text = render(report, Format.TABLE)
    assert "Access matrix" in text and "Findings" in text
    for f in report.findings:
        assert f.id in text
    for t in report.tokens:
        assert t.name[:17] in text
