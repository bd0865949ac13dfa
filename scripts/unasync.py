"""Generate python/cachebolt/_sync from python/cachebolt/_async (the httpcore pattern).

Each line of each module goes through a list of regex substitutions (`async def` -> `def`,
`await x` -> `x`, `AsyncCacheService` -> `CacheService`, ...). Primitives that really differ between
asyncio and threads live outside `_async/` as hand-written pairs named so one substitution maps
them (`AsyncSingleFlight`/`SingleFlight`, `async_sleep`/`sleep`), in modules paired the same way
(`_asyncio_synchronization`/`_synchronization`), so the blocking service never imports asyncio.

Comments and docstrings are rewritten too, so their words must be true in both twins: a keyword
substitution (`await `, `async with`, ...) in prose outside a `code span` rewrites English
("cannot await there" -> "cannot there"), and prose naming `_sync` says the opposite in the twin,
which is `_sync`. Either is reported with its line, and the script exits 1.

    python scripts/unasync.py          # regenerate
    python scripts/unasync.py --check  # exit 1 when a generated file is stale, missing or extra
"""

from __future__ import annotations

import argparse
import difflib
import io
import re
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "python" / "cachebolt" / "_async"
TARGET = ROOT / "python" / "cachebolt" / "_sync"
HEADER = "# generated from _async by scripts/unasync.py; do not edit\n"

# The language keywords, always applied.
KEYWORDS: list[tuple[str, str]] = [
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\bawait ", ""),
]
# Names, applied after the keywords. A name substitution that no line uses is an error, so this
# list stays exactly what the code needs.
NAMES: list[tuple[str, str]] = [
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\basynccontextmanager\b", "contextmanager"),
    (r"\baclose\b", "close"),
    (r"\b_async\b", "_sync"),
    (r"\bredis\.asyncio\b", "redis"),  # redis.asyncio.cluster -> redis.cluster
    (r"\basync_([a-z][a-z0-9_]*)\b", r"\1"),  # async_sleep -> sleep
    (r"\b_asyncio_([a-z][a-z0-9_]*)\b", r"_\1"),  # _asyncio_synchronization -> _synchronization
    (r"\bAsync([A-Z][A-Za-z0-9_]*)\b", r"\1"),  # AsyncCacheService -> CacheService
]
SUBSTITUTIONS = KEYWORDS + NAMES
COMPILED = [(re.compile(pattern), replacement) for pattern, replacement in SUBSTITUTIONS]


# Prose that would be wrong in the generated twin (see the module docstring).
KEYWORD_PATTERNS = [re.compile(pattern) for pattern, _ in KEYWORDS]
OTHER_FLAVOUR = re.compile(r"\b_sync\b")
CODE_SPAN = re.compile(r"`[^`\n]*`")


def prose_columns(text: str) -> dict[int, list[tuple[int, int]]]:
    """The columns of comments and docstrings in `text`, by line number (from 1)."""
    spans: dict[int, list[tuple[int, int]]] = {}
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    statement_start = (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT)
    for i, token in enumerate(tokens):
        docstring = (
            token.type == tokenize.STRING
            and (i == 0 or tokens[i - 1].type in statement_start)
            and tokens[i + 1].type == tokenize.NEWLINE
        )
        if token.type != tokenize.COMMENT and not docstring:
            continue
        (first, start), (last, end) = token.start, token.end
        for number in range(first, last + 1):
            columns = (start if number == first else 0, end if number == last else sys.maxsize)
            spans.setdefault(number, []).append(columns)
    return spans


def prose_problems(text: str, name: str) -> list[str]:
    """The lines of `text` whose comments or docstrings would be wrong in the generated twin."""
    problems = []
    lines = text.splitlines()
    for number, prose in sorted(prose_columns(text).items()):
        line = lines[number - 1]
        code = [m.span() for m in CODE_SPAN.finditer(line)]
        for pattern in KEYWORD_PATTERNS:
            for match in pattern.finditer(line):
                if _inside(prose, match.start()) and not _inside(code, match.start()):
                    problems.append(f"_async/{name}:{number}: {match.group()!r} rewrites prose")
        if any(_inside(prose, m.start()) for m in OTHER_FLAVOUR.finditer(line)):
            problems.append(f"_async/{name}:{number}: prose names `_sync`, itself in the twin")
    return problems


def _inside(spans: list[tuple[int, int]], column: int) -> bool:
    return any(start <= column < end for start, end in spans)


def unasync_text(text: str, used: set[int]) -> str:
    """The sync twin of one module's source, header included."""
    lines = []
    for line in text.splitlines(keepends=True):
        for index, (pattern, replacement) in enumerate(COMPILED):
            line, count = pattern.subn(replacement, line)
            if count:
                used.add(index)
        lines.append(line)
    return HEADER + "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when _sync is not up to date")
    args = parser.parse_args(argv)

    used: set[int] = set()
    expected: dict[Path, str] = {}
    problems: list[str] = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative, text = path.relative_to(SOURCE), path.read_text(encoding="utf-8")
        expected[relative] = unasync_text(text, used)
        problems += prose_problems(text, str(relative))
    stale = []
    for relative, text in expected.items():
        target = TARGET / relative
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(str(relative))
            diff = difflib.unified_diff(
                (current or "").splitlines(keepends=True),
                text.splitlines(keepends=True),
                f"_sync/{relative} (on disk)",
                f"_sync/{relative} (expected)",
            )
            sys.stdout.writelines(diff)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8", newline="\n")
            print(f"_async/{relative} -> _sync/{relative}")
    extra = sorted(
        str(path.relative_to(TARGET))
        for path in TARGET.rglob("*.py")
        if path.relative_to(TARGET) not in expected
    )
    if extra:
        print(f"files in _sync with no source in _async: {', '.join(extra)}")

    unused = [
        SUBSTITUTIONS[i][0] for i in range(len(KEYWORDS), len(SUBSTITUTIONS)) if i not in used
    ]
    if unused:
        print(f"substitutions no line uses (remove them): {unused}")
    if stale:
        print(f"stale generated files: {', '.join(stale)}; run `make unasync`")
    if problems:
        print("prose the twin would get wrong (reword it, or quote code in `backticks`):")
        print("\n".join(problems))
    return 1 if stale or extra or unused or problems else 0


if __name__ == "__main__":
    sys.exit(main())
