"""Every shell block of the README, run as a user runs them: in order, in one shell, against a
``fleet-emulator serve`` started as ``make run`` starts it (demo scenario, simulator on).

The blocks run in a fresh folder that has the project's ``.venv`` (the quick start puts ``$PWD/.venv/bin``
on the PATH), with the emulator's address in place of ``localhost:50051`` and in ``FLEET_EMULATOR_ADDRESS``
for the CLI, and its web console's in place of ``localhost:8080``, which is what a user of ``make run`` has
by default. A block must succeed (``set -e``), unless
an HTML comment right before it says otherwise: ``<!-- readme-test: exit N -->`` (its last command exits
with N, as the README explains) or ``<!-- readme-test: skip: why -->`` (it starts the emulator itself, or
needs Docker). Shell variables and exports carry from one block to the next, as in a terminal.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import clean_env, free_port, serve_command, serving

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<note>[^\n]*?) -->\n)?```sh\n(?P<body>.*?)^```", re.S | re.M)
RUN_TIMEOUT_S = 240


@dataclass(frozen=True)
class Block:
    line: int
    body: str
    note: str

    @property
    def skipped(self) -> bool:
        return self.note.startswith("skip:")

    @property
    def expected_exit(self) -> int | None:
        match = re.fullmatch(r"exit (\d+)", self.note)
        return int(match[1]) if match else None


def blocks() -> list[Block]:
    text = README.read_text()
    return [
        Block(text.count("\n", 0, m.start("body")) + 1, m["body"], m["note"] or "")
        for m in BLOCK.finditer(text)
    ]


def script(address: str, console: str) -> str:
    """The blocks as one bash script that reports each block it starts and each expected exit code."""
    lines = ["set -o pipefail"]
    for block in blocks():
        if block.skipped:
            continue
        body = block.body.replace("localhost:50051", address).replace("localhost:8080", console)
        lines.append(f'echo "::block at README line {block.line}"')
        if block.expected_exit is None:
            lines += ["set -e", body, "set +e"]
        else:
            lines += ["set +e", body, f'echo "::exit {block.line} $?"']
    lines.append('echo "::done"')
    return "\n".join(lines) + "\n"


def test_every_shell_block_is_run_skipped_or_expected_to_fail_for_a_stated_reason() -> None:
    found = blocks()
    assert len(found) == README.read_text().count("```sh\n"), "a shell block the pattern does not see"
    assert len([b for b in found if not b.note]) >= 8
    for block in found:
        assert not block.note or block.skipped or block.expected_exit is not None, block


def test_the_readme_runs_as_written_in_order(tmp_path: Path) -> None:
    port, console_port = free_port(), free_port()
    address = f"127.0.0.1:{port}"
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    log = tmp_path / "serve.log"
    listen = ("--host", "127.0.0.1", "--port", str(port), "--console-port", str(console_port))
    command = serve_command(*listen, simulate=True)
    with serving(command, port, log):
        result = subprocess.run(
            ["bash", "-c", script(address, f"127.0.0.1:{console_port}")],
            cwd=tmp_path,
            env=clean_env(FLEET_EMULATOR_ADDRESS=address),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    output = result.stdout + result.stderr
    started = re.findall(r"^::block at README line (\d+)$", result.stdout, re.M)
    assert result.returncode == 0 and "::done" in result.stdout, (
        f"the block at README line {started[-1] if started else '?'} failed "
        f"(exit {result.returncode}):\n{output[-6000:]}"
    )
    exits = {int(line): int(code) for line, code in re.findall(r"^::exit (\d+) (\d+)$", result.stdout, re.M)}
    assert exits == {b.line: b.expected_exit for b in blocks() if b.expected_exit is not None}, output[-6000:]
