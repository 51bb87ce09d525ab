"""The pytest-plugin example of the README passes as written: its python code blocks, each made a test
module of an inner pytest session, pass with as many tests as they define at module level. The section
is README.md's "## pytest plugin"."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECTION = re.compile(r"^## pytest plugin[ \t]*\n(.*?)(?=^## |\Z)", re.MULTILINE | re.DOTALL)
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def plugin_section() -> tuple[Path, str]:
    """Where the section is, and its text."""
    found = SECTION.search(README.read_text(encoding="utf-8"))
    assert found, "README.md lost its '## pytest plugin' section"
    return README, found.group(1)


def count_tests(block: str) -> int:
    """How many tests a block defines at module level."""
    return sum(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
        for node in ast.parse(block).body
    )


def test_the_example_passes_as_written(pytester: pytest.Pytester) -> None:
    source, section = plugin_section()
    blocks = PYTHON_BLOCK.findall(section)
    assert blocks, f"no ```python block in the pytest-plugin section of {source}"
    for number, block in enumerate(blocks):
        pytester.makepyfile(**{f"test_readme_example_{number}": block})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=sum(count_tests(block) for block in blocks))
