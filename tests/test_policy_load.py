"""Policy files -> validated policies: every error type, locations, guardrails, notes, CLI check."""

from __future__ import annotations

import contextlib
import json
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from tokenguard.cli import main
from tokenguard.errors import PolicyError
from tokenguard.permissions import AccountGroup, Permission, ResourceType, RunMode, Scope
from tokenguard.policy import (
    PolicyValidationError,
    Severity,
    format_duration,
    load_policies,
    load_policies_from_text,
    parse_duration,
)
from tokenguard.policy.lines import scan_key_lines

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "policies"

GOOD = """\
[[token]]
name = "ci-scraper"
description = "CI: run the scraper, read its results"
expires_after = "30d"
rotate_after = "7d"
grace = "24h"
actor_run_mode = "restricted"
default_run_storage_access = false
labels = { owner = "data-team" }

[token.account]
storages = ["read"]

[[token.resource]]
type = "actor"
id = "demo~web-scraper"
permissions = ["run"]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path | list[Path]) -> list[str]:
    paths = path if isinstance(path, list) else [path]
    with pytest.raises(PolicyValidationError) as info:
        load_policies(paths)
    assert isinstance(info.value, PolicyError)
    assert info.value.exit_code == 2
    return [p.render() for p in info.value.problems]


# --- the good path ---------------------------------------------------------------------------


def test_good_policy_loads_into_typed_objects(tmp_path: Path) -> None:
    path = write(tmp_path, "ci.toml", GOOD)
    policies = load_policies([path])
    assert policies.names == ("ci-scraper",)
    p = policies.get("ci-scraper")
    assert p is not None
    assert policies.get("nope") is None
    assert p.expires_after == timedelta(days=30)
    assert p.rotate_after == timedelta(days=7)
    assert p.grace == timedelta(hours=24)
    assert p.labels == {"owner": "data-team"}
    assert p.source == path
    assert p.line == 1
    assert p.scope.account == {AccountGroup.STORAGES: frozenset({Permission.READ})}
    (grant,) = p.scope.resources
    assert (grant.type, grant.id, grant.permissions) == (
        ResourceType.ACTOR,
        "demo~web-scraper",
        frozenset({Permission.RUN}),
    )
    assert p.scope.actor_run_mode is RunMode.RESTRICTED
    assert p.digest.startswith("sha256:")
    # The location of keys is known for later stages (plan errors).
    assert p.location("resource", 0, "id").line == 16
    assert p.location("labels").line == 9


def test_defaults_and_unscoped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.toml",
        """\
        [[token]]
        name = "admin"
        unscoped = true

        [[token]]
        name = "minimal"
        """,
    )
    policies = load_policies(path)  # a single path works too
    admin, minimal = policies.policies
    assert admin.scope == Scope.full()
    assert admin.expires_after is None and admin.rotate_after is None
    assert minimal.grace == timedelta(hours=24)
    assert minimal.scope.unscoped is False
    notes = [n.render() for n in policies.notes]
    assert any("unscoped" in n and "admin" in n for n in notes)
    assert any("grants nothing" in n for n in notes)


def test_directory_loads_toml_files_in_order_and_default_path(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "policies").mkdir()
    write(tmp_path / "policies", "b.toml", GOOD)
    write(
        tmp_path / "policies",
        "a.toml",
        '[[token]]\nname = "first"\nexpires_after = "1h"\n',
    )
    (tmp_path / "policies" / "notes.txt").write_text("not a policy")
    monkeypatch.chdir(tmp_path)
    policies = load_policies()  # default: policies/
    assert policies.names == ("first", "ci-scraper")
    assert [f.name for f in policies.files] == ["a.toml", "b.toml"]
    # The same file given twice counts once (no "duplicate name" error).
    again = load_policies(["policies", "policies/a.toml"])
    assert again.names == ("first", "ci-scraper")


def test_digest_tracks_scope_and_lifetime_only() -> None:
    base = load_policies_from_text(GOOD).policies[0]
    reformatted = load_policies_from_text(
        GOOD.replace('storages = ["read"]', 'storages = [ "read", "read" ]')
        .replace("CI: run", "CI job: run")
        .replace('owner = "data-team"', 'owner = "ops"')
        .replace('rotate_after = "7d"', 'rotate_after = "168h"')
    ).policies[0]
    assert reformatted.digest == base.digest
    for old, new in [
        ('storages = ["read"]', 'storages = ["read", "write"]'),
        ('expires_after = "30d"', 'expires_after = "29d"'),
        ('permissions = ["run"]', 'permissions = ["run", "read"]'),
        ('actor_run_mode = "restricted"', 'actor_run_mode = "full"'),
        ("default_run_storage_access = false", "default_run_storage_access = true"),
    ]:
        changed = load_policies_from_text(GOOD.replace(old, new)).policies[0]
        assert changed.digest != base.digest, new


# --- every error type, with file, line, policy and key path ---------------------------------

CORPUS: dict[str, tuple[str, int, str]] = {
    # name: (document, line of the problem, expected text in the rendered problem)
    "syntax": ('[[token]]\nname = "x"\nexpires_after = \n', 3, "TOML syntax error"),
    "syntax-unclosed-table": ("[[token]\nname = 1\n", 1, "TOML syntax error"),
    "unknown-top-level": ('[[token]]\nname = "x"\n\n[tokens]\na = 1\n', 4, "unknown top-level key"),
    "token-not-array": ('[token]\nname = "x"\n', 1, "array table [[token]]"),
    "unknown-token-key": (
        '[[token]]\nname = "x"\nexpire_after = "1d"\n',
        3,
        "token[0].expire_after: unknown key 'expire_after' (did you mean 'expires_after'?",
    ),
    "missing-name": ('[[token]]\nexpires_after = "1d"\n', 1, "missing required key 'name'"),
    "name-type": ("[[token]]\nname = 5\n", 2, "token[0].name: expected a string, got an integer"),
    "name-pattern": ('[[token]]\nname = "a.b"\n', 2, "invalid name 'a.b'"),
    "duration-type": (
        '[[token]]\nname = "x"\nexpires_after = 30\n',
        3,
        "policy 'x': token[0].expires_after: expected a duration string, got an integer",
    ),
    "duration-unit": (
        '[[token]]\nname = "x"\n\nrotate_after = "3 days"\n',
        4,
        "token[0].rotate_after: '3 days' is not a duration",
    ),
    "duration-zero": ('[[token]]\nname = "x"\nexpires_after = "0s"\n', 3, "longer than zero"),
    "rotate-after-expiry": (
        '[[token]]\nname = "x"\nexpires_after = "1d"\nrotate_after = "2d"\n',
        4,
        "must be shorter than expires_after",
    ),
    "bool-type": (
        '[[token]]\nname = "x"\ndefault_run_storage_access = "no"\n',
        3,
        "default_run_storage_access: expected true or false, got a string",
    ),
    "run-mode": (
        '[[token]]\nname = "x"\nactor_run_mode = "FULL"\n',
        3,
        "invalid run mode 'FULL' (valid: restricted, full)",
    ),
    "labels-type": (
        '[[token]]\nname = "x"\nlabels = { owner = 1 }\n',
        3,
        "token[0].labels.owner: label values are strings",
    ),
    "description-long": (
        '[[token]]\nname = "x"\ndescription = "' + "d" * 161 + '"\n',
        3,
        "too long (161 characters; at most 160)",
    ),
    "account-group": (
        '[[token]]\nname = "x"\n[token.account]\nstorage = ["read"]\n',
        4,
        "token[0].account.storage: unknown account group 'storage' (did you mean 'storages'?",
    ),
    "account-permission-unknown": (
        '[[token]]\nname = "x"\n[token.account]\nstorages = ["read", "delete"]\n',
        4,
        "token[0].account.storages[1]: unknown permission 'delete' for account group storages "
        "(valid: create, read, write)",
    ),
    "account-permission-not-allowed": (
        '[[token]]\nname = "x"\n[token.account]\nactors = ["create"]\n',
        4,
        "account group actors does not take 'create' (scoped tokens can never create or modify",
    ),
    "account-permissions-type": (
        '[[token]]\nname = "x"\n[token.account]\ntasks = "read"\n',
        4,
        "token[0].account.tasks: expected an array of permissions, got a string",
    ),
    "empty-permissions": (
        '[[token]]\nname = "x"\n[token.account]\ntasks = []\n',
        4,
        "empty permission list grants nothing",
    ),
    "resource-type": (
        '[[token]]\nname = "x"\n[[token.resource]]\ntype = "bucket"\nid = "a"\n'
        'permissions = ["read"]\n',
        4,
        "token[0].resource[0].type: unknown resource type 'bucket'",
    ),
    "resource-permission": (
        '[[token]]\nname = "x"\n[[token.resource]]\ntype = "actor"\nid = "a"\n'
        'permissions = ["write"]\n',
        6,
        "token[0].resource[0].permissions[0]: actor does not take 'write' (scoped tokens can never"
        " modify Actors) (valid: read, run)",
    ),
    "resource-run-on-dataset": (
        '[[token]]\nname = "x"\n[[token.resource]]\ntype = "dataset"\nid = "a"\n'
        'permissions = ["run"]\n',
        6,
        "dataset does not take 'run' (valid: read, write)",
    ),
    "resource-missing-key": (
        '[[token]]\nname = "x"\n[[token.resource]]\ntype = "dataset"\n',
        3,
        "token[0].resource[0]: missing required key(s) id, permissions",
    ),
    "resource-unknown-key": (
        '[[token]]\nname = "x"\n[[token.resource]]\ntype = "dataset"\nid = "a"\n'
        'permissions = ["read"]\nname = "n"\n',
        7,
        "token[0].resource[0].name: unknown key 'name'",
    ),
    "resource-id": (
        '[[token]]\nname = "x"\n[[token.resource]]\ntype = "dataset"\nid = "a/b"\n'
        'permissions = ["read"]\n',
        5,
        "invalid resource reference 'a/b': use an ID or username~name",
    ),
    "resource-duplicate": (
        '[[token]]\nname = "x"\n'
        '[[token.resource]]\ntype = "dataset"\nid = "a"\npermissions = ["read"]\n'
        '[[token.resource]]\ntype = "dataset"\nid = "a"\npermissions = ["write"]\n',
        7,
        "is already listed as resource[0]",
    ),
    "unscoped-conflict": (
        '[[token]]\nname = "x"\nunscoped = true\n[token.account]\ntasks = ["read"]\n',
        4,
        "'account' contradicts unscoped = true",
    ),
    "guardrail-unknown": ("[guardrails]\nmax_lifetim = '1d'\n", 2, "unknown guardrail"),
    "guardrail-duration": ("[guardrails]\nmax_lifetime = 'forever'\n", 2, "not a duration"),
    "guardrail-forbidden": (
        "[guardrails]\nforbidden = ['schedules:run']\n",
        2,
        "guardrails.forbidden[0]: schedules has no permission 'run'",
    ),
    "guardrail-forbidden-shape": (
        "[guardrails]\nforbidden = ['schedules']\n",
        2,
        'expected "group:permission"',
    ),
    "guardrail-flag": ("[guardrails]\nallow_unscoped = 'no'\n", 2, "expected true or false"),
    "second-token-line": (
        '[[token]]\nname = "ok"\n\n[[token]]\nname = "two"\nexpires_after = "1y"\n',
        6,
        "policy 'two': token[1].expires_after: '1y' is not a duration",
    ),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_broken_corpus_names_file_line_and_key(tmp_path: Path, case: str) -> None:
    text, line, expected = CORPUS[case]
    path = tmp_path / f"{case}.toml"
    path.write_text(text)
    rendered = problems_of(path)
    assert any(r.startswith(f"{path}:{line}: ") and expected in r for r in rendered), rendered
    # The CLI: exit 2, the same message, no traceback.
    result = CliRunner().invoke(main, ["policy", "check", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}:{line}:" in result.output
    assert "Traceback" not in result.output


GUARDRAILS = """\
[guardrails]
max_lifetime = "30d"
require_expiry = true
allow_unscoped = false
allow_full_run_mode = false
forbidden = ["schedules:create", "storages:write"]
required_labels = ["owner"]
"""


_OWNER = 'name = "p"\nlabels = { owner = "o" }\n'


@pytest.mark.parametrize(
    ("policy", "line", "expected"),
    [
        (_OWNER + 'expires_after = "31d"\n', 4, "expires_after 31d is longer than the allowed 30d"),
        (_OWNER, 1, "no expires_after: tokens would never expire"),
        (_OWNER, 1, "no expires_after, but tokens may live at most 30d"),
        (_OWNER + 'expires_after = "1d"\nunscoped = true\n', 5, "unscoped (full-access) tokens"),
        (
            _OWNER + 'expires_after = "1d"\nactor_run_mode = "full"\n',
            5,
            "breaks guardrail allow_full_run_mode",
        ),
        (
            _OWNER + 'expires_after = "1d"\n[token.account]\nschedules = ["read", "create"]\n',
            6,
            "account-level schedules:create is forbidden",
        ),
        (
            _OWNER + 'expires_after = "1d"\n[[token.resource]]\ntype = "key-value-store"\n'
            'id = "a"\npermissions = ["write"]\n',
            8,
            "write on key-value-store 'a' is forbidden (storages:write)",
        ),
        ('name = "p"\nexpires_after = "1d"\nlabels = { team = "x" }\n', 4, "label 'owner'"),
    ],
)
def test_guardrail_breaks_are_errors(tmp_path: Path, policy: str, line: int, expected: str) -> None:
    rails = write(tmp_path, "guardrails.toml", GUARDRAILS)
    path = tmp_path / "p.toml"
    path.write_text("[[token]]\n" + policy)
    rendered = problems_of([rails, path])
    hit = [r for r in rendered if expected in r]
    assert hit, rendered
    assert hit[0].startswith(f"{path}:{line}: policy 'p': "), hit
    assert f"at {rails}:" in hit[0]  # names the guardrail's own file and line


def test_guardrails_pass_for_compliant_policy_and_unscoped_breaks_forbidden(tmp_path: Path) -> None:
    rails = write(tmp_path, "guardrails.toml", GUARDRAILS)
    ok = write(
        tmp_path,
        "ok.toml",
        """\
        [[token]]
        name = "fine"
        expires_after = "30d"
        labels = { owner = "me" }
        [token.account]
        storages = ["read"]
        """,
    )
    assert load_policies([rails, ok]).names == ("fine",)
    relaxed = write(
        tmp_path,
        "relaxed.toml",
        '[guardrails]\nforbidden = ["schedules:create"]\n',
    )
    admin = write(tmp_path, "admin.toml", '[[token]]\nname = "admin"\nunscoped = true\n')
    rendered = problems_of([relaxed, admin])
    assert any("an unscoped token holds schedules:create" in r for r in rendered)


def test_forbidden_read_is_held_through_write_and_check_exits_2(tmp_path: Path) -> None:
    rails = write(tmp_path, "guardrails.toml", '[guardrails]\nforbidden = ["storages:read"]\n')
    writer = write(
        tmp_path,
        "writer.toml",
        """\
        [[token]]
        name = "w"
        [token.account]
        storages = ["write"]
        [[token.resource]]
        type = "dataset"
        id = "d"
        permissions = ["write"]
        """,
    )
    rendered = problems_of([rails, writer])
    assert rendered == [
        f"{writer}:4: policy 'w': token[0].account.storages: account-level storages:read is "
        f"forbidden (write implies read) (breaks guardrail forbidden at {rails}:2)",
        f"{writer}:8: policy 'w': token[0].resource[0].permissions: read on dataset 'd' is "
        f"forbidden (storages:read) (write implies read) (breaks guardrail forbidden at "
        f"{rails}:2)",
    ]
    # An error, not a warning: `policy check` fails with exit 2.
    result = CliRunner().invoke(main, ["policy", "check", str(rails), str(writer)])
    assert result.exit_code == 2, result.output
    assert "storages:read is forbidden" in result.output


def test_duplicate_names_across_files_name_both(tmp_path: Path) -> None:
    a = write(tmp_path, "a.toml", GOOD)
    b = write(tmp_path, "b.toml", '# second\n[[token]]\nname = "ci-scraper"\n')
    (rendered,) = problems_of([a, b])
    assert rendered.startswith(f"{b}:3: policy 'ci-scraper': token[0].name: duplicate")
    assert f"first defined at {a}:2" in rendered


def test_two_guardrails_tables_are_an_error(tmp_path: Path) -> None:
    a = write(tmp_path, "a.toml", "[guardrails]\nrequire_expiry = true\n")
    b = write(tmp_path, "b.toml", "\n[guardrails]\nrequire_expiry = false\n")
    (rendered,) = problems_of([a, b])
    assert rendered.startswith(f"{b}:2: guardrails:") and f"already defined at {a}:1" in rendered


def test_all_problems_reported_at_once_sorted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "many.toml",
        """\
        [[token]]
        name = "a"
        expires_after = "x"

        [[token]]
        name = "b"
        bogus = 1
        """,
    )
    rendered = problems_of(path)
    assert len(rendered) == 2
    assert rendered[0].startswith(f"{path}:3:") and rendered[1].startswith(f"{path}:7:")


def test_missing_paths_and_empty_dirs(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="No such policy file"):
        load_policies([tmp_path / "nope.toml"])
    with pytest.raises(PolicyError, match="No policy files"):
        load_policies([tmp_path])
    (tmp_path / "bin.toml").write_bytes(b'[[token]]\nname = "\xff"\n')
    (rendered,) = problems_of(tmp_path / "bin.toml")
    assert ":2: not valid UTF-8" in rendered


# --- notes: said, never silently applied ------------------------------------------------------


def test_notes_write_implies_read_and_dependencies() -> None:
    policies = load_policies_from_text(
        """\
        [[token]]
        name = "n"
        actor_run_mode = "full"
        expires_after = "2d"
        rotate_after = "1d"
        grace = "2d"
        [token.account]
        tasks = ["create"]
        schedules = ["create"]
        storages = ["write"]
        [[token.resource]]
        type = "dataset"
        id = "demo~results"
        permissions = ["write"]
        """.replace("        ", ""),
        "n.toml",
    )
    notes = {n.render() for n in policies.notes}
    assert all(n.split(": ")[0].startswith("n.toml:") for n in notes)
    text = "\n".join(sorted(notes))
    assert "write implies read: the token can also read all storages" in text
    assert "write implies read: the token can also read dataset 'demo~results'" in text
    assert "creating a task needs Run on its Actor" in text
    assert "scheduled runs always get an unscoped token" in text
    assert "rotate_after + grace exceeds expires_after" in text
    assert all(n.severity is Severity.NOTE for n in policies.notes)
    # The policy itself is unchanged: write stays write only.
    (grant,) = policies.policies[0].scope.resources
    assert grant.permissions == frozenset({Permission.WRITE})


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("24h", 86400),
        ("30d", 30 * 86400),
        ("2w", 14 * 86400),
        ("1d12h", 129600),
        (" 5m ", 300),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text", ["", "5", "m", "1.5h", "-1d", "1y", "1h1d", "1d1d", "1 d", "9" * 30 + "w"]
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**9))
def test_format_duration_round_trips(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


# --- the line scanner --------------------------------------------------------------------------


def test_scan_key_lines_handles_arrays_dotted_keys_and_multiline_strings() -> None:
    text = textwrap.dedent(
        '''\
        [[token]]
        name = "a"
        description = """
        fake = "not a key"
        """
        account.tasks = ["read"]
        [[token.resource]]
        type = "actor"
        [[token]]
        "name" = "b"
        [[token.resource]]
        [[token.resource]]
        id = "x"
        '''
    )
    lines = scan_key_lines(text)
    assert lines[("token", 0)] == 1
    assert lines[("token", 0, "description")] == 3
    assert ("token", 0, "fake") not in lines
    assert lines[("token", 0, "account", "tasks")] == 6
    assert lines[("token", 0, "resource", 0, "type")] == 8
    assert lines[("token", 1, "name")] == 10
    assert lines[("token", 1, "resource", 1, "id")] == 13


# --- hypothesis: arbitrary documents only ever raise the policy error ----------------------

_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["30d", "1h", "0s", "read", "write", "run", "create", "actor", "full", "x~y"]),
)
_keys = st.one_of(
    st.sampled_from(
        [
            "name",
            "type",
            "id",
            "permissions",
            "expires_after",
            "rotate_after",
            "grace",
            "actor_run_mode",
            "labels",
            "unscoped",
            "account",
            "resource",
            "storages",
            "actors",
            "forbidden",
            "max_lifetime",
            "required_labels",
            "allow_unscoped",
            "token",
            "guardrails",
            "default_run_storage_access",
            "description",
        ]
    ),
    st.text(min_size=1, max_size=6),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=12,
)


def _toml_key(key: str) -> str:
    return json.dumps(key)  # a basic string is always a valid TOML key


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, int) or value == value else "0.0"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def _document(doc: dict[str, object]) -> str:
    return "\n".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc.items()) + "\n"


@given(
    st.dictionaries(
        st.sampled_from(["token", "guardrails", "other"]),
        st.one_of(_values, st.lists(st.dictionaries(_keys, _values, max_size=6), max_size=3)),
        max_size=3,
    )
)
def test_generated_documents_raise_only_policy_errors(doc: dict[str, object]) -> None:
    try:
        load_policies_from_text(_document(doc), "gen.toml")
    except PolicyError as exc:
        assert "gen.toml:" in str(exc)


@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_policy_errors(text: str) -> None:
    # Anything else (TypeError, KeyError, ...) fails the test.
    with contextlib.suppress(PolicyError):
        load_policies_from_text(text, "text.toml")


# --- the CLI and the shipped examples ----------------------------------------------------------


def test_shipped_examples_pass_check() -> None:
    result = CliRunner().invoke(main, ["policy", "check", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    assert "ok:" in result.output
    policies = load_policies([SHIPPED])
    assert len(policies) >= 3
    assert policies.guardrails.source is not None
    assert policies.guardrails.source.name == "guardrails.toml"
    for policy in policies:
        assert policy.description, policy.name
        assert policy.expires_after is not None


def test_check_json_output(tmp_path: Path) -> None:
    good = write(tmp_path, "good.toml", GOOD)
    result = CliRunner().invoke(main, ["policy", "check", "--json", str(good)])
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert doc["ok"] is True and doc["policies"][0]["name"] == "ci-scraper"
    assert doc["policies"][0]["expiresAfter"] == "30d"
    bad = write(tmp_path, "bad.toml", '[[token]]\nname = "x"\nbogus = 1\n')
    result = CliRunner().invoke(main, ["policy", "check", "--json", str(bad)])
    assert result.exit_code == 2
    doc = json.loads(result.output)
    assert doc["ok"] is False
    assert doc["problems"][0] | {"message": ""} == {
        "severity": "error",
        "file": str(bad),
        "line": 3,
        "key": "token[0].bogus",
        "policy": "x",
        "message": "",
    }


def test_check_defaults_to_policies_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["policy", "check"])
    assert result.exit_code == 2
    assert "policies" in result.output
    (tmp_path / "policies").mkdir()
    write(tmp_path / "policies", "x.toml", GOOD)
    result = CliRunner().invoke(main, ["policy", "check"])
    assert result.exit_code == 0, result.output


def test_policies_are_immutable_and_public_api_is_sorted() -> None:
    import dataclasses

    import tokenguard.policy as api

    policy = load_policies_from_text(GOOD).policies[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.labels["owner"] = "someone-else"  # type: ignore[index]
    assert api.__all__ == sorted(api.__all__)
    for name in api.__all__:
        assert hasattr(api, name), name
