"""``tokenguard sandbox serve`` as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
from click.testing import CliRunner

from tokenguard.cli.main import main


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tokenguard.cli import main; main()",
            "sandbox",
            "serve",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_serve_json_then_sigterm() -> None:
    proc = _serve("--port", "0", "--json", "--seed", "empty")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        ready = json.loads(line)
        assert set(ready) == {"url", "admin_token"}
        assert ready["url"].startswith("http://127.0.0.1:")
        r = httpx.get(
            ready["url"] + "/v2/users/me",
            headers={"Authorization": f"Bearer {ready['admin_token']}"},
        )
        assert r.status_code == 200 and r.json()["data"]["username"] == "sandbox"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert out == ""  # exactly one line on stdout
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_words_then_sigint() -> None:
    proc = _serve("--port", "0", "--seed", "bench:3")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "serving http://127.0.0.1:" in first
        lines = [proc.stdout.readline() for _ in range(6)]
        assert any("Authorization: Bearer $APIFY_TOKEN" in line for line in lines)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_seed_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["sandbox", "serve", "--seed", "bench:x", "--port", "0"])
    assert result.exit_code == 2
    assert "bench seed" in result.output


def test_help() -> None:
    result = CliRunner().invoke(main, ["sandbox", "serve", "--help"])
    assert result.exit_code == 0 and "--rate-limit" in result.output


def test_port_in_use_is_a_usage_error() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["sandbox", "serve", "--port", str(port), "--json"])
    assert result.exit_code == 2
    assert "Cannot bind" in result.output and "apify_api_" not in result.output
