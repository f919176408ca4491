"""`tokenguard policy check` on 1,000 policies: target under 1 s.

Prints, side by side:
- the library (`load_policies`: read + TOML parse + line scan + validation + guardrails);
- the floor for the same bytes: `tomllib.loads` of every file alone (no validation);
- the full CLI in a fresh process (`tokenguard policy check DIR`, interpreter start included),
  and the bare interpreter start (`python -c pass`) as its floor.

Policies are realistic: each has an account table, two resource grants, labels and
durations, spread over 10 files with a guardrails file, as a team would keep them.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from tokenguard.policy import load_policies

POLICIES = 1000
FILES = 10
RUNS = 5

GUARDRAILS = """\
[guardrails]
max_lifetime = "90d"
require_expiry = true
allow_unscoped = false
allow_full_run_mode = false
forbidden = ["schedules:create", "schedules:write"]
required_labels = ["owner"]
"""

POLICY = """\
[[token]]
name = "policy-{i}"
description = "Benchmark policy {i}: run one Actor, read its dataset"
expires_after = "30d"
rotate_after = "7d"
grace = "24h"
actor_run_mode = "restricted"
default_run_storage_access = {drsa}
labels = {{ owner = "team-{team}", cost-center = "cc-{i}" }}

[token.account]
storages = ["read"]

[[token.resource]]
type = "actor"
id = "bench~actor-{i}"
permissions = ["run", "read"]

[[token.resource]]
type = "dataset"
id = "bench~dataset-{i}"
permissions = ["read", "write"]
"""


def write_corpus(directory: Path) -> list[Path]:
    (directory / "guardrails.toml").write_text(GUARDRAILS)
    per_file = POLICIES // FILES
    paths = [directory / "guardrails.toml"]
    for f in range(FILES):
        body = "\n".join(
            POLICY.format(i=i, team=f, drsa=str(i % 2 == 0).lower())
            for i in range(f * per_file, (f + 1) * per_file)
        )
        path = directory / f"team-{f:02d}.toml"
        path.write_text(body)
        paths.append(path)
    return paths


def best_and_median(func: object, runs: int = RUNS) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        paths = write_corpus(directory)
        size = sum(p.stat().st_size for p in paths)
        policies = load_policies([directory])
        assert len(policies) == POLICIES, len(policies)

        lib_best, lib_median = best_and_median(lambda: load_policies([directory]))
        floor_best, floor_median = best_and_median(
            lambda: [tomllib.loads(p.read_text()) for p in paths]
        )
        exe = Path(sys.executable).with_name("tokenguard")
        cli_cmd = [str(exe), "policy", "check", str(directory)]
        subprocess.run(cli_cmd, check=True, capture_output=True)  # warm the page cache

        def cli() -> None:
            subprocess.run(cli_cmd, check=True, capture_output=True)

        def bare() -> None:
            subprocess.run([sys.executable, "-c", "pass"], check=True, capture_output=True)

        cli_best, cli_median = best_and_median(cli)
        bare_best, bare_median = best_and_median(bare)

    print(
        f"policy check: {POLICIES} policies in {FILES} files + guardrails ({size / 1024:.0f} KiB)"
    )
    print(f"{'':34} {'best':>9} {'median':>9}")
    print(f"{'load_policies (library)':34} {lib_best * 1000:8.1f}ms {lib_median * 1000:8.1f}ms")
    print(
        f"{'floor: tomllib.loads alone':34} {floor_best * 1000:8.1f}ms {floor_median * 1000:8.1f}ms"
    )
    print(f"{'  ratio library / floor':34} {lib_best / floor_best:8.1f}x")
    print(
        f"{'tokenguard policy check (process)':34} "
        f"{cli_best * 1000:8.1f}ms {cli_median * 1000:8.1f}ms"
    )
    print(f"{'floor: python -c pass':34} {bare_best * 1000:8.1f}ms {bare_median * 1000:8.1f}ms")
    print(f"{'  ratio CLI / interpreter start':34} {cli_best / bare_best:8.1f}x")
    verdict = "OK" if cli_median < 1.0 else "OVER"
    print(f"target: CLI under 1 s for {POLICIES} policies -> {verdict} ({cli_median:.2f} s median)")


if __name__ == "__main__":
    main()
