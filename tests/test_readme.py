"""The README stays true: its CLI reference is the real ``--help``, and its examples run.

Every fenced ``sh``/``python``/``toml``/``ini`` block in README.md carries a marker on the
line before it:

- ``<!-- readme-test: run -->``: a shell block; its commands run in order, in one bash per
  block (exports carry over to later blocks), against a fresh sandbox with the documented
  variables set (APIFY_API_BASE_URL, APIFY_TOKEN), HOME in a temporary directory, and a copy
  of ``policies/`` in the working directory. A command is expected to exit 0 unless its
  comment says ``# exit N``. ``token.txt`` (what `vault add` reads on stdin) holds one of the
  sandbox's seeded tokens.
- ``<!-- readme-test: python -->``: a Python example, run after the shell blocks before it.
- ``<!-- readme-test: policy -->``: a policy file example; it must load without errors.
- ``<!-- readme-test: skip: REASON -->``: not run here, and the reason says why.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from output_checks import assert_ran_clean

from tokenguard.policy import load_policies_from_text
from tokenguard.sandbox.testing import SandboxHandle

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = re.compile(r"<!-- readme-test: (run|python|policy|skip)(?::\s*(.*?))? -->")
FENCE = re.compile(r"^```(\w*)\s*$")
CHECKED_LANGUAGES = {"sh", "bash", "console", "python", "toml", "ini"}
EXPECTED_EXIT = re.compile(r"#\s*exit (\d+)")


@dataclass(frozen=True)
class Block:
    """A fenced code block of the README and the marker before it."""

    line: int
    language: str
    body: str
    kind: str | None  # run, python, policy, skip; None when unmarked
    reason: str | None


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block outside the generated CLI reference, in document order."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        marker = MARKER.search(lines[start - 1]) if start > 0 else None
        blocks.append(
            Block(
                line=start + 1,
                language=match.group(1),
                body="\n".join(lines[start + 1 : j]) + "\n",
                kind=marker.group(1) if marker else None,
                reason=marker.group(2) if marker else None,
            )
        )
        i = j + 1
    return blocks


def shell_commands(body: str) -> list[tuple[str, int]]:
    """The commands of a shell block (continuations joined) with their expected exit code."""
    commands: list[tuple[str, int]] = []
    pending = ""
    for raw in body.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        expected = EXPECTED_EXIT.search(line)
        commands.append((line, int(expected.group(1)) if expected else 0))
    return commands


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_cli_reference", ROOT / "scripts" / "gen_cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the CLI reference -------------------------------------------------------------------


def test_cli_reference_matches_help() -> None:
    gen = _load_generator()
    current = README.read_text(encoding="utf-8")
    assert gen.START in current and gen.END in current
    fresh = gen.render(current)
    assert fresh == current, (
        "README.md's CLI reference differs from --help: run "
        "`.venv/bin/python scripts/gen_cli_reference.py` and commit README.md"
    )


def test_cli_reference_covers_every_command() -> None:
    gen = _load_generator()
    text = README.read_text(encoding="utf-8")
    commands = [" ".join(("tokenguard", *args)) for args in gen._commands(gen.main, ())]
    assert "tokenguard demo" in commands and "tokenguard vault add" in commands
    for command in ["tokenguard", *commands]:
        assert f"#### `{command}`" in text


def test_generator_check_mode_detects_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gen = _load_generator()
    stale = tmp_path / "README.md"
    stale.write_text(f"# x\n\n{gen.START}\nold help\n{gen.END}\n", encoding="utf-8")
    monkeypatch.setattr(gen, "README", stale)
    assert gen.main_(["--check"]) == 1
    assert gen.main_([]) == 0
    assert gen.main_(["--check"]) == 0
    assert "#### `tokenguard rotate`" in stale.read_text(encoding="utf-8")


# --- the examples ------------------------------------------------------------------------


def test_every_example_block_is_marked() -> None:
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    unmarked = [b.line for b in blocks if b.language in CHECKED_LANGUAGES and b.kind is None]
    assert not unmarked, f"README blocks without a readme-test marker at lines {unmarked}"
    for block in blocks:
        if block.kind == "skip":
            assert block.reason and len(block.reason) > 10, f"line {block.line}: say why"
        if block.kind == "run":
            assert block.language in {"sh", "bash"}, f"line {block.line}: run needs a sh block"
        if block.kind == "python":
            assert block.language == "python", f"line {block.line}"
    kinds = {b.kind for b in blocks}
    assert {"run", "python", "policy", "skip"} <= kinds


def test_policy_examples_load() -> None:
    blocks = [b for b in readme_blocks(README.read_text(encoding="utf-8")) if b.kind == "policy"]
    assert blocks
    for block in blocks:
        policy_set = load_policies_from_text(block.body, source=f"README.md:{block.line}")
        assert len(policy_set) >= 1


def test_shell_command_parsing() -> None:
    body = "# comment\nfoo --a \\\n  --b   # exit 3\n\nbar\n"
    assert shell_commands(body) == [("foo --a    --b   # exit 3", 3), ("bar", 0)]


def _run_shell(block: Block, work: Path, env: dict[str, str]) -> dict[str, str]:
    env_file = work.parent / "env.out"
    script = ["set -o pipefail", f"cd {shlex.quote(str(work))}"]
    for command, expected in shell_commands(block.body):
        script.append(command)
        script.append(
            f'__rc=$?; if [ "$__rc" != "{expected}" ]; then '
            f'echo {shlex.quote(f"README line {block.line}: ")}"exit $__rc, expected '
            f'{expected}: "{shlex.quote(command)} >&2; exit 97; fi'
        )
    script.append(f"env -0 > {shlex.quote(str(env_file))}")
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", "\n".join(script)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert_ran_clean(result, f"README block at line {block.line}")
    pairs = env_file.read_text().split("\0")
    return dict(p.split("=", 1) for p in pairs if "=" in p)


def _run_python(block: Block, work: Path, env: dict[str, str]) -> str:
    script = work / f"readme_example_{block.line}.py"
    script.write_text(block.body, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert_ran_clean(result, f"README Python example at line {block.line}")
    return result.stdout


def test_readme_examples_run_against_the_sandbox(sandbox: SandboxHandle, tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    work = tmp_path / "work"
    home = tmp_path / "home"
    work.mkdir()
    home.mkdir()
    shutil.copytree(ROOT / "policies", work / "policies")
    token_file = work / "token.txt"
    token_file.write_text(sandbox.token("storage-reader").reveal() + "\n")
    token_file.chmod(0o600)
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "PATH": os.pathsep.join([bin_dir, "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(ROOT),  # the code of this checkout, whatever is installed
        "TMPDIR": str(tmp_path),
        # The two variables the sandbox prints for you to export (README, "Try it by hand").
        "APIFY_API_BASE_URL": sandbox.url,
        "APIFY_TOKEN": sandbox.admin_token.reveal(),
    }
    outputs: list[str] = []
    ran = 0
    for block in blocks:
        if block.kind == "run":
            env = _run_shell(block, work, env)
            ran += 1
        elif block.kind == "python":
            outputs.append(_run_python(block, work, env))
            ran += 1
    assert ran >= 8
    # The examples did what they say.
    assert (
        (work / "audit.html")
        .read_text(encoding="utf-8")
        .lstrip()
        .lower()
        .startswith("<!doctype html")
    )
    assert (work / "accepted.json").exists()
    assert "3 products" in outputs[0]
    assert "SUCCEEDED 3 products" in outputs[1]
    assert "failover" in outputs[2] and "demo" in outputs[2]
    assert env["TOKENGUARD_KEY_FILE"].startswith(str(home))
    for shell in ("zsh", "fish"):
        script = (home / f".tokenguard-complete.{shell}").read_text(encoding="utf-8")
        assert "_TOKENGUARD_COMPLETE" in script
