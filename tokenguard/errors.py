"""The tokenguard error tree.

Every error knows the process exit code the CLI ends with (DESIGN §3) and a one-line
diagnosis: what happened and what to do next. Messages never carry secrets; callers that wrap
an exception whose text could contain one raise ``from None``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    """Stable process exit codes, documented in the README."""

    OK = 0
    FINDINGS = 1  # audit findings at or above --fail-on, or some rotation items failed
    USAGE = 2  # bad flag, bad input, bad policy file
    VAULT = 3  # vault cannot be opened or written
    API = 4  # API unreachable or management token rejected


class TokenGuardError(Exception):
    """Base of every error tokenguard raises on purpose.

    ``message`` says what happened; ``hint`` says what to do about it.
    """

    exit_code: ClassVar[ExitCode] = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    @property
    def diagnosis(self) -> str:
        """One line: what happened, then what to do."""
        if self.hint:
            return f"{self.message.rstrip('.')}. {self.hint}"
        return self.message

    def __str__(self) -> str:
        return self.diagnosis


class UsageError(TokenGuardError):
    """Bad flags, bad arguments or bad input files (exit 2)."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """Configuration is missing or contradictory (exit 2)."""


class PolicyError(UsageError):
    """A policy file is invalid or breaks a guardrail (exit 2)."""


class VaultError(TokenGuardError):
    """The vault cannot be opened, unlocked, trusted or written (exit 3)."""

    exit_code = ExitCode.VAULT


class VaultLockedError(VaultError):
    """Another process holds the vault lock past the timeout."""


class VaultFormatError(VaultError):
    """The vault file is corrupt, truncated, tampered with or of an unknown format."""


class VaultPermissionError(VaultError):
    """A vault or key file is readable by group or others, or a path is unsafe."""


class VaultUnlockError(VaultError):
    """No unlock method was available, or the key/passphrase is wrong."""


class RecordNotFoundError(VaultError):
    """No token record of that name in the vault."""

    exit_code = ExitCode.USAGE


class ApiError(TokenGuardError):
    """The Apify API (or the sandbox) could not be used (exit 4).

    ``status`` is the HTTP status (0 when none arrived) and ``error_type`` Apify's
    ``error.type`` string, kept intact so callers can branch on it.
    """

    exit_code = ExitCode.API

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status: int = 0,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.error_type = error_type


class ApiUnreachableError(ApiError):
    """No HTTP response: connection refused, DNS failure, timeout."""


class FindingsError(TokenGuardError):
    """Audit findings at or above the --fail-on threshold (exit 1)."""

    exit_code = ExitCode.FINDINGS


class PartialFailureError(TokenGuardError):
    """Some items of a batch (rotation) failed while others succeeded (exit 1)."""

    exit_code = ExitCode.FINDINGS
