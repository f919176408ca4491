"""Property tests: records round-trip exactly; a stateful model of the vault as a dict."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import traceback
from datetime import timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)
from vault_helpers import vault_env_fixture, write_sealed_payload  # noqa: F401

from tokenguard.errors import RecordNotFoundError, UsageError, VaultFormatError
from tokenguard.permissions import (
    AccountGroup,
    Permission,
    ResourceGrant,
    ResourceType,
    RunMode,
    Scope,
)
from tokenguard.secrets import Secret
from tokenguard.vault import TokenRecord, TokenStatus, Unlocker, Vault, codec, kdf

names = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S")),
    min_size=1,
    max_size=40,
)
secrets = st.text(min_size=1, max_size=80)
perms = st.frozensets(st.sampled_from(list(Permission)))
scopes = st.builds(
    Scope,
    account=st.dictionaries(st.sampled_from(list(AccountGroup)), perms),
    resources=st.lists(
        st.builds(
            ResourceGrant,
            type=st.sampled_from(list(ResourceType)),
            id=st.text(max_size=30),
            permissions=perms,
        ),
        max_size=4,
    ).map(tuple),
    actor_run_mode=st.sampled_from(list(RunMode)),
    default_run_storage_access=st.booleans(),
    unscoped=st.booleans(),
)
zones = st.none() | st.integers(-23 * 60 + 1, 23 * 60 - 1).map(
    lambda m: timezone(timedelta(minutes=m))
)
dates = st.none() | st.datetimes(timezones=zones)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
records = st.builds(
    TokenRecord,
    name=names,
    secret=secrets.map(Secret),
    status=st.sampled_from(list(TokenStatus)),
    policy=st.none() | st.text(max_size=20),
    scope=st.none() | scopes,
    created_at=dates,
    expires_at=dates,
    rotated_at=dates,
    retire_at=dates,
    issuer_id=st.none() | st.text(max_size=20),
    policy_digest=st.none() | st.text(max_size=20),
    compromised=st.booleans(),
    notes=st.text(max_size=60),
    meta=st.dictionaries(st.text(max_size=10), json_values, max_size=3),
)


@given(records)
def test_record_codec_round_trip(rec: TokenRecord) -> None:
    line = codec.encode_record(rec)
    assert b"\n" not in line
    assert codec.decode_record(line) == rec


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=20)
@given(st.lists(records, max_size=8, unique_by=lambda r: r.name))
def test_vault_round_trip(vault_env: Path, recs: list[TokenRecord]) -> None:
    with tempfile.TemporaryDirectory(dir=vault_env) as tmp:
        path = Path(tmp) / "v" / "vault.tgv"
        key = Path(tmp) / "key"
        vault = Vault.init(path, key_file=key)
        vault.update(lambda d: d.update({r.name: r for r in recs}))
        reopened = Vault.open(path, unlocker=Unlocker(key_file=key))
        assert reopened.list() == sorted(recs, key=lambda r: r.name)
        # A second save reuses unchanged lines; the result must still be identical.
        reopened.put(TokenRecord(name="\u2603extra", secret=Secret("s")))
        again = Vault.open(path, unlocker=Unlocker(key_file=key))
        assert again.list()[: len(recs)] == reopened.list()[: len(recs)]
        assert again.records() == reopened.records()


simple_names = st.sampled_from([f"tok.{i}" for i in range(6)])


class VaultMachine(RuleBasedStateMachine):
    """The vault behaves like a dict of records through writes, rekeys and reopens."""

    tokens = Bundle("tokens")

    def __init__(self) -> None:
        super().__init__()
        self._weak = kdf.weak_params_for_testing()
        self._weak.__enter__()
        self.dir = Path(tempfile.mkdtemp(prefix="tgv-sm-"))
        # unittest-style runs get no pytest fixtures: isolate the rollback state by hand.
        self._saved_state = os.environ.get("XDG_STATE_HOME")
        os.environ["XDG_STATE_HOME"] = str(self.dir / "state")
        self.path = self.dir / "v" / "vault.tgv"
        self.unlocker = Unlocker(key_file=self.dir / "key0")
        self.vault = Vault.init(self.path, key_file=self.dir / "key0")
        self.other = Vault.open(self.path, unlocker=self.unlocker)
        self.model: dict[str, TokenRecord] = {}
        self.keys = 0
        self.last_generation = self.vault.generation

    def teardown(self) -> None:
        self._weak.__exit__(None, None, None)
        if self._saved_state is None:
            os.environ.pop("XDG_STATE_HOME", None)
        else:
            os.environ["XDG_STATE_HOME"] = self._saved_state
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(target=tokens, name=simple_names, secret=secrets, notes=st.text(max_size=10))
    def put(self, name: str, secret: str, notes: str) -> str:
        rec = TokenRecord(name=name, secret=Secret(secret), notes=notes)
        self.vault.put(rec)
        self.model[name] = rec
        return name

    @rule(name=simple_names, secret=secrets)
    def add(self, name: str, secret: str) -> None:
        rec = TokenRecord(name=name, secret=Secret(secret), policy="added")
        if name in self.model:
            with pytest.raises(UsageError, match="already exists"):
                self.vault.add(rec)
        else:
            self.vault.add(rec)
            self.model[name] = rec

    @rule(name=tokens, status=st.sampled_from(list(TokenStatus)))
    def update_status(self, name: str, status: TokenStatus) -> None:
        def apply(d: dict[str, TokenRecord]) -> None:
            if name in d:
                d[name] = d[name].evolve(status=status)

        self.vault.update(apply)
        if name in self.model:
            self.model[name] = self.model[name].evolve(status=status)

    @rule(name=consumes(tokens))
    def remove(self, name: str) -> None:
        if name in self.model:
            self.vault.remove(name)
            del self.model[name]
        else:
            with pytest.raises(RecordNotFoundError):
                self.vault.remove(name)

    @rule(name=simple_names, secret=secrets)
    def write_from_other_instance(self, name: str, secret: str) -> None:
        rec = TokenRecord(name=name, secret=Secret(secret), policy="other")
        self.other.put(rec)
        self.model[name] = rec

    @rule(use_passphrase=st.booleans())
    def rekey(self, use_passphrase: bool) -> None:
        self.keys += 1
        if use_passphrase:
            passphrase = Secret(f"pass {self.keys}")
            self.vault.rekey(passphrase=passphrase)
            self.unlocker = Unlocker(passphrase=passphrase)
        else:
            key = self.dir / f"key{self.keys}"
            self.vault.rekey(key_file=key)
            self.unlocker = Unlocker(key_file=key)
        self.other = Vault.open(self.path, unlocker=self.unlocker)

    @rule()
    def reopen(self) -> None:
        self.vault = Vault.open(self.path, unlocker=self.unlocker)

    @precondition(lambda self: self.model)
    @rule()
    def reload(self) -> None:
        self.vault.reload()

    @invariant()
    def matches_model(self) -> None:
        self.vault.reload()
        assert self.vault.records() == self.model
        assert [r.name for r in self.vault.list()] == sorted(self.model)
        assert self.vault.generation >= self.last_generation
        self.last_generation = self.vault.generation


TestVaultMachine = VaultMachine.TestCase
TestVaultMachine.settings = settings(
    settings(),
    max_examples=min(settings().max_examples, 30),
    stateful_step_count=25,
    deadline=None,
)


_LEAK = "apify_api_" + "Z" * 36
_GOOD = {
    "name": "n",
    "secret": _LEAK,
    "status": "active",
    "policy": None,
    "scope": None,
    "created_at": None,
    "expires_at": None,
    "rotated_at": None,
    "retire_at": None,
    "issuer_id": None,
    "policy_digest": None,
    "compromised": False,
    "notes": "",
    "meta": {},
}
_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.just(_LEAK),
    st.just("2026-13-45T99:00" + _LEAK),
    st.lists(st.just(_LEAK), max_size=2),
    st.dictionaries(st.sampled_from(["actors", "x", "type", "id"]), st.just([_LEAK]), max_size=2),
)
_bad_lines = st.one_of(
    st.binary(max_size=60).map(lambda b: b + _LEAK.encode()),
    st.fixed_dictionaries({}, optional=dict.fromkeys(_GOOD, _junk)).map(
        lambda changes: json.dumps({**_GOOD, **changes}).encode()
    ),
    st.sampled_from(sorted(_GOOD)).map(
        lambda k: json.dumps({f: v for f, v in _GOOD.items() if f != k}).encode()
    ),
)


@pytest.fixture(scope="module")
def sealed_vault(tmp_path_factory: pytest.TempPathFactory) -> Vault:
    root = tmp_path_factory.mktemp("sealed")
    return Vault.init(root / "v" / "vault.tgv", key_file=root / "key")


@settings(max_examples=min(settings().max_examples, 60))
@given(lines=st.lists(_bad_lines, min_size=1, max_size=3), count_off=st.integers(0, 1))
def test_authenticated_but_malformed_payload(
    sealed_vault: Vault, lines: list[bytes], count_off: int
) -> None:
    """A payload that passes the AEAD but breaks the schema: VaultFormatError, never
    another exception, and no payload content in the message or the chained traceback."""
    head = json.dumps({"schema": 1, "count": len(lines) + count_off}).encode()
    write_sealed_payload(sealed_vault, b"\n".join([head, *lines]))
    try:
        opened = Vault.open(sealed_vault.path, unlocker=Unlocker(key_file=_key(sealed_vault)))
    except VaultFormatError as exc:
        rendered = "".join(traceback.format_exception(exc))
        assert _LEAK not in rendered
        assert "Z" * 36 not in rendered
    else:  # only a payload that really is valid may open
        assert count_off == 0
        for rec in opened.list():
            codec.encode_record(rec)  # and it can be written back


def test_decode_errors_hide_their_cause(sealed_vault: Vault) -> None:
    bad_date = json.dumps({**_GOOD, "expires_at": "not a date " + _LEAK}).encode()
    write_sealed_payload(sealed_vault, b'{"schema":1,"count":1}\n' + bad_date)
    with pytest.raises(VaultFormatError) as info:
        Vault.open(sealed_vault.path, unlocker=Unlocker(key_file=_key(sealed_vault)))
    assert info.value.__suppress_context__
    assert _LEAK not in "".join(traceback.format_exception(info.value))
    # The decoder itself, not only Vault.open (which re-raises with a backup hint).
    for decode in (codec.decode_record, codec.decode_payload):
        line = bad_date if decode is codec.decode_record else b"[" * 100_000
        with pytest.raises(VaultFormatError) as info:
            decode(line)  # type: ignore[operator]
        assert info.value.__suppress_context__
        assert _LEAK not in "".join(traceback.format_exception(info.value))


def _key(vault: Vault) -> Path:
    return vault.path.parent.parent / "key"
