"""TokenPool: an ordered set of tokens with health state, shared by threads and asyncio tasks.

The pool decides which token a request uses; :class:`~tokenguard.failover.auth.FailoverAuth`
reports back what happened. The first healthy token in order serves every request (the vault's
active token first), so a pool never spreads load across tokens the way a round-robin would:
a token is left only when it is dead (401) or lacks scope for a resource (403).

Token state is tracked per token object, not per position, so requests still in flight on a
token that just died cannot mark the next token dead. State changes happen under one lock whose
critical sections never block or await, so the pool is safe for threads and event loops alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol, runtime_checkable

from tokenguard.errors import TokenGuardError, UsageError
from tokenguard.failover.errors import InsufficientScope, NoUsableToken
from tokenguard.failover.events import EventKind, EventListener, FailoverEvent, dispatch, logger
from tokenguard.failover.routing import Access, covers
from tokenguard.permissions import Scope
from tokenguard.secrets import Secret
from tokenguard.vault.records import TokenRecord, TokenStatus

__all__ = [
    "PoolStatus",
    "PoolToken",
    "TokenHealth",
    "TokenPool",
    "TokenSnapshot",
    "VaultSource",
]


class TokenHealth(StrEnum):
    """The state of one token in a pool."""

    HEALTHY = "healthy"
    COOLING = "cooling"  # rate-limited (429): requests wait on it, they do not switch tokens
    DEAD = "dead"  # rejected with 401: never used again by this pool


@dataclass(frozen=True, slots=True)
class PoolToken:
    """A token handed to a pool, with what is known about it.

    ``scope`` is the recorded scope (``Scope.full()`` for an unscoped token; ``None`` when
    unknown). It drives 403 routing; a token of unknown scope is treated like an unscoped one.
    """

    secret: Secret
    name: str | None = None
    scope: Scope | None = None
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.secret, Secret):
            raise TypeError("PoolToken.secret must be a tokenguard.secrets.Secret")

    @classmethod
    def from_record(cls, record: TokenRecord) -> PoolToken:
        """The pool entry for a vault record."""
        return cls(
            secret=record.secret,
            name=record.name,
            scope=record.scope,
            expires_at=record.expires_at,
        )


@dataclass(frozen=True, slots=True)
class TokenSnapshot:
    """A non-secret view of one token's state in a pool."""

    fingerprint: str
    name: str | None
    health: TokenHealth
    reason: str | None  # why it is dead (or cooling)
    dead_since: datetime | None
    cooling_until: datetime | None
    in_flight: int
    requests: int  # requests sent with this token (each attempt counts)
    in_flight_at_death: int | None  # requests in flight on it when its first 401 arrived
    hits_after_death: int  # 401s on it after it was already known dead
    scope_known: bool
    unscoped: bool
    denied: tuple[str, ...]  # permissions this token was refused (403), e.g. "run on actor X"


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """A non-secret snapshot of a whole pool, in the pool's order."""

    tokens: tuple[TokenSnapshot, ...]

    @property
    def usable(self) -> int:
        """How many tokens are not dead."""
        return sum(1 for t in self.tokens if t.health is not TokenHealth.DEAD)

    def get(self, fingerprint: str) -> TokenSnapshot:
        """The snapshot of the token with ``fingerprint`` (KeyError if absent)."""
        for snapshot in self.tokens:
            if snapshot.fingerprint == fingerprint:
                return snapshot
        raise KeyError(fingerprint)


@runtime_checkable
class VaultSource(Protocol):
    """What a pool needs from a vault: its records and a cheap "did the file change" check."""

    def list(self) -> list[TokenRecord]:
        """All records (secrets included)."""
        ...

    def reload(self) -> bool:
        """Re-read the file if it changed; True when it did."""
        ...

    def changed_on_disk(self) -> bool:
        """A stat-only check whether the file changed since it was last read."""
        ...


_USABLE_STATUSES = (TokenStatus.ACTIVE, TokenStatus.RETIRING)


def _generation(source: VaultSource) -> int | None:
    """The vault's in-memory generation counter, when the source has one."""
    value = getattr(source, "generation", None)
    return value if isinstance(value, int) else None


def _records_to_tokens(
    records: Iterable[TokenRecord], policies: Sequence[str] | None
) -> list[PoolToken]:
    """Order vault records for a pool: active tokens first, then retiring ones.

    Within a status, tokens follow the order of ``policies`` (when given), newest first.
    Revoked, failed and pending records are never used.
    """
    chosen = [
        r
        for r in records
        if r.status in _USABLE_STATUSES and (policies is None or r.policy in policies)
    ]
    epoch = datetime.min.replace(tzinfo=UTC)

    def key(r: TokenRecord) -> tuple[int, int, float, str]:
        policy_rank = (
            policies.index(r.policy) if policies is not None and r.policy in policies else 0
        )
        created = r.created_at or epoch
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return (
            _USABLE_STATUSES.index(r.status),
            policy_rank,
            -(created - epoch).total_seconds(),
            r.name,
        )

    return [PoolToken.from_record(r) for r in sorted(chosen, key=key)]


class _Slot:
    """Mutable per-token state; only the pool mutates it, under its lock."""

    __slots__ = (
        "cooling_until",
        "dead",
        "dead_since",
        "denied",
        "fingerprint",
        "header",
        "hits_after_death",
        "in_flight",
        "in_flight_at_death",
        "reason",
        "requests",
        "token",
    )

    def __init__(self, token: PoolToken) -> None:
        self.token = token
        self.fingerprint = token.secret.fingerprint
        # Kept once so the hot path does not call reveal() per request; never rendered.
        self.header = "Bearer " + token.secret.reveal()
        self.dead = False
        self.reason: str | None = None
        self.dead_since: datetime | None = None
        self.cooling_until = 0.0  # time.monotonic() deadline
        self.in_flight = 0
        self.in_flight_at_death: int | None = None
        self.hits_after_death = 0
        self.requests = 0
        self.denied: list[str] = []

    def __repr__(self) -> str:
        return f"<token {self.fingerprint}>"

    def may_escalate_to(self) -> bool:
        """True for tokens that are (or may be) unscoped."""
        scope = self.token.scope
        return scope is None or scope.unscoped


class TokenPool:
    """Tokens in order of preference, with health state; thread-safe and asyncio-safe.

    Build one from secrets (``TokenPool([Secret(...), PoolToken(...)])``) or from the vault
    (:meth:`from_vault`). ``allow_unscoped`` lets 403 routing move a request to an unscoped
    (or unknown-scope) token; by default it never does, so a scoped program cannot quietly
    escalate to an admin token. ``on_event`` receives :class:`FailoverEvent` objects.
    """

    def __init__(
        self,
        tokens: Iterable[Secret | PoolToken] = (),
        *,
        allow_unscoped: bool = False,
        on_event: EventListener | None = None,
    ) -> None:
        self.allow_unscoped = allow_unscoped
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._listeners: list[EventListener] = [on_event] if on_event is not None else []
        self._source: VaultSource | None = None
        self._seen: int | None = None  # the vault generation the tokens were read from
        self._policies: tuple[str, ...] | None = None
        self._denied: dict[tuple[str, str | None, str, str | None], set[str]] = {}
        self._slots: list[_Slot] = self._build_slots(
            [t if isinstance(t, PoolToken) else self._wrap(t) for t in tokens], {}
        )

    @staticmethod
    def _wrap(token: object) -> PoolToken:
        if not isinstance(token, Secret):
            raise UsageError(
                "TokenPool takes tokens as tokenguard.secrets.Secret or PoolToken objects.",
                hint="Wrap each token: Secret(os.environ['APIFY_TOKEN']).",
            )
        return PoolToken(secret=token)

    @staticmethod
    def _build_slots(tokens: list[PoolToken], existing: dict[str, _Slot]) -> list[_Slot]:
        slots: list[_Slot] = []
        seen: set[str] = set()
        for token in tokens:
            fp = token.secret.fingerprint
            if fp in seen:
                continue
            seen.add(fp)
            slot = existing.get(fp)
            if slot is None:
                slot = _Slot(token)
            else:
                slot.token = token  # keep its health; refresh name/scope/expiry
            slots.append(slot)
        return slots

    @classmethod
    def from_vault(
        cls,
        vault: VaultSource,
        policy: str | Sequence[str] | None = None,
        *,
        allow_unscoped: bool = False,
        on_event: EventListener | None = None,
    ) -> TokenPool:
        """A pool over the vault's active tokens (then retiring ones), hot-reloaded.

        ``policy`` limits the pool to the tokens of one policy (or several, in preference
        order). When the vault file changes on disk (a rotation wrote a new token), the pool
        re-reads it on the next request or the next 401: a ``stat`` per request, no decrypt.
        """
        policies = (policy,) if isinstance(policy, str) else (tuple(policy) if policy else None)
        pool = cls(allow_unscoped=allow_unscoped, on_event=on_event)
        pool._source = vault
        pool._policies = policies
        pool._seen = _generation(vault)
        pool._slots = pool._build_slots(_records_to_tokens(vault.list(), policies), {})
        return pool

    def add_listener(self, listener: EventListener) -> None:
        """Register another event callback."""
        self._listeners.append(listener)

    def __len__(self) -> int:
        return len(self._slots)

    def __repr__(self) -> str:
        fps = ", ".join(s.fingerprint for s in self._slots)
        return f"TokenPool([{fps}])"

    def status(self) -> PoolStatus:
        """A non-secret snapshot of every token's state (fingerprints, never secrets)."""
        now = time.monotonic()
        wall = datetime.now(UTC)
        with self._lock:
            snaps = []
            for s in self._slots:
                cooling = not s.dead and s.cooling_until > now
                if s.dead:
                    health = TokenHealth.DEAD
                elif cooling:
                    health = TokenHealth.COOLING
                else:
                    health = TokenHealth.HEALTHY
                scope = s.token.scope
                snaps.append(
                    TokenSnapshot(
                        fingerprint=s.fingerprint,
                        name=s.token.name,
                        health=health,
                        reason=s.reason if s.dead else ("rate limited" if cooling else None),
                        dead_since=s.dead_since,
                        cooling_until=(
                            wall + timedelta(seconds=s.cooling_until - now) if cooling else None
                        ),
                        in_flight=s.in_flight,
                        requests=s.requests,
                        in_flight_at_death=s.in_flight_at_death,
                        hits_after_death=s.hits_after_death,
                        scope_known=scope is not None,
                        unscoped=scope is not None and scope.unscoped,
                        denied=tuple(s.denied),
                    )
                )
        return PoolStatus(tokens=tuple(snaps))

    def reload(self) -> bool:
        """Re-read the vault now (a pool built from secrets returns False)."""
        return self._reload(force=True)

    # -- used by FailoverAuth and the apify-client adapter ------------------------------

    def _stale(self, source: VaultSource) -> bool:
        # A stat, plus the generation in memory: another handle on the same Vault object
        # may have reloaded or written it already, which the stat alone would not show.
        return source.changed_on_disk() or _generation(source) != self._seen

    def _reload(self, *, force: bool = False, wait: bool = False) -> bool:
        """Re-read the vault if it changed; True when the pool's tokens were rebuilt.

        By default one thread re-reads and the others go on with the tokens they have.
        ``wait`` waits for a re-read in progress in another thread, then re-reads only if
        the vault is still newer than the pool (for a thread that has no usable token left);
        ``force`` waits too and always re-reads.
        """
        source = self._source
        if source is None:
            return False
        try:
            if not (force or wait or self._stale(source)):
                return False
            if not self._reload_lock.acquire(blocking=force or wait):
                return False
            try:
                # Whoever held the lock before us may have installed the new tokens already.
                if not force and not self._stale(source):
                    return False
                source.reload()
                generation = _generation(source)
                if not force and generation is not None and generation == self._seen:
                    return False
                tokens = _records_to_tokens(source.list(), self._policies)
                # Install the tokens before the reload lock is released and together with
                # the generation they came from: a thread that sees the new generation (and
                # so skips its own re-read) must also see the new tokens.
                with self._lock:
                    before = [s.fingerprint for s in self._slots]
                    self._slots = self._build_slots(tokens, {s.fingerprint: s for s in self._slots})
                    self._seen = generation
                    after = [s.fingerprint for s in self._slots]
            finally:
                self._reload_lock.release()
        except (TokenGuardError, OSError) as exc:
            # A vault that cannot be read right now must not break requests in flight.
            logger.warning("failover: vault reload failed: %s", type(exc).__name__)
            return False
        if before != after:
            dispatch(
                FailoverEvent(EventKind.RELOADED, reason=f"{len(after)} tokens"),
                self._listeners,
            )
        return True

    def _acquire(self, access: Access | None = None) -> _Slot:
        """The token for the next attempt; raises when none can serve the request."""
        source = self._source
        if source is not None:
            self._reload()
        slot = self._take(access)
        if slot is None and source is not None:
            # Every token this pool knows is dead (or denied this call). A rotation that
            # revokes the old token at once has written its replacement to the vault before
            # revoking, but another thread may be re-reading the vault right now (the
            # opportunistic reload above does not wait for it). Wait for that re-read, or
            # do one, then look again. The pool lock is not held while waiting: the reload
            # lock is only ever taken before the pool lock, never inside it.
            self._reload(wait=True)
            slot = self._take(access)
        if slot is not None:
            return slot
        if access is not None and self._denied.get(access.key):
            raise self._insufficient(access)
        raise self._exhausted()

    def _take(self, access: Access | None) -> _Slot | None:
        """Claim the token for the next attempt, or None when no token can serve it."""
        with self._lock:
            denied = self._denied.get(access.key) if access is not None else None
            if denied and access is not None:
                slot = self._pick_routed(access, denied)
            else:
                slot = None
                for s in self._slots:
                    if not s.dead:
                        slot = s
                        break
            if slot is not None:
                slot.in_flight += 1
                slot.requests += 1
            return slot

    def _pick_routed(self, access: Access, denied: set[str]) -> _Slot | None:
        """First live token not denied ``access`` whose scope covers it (lock held)."""
        maybe: _Slot | None = None
        for s in self._slots:
            if s.dead or s.fingerprint in denied:
                continue
            if s.may_escalate_to():
                if self.allow_unscoped:
                    return s
                continue
            scope = s.token.scope
            assert scope is not None
            verdict = covers(scope, access)
            if verdict:
                return s
            if verdict is None and maybe is None:
                maybe = s
        return maybe

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            slot.in_flight -= 1

    def _mark_dead(self, slot: _Slot, reason: str) -> bool:
        """Mark ``slot`` dead after a 401; False when it already was (an in-flight straggler)."""
        with self._lock:
            if slot.dead:
                slot.hits_after_death += 1
                return False
            expires = slot.token.expires_at
            if expires is not None and expires.tzinfo is not None and expires <= datetime.now(UTC):
                reason += f" (its record says it expired at {expires.isoformat()})"
            slot.dead = True
            slot.reason = reason
            slot.dead_since = datetime.now(UTC)
            slot.in_flight_at_death = slot.in_flight
        return True

    def _deny(self, slot: _Slot, access: Access) -> None:
        with self._lock:
            fps = self._denied.setdefault(access.key, set())
            if slot.fingerprint not in fps:
                fps.add(slot.fingerprint)
                slot.denied.append(access.needed)

    def _has_denials(self) -> bool:
        return bool(self._denied)

    def _cool(self, slot: _Slot, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with self._lock:
            slot.cooling_until = max(slot.cooling_until, deadline)

    def _emit(self, event: FailoverEvent) -> None:
        dispatch(event, self._listeners)

    def _failures(self) -> tuple[tuple[str, str], ...]:
        out = []
        for s in self._slots:
            label = s.fingerprint + (f" ({s.token.name})" if s.token.name else "")
            out.append((label, f"dead: {s.reason}" if s.dead else "usable"))
        return tuple(out)

    def _exhausted(self) -> NoUsableToken:
        with self._lock:
            failures = self._failures()
        if not failures:
            message = "The token pool is empty: no token to send the request with."
        else:
            listed = "; ".join(f"{fp}: {why}" for fp, why in failures)
            message = f"No usable token left in the pool: {listed}."
        err = NoUsableToken(
            message, failures=failures, status=401, error_type="user-or-token-not-found"
        )
        self._emit(FailoverEvent(EventKind.EXHAUSTED, reason=message))
        return err

    def _insufficient(self, access: Access) -> InsufficientScope:
        with self._lock:
            denied = self._denied.get(access.key, set())
            failures = []
            for s in self._slots:
                label = s.fingerprint + (f" ({s.token.name})" if s.token.name else "")
                if s.dead:
                    why = f"dead: {s.reason}"
                elif s.fingerprint in denied:
                    why = f"denied {access.needed} (HTTP 403)"
                elif s.may_escalate_to() and not self.allow_unscoped:
                    why = (
                        "unscoped token, not used for scope routing (allow_unscoped=False)"
                        if s.token.scope is not None
                        else "scope unknown, not used for scope routing (allow_unscoped=False)"
                    )
                else:
                    why = f"scope lacks {access.needed}"
                failures.append((label, why))
        listed = "; ".join(f"{fp}: {why}" for fp, why in failures)
        message = f"No token in the pool has the scope needed ({access.needed}): {listed}."
        err = InsufficientScope(message, needed=access.needed, failures=tuple(failures))
        self._emit(FailoverEvent(EventKind.EXHAUSTED, reason=message, status=403))
        return err
