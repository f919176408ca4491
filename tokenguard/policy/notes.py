"""Notes on documented permission dependencies: said out loud, never silently applied.

Apify's rules (``permissions.py`` cites the pages): write implies read; running a task needs
Run on its Actor (and Read on the task); creating or updating a schedule needs Run on the
Actor (or Read on the task) it triggers, and scheduled runs always get an unscoped token;
Actor run mode FULL hands runs an unscoped token. The static notes here need no API; the plan
adds the ones that need to know which Actor a task or schedule uses.
"""

from __future__ import annotations

from tokenguard.permissions import AccountGroup, Permission, ResourceType, RunMode
from tokenguard.policy.model import Diagnostic, Severity, TokenPolicy


def note(policy: TokenPolicy, message: str, *key: str | int) -> Diagnostic:
    """A note about ``policy`` located at ``key``."""
    return Diagnostic(policy.location(*key), message, policy.name, Severity.NOTE)


def static_notes(policy: TokenPolicy) -> list[Diagnostic]:
    """Notes that follow from the policy text alone."""
    scope = policy.scope
    out: list[Diagnostic] = []
    if scope.unscoped:
        out.append(note(policy, "unscoped: the token can do everything on the account", "unscoped"))
        return out
    if not scope.account and not scope.resources:
        out.append(note(policy, "the scope grants nothing: the token can only authenticate"))
    for group, perms in scope.account.items():
        if Permission.WRITE in perms and Permission.READ not in perms:
            out.append(
                note(
                    policy,
                    f"write implies read: the token can also read all {group.value}",
                    "account",
                    group.value,
                )
            )
    for i, grant in enumerate(scope.resources):
        if Permission.WRITE in grant.permissions and Permission.READ not in grant.permissions:
            out.append(
                note(
                    policy,
                    f"write implies read: the token can also read {grant.type.value} {grant.id!r}",
                    "resource",
                    i,
                    "permissions",
                )
            )
    runs_any = Permission.RUN in scope.account_permissions(AccountGroup.ACTORS) or any(
        g.type is ResourceType.ACTOR and Permission.RUN in g.permissions for g in scope.resources
    )
    if Permission.CREATE in scope.account_permissions(AccountGroup.TASKS) and not runs_any:
        out.append(
            note(
                policy,
                "tasks:create without Run on any Actor: creating a task needs Run on its Actor",
                "account",
                "tasks",
            )
        )
    if Permission.CREATE in scope.account_permissions(AccountGroup.SCHEDULES):
        out.append(
            note(
                policy,
                "schedules:create: scheduled runs always get an unscoped token, so with Run on "
                "an Actor this token can start runs that reach everything",
                "account",
                "schedules",
            )
        )
    if scope.actor_run_mode is RunMode.FULL and runs_any:
        out.append(
            note(
                policy,
                'actor_run_mode "full": runs this token starts get an unscoped token',
                "actor_run_mode",
            )
        )
    if (
        policy.expires_after is not None
        and policy.rotate_after is not None
        and policy.rotate_after + policy.grace > policy.expires_after
    ):
        out.append(
            note(
                policy,
                "rotate_after + grace exceeds expires_after: a replaced token expires before "
                "its grace period ends",
                "grace",
            )
        )
    return out
