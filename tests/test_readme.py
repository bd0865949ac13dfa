"""Every ```python block of README.md runs as written (each in a fresh namespace)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.MULTILINE | re.DOTALL)


def test_readme_has_code_blocks() -> None:
    assert len(BLOCKS) >= 7  # cache, locks, rate limits, pub/sub, collections, decorators, async


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(block: str) -> None:
    code = compile(block, str(README), "exec")
    exec(code, {"__name__": "readme"})
