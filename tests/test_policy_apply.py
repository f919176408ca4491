"""plan/apply against the real loopback sandbox: scoped tokens that the sandbox enforces.

The admin token is the management token, passed through the environment (APIFY_TOKEN) only;
tokens are used over real HTTP afterwards to show that each scope works: what the policy
grants succeeds, a sample of what it does not grant gets 403.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from tokenguard.api import ApifyApi, HttpTokenIssuer, IssuedToken
from tokenguard.cli import main
from tokenguard.permissions import Permission, ResourceType
from tokenguard.policy import (
    ActionKind,
    Plan,
    PolicyValidationError,
    ReplaceCause,
    ResourceResolver,
    apply,
    issue_token,
    load_policies,
    plan,
)
from tokenguard.sandbox.testing import SandboxHandle
from tokenguard.secrets import Secret
from tokenguard.vault import TokenStatus, Unlocker, Vault

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "policies"


@dataclass
class Env:
    """A sandbox, a key-file vault and the environment the CLI reads."""

    sandbox: SandboxHandle
    tmp: Path
    vault_path: Path
    key_file: Path
    env: dict[str, str]
    outputs: list[str]

    def vault(self) -> Vault:
        return Vault.open(self.vault_path, unlocker=Unlocker.from_key_file(self.key_file))

    def cli(self, *args: str, input: str | None = None) -> Result:
        result = CliRunner().invoke(main, ["policy", *args], env=self.env, input=input)
        self.outputs.append(result.output)
        return result

    def api(self) -> ApifyApi:
        return ApifyApi(self.sandbox.url, self.sandbox.admin_token)

    def call(self, token: Secret, method: str, path: str) -> int:
        """HTTP status of ``method path`` (under /v2) made with ``token``."""
        body: object = None
        if method == "POST":
            body = [{"n": 1}] if path.endswith("/items") else {}
        response = httpx.request(
            method,
            self.sandbox.url + "/v2" + path,
            headers={"Authorization": f"Bearer {token.reveal()}"},
            json=body,
        )
        return response.status_code

    def platform_tokens(self) -> dict[str, str]:
        """name -> id of every platform token tokenguard made."""
        with self.api() as api:
            return {
                t.name: t.id
                for t in HttpTokenIssuer(api).list()
                if t.name.startswith("tokenguard/")
            }

    def write_calls(self) -> int:
        """Requests that could change something (not GET), test controls excluded."""
        data = httpx.get(
            self.sandbox.url + "/v2/_sandbox/stats",
            headers={"Authorization": f"Bearer {self.sandbox.admin_token.reveal()}"},
        ).json()["data"]
        return sum(i["count"] for i in data["items"] if i["method"] not in ("GET", "HEAD"))

    def policies(self, **files: str) -> Path:
        """A fresh policy directory with ``files`` (name without .toml -> text)."""
        directory = self.tmp / "policies"
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir()
        for name, text in files.items():
            (directory / f"{name}.toml").write_text(textwrap.dedent(text))
        return directory


@pytest.fixture
def env(sandbox: SandboxHandle, tmp_path: Path) -> Iterator[Env]:
    vault_path = tmp_path / "vault" / "tokens.tgv"
    key_file = tmp_path / "vault.key"
    Vault.init(vault_path, key_file=key_file)
    environ = {
        "APIFY_TOKEN": sandbox.admin_token.reveal(),
        "APIFY_API_BASE_URL": sandbox.url,
        "TOKENGUARD_VAULT": str(vault_path),
        "TOKENGUARD_KEY_FILE": str(key_file),
        "TOKENGUARD_PASSPHRASE": "",
        "TOKENGUARD_PASSPHRASE_FILE": "",
    }
    e = Env(sandbox, tmp_path, vault_path, key_file, environ, [])
    yield e
    # Secrets are sacred: no secret (vault tokens, the admin token) in any command's output.
    secrets = [sandbox.admin_token.reveal()]
    if vault_path.exists():
        secrets += [r.secret.reveal() for r in e.vault().list()]
    for output in e.outputs:
        assert "apify_api_" not in output
        for secret in secrets:
            assert secret not in output


def plan_rows(output: str) -> dict[str, str]:
    """policy -> action from a rendered plan table."""
    kinds = {k.value for k in ActionKind}
    rows = [line.split() for line in output.splitlines()]
    return {parts[1]: parts[0] for parts in rows if len(parts) > 1 and parts[0] in kinds}


POLICY = """\
[[token]]
name = "ci"
description = "test policy"
expires_after = "30d"
rotate_after = "7d"
grace = "1h"
labels = { owner = "t" }

[[token.resource]]
type = "actor"
id = "demo~web-scraper"
permissions = ["run"]
"""

SECOND = """\
[[token]]
name = "other"
expires_after = "1d"
[token.account]
storages = ["read"]
"""


# --- shipped examples: created, stored, and enforced ----------------------------------------


def test_apply_shipped_examples_creates_tokens_the_sandbox_enforces(env: Env) -> None:
    result = env.cli("apply", "--yes", str(SHIPPED))
    assert result.exit_code == 0, result.output
    assert "Applied 3 change(s)." in result.output
    vault = env.vault()
    policies = load_policies([SHIPPED])
    names = env.platform_tokens()
    for policy in policies:
        record = vault.active_for(policy.name)
        assert record is not None, policy.name
        assert record.name == f"{policy.name}.1"
        assert record.fingerprint in result.output  # fingerprints shown, secrets never
        assert record.policy == policy.name and record.policy_digest == policy.digest
        assert record.status is TokenStatus.ACTIVE
        assert record.scope is not None and record.issuer_id is not None
        assert names[f"tokenguard/{policy.name}/1"] == record.issuer_id
        assert record.expires_at is not None and policy.expires_after is not None
        lifetime = record.expires_at - datetime.now(UTC)
        assert policy.expires_after - timedelta(minutes=5) < lifetime <= policy.expires_after
        # Referenced by username~name in the file, stored by ID on the platform (D16).
        for grant in record.scope.resources:
            assert "~" not in grant.id

    checks = {
        "ci-scraper": (
            [
                ("POST", "/acts/demo~web-scraper/runs", 201),
                ("GET", "/datasets/demo~products/items", 200),
            ],
            [
                ("POST", "/acts/demo~pdf-export/runs", 403),
                ("POST", "/datasets/demo~products/items", 403),
                ("GET", "/datasets/demo~seo-reports", 403),
                ("GET", "/users/me", 403),
            ],
        ),
        "reporting": (
            [
                ("GET", "/datasets/demo~seo-reports/items", 200),
                ("GET", "/datasets/demo~products/items", 200),
                ("GET", "/key-value-stores/demo~exports/records/latest.pdf", 200),
            ],
            [
                ("POST", "/datasets/demo~seo-reports/items", 403),
                ("POST", "/acts/demo~web-scraper/runs", 403),
                ("GET", "/datasets/demo~invoices", 403),
                ("GET", "/key-value-stores/demo~crawler-state", 403),
            ],
        ),
        "invoice-integration": (
            [("POST", "/datasets/demo~invoices/items", 201)],
            [
                ("POST", "/datasets/demo~products/items", 403),
                ("GET", "/datasets/demo~products/items", 403),
                ("GET", "/key-value-stores/demo~exports", 403),
                ("POST", "/acts/demo~web-scraper/runs", 403),
            ],
        ),
    }
    for name, (allowed, denied) in checks.items():
        record = vault.active_for(name)
        assert record is not None
        for method, path, expected in allowed + denied:
            got = env.call(record.secret, method, path)
            assert got == expected, (name, method, path, got)


# --- idempotence ---------------------------------------------------------------------------


def test_apply_twice_changes_nothing_the_second_time(env: Env) -> None:
    directory = env.policies(ci=POLICY, other=SECOND)
    assert env.cli("apply", "--yes", str(directory)).exit_code == 0
    generation = env.vault().generation
    before = env.write_calls()
    again = env.cli("apply", "--yes", str(directory))
    assert again.exit_code == 0, again.output
    assert "Nothing to do" in again.output
    assert plan_rows(again.output) == {"ci": "unchanged", "other": "unchanged"}
    assert env.write_calls() == before  # no POST/PUT/DELETE at all
    assert env.vault().generation == generation  # the vault file was not rewritten
    assert sorted(env.platform_tokens()) == ["tokenguard/ci/1", "tokenguard/other/1"]


# --- a changed policy: replace through the rotation path ----------------------------------


def test_changed_scope_plans_replace_and_apply_retires_the_old_token(env: Env) -> None:
    directory = env.policies(ci=POLICY, other=SECOND)
    assert env.cli("apply", "--yes", str(directory)).exit_code == 0
    old = env.vault().active_for("ci")
    assert old is not None

    (directory / "ci.toml").write_text(
        POLICY + '\n[[token.resource]]\ntype = "dataset"\nid = "demo~products"\n'
        'permissions = ["read"]\n'
    )
    planned = env.cli("plan", str(directory))
    assert planned.exit_code == 0
    assert plan_rows(planned.output) == {"ci": "replace", "other": "unchanged"}
    assert "the policy changed (scope or lifetime)" in planned.output
    assert "1 to replace" in planned.output

    before = datetime.now(UTC)
    applied = env.cli("apply", "--yes", str(directory))
    assert applied.exit_code == 0, applied.output
    vault = env.vault()
    new = vault.active_for("ci")
    assert new is not None and new.name == "ci.2"
    retiring = vault.get("ci.1")
    assert retiring.status is TokenStatus.RETIRING
    assert retiring.retire_at is not None and retiring.rotated_at is not None
    assert (
        before + timedelta(hours=1) <= retiring.retire_at <= datetime.now(UTC) + timedelta(hours=1)
    )
    assert new.fingerprint in applied.output and retiring.fingerprint in applied.output
    # Both work during the grace; only the new one has the new scope.
    assert env.call(new.secret, "GET", "/datasets/demo~products") == 200
    assert env.call(new.secret, "POST", "/acts/demo~web-scraper/runs") == 201
    assert env.call(retiring.secret, "GET", "/datasets/demo~products") == 403
    assert env.call(retiring.secret, "POST", "/acts/demo~web-scraper/runs") == 201
    # And it settles: a third apply is a no-op; `rotate` owns the retiring token from here.
    third = env.cli("apply", "--yes", str(directory))
    assert "Nothing to do" in third.output


def test_lifetime_change_and_vanished_token_are_replaced(env: Env) -> None:
    directory = env.policies(ci=POLICY)
    assert env.cli("apply", "--yes", str(directory)).exit_code == 0
    (directory / "ci.toml").write_text(POLICY.replace('"30d"', '"20d"'))
    assert "the policy changed" in env.cli("plan", str(directory)).output
    assert env.cli("apply", "--yes", str(directory)).exit_code == 0
    current = env.vault().active_for("ci")
    assert current is not None and current.name == "ci.2"
    # Revoked behind tokenguard's back: the plan notices and apply marks it revoked.
    with env.api() as api:
        HttpTokenIssuer(api).revoke(current.issuer_id or "")
    planned = env.cli("plan", str(directory))
    assert "no longer exists on the platform" in planned.output
    assert env.cli("apply", "--yes", str(directory)).exit_code == 0
    vault = env.vault()
    assert vault.get("ci.2").status is TokenStatus.REVOKED
    assert vault.get("ci.3").status is TokenStatus.ACTIVE


# --- resource references resolved at plan time -------------------------------------------


def test_missing_referenced_resource_fails_plan_and_apply_before_anything_is_created(
    env: Env,
) -> None:
    directory = env.policies(
        ci=POLICY.replace("demo~web-scraper", "demo~no-such-actor"), other=SECOND
    )
    before = env.write_calls()
    for command in (["plan"], ["apply", "--yes"]):
        result = env.cli(*command, str(directory))
        assert result.exit_code == 2, result.output
        assert f"{directory / 'ci.toml'}:11: policy 'ci': token[0].resource[0].id:" in result.output
        assert "actor 'demo~no-such-actor' does not exist" in result.output
    result = env.cli("plan", "--json", str(directory))
    assert result.exit_code == 2
    (problem,) = json.loads(result.output)["problems"]
    assert problem["file"] == str(directory / "ci.toml")
    assert (problem["line"], problem["key"], problem["policy"]) == (
        11,
        "token[0].resource[0].id",
        "ci",
    )
    assert env.write_calls() == before
    assert env.platform_tokens() == {}


def test_plan_notes_task_and_schedule_dependencies(env: Env) -> None:
    sb = env.sandbox
    scraper_id = sb.resource_id("actor", "web-scraper")
    task_id = sb.resource_id("task", "nightly-crawl")
    directory = env.policies(
        deps="""\
        [[token]]
        name = "deps"
        [[token.resource]]
        type = "task"
        id = "demo~nightly-crawl"
        permissions = ["read"]
        [[token.resource]]
        type = "schedule"
        id = "demo~nightly"
        permissions = ["read", "write"]
        [[token.resource]]
        type = "task"
        id = "demo~weekly-seo"
        permissions = ["read"]
        [[token.resource]]
        type = "actor"
        id = "demo~seo-audit"
        permissions = ["run"]
        """
    )
    result = env.cli("plan", str(directory))
    assert result.exit_code == 0, result.output
    path = directory / "deps.toml"
    assert (
        f"{path}:6: policy 'deps': token[0].resource[0].permissions: note: task "
        f"'demo~nightly-crawl' cannot be run (or updated) by this token: that needs Run on its "
        f"Actor {scraper_id}"
    ) in result.output
    assert f"triggers task {task_id}, which needs read on it" not in result.output  # it has read
    assert "weekly-seo' cannot be run" not in result.output  # it has Run on seo-audit
    # Without read on the task, the schedule's dependency is named.
    (path).write_text(
        '[[token]]\nname = "deps"\n[[token.resource]]\ntype = "schedule"\n'
        'id = "demo~nightly"\npermissions = ["write"]\n'
    )
    result = env.cli("plan", "--json", str(directory))
    assert result.exit_code == 0
    assert f"triggers task {task_id}, which needs read on it" in result.output


# --- crash between "created" and "stored" ------------------------------------------------

CRASHER = """\
import os, signal, sys
from tokenguard.api.issuer import HttpTokenIssuer
real = HttpTokenIssuer.issue
def issue(self, *args, **kwargs):
    issued = real(self, *args, **kwargs)
    if args[0] == "tokenguard/ci/1":
        os.kill(os.getpid(), signal.SIGKILL)  # the token exists; the vault never sees it
    return issued
HttpTokenIssuer.issue = issue
from tokenguard.cli import main
sys.exit(main(["policy", "apply", "--yes", sys.argv[1]]))
"""


def test_crash_after_create_before_store_is_found_and_revoked(env: Env) -> None:
    directory = env.policies(ci=POLICY, other=SECOND)
    script = env.tmp / "crasher.py"
    script.write_text(CRASHER)
    proc = subprocess.run(
        [sys.executable, str(script), str(directory)],
        env={**os.environ, **env.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    env.outputs += [proc.stdout, proc.stderr]
    assert proc.returncode == -9, proc.stderr
    assert env.vault().list() == []  # created on the platform, never stored
    lost_id = env.platform_tokens()["tokenguard/ci/1"]

    planned = env.cli("plan", str(directory))
    assert planned.exit_code == 0
    assert "revoke" in planned.output and "tokenguard/ci/1" in planned.output
    assert "not in the vault" in planned.output
    assert "2 to create, 0 to replace, 1 to revoke" in planned.output

    applied = env.cli("apply", "--yes", str(directory))
    assert applied.exit_code == 0, applied.output
    with env.api() as api:
        assert lost_id not in {t.id for t in HttpTokenIssuer(api).list()}
    vault = env.vault()
    records = vault.list()
    assert sorted((r.policy, r.status) for r in records) == [
        ("ci", TokenStatus.ACTIVE),
        ("other", TokenStatus.ACTIVE),
    ]
    # The serial moved past the lost one: no two platform tokens ever share a name.
    assert vault.active_for("ci").name == "ci.2"  # type: ignore[union-attr]
    assert sorted(env.platform_tokens()) == ["tokenguard/ci/2", "tokenguard/other/1"]
    assert "Nothing to do" in env.cli("apply", "--yes", str(directory)).output


# --- removed policies: reported, revoked only with --prune ---------------------------------


def test_removed_policy_is_an_orphan_until_prune(env: Env) -> None:
    directory = env.policies(ci=POLICY, other=SECOND)
    assert env.cli("apply", "--yes", str(directory)).exit_code == 0
    other = env.vault().active_for("other")
    assert other is not None
    (directory / "other.toml").unlink()

    planned = env.cli("plan", str(directory))
    assert "orphan" in planned.output and "--prune revokes it" in planned.output
    kept = env.cli("apply", "--yes", str(directory))
    assert "Nothing to do" in kept.output
    assert env.vault().get("other.1").status is TokenStatus.ACTIVE

    pruned_plan = env.cli("plan", "--prune", "--json", str(directory))
    assert '"action": "revoke"' in pruned_plan.output
    pruned = env.cli("apply", "--yes", "--prune", str(directory))
    assert pruned.exit_code == 0, pruned.output
    assert env.vault().get("other.1").status is TokenStatus.REVOKED
    assert env.call(other.secret, "GET", "/datasets/demo~products") == 401
    assert env.vault().get("ci.1").status is TokenStatus.ACTIVE


# --- confirmation --------------------------------------------------------------------------


def test_apply_refuses_without_terminal_or_yes(env: Env) -> None:
    directory = env.policies(ci=POLICY)
    result = env.cli("apply", str(directory))
    assert result.exit_code == 2
    assert "Refusing to apply without confirmation" in result.output
    assert env.platform_tokens() == {}


def test_apply_asks_on_a_terminal(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import tokenguard.cli.policy as cli_policy

    monkeypatch.setattr(cli_policy, "_stdin_is_tty", lambda: True)
    directory = env.policies(ci=POLICY)
    declined = env.cli("apply", str(directory), input="n\n")
    assert declined.exit_code == 1
    assert "Apply 1 change(s)?" in declined.output
    assert env.platform_tokens() == {}
    accepted = env.cli("apply", str(directory), input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert list(env.platform_tokens()) == ["tokenguard/ci/1"]


def test_plan_and_apply_need_the_management_token_from_env(env: Env) -> None:
    directory = env.policies(ci=POLICY)
    env.env["APIFY_TOKEN"] = ""
    result = env.cli("plan", str(directory))
    assert result.exit_code == 2
    assert "APIFY_TOKEN" in result.output
    env.env["APIFY_TOKEN"] = "apify_api_" + "x" * 36  # unknown token: the API says 401
    result = env.cli("plan", str(directory))
    assert result.exit_code == 4
    assert "x" * 36 not in result.output


# --- the library API (what the rotation job uses) ----------------------------------------


def test_library_plan_apply_and_issue_token(env: Env) -> None:
    directory = env.policies(ci=POLICY, other=SECOND)
    policies = load_policies([directory])
    vault = env.vault()
    now = datetime.now(UTC)
    with env.api() as api:
        issuer = HttpTokenIssuer(api)
        first = plan(policies, vault, issuer, now=now, resolver=ResourceResolver(api))
        assert [a.kind for a in first.actions] == [ActionKind.CREATE, ActionKind.CREATE]
        assert first.scopes["ci"].resources[0].id == env.sandbox.resource_id("actor", "web-scraper")
        steps: list[str] = []
        result = apply(first, vault, issuer, now=now, on_step=lambda s: steps.append(s.outcome))
        assert steps == ["created", "created"]
        assert [a.record for a in result.applied] == ["ci.1", "other.1"]

        # Planning from a token list (no issuer) gives the same answer.
        second = plan(policies, vault, issuer.list(), now=now)
        assert {a.kind for a in second.actions} == {ActionKind.UNCHANGED}
        assert not second.has_changes

        # issue_token: serial = 1 + highest seen; the caller picks the status.
        ci = policies.get("ci")
        assert ci is not None
        pending = issue_token(ci, issuer, vault, now=now, status=TokenStatus.PENDING)
        assert pending.name == "ci.2" and pending.status is TokenStatus.PENDING
        assert vault.find("ci.2") == pending  # stored before issue_token returned
        assert pending.policy_digest == ci.digest
        assert issuer.get(pending.issuer_id or "").name == "tokenguard/ci/2"
        assert pending.scope is not None
        assert pending.scope.resources[0].type is ResourceType.ACTOR
        assert pending.scope.resources[0].permissions == frozenset({Permission.RUN})

        # From a bare token list nothing can be resolved: the plan says so.
        assert [n.message for n in second.notes if "not checked" in n.message] == [
            "resource references were not checked against the account (no resolver): "
            "a missing resource fails only when apply issues the token"
        ]

        # A missing reference is a policy error carrying every problem, also without an
        # explicit resolver: planning from an HTTP issuer resolves through its API.
        broken = load_policies([env.policies(ci=POLICY.replace("demo~web-scraper", "nope"))])
        for resolver in (ResourceResolver(api), None):
            with pytest.raises(PolicyValidationError) as info:
                plan(broken, vault, issuer, now=now, resolver=resolver)
            assert info.value.exit_code == 2
            assert len(info.value.problems) == 1
            assert "actor 'nope' does not exist" in info.value.problems[0].message


def test_vault_revoked_but_platform_valid_is_revoked(env: Env) -> None:
    directory = env.policies(ci=POLICY)
    assert env.cli("apply", "--yes", str(directory)).exit_code == 0
    vault = env.vault()
    record = vault.get("ci.1")
    vault.put(record.evolve(status=TokenStatus.REVOKED))  # someone marked it without revoking
    planned = env.cli("plan", str(directory))
    assert "marked revoked in the vault but still valid on the platform" in planned.output
    assert "Plan: 1 to create, 0 to replace, 1 to revoke" in planned.output
    applied = env.cli("apply", "--yes", "--json", str(directory))
    assert applied.exit_code == 0, applied.output
    doc = json.loads(applied.output)
    assert [(a["action"], a["outcome"]) for a in doc["applied"]] == [
        ("revoke", "revoked"),
        ("create", "created"),
    ]
    assert doc["applied"][1]["newRecord"] == "ci.2"
    assert env.call(record.secret, "GET", "/acts/demo~web-scraper") == 401
    new = env.vault().active_for("ci")
    assert new is not None
    assert env.call(new.secret, "POST", "/acts/demo~web-scraper/runs") == 201


def test_apply_respects_a_running_rotation(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import tokenguard.cli.policy as cli_policy

    monkeypatch.setattr(cli_policy, "APPLY_LOCK_WAIT", 0.0)
    directory = env.policies(ci=POLICY)
    with env.vault().rotation_lock():
        result = env.cli("apply", "--yes", str(directory))
    assert result.exit_code == 3
    assert "another rotation is running" in result.output
    assert env.platform_tokens() == {}
    assert env.cli("apply", "--yes", str(directory)).exit_code == 0


def test_expired_active_token_is_replaced_without_grace(env: Env) -> None:
    directory = env.policies(ci=POLICY)
    policies = load_policies([directory])
    vault = env.vault()
    start = datetime.now(UTC)
    later = start + timedelta(days=31)  # tokenguard's clock decides expiry, not the sandbox's
    with env.api() as api:
        issuer = HttpTokenIssuer(api)
        apply(plan(policies, vault, issuer, now=start), vault, issuer, now=start)
        stale = plan(policies, vault, issuer, now=later, resolver=ResourceResolver(api))
        (action,) = stale.actions
        assert (action.kind, action.cause) == (ActionKind.REPLACE, ReplaceCause.EXPIRED)
        assert action.to_json()["cause"] == "expired"
        apply(stale, vault, issuer, now=later)
    old, new = vault.get("ci.1"), vault.get("ci.2")
    assert old.status is TokenStatus.RETIRING and old.retire_at == later  # no grace: it is dead
    assert new.status is TokenStatus.ACTIVE and new.created_at == later


def test_library_apply_never_revokes_a_replacement_a_rotation_has_not_stored_yet(
    env: Env,
) -> None:
    """The window between a rotation's "issued" and "stored": apply must stay out of it.

    Both sides call a ``tokenguard/<policy>/<n>`` token the vault does not hold an orphan.
    A plan made inside the window lists the rotation's new token for revocation; apply
    waits for the rotation lock the rotation holds, and once the rotation has stored its
    token, the stale plan's revocation is skipped.
    """
    from tokenguard.errors import VaultLockedError
    from tokenguard.rotation import Outcome, rotate

    directory = env.policies(ci=POLICY)
    policies = load_policies([directory])
    now = datetime.now(UTC)
    stale: list[Plan] = []
    blocked: list[VaultLockedError] = []
    # "policy apply" is another program: its own handle on the vault file.
    apply_vault = env.vault()
    with env.api() as api:
        issuer = HttpTokenIssuer(api)
        apply(plan(policies, apply_vault, issuer, now=now), apply_vault, issuer, now=now)

        class Racing(HttpTokenIssuer):
            def issue(self, name: str, **kwargs: Any) -> IssuedToken:
                issued = super().issue(name, **kwargs)
                if name == "tokenguard/ci/2":  # issued, not stored yet: apply runs now
                    stale.append(plan(policies, apply_vault, issuer, now=now))
                    try:
                        apply(stale[0], apply_vault, issuer, now=now, lock_wait=0)
                    except VaultLockedError as exc:
                        blocked.append(exc)
                return issued

        rotation_vault = env.vault()
        report = rotate(
            rotation_vault,
            Racing(api),
            policies.policies,
            api=api,
            compromised=["ci"],
            clock=lambda: now,
            sleep=lambda _: None,
        )
        (lost,) = [a for a in stale[0].actions if a.kind is ActionKind.REVOKE]
        assert lost.token_name == "tokenguard/ci/2"  # the window is real
        assert len(blocked) == 1 and "another rotation is running" in str(blocked[0])
        assert [r.outcome for r in report.results] == [Outcome.ROTATED]

        # After the rotation, the stale plan finds the token stored and leaves it alone.
        result = apply(stale[0], apply_vault, issuer, now=now, lock_wait=0)
        assert [a.outcome for a in result.applied] == ["skipped (now in the vault)"]
        active = apply_vault.active_for("ci")
        assert active is not None and active.name == "ci.2"
        assert active.issuer_id in {t.id for t in issuer.list()}
        assert env.call(active.secret, "POST", "/acts/demo~web-scraper/runs") == 201


def test_library_apply_skips_actions_a_rotation_made_stale(env: Env) -> None:
    directory = env.policies(ci=POLICY)
    policies = load_policies([directory])
    vault = env.vault()
    now = datetime.now(UTC)
    with env.api() as api:
        issuer = HttpTokenIssuer(api)
        first = plan(policies, vault, issuer, now=now)
        apply(first, vault, issuer, now=now)
        # The same create plan again: the policy has an active token now.
        (again,) = apply(first, vault, issuer, now=now).applied
        assert again.outcome == "skipped (an active token appeared; plan again)"
        # A replace planned for ci.1, which a rotation replaced in the meantime.
        later = now + timedelta(days=31)
        expired = plan(policies, vault, issuer, now=later)
        assert [a.kind for a in expired.actions] == [ActionKind.REPLACE]
        apply(expired, vault, issuer, now=later)
        (stale,) = apply(expired, vault, issuer, now=later).applied
        assert stale.outcome == "skipped (no longer active; plan again)"
    assert sorted(env.platform_tokens()) == ["tokenguard/ci/1", "tokenguard/ci/2"]
    assert [r.status for r in sorted(vault.list(), key=lambda r: r.name)] == [
        TokenStatus.RETIRING,
        TokenStatus.ACTIVE,
    ]
