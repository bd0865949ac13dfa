"""Glob patterns (`del_pattern`, `scan`, the admin key listing): Redis `KEYS`/`SCAN MATCH` syntax.

`*` matches any run of characters, `?` one character, `[abc]` / `[^abc]` / `[a-z]` a class, and
`\\` makes the next character literal. A pattern built from user input must escape it first, or
`"user:*"` typed as a user name deletes every user:

    cache.del_pattern(escape_pattern(f"session:{user_input}:") + "*")

removes exactly the keys that start with `session:<user_input>:`, whatever characters the input
holds, on both backends.
"""

from __future__ import annotations

from typing import Final

__all__ = ["escape_pattern"]

_SPECIAL: Final = frozenset("*?[]\\")


def escape_pattern(literal: str) -> str:
    """`literal` as a glob that matches exactly itself (each of ``* ? [ ] \\`` gets a backslash).

    `^` and `-` are special only inside a class, and a class cannot start once `[` is escaped,
    so they are left as they are.

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
