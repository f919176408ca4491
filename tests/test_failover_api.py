"""The public surface of tokenguard.failover: one sorted __all__, every name importable."""

from __future__ import annotations

import tokenguard.failover as failover
from tokenguard.errors import ApiError, ExitCode


def _isort_style(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then CamelCase, then the rest.
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_complete() -> None:
    assert list(failover.__all__) == sorted(failover.__all__, key=_isort_style)
    for name in failover.__all__:
        assert getattr(failover, name) is not None, name


def test_no_usable_token_is_an_api_error_with_exit_code_4() -> None:
    assert issubclass(failover.NoUsableToken, ApiError)
    assert issubclass(failover.InsufficientScope, failover.NoUsableToken)
    assert failover.NoUsableToken("x").exit_code is ExitCode.API


def test_the_apify_adapter_is_loaded_lazily() -> None:
    from apify_client import ApifyClient, ApifyClientAsync

    pool = failover.TokenPool()
    assert isinstance(failover.apify_client(pool, api_url="http://127.0.0.1:9"), ApifyClient)
    client = failover.apify_client_async(pool, api_url="http://127.0.0.1:9")
    assert isinstance(client, ApifyClientAsync)


def test_adapter_attempts_drop_a_query_token_and_replace_any_authorization_header() -> None:
    from tokenguard.failover.apify import _Attempts
    from tokenguard.secrets import Secret

    old, new = Secret("apify_api_" + "o" * 36), Secret("apify_api_" + "n" * 36)
    pool = failover.TokenPool([new])
    slot = pool._acquire(None)
    shape = _Attempts(
        "get",
        f"http://h/v2/acts?limit=2&token={old.reveal()}",
        {"AUTHORIZATION": f"Bearer {old.reveal()}", "Accept": "x"},
        False,
    )
    url, headers = shape.for_slot(slot)
    pool._release(slot)
    assert url == "http://h/v2/acts?limit=2"  # the header carries the pool's token
    assert headers == {"Accept": "x", "Authorization": f"Bearer {new.reveal()}"}
    assert shape.path == "/v2/acts" and shape.idempotent
