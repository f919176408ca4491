"""Policy files (TOML) -> validated :class:`PolicySet`.

Everything wrong in the files is collected (not only the first problem) and raised as one
:class:`PolicyValidationError`; each problem names the file, the line, the policy, the key
path and what would be valid. Facts that are not errors — write implies read, a task that
cannot be run without Run on its Actor — become notes: said, never silently "fixed".
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tokenguard.errors import PolicyError
from tokenguard.permissions import (
    ACCOUNT_PERMISSIONS,
    RESOURCE_PERMISSIONS,
    AccountGroup,
    Permission,
    ResourceGrant,
    ResourceType,
    RunMode,
    Scope,
)
from tokenguard.policy.durations import DURATION_HELP, parse_duration
from tokenguard.policy.guardrails import check_guardrails, parse_guardrails
from tokenguard.policy.lines import LazyKeyLines, line_of
from tokenguard.policy.model import (
    Diagnostic,
    Guardrails,
    KeyPath,
    Location,
    PolicySet,
    PolicyValidationError,
    Severity,
    TokenPolicy,
    compute_digest,
)
from tokenguard.policy.notes import static_notes

#: Keys of a ``[[token]]`` table, in the order the docs list them.
TOKEN_KEYS = (
    "name",
    "description",
    "expires_after",
    "rotate_after",
    "grace",
    "actor_run_mode",
    "default_run_storage_access",
    "labels",
    "unscoped",
    "account",
    "resource",
)
RESOURCE_KEYS = ("type", "id", "permissions")
TOP_LEVEL_KEYS = ("token", "guardrails")

#: Policy names end up in vault record names (``<policy>.<n>``) and platform token names
#: (``tokenguard/<policy>/<n>``), so dots and slashes are out.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# An Apify ID, or username~name (names: letters, digits, dashes; usernames also dots/underscores).
RESOURCE_ID_PATTERN = re.compile(r"[A-Za-z0-9]{1,64}|[A-Za-z0-9._-]{1,64}~[A-Za-z0-9._-]{1,128}")
DESCRIPTION_MAX = 160  # the Console's limit for token descriptions (reference NOTES)
DEFAULT_GRACE = timedelta(hours=24)  # Console rotation keeps the old token alive 24 h

_TOML_ERROR_LINE = re.compile(r"at line (\d+)")
_TOKEN_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*token[ \t]*\]\]", re.MULTILINE)


def _type_name(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


def _suggest(word: str, valid: Iterable[str]) -> str:
    valid = list(valid)
    close = difflib.get_close_matches(word, valid, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}valid: {', '.join(valid)}"


@dataclass(slots=True)
class _FileContext:
    """Collects problems for one file and turns key paths into locations."""

    path: Path
    lines: Mapping[KeyPath, int]
    problems: list[Diagnostic]
    policy: str | None = None

    def at(self, path: KeyPath) -> Location:
        return Location(self.path, line_of(self.lines, path), path)

    def error(self, path: KeyPath, message: str, *, policy: str | None = None) -> None:
        self.problems.append(Diagnostic(self.at(path), message, policy or self.policy))


@dataclass(slots=True)
class _Loaded:
    policies: list[TokenPolicy] = field(default_factory=list)
    guardrails: list[Guardrails] = field(default_factory=list)
    problems: list[Diagnostic] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given, directories as their ``*.toml`` files (sorted); duplicates dropped."""
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.toml") if p.is_file())
            if not found:
                raise PolicyError(
                    f"No policy files (*.toml) in directory {path}",
                    hint="Point at a directory with policy files, or at the files themselves.",
                )
        elif path.is_file():
            found = [path]
        else:
            raise PolicyError(
                f"No such policy file or directory: {path}",
                hint="Pass existing files or directories (default: policies/).",
            )
        for item in found:
            key = item.resolve()
            if key not in seen:
                seen.add(key)
                out.append(item)
    return out


def load_policies(paths: Sequence[str | Path] = ("policies",)) -> PolicySet:
    """Load, validate and guardrail-check policy files (files or directories of ``*.toml``).

    Raises :class:`PolicyValidationError` (a :class:`~tokenguard.errors.PolicyError`, exit 2)
    listing every problem with its file, line, policy and key path. Never touches the network.
    """
    if isinstance(paths, str | Path):
        paths = (paths,)
    loaded = _Loaded()
    for path in expand_paths(paths):
        loaded.files.append(path)
        _load_file(path, loaded)
    return _finish(loaded)


def load_policies_from_text(text: str, source: str | Path = "<string>") -> PolicySet:
    """Validate one policy document given as text (for tools and tests)."""
    loaded = _Loaded(files=[Path(source)])
    _load_text(text, Path(source), loaded)
    return _finish(loaded)


def _finish(loaded: _Loaded) -> PolicySet:
    problems = loaded.problems
    guardrails = Guardrails()
    if len(loaded.guardrails) > 1:
        first = loaded.guardrails[0]
        for other in loaded.guardrails[1:]:
            assert other.source is not None
            problems.append(
                Diagnostic(
                    Location(other.source, other.line, ("guardrails",)),
                    f"guardrails are already defined at {first.location('guardrails')}; "
                    "keep one [guardrails] table",
                )
            )
    elif loaded.guardrails:
        guardrails = loaded.guardrails[0]

    seen: dict[str, TokenPolicy] = {}
    for policy in loaded.policies:
        if policy.name in seen:
            first_policy = seen[policy.name]
            problems.append(
                Diagnostic(
                    policy.location("name"),
                    f"duplicate policy name {policy.name!r} (first defined at "
                    f"{first_policy.location('name')}); names must be unique across all files",
                    policy.name,
                )
            )
        else:
            seen[policy.name] = policy

    notes: list[Diagnostic] = []
    for policy in loaded.policies:
        problems.extend(check_guardrails(policy, guardrails))
        notes.extend(static_notes(policy))
    if problems:
        raise PolicyValidationError(tuple(problems))
    return PolicySet(
        policies=tuple(loaded.policies),
        guardrails=guardrails,
        notes=tuple(notes),
        files=tuple(loaded.files),
    )


def _load_file(path: Path, loaded: _Loaded) -> None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(
            f"Cannot read policy file {path}: {exc.strerror or exc}",
            hint="Check the path and its permissions.",
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        loaded.problems.append(
            Diagnostic(Location(path, line), "not valid UTF-8 text (TOML files must be UTF-8)")
        )
        return
    _load_text(text, path, loaded)


def _load_text(text: str, path: Path, loaded: _Loaded) -> None:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        match = _TOML_ERROR_LINE.search(msg)
        line = int(match.group(1)) if match else 1
        loaded.problems.append(
            Diagnostic(Location(path, line), f"TOML syntax error: {msg}; see https://toml.io")
        )
        return
    ctx = _FileContext(path, LazyKeyLines(text), loaded.problems)
    for key in doc:
        if key not in TOP_LEVEL_KEYS:
            ctx.error((key,), f"unknown top-level key {key!r} ({_suggest(key, TOP_LEVEL_KEYS)})")
    if "guardrails" in doc:
        raw = doc["guardrails"]
        if not isinstance(raw, dict):
            ctx.error(("guardrails",), f"expected a table [guardrails], got {_type_name(raw)}")
        else:
            guardrails = parse_guardrails(raw, ctx.path, ctx.lines, ctx.problems)
            if guardrails is not None:
                loaded.guardrails.append(guardrails)
    if "token" in doc:
        tokens = doc["token"]
        if isinstance(tokens, dict):
            ctx.error(("token",), "write each policy as an array table [[token]], not [token]")
            return
        if not isinstance(tokens, list):
            ctx.error(("token",), f"expected [[token]] tables, got {_type_name(tokens)}")
            return
        headers = _token_header_lines(text)
        if len(headers) != len(tokens):  # inline arrays or quoted keys: use the full scan
            headers = [line_of(ctx.lines, ("token", i)) for i in range(len(tokens))]
        for index, raw_token in enumerate(tokens):
            policy = _parse_token(raw_token, index, ctx, headers[index])
            if policy is not None:
                loaded.policies.append(policy)


def _token_header_lines(text: str) -> list[int]:
    # One C-speed pass for the common layout, so clean files never need the full line scan.
    lines = []
    line, pos = 1, 0
    for match in _TOKEN_HEADER.finditer(text):
        line += text.count("\n", pos, match.start())
        pos = match.start()
        lines.append(line)
    return lines


def _parse_token(raw: Any, index: int, ctx: _FileContext, token_line: int) -> TokenPolicy | None:
    base: KeyPath = ("token", index)
    if not isinstance(raw, dict):
        ctx.error(base, f"expected a table, got {_type_name(raw)}")
        return None
    before = len(ctx.problems)

    name = raw.get("name")
    ctx.policy = f"#{index + 1}"
    if name is None:
        ctx.error(base, "missing required key 'name'")
    elif not isinstance(name, str):
        ctx.error((*base, "name"), f"expected a string, got {_type_name(name)}")
    elif not NAME_PATTERN.fullmatch(name):
        ctx.error(
            (*base, "name"),
            f"invalid name {name!r}: use 1-64 letters, digits, '-' or '_', starting with a "
            "letter or digit (names become vault records <name>.<n>)",
        )
    else:
        ctx.policy = name

    for key in raw:
        if key not in TOKEN_KEYS:
            ctx.error((*base, key), f"unknown key {key!r} ({_suggest(key, TOKEN_KEYS)})")

    description = raw.get("description")
    if description is not None:
        if not isinstance(description, str):
            ctx.error((*base, "description"), f"expected a string, got {_type_name(description)}")
            description = None
        elif len(description) > DESCRIPTION_MAX:
            ctx.error(
                (*base, "description"),
                f"too long ({len(description)} characters; at most {DESCRIPTION_MAX})",
            )

    durations: dict[str, timedelta | None] = {}
    for key in ("expires_after", "rotate_after", "grace"):
        durations[key] = _duration(raw, key, base, ctx)
    expires_after = durations["expires_after"]
    rotate_after = durations["rotate_after"]
    grace = durations["grace"] if durations["grace"] is not None else DEFAULT_GRACE
    for key in ("expires_after", "rotate_after"):
        value = durations[key]
        if value is not None and value <= timedelta(0):
            ctx.error((*base, key), f"must be longer than zero ({DURATION_HELP})")
    if (
        expires_after is not None
        and rotate_after is not None
        and expires_after > timedelta(0)
        and rotate_after >= expires_after
    ):
        ctx.error(
            (*base, "rotate_after"),
            f"rotate_after ({raw['rotate_after']}) must be shorter than expires_after "
            f"({raw['expires_after']}), or tokens expire before they are rotated",
        )

    labels: dict[str, str] = {}
    raw_labels = raw.get("labels", {})
    if not isinstance(raw_labels, dict):
        ctx.error((*base, "labels"), f"expected a table of strings, got {_type_name(raw_labels)}")
    else:
        for key, value in raw_labels.items():
            if not isinstance(value, str):
                ctx.error(
                    (*base, "labels", key), f"label values are strings, got {_type_name(value)}"
                )
            else:
                labels[key] = value

    unscoped = _bool(raw, "unscoped", base, ctx, default=False)
    default_storage = _bool(raw, "default_run_storage_access", base, ctx, default=False)
    run_mode = RunMode.RESTRICTED
    raw_mode = raw.get("actor_run_mode")
    if raw_mode is not None:
        valid_modes = [m.value for m in RunMode]
        if not isinstance(raw_mode, str) or raw_mode not in valid_modes:
            shown = repr(raw_mode) if isinstance(raw_mode, str) else _type_name(raw_mode)
            ctx.error(
                (*base, "actor_run_mode"), f"invalid run mode {shown} (valid: restricted, full)"
            )
        else:
            run_mode = RunMode(raw_mode)

    account = _parse_account(raw.get("account"), (*base, "account"), ctx)
    resources = _parse_resources(raw.get("resource"), (*base, "resource"), ctx)

    if unscoped:
        conflicting = [
            k
            for k in ("account", "resource", "actor_run_mode", "default_run_storage_access")
            if k in raw
        ]
        for key in conflicting:
            ctx.error(
                (*base, key),
                f"{key!r} contradicts unscoped = true (an unscoped token can do everything); "
                "remove one of them",
            )

    if len(ctx.problems) > before or not isinstance(name, str):
        return None
    scope = (
        Scope.full()
        if unscoped
        else Scope(
            account=account,
            resources=resources,
            actor_run_mode=run_mode,
            default_run_storage_access=default_storage,
        )
    )
    return TokenPolicy(
        name=name,
        scope=scope,
        source=ctx.path,
        line=token_line,
        description=description,
        expires_after=expires_after,
        rotate_after=rotate_after,
        grace=grace,
        labels=MappingProxyType(labels),
        digest=compute_digest(name, scope, expires_after),
        key_lines=ctx.lines,  # shared per file: key paths carry the token index
        key_prefix=base,
    )


def _duration(
    raw: Mapping[str, Any], key: str, base: KeyPath, ctx: _FileContext
) -> timedelta | None:
    if key not in raw:
        return None
    value = raw[key]
    if not isinstance(value, str):
        ctx.error(
            (*base, key), f"expected a duration string, got {_type_name(value)} ({DURATION_HELP})"
        )
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        ctx.error((*base, key), str(exc))
        return None


def _bool(
    raw: Mapping[str, Any], key: str, base: KeyPath, ctx: _FileContext, *, default: bool
) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        ctx.error((*base, key), f"expected true or false, got {_type_name(value)}")
        return default
    return value


def _permissions(
    raw: Any,
    path: KeyPath,
    ctx: _FileContext,
    *,
    valid: frozenset[Permission],
    what: str,
    why: str,
) -> frozenset[Permission] | None:
    valid_names = sorted(p.value for p in valid)
    if not isinstance(raw, list):
        ctx.error(
            path,
            f"expected an array of permissions, got {_type_name(raw)} "
            f"(valid for {what}: {', '.join(valid_names)})",
        )
        return None
    out: set[Permission] = set()
    ok = True
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            ctx.error((*path, i), f"permissions are strings, got {_type_name(item)}")
            ok = False
            continue
        try:
            perm = Permission(item)
        except ValueError:
            ctx.error(
                (*path, i),
                f"unknown permission {item!r} for {what} ({_suggest(item, valid_names)})",
            )
            ok = False
            continue
        if perm not in valid:
            ctx.error(
                (*path, i),
                f"{what} does not take {item!r}{why} (valid: {', '.join(valid_names)})",
            )
            ok = False
            continue
        out.add(perm)
    if ok and not out:
        ctx.error(path, f"empty permission list grants nothing (valid: {', '.join(valid_names)})")
        return None
    return frozenset(out) if ok else None


def _parse_account(
    raw: Any, path: KeyPath, ctx: _FileContext
) -> dict[AccountGroup, frozenset[Permission]]:
    out: dict[AccountGroup, frozenset[Permission]] = {}
    if raw is None:
        return out
    if not isinstance(raw, dict):
        ctx.error(path, f"expected a table [token.account], got {_type_name(raw)}")
        return out
    groups = [g.value for g in AccountGroup]
    for key, value in raw.items():
        try:
            group = AccountGroup(key)
        except ValueError:
            ctx.error((*path, key), f"unknown account group {key!r} ({_suggest(key, groups)})")
            continue
        why = (
            " (scoped tokens can never create or modify Actors)"
            if group is AccountGroup.ACTORS
            else ""
        )
        perms = _permissions(
            value,
            (*path, key),
            ctx,
            valid=ACCOUNT_PERMISSIONS[group],
            what=f"account group {key}",
            why=why,
        )
        if perms is not None:
            out[group] = perms
    return out


def _parse_resources(raw: Any, path: KeyPath, ctx: _FileContext) -> tuple[ResourceGrant, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        ctx.error(path, f"expected [[token.resource]] tables, got {_type_name(raw)}")
        return ()
    types = [t.value for t in ResourceType]
    grants: list[ResourceGrant] = []
    seen: dict[tuple[ResourceType, str], int] = {}
    for i, item in enumerate(raw):
        here = (*path, i)
        if not isinstance(item, dict):
            ctx.error(here, f"expected a table, got {_type_name(item)}")
            continue
        for key in item:
            if key not in RESOURCE_KEYS:
                ctx.error((*here, key), f"unknown key {key!r} ({_suggest(key, RESOURCE_KEYS)})")
        missing = [k for k in RESOURCE_KEYS if k not in item]
        if missing:
            ctx.error(here, f"missing required key(s) {', '.join(missing)}")
            continue
        rtype_raw, rid, perms_raw = item["type"], item["id"], item["permissions"]
        rtype: ResourceType | None = None
        if not isinstance(rtype_raw, str):
            ctx.error((*here, "type"), f"expected a string, got {_type_name(rtype_raw)}")
        else:
            try:
                rtype = ResourceType(rtype_raw)
            except ValueError:
                ctx.error(
                    (*here, "type"),
                    f"unknown resource type {rtype_raw!r} ({_suggest(rtype_raw, types)})",
                )
        if not isinstance(rid, str):
            ctx.error((*here, "id"), f"expected a string, got {_type_name(rid)}")
            rid = None
        elif not RESOURCE_ID_PATTERN.fullmatch(rid):
            ctx.error(
                (*here, "id"),
                f"invalid resource reference {rid!r}: use an ID or username~name",
            )
            rid = None
        if rtype is None:
            continue
        why = " (scoped tokens can never modify Actors)" if rtype is ResourceType.ACTOR else ""
        perms = _permissions(
            perms_raw,
            (*here, "permissions"),
            ctx,
            valid=RESOURCE_PERMISSIONS[rtype],
            what=rtype.value,
            why=why,
        )
        if rid is None or perms is None:
            continue
        if (rtype, rid) in seen:
            ctx.error(
                here,
                f"{rtype.value} {rid!r} is already listed as resource[{seen[(rtype, rid)]}]; "
                "merge the permissions into one entry",
            )
            continue
        seen[(rtype, rid)] = i
        grants.append(ResourceGrant(type=rtype, id=rid, permissions=perms))
    return tuple(grants)


__all__ = [
    "NAME_PATTERN",
    "TOKEN_KEYS",
    "Severity",
    "expand_paths",
    "load_policies",
    "load_policies_from_text",
]
