"""Inventory: the tokens to audit and the resources of the account.

Tokens come from the vault (governed), from ``--token-env`` / ``--tokens-file`` (tokens the
audit is handed), from the management token, and from the platform's token list (tokens
nobody handed us: ungoverned). They are matched by platform token ID where known, by
fingerprint between tokens we hold, and by the token API's ``tokenPreview`` (last four
characters) when exactly one candidate fits.

Resources are listed through the management token, all pages, and the account's general
resource access setting is detected by reading one storage by ID without any token. A storage's
or run's own general access comes from its list item (``generalAccess``) into
``Resource.general_access``; the scope model applies it per resource.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tokenguard.api.client import ApifyApi
from tokenguard.api.issuer import HttpTokenIssuer, TokenInfo
from tokenguard.audit.report import TokenEntry, TokenSource
from tokenguard.errors import ApiError, ApiUnreachableError, UsageError
from tokenguard.permissions import (
    STORAGE_KINDS,
    GeneralAccess,
    Resource,
    ResourceKind,
    ScheduleAction,
    ScheduleActionType,
)
from tokenguard.secrets import Secret
from tokenguard.vault.records import TokenRecord, TokenStatus

#: Collection path of each resource kind (API v2).
LIST_PATHS: Mapping[ResourceKind, str] = {
    ResourceKind.ACTOR: "/actors",
    ResourceKind.TASK: "/actor-tasks",
    ResourceKind.DATASET: "/datasets",
    ResourceKind.KEY_VALUE_STORE: "/key-value-stores",
    ResourceKind.REQUEST_QUEUE: "/request-queues",
    ResourceKind.SCHEDULE: "/schedules",
    ResourceKind.WEBHOOK: "/webhooks",
    ResourceKind.RUN: "/actor-runs",
}


@dataclass(frozen=True, slots=True)
class HeldToken:
    """A token the audit was handed outside the vault (env var, tokens file, management)."""

    name: str
    source: TokenSource
    secret: Secret


@dataclass(frozen=True, slots=True)
class InventoryToken:
    """A token with what the audit knows about it (the secret only when it holds it)."""

    entry: TokenEntry
    secret: Secret | None = None
    record: TokenRecord | None = None
    platform: TokenInfo | None = None


@dataclass(frozen=True, slots=True)
class Inventory:
    """Tokens and resources of one account."""

    tokens: tuple[InventoryToken, ...]
    resources: tuple[Resource, ...]
    general_access: GeneralAccess | None
    username: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def overrides(self) -> tuple[tuple[ResourceKind, str, str], ...]:
        """Resources whose own general access overrides the account setting, as
        ``(kind, id, value)`` (read from ``Resource.general_access``)."""
        return tuple(
            (r.kind, r.id, r.general_access.value)
            for r in self.resources
            if r.general_access is not None
        )


# --------------------------------------------------------------------------- held tokens


def tokens_from_env(
    names: Iterable[str], environ: Mapping[str, str] | None = None
) -> list[HeldToken]:
    """One :class:`HeldToken` per environment variable name (missing/empty: UsageError)."""
    env = os.environ if environ is None else environ
    out: list[HeldToken] = []
    for var in names:
        value = env.get(var, "").strip()
        if not value:
            raise UsageError(
                f"--token-env {var}: the environment variable is not set or empty",
                hint=f"Export {var} with the token to audit, or drop the option.",
            )
        out.append(HeldToken(f"env:{var}", TokenSource.ENV, Secret(value)))
    return out


def read_tokens_file(path: Path) -> list[HeldToken]:
    """Read ``--tokens-file``: one token per line, ``NAME=TOKEN`` or a bare token.

    Blank lines and ``#`` comments are skipped. Lines are never echoed in errors (they hold
    secrets). A file readable by group or others is refused, as ssh does.
    """
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(
            f"Tokens file {path} does not exist", hint="Check the --tokens-file path."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"Cannot read tokens file {path}: {type(exc).__name__}",
            hint="Check the file and its permissions.",
        ) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(
            f"Tokens file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):o})",
            hint=f"Run `chmod 600 {path}`: it holds secrets.",
        )
    out: list[HeldToken] = []
    names: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" in line:
            name, _, value = line.partition("=")
            name, value = name.strip(), value.strip()
        else:
            name, value = f"line{lineno}", line
        if not name or not value or any(c.isspace() for c in value):
            raise UsageError(
                f"Tokens file {path}, line {lineno}: expected NAME=TOKEN or a bare token",
                hint="One token per line; '#' starts a comment.",
            )
        if name in names:
            raise UsageError(
                f"Tokens file {path}, line {lineno}: name {name!r} appears twice",
                hint="Give each token a unique name.",
            )
        names.add(name)
        out.append(HeldToken(f"file:{name}", TokenSource.FILE, Secret(value)))
    return out


# --------------------------------------------------------------------------- resources


def _str(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def parse_resource(kind: ResourceKind, item: Mapping[str, Any], username: str | None) -> Resource:
    """Facts of one listed resource (list items of the API's ``*Short`` schemas)."""
    rid = str(item["id"])
    name = _str(item.get("name"))
    owner = _str(item.get("username")) or username
    if kind is ResourceKind.TASK:
        return Resource(kind, rid, name, owner, actor_id=_str(item.get("actId")))
    if kind is ResourceKind.RUN:
        return Resource(
            kind,
            rid,
            actor_id=_str(item.get("actId")),
            task_id=_str(item.get("actorTaskId")),
            default_dataset_id=_str(item.get("defaultDatasetId")),
            default_key_value_store_id=_str(item.get("defaultKeyValueStoreId")),
            default_request_queue_id=_str(item.get("defaultRequestQueueId")),
            general_access=listed_general_access(item),
        )
    if kind is ResourceKind.SCHEDULE:
        actions: list[ScheduleAction] = []
        for action in item.get("actions") or []:
            if not isinstance(action, Mapping):
                continue
            if action.get("type") == "RUN_ACTOR" and action.get("actorId"):
                actions.append(ScheduleAction(ScheduleActionType.RUN_ACTOR, str(action["actorId"])))
            elif action.get("type") == "RUN_ACTOR_TASK" and action.get("actorTaskId"):
                actions.append(
                    ScheduleAction(ScheduleActionType.RUN_ACTOR_TASK, str(action["actorTaskId"]))
                )
        return Resource(kind, rid, name, owner, actions=tuple(actions))
    if kind is ResourceKind.WEBHOOK:
        cond = item.get("condition") or {}
        return Resource(
            kind,
            rid,
            actor_id=_str(cond.get("actorId")),
            task_id=_str(cond.get("actorTaskId")),
        )
    if kind in STORAGE_KINDS:
        return Resource(kind, rid, name, owner, general_access=listed_general_access(item))
    return Resource(kind, rid, name, owner)


def listed_general_access(item: Mapping[str, Any]) -> GeneralAccess | None:
    """A listed storage's or run's own ``generalAccess`` (DatasetListItem, KeyValueStore,
    RequestQueueShort, Run); None when it follows the account (``FOLLOW_USER_SETTING``), is
    absent, or is a value this version does not know."""
    value = item.get("generalAccess")
    try:
        return GeneralAccess(value) if isinstance(value, str) else None
    except ValueError:
        return None


def collect_resources(api: ApifyApi, username: str | None) -> tuple[Resource, ...]:
    """Every resource of the account (all pages of every collection).

    Schedules are re-read one by one when the list omits their actions, because the
    schedule route findings depend on what a schedule triggers.
    """
    out: list[Resource] = []
    for kind, path in LIST_PATHS.items():
        # Unnamed storages (runs' default storages) are listed only on request.
        params: dict[str, Any] = {}
        if kind is ResourceKind.ACTOR:
            params["my"] = 1
        elif kind in STORAGE_KINDS:
            params["unnamed"] = 1
        for listed in api.iter_list(path, **params):
            item = listed
            if kind is ResourceKind.SCHEDULE and "actions" not in listed:
                item = api.get_data(f"/schedules/{listed['id']}")
            out.append(parse_resource(kind, item, username))
    return tuple(out)


def detect_general_access(
    api: ApifyApi, resources: Sequence[Resource], overridden: Collection[str] = ()
) -> GeneralAccess | None:
    """Read one storage (or run) by ID without a token: 200 means anyone with the ID can read.

    Resources with their own general access (``Resource.general_access``) and those in
    ``overridden`` (IDs) say nothing about the account setting and are not tried. ``None``
    when the account has no storage or run to try (the setting cannot be observed).
    """
    anonymous = api.with_token(None)
    paths = {
        ResourceKind.DATASET: "/datasets/",
        ResourceKind.KEY_VALUE_STORE: "/key-value-stores/",
        ResourceKind.REQUEST_QUEUE: "/request-queues/",
        ResourceKind.RUN: "/actor-runs/",
    }
    # Storages first (the documented example), then runs, which the setting also covers.
    candidates = [
        r
        for r in (
            *(r for r in resources if r.kind in STORAGE_KINDS),
            *(r for r in resources if r.kind is ResourceKind.RUN),
        )
        if r.id not in overridden and r.general_access is None
    ]
    for res in candidates[:5]:
        path = paths[res.kind] + res.id
        try:
            anonymous.request("GET", path)
        except ApiUnreachableError:
            raise
        except ApiError as exc:
            if exc.status in (401, 403):
                return GeneralAccess.RESTRICTED
            continue  # 404 (deleted meanwhile) or another error: try the next one
        return GeneralAccess.ANYONE_WITH_ID_CAN_READ
    return None


# --------------------------------------------------------------------------- tokens


def _entry_from_record(record: TokenRecord) -> TokenEntry:
    return TokenEntry(
        key=record.name,
        name=record.name,
        sources=(TokenSource.VAULT,),
        governed=record.policy is not None,
        fingerprint=record.fingerprint,
        token_id=record.issuer_id,
        policy=record.policy,
        status=record.status.value,
        scope=record.scope,
        created_at=record.created_at,
        expires_at=record.expires_at,
    )


def merge_tokens(
    records: Sequence[TokenRecord],
    held: Sequence[HeldToken],
    platform: Sequence[TokenInfo] | None,
    *,
    policy_names: frozenset[str] | None = None,
) -> tuple[tuple[InventoryToken, ...], tuple[str, ...]]:
    """Match vault records, held tokens and platform tokens into one list (see module doc).

    ``platform=None`` means the token list could not be read (a scoped management token):
    nothing is then known about tokens beyond what we hold. ``policy_names``, when given,
    decides "governed": a record whose policy is not among them is not covered.
    """
    notes: list[str] = []
    tokens: list[InventoryToken] = []
    by_fp: dict[str, int] = {}
    # Revoked/failed records are no longer meant to work: they join the inventory only if
    # the platform still lists them (a revocation that did not happen).
    gone = {
        r.issuer_id: r
        for r in records
        if r.status in (TokenStatus.REVOKED, TokenStatus.FAILED) and r.issuer_id
    }
    for record in records:
        if record.status in (TokenStatus.REVOKED, TokenStatus.FAILED):
            continue
        entry = _entry_from_record(record)
        if policy_names is not None and record.policy not in policy_names:
            entry = replace(entry, governed=False)
        by_fp.setdefault(record.fingerprint, len(tokens))
        tokens.append(InventoryToken(entry, record.secret, record=record))
    for h in held:
        fp = h.secret.fingerprint
        if fp in by_fp:
            i = by_fp[fp]
            t = tokens[i]
            if h.source not in t.entry.sources:
                tokens[i] = replace(t, entry=replace(t.entry, sources=(*t.entry.sources, h.source)))
            continue
        by_fp[fp] = len(tokens)
        tokens.append(
            InventoryToken(
                TokenEntry(
                    key=h.name,
                    name=h.name,
                    sources=(h.source,),
                    governed=False,
                    fingerprint=fp,
                ),
                h.secret,
            )
        )
    if platform is None:
        notes.append(
            "The platform's token list could not be read (management token not unscoped?): "
            "ungoverned tokens on the platform are not listed."
        )
        return tuple(tokens), tuple(notes)

    for info in platform:
        stale = gone.get(info.id)
        if stale is not None and stale.fingerprint not in by_fp:
            by_fp[stale.fingerprint] = len(tokens)
            tokens.append(InventoryToken(_entry_from_record(stale), stale.secret, record=stale))
    by_id = {t.entry.token_id: i for i, t in enumerate(tokens) if t.entry.token_id}
    matched: set[str] = set()
    for info in platform:
        if info.id in by_id:
            i = by_id[info.id]
            tokens[i] = _attach(tokens[i], info)
            matched.add(info.id)
    # Held tokens without a known ID: match by the last four characters when unambiguous.
    unmatched_platform = [p for p in platform if p.id not in matched]
    for i, t in enumerate(tokens):
        if t.entry.token_id or t.secret is None:
            continue
        tail = t.secret.reveal()[-4:]
        candidates = [
            p for p in unmatched_platform if p.token_preview and p.token_preview.endswith(tail)
        ]
        if len(candidates) == 1:
            tokens[i] = _attach(t, candidates[0])
            matched.add(candidates[0].id)
            unmatched_platform.remove(candidates[0])
    for info in platform:
        if info.id in matched:
            continue
        tokens.append(
            InventoryToken(
                TokenEntry(
                    key=f"platform:{info.id}",
                    name=info.name,
                    sources=(TokenSource.PLATFORM,),
                    governed=False,
                    token_id=info.id,
                    scope=info.scope,
                    created_at=info.created_at,
                    expires_at=info.expires_at,
                    on_platform=True,
                ),
                platform=info,
            )
        )
    ids_on_platform = {p.id for p in platform}
    for i, t in enumerate(tokens):
        if t.platform is None and t.entry.token_id is not None:
            tokens[i] = replace(
                t, entry=replace(t.entry, on_platform=t.entry.token_id in ids_on_platform)
            )
    return tuple(tokens), tuple(notes)


def _attach(token: InventoryToken, info: TokenInfo) -> InventoryToken:
    """Attach the platform's view: its scope is what the platform enforces."""
    e = token.entry
    return replace(
        token,
        platform=info,
        entry=replace(
            e,
            token_id=info.id,
            scope=info.scope,
            created_at=e.created_at or info.created_at,
            expires_at=info.expires_at if info.expires_at is not None else e.expires_at,
            on_platform=True,
        ),
    )


def build_inventory(
    api: ApifyApi,
    *,
    records: Sequence[TokenRecord] = (),
    held: Sequence[HeldToken] = (),
    policy_names: frozenset[str] | None = None,
) -> Inventory:
    """Collect tokens and resources through ``api`` (bound to the management token)."""
    username: str | None = None
    platform: list[TokenInfo] | None
    try:
        me = api.get_data("/users/me")
        username = _str(me.get("username")) if isinstance(me, Mapping) else None
    except ApiUnreachableError:
        raise
    except ApiError as exc:
        if exc.status == 401:
            raise ApiError(
                "The management token was rejected (HTTP 401)",
                hint="Set APIFY_TOKEN to a valid, unscoped token of the account.",
                status=401,
                error_type=exc.error_type,
            ) from None
        # A scoped management token cannot read /users/me (D13): carry on without a username.
    try:
        platform = HttpTokenIssuer(api).list()
    except ApiUnreachableError:
        raise
    except ApiError as exc:
        if exc.status not in (403, 404):
            raise
        platform = None
    resources = collect_resources(api, username)
    general = detect_general_access(api, resources)
    tokens, notes = merge_tokens(records, held, platform, policy_names=policy_names)
    if general is None and any(
        r.kind in STORAGE_KINDS or r.kind is ResourceKind.RUN for r in resources
    ):
        notes = (*notes, "The general resource access setting could not be detected.")
    elif general is None:
        notes = (*notes, "No storage or run to probe: general resource access is unknown.")
    return Inventory(tokens, resources, general, username, notes)
