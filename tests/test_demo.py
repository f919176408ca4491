"""The newcomer's path: ``tokenguard demo`` (library and CLI), ``make demo`` in a fresh clone,
and error messages that say what to do next."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from output_checks import assert_ran_clean, has_token

from tokenguard.cli.main import main
from tokenguard.demo import DemoOptions, DemoStep, StepKind, find_policies, run_demo
from tokenguard.errors import ConfigError
from tokenguard.secrets import redact
from tokenguard.vault import Unlocker, Vault

ROOT = Path(__file__).resolve().parent.parent
STEP_HEADINGS = [
    "1/7 Sandbox",
    "2/7 Vault",
    "3/7 Policies",
    "4/7 Failover",
    "5/7 Rotation",
    "6/7 Audit",
    "7/7 Clean-up",
]


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _demo_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("tokenguard-demo-*")}


def _step_text(step: DemoStep) -> str:
    return "\n".join([step.paragraph, *step.commands, step.detail])


def test_run_demo_steps_secrets_and_cleanup(tmp_path: Path) -> None:
    threads_before = set(threading.enumerate())
    seen: list[DemoStep] = []
    report = tmp_path / "out" / "report.html"
    result = run_demo(DemoOptions(report=report, keep=True), on_step=seen.append)
    try:
        assert [s.kind for s in result.steps] == list(StepKind)
        assert seen == list(result.steps)  # streamed as they happened, in order
        assert result.requests == 25 and result.failed_requests == 0
        by_kind = {s.kind: s for s in result.steps}
        assert "1 failover" in by_kind[StepKind.FAILOVER].paragraph
        assert "20 of 20 requests answered 200" in by_kind[StepKind.FAILOVER].paragraph
        rotation = by_kind[StepKind.ROTATION]
        assert "retiring" in rotation.paragraph and "now gets HTTP 401" in rotation.paragraph
        assert "5 of 5 answered 200" in rotation.paragraph
        assert "ci-scraper.1" in rotation.detail and "revoked" in rotation.detail
        audit = by_kind[StepKind.AUDIT]
        assert "0 mismatches" in audit.paragraph and str(report.resolve()) in audit.paragraph
        assert "Access matrix" in audit.detail and "Findings" in audit.detail
        assert sum(result.findings.values()) >= 1
        assert report.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
        for step in result.steps:
            assert step.paragraph and step.commands
        # Nothing left running: the sandbox thread is joined and its port is closed.
        assert result.port and _port_closed(result.port)
        assert set(threading.enumerate()) <= threads_before
        # Kept: the vault opens with its key file; none of its secrets was ever shown.
        assert result.workdir is not None
        vault = Vault.open(
            result.workdir / "vault" / "vault.tgv",
            unlocker=Unlocker(key_file=result.workdir / "vault.key"),
        )
        with vault:
            records = vault.list()
        names = {r.name for r in records}
        assert {"ci-scraper.1", "ci-scraper.2", "reporting.1", "invoice-integration.1"} <= names
        shown = "\n".join(_step_text(s) for s in result.steps)
        for record in records:
            leaked = record.secret.reveal() in shown  # a bool: a failure cannot print it
            assert not leaked, f"the demo printed the secret of {record.name}"
            assert record.fingerprint in shown
        assert not has_token(shown)
        # The rollback bookkeeping of the throwaway vault stayed in the temporary directory.
        assert (result.workdir / "state").exists()
    finally:
        if result.workdir is not None:
            shutil.rmtree(result.workdir)


def test_run_demo_removes_its_temporary_directory(tmp_path: Path) -> None:
    before = _demo_dirs()
    result = run_demo(DemoOptions(report=tmp_path / "r.html", live_audit=False))
    assert result.workdir is None
    assert _demo_dirs() == before
    assert (tmp_path / "r.html").exists()
    assert "removed the temporary directory" in result.steps[-1].paragraph


def test_cli_demo_prints_each_step_and_no_secret(tmp_path: Path) -> None:
    report = tmp_path / "demo.html"
    result = CliRunner().invoke(main, ["demo", "--report", str(report)])
    assert result.exit_code == 0, redact(result.output)
    out = result.stdout
    for heading in STEP_HEADINGS:
        assert heading in out
    assert out.count("For real:") == 6
    assert "tokenguard rotate --now ci-scraper" in out
    assert str(report.resolve()) in out
    assert not has_token(result.output)
    assert "25/25 requests answered" in result.stderr


def test_demo_policies_missing_says_what_to_do(tmp_path: Path) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    result = CliRunner().invoke(main, ["demo", "--policies", str(empty)])
    assert result.exit_code == 2
    assert "No policy files (*.toml)" in result.stderr and "--policies" in result.stderr
    assert "Traceback" not in result.output
    with pytest.raises(ConfigError, match="policies"):
        find_policies(empty)
    assert find_policies() == ROOT / "policies"


def test_verbose_gives_the_traceback(tmp_path: Path) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    quiet = CliRunner().invoke(main, ["demo", "--policies", str(empty)])
    assert "Traceback" not in quiet.output
    result = CliRunner().invoke(main, ["-v", "demo", "--policies", str(empty)])
    # The traceback is printed, and the exit code is the same as without --verbose.
    assert "Traceback (most recent call last)" in result.output
    assert "ConfigError" in result.output
    assert result.exit_code == quiet.exit_code == 2


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("tokenguard, version ")


@pytest.mark.parametrize(
    ("args", "env", "code", "advice"),
    [
        (["vault", "list"], {}, 3, "tokenguard vault init"),
        (["vault", "show", "x"], {"TOKENGUARD_VAULT": "{tmp}/v.tgv"}, 3, "tokenguard vault init"),
        (["policy", "plan", "{root}/policies"], {}, 3, "tokenguard vault init"),
        (["policy", "plan", "{root}/policies"], {"TOKENGUARD_VAULT": "{vault}"}, 2, "APIFY_TOKEN"),
        (["policy", "check", "{tmp}/missing"], {}, 2, "Pass existing files"),
        (["rotate", "--policies", "{root}/policies"], {"TOKENGUARD_VAULT": "{vault}"}, 2, "Export"),
        (["vault", "list"], {"TOKENGUARD_VAULT": "{vault}", "TOKENGUARD_KEY_FILE": ""}, 3, "Set"),
        (["audit"], {"APIFY_TOKEN": "x", "APIFY_API_BASE_URL": "http://127.0.0.1:9"}, 4, "Check"),
        (["audit", "--probe-writes"], {"APIFY_TOKEN": "x"}, 2, "Add --live"),
        (["vault", "add", "n", "apify_api_secret"], {}, 2, "Pipe the token on stdin"),
    ],
)
def test_common_mistakes_say_what_to_do(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    code: int,
    advice: str,
) -> None:
    for var in (
        "APIFY_TOKEN",
        "APIFY_API_BASE_URL",
        "TOKENGUARD_VAULT",
        "TOKENGUARD_KEY_FILE",
        "TOKENGUARD_PASSPHRASE",
        "TOKENGUARD_PASSPHRASE_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    fill = {"tmp": str(tmp_path), "root": str(ROOT), "vault": str(tmp_path / "v" / "vault.tgv")}
    if any("{vault}" in value for value in env.values()):
        Vault.init(fill["vault"], key_file=tmp_path / "vault.key").close()
        monkeypatch.setenv("TOKENGUARD_KEY_FILE", str(tmp_path / "vault.key"))
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(**fill))
    result = CliRunner().invoke(main, [a.format(**fill) for a in args], input="")
    assert result.exit_code == code, redact(result.output)
    assert result.stderr.startswith("error: ")
    assert advice in result.stderr
    assert "Traceback" not in result.output
    assert "apify_api_secret" not in result.output


def test_make_demo_in_a_fresh_clone(tmp_path: Path) -> None:
    """`git clone` of this repository's committed HEAD, then `make demo` in it.

    The clone reuses the environment the tests run in (``VENV=... SKIP_INSTALL=1``) instead of
    installing from the network; ``PYTHONPATH`` makes it run the clone's own code. A plain
    ``make demo`` on a fresh machine installs everything into ``.venv`` itself.
    """
    for tool in ("git", "make"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    clone = tmp_path / "tokenguard"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    venv = Path(sys.executable).parent.parent
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TOKENGUARD_", "APIFY_", "PYTEST_"))
    }
    env.update(
        PYTHONPATH=str(clone),
        HOME=str(tmp_path / "home"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_DATA_HOME=str(tmp_path / "data"),
    )
    before = _demo_dirs()
    result = subprocess.run(
        ["make", "--no-print-directory", "demo", f"VENV={venv}", "SKIP_INSTALL=1"],
        cwd=clone,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert_ran_clean(result, "make demo")
    for heading in STEP_HEADINGS:
        assert heading in result.stdout
    assert str(clone / "policies") in result.stdout  # the clone's code and policies ran
    assert (clone / "tokenguard-demo-report.html").exists()
    assert _demo_dirs() == before
    assert not (tmp_path / "home").exists()  # nothing written to the user's home
    # Without SKIP_INSTALL, a fresh machine's `make demo` builds .venv and installs first.
    fresh = subprocess.run(
        ["make", "--no-print-directory", "-n", "demo"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "-m venv .venv" in fresh
    assert "pip install --quiet -e '.[dev,sandbox,apify]'" in fresh
    assert fresh.rstrip().endswith(".venv/bin/tokenguard demo")


def test_demo_without_the_sandbox_extra_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if aiohttp (the `sandbox` extra) were missing: the sandbox module cannot be imported.
    monkeypatch.setitem(sys.modules, "tokenguard.sandbox.testing", None)
    before = _demo_dirs()
    result = CliRunner().invoke(main, ["demo", "--report", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert "needs aiohttp" in result.stderr and "pip install" in result.stderr
    assert _demo_dirs() == before


def test_demo_refuses_an_unwritable_report_path_before_starting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(main, ["demo", "--report", str(blocker / "r.html")])
    assert result.exit_code == 2
    assert "Cannot write the audit report" in result.stderr and "--report" in result.stderr
    assert result.stdout == ""  # nothing was started


def test_cli_demo_restores_the_failover_log_level(tmp_path: Path) -> None:
    log = logging.getLogger("tokenguard.failover")
    before = log.level
    result = CliRunner().invoke(main, ["demo", "--static", "--report", str(tmp_path / "r.html")])
    assert result.exit_code == 0, redact(result.output)
    assert log.level == before
