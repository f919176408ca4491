"""Property tests: records round-trip exactly; a stateful model of the vault as a dict."""

from __future__ import annotations

import os
import shutil
import tempfile
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
from vault_helpers import vault_env_fixture  # noqa: F401

from tokenguard.errors import RecordNotFoundError
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
