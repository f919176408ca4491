"""Indirect routes: how a token reaches more than its scope says, drawn as chains.

- FULL run mode: Run on an Actor -> the run gets an unscoped token -> everything.
- Schedules: create/write a schedule + a target it may schedule -> scheduled runs are always
  unscoped -> everything.
- Webhooks: Run on an Actor (or a task it may run) -> it may create webhooks there -> they are
  dispatched later with the token's scope.
- Anonymous reads: general resource access "anyone with ID can read" -> storages and runs,
  per resource (a storage's or run's own setting takes precedence, as in the scope model).

The triggers come from :mod:`tokenguard.permissions` (``unscoped_run_paths``,
``schedule_escalation_paths``, ``webhook_conditions``, ``decide``); this module turns them into
concrete chains through the account's resources and into findings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from tokenguard.audit.findings import Finding, FindingKind, make_finding
from tokenguard.audit.report import EscalationPath, TokenEntry, resource_key
from tokenguard.permissions import (
    STORAGE_KINDS,
    Account,
    AccountGroup,
    EffectiveAccess,
    GeneralAccess,
    Operation,
    Permission,
    Resource,
    ResourceIndex,
    ResourceKind,
    ScheduleAction,
    ScheduleActionType,
    TokenContext,
    anonymous_read_allowed,
    decide,
    schedule_escalation_paths,
    unscoped_run_paths,
)

EVERYTHING = "everything in the account (unscoped token)"


def _label(r: Resource) -> str:
    return f"{r.kind.value} {r.tilde_name or r.id}"


def _reason(ea: EffectiveAccess, r: Resource, perm: Permission) -> str | None:
    access = ea[r]
    if perm not in access.permissions:
        return None
    for text in access.reasons:
        head, _, reason = text.partition(" via ")
        if head == perm.value:
            return reason
    return perm.value


#: At most this many chains per token and route (the finding counts them all).
MAX_PATHS = 10


def full_run_paths(
    token: TokenEntry, ea: EffectiveAccess, actors: Sequence[Resource]
) -> list[EscalationPath]:
    """Runs of Actors the token may start in FULL run mode (tasks need Run on the Actor too)."""
    scope = token.scope
    if scope is None or scope.unscoped or not unscoped_run_paths(scope):
        return []
    out: list[EscalationPath] = []
    for r in actors:
        if len(out) >= MAX_PATHS:
            break
        why = _reason(ea, r, Permission.RUN)
        if why is None:
            continue
        out.append(
            EscalationPath(
                token.key,
                FindingKind.ESCALATION_FULL_RUN.value,
                (
                    f"token {token.name}",
                    f"run {_label(r)} ({why})",
                    "actorRunMode=full: the run gets an unscoped token",
                    EVERYTHING,
                ),
                via=resource_key(r.kind, r.id),
            )
        )
    if not out:
        # Account-level Run with no Actor yet: the route opens with the first Actor.
        for trigger in unscoped_run_paths(scope):
            out.append(
                EscalationPath(
                    token.key,
                    FindingKind.ESCALATION_FULL_RUN.value,
                    (f"token {token.name}", trigger, "the run gets an unscoped token", EVERYTHING),
                )
            )
    return out


def schedule_paths(
    token: TokenEntry,
    ea: EffectiveAccess,
    index: ResourceIndex,
    account: Account,
    by_kind: Mapping[ResourceKind, Sequence[Resource]],
    *,
    now: datetime,
) -> list[EscalationPath]:
    """Schedules the token may create or change to trigger a target it may schedule."""
    scope = token.scope
    if scope is None or scope.unscoped or not schedule_escalation_paths(scope):
        return []
    ctx = TokenContext(token.token_id or "", scope, token.expires_at, token.on_platform is False)
    if ctx.invalid_reason(now) is not None:
        return []
    targets: list[tuple[ScheduleAction, Resource, str]] = []
    for r in by_kind.get(ResourceKind.ACTOR, ()):
        why = _reason(ea, r, Permission.RUN)
        if why is not None:
            targets.append((ScheduleAction(ScheduleActionType.RUN_ACTOR, r.id), r, why))
        if len(targets) >= MAX_PATHS:
            break
    for r in by_kind.get(ResourceKind.TASK, ()):
        if len(targets) >= 2 * MAX_PATHS:
            break
        why = _reason(ea, r, Permission.READ)
        if why is not None:
            targets.append((ScheduleAction(ScheduleActionType.RUN_ACTOR_TASK, r.id), r, why))
    may_create = Permission.CREATE in scope.account_permissions(AccountGroup.SCHEDULES)
    # Only schedules it may write can be changed (D8: update needs write on the schedule).
    writable = [
        s for s in by_kind.get(ResourceKind.SCHEDULE, ()) if Permission.WRITE in ea[s].permissions
    ]
    out: list[EscalationPath] = []
    for action, target, why in targets:
        if len(out) >= MAX_PATHS:
            break
        verb = "run" if action.type is ScheduleActionType.RUN_ACTOR else "run task"
        step_target = f"schedule action: {verb} {_label(target)} ({why})"
        create = (
            decide(
                ctx,
                Operation.SCHEDULE_CREATE,
                Resource(ResourceKind.SCHEDULE, "", actions=(action,)),
                account,
                related=index,
                now=now,
            )
            if may_create
            else None
        )
        if create is not None and create.allowed:
            out.append(
                EscalationPath(
                    token.key,
                    FindingKind.ESCALATION_SCHEDULE.value,
                    (
                        f"token {token.name}",
                        f"create a schedule ({create.reasons[0]})",
                        step_target,
                        "scheduled runs always get an unscoped token",
                        EVERYTHING,
                    ),
                    via=resource_key(target.kind, target.id),
                )
            )
            continue
        for sched in writable:
            update = decide(
                ctx,
                Operation.SCHEDULE_UPDATE,
                sched,
                account,
                related=index,
                now=now,
                new=replace(sched, actions=(action,)),
            )
            if update.allowed:
                out.append(
                    EscalationPath(
                        token.key,
                        FindingKind.ESCALATION_SCHEDULE.value,
                        (
                            f"token {token.name}",
                            f"change {_label(sched)} ({update.reasons[0]})",
                            step_target,
                            "scheduled runs always get an unscoped token",
                            EVERYTHING,
                        ),
                        via=resource_key(sched.kind, sched.id),
                    )
                )
                break
    return out


def webhook_paths(
    token: TokenEntry,
    ea: EffectiveAccess,
    by_kind: Mapping[ResourceKind, Sequence[Resource]],
    *,
    now: datetime,
) -> list[EscalationPath]:
    """Actors and tasks on which the token may create webhooks (dispatched with its scope).

    D14: webhooks on an Actor need Run on it; on a task, what running the task needs — which
    is exactly the ``run`` permission :func:`effective_access` reports for Actors and tasks
    (the same requirements as ``permissions.webhook_conditions``, without another pass over
    every resource).
    """
    scope = token.scope
    if scope is None or scope.unscoped:
        return []
    ctx = TokenContext(token.token_id or "", scope, token.expires_at, token.on_platform is False)
    if ctx.invalid_reason(now) is not None:
        return []
    grants_run = Permission.RUN in scope.account_permissions(AccountGroup.ACTORS) or any(
        Permission.RUN in g.permissions for g in scope.resources
    )
    if not grants_run:
        return []  # webhooks need Run on an Actor (directly or through a task, D14)
    out: list[EscalationPath] = []
    for kind in (ResourceKind.ACTOR, ResourceKind.TASK):
        for r in by_kind.get(kind, ()):
            if len(out) >= MAX_PATHS:
                return out
            why = _reason(ea, r, Permission.RUN)
            if why is None:
                continue
            out.append(
                EscalationPath(
                    token.key,
                    FindingKind.WEBHOOK_ROUTE.value,
                    (
                        f"token {token.name}",
                        why,
                        f"create a webhook on {_label(r)}",
                        "the webhook is dispatched later with this token's scope",
                    ),
                    via=resource_key(r.kind, r.id),
                )
            )
    return out


def route_findings(
    token: TokenEntry,
    paths: Sequence[EscalationPath],
    labels: Mapping[str, str] | None = None,
) -> list[Finding]:
    """One finding per token and route kind; its path is the first chain, sorted by via.

    ``labels`` maps resource keys to readable names for the message (``demo~crawler``).
    """
    names = labels or {}
    out: list[Finding] = []
    for kind in (
        FindingKind.ESCALATION_FULL_RUN,
        FindingKind.ESCALATION_SCHEDULE,
        FindingKind.WEBHOOK_ROUTE,
    ):
        mine = sorted((p for p in paths if p.kind == kind.value), key=lambda p: p.via or "")
        if not mine:
            continue
        first = mine[0]
        more = f" (and {len(mine) - 1} more)" if len(mine) > 1 else ""
        vias = ", ".join(names.get(p.via, p.via) for p in mine[:5] if p.via)
        message = {
            FindingKind.ESCALATION_FULL_RUN: f"Token {token.name} reaches everything: it may "
            f"start runs in FULL run mode via {vias or 'any Actor'}{more}.",
            FindingKind.ESCALATION_SCHEDULE: f"Token {token.name} reaches everything: it may "
            f"schedule {vias}{more}, and scheduled runs are unscoped.",
            FindingKind.WEBHOOK_ROUTE: f"Token {token.name} may create webhooks on {vias}"
            f"{more}; they are dispatched with its scope.",
        }[kind]
        out.append(make_finding(kind, message, token=token.key, path=first.steps))
    return out


def _opened_by_account(r: Resource, account: Account) -> bool:
    """Would ``r`` be readable by anyone with its ID if it followed the account setting?"""
    return anonymous_read_allowed(replace(r, general_access=None), account)


def anonymous_finding(
    general: GeneralAccess | None, resources: Sequence[Resource]
) -> tuple[list[EscalationPath], list[Finding]]:
    """The "anyone with ID can read" route for the whole account.

    Counts the storages and runs the scope model lets anyone read by ID because of the
    account setting: those restricted on their own are not readable (general-resource-access,
    "Per-resource access control": the resource's setting "takes precedence").
    """
    if general is None:
        return [], []
    account = Account("", general)
    opened = [
        r
        for r in resources
        if _opened_by_account(r, account) and anonymous_read_allowed(r, account)
    ]
    if not opened:
        return [], []
    storages = [r for r in opened if r.kind in STORAGE_KINDS]
    runs = [r for r in opened if r.kind is ResourceKind.RUN]
    steps = (
        "anyone (no token)",
        "knows a storage or run ID",
        "general resource access: anyone with ID can read",
        f"read {len(storages)} storages and {len(runs)} runs",
    )
    path = EscalationPath("(anyone)", FindingKind.ANONYMOUS_ACCESS.value, steps)
    finding = make_finding(
        FindingKind.ANONYMOUS_ACCESS,
        f"The account's general resource access is 'anyone with ID can read': "
        f"{len(storages)} storages and {len(runs)} runs are readable without a token.",
        path=steps,
        identity=("account",),
    )
    return [path], [finding]


def override_findings(
    general: GeneralAccess | None,
    overrides: Sequence[tuple[ResourceKind, str, str]],
    resources: Sequence[Resource],
) -> tuple[list[EscalationPath], list[Finding], list[str]]:
    """Storages and runs whose own general access opens them to anyone (and notes).

    general-resource-access, "Per-resource access control": "the resource level setting takes
    precedence over the account setting", so a storage shared with "anyone with ID" on a
    restricted account is readable without a token, and "Sharing storages by name": "anyone
    with ID or name" also opens it by ``username~name``. The scope model decides
    (:func:`~tokenguard.permissions.anonymous_read_allowed`, the same rule as the access
    matrix): one finding per resource of ``overrides`` (those with a setting of their own,
    ``Inventory.overrides``) that its own setting opens further than the account's would.
    Resources restricted on their own in an open account get a note.
    """
    account = Account("", general or GeneralAccess.RESTRICTED)
    by_key = {(r.kind, r.id): r for r in resources}
    paths: list[EscalationPath] = []
    findings: list[Finding] = []
    notes: list[str] = []
    for kind, rid in sorted({(k, i) for k, i, _ in overrides}, key=lambda o: (o[0].value, o[1])):
        res = by_key.get((kind, rid))
        if res is None or res.general_access is None:
            continue
        label, key, value = _label(res), resource_key(kind, rid), res.general_access.value
        follows = replace(res, general_access=None)  # as if it followed the account
        by_id = anonymous_read_allowed(res, account)
        by_name = anonymous_read_allowed(res, account, by_name=True)
        if anonymous_read_allowed(follows, account) and not by_id:
            notes.append(
                f"{label} is restricted on its own ({value}): not readable without a token"
            )
            continue
        if by_id <= anonymous_read_allowed(follows, account) and by_name <= (
            anonymous_read_allowed(follows, account, by_name=True)
        ):
            continue  # opens nothing the account setting does not (the account finding)
        what = "ID or name" if by_name else "ID"
        steps = (
            "anyone (no token)",
            f"knows the {what} of {label}",
            f"its own general access: {value}",
            f"read {label}",
        )
        paths.append(EscalationPath("(anyone)", FindingKind.ANONYMOUS_ACCESS.value, steps, via=key))
        findings.append(
            make_finding(
                FindingKind.ANONYMOUS_ACCESS,
                f"{label} is shared on its own ({value}): it is readable without a token, "
                "whatever the account setting says.",
                resource=key,
                path=steps,
                identity=("override", value),
                fix="Set the resource's general access back to 'Follow account setting' "
                "(Share dialog, or update it with generalAccess=FOLLOW_USER_SETTING), "
                "unless it is meant to be public.",
            )
        )
    return paths, findings, notes
