"""Shared bench helpers: the sandbox in its own process (not a benchmark; nothing to run)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tokenguard.secrets import Secret


@contextmanager
def sandbox_process(seed: str, *, rate_limit: float | None = None) -> Iterator[tuple[str, Secret]]:
    """Run ``tokenguard sandbox serve --port 0 --json`` as a subprocess; yield (url, admin token).

    A separate process so the benchmark's client and the server do not share a GIL. The
    server is stopped with SIGTERM on exit (killed if it does not stop within 20 s).
    """
    cmd = [sys.executable, "-c", "from tokenguard.cli import main; main()"]
    cmd += ["sandbox", "serve", "--port", "0", "--json", "--seed", seed]
    if rate_limit is not None:
        cmd += ["--rate-limit", f"{rate_limit:g}"]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        # The first stdout line is the ready line: {"url": ..., "admin_token": ..., ...}.
        ready = json.loads(server.stdout.readline())
        yield ready["url"], Secret(ready["admin_token"])
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
