"""The crash-safe rotation state machine: issue -> verify -> promote -> (grace) -> revoke.

Every step ends with a vault write that records it, before the next step starts, so the
vault alone says where a rotation stands and a rerun resumes there. Issuing writes once per
token (the secret must be stored the moment it arrives); the later steps write once per
batch of tokens, which is safe because everything they follow is read-only (probes) or
idempotent (revoke), so a crash before a batch write is settled by doing it again:

=====================================  ===============================================
vault state found                      what the next run does
=====================================  ===============================================
active, due, nothing pending           issue a replacement (a new rotation)
pending, not verified                  verify it again (probes are read-only)
pending, verified                      promote it
retiring, ``retire_at`` passed         revoke it on the platform (404 = already gone),
                                       mark it revoked
failed, not yet revoked on platform    revoke it, note that it is gone
platform token with our rotation       an orphan: issued, then the process died before
marker, unknown to the vault           the vault write. Its secret was shown once and
                                       is lost, so it cannot be adopted: revoke it
=====================================  ===============================================

Every platform call is idempotent on resume: revoke treats "already gone" as done, probes
change nothing, and a replacement is only issued when the vault holds no pending one (an
issued-but-unstored one is an orphan, revoked as above, so it is never duplicated).
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from tokenguard.api.client import ApifyApi
from tokenguard.api.issuer import TokenInfo, TokenIssuer
from tokenguard.errors import ExitCode, TokenGuardError
from tokenguard.policy.model import TokenPolicy
from tokenguard.policy.plan import PolicyVault, issue_token, record_serial
from tokenguard.rotation.due import DueReason
from tokenguard.rotation.verify import DEFAULT_MAX_PROBES, VerifyResult, verify_token
from tokenguard.vault.records import TokenRecord, TokenStatus

#: Test-only hook: ``issue``, ``verify``, ``promote`` or ``revoke`` ends the process right
#: after that step's vault write, as a crash would; ``issue-api`` and ``revoke-api`` end it
#: after the platform call and before the vault write. Tests set it on a CLI subprocess;
#: nothing else should.
CRASH_ENV = "TOKENGUARD_TEST_CRASH_AFTER"
CRASH_EXIT_CODE = 86

#: Tag in the platform description of every token a rotation issues, followed by the
#: rotation ID: how a crashed run's unstored replacement is found again.
ROTATION_MARKER = "tokenguard-rotation:"
_MARKER_RE = re.compile(r"\[" + re.escape(ROTATION_MARKER) + r"([0-9a-f]+)\]")

Clock = Callable[[], datetime]


class RotationStepError(TokenGuardError):
    """A step cannot be carried out for one token (reported on its row; the run exits 1)."""

    exit_code = ExitCode.FINDINGS


def utc_now() -> datetime:
    """The real clock (timezone-aware UTC)."""
    return datetime.now(UTC)


class RotationVault(PolicyVault, Protocol):
    """What rotation needs from the vault (the policy engine's part, and more)."""

    def update(self, fn: Callable[[dict[str, TokenRecord]], None]) -> object:
        """Read-modify-write under the vault's write lock."""
        ...

    def reload(self) -> object:
        """Re-read the file."""
        ...

    def rotation_lock(self, timeout: float) -> AbstractContextManager[object]:
        """The long-held lock that keeps two rotations apart."""
        ...


@dataclass(frozen=True, slots=True)
class StepContext:
    """Everything the steps talk to, with the clock and sleep injectable for tests."""

    vault: RotationVault
    issuer: TokenIssuer
    api: ApifyApi
    clock: Clock = utc_now
    sleep: Callable[[float], None] = time.sleep
    max_probes: int = DEFAULT_MAX_PROBES
    verify_retries: int = 2


def checkpoint(point: str) -> None:
    """Die here when the test hook asks for it (after ``point``'s vault write)."""
    if os.environ.get(CRASH_ENV) == point:
        os._exit(CRASH_EXIT_CODE)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def serial_of(record_name: str, policy_name: str) -> int | None:
    """``n`` of a record named ``<policy>.<n>``, else None."""
    return record_serial(policy_name, record_name)


def rotation_id_of(info: TokenInfo) -> str | None:
    """The rotation ID in a platform token's description, if a rotation issued it."""
    match = _MARKER_RE.search(info.description or "")
    return match.group(1) if match else None


def find_orphans(platform: Iterable[TokenInfo], records: Iterable[TokenRecord]) -> list[TokenInfo]:
    """Platform tokens a rotation issued that the vault does not know (lost in a crash).

    Only tokens carrying the rotation marker count: a token ``policy apply`` is creating
    right now is not ours to judge (``policy plan`` sweeps its own orphans by name).
    """
    known = {r.issuer_id for r in records if r.issuer_id}
    return [t for t in platform if t.id not in known and rotation_id_of(t) is not None]


def issue(
    ctx: StepContext,
    policy: TokenPolicy,
    replaces: TokenRecord,
    reasons: Sequence[DueReason],
    *,
    platform: Sequence[TokenInfo] = (),
) -> TokenRecord:
    """Step 1: issue a replacement and store it as ``pending`` before anything else.

    Issued by the policy engine's :func:`~tokenguard.policy.issue_token`, so names and
    records are exactly those of ``policy apply`` (``n`` above every serial in the vault
    and in ``platform``), and ``policy plan`` sees the new token as unchanged. The platform
    description carries the rotation marker, which is how a crashed run's unstored
    replacement is found again.
    """
    rotation_id = uuid.uuid4().hex[:16]
    record = issue_token(
        policy,
        ctx.issuer,
        ctx.vault,
        now=ctx.clock(),
        status=TokenStatus.PENDING,
        platform=platform,
        tag=f"[{ROTATION_MARKER}{rotation_id}]",
        meta={
            "rotation_id": rotation_id,
            "replaces": replaces.name,
            "reasons": [r.value for r in reasons],
        },
        after_issue=lambda: checkpoint("issue-api"),
    )
    checkpoint("issue")
    return record


def probe(ctx: StepContext, pending: TokenRecord) -> VerifyResult:
    """Step 2a: probe the pending token (read-only; nothing is written)."""
    scope = pending.scope
    assert scope is not None, "rotation always stores the scope it issued"
    return verify_token(
        ctx.api,
        pending.secret,
        scope,
        limit=ctx.max_probes,
        retries=ctx.verify_retries,
        sleep=ctx.sleep,
    )


def is_verified(record: TokenRecord) -> bool:
    """True when a pending record's verification was recorded."""
    return "verified_at" in record.meta


def revoke_replacement(ctx: StepContext, pending: TokenRecord) -> None:
    """A replacement failed verification: revoke it on the platform (404 = already gone).

    Revoked before it is marked ``failed``: a crash in between leaves a pending record whose
    (dead) token fails verification again on the next run, which comes back here.
    """
    if pending.issuer_id:
        ctx.issuer.revoke(pending.issuer_id)


def record_verification(
    ctx: StepContext,
    verified: Sequence[TokenRecord],
    failed: Sequence[tuple[TokenRecord, str]],
) -> None:
    """Step 2b, one vault write for a batch: ``verified_at`` on the replacements that passed,
    ``failed`` (with the reason) on those that did not and were revoked.
    """
    if not verified and not failed:
        return
    now = _iso(ctx.clock())

    def apply(records: dict[str, TokenRecord]) -> None:
        for pending in verified:
            current = records.get(pending.name)
            if current is not None and current.status is TokenStatus.PENDING:
                records[pending.name] = current.evolve(meta={**current.meta, "verified_at": now})
        for pending, error in failed:
            current = records.get(pending.name)
            if current is not None and current.status is TokenStatus.PENDING:
                meta = {
                    **current.meta,
                    "failure": error,
                    "failed_at": now,
                    "platform_revoked": bool(current.issuer_id),
                }
                records[pending.name] = current.evolve(status=TokenStatus.FAILED, meta=meta)

    ctx.vault.update(apply)
    checkpoint("verify")


def promote(
    ctx: StepContext, batch: Sequence[tuple[TokenRecord, TokenPolicy]]
) -> dict[str, list[TokenRecord]]:
    """Step 3, one atomic vault write: each replacement becomes its policy's only active token.

    Every other active token of the policy becomes ``retiring`` until now + grace (at once
    when it is marked compromised). Returns, per promoted record name, the records retired.
    """
    if not batch:
        return {}
    now = ctx.clock()
    retired: dict[str, list[TokenRecord]] = {}

    def apply(records: dict[str, TokenRecord]) -> None:
        retired.clear()
        for pending, policy in batch:
            current = records.get(pending.name)
            if current is None or current.status is not TokenStatus.PENDING:
                continue
            meta = {**current.meta, "promoted_at": _iso(now)}
            records[pending.name] = current.evolve(status=TokenStatus.ACTIVE, meta=meta)
            retired[pending.name] = []
            for other in list(records.values()):
                if (
                    other.policy == policy.name
                    and other.status is TokenStatus.ACTIVE
                    and other.name != pending.name
                ):
                    grace = timedelta(0) if other.compromised else policy.grace
                    retiring = other.evolve(
                        status=TokenStatus.RETIRING, rotated_at=now, retire_at=now + grace
                    )
                    records[other.name] = retiring
                    retired[pending.name].append(retiring)

    ctx.vault.update(apply)
    checkpoint("promote")
    return retired


def revoke_on_platform(ctx: StepContext, record: TokenRecord) -> None:
    """Step 4a: revoke a token on the platform (404 = already gone, also fine)."""
    if not record.issuer_id:
        raise RotationStepError(
            f"{record.name} has no platform token ID, so the token API cannot revoke it",
            hint="Revoke it in the Apify Console, then `tokenguard vault remove` it.",
        )
    ctx.issuer.revoke(record.issuer_id)
    checkpoint("revoke-api")


def mark_revoked(ctx: StepContext, records: Sequence[TokenRecord]) -> None:
    """Step 4b, one vault write for a batch revoked on the platform.

    Retiring tokens become ``revoked``; failed replacements get ``platform_revoked``;
    pending replacements (abandoned: their policy changed since they were issued) become
    ``failed``. A crash before this write only means the next run revokes them again
    (404 is fine).
    """
    if not records:
        return
    now = _iso(ctx.clock())

    def apply(stored: dict[str, TokenRecord]) -> None:
        for record in records:
            current = stored.get(record.name)
            if current is None:
                continue
            if current.status is TokenStatus.FAILED:
                stored[record.name] = current.evolve(
                    meta={**current.meta, "platform_revoked": True}
                )
            elif current.status is TokenStatus.PENDING:
                meta = {
                    **current.meta,
                    "failure": "its policy changed before it was promoted",
                    "failed_at": now,
                    "platform_revoked": True,
                }
                stored[record.name] = current.evolve(status=TokenStatus.FAILED, meta=meta)
            elif current.status is TokenStatus.RETIRING:
                stored[record.name] = current.evolve(
                    status=TokenStatus.REVOKED, meta={**current.meta, "revoked_at": now}
                )

    ctx.vault.update(apply)
    checkpoint("revoke")


def needs_platform_revoke(record: TokenRecord) -> bool:
    """A failed replacement whose platform revocation has not been recorded yet."""
    return (
        record.status is TokenStatus.FAILED
        and bool(record.issuer_id)
        and not record.meta.get("platform_revoked", False)
    )
