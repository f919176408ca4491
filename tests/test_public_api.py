"""The top-level Python API: one sorted ``__all__``, every name importable."""

from __future__ import annotations

import importlib

import tokenguard


def test_all_is_sorted_and_unique() -> None:
    assert tokenguard.__all__ == sorted(set(tokenguard.__all__))


def test_every_public_name_resolves() -> None:
    fresh = importlib.reload(tokenguard)
    for name in fresh.__all__:
        assert getattr(fresh, name) is not None, name
    assert fresh.Vault.__module__.startswith("tokenguard.vault")
    assert callable(fresh.load_policies) and callable(fresh.rotate)
    from tokenguard.audit import audit

    assert callable(audit)


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        tokenguard.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:  # pragma: no cover - the assertion below documents the failure
        raise AssertionError("expected AttributeError")
