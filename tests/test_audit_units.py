"""Small pieces of the audit that need no server: tokens files, baselines, finding ids."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from tokenguard.api.client import ApifyApi
from tokenguard.audit import analyze, build_inventory
from tokenguard.audit.baseline import (
    Baseline,
    baseline_from_findings,
    load_baseline,
    write_baseline,
)
from tokenguard.audit.findings import FindingKind, Severity, finding_id, make_finding
from tokenguard.audit.inventory import HeldToken, Inventory, read_tokens_file, tokens_from_env
from tokenguard.audit.report import TokenSource
from tokenguard.errors import UsageError
from tokenguard.permissions import Permission, ResourceKind
from tokenguard.sandbox.testing import SandboxHandle

TOKEN_A = "apify_api_" + "A" * 36
TOKEN_B = "apify_api_" + "b" * 36


def _file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "tokens"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_tokens_file_names_bare_tokens_and_comments(tmp_path: Path) -> None:
    path = _file(tmp_path, f"# comment\n\nci={TOKEN_A}\n  {TOKEN_B}  \n")
    held = read_tokens_file(path)
    assert [h.name for h in held] == ["file:ci", "file:line4"]
    assert [h.secret.reveal() for h in held] == [TOKEN_A, TOKEN_B]
    assert all(h.source is TokenSource.FILE for h in held)


@pytest.mark.parametrize(
    "text",
    [f"ci={TOKEN_A}\nci={TOKEN_B}\n", "ci=\n", f"={TOKEN_A}\n", f"ci={TOKEN_A} extra\n"],
)
def test_bad_tokens_file_never_echoes_secrets(tmp_path: Path, text: str) -> None:
    with pytest.raises(UsageError) as info:
        read_tokens_file(_file(tmp_path, text))
    assert TOKEN_A not in str(info.value) and TOKEN_B not in str(info.value)


def test_tokens_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="chmod 600"):
        read_tokens_file(_file(tmp_path, f"{TOKEN_A}\n", mode=0o640))


def test_token_env() -> None:
    held = tokens_from_env(["TG_A"], {"TG_A": f" {TOKEN_A}\n"})
    assert held[0].name == "env:TG_A" and held[0].secret.reveal() == TOKEN_A
    with pytest.raises(UsageError):
        tokens_from_env(["TG_MISSING"], {})


def test_finding_ids_are_stable_and_ignore_the_message() -> None:
    a = make_finding(FindingKind.UNSCOPED_TOKEN, "one wording", token="ops.1")
    b = make_finding(FindingKind.UNSCOPED_TOKEN, "another wording", token="ops.1")
    c = make_finding(FindingKind.UNSCOPED_TOKEN, "one wording", token="ops.2")
    assert a.id == b.id != c.id
    assert a.id == finding_id(FindingKind.UNSCOPED_TOKEN, "ops.1", None)
    assert a.id.startswith("TG-unscoped-token-")


def test_severity_order() -> None:
    assert Severity.CRITICAL.at_least(Severity.HIGH)
    assert not Severity.MEDIUM.at_least(Severity.HIGH)
    assert Severity.INFO.at_least(Severity.INFO)


def test_same_account_gives_same_finding_ids(sandbox: SandboxHandle) -> None:
    api = ApifyApi(sandbox.url, sandbox.admin_token)
    held = [HeldToken("file:x", TokenSource.FILE, sandbox.token("schedule-creator"))]
    first = analyze(build_inventory(api, held=held))
    second = analyze(build_inventory(api, held=held))
    api.close()
    assert [f.id for f in first.findings] == [f.id for f in second.findings]
    assert len({f.id for f in first.findings}) == len(first.findings)


def test_baseline_round_trip_and_expiry(tmp_path: Path) -> None:
    findings = [
        make_finding(FindingKind.UNSCOPED_TOKEN, "m", token="ops.1"),
        make_finding(FindingKind.UNGOVERNED_TOKEN, "m", token="x"),
    ]
    path = tmp_path / "baseline.json"
    write_baseline(
        path, baseline_from_findings(findings[:1], reason="break-glass", expires=date(2030, 1, 1))
    )
    loaded = load_baseline(path)
    new, suppressed, expired = loaded.split(findings, today=date(2029, 12, 31))
    assert [f.id for f in suppressed] == [findings[0].id] and new == (findings[1],) and not expired
    new, suppressed, expired = loaded.split(findings, today=date(2030, 1, 2))
    assert not suppressed and len(new) == 2 and expired[0].reason == "break-glass"
    assert Baseline().split(findings, today=date(2030, 1, 1))[0] == tuple(findings)


@pytest.mark.parametrize(
    "doc",
    [
        "not json",
        json.dumps({"version": 2, "entries": []}),
        json.dumps({"version": 1, "entries": {}}),
        json.dumps({"version": 1, "entries": [{"id": "TG-x", "expires": "2030-01-01"}]}),
        json.dumps({"version": 1, "entries": [{"id": "TG-x", "reason": "r", "expires": "soon"}]}),
        json.dumps(
            {"version": 1, "entries": [{"id": "nope", "reason": "r", "expires": "2030-01-01"}]}
        ),
    ],
)
def test_bad_baseline_is_usage_error(tmp_path: Path, doc: str) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(doc)
    with pytest.raises(UsageError) as info:
        load_baseline(path)
    assert info.value.exit_code == 2


# Per-resource general access (Apify: "the resource level setting takes precedence over the
# account setting"): the inventory reads it from the list items into Resource.general_access,
# and the scope model applies it (findings and the access matrix alike).


def test_listed_general_access_reads_the_list_item() -> None:
    from tokenguard.audit.inventory import listed_general_access, parse_resource
    from tokenguard.permissions import GeneralAccess, ResourceKind

    shared = {"id": "d", "generalAccess": "ANYONE_WITH_ID_CAN_READ"}
    assert listed_general_access(shared) is GeneralAccess.ANYONE_WITH_ID_CAN_READ
    assert listed_general_access({"id": "d", "generalAccess": "FOLLOW_USER_SETTING"}) is None
    assert listed_general_access({"id": "d", "generalAccess": "SOMETHING_NEW"}) is None
    assert listed_general_access({"id": "d"}) is None
    named = {"id": "d", "name": "feed", "generalAccess": "ANYONE_WITH_NAME_CAN_READ"}
    resource = parse_resource(ResourceKind.DATASET, named, "me")
    assert resource.general_access is GeneralAccess.ANYONE_WITH_NAME_CAN_READ
    run = parse_resource(ResourceKind.RUN, {"id": "r", "generalAccess": "RESTRICTED"}, "me")
    assert run.general_access is GeneralAccess.RESTRICTED
    task = parse_resource(ResourceKind.TASK, {"id": "t", "generalAccess": "RESTRICTED"}, "me")
    assert task.general_access is None  # tasks are not affected by the setting


def _override_inventory(general: str, value: str) -> Inventory:
    from tokenguard.permissions import GeneralAccess, Resource, ResourceKind

    resources = (
        Resource(
            ResourceKind.DATASET, "shared1", "reports", "me", general_access=GeneralAccess(value)
        ),
        Resource(ResourceKind.DATASET, "private1", "internal", "me"),
    )
    return Inventory((), resources, GeneralAccess(general), "me")


def test_a_storage_shared_on_its_own_is_an_anonymous_access_finding() -> None:
    inventory = _override_inventory("RESTRICTED", "ANYONE_WITH_ID_CAN_READ")
    assert inventory.overrides == ((ResourceKind.DATASET, "shared1", "ANYONE_WITH_ID_CAN_READ"),)
    report = analyze(inventory)
    [finding] = [f for f in report.findings if f.kind is FindingKind.ANONYMOUS_ACCESS]
    assert finding.resource == "dataset:shared1"
    assert finding.path == (
        "anyone (no token)",
        "knows the ID of dataset me~reports",
        "its own general access: ANYONE_WITH_ID_CAN_READ",
        "read dataset me~reports",
    )
    assert [p.via for p in report.escalations] == ["dataset:shared1"]


def test_a_storage_shared_by_name_is_a_finding_even_on_an_open_account() -> None:
    report = analyze(_override_inventory("ANYONE_WITH_ID_CAN_READ", "ANYONE_WITH_NAME_CAN_READ"))
    found = sorted(
        (f.resource or "", f.path[1])
        for f in report.findings
        if f.kind is FindingKind.ANONYMOUS_ACCESS
    )
    assert found == [("", "knows a storage or run ID"), ("dataset:shared1", "knows the ID or "
                     "name of dataset me~reports")]  # fmt: skip


def test_a_storage_restricted_on_an_open_account_is_noted_not_found() -> None:
    report = analyze(_override_inventory("ANYONE_WITH_ID_CAN_READ", "RESTRICTED"))
    # The account-wide finding only, counting the one storage still open.
    [finding] = [f for f in report.findings if f.kind is FindingKind.ANONYMOUS_ACCESS]
    assert finding.resource is None and "1 storages and 0 runs" in finding.message
    assert any("dataset me~reports is restricted on its own" in n for n in report.notes)


def test_the_matrix_shows_the_anonymous_route_per_resource() -> None:
    from tokenguard.audit.inventory import InventoryToken
    from tokenguard.audit.report import TokenEntry, TokenSource
    from tokenguard.permissions import Scope

    entry = TokenEntry(
        key="t", name="t", sources=(TokenSource.FILE,), governed=False, scope=Scope()
    )
    for general, shared_open, private_open in (
        ("RESTRICTED", True, False),
        ("ANYONE_WITH_ID_CAN_READ", False, True),
    ):
        value = "ANYONE_WITH_ID_CAN_READ" if shared_open else "RESTRICTED"
        inventory = replace(_override_inventory(general, value), tokens=(InventoryToken(entry),))
        claims = analyze(inventory).access_map()
        assert (Permission.READ in claims.get(("t", "dataset:shared1"), ())) is shared_open
        assert (Permission.READ in claims.get(("t", "dataset:private1"), ())) is private_open


def test_general_access_is_not_judged_from_an_overridden_resource(
    sandbox: SandboxHandle,
) -> None:
    from tokenguard.audit.inventory import collect_resources, detect_general_access
    from tokenguard.permissions import GeneralAccess, ResourceKind

    api = ApifyApi(sandbox.url, sandbox.admin_token)
    api.request(
        "PUT", "/_sandbox/settings", json={"generalResourceAccess": "ANYONE_WITH_ID_CAN_READ"}
    )
    resources = collect_resources(api, None)
    probed = [r for r in resources if r.kind in {ResourceKind.DATASET, ResourceKind.RUN}]
    assert detect_general_access(api, resources) is GeneralAccess.ANYONE_WITH_ID_CAN_READ
    # Every candidate overridden: nothing tells the account setting.
    everything = {r.id for r in resources}
    assert probed and detect_general_access(api, resources, everything) is None
    api.close()


@pytest.mark.parametrize("account_open", [False, True])
def test_inventory_reads_each_storage_own_general_access(
    empty_sandbox: SandboxHandle, account_open: bool
) -> None:
    """Against the sandbox: a storage shared on a restricted account (or restricted on an open
    one) shows in the matrix exactly as the sandbox answers a token without read on it."""
    import httpx

    from tokenguard.api.issuer import HttpTokenIssuer
    from tokenguard.permissions import GeneralAccess, Scope

    api = ApifyApi(empty_sandbox.url, empty_sandbox.admin_token)
    plain, own = (
        api.request("POST", "/datasets", params={"name": n}).json()["data"]["id"]
        for n in ("plain", "own")
    )
    value = "RESTRICTED" if account_open else "ANYONE_WITH_ID_CAN_READ"
    api.request("PUT", f"/datasets/{own}", json={"generalAccess": value})
    if account_open:
        api.request(
            "PUT", "/_sandbox/settings", json={"generalResourceAccess": "ANYONE_WITH_ID_CAN_READ"}
        )
    issued = HttpTokenIssuer(api).issue("nobody", scope=Scope(), expires_at=None)
    inventory = build_inventory(api, held=[HeldToken("file:t", TokenSource.FILE, issued.secret)])
    by_id = {r.id: r for r in inventory.resources}
    assert by_id[own].general_access is GeneralAccess(value)
    assert by_id[plain].general_access is None
    # The account setting is judged from the storage that follows it, not the overridden one.
    assert inventory.general_access is GeneralAccess(
        "ANYONE_WITH_ID_CAN_READ" if account_open else "RESTRICTED"
    )
    claims = analyze(inventory).access_map()
    headers = {"Authorization": f"Bearer {issued.secret.reveal()}"}
    with httpx.Client(base_url=empty_sandbox.url + "/v2", headers=headers) as client:
        for sid in (plain, own):
            response = client.get(f"/datasets/{sid}")
            claimed = Permission.READ in claims.get(("file:t", f"dataset:{sid}"), frozenset())
            assert claimed is response.is_success, (sid, response.status_code)
            assert claimed is ((sid == own) is not account_open)
            if claimed:
                assert response.headers.get("X-Sandbox-Grant") == "anonymous"
    api.close()
