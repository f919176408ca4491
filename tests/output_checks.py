"""Shared checks on what a command printed: it succeeded, and no token-shaped string leaked.

The checks only ever put redacted text into an assertion message, so a failure cannot print
the secret it is about.
"""

from __future__ import annotations

import subprocess

from tokenguard.secrets import TOKEN_PATTERN, redact


def has_token(text: str) -> bool:
    """Whether ``text`` holds a token-shaped string (a bool: a failing assert names no secret)."""
    return TOKEN_PATTERN.search(text) is not None


def assert_no_token(text: str, where: str) -> None:
    """Fail, naming ``where`` (never the text), if ``text`` holds a token-shaped string."""
    assert not has_token(text), f"{where} printed a token"


def assert_ran_clean(result: subprocess.CompletedProcess[str], where: str) -> str:
    """Assert a finished subprocess exited 0 and printed no token; return stdout + stderr."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{where} failed:\n{redact(output)}"
    assert_no_token(output, where)
    return output
