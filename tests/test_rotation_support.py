"""Helpers shared by the rotation tests (no tests here): a vault, policies and a sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tokenguard.api import ApifyApi, HttpTokenIssuer, TokenInfo
from tokenguard.errors import ApiError
from tokenguard.policy import PolicySet, apply, load_policies, plan
from tokenguard.sandbox.testing import SandboxHandle
from tokenguard.secrets import Secret
from tokenguard.vault import TokenRecord, TokenStatus, Vault

POLICY = """
[[token]]
name = "{name}"
description = "rotation test {name}"
expires_after = "{expires_after}"
rotate_after = "{rotate_after}"
grace = "{grace}"
[[token.resource]]
type = "dataset"
id = "demo~products"
permissions = ["read"]
"""

# The test hook makes the CLI process exit with this code right after a step.
CRASH_EXIT = 86


def policy_text(
    names: list[str],
    *,
    expires_after: str = "30d",
    rotate_after: str = "7d",
    grace: str = "24h",
) -> str:
    """Policy files text: one dataset-reading policy per name."""
    return "".join(
        POLICY.format(name=n, expires_after=expires_after, rotate_after=rotate_after, grace=grace)
        for n in names
    )


@dataclass
class World:
    """A sandbox, a fresh vault with the policies applied, and clients for both."""

    sandbox: SandboxHandle
    tmp: Path
    vault: Vault
    api: ApifyApi
    issuer: HttpTokenIssuer

    @property
    def vault_path(self) -> Path:
        return self.tmp / "vault.tgv"

    @property
    def key_file(self) -> Path:
        return self.tmp / "vault.key"

    @property
    def policies_path(self) -> Path:
        return self.tmp / "policies.toml"

    def write_policies(self, text: str) -> PolicySet:
        self.policies_path.write_text(text)
        return load_policies([self.policies_path])

    def policies(self) -> PolicySet:
        return load_policies([self.policies_path])

    def apply(self, now: datetime) -> None:
        policy_set = self.policies()
        apply(plan(policy_set, self.vault, self.issuer, now=now), self.vault, self.issuer, now=now)

    def records(self) -> list[TokenRecord]:
        self.vault.reload()
        return sorted(self.vault.list(), key=lambda r: r.name)

    def by_status(self, policy: str, status: TokenStatus) -> list[TokenRecord]:
        return [r for r in self.records() if r.policy == policy and r.status is status]

    def platform(self) -> list[TokenInfo]:
        """Tokens tokenguard made on the platform (the seed's own tokens left out)."""
        return [t for t in self.issuer.list() if t.name.startswith("tokenguard/")]

    def status_with(self, secret: Secret) -> int:
        """HTTP status of reading the dataset the policies grant, with ``secret``."""
        try:
            self.api.with_token(secret).request("GET", "/datasets/demo~products")
        except ApiError as exc:
            return exc.status
        return 200

    def stats(self) -> Counter[tuple[str, str]]:
        """Requests served so far by (method, route), from the sandbox's counters."""
        data = self.api.get_data("/_sandbox/stats")
        out: Counter[tuple[str, str]] = Counter()
        for item in data["items"]:
            out[(item["method"], item["route"])] += item["count"]
        return out

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKENGUARD_", "APIFY_"))}
        env.update(
            APIFY_TOKEN=self.sandbox.admin_token.reveal(),
            APIFY_API_BASE_URL=self.sandbox.url,
            TOKENGUARD_VAULT=str(self.vault_path),
            TOKENGUARD_KEY_FILE=str(self.key_file),
        )
        env.update(extra)
        return env

    def argv(self, *args: str) -> list[str]:
        """The command line of ``tokenguard rotate ARGS`` with these policies."""
        return [
            sys.executable,
            "-c",
            "from tokenguard.cli.main import main; main()",
            "rotate",
            "--policies",
            str(self.policies_path),
            *args,
        ]

    def cli(self, *args: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``tokenguard rotate ARGS`` in a subprocess (optionally dying after a step)."""
        extra = {"TOKENGUARD_TEST_CRASH_AFTER": crash} if crash else {}
        return subprocess.run(
            self.argv(*args),
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def cli_popen(self, *args: str) -> subprocess.Popen[str]:
        """Start ``tokenguard rotate ARGS`` without waiting for it."""
        return subprocess.Popen(
            self.argv(*args),
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def make_world(sandbox: SandboxHandle, tmp: Path, text: str, now: datetime) -> World:
    """A vault in ``tmp`` with the policies of ``text`` applied at ``now``."""
    tmp.chmod(0o700)
    vault = Vault.init(tmp / "vault.tgv", key_file=tmp / "vault.key")
    api = ApifyApi(sandbox.url, sandbox.admin_token)
    world = World(sandbox, tmp, vault, api, HttpTokenIssuer(api))
    world.write_policies(text)
    world.apply(now)
    return world


def assert_settled(world: World, policies: list[str]) -> None:
    """The invariants of a finished rotation, whatever happened before.

    Exactly one active token per policy, and it works; every token tokenguard made on the
    platform is in the vault; every live record exists on the platform.
    """
    records = world.records()
    for name in policies:
        active = [r for r in records if r.policy == name and r.status is TokenStatus.ACTIVE]
        assert len(active) == 1, (name, [(r.name, r.status) for r in records])
        assert world.status_with(active[0].secret) == 200
    platform_ids = {t.id for t in world.platform()}
    held = {r.issuer_id for r in records}
    assert platform_ids <= held, "a platform token is missing from the vault"
    live = {
        r.issuer_id
        for r in records
        if r.status in (TokenStatus.ACTIVE, TokenStatus.RETIRING, TokenStatus.PENDING)
    }
    assert live <= platform_ids, "a live vault token is gone from the platform"
