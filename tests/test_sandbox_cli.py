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
from tokenguard.secrets import TOKEN_PATTERN


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


def _token_count(text: str) -> int:
    """Distinct tokens in ``text`` (a count, so a failing assert never prints one)."""
    return len(set(TOKEN_PATTERN.findall(text)))


def _admin_preview(url: str, admin_token: str) -> str:
    r = httpx.get(url + "/v2/users/me/tokens", headers={"Authorization": f"Bearer {admin_token}"})
    (admin,) = [t for t in r.json()["data"]["items"] if t["name"] == "sandbox-admin"]
    return str(admin["tokenPreview"])


def test_serve_prints_no_token_but_its_own_admin_token() -> None:
    # The demo seed holds ten tokens: only the sandbox's admin token may be printed.
    proc = _serve("--port", "0", "--json", "--seed", "demo")
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        admin = ready["admin_token"]
        is_admin = bool(TOKEN_PATTERN.fullmatch(admin)) and admin.endswith(
            _admin_preview(ready["url"], admin)
        )
        assert is_admin, "the printed token is not the sandbox-admin token"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert _token_count(out + err) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_words_then_sigint() -> None:
    proc = _serve("--port", "0", "--seed", "demo")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "serving http://127.0.0.1:" in first
        lines = []
        while not (line := proc.stdout.readline()).startswith("Press Ctrl+C"):
            assert line, "the text mode ended before saying how to stop it"
            lines.append(line)
        text = "".join(lines)
        url = first.split("serving ", 1)[1].split()[0]
        assert _token_count(text) == 1  # the admin token, and no other of the seeded ones
        admin = TOKEN_PATTERN.findall(text)[0]
        is_admin = admin.endswith(_admin_preview(url, admin))
        assert is_admin, "the printed token is not the sandbox-admin token"
        # It says how to use it: environment for tokenguard, curl, apify-client.
        for what, expected in (
            ("base URL", f"export APIFY_API_BASE_URL={url}"),
            ("token", f"export APIFY_TOKEN={admin}"),
            ("curl", "Authorization: Bearer $APIFY_TOKEN"),
            ("apify-client", f'api_url="{url}"'),
        ):
            said = expected in text
            assert said, f"the text mode does not show the {what} line"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert "sandbox stopped" in err and "Traceback" not in err
        assert _token_count(out + err) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_warns_when_reachable_from_other_machines() -> None:
    proc = _serve("--host", "0.0.0.0", "--port", "0", "--json", "--seed", "empty")
    try:
        assert proc.stdout is not None and proc.stderr is not None
        ready = json.loads(proc.stdout.readline())
        assert ready["url"].startswith("http://0.0.0.0:")
        assert "not only on this machine" in proc.stderr.readline()
        proc.send_signal(signal.SIGTERM)
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
