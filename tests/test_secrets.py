"""Secret and fingerprint behaviour: the value never renders implicitly."""

from __future__ import annotations

import copy
import logging
import pickle

import pytest

from tokenguard.errors import ExitCode, TokenGuardError, VaultError
from tokenguard.secrets import Secret, fingerprint, looks_like_token, redact

TOKEN = "apify_api_" + "A1b2C3d4E5" * 3 + "F6g7H8"


def test_secret_never_renders_its_value(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret(TOKEN)
    rendered = [repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % (secret,)]  # noqa: UP031
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("token %s %r", secret, secret)
    rendered.append(caplog.text)
    rendered.append(repr([secret, {"k": secret}]))
    for text in rendered:
        assert TOKEN not in text
        assert secret.fingerprint in text or "secret" in text
    assert secret.reveal() == TOKEN


def test_secret_refuses_pickling_and_compares_by_value() -> None:
    secret = Secret(TOKEN)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    assert copy.deepcopy(secret) == Secret(TOKEN)
    assert secret != Secret(TOKEN[:-1] + "x")
    assert len({secret, Secret(TOKEN)}) == 1


def test_fingerprint_is_stable_short_and_not_the_token() -> None:
    fp = fingerprint(TOKEN)
    assert fp == fingerprint(TOKEN)
    assert fp.startswith("tg:") and len(fp) == 15
    assert TOKEN[10:] not in fp
    assert fingerprint(TOKEN + "x") != fp


def test_redact_replaces_token_shapes() -> None:
    assert looks_like_token(TOKEN)
    text = f"GET /v2/acts?token={TOKEN} failed"
    out = redact(text)
    assert TOKEN not in out and fingerprint(TOKEN) in out


def test_errors_carry_exit_code_and_diagnosis() -> None:
    err = VaultError("Vault is locked", hint="Retry later")
    assert err.exit_code is ExitCode.VAULT
    assert err.diagnosis == "Vault is locked. Retry later"
    assert isinstance(err, TokenGuardError)
