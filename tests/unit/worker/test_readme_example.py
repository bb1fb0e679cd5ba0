"""The README's handlers example loads as written."""

from __future__ import annotations

import re
from pathlib import Path

from conveyor.worker.handlers import load_handlers

README = Path(__file__).parents[3] / "README.md"


def test_the_readme_handlers_example_registers_its_handlers(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(# handlers\.py\n.*?)```", README.read_text(), re.S)
    assert len(blocks) == 1
    (tmp_path / "readme_handlers.py").write_text(blocks[0])
    registry = load_handlers([str(tmp_path / "readme_handlers.py")])
    assert registry.names() == ["resize", "send_welcome"]
    resize = registry.get("resize")
    assert resize is not None and resize.auto_ack and resize.timeout_s == 120
    assert not resize.is_async
