"""Shared fixtures: a real sandbox server on loopback, and the hypothesis profiles."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tokenguard.sandbox.testing import SandboxHandle, running_sandbox

settings.register_profile("ci", max_examples=25, deadline=None)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "dev")


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    """A fresh sandbox with the ``demo`` seed (see tokenguard/sandbox/seed.py)."""
    with running_sandbox("demo") as handle:
        yield handle


@pytest.fixture
def empty_sandbox() -> Iterator[SandboxHandle]:
    """A fresh sandbox with only the user and the admin token."""
    with running_sandbox("empty") as handle:
        yield handle


@pytest.fixture(autouse=True)
def _isolated_user_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep every test's vault rollback state and default paths out of the real home."""
    base = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_STATE_HOME", str(base / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(base / "data"))
