"""Guardrails: organisation-wide limits in a ``[guardrails]`` table, and the check of a policy.

A policy that breaks a guardrail is an error, not a warning: the message names the policy's
offending key and the guardrail (with its file and line) it breaks.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tokenguard.permissions import (
    ACCOUNT_PERMISSIONS,
    GROUP_OF,
    RESOURCE_PERMISSIONS,
    AccountGroup,
    Permission,
    RunMode,
)
from tokenguard.policy.durations import DURATION_HELP, format_duration, parse_duration
from tokenguard.policy.lines import line_of
from tokenguard.policy.model import Diagnostic, Guardrails, KeyPath, Location, TokenPolicy

GUARDRAIL_KEYS = (
    "max_lifetime",
    "require_expiry",
    "allow_unscoped",
    "allow_full_run_mode",
    "forbidden",
    "required_labels",
)


def _group_permissions(group: AccountGroup) -> frozenset[Permission]:
    """Every permission a token can hold in ``group``: account-level or on its resources."""
    perms = set(ACCOUNT_PERMISSIONS[group])
    for rtype, rgroup in GROUP_OF.items():
        if rgroup is group:
            perms |= RESOURCE_PERMISSIONS[rtype]
    return frozenset(perms)


def parse_guardrails(
    raw: Mapping[str, Any],
    path: Path,
    lines: Mapping[KeyPath, int],
    problems: list[Diagnostic],
) -> Guardrails | None:
    """Validate a ``[guardrails]`` table; append problems and return None when it is invalid."""
    before = len(problems)
    base: KeyPath = ("guardrails",)

    def error(key: str | None, message: str, sub: tuple[int, ...] = ()) -> None:
        key_path: KeyPath = base if key is None else (*base, key, *sub)
        problems.append(Diagnostic(Location(path, line_of(lines, key_path), key_path), message))

    for key in raw:
        if key not in GUARDRAIL_KEYS:
            close = difflib.get_close_matches(key, GUARDRAIL_KEYS, n=1)
            guess = f"did you mean {close[0]!r}? " if close else ""
            error(key, f"unknown guardrail {key!r} ({guess}valid: {', '.join(GUARDRAIL_KEYS)})")

    max_lifetime = None
    if "max_lifetime" in raw:
        value = raw["max_lifetime"]
        if not isinstance(value, str):
            error("max_lifetime", f"expected a duration string ({DURATION_HELP})")
        else:
            try:
                max_lifetime = parse_duration(value)
            except ValueError as exc:
                error("max_lifetime", str(exc))

    flags: dict[str, bool] = {}
    for key, default in (
        ("require_expiry", False),
        ("allow_unscoped", True),
        ("allow_full_run_mode", True),
    ):
        value = raw.get(key, default)
        if not isinstance(value, bool):
            error(key, "expected true or false")
            value = default
        flags[key] = value

    forbidden: set[tuple[AccountGroup, Permission]] = set()
    raw_forbidden = raw.get("forbidden", [])
    if not isinstance(raw_forbidden, list):
        error("forbidden", 'expected an array of "group:permission" strings')
        raw_forbidden = []
    groups = ", ".join(g.value for g in AccountGroup)
    for i, item in enumerate(raw_forbidden):
        if not isinstance(item, str) or item.count(":") != 1:
            error(
                "forbidden",
                f'expected "group:permission" (e.g. "schedules:create"), got {item!r}',
                (i,),
            )
            continue
        group_name, perm_name = item.split(":")
        try:
            group = AccountGroup(group_name)
        except ValueError:
            error("forbidden", f"unknown group {group_name!r} in {item!r} (valid: {groups})", (i,))
            continue
        valid = _group_permissions(group)
        try:
            perm = Permission(perm_name)
        except ValueError:
            perm = None
        if perm is None or perm not in valid:
            names = ", ".join(sorted(p.value for p in valid))
            error(
                "forbidden", f"{group_name} has no permission {perm_name!r} (valid: {names})", (i,)
            )
            continue
        forbidden.add((group, perm))

    required: list[str] = []
    raw_required = raw.get("required_labels", [])
    if not isinstance(raw_required, list) or not all(isinstance(x, str) for x in raw_required):
        error("required_labels", "expected an array of label names (strings)")
    else:
        required = list(raw_required)

    if len(problems) > before:
        return None
    return Guardrails(
        max_lifetime=max_lifetime,
        require_expiry=flags["require_expiry"],
        allow_unscoped=flags["allow_unscoped"],
        allow_full_run_mode=flags["allow_full_run_mode"],
        forbidden=frozenset(forbidden),
        required_labels=tuple(required),
        source=path,
        line=line_of(lines, base),
        key_lines={
            k[1]: v
            for k, v in lines.items()
            if len(k) >= 2 and k[0] == "guardrails" and isinstance(k[1], str)
        },
    )


def check_guardrails(policy: TokenPolicy, guardrails: Guardrails) -> list[Diagnostic]:
    """Every guardrail ``policy`` breaks, as errors at the policy's offending key."""
    out: list[Diagnostic] = []

    def broken(location: Location, message: str, rail: str) -> None:
        out.append(
            Diagnostic(
                location,
                f"{message} (breaks guardrail {rail} at {guardrails.location(rail)})",
                policy.name,
            )
        )

    scope = policy.scope
    if guardrails.require_expiry and policy.expires_after is None:
        broken(
            policy.location("expires_after"),
            "no expires_after: tokens would never expire",
            "require_expiry",
        )
    if guardrails.max_lifetime is not None:
        limit = format_duration(guardrails.max_lifetime)
        if policy.expires_after is None:
            broken(
                policy.location("expires_after"),
                f"no expires_after, but tokens may live at most {limit}",
                "max_lifetime",
            )
        elif policy.expires_after > guardrails.max_lifetime:
            broken(
                policy.location("expires_after"),
                f"expires_after {format_duration(policy.expires_after)} is longer than the "
                f"allowed {limit}",
                "max_lifetime",
            )
    if scope.unscoped and not guardrails.allow_unscoped:
        broken(
            policy.location("unscoped"),
            "unscoped (full-access) tokens are not allowed",
            "allow_unscoped",
        )
    if (
        not scope.unscoped
        and scope.actor_run_mode is RunMode.FULL
        and not guardrails.allow_full_run_mode
    ):
        broken(
            policy.location("actor_run_mode"),
            'actor_run_mode "full" gives runs an unscoped token; use "restricted"',
            "allow_full_run_mode",
        )
    for group, perm in sorted(guardrails.forbidden):
        label = f"{group.value}:{perm.value}"
        if scope.unscoped:
            broken(
                policy.location("unscoped"),
                f"an unscoped token holds {label}, which no token may hold",
                "forbidden",
            )
            continue
        account = scope.account_permissions(group)
        if _holds(account, perm):
            broken(
                policy.location("account", group.value),
                f"account-level {label} is forbidden" + _implied(account, perm),
                "forbidden",
            )
        for i, grant in enumerate(scope.resources):
            if GROUP_OF[grant.type] is group and _holds(grant.permissions, perm):
                broken(
                    _resource_location(policy, grant.type.value, grant.id, i),
                    f"{perm.value} on {grant.type.value} {grant.id!r} is forbidden ({label})"
                    + _implied(grant.permissions, perm),
                    "forbidden",
                )
    for label in guardrails.required_labels:
        if not policy.labels.get(label, "").strip():
            broken(
                policy.location("labels"), f"missing required label {label!r}", "required_labels"
            )
    return out


def _holds(granted: frozenset[Permission], perm: Permission) -> bool:
    # Write implies read (Apify's rule, D3): a forbidden read is held through write too.
    return perm in granted or (perm is Permission.READ and Permission.WRITE in granted)


def _implied(granted: frozenset[Permission], perm: Permission) -> str:
    return "" if perm in granted else " (write implies read)"


def _resource_location(policy: TokenPolicy, rtype: str, rid: str, index: int) -> Location:
    # Grants keep file order, so the index is the [[token.resource]] entry's index.
    del rtype, rid
    return policy.location("resource", index, "permissions")
