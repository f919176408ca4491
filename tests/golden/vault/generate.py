"""Generate the golden vault files for the current format version (run once per version).

    .venv/bin/python tests/golden/vault/generate.py v1

Writes ``<version>/vault.tgv`` (key-file and passphrase slots, production Argon2 params),
``key`` (the 32-byte key file), ``passphrase.txt`` and ``expected.json`` (the records as
``record_json`` renders them plus ``meta``, secrets included: they are fake). Never
regenerate an existing version: files written by an old release must keep opening.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from tokenguard.cli.vault import record_json
from tokenguard.permissions import AccountGroup, Permission, ResourceGrant, ResourceType, Scope
from tokenguard.secrets import Secret
from tokenguard.vault import TokenRecord, TokenStatus, Vault

HERE = Path(__file__).parent
PASSPHRASE = "correct horse battery staple — golden"


def records() -> list[TokenRecord]:
    scope = Scope(
        account={AccountGroup.STORAGES: frozenset({Permission.READ, Permission.CREATE})},
        resources=(
            ResourceGrant(ResourceType.ACTOR, "abcACTOR0001", frozenset({Permission.RUN})),
            ResourceGrant(ResourceType.DATASET, "user~data", frozenset({Permission.WRITE})),
        ),
        default_run_storage_access=True,
    )
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return [
        TokenRecord(
            name="scraper.1",
            secret=Secret("apify_api_GoldenScraperOne000000000000000001"),
            status=TokenStatus.RETIRING,
            policy="scraper",
            scope=scope,
            created_at=created,
            expires_at=created + timedelta(days=90),
            rotated_at=created + timedelta(days=30),
            retire_at=created + timedelta(days=31),
            issuer_id="tok_golden_1",
            policy_digest="sha256:0123abcd",
            notes="first scraper token",
            meta={"source": "golden", "n": 1},
        ),
        TokenRecord(
            name="scraper.2",
            secret=Secret("apify_api_GoldenScraperTwo000000000000000002"),
            policy="scraper",
            scope=scope,
            created_at=created + timedelta(days=30),
            expires_at=datetime(2026, 5, 1, 0, 0, tzinfo=timezone(timedelta(hours=2))),
        ),
        TokenRecord(
            name="admin",
            secret=Secret("apify_api_GoldenAdmin00000000000000000000003"),
            scope=Scope.full(),
            compromised=True,
            notes="unscoped — ünïcode notes",
        ),
        TokenRecord(name="legacy", secret=Secret("not-an-apify-token"), status=TokenStatus.REVOKED),
    ]


def main(version: str) -> None:
    out = HERE / version
    if out.exists():
        sys.exit(f"{out} exists; golden files are never regenerated")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_STATE_HOME"] = tmp
        work = Path(tmp) / "v"
        vault = Vault.init(work / "vault.tgv", key_file=work / "key", passphrase=Secret(PASSPHRASE))
        vault.update(lambda d: d.update({r.name: r for r in records()}))
        out.mkdir(parents=True)
        (out / "vault.tgv").write_bytes((work / "vault.tgv").read_bytes())
        (out / "key").write_bytes((work / "key").read_bytes())
    (out / "passphrase.txt").write_text(PASSPHRASE + "\n", encoding="utf-8")
    expected = [
        {**record_json(r, reveal=True), "meta": dict(r.meta)}
        for r in sorted(records(), key=lambda r: r.name)
    ]
    (out / "expected.json").write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "v1")
