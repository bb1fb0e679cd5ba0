"""The README's shell blocks, as a script a test can run against a live server."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\w*)\s*$")
#: A block the README shows but a test cannot run (it starts a server, or runs for ever).
SKIP = re.compile(r"^<!-- not run: (?P<reason>.+) -->$")


@dataclass(frozen=True)
class Block:
    line: int
    code: str
    skip_reason: str | None


def shell_blocks(text: str) -> list[Block]:
    """Every ```sh block, with the reason it is not run when a marker precedes it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None or not opening["lang"]:
            index += 1
            continue
        end = index + 1
        while _FENCE.match(lines[end]) is None or _FENCE.match(lines[end])["lang"]:  # type: ignore[index]
            end += 1
        if opening["lang"] == "sh":
            code = textwrap.dedent("\n".join(lines[index + 1 : end]))
            blocks.append(Block(index + 1, code, _skip_reason(lines, index)))
        index = end + 1
    return blocks


def _skip_reason(lines: list[str], fence: int) -> str | None:
    previous = next((line.strip() for line in reversed(lines[:fence]) if line.strip()), "")
    marker = SKIP.match(previous)
    return marker["reason"] if marker else None


def script(blocks: list[Block], base: str) -> str:
    """One bash script running the blocks in order (they share variables), stopping at
    the first failing command, against the server at `base` instead of localhost:8000."""
    parts = ["set -eo pipefail"]
    for block in blocks:
        if block.skip_reason is None:
            code = block.code.replace("http://localhost:8000", base)
            code = code.replace("http://127.0.0.1:8000", base).replace("localhost:8000", base)
            parts += [f"echo '::: README line {block.line}'", code]
    return "\n".join(parts) + "\n"
