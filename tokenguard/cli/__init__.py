"""The ``tokenguard`` command line: parse, call the library, render, exit.

Each command family lives in its own module and registers itself on :data:`main`. Errors
derived from :class:`~tokenguard.errors.TokenGuardError` end the process with their exit
code and one-line diagnosis; tracebacks only with ``--verbose``.
"""

from __future__ import annotations

from tokenguard.cli.main import main

__all__ = ["main"]
