"""Sandbox throughput: concurrent keep-alive GETs against a sandbox in a separate process.

Starts ``tokenguard sandbox serve --port 0 --json --seed bench:N`` as a subprocess (so the
server and the clients do not share a GIL), then drives it from several client processes,
each with several threads holding one keep-alive HTTP/1.1 connection. The GETs rotate over
the N seeded datasets (metadata and items), so no single resource hits its 60 req/s limit
(N x 60 req/s is the most the sandbox may answer with 200s: N defaults to 1,000).

Prints requests/s and the ratio to the 1,500 req/s target. Usage:

    .venv/bin/python bench/sandbox_throughput.py [--seconds 5] [--processes 2] [--threads 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import threading
import time
from urllib.parse import urlparse

from _common import sandbox_process

TARGET = 1500.0


def _worker(
    url: str, token: str, paths: list[str], seconds: float, threads: int, out: mp.Queue
) -> None:
    parsed = urlparse(url)
    counts: dict[str, int] = {"ok": 0, "other": 0}
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def run(offset: int) -> None:
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
        headers = {"Authorization": f"Bearer {token}"}
        ok = 0
        others: dict[str, int] = {}
        i = offset
        while time.perf_counter() < deadline:
            conn.request("GET", paths[i % len(paths)], headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                ok += 1
            else:
                others[str(response.status)] = others.get(str(response.status), 0) + 1
            i += 7
        conn.close()
        with lock:
            counts["ok"] += ok
            for status, n in others.items():
                counts["other"] += n
                counts[status] = counts.get(status, 0) + n

    pool = [threading.Thread(target=run, args=(n * 13,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put(counts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--resources", type=int, default=1000)
    args = parser.parse_args()

    with sandbox_process(f"bench:{args.resources}") as (url, admin):
        token = admin.reveal()
        parsed = urlparse(url)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
        conn.request("GET", "/v2/datasets?limit=1000", headers={"Authorization": f"Bearer {token}"})
        items = json.loads(conn.getresponse().read())["data"]["items"]
        conn.close()
        paths: list[str] = []
        for item in items:
            paths.append(f"/v2/datasets/{item['id']}")
            paths.append(f"/v2/datasets/{item['id']}/items?limit=5")

        queue: mp.Queue = mp.Queue()
        procs = [
            mp.Process(target=_worker, args=(url, token, paths, args.seconds, args.threads, queue))
            for _ in range(args.processes)
        ]
        start = time.perf_counter()
        for p in procs:
            p.start()
        results = [queue.get() for _ in procs]
        for p in procs:
            p.join()
        elapsed = time.perf_counter() - start

    ok = sum(r["ok"] for r in results)
    other = sum(r["other"] for r in results)
    statuses = sorted({k for r in results for k in r} - {"ok", "other"})
    by_status = ", ".join(f"{sum(r.get(s, 0) for r in results):,} x {s}" for s in statuses)
    rate = (ok + other) / elapsed
    connections = args.processes * args.threads
    print(
        f"sandbox throughput: {rate:,.0f} req/s "
        f"({ok:,} x 200{', ' + by_status if by_status else ''}) over {elapsed:.1f}s, "
        f"{connections} keep-alive connections in {args.processes} processes"
    )
    print(f"target {TARGET:,.0f} req/s -> ratio {rate / TARGET:.2f}x")
    return 0 if other == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
