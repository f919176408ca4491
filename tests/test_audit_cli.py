"""``tokenguard audit`` end to end: exit codes, stdout/stderr split, baselines, no secrets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tokenguard.api.client import ApifyApi
from tokenguard.api.issuer import HttpTokenIssuer
from tokenguard.cli import main
from tokenguard.permissions import AccountGroup, Permission, Scope
from tokenguard.sandbox.testing import SandboxHandle
from tokenguard.vault.records import TokenRecord
from tokenguard.vault.vault import Vault


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # No vault at the default path, and no stray configuration from the machine.
    return {
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "TOKENGUARD_VAULT": "",
        "APIFY_API_BASE_URL": "",
    }


def run(args: list[str], env: dict[str, str], token: str | None) -> Result:
    full = dict(env)
    if token is not None:
        full["APIFY_TOKEN"] = token
    return CliRunner().invoke(main, ["audit", *args], env=full, catch_exceptions=False)


@pytest.fixture
def demo(sandbox: SandboxHandle) -> Iterator[SandboxHandle]:
    yield sandbox


def test_findings_exit_1_with_data_on_stdout_and_summary_on_stderr(
    demo: SandboxHandle, env: dict[str, str]
) -> None:
    result = run(["--api-url", demo.url, "--format", "json"], env, demo.admin_token.reveal())
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["summary"]["findings"]["critical"] >= 1
    assert "tokenguard audit (static)" in result.stderr
    assert result.stderr.count("\n") <= 2
    assert demo.admin_token.reveal() not in result.stdout + result.stderr


def test_fail_on_threshold_and_clean_exit_0(
    empty_sandbox: SandboxHandle, env: dict[str, str]
) -> None:
    # The empty account: only the unscoped, ungoverned admin token (high + medium).
    token = empty_sandbox.admin_token.reveal()
    assert run(["--api-url", empty_sandbox.url], env, token).exit_code == 1
    result = run(["--api-url", empty_sandbox.url, "--fail-on", "critical"], env, token)
    assert result.exit_code == 0, result.output
    assert "Access matrix" in result.stdout


def test_baseline_accepts_known_findings(
    demo: SandboxHandle, env: dict[str, str], tmp_path: Path
) -> None:
    token = demo.admin_token.reveal()
    base = tmp_path / "baseline.json"
    first = run(
        ["--api-url", demo.url, "--write-baseline", str(base), "--baseline-reason", "reviewed"],
        env,
        token,
    )
    assert first.exit_code == 0, first.stderr
    entries = json.loads(base.read_text())["entries"]
    assert entries and all(e["reason"] == "reviewed" and e["expires"] for e in entries)
    second = run(["--api-url", demo.url, "--baseline", str(base), "--format", "json"], env, token)
    assert second.exit_code == 0, second.stderr
    doc = json.loads(second.stdout)
    assert doc["findings"] == [] and len(doc["suppressed"]) == len(entries)
    # A new finding is not covered: a fresh unscoped token makes the gate fail again.
    HttpTokenIssuer(ApifyApi(demo.url, demo.admin_token)).issue(
        "new-admin", scope=Scope.full(), expires_at=None
    )
    third = run(["--api-url", demo.url, "--baseline", str(base)], env, token)
    assert third.exit_code == 1
    # An expired acceptance counts again.
    for e in entries:
        e["expires"] = "2000-01-01"
    base.write_text(json.dumps({"version": 1, "entries": entries}))
    assert run(["--api-url", demo.url, "--baseline", str(base)], env, token).exit_code == 1
    # Re-accepting renews the expired entries instead of piling up duplicates.
    again = run(
        ["--api-url", demo.url, "--baseline", str(base), "--write-baseline", str(base)],
        env,
        token,
    )
    assert again.exit_code == 0, again.stderr
    ids = [e["id"] for e in json.loads(base.read_text())["entries"]]
    assert len(ids) == len(set(ids))
    assert set(ids) > {e["id"] for e in entries}  # renewed, plus the new admin token's
    missing = tmp_path / "no-such-dir" / "baseline.json"
    bad = run(["--api-url", demo.url, "--write-baseline", str(missing)], env, token)
    assert bad.exit_code == 2 and "Could not write baseline" in bad.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--expiring-within", "soon"],
        ["--tokens-file", "/nonexistent/tokens"],
        ["--token-env", "TG_TEST_UNSET_VAR"],
        ["--format", "pdf"],
        ["--probe-writes"],
        ["--baseline", "/nonexistent/baseline.json"],
        ["--policies", "/nonexistent/policies"],
    ],
)
def test_bad_input_exit_2(demo: SandboxHandle, env: dict[str, str], args: list[str]) -> None:
    result = run(["--api-url", demo.url, *args], env, demo.admin_token.reveal())
    assert result.exit_code == 2, result.output


def test_missing_management_token_exit_2(demo: SandboxHandle, env: dict[str, str]) -> None:
    assert run(["--api-url", demo.url], env, None).exit_code == 2


def test_world_readable_tokens_file_exit_2(
    demo: SandboxHandle, env: dict[str, str], tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"reader={demo.token('storage-reader').reveal()}\n")
    tokens.chmod(0o644)
    result = run(
        ["--api-url", demo.url, "--tokens-file", str(tokens)], env, demo.admin_token.reveal()
    )
    assert result.exit_code == 2
    assert demo.token("storage-reader").reveal() not in result.output


def test_vault_error_exit_3(demo: SandboxHandle, env: dict[str, str], tmp_path: Path) -> None:
    broken = tmp_path / "vault.tgv"
    broken.write_bytes(b"not a vault at all")
    broken.chmod(0o600)
    result = run(["--api-url", demo.url, "--vault", str(broken)], env, demo.admin_token.reveal())
    assert result.exit_code == 3, result.output


def test_unreachable_api_exit_4(env: dict[str, str]) -> None:
    result = run(["--api-url", "http://127.0.0.1:9"], env, "apify_api_" + "x" * 36)
    assert result.exit_code == 4
    assert "x" * 36 not in result.output


def test_rejected_management_token_exit_4(demo: SandboxHandle, env: dict[str, str]) -> None:
    result = run(["--api-url", demo.url], env, "apify_api_" + "y" * 36)
    assert result.exit_code == 4
    assert "y" * 36 not in result.output


def test_vault_tokens_file_and_env_tokens_in_every_format(
    demo: SandboxHandle, env: dict[str, str], tmp_path: Path
) -> None:
    key = tmp_path / "vault.key"
    vault_path = tmp_path / "vault.tgv"
    issuer = HttpTokenIssuer(ApifyApi(demo.url, demo.admin_token))
    issued = issuer.issue(
        "tokenguard/reporter/1",
        scope=Scope(account={AccountGroup.STORAGES: frozenset({Permission.READ})}),
        expires_at=None,
    )
    with Vault.init(vault_path, key_file=key) as vault:
        vault.put(
            TokenRecord(
                name="reporter.1",
                secret=issued.secret,
                policy="reporter",
                scope=issued.info.scope,
                issuer_id=issued.info.id,
                created_at=issued.info.created_at,
            )
        )
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# held\nrunner={demo.token('scraper-runner').reveal()}\n")
    tokens.chmod(0o600)
    env = {**env, "TOKENGUARD_KEY_FILE": str(key), "MY_TOKEN": demo.token("seo-readonly").reveal()}
    secrets = [
        demo.admin_token.reveal(),
        issued.secret.reveal(),
        demo.token("scraper-runner").reveal(),
        demo.token("seo-readonly").reveal(),
    ]
    for fmt in ("table", "json", "csv", "sarif", "html"):
        out = tmp_path / f"report.{fmt}"
        result = run(
            [
                "--api-url",
                demo.url,
                "--vault",
                str(vault_path),
                "--tokens-file",
                str(tokens),
                "--token-env",
                "MY_TOKEN",
                "--format",
                fmt,
                "-o",
                str(out),
                "--live",
                "--max-rps",
                "500",
            ],
            env,
            demo.admin_token.reveal(),
        )
        assert result.exit_code == 1, result.output
        text = out.read_text()
        assert result.stdout == ""
        for s in secrets:
            assert s not in text and s not in result.stderr
        if fmt == "json":
            doc = json.loads(text)
            keys = {t["key"]: t for t in doc["tokens"]}
            assert keys["reporter.1"]["governed"] and keys["reporter.1"]["onPlatform"]
            assert keys["file:runner"]["tokenId"] and not keys["file:runner"]["governed"]
            assert keys["env:MY_TOKEN"]["scopeKnown"]
            assert keys["management"]["unscoped"]
            assert doc["live"]["mismatches"] == 0
