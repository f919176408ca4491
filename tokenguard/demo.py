"""The guided demo behind ``tokenguard demo``: the whole product, end to end, in seconds.

:func:`run_demo` starts the sandbox in this process (free port, ``demo`` seed), creates a
throwaway vault unlocked by a key file, applies the example policies, runs a short workload
through :class:`~tokenguard.failover.FailoverAuth` while one of its tokens is revoked, rotates
a token at once (as after a leak), and audits the account. Each step comes back as a
:class:`DemoStep`: one plain paragraph saying what happened and the command that does it for
real, plus an optional table. Nothing here prints; the CLI renders the steps as they arrive.

The demo only ever shows fingerprints. It leaves nothing running (the sandbox thread is
joined and its port closed) and removes its temporary directory unless ``keep`` is set.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from tabulate import tabulate

from tokenguard.api.client import ApifyApi
from tokenguard.api.issuer import HttpTokenIssuer
from tokenguard.errors import ApiError, ConfigError, TokenGuardError
from tokenguard.permissions import Scope
from tokenguard.secrets import Secret
from tokenguard.vault.records import TokenRecord, TokenStatus

__all__ = [
    "DEFAULT_REPORT",
    "DemoOptions",
    "DemoResult",
    "DemoStep",
    "StepKind",
    "find_policies",
    "run_demo",
]

#: Where the HTML audit report goes unless told otherwise (relative to the working directory).
DEFAULT_REPORT = Path("tokenguard-demo-report.html")
#: The policy the workload reads with first, and the one it fails over to.
PRIMARY_POLICY = "reporting"
FALLBACK_POLICY = "ci-scraper"
#: The policy whose token "leaks" and is rotated at once.
LEAKED_POLICY = "ci-scraper"
#: A resource both workload policies may read (``demo~products``).
WORKLOAD_DATASET = "products"


class StepKind(StrEnum):
    """The demo's steps, in order."""

    SANDBOX = "sandbox"
    VAULT = "vault"
    POLICY = "policy"
    FAILOVER = "failover"
    ROTATION = "rotation"
    AUDIT = "audit"
    CLEANUP = "cleanup"


#: Headline of each step, as the CLI shows it.
TITLES: dict[StepKind, str] = {
    StepKind.SANDBOX: "Sandbox",
    StepKind.VAULT: "Vault",
    StepKind.POLICY: "Policies",
    StepKind.FAILOVER: "Failover",
    StepKind.ROTATION: "Rotation",
    StepKind.AUDIT: "Audit",
    StepKind.CLEANUP: "Clean-up",
}


@dataclass(frozen=True, slots=True)
class DemoStep:
    """One step: a plain paragraph, the real command(s), and an optional table.

    Never holds a secret: tokens appear by record name and fingerprint only.
    """

    kind: StepKind
    paragraph: str
    commands: tuple[str, ...]
    detail: str = ""
    seconds: float = 0.0

    @property
    def title(self) -> str:
        """The step's headline (``"Failover"``)."""
        return TITLES[self.kind]


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """How to run the demo.

    ``policies``: the example policy directory (default: :func:`find_policies`);
    ``report``: where the HTML audit report is written; ``keep``: keep the temporary
    directory (vault and key file) instead of removing it; ``workload``/``revoke_after``:
    requests sent through the failover client, and after how many the primary token is
    revoked; ``live_audit``: probe with every held token (read-only) as well.
    """

    policies: Path | None = None
    report: Path = DEFAULT_REPORT
    keep: bool = False
    workload: int = 20
    revoke_after: int = 8
    live_audit: bool = True
    #: The sandbox is local: probes may go much faster than against the real API.
    max_rps: float = 500.0


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo did: its steps, where things are, and a few numbers tests check."""

    steps: tuple[DemoStep, ...]
    report_path: Path
    workdir: Path | None  # the kept temporary directory, or None once removed
    seconds: float
    requests: int  # requests the workload sent (before and after the rotation)
    failed_requests: int  # of those, how many did not get a 2xx answer
    findings: dict[str, int] = field(default_factory=dict)  # severity -> count
    port: int = 0  # the sandbox's port (closed when the demo returns)


def find_policies(path: Path | None = None) -> Path:
    """The example policy directory: ``path``, or ``policies/`` next to the package.

    The examples ship with the source tree (the repository), not with the installed package;
    an install from a wheel has to pass the directory explicitly.
    """
    default = path is None
    where = Path(__file__).resolve().parent.parent / "policies" if path is None else path
    if where.is_dir() and any(where.glob("*.toml")):
        return where
    if default:
        raise ConfigError(
            f"The example policies are not at {where} (they ship with the repository, "
            "not with the installed package)",
            hint="Run `make demo` in a clone of the repository, or pass --policies DIR",
        )
    raise ConfigError(
        f"No policy files (*.toml) in {where}",
        hint="Pass the policies/ directory of the repository with --policies",
    )


# --- helpers -----------------------------------------------------------------------------


def _fp(record: TokenRecord) -> str:
    return f"{record.name} ({record.fingerprint})"


def _duration(delta: timedelta | None) -> str:
    if delta is None:
        return "never"
    from tokenguard.policy import format_duration

    return format_duration(delta)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@contextmanager
def _private_state(workdir: Path) -> Iterator[None]:
    """Point the vault's rollback bookkeeping (XDG_STATE_HOME) into ``workdir``.

    The vault remembers the generations it has seen per vault id in the user's state dir; a
    throwaway vault must not leave an entry there on every demo run. This changes the
    process environment for the duration of the demo, which is run as its own command.
    """
    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(workdir / "state")
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("XDG_STATE_HOME", None)
        else:
            os.environ["XDG_STATE_HOME"] = old


class _Demo:
    """The demo's state between steps (sandbox, API, vault, policies)."""

    def __init__(self, options: DemoOptions, workdir: Path, stack: ExitStack) -> None:
        from tokenguard.policy import PolicySet

        self.options = options
        self.workdir = workdir
        self.stack = stack
        self.policy_dir = find_policies(options.policies)
        self.url = ""
        self.port = 0
        self.admin_token: Secret | None = None
        self.api: ApifyApi | None = None
        self.issuer: HttpTokenIssuer | None = None
        self.vault_path = workdir / "vault" / "vault.tgv"
        self.key_path = workdir / "vault.key"
        self.policy_set: PolicySet | None = None
        self.requests = 0
        self.failed = 0
        self.findings: dict[str, int] = {}
        self.client_pool: tuple[object, object] | None = None  # (pool, httpx.Client)

    # -- 1 -----------------------------------------------------------------------------

    def sandbox(self) -> DemoStep:
        try:
            from tokenguard.sandbox.testing import running_sandbox
        except ImportError as exc:  # aiohttp is the `sandbox` extra
            raise ConfigError(
                f"The demo runs the sandbox, which needs aiohttp ({exc.name} is not installed)",
                hint="Install the extra: pip install -e '.[sandbox]' (or run `make demo`)",
            ) from None

        handle = self.stack.enter_context(running_sandbox("demo"))
        self.url = handle.url
        self.port = int(handle.url.rsplit(":", 1)[1])
        self.admin_token = handle.admin_token
        self.api = self.stack.enter_context(ApifyApi(handle.url, handle.admin_token))
        self.issuer = HttpTokenIssuer(self.api)
        counts = {
            "Actor": len(list(self.api.iter_list("/acts"))),
            "task": len(list(self.api.iter_list("/actor-tasks"))),
            "dataset": len(list(self.api.iter_list("/datasets"))),
            "key-value store": len(list(self.api.iter_list("/key-value-stores"))),
            "request queue": len(list(self.api.iter_list("/request-queues"))),
            "schedule": len(list(self.api.iter_list("/schedules"))),
        }
        tokens = len(self.issuer.list())
        what = ", ".join(_plural(n, word) for word, n in counts.items())
        paragraph = (
            f"Started the Apify-compatible sandbox at {handle.api_url} in this process, on a "
            f"free port, with the demo account '{handle.username}': {what}, and "
            f"{tokens} API tokens of assorted scopes. Every step below talks HTTP to it exactly "
            "as it would to api.apify.com; only the base URL differs."
        )
        return DemoStep(
            StepKind.SANDBOX,
            paragraph,
            (
                "tokenguard sandbox serve --seed demo",
                "export APIFY_API_BASE_URL=https://api.apify.com   # the real platform",
            ),
        )

    # -- 2 -----------------------------------------------------------------------------

    def vault(self) -> DemoStep:
        from tokenguard.vault import Vault

        vault = Vault.init(self.vault_path, key_file=self.key_path)
        slots = ", ".join(s.kind.value for s in vault.slots())
        vault.close()
        paragraph = (
            f"Created an encrypted vault at {self.vault_path} (mode 0600, key slot: {slots}), "
            f"unlocked by a random 32-byte key file {self.key_path} (mode 0600). Tokens are "
            "stored in it the moment they are issued; nothing below ever shows a secret, only "
            "fingerprints like tg:3f9a1c2b7e4d."
        )
        return DemoStep(
            StepKind.VAULT,
            paragraph,
            (
                "tokenguard vault init --key-file ~/.config/tokenguard/vault.key",
                "export TOKENGUARD_KEY_FILE=~/.config/tokenguard/vault.key",
            ),
        )

    def _open_vault(self) -> object:
        from tokenguard.vault import Unlocker, Vault

        return Vault.open(self.vault_path, unlocker=Unlocker(key_file=self.key_path))

    # -- 3 -----------------------------------------------------------------------------

    def policies(self) -> DemoStep:
        from tokenguard.policy import ResourceResolver, apply, load_policies, plan
        from tokenguard.vault import Vault

        assert self.api is not None and self.issuer is not None
        self.policy_set = policy_set = load_policies([self.policy_dir])
        vault = self._open_vault()
        assert isinstance(vault, Vault)
        with vault:
            the_plan = plan(
                policy_set,
                vault,
                self.issuer,
                now=datetime.now(UTC),
                resolver=ResourceResolver(self.api),
            )
            result = apply(the_plan, vault, self.issuer, now=the_plan.now)
            records = {r.name: r for r in vault.list()}
        rows = []
        created = []
        for step in result.applied:
            record = records.get(step.record or "")
            if record is None:
                continue
            created.append(_fp(record))
            policy = policy_set.get(record.policy or "") if record.policy else None
            rows.append(
                [
                    record.name,
                    record.fingerprint,
                    _scope_text(policy.scope if policy else record.scope),
                    _duration(policy.expires_after if policy else None),
                ]
            )
        rails = policy_set.guardrails.source
        rails_text = f"the guardrails in {Path(rails).name}" if rails else "no guardrails"
        paragraph = (
            f"Loaded {len(policy_set)} policies from {self.policy_dir} and checked "
            f"them against {rails_text}; the plan resolved every demo~name reference through "
            f"the API, then apply issued {_plural(len(created), 'scoped, expiring token')} and "
            f"stored each in the vault: {', '.join(created)}."
        )
        detail = tabulate(
            rows,
            headers=["vault record", "fingerprint", "scope (as declared)", "expires after"],
            maxcolwidths=[None, None, 56, None],
        )
        return DemoStep(
            StepKind.POLICY,
            paragraph,
            ("tokenguard policy check", "tokenguard policy plan", "tokenguard policy apply"),
            detail,
        )

    # -- 4 -----------------------------------------------------------------------------

    def failover(self) -> DemoStep:
        import httpx

        from tokenguard.failover import EventKind, FailoverEvent, TokenPool, failover_client
        from tokenguard.vault import Vault

        assert self.issuer is not None
        # The workload is "another program": it opens the vault file itself, so it sees what
        # a rotation writes there (a pool re-reads the file when it changes on disk).
        program_vault = self._open_vault()
        assert isinstance(program_vault, Vault)
        self.stack.callback(program_vault.close)
        events: list[FailoverEvent] = []
        pool = TokenPool.from_vault(
            program_vault, policy=[PRIMARY_POLICY, FALLBACK_POLICY], on_event=events.append
        )
        client = self.stack.enter_context(
            failover_client(pool, base_url=self.url + "/v2", timeout=10.0)
        )
        self.client_pool = (pool, client)
        primary = program_vault.active_for(PRIMARY_POLICY)
        fallback = program_vault.active_for(FALLBACK_POLICY)
        if primary is None or primary.issuer_id is None or fallback is None:
            raise TokenGuardError(
                "The demo's policies did not produce the tokens the workload needs",
                hint=f"Keep the {PRIMARY_POLICY!r} and {FALLBACK_POLICY!r} example policies",
            )
        ok = 0
        total = self.options.workload
        path = f"/datasets/demo~{WORKLOAD_DATASET}/items"
        for i in range(total):
            if i == self.options.revoke_after:
                # Someone deletes the token in Console while the program is running.
                self.issuer.revoke(primary.issuer_id)
            try:
                response = client.get(path)
            except (TokenGuardError, httpx.HTTPError):
                response = None
            if response is not None and response.is_success:
                ok += 1
        self.requests += total
        self.failed += total - ok
        status = pool.status()
        first = status.get(primary.fingerprint)
        second = status.get(fallback.fingerprint)
        switched = [e for e in events if e.kind is EventKind.FAILOVER]
        paragraph = (
            f"A program read the products dataset {total} times through FailoverAuth, with a "
            f"pool of the vault's {PRIMARY_POLICY} and {FALLBACK_POLICY} tokens. After "
            f"{self.options.revoke_after} requests, {_fp(primary)} was revoked on the platform "
            f"(as if deleted in Console). The next request got 401, the pool marked that token "
            f"dead and resent the request with {_fp(fallback)}: {ok} of {total} requests "
            f"answered 200, {total - ok} failed, {_plural(len(switched), 'failover')}."
        )
        rows = [
            [snap.name, snap.fingerprint, snap.health.value, snap.requests, _short(snap.reason)]
            for snap in (first, second)
        ]
        detail = tabulate(rows, headers=["token", "fingerprint", "health", "requests sent", "why"])
        return DemoStep(
            StepKind.FAILOVER,
            paragraph,
            (
                f'pool = TokenPool.from_vault(Vault.open(), policy="{PRIMARY_POLICY}")',
                "client = failover_client(pool)   # or apify_client(pool) for apify-client",
            ),
            detail,
        )

    # -- 5 -----------------------------------------------------------------------------

    def rotation(self) -> DemoStep:
        import httpx

        from tokenguard.failover import TokenPool
        from tokenguard.rotation import Outcome, Step, rotate
        from tokenguard.vault import Vault

        assert self.api is not None and self.issuer is not None
        assert self.policy_set is not None and self.client_pool is not None
        vault = self._open_vault()
        assert isinstance(vault, Vault)
        with vault:
            old = vault.active_for(LEAKED_POLICY)
            assert old is not None
            report = rotate(
                vault,
                self.issuer,
                self.policy_set.policies,
                api=self.api,
                compromised=[LEAKED_POLICY],
                wait=10.0,
            )
            vault.reload()
            new = vault.active_for(LEAKED_POLICY)
            old_now = vault.find(old.name)
        row = next((r for r in report.results if r.name == old.name), None)
        if (
            report.fatal is not None
            or row is None
            or row.outcome is not Outcome.ROTATED
            or new is None
            or old_now is None
        ):
            error = report.fatal or (row.error if row else "no result")
            raise TokenGuardError(
                f"The demo rotation of {old.name} did not complete: {error}",
                hint="Run `tokenguard -v demo` for details and report it as a bug",
            )
        # The old secret is dead on the platform now: show it, with one request.
        try:
            with self.api.with_token(old.secret) as as_old:
                as_old.get_data("/users/me")
            old_answer = "still answered (unexpected)"
        except ApiError as exc:
            old_answer = f"now gets HTTP {exc.status}"
        revoked_at_once = row.step is Step.REVOKE and old_now.status is TokenStatus.REVOKED
        fate = (
            f"moved {old.name} to retiring and, because --now means it leaked, revoked it "
            "at once instead of keeping it working for the policy's grace"
            if revoked_at_once
            else f"moved {old.name} to {old_now.status.value}"
        )
        # The program from the failover step keeps running on the same pool.
        pool, client = self.client_pool
        assert isinstance(pool, TokenPool) and isinstance(client, httpx.Client)
        after = 5
        ok = 0
        for _ in range(after):
            try:
                response = client.get(f"/datasets/demo~{WORKLOAD_DATASET}/items")
            except (TokenGuardError, httpx.HTTPError):
                continue
            ok += response.is_success
        self.requests += after
        self.failed += after - ok
        paragraph = (
            f"{_fp(old)} was reported leaked. tokenguard issued {_fp(new)}, verified it with "
            f"read-only probes, promoted it to active, {fate}. A request with the old token "
            f"{old_answer}. The program from the failover step never restarted: its pool "
            f"re-read the vault and its next {after} requests went out with {new.name} "
            f"({ok} of {after} answered 200)."
        )
        rows = [
            [old.name, old.fingerprint, old.status.value, old_now.status.value],
            [new.name, new.fingerprint, "(new)", new.status.value],
        ]
        detail = tabulate(rows, headers=["token", "fingerprint", "before", "after"])
        return DemoStep(
            StepKind.ROTATION,
            paragraph,
            (f"tokenguard rotate --now {LEAKED_POLICY}", "tokenguard rotate   # from cron"),
            detail,
        )

    # -- 6 -----------------------------------------------------------------------------

    def audit(self) -> DemoStep:
        from tokenguard.audit import audit
        from tokenguard.audit.formats import render
        from tokenguard.audit.inventory import HeldToken
        from tokenguard.audit.report import TokenSource
        from tokenguard.vault import Vault

        assert self.api is not None and self.policy_set is not None
        vault = self._open_vault()
        assert isinstance(vault, Vault)
        with vault:
            records = vault.list()
        assert self.admin_token is not None
        held = [HeldToken("management", TokenSource.MANAGEMENT, self.admin_token)]
        report = audit(
            self.api,
            records=records,
            held=held,
            policies=self.policy_set,
            live=self.options.live_audit,
            max_rps=self.options.max_rps,
        )
        path = self.options.report
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(report, "html"), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"Cannot write the audit report {path}: {exc.strerror}",
                hint="Pass --report PATH in a writable directory",
            ) from None
        counts = report.counts()
        self.findings = {s.value: n for s, n in counts.items() if n}
        found = ", ".join(f"{n} {s}" for s, n in self.findings.items()) or "no findings"
        live = ""
        if report.live is not None:
            lv = report.live
            live = (
                f" {lv.probes} read-only live probes checked the model against the sandbox "
                f"({lv.mismatches} mismatches)."
            )
        worst = report.findings[0] if report.findings else None
        worst_text = f" The worst: {worst.title.rstrip('.')}." if worst else ""
        paragraph = (
            f"Audited the account: {_plural(len(report.tokens), 'token')} (the vault's, the "
            f"platform's and the management token) against "
            f"{_plural(len(report.resources), 'resource')}.{live} Findings: {found}.{worst_text} "
            f"Below: what the vault's tokens reach; the HTML report with every token, each "
            f"grant's reason and every finding's fix is at {path.resolve()}."
        )
        detail = _matrix(report, records) + "\n\n" + _findings(report)
        return DemoStep(
            StepKind.AUDIT,
            paragraph,
            ("tokenguard audit --live", "tokenguard audit --format html -o audit.html"),
            detail,
        )


def _short(reason: str | None) -> str:
    # "HTTP 401 user-or-token-not-found: <server message>" -> the status and type only.
    return (reason or "").split(":", 1)[0]


def _scope_text(scope: Scope | None) -> str:
    if scope is None:
        return "unknown"
    if scope.unscoped:
        return "unscoped"
    parts = [
        f"{group.value}: " + "/".join(sorted(p.value for p in perms))
        for group, perms in scope.account.items()
        if perms
    ]
    parts += [
        f"{grant.type.value} {grant.id}: " + "/".join(sorted(p.value for p in grant.permissions))
        for grant in scope.resources
    ]
    return "; ".join(parts) or "nothing"


def _matrix(report: object, records: Sequence[TokenRecord]) -> str:
    from tokenguard.audit.formats.common import LEGEND, letters, resource_label
    from tokenguard.audit.report import AuditReport

    assert isinstance(report, AuditReport)
    held = {r.fingerprint for r in records if r.status is not TokenStatus.REVOKED}
    tokens = [t for t in report.tokens if t.fingerprint in held]
    reach = {r.token: r for r in report.reach}
    rows = []
    for res in report.resources:
        cells = []
        for t in tokens:
            tr = reach.get(t.key)
            cells.append("?" if tr is None or tr.access is None else letters(tr.grants_on(res)))
        if any(c not in ("-", "?") for c in cells):
            rows.append([resource_label(res), *cells])
    table = tabulate(rows, headers=["resource", *(t.name for t in tokens)], disable_numparse=True)
    legend = textwrap.fill(
        f"({LEGEND}; resources without a name, by ID: runs, webhooks, and runs' default storages)",
        width=84,
    )
    return f"Access matrix of the vault's tokens\n{legend}\n{table}"


def _findings(report: object) -> str:
    from tokenguard.audit.report import AuditReport

    assert isinstance(report, AuditReport)
    names = {t.key: t.name for t in report.tokens}
    rows = [
        [f.severity.value, names.get(f.token or "", f.token or ""), f.title]
        for f in report.findings
    ]
    if not rows:
        return "No findings."
    return "Findings:\n" + tabulate(
        rows, headers=["severity", "token", "finding"], maxcolwidths=[None, 22, 70]
    )


def _check_report_path(path: Path) -> None:
    parent = path.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem: str | None = f"cannot create {parent}: {exc.strerror}"
    else:
        problem = None if os.access(parent, os.W_OK) else f"{parent} is not writable"
    if problem is None and path.is_dir():
        problem = f"{path} is a directory"
    if problem is not None:
        raise ConfigError(
            f"Cannot write the audit report to {path}: {problem}",
            hint="Pass --report PATH in a writable directory",
        )


def run_demo(
    options: DemoOptions | None = None,
    *,
    on_step: Callable[[DemoStep], None] | None = None,
) -> DemoResult:
    """Run the demo; call ``on_step`` with each :class:`DemoStep` as soon as it is done.

    Raises :class:`~tokenguard.errors.TokenGuardError` subclasses when something cannot
    work (policies missing, the report path not writable); everything started is stopped
    and, unless ``options.keep``, the temporary directory is removed either way.
    """
    options = options or DemoOptions()
    started = time.monotonic()
    steps: list[DemoStep] = []

    def emit(step: DemoStep, since: float) -> None:
        from dataclasses import replace

        step = replace(step, seconds=time.monotonic() - since)
        steps.append(step)
        if on_step is not None:
            on_step(step)

    # Fail before starting anything when the policies or the report path are unusable.
    policy_dir = find_policies(options.policies)
    _check_report_path(options.report)
    options = DemoOptions(
        policies=policy_dir,
        report=options.report,
        keep=options.keep,
        workload=options.workload,
        revoke_after=options.revoke_after,
        live_audit=options.live_audit,
        max_rps=options.max_rps,
    )
    workdir = Path(tempfile.mkdtemp(prefix="tokenguard-demo-"))
    port = 0
    try:
        with _private_state(workdir), ExitStack() as stack:
            demo = _Demo(options, workdir, stack)
            for run in (
                demo.sandbox,
                demo.vault,
                demo.policies,
                demo.failover,
                demo.rotation,
                demo.audit,
            ):
                since = time.monotonic()
                emit(run(), since)
            port = demo.port
            requests, failed, findings = demo.requests, demo.failed, demo.findings
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    since = time.monotonic()
    seconds = time.monotonic() - started
    if options.keep:
        paragraph = (
            f"Stopped the sandbox (port {port} is closed again) and kept {workdir}: the vault "
            f"and its key file, to look at with TOKENGUARD_VAULT={workdir / 'vault' / 'vault.tgv'} "
            f"TOKENGUARD_KEY_FILE={workdir / 'vault.key'} tokenguard vault list (the sandbox "
            f"is gone, so those tokens no longer work). The demo took {seconds:.1f} s."
        )
    else:
        paragraph = (
            f"Stopped the sandbox (port {port} is closed again) and removed the temporary "
            f"directory with the vault and its key file; only the audit report stays, at "
            f"{options.report}. The demo took {seconds:.1f} s. Run it with --keep to keep the "
            "vault."
        )
    emit(
        DemoStep(StepKind.CLEANUP, paragraph, ("make test   # the proof: lint, types, tests",)),
        since,
    )
    return DemoResult(
        steps=tuple(steps),
        report_path=options.report,
        workdir=workdir if options.keep else None,
        seconds=seconds,
        requests=requests,
        failed_requests=failed,
        findings=findings,
        port=port,
    )
