"""Validated policy objects: what a token policy says, and where it says it.

Policies are built only by :func:`tokenguard.policy.load_policies`; every object knows its
source file and the line of each key, so later stages (the plan resolving resources against
the API, the guardrails) can point at the exact spot in the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from tokenguard.errors import PolicyError
from tokenguard.permissions import AccountGroup, Permission, Scope

#: A key path inside a TOML document: ``("token", 0, "resource", 1, "permissions")``.
KeyPath = tuple[str | int, ...]

#: Prefix of platform token names created from policies: ``tokenguard/<policy>/<serial>``.
PLATFORM_NAME_PREFIX = "tokenguard/"

#: Bumped when the digest's normalised form changes (every token would show as "replace").
_DIGEST_VERSION = 1


def render_key_path(path: KeyPath) -> str:
    """``("token", 0, "resource", 1, "id")`` -> ``token[0].resource[1].id``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a policy file: file, 1-based line and TOML key path."""

    path: Path
    line: int
    key_path: KeyPath = ()

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


class Severity(StrEnum):
    """How bad a diagnostic is: errors stop everything, notes are said and nothing changes."""

    ERROR = "error"
    NOTE = "note"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One statement about a policy file: an error, or a note (e.g. "write implies read")."""

    location: Location
    message: str
    policy: str | None = None
    severity: Severity = Severity.ERROR

    def render(self) -> str:
        """``file:line: policy 'x': key.path: message`` — the one-line form shown to users."""
        parts = [str(self.location)]
        if self.policy:
            parts.append(f"policy {self.policy!r}")
        if self.location.key_path:
            parts.append(render_key_path(self.location.key_path))
        prefix = ": ".join(parts)
        tag = "" if self.severity is Severity.ERROR else "note: "
        return f"{prefix}: {tag}{self.message}"

    def to_json(self) -> dict[str, Any]:
        """Machine form for ``--json`` output."""
        return {
            "severity": self.severity.value,
            "file": str(self.location.path),
            "line": self.location.line,
            "key": render_key_path(self.location.key_path),
            "policy": self.policy,
            "message": self.message,
        }


class PolicyValidationError(PolicyError):
    """One or more policy files are invalid or break a guardrail (exit 2).

    ``problems`` lists every error found (not only the first), each with file, line, policy
    and key path.
    """

    def __init__(self, problems: tuple[Diagnostic, ...], *, hint: str | None = None) -> None:
        problems = tuple(sorted(problems, key=lambda p: (str(p.location.path), p.location.line)))
        if len(problems) == 1:
            message = problems[0].render()
        else:
            lines = "\n".join("  " + p.render() for p in problems)
            message = f"{len(problems)} problems in policy files:\n{lines}"
        super().__init__(
            message,
            hint=hint
            or "Fix the policy files; `tokenguard policy check` validates them without the API.",
        )
        self.problems = problems

    @property
    def diagnosis(self) -> str:
        """The problems, one per line, then the hint on its own line."""
        return f"{self.message}\n{self.hint}" if self.hint else self.message


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """One ``[[token]]`` entry: the scope and lifetime every token issued from it gets.

    ``digest`` is a stable hash of the parts that shape an issued token (name, scope as
    declared, ``expires_after``): when it differs from a stored token's ``policy_digest`` the
    token no longer matches its policy. Description, labels, ``rotate_after`` and ``grace``
    are left out on purpose: changing them needs no new token.
    """

    name: str
    scope: Scope
    source: Path
    line: int
    description: str | None = None
    expires_after: timedelta | None = None
    rotate_after: timedelta | None = None
    grace: timedelta = timedelta(hours=24)
    labels: Mapping[str, str] = field(default_factory=dict)
    digest: str = ""
    key_lines: Mapping[KeyPath, int] = field(default_factory=dict, compare=False, repr=False)
    key_prefix: KeyPath = field(default=(), compare=False, repr=False)

    def location(self, *key: str | int) -> Location:
        """Where ``key`` (relative to the ``[[token]]`` table) is written, or its nearest parent."""
        path: KeyPath = self.key_prefix + key
        probe = path
        while probe:
            if probe in self.key_lines:
                return Location(self.source, self.key_lines[probe], path)
            probe = probe[:-1]
        return Location(self.source, self.line, path)

    def expires_at(self, now: datetime) -> datetime | None:
        """Expiry of a token issued at ``now`` (None: it never expires)."""
        return None if self.expires_after is None else now + self.expires_after

    def platform_name(self, serial: int) -> str:
        """The token's name on the platform, recognisable as ours: ``tokenguard/<policy>/<n>``."""
        return f"{PLATFORM_NAME_PREFIX}{self.name}/{serial}"

    def record_name(self, serial: int) -> str:
        """The vault record name of the policy's ``serial``-th token: ``<policy>.<n>``."""
        return f"{self.name}.{serial}"


def compute_digest(name: str, scope: Scope, expires_after: timedelta | None) -> str:
    """Stable digest of what shapes an issued token (see :class:`TokenPolicy`)."""
    scope_json = scope.to_api()
    if scope_json is not None:
        scope_json["resources"] = sorted(
            scope_json["resources"], key=lambda r: (r["type"], r["id"], r["permissions"])
        )
    doc = {
        "v": _DIGEST_VERSION,
        "name": name,
        "expires_after": None if expires_after is None else int(expires_after.total_seconds()),
        "scope": scope_json,
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Guardrails:
    """Organisation-wide limits every policy must respect (a ``[guardrails]`` table).

    ``forbidden`` pairs hold for account-level permissions of the group and for resource
    permissions on every resource type of that group (``storages:write`` forbids writing to any
    dataset). An unscoped token holds every permission, so it breaks any ``forbidden`` entry.
    """

    max_lifetime: timedelta | None = None
    require_expiry: bool = False
    allow_unscoped: bool = True
    allow_full_run_mode: bool = True
    forbidden: frozenset[tuple[AccountGroup, Permission]] = frozenset()
    required_labels: tuple[str, ...] = ()
    source: Path | None = None
    line: int = 0
    key_lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def location(self, key: str) -> str:
        """``file:line`` of a guardrail key, for messages ("guardrail at file:line")."""
        if self.source is None:
            return "(no guardrails file)"
        return f"{self.source}:{self.key_lines.get(key, self.line)}"


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Every policy from the loaded files, in file order, with the guardrails and notes."""

    policies: tuple[TokenPolicy, ...] = ()
    guardrails: Guardrails = field(default_factory=Guardrails)
    notes: tuple[Diagnostic, ...] = ()
    files: tuple[Path, ...] = ()

    def get(self, name: str) -> TokenPolicy | None:
        """The policy called ``name``, or None."""
        for policy in self.policies:
            if policy.name == name:
                return policy
        return None

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.policies)

    def __iter__(self) -> Iterator[TokenPolicy]:
        return iter(self.policies)

    def __len__(self) -> int:
        return len(self.policies)

    @property
    def names(self) -> tuple[str, ...]:
        """Policy names in file order."""
        return tuple(p.name for p in self.policies)
