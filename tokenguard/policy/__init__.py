"""Policies as code: TOML policy files -> validated policies -> a plan -> issued tokens.

Load and validate with :func:`load_policies` (no network); compare with the vault and the
platform with :func:`plan`; carry the plan out with :func:`apply`. :func:`issue_token` is the
one place a token is issued from a policy (the rotation job uses it too).
"""

from __future__ import annotations

from tokenguard.policy.durations import format_duration, parse_duration
from tokenguard.policy.guardrails import check_guardrails
from tokenguard.policy.load import expand_paths, load_policies, load_policies_from_text
from tokenguard.policy.model import (
    Diagnostic,
    Guardrails,
    Location,
    PolicySet,
    PolicyValidationError,
    Severity,
    TokenPolicy,
    compute_digest,
)
from tokenguard.policy.plan import (
    ActionKind,
    AppliedAction,
    ApplyResult,
    Plan,
    PlanAction,
    PolicyVault,
    ReplaceCause,
    apply,
    issue_token,
    next_serial,
    plan,
    platform_serial,
    record_serial,
)
from tokenguard.policy.resolve import ResolvedResource, ResourceResolver

__all__ = [
    "ActionKind",
    "AppliedAction",
    "ApplyResult",
    "Diagnostic",
    "Guardrails",
    "Location",
    "Plan",
    "PlanAction",
    "PolicySet",
    "PolicyValidationError",
    "PolicyVault",
    "ReplaceCause",
    "ResolvedResource",
    "ResourceResolver",
    "Severity",
    "TokenPolicy",
    "apply",
    "check_guardrails",
    "compute_digest",
    "expand_paths",
    "format_duration",
    "issue_token",
    "load_policies",
    "load_policies_from_text",
    "next_serial",
    "parse_duration",
    "plan",
    "platform_serial",
    "record_serial",
]
