"""Due detection: is a governed token due for rotation, and why.

Due-ness is judged by tokenguard's clock (injected by callers), never the platform's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from tokenguard.policy.model import TokenPolicy
from tokenguard.vault.records import TokenRecord

#: Added to the policy's grace for the default ``--expiring-within`` window: a token must
#: be replaced early enough that its successor is live for a whole grace before it expires,
#: with room for a few missed scheduler runs.
DEFAULT_MARGIN = timedelta(hours=1)


class DueReason(StrEnum):
    """Why a token is due."""

    AGE = "age"  # older than the policy's rotate_after (or of unknown age)
    EXPIRING = "expiring"  # expires within the window
    COMPROMISED = "compromised"  # marked by `rotate --now`
    POLICY_CHANGED = "policy-changed"  # issued from a policy whose digest has since changed


def expiring_window(policy: TokenPolicy, override: timedelta | None = None) -> timedelta:
    """The ``--expiring-within`` window for ``policy``.

    Default: grace + :data:`DEFAULT_MARGIN`, capped at half the policy's lifetime — a
    window as long as the lifetime would make every fresh token due at once and rotate it on
    every run.
    """
    if override is not None:
        return override
    window = policy.grace + DEFAULT_MARGIN
    if policy.expires_after is not None:
        window = min(window, policy.expires_after / 2)
    return window


def due_reasons(
    record: TokenRecord,
    policy: TokenPolicy,
    *,
    now: datetime,
    expiring_within: timedelta | None = None,
) -> tuple[DueReason, ...]:
    """All reasons ``record`` (an active token of ``policy``) is due at ``now``; () if none.

    A record without ``created_at`` counts as old when the policy has a ``rotate_after``: a
    token of unknown age is the kind rotation exists for. A record without a
    ``policy_digest`` (added by hand) is never "policy changed".
    """
    reasons: list[DueReason] = []
    if record.compromised:
        reasons.append(DueReason.COMPROMISED)
    if policy.rotate_after is not None and (
        record.created_at is None or now - record.created_at >= policy.rotate_after
    ):
        reasons.append(DueReason.AGE)
    if record.expires_at is not None and record.expires_at - now <= expiring_window(
        policy, expiring_within
    ):
        reasons.append(DueReason.EXPIRING)
    if record.policy_digest and policy.digest and record.policy_digest != policy.digest:
        reasons.append(DueReason.POLICY_CHANGED)
    return tuple(reasons)
