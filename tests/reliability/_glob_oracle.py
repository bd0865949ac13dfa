"""A Python oracle of Redis's glob matcher: a line-by-line port of `stringmatchlen_impl`
(redis/src/util.c, Redis 7.0.15, case-sensitive), including its quirks: `skipLongerMatches`, the
1000-level nesting cap, unterminated classes, swallowed brackets, signed-char ranges (x86-64), and
reads past the end that meet the C string's NUL terminator. `KEYS`/`SCAN` treat the pattern `*`
as "everything" before calling it (`scan_matches` does the same).
"""

from __future__ import annotations

import sys

__all__ = ["redis_glob", "scan_matches"]

sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))


def _signed(byte: int) -> int:
    return byte - 256 if byte >= 128 else byte


def _match(pat: bytes, p: int, s: bytes, i: int, skip: list[bool], nesting: int) -> bool:
    plen, slen = len(pat) - p, len(s) - i

    def at(k: int) -> int:  # pattern byte, 0 past the end (the C terminator)
        return pat[k] if k < len(pat) else 0

    if nesting > 1000:
        return False
    while plen and slen:
        c = pat[p]
        if c == 0x2A:  # *
            while plen and at(p + 1) == 0x2A:
                p += 1
                plen -= 1
            if plen == 1:
                return True
            while slen:
                if _match(pat[: p + plen], p + 1, s[: i + slen], i, skip, nesting + 1):
                    return True
                if skip[0]:
                    return False
                i += 1
                slen -= 1
            skip[0] = True
            return False
        if c == 0x3F:  # ?
            i += 1
            slen -= 1
        elif c == 0x5B:  # [
            p += 1
            plen -= 1
            negate = at(p) == 0x5E
            if negate:
                p += 1
                plen -= 1
            matched = False
            while True:
                if at(p) == 0x5C and plen >= 2:
                    p += 1
                    plen -= 1
                    if at(p) == s[i]:
                        matched = True
                elif at(p) == 0x5D:
                    break
                elif plen == 0:
                    p -= 1
                    plen += 1
                    break
                elif plen >= 3 and at(p + 1) == 0x2D:
                    start, end = _signed(at(p)), _signed(at(p + 2))
                    if start > end:
                        start, end = end, start
                    p += 2
                    plen -= 2
                    if start <= _signed(s[i]) <= end:
                        matched = True
                elif at(p) == s[i]:
                    matched = True
                p += 1
                plen -= 1
            if negate:
                matched = not matched
            if not matched:
                return False
            i += 1
            slen -= 1
        else:
            if c == 0x5C and plen >= 2:  # backslash
                p += 1
                plen -= 1
            if at(p) != s[i]:
                return False
            i += 1
            slen -= 1
        p += 1
        plen -= 1
        if slen == 0:
            while at(p) == 0x2A and plen > 0:
                p += 1
                plen -= 1
            break
    return plen == 0 and slen == 0


def redis_glob(pattern: bytes, string: bytes) -> bool:
    """Redis's `stringmatchlen(pattern, string, nocase=0)`."""
    return _match(pattern, 0, string, 0, [False], 0)


def scan_matches(pattern: str, key: str) -> bool:
    """Whether `SCAN MATCH pattern` (or `KEYS`) returns `key`."""
    if pattern == "*":
        return True
    return redis_glob(pattern.encode(), key.encode())
