"""Glob patterns (`del_pattern`, `scan`, the admin key listing): Redis `KEYS`/`SCAN MATCH` syntax.

Escape user input before it becomes part of a pattern, or `"*"` typed as a name matches all:

    cache.del_pattern(escape_pattern(f"session:{user_input}:") + "*")

A pattern is at most `MAX_PATTERN_LENGTH` characters, matched in time linear in each key.
"""

from __future__ import annotations

from typing import Final

from ._validate import MAX_PATTERN_LENGTH, pattern_arg

__all__ = ["MAX_PATTERN_LENGTH", "MAX_SCAN_COUNT", "check_pattern", "escape_pattern"]

#: Most keys one `scan` step examines (a larger `count` is clamped to it).
MAX_SCAN_COUNT: Final = 1000

_SPECIAL: Final = frozenset("*?[]\\")

#: Checks a glob of `del_pattern` / `scan` (see `cachebolt._validate.pattern_arg`).
check_pattern = pattern_arg


def escape_pattern(literal: str) -> str:
    """`literal` as a glob that matches exactly itself (each of ``* ? [ ] \\`` gets a backslash).

    `^` and `-` stay: they are special only inside a class, which an escaped `[` cannot open.

    Args:
        literal: any text (a key prefix, a user-supplied name).

    Returns:
        The escaped pattern; `literal` itself when it has no special character.

    Raises:
        TypeError: `literal` is not a str.
    """
    if not isinstance(literal, str):
        raise TypeError(f"literal must be str, not {type(literal).__name__}")
    if not _SPECIAL.intersection(literal):
        return literal
    return "".join("\\" + ch if ch in _SPECIAL else ch for ch in literal)
