"""Rewrite the error catalogue in README.md from ``fleet_emulator.domain.reasons`` (``make docs``).

The catalogue sits between the ``<!-- reasons:start -->`` and ``<!-- reasons:end -->`` markers; a test
fails when the README and the code disagree.
"""

from __future__ import annotations

import re
from pathlib import Path

from fleet_emulator.domain.reasons import markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"(<!-- reasons:start -->\n).*?(<!-- reasons:end -->)", re.DOTALL)


def with_catalogue(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + markdown_table() + m.group(2), text)


if __name__ == "__main__":
    README.write_text(with_catalogue(README.read_text()))
    print(f"updated the error catalogue in {README}")
