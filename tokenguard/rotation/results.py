"""What a rotation run reports: per-token results and the run as a whole."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tokenguard.errors import ExitCode, TokenGuardError
from tokenguard.rotation.due import DueReason


class Step(StrEnum):
    """The last rotation step completed (and recorded in the vault) for a token."""

    NONE = "none"
    ISSUE = "issue"  # replacement issued, stored as pending
    VERIFY = "verify"  # replacement verified by read-only probes
    PROMOTE = "promote"  # replacement active, old token retiring
    REVOKE = "revoke"  # old token revoked on the platform and marked revoked


class Outcome(StrEnum):
    """What happened to a token in this run."""

    NOT_DUE = "not-due"
    IN_GRACE = "in-grace"  # retiring, still valid until its retire_at
    ROTATED = "rotated"  # a verified replacement is active; the old one is retiring
    REVOKED = "revoked"  # the grace passed; the old token is revoked
    FAILED = "failed"  # the replacement failed verification; it was revoked, the old stays
    ERROR = "error"  # an API error stopped this token; the next run resumes it
    ORPHAN_REVOKED = "orphan-revoked"  # a replacement lost in a crash before it was stored
    SKIPPED = "skipped"  # not governed by a loaded policy
    WOULD_ROTATE = "would-rotate"  # --dry-run
    WOULD_RESUME = "would-resume"  # --dry-run: a crashed rotation would be finished
    WOULD_REVOKE = "would-revoke"  # --dry-run

    @property
    def is_failure(self) -> bool:
        """True for outcomes that make the run exit 1."""
        return self in (Outcome.FAILED, Outcome.ERROR)


@dataclass(frozen=True, slots=True)
class RotationResult:
    """One token's row in the report; fingerprints only, never secrets."""

    name: str
    policy: str | None
    outcome: Outcome
    step: Step = Step.NONE
    reasons: tuple[DueReason, ...] = ()
    old_fingerprint: str | None = None
    new_fingerprint: str | None = None
    new_name: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object for log pipelines."""
        return {
            "name": self.name,
            "policy": self.policy,
            "reasons": [r.value for r in self.reasons],
            "fingerprint_old": self.old_fingerprint,
            "fingerprint_new": self.new_fingerprint,
            "new_name": self.new_name,
            "step": self.step.value,
            "outcome": self.outcome.value,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class RotationReport:
    """A whole run: its rows, and why it stopped early if it did.

    ``skipped`` is set when another rotation held the rotation lock (nothing was done);
    ``fatal`` when the vault or the API became unusable part-way (rows before it stand).
    """

    results: tuple[RotationResult, ...] = ()
    dry_run: bool = False
    skipped: str | None = None
    fatal: TokenGuardError | None = None

    @property
    def failures(self) -> tuple[RotationResult, ...]:
        """Rows whose outcome makes the run exit 1."""
        return tuple(r for r in self.results if r.outcome.is_failure)

    @property
    def exit_code(self) -> ExitCode:
        """0 all done or nothing due (or another run busy), 1 some failed, 3/4 fatal."""
        if self.fatal is not None:
            return self.fatal.exit_code
        return ExitCode.FINDINGS if self.failures else ExitCode.OK

    def count(self, outcome: Outcome) -> int:
        """How many rows ended with ``outcome``."""
        return sum(1 for r in self.results if r.outcome is outcome)
