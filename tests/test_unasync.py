"""scripts/unasync.py: the generated `_sync` package is up to date, and `--check` catches drift."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "unasync.py"


@pytest.fixture
def unasync() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def copy(unasync: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A copy of `_async` and `_sync` that the script works on."""
    source, target = tmp_path / "_async", tmp_path / "_sync"
    shutil.copytree(unasync.SOURCE, source)
    shutil.copytree(unasync.TARGET, target, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(unasync, "SOURCE", source)
    monkeypatch.setattr(unasync, "TARGET", target)
    return source, target


def test_check_passes_on_the_repository() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_files_carry_the_header() -> None:
    package = ROOT / "python" / "cachebolt"
    generated = sorted((package / "_sync").glob("*.py"))
    sources = sorted((package / "_async").glob("*.py"))
    assert [p.name for p in generated] == [p.name for p in sources]
    assert "service.py" in {p.name for p in generated}
    for path in generated:
        assert path.read_text().startswith(
            "# generated from _async by scripts/unasync.py; do not edit\n"
        )


def test_substitutions(unasync: ModuleType) -> None:
    source = (
        "from .._asyncio_synchronization import AsyncSingleFlight, async_sleep\n"
        "from .._asyncio_pubsub import AsyncDispatcher\n"
        "class AsyncCacheService:\n"
        "    async def __aenter__(self) -> AsyncCacheService:\n"
        "        async with self._lock:\n"
        "            await async_sleep(1)\n"
        "        async for x in self._items():\n"
        "            await self._dispatcher.aclose()\n"
        "        return await self._backend.get(key)\n"
    )
    assert unasync.unasync_text(source, set()) == (
        unasync.HEADER + "from .._synchronization import SingleFlight, sleep\n"
        "from .._pubsub import Dispatcher\n"
        "class CacheService:\n"
        "    def __enter__(self) -> CacheService:\n"
        "        with self._lock:\n"
        "            sleep(1)\n"
        "        for x in self._items():\n"
        "            self._dispatcher.close()\n"
        "        return self._backend.get(key)\n"
    )


def test_words_containing_async_are_left_alone(unasync: ModuleType) -> None:
    line = "import asyncio  # Asyncio is asynchronous; is_async_service stays\n"
    assert unasync.unasync_text(line, set()) == unasync.HEADER + line


def test_check_fails_on_a_stale_missing_or_extra_file(
    unasync: ModuleType, copy: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    target = copy[1]
    assert unasync.main(["--check"]) == 0

    service = target / "service.py"
    service.write_text(service.read_text().replace("def get(", "def get_edited_by_hand("))
    assert unasync.main(["--check"]) == 1
    assert "stale generated files: service.py" in capsys.readouterr().out
    assert unasync.main([]) == 0  # regenerates
    assert unasync.main(["--check"]) == 0

    (target / "backend.py").unlink()
    assert unasync.main(["--check"]) == 1
    unasync.main([])
    (target / "orphan.py").write_text("")
    assert unasync.main(["--check"]) == 1
    assert "no source in _async: orphan.py" in capsys.readouterr().out


def test_prose_rewritten_outside_code_spans_is_reported(unasync: ModuleType) -> None:
    source = (
        '"""The asyncio service cannot await there; `await service.connect()` can."""\n'
        "\n"
        "async def f() -> None:\n"
        '    """`async with service:` connects."""\n'
        "    await g()  # the reply: await it, not `_sync`\n"
        "    # an async with block\n"
        '    x = "await g() is only a string"\n'
    )
    assert unasync.prose_problems(source, "m.py") == [
        "_async/m.py:1: 'await ' rewrites prose",
        "_async/m.py:5: 'await ' rewrites prose",
        "_async/m.py:5: prose names `_sync`, itself in the twin",
        "_async/m.py:6: 'async with' rewrites prose",
    ]


def test_check_fails_on_prose_the_twin_gets_wrong(
    unasync: ModuleType, copy: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    source = copy[0]
    backend = source / "backend.py"
    backend.write_text(backend.read_text().replace('"""', '"""The calls you await here. ', 1))
    assert unasync.main([]) == 1  # generated, and reported
    assert unasync.main(["--check"]) == 1
    assert "_async/backend.py:1: 'await ' rewrites prose" in capsys.readouterr().out
