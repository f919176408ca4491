"""The decrypted payload: token records as JSON lines.

Line 1 is a small JSON object (schema, record count); every further line is one record.
One line per record lets a save reuse the encoded bytes of every record it did not touch,
which keeps a write to a 10,000-token vault close to the cost of encrypting and writing it.
Decoding is strict: a payload that does not match the schema exactly is a format error.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tokenguard.errors import UsageError, VaultFormatError
from tokenguard.permissions import (
    AccountGroup,
    Permission,
    ResourceGrant,
    ResourceType,
    RunMode,
    Scope,
)
from tokenguard.secrets import Secret
from tokenguard.vault.records import TokenRecord, TokenStatus

SCHEMA = 1
MAX_NAME_LEN = 200
_FIELDS = (
    "name",
    "secret",
    "status",
    "policy",
    "scope",
    "created_at",
    "expires_at",
    "rotated_at",
    "retire_at",
    "issuer_id",
    "policy_digest",
    "compromised",
    "notes",
    "meta",
)
_FIELD_SET = frozenset(_FIELDS)
_DATES = ("created_at", "expires_at", "rotated_at", "retire_at")
_PERMS = {p.value: p for p in Permission}
_GROUPS = {g.value: g for g in AccountGroup}
_TYPES = {t.value: t for t in ResourceType}
_RUN_MODES = {m.value: m for m in RunMode}
_STATUSES = {s.value: s for s in TokenStatus}


def check_name(name: object) -> str:
    """Validate a record name: 1..200 printable characters, no whitespace."""
    if (
        not isinstance(name, str)
        or not 0 < len(name) <= MAX_NAME_LEN
        or not name.isprintable()
        or any(c.isspace() for c in name)
    ):
        raise UsageError(
            "invalid token name",
            hint=f"Use 1..{MAX_NAME_LEN} printable characters without spaces",
        )
    return name


def scope_to_json(scope: Scope) -> dict[str, Any]:
    """An exact (lossless) JSON form of a scope."""
    return {
        "unscoped": scope.unscoped,
        "account": {g.value: sorted(p.value for p in perms) for g, perms in scope.account.items()},
        "resources": [r.to_api() for r in scope.resources],
        "actorRunMode": scope.actor_run_mode.value,
        "defaultRunStorageAccess": scope.default_run_storage_access,
    }


def scope_from_json(raw: Any) -> Scope:
    """Inverse of :func:`scope_to_json` (raises ``ValueError``/``KeyError``/``TypeError``)."""
    if not isinstance(raw, dict) or set(raw) != {
        "unscoped",
        "account",
        "resources",
        "actorRunMode",
        "defaultRunStorageAccess",
    }:
        raise ValueError("bad scope")
    account = raw["account"]
    resources = raw["resources"]
    if not isinstance(account, dict) or not isinstance(resources, list):
        raise ValueError("bad scope")
    for r in resources:
        if not isinstance(r, dict) or set(r) != {"type", "id", "permissions"}:
            raise ValueError("bad grant")
        if not isinstance(r["id"], str) or not isinstance(r["permissions"], list):
            raise ValueError("bad grant")
    if not isinstance(raw["unscoped"], bool) or not isinstance(
        raw["defaultRunStorageAccess"], bool
    ):
        raise ValueError("bad scope")
    # Plain dict lookups instead of Enum(value) calls: loading 10,000 records is 2x faster.
    return Scope(
        account={
            _GROUPS[g]: frozenset([_PERMS[p] for p in _list(perms)]) for g, perms in account.items()
        },
        resources=tuple(
            [
                ResourceGrant(
                    type=_TYPES[r["type"]],
                    id=r["id"],
                    permissions=frozenset([_PERMS[p] for p in r["permissions"]]),
                )
                for r in resources
            ]
        ),
        actor_run_mode=_RUN_MODES[raw["actorRunMode"]],
        default_run_storage_access=raw["defaultRunStorageAccess"],
        unscoped=raw["unscoped"],
    )


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("expected a list")
    return value


def _date(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def encode_record(record: TokenRecord) -> bytes:
    """One record as a single line of compact JSON (raises UsageError on bad values)."""
    check_name(record.name)
    if not isinstance(record.secret, Secret) or not record.secret:
        raise UsageError("a token record needs a non-empty Secret")
    obj = {
        "name": record.name,
        "secret": record.secret.reveal(),
        "status": TokenStatus(record.status).value,
        "policy": record.policy,
        "scope": None if record.scope is None else scope_to_json(record.scope),
        "created_at": _date(record.created_at),
        "expires_at": _date(record.expires_at),
        "rotated_at": _date(record.rotated_at),
        "retire_at": _date(record.retire_at),
        "issuer_id": record.issuer_id,
        "policy_digest": record.policy_digest,
        "compromised": bool(record.compromised),
        "notes": record.notes,
        "meta": dict(record.meta),
    }
    try:
        # ensure_ascii keeps every line free of raw newlines and of invalid surrogates.
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
    except (TypeError, ValueError):
        # The message could quote a value; keep it generic.
        raise UsageError(
            f"token record {record.name!r} has values that cannot be stored",
            hint="meta must be JSON data (strings, numbers, lists, objects)",
        ) from None


def encode_payload(lines: list[bytes], count: int) -> bytes:
    """The payload from already encoded record lines."""
    head = json.dumps({"schema": SCHEMA, "count": count}, separators=(",", ":")).encode()
    return b"\n".join([head, *lines])


def _bad(what: str) -> VaultFormatError:
    # Never quote payload content: it holds secrets.
    return VaultFormatError(
        f"vault payload is invalid: {what}",
        hint="The file decrypted but its content is damaged; restore a backup",
    )


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj[key]
    if value is not None and not isinstance(value, str):
        raise ValueError(key)
    return value


def decode_record(line: bytes) -> TokenRecord:
    """Parse one record line (raises VaultFormatError without quoting the content)."""
    try:
        obj = json.loads(line, parse_constant=_reject_constant)
        if not isinstance(obj, dict) or obj.keys() != _FIELD_SET:
            raise ValueError("fields")
        name = obj["name"]
        check_name(name)
        secret = obj["secret"]
        if not isinstance(secret, str) or not secret:
            raise ValueError("secret")
        notes = obj["notes"]
        meta = obj["meta"]
        if (
            not isinstance(notes, str)
            or not isinstance(meta, dict)
            or not isinstance(obj["compromised"], bool)
        ):
            raise ValueError("types")
        dates: dict[str, datetime | None] = {}
        for key in _DATES:
            raw = _opt_str(obj, key)
            dates[key] = None if raw is None else datetime.fromisoformat(raw)
        return TokenRecord(
            name=name,
            secret=Secret(secret),
            status=_STATUSES[obj["status"]],
            policy=_opt_str(obj, "policy"),
            scope=None if obj["scope"] is None else scope_from_json(obj["scope"]),
            created_at=dates["created_at"],
            expires_at=dates["expires_at"],
            rotated_at=dates["rotated_at"],
            retire_at=dates["retire_at"],
            issuer_id=_opt_str(obj, "issuer_id"),
            policy_digest=_opt_str(obj, "policy_digest"),
            compromised=obj["compromised"],
            notes=notes,
            meta=meta,
        )
    except (ValueError, KeyError, TypeError, UsageError, RecursionError):
        raise _bad("a token record does not match the schema") from None


def _reject_constant(name: str) -> float:
    if name:
        raise ValueError("constant")
    return math.nan  # pragma: no cover - never reached


def decode_payload(
    payload: bytes, known: Mapping[bytes, TokenRecord] | None = None
) -> list[tuple[TokenRecord, bytes]]:
    """All records with the exact line each came from (for reuse on the next save).

    ``known`` maps lines already decoded (the previous state) to their records; those are
    reused, so re-reading a large vault after another process changed one record is cheap.
    """
    known = known or {}
    lines = payload.split(b"\n")
    try:
        head = json.loads(lines[0])
    except (ValueError, RecursionError):
        raise _bad("bad payload header") from None
    if (
        not isinstance(head, dict)
        or head.keys() != {"schema", "count"}
        or type(head["count"]) is not int
    ):
        raise _bad("bad payload header")
    if head["schema"] != SCHEMA:
        raise _bad("unknown payload schema")
    body = lines[1:]
    if head["count"] != len(body):
        raise _bad("record count mismatch")
    # Thousands of small objects would trigger needless cyclic-GC passes; none are cycles.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        out = [(known.get(line) or decode_record(line), line) for line in body]
    finally:
        if gc_was_enabled:
            gc.enable()
    names = [r.name for r, _ in out]
    if len(set(names)) != len(names):
        raise _bad("duplicate token names")
    return out
