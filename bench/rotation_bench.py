"""`tokenguard rotate` on 200 due tokens against the sandbox: tokens/s and API calls per token.

Each of the 200 policies grants read on its own dataset (the sandbox's ``bench:200`` seed,
so the verification probes do not share one resource's 60 req/s limit). The tokens are
applied "8 days ago" so all are past ``rotate_after = 7d``; then, printed side by side:

- run 1, rotate: issue + verify + promote for every token (old ones now retiring);
- run 2, after the grace: revoke every old token;
- the floor: the same platform calls made bare with httpx, without vault or bookkeeping
  (POST token, GET its dataset with it, DELETE the old token), for the same 200 tokens.

API calls are counted by the sandbox (GET /v2/_sandbox/stats), so nothing is estimated:
the floor is 3 calls per token (issue + verify + revoke); a run also lists the platform's
tokens once (the orphan sweep), which is shared by all tokens.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tokenguard.api import ApifyApi, HttpTokenIssuer
from tokenguard.policy import PolicySet, apply, load_policies_from_text, plan
from tokenguard.rotation import Outcome, rotate
from tokenguard.sandbox.testing import running_sandbox
from tokenguard.vault import TokenRecord, Vault

TOKENS = int(sys.argv[1]) if len(sys.argv) > 1 else 200
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3

POLICY = """
[[token]]
name = "bench-{i}"
expires_after = "30d"
rotate_after = "7d"
grace = "24h"
[[token.resource]]
type = "dataset"
id = "sandbox~bench-dataset-{i}"
permissions = ["read"]
"""


class TimedVault:
    """The vault, with the time spent in its writes (each one durable: fsync + rename)."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.writes = 0
        self.seconds = 0.0

    def list(self) -> list[TokenRecord]:
        return self.vault.list()

    def reload(self) -> bool:
        return self.vault.reload()

    def rotation_lock(self, timeout: float) -> AbstractContextManager[None]:
        return self.vault.rotation_lock(timeout)

    def update(self, fn: Callable[[dict[str, TokenRecord]], None]) -> None:
        start = time.perf_counter()
        self.vault.update(fn)
        self.seconds += time.perf_counter() - start
        self.writes += 1

    def put(self, record: TokenRecord) -> None:
        def store(records: dict[str, TokenRecord]) -> None:
            records[record.name] = record

        self.update(store)


def _stats(api: ApifyApi) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for item in api.get_data("/_sandbox/stats")["items"]:
        out[(item["method"], item["route"])] += item["count"]
    return out


def _show(label: str, seconds: float, calls: Counter[tuple[str, str]]) -> None:
    total = sum(calls.values())
    print(
        f"{label:<34} {TOKENS / seconds:8.1f} tokens/s  {seconds:6.2f} s  "
        f"{total / TOKENS:5.2f} API calls/token"
    )
    for (method, route), n in sorted(calls.items()):
        print(f"{'':<36}{method:<6} {route:<42} {n:>5}")


@dataclass
class Round:
    """One measurement on a fresh sandbox and vault."""

    rotate_s: float
    revoke_s: float
    floor_s: float
    rotate_calls: Counter[tuple[str, str]]
    revoke_calls: Counter[tuple[str, str]]
    floor_calls: Counter[tuple[str, str]]
    writes: int
    write_s: float

    @property
    def total_s(self) -> float:
        return self.rotate_s + self.revoke_s


def measure(policies: PolicySet) -> Round:
    t0 = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp, running_sandbox(f"bench:{TOKENS}") as sb:
        d = Path(tmp)
        d.chmod(0o700)
        vault = Vault.init(d / "vault.tgv", key_file=d / "vault.key")
        api = ApifyApi(sb.url, sb.admin_token)
        issuer = HttpTokenIssuer(api)
        setup = t0 - timedelta(days=8)
        apply(plan(policies, vault, issuer, now=setup), vault, issuer, now=setup)

        timed = TimedVault(vault)
        api.request("DELETE", "/_sandbox/stats")
        start = time.perf_counter()
        report = rotate(timed, issuer, policies, api=api, clock=lambda: t0)
        rotate_s = time.perf_counter() - start
        assert report.count(Outcome.ROTATED) == TOKENS, report.failures[:3]
        rotate_calls = _stats(api)

        api.request("DELETE", "/_sandbox/stats")
        later = t0 + timedelta(days=1, minutes=1)
        start = time.perf_counter()
        report = rotate(timed, issuer, policies, api=api, clock=lambda: later)
        revoke_s = time.perf_counter() - start
        assert report.count(Outcome.REVOKED) == TOKENS, report.failures[:3]
        revoke_calls = _stats(api)

        # The floor: the same platform calls, bare.
        old_ids = [t.id for t in issuer.list() if t.name.startswith("tokenguard/")]
        api.request("DELETE", "/_sandbox/stats")
        start = time.perf_counter()
        for i, old_id in enumerate(old_ids):
            issued = issuer.issue(
                f"floor/{i}",
                scope=policies.policies[i].scope,
                expires_at=t0 + timedelta(days=30),
            )
            api.with_token(issued.secret).request("GET", f"/datasets/sandbox~bench-dataset-{i}")
            issuer.revoke(old_id)
        floor_s = time.perf_counter() - start
        floor_calls = _stats(api)
        api.close()
    return Round(
        rotate_s,
        revoke_s,
        floor_s,
        rotate_calls,
        revoke_calls,
        floor_calls,
        timed.writes,
        timed.seconds,
    )


def main() -> None:
    policies = load_policies_from_text("".join(POLICY.format(i=i) for i in range(TOKENS)))
    print(f"rotating {TOKENS} due tokens, {ROUNDS} rounds (fresh sandbox and vault each)")
    rounds = []
    for n in range(ROUNDS):
        r = measure(policies)
        rounds.append(r)
        print(
            f"  round {n + 1}: rotation {TOKENS / r.total_s:7.1f} tokens/s, "
            f"floor {TOKENS / r.floor_s:7.1f} tokens/s, ratio {r.floor_s / r.total_s:.2f}"
        )
    r = sorted(rounds, key=lambda x: x.floor_s / x.total_s)[len(rounds) // 2]
    print("\nthe median round:")
    _show("run 1: issue + verify + promote", r.rotate_s, r.rotate_calls)
    _show("run 2: revoke after the grace", r.revoke_s, r.revoke_calls)
    _show("rotation total (both runs)", r.total_s, r.rotate_calls + r.revoke_calls)
    _show("floor: bare issue + GET + DELETE", r.floor_s, r.floor_calls)
    calls = sum((r.rotate_calls + r.revoke_calls).values()) / TOKENS
    print()
    print(f"API calls per token: {calls:.2f} (floor 3: issue + verify + revoke)")
    print(
        f"throughput vs floor: {r.floor_s / r.total_s:.2f}x ({TOKENS / r.total_s:.1f} vs "
        f"{TOKENS / r.floor_s:.1f} tokens/s)"
    )
    print(
        f"vault writes: {r.writes} ({r.writes / TOKENS:.2f}/token: one per issued "
        f"secret, then one per step per run), {r.write_s:.2f} s = "
        f"{100 * r.write_s / r.total_s:.0f}% of the rotation time; "
        f"rotation minus vault writes: {TOKENS / (r.total_s - r.write_s):.1f} tokens/s"
    )


if __name__ == "__main__":
    main()
