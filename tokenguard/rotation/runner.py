"""The rotation job over every governed token: plan under the rotation lock, then run.

A run takes the rotation lock (so overlapping scheduler runs never rotate a token twice),
re-reads the vault, decides per policy what is due or half-done, and drives each token
through :mod:`tokenguard.rotation.steps`. Nothing due means no API call at all, so running
it from cron every few minutes costs nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from typing import Protocol

from tokenguard.api.client import ApifyApi
from tokenguard.api.issuer import TokenInfo, TokenIssuer
from tokenguard.errors import (
    ApiError,
    ApiUnreachableError,
    RecordNotFoundError,
    TokenGuardError,
    UsageError,
    VaultError,
    VaultLockedError,
)
from tokenguard.policy.model import PLATFORM_NAME_PREFIX, TokenPolicy
from tokenguard.policy.plan import platform_serial
from tokenguard.rotation import steps
from tokenguard.rotation.due import DueReason, due_reasons
from tokenguard.rotation.results import Outcome, RotationReport, RotationResult, Step
from tokenguard.rotation.steps import Clock, RotationVault, StepContext, utc_now
from tokenguard.rotation.verify import DEFAULT_MAX_PROBES, ProbeVerdict
from tokenguard.secrets import redact
from tokenguard.vault.records import TokenRecord, TokenStatus

#: Seconds a run waits for another run's rotation lock before giving up (exit 0).
DEFAULT_WAIT = 5.0

LOCKED_MESSAGE = "another rotation is running; this run did nothing"


class Progress(Protocol):
    """Progress hook (the CLI draws a bar with it); the library never prints."""

    def start(self, total: int) -> None:
        """``total`` tokens have work to do."""
        ...

    def advance(self) -> None:
        """One more token has had its platform calls made."""
        ...


class _Kind(StrEnum):
    ROTATE = "rotate"
    RESUME = "resume"
    REVOKE = "revoke"
    CLEANUP = "cleanup"
    ABANDON = "abandon"  # a pending replacement issued for an older version of its policy


@dataclass(frozen=True, slots=True)
class _Work:
    kind: _Kind
    record: TokenRecord  # the token the row is about (the old one for rotate)
    policy: TokenPolicy | None = None
    reasons: tuple[DueReason, ...] = ()
    pending: TokenRecord | None = None  # resume: the replacement found pending


def _serial_key(record: TokenRecord) -> tuple[int, str]:
    serial = steps.serial_of(record.name, record.policy or "")
    return (serial if serial is not None else -1, record.name)


def _is_fatal(exc: TokenGuardError) -> bool:
    # The vault or the management token/API is unusable: every further token would fail too.
    if isinstance(exc, VaultError):
        return True
    return isinstance(exc, ApiUnreachableError) or (
        isinstance(exc, ApiError) and exc.status in (401, 403)
    )


def _error_text(exc: TokenGuardError) -> str:
    return redact(exc.diagnosis)


def _resolve_compromised(names: Sequence[str], records: Sequence[TokenRecord]) -> list[TokenRecord]:
    """``--now NAME``: a record name, or a policy name meaning its active token."""
    by_name = {r.name: r for r in records}
    out: list[TokenRecord] = []
    for name in names:
        if name in by_name:
            out.append(by_name[name])
            continue
        active = sorted(
            (r for r in records if r.policy == name and r.status is TokenStatus.ACTIVE),
            key=_serial_key,
        )
        if not active:
            raise RecordNotFoundError(
                f"No token record or policy with an active token named {name!r}",
                hint="Give a record name (`tokenguard vault list`) or a policy name.",
            )
        out.append(active[-1])
    return out


class _Run:
    def __init__(
        self,
        ctx: StepContext,
        policies: Sequence[TokenPolicy],
        *,
        compromised: Sequence[str],
        expiring_within: timedelta | None,
        dry_run: bool,
        only_policy: str | None,
        progress: Progress | None,
    ) -> None:
        self.ctx = ctx
        self.policies = {p.name: p for p in policies}
        self.compromised = compromised
        self.expiring_within = expiring_within
        self.dry_run = dry_run
        self.only_policy = only_policy
        self.progress = progress
        self.rows: list[RotationResult] = []  # rows decided while planning
        self.item_rows: list[RotationResult] = []  # one per work item, filled in as it runs
        self.platform: list[TokenInfo] = []
        self.fatal: TokenGuardError | None = None

    # -- planning -------------------------------------------------------------------------

    def _mark_compromised(self, records: list[TokenRecord]) -> list[TokenRecord]:
        targets = _resolve_compromised(self.compromised, records)
        now = self.ctx.clock()
        names = {r.name for r in targets}

        def marked(record: TokenRecord) -> TokenRecord:
            changes: dict[str, object] = {"compromised": True}
            if record.status is TokenStatus.RETIRING:
                changes["retire_at"] = now  # a leaked retiring token gets no more grace
            return record.evolve(**changes)

        if self.dry_run:
            return [marked(r) if r.name in names else r for r in records]

        def apply(stored: dict[str, TokenRecord]) -> None:
            for name in names:
                if name in stored:
                    stored[name] = marked(stored[name])

        # Recorded before anything else: a crash from here on still rotates it next run.
        self.ctx.vault.update(apply)
        return list(self.ctx.vault.list())

    def plan(self) -> list[_Work]:
        records = list(self.ctx.vault.list())
        if self.compromised:
            records = self._mark_compromised(records)
        now = self.ctx.clock()
        work: list[_Work] = []
        wanted = [self.only_policy] if self.only_policy else None

        def governed(record: TokenRecord) -> bool:
            return record.policy is not None and (wanted is None or record.policy in wanted)

        # Old tokens first: revoking after the grace and cleaning up failures are cheap.
        for record in sorted(records, key=lambda r: r.name):
            if not governed(record):
                continue
            if record.status is TokenStatus.RETIRING:
                if record.retire_at is None or record.retire_at <= now:
                    work.append(_Work(_Kind.REVOKE, record))
                else:
                    self.rows.append(
                        RotationResult(
                            name=record.name,
                            policy=record.policy,
                            outcome=Outcome.IN_GRACE,
                            step=Step.PROMOTE,
                            old_fingerprint=record.fingerprint,
                        )
                    )
            elif steps.needs_platform_revoke(record):
                work.append(_Work(_Kind.CLEANUP, record))

        by_policy: dict[str, list[TokenRecord]] = {}
        for record in records:
            if governed(record) and record.policy is not None:
                by_policy.setdefault(record.policy, []).append(record)
        for policy_name in sorted(by_policy):
            group = by_policy[policy_name]
            active = sorted((r for r in group if r.status is TokenStatus.ACTIVE), key=_serial_key)
            pending = sorted((r for r in group if r.status is TokenStatus.PENDING), key=_serial_key)
            current = active[-1] if active else None
            policy = self.policies.get(policy_name)
            if policy is None:
                if current is not None or pending:
                    row_record = current or pending[-1]
                    self.rows.append(
                        RotationResult(
                            name=row_record.name,
                            policy=policy_name,
                            outcome=Outcome.SKIPPED,
                            old_fingerprint=row_record.fingerprint,
                            error=f"policy {policy_name!r} is not in the loaded policy files",
                        )
                    )
                continue
            if pending:
                latest = pending[-1]
                if latest.policy_digest and latest.policy_digest != policy.digest:
                    # The policy changed since a crashed run issued this replacement: promoting
                    # it would hand programs a token with the old scope or lifetime. Revoke
                    # it; the active token is judged below (it is due: its policy changed).
                    work.append(_Work(_Kind.ABANDON, latest, None, (DueReason.POLICY_CHANGED,)))
                else:
                    # A crashed run left a replacement: finish it before judging anything else.
                    work.append(_Work(_Kind.RESUME, current or latest, policy, pending=latest))
                    continue
            if current is None:
                continue  # never applied: `tokenguard policy apply` creates the first token
            reasons = due_reasons(current, policy, now=now, expiring_within=self.expiring_within)
            if reasons:
                work.append(_Work(_Kind.ROTATE, current, policy, reasons))
            else:
                self.rows.append(
                    RotationResult(
                        name=current.name,
                        policy=policy_name,
                        outcome=Outcome.NOT_DUE,
                        old_fingerprint=current.fingerprint,
                    )
                )
        return work

    # -- execution ------------------------------------------------------------------------

    def _sweep_orphans(self, records: Sequence[TokenRecord]) -> None:
        self.platform = platform = self.ctx.issuer.list()
        for orphan in steps.find_orphans(platform, records):
            if self.only_policy and not orphan.name.startswith(
                f"{PLATFORM_NAME_PREFIX}{self.only_policy}/"
            ):
                continue
            if not self.dry_run:
                self.ctx.issuer.revoke(orphan.id)
            parsed = platform_serial(orphan.name)
            self.rows.append(
                RotationResult(
                    name=orphan.name,
                    policy=parsed[0] if parsed else None,
                    outcome=Outcome.WOULD_REVOKE if self.dry_run else Outcome.ORPHAN_REVOKED,
                )
            )

    def _base_row(self, item: _Work) -> RotationResult:
        if item.kind in (_Kind.CLEANUP, _Kind.ABANDON):
            return RotationResult(
                name=item.record.name,
                policy=item.record.policy,
                outcome=Outcome.ERROR,
                step=Step.ISSUE,
                reasons=item.reasons,
                new_fingerprint=item.record.fingerprint,
                new_name=item.record.name,
            )
        row = RotationResult(
            name=item.record.name,
            policy=item.record.policy,
            outcome=Outcome.ERROR,
            step=Step.PROMOTE if item.kind is _Kind.REVOKE else Step.NONE,
            reasons=item.reasons,
            old_fingerprint=item.record.fingerprint,
        )
        if item.pending is not None:
            pending = item.pending
            reasons = tuple(DueReason(r) for r in pending.meta.get("reasons", ()))
            row = replace(
                row,
                step=Step.VERIFY if steps.is_verified(pending) else Step.ISSUE,
                reasons=reasons,
                new_fingerprint=pending.fingerprint,
                new_name=pending.name,
            )
            if item.record is pending:  # no active token to replace
                row = replace(row, old_fingerprint=None)
        return row

    def _failed(self, index: int, exc: TokenGuardError) -> None:
        """Record an error on row ``index``; stop all further work if it is fatal."""
        self.item_rows[index] = replace(
            self.item_rows[index], outcome=Outcome.ERROR, error=_error_text(exc)
        )
        if _is_fatal(exc) and self.fatal is None:
            self.fatal = exc

    def _advance(self) -> None:
        if self.progress is not None:
            self.progress.advance()

    def _revoke_old(self, batch: Sequence[tuple[int, TokenRecord, Outcome, Step]]) -> None:
        """Revoke tokens on the platform one by one, then record them in one write."""
        done: list[tuple[int, TokenRecord, Outcome, Step]] = []
        for index, record, outcome, step in batch:
            if self.fatal is not None:
                break
            try:
                steps.revoke_on_platform(self.ctx, record)
            except TokenGuardError as exc:
                self._failed(index, exc)
                continue
            done.append((index, record, outcome, step))
        if not done:
            return
        try:
            steps.mark_revoked(self.ctx, [record for _, record, _, _ in done])
        except TokenGuardError as exc:
            for index, *_ in done:
                self._failed(index, exc)
            return
        for index, _, outcome, step in done:
            self.item_rows[index] = replace(self.item_rows[index], outcome=outcome, step=step)

    def _execute(self, work: Sequence[_Work]) -> None:
        """Carry out the work in phases; each phase ends with the vault write recording it."""
        ctx = self.ctx
        # Old tokens first: revoking after the grace and cleaning up failures.
        old: list[tuple[int, TokenRecord, Outcome, Step]] = []
        for index, item in enumerate(work):
            if item.kind is _Kind.REVOKE:
                old.append((index, item.record, Outcome.REVOKED, Step.REVOKE))
            elif item.kind in (_Kind.CLEANUP, _Kind.ABANDON):
                old.append((index, item.record, Outcome.REVOKED, Step.ISSUE))
        self._revoke_old(old)
        for _ in old:
            self._advance()

        # Issue (one write per token: the secret is stored the moment it arrives) ...
        pending: list[tuple[int, TokenRecord, TokenPolicy]] = []
        for index, item in enumerate(work):
            if item.policy is None:
                continue
            if item.kind is _Kind.RESUME:
                assert item.pending is not None
                pending.append((index, item.pending, item.policy))
                continue
            if self.fatal is not None:
                self._failed(index, self.fatal)
                self._advance()
                continue
            try:
                record = steps.issue(
                    ctx, item.policy, item.record, item.reasons, platform=self.platform
                )
            except TokenGuardError as exc:
                self._failed(index, exc)
                self._advance()
                continue
            self.item_rows[index] = replace(
                self.item_rows[index],
                step=Step.ISSUE,
                new_fingerprint=record.fingerprint,
                new_name=record.name,
            )
            pending.append((index, record, item.policy))

        # ... verify (read-only probes), recorded in one write ...
        verified: list[tuple[int, TokenRecord, TokenPolicy]] = []
        newly_verified: list[TokenRecord] = []
        failed: list[tuple[int, TokenRecord, str]] = []
        for index, record, policy in pending:
            self._advance()
            if steps.is_verified(record):
                verified.append((index, record, policy))
                continue
            if self.fatal is not None:
                self._failed(index, self.fatal)
                continue
            result = steps.probe(ctx, record)
            if result.verdict is ProbeVerdict.OK:
                verified.append((index, record, policy))
                newly_verified.append(record)
            elif result.verdict is ProbeVerdict.FAILED:
                error = result.error or "verification failed"
                try:
                    steps.revoke_replacement(ctx, record)
                except TokenGuardError as exc:
                    self._failed(index, exc)
                    continue
                failed.append((index, record, error))
            else:
                self.item_rows[index] = replace(
                    self.item_rows[index],
                    outcome=Outcome.ERROR,
                    error=f"{result.error}; the next run verifies {record.name} again",
                )
        try:
            steps.record_verification(
                ctx, newly_verified, [(record, error) for _, record, error in failed]
            )
        except TokenGuardError as exc:
            for index, *_ in [*verified, *failed]:
                self._failed(index, exc)
            return
        for index, record, error in failed:
            self.item_rows[index] = replace(
                self.item_rows[index],
                outcome=Outcome.FAILED,
                error=f"replacement {record.name} revoked: {error}",
            )

        # ... promote, in one atomic write ...
        if self.fatal is not None:
            # The vault or the API is gone: verified replacements stay pending (and verified)
            # for the next run rather than being promoted with nobody to revoke the old ones.
            for index, *_ in verified:
                self._failed(index, self.fatal)
            return
        try:
            retired = steps.promote(ctx, [(record, policy) for _, record, policy in verified])
        except TokenGuardError as exc:
            for index, *_ in verified:
                self._failed(index, exc)
            return
        now = ctx.clock()
        at_once: list[tuple[int, TokenRecord, Outcome, Step]] = []
        for index, record, _ in verified:
            self.item_rows[index] = replace(
                self.item_rows[index], step=Step.PROMOTE, outcome=Outcome.ROTATED
            )
            for old_record in retired.get(record.name, []):
                if old_record.retire_at is not None and old_record.retire_at <= now:
                    at_once.append((index, old_record, Outcome.ROTATED, Step.REVOKE))

        # ... and a compromised old token is revoked at once, without grace.
        self._revoke_old(at_once)

    def run(self) -> RotationReport:
        work = self.plan()
        if self.progress is not None:
            self.progress.start(len(work))
        self.item_rows = [self._base_row(item) for item in work]
        if self.dry_run:
            would = {
                _Kind.ROTATE: Outcome.WOULD_ROTATE,
                _Kind.RESUME: Outcome.WOULD_RESUME,
                _Kind.REVOKE: Outcome.WOULD_REVOKE,
                _Kind.CLEANUP: Outcome.WOULD_REVOKE,
                _Kind.ABANDON: Outcome.WOULD_REVOKE,
            }
            self.item_rows = [
                replace(row, outcome=would[item.kind])
                for row, item in zip(self.item_rows, work, strict=True)
            ]
        if work:
            try:
                self._sweep_orphans(self.ctx.vault.list())
            except TokenGuardError as exc:
                self.fatal = exc
                self.item_rows = [
                    replace(row, outcome=Outcome.ERROR, error=_error_text(exc))
                    for row in self.item_rows
                ]
        if work and not self.dry_run and self.fatal is None:
            self._execute(work)
        rows = sorted([*self.rows, *self.item_rows], key=lambda r: r.name)
        return RotationReport(results=tuple(rows), dry_run=self.dry_run, fatal=self.fatal)


def rotate(
    vault: RotationVault,
    issuer: TokenIssuer,
    policies: Iterable[TokenPolicy],
    *,
    api: ApifyApi,
    only_policy: str | None = None,
    compromised: Sequence[str] = (),
    expiring_within: timedelta | None = None,
    dry_run: bool = False,
    wait: float = DEFAULT_WAIT,
    clock: Clock = utc_now,
    sleep: Callable[[float], None] = time.sleep,
    max_probes: int = DEFAULT_MAX_PROBES,
    progress: Progress | None = None,
) -> RotationReport:
    """Rotate every due token of ``policies`` (or only ``only_policy``'s).

    ``compromised`` names records (or policies, meaning their active token) to mark
    compromised and rotate at once; their old token is revoked in the same run, without
    grace. ``dry_run`` changes nothing anywhere and sends only GETs (it does not take the
    rotation lock either). When another run holds the rotation lock for longer than
    ``wait`` seconds, nothing is done and the report's ``skipped`` says so (exit 0: an
    overlapping scheduler run is not an incident). ``clock`` and ``sleep`` are injectable so
    tests never wait.
    """
    policy_list = list(policies)
    if only_policy is not None and all(p.name != only_policy for p in policy_list):
        raise UsageError(
            f"No policy named {only_policy!r} in the loaded policy files",
            hint="Check --policy and --policies (`tokenguard policy check` lists them).",
        )
    ctx = StepContext(
        vault=vault,
        issuer=issuer,
        api=api,
        clock=clock,
        sleep=sleep,
        max_probes=max_probes,
    )
    job = _Run(
        ctx,
        policy_list,
        compromised=compromised,
        expiring_within=expiring_within,
        dry_run=dry_run,
        only_policy=only_policy,
        progress=progress,
    )
    if dry_run:
        return job.run()
    with ExitStack() as stack:
        try:
            stack.enter_context(vault.rotation_lock(wait))
        except VaultLockedError:
            return RotationReport(skipped=LOCKED_MESSAGE)
        vault.reload()  # the run that held the lock may have just rotated everything
        return job.run()
