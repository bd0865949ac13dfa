"""Secrets and control characters kept out of every text cachebolt writes.

`mask_secrets` masks passwords in every message, log record and `repr`; the loggers of
`get_logger` also escape control characters, so user input cannot forge a log line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from ._constants import LOGGER_NAME

__all__ = ["MASK", "escape_controls", "get_logger", "mask_secrets"]

MASK = "***"

# The password of a URL: after "scheme:", a user name (maybe empty) and ":", up to the last "@"
# of the same word (a raw "@", "/", "?" or "#" in the password stays hidden whole), else up to
# the last "@" at all (a raw space in it); masking too much is the safe side. Redis's own schemes
# match with any number of slashes ("redis:/u:pw@h" would leak otherwise); any other scheme
# needs "//", so keys such as "user:1:x@y" stay readable in logs.
_URL_PASSWORD = re.compile(
    r"(\b(?:(?:rediss?|valkeys?|unix):/*|[a-z][a-z0-9+.-]*://)[^\s:@]*:)(?:\S*@|.*@)",
    re.IGNORECASE | re.DOTALL,
)
# redis-py also takes the password as a query parameter (unix:///run/redis.sock?password=...).
_QUERY_PASSWORD = re.compile(r"([?&;]password=)[^&;#\s]*", re.IGNORECASE)
# C0, DEL, C1 and the Unicode line and paragraph separators: each can end or rewrite a log line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def mask_secrets(text: str, *secrets: str | None) -> str:
    """`text` with every URL password and every given secret replaced by `***`.

    Args:
        text: a message that may quote a URL or a password.
        secrets: passwords known to the caller; each is also masked in its percent-encoded
            forms, as a URL carries it.

    Returns:
        The text, masked; the user name of a URL stays (it names who failed to log in).
    """
    known = [s for s in secrets if s and isinstance(s, str)]
    if known:
        # Imported here: most messages are masked without a known secret.
        from urllib.parse import quote

        for secret in known:
            for form in sorted({secret, quote(secret, safe=""), quote(secret)}, key=len)[::-1]:
                text = text.replace(form, MASK)
    if "@" in text:
        text = _URL_PASSWORD.sub(rf"\1{MASK}@", text)
    if "=" in text:
        text = _QUERY_PASSWORD.sub(rf"\1{MASK}", text)
    return text


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def escape_controls(text: str) -> str:
    """`text` with control characters (C0, DEL, C1, U+2028, U+2029) written as escapes."""
    return _CONTROL.sub(_escape_one, text)


def _clean(text: str) -> str:
    return escape_controls(mask_secrets(text))


class _CleanText(str):
    """A log argument as text, masked and escaped; `%r` gives its masked, escaped repr."""

    _repr: str

    def __repr__(self) -> str:
        return self._repr


def _clean_arg(value: Any) -> Any:
    # Numbers stay themselves: "%d" and "%.1f" need them, and their text is safe.
    if isinstance(value, (int, float)):
        return value
    text = _CleanText(_clean(str(value)))
    text._repr = _clean(repr(value))
    return text


def _clean_traceback(
    exc_type: type[BaseException], exc: BaseException, trace: TracebackType | None
) -> str:
    """The traceback `logging` would print, with each exception's own text escaped."""
    import traceback  # here: a record rarely carries an exception

    tb = traceback.TracebackException(exc_type, exc, trace)
    # The lines that quote an exception's message, in this exception and its chain; the stack
    # lines come from source files and keep their layout.
    quoted: set[str] = set()
    pending, seen = [tb], set()
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        quoted.update(item.format_exception_only())
        pending += [e for e in (item.__cause__, item.__context__) if e is not None]
        pending += getattr(item, "exceptions", None) or []
    chunks = (_clean(c.removesuffix("\n")) + "\n" if c in quoted else c for c in tb.format())
    return "".join(chunks).removesuffix("\n")


class _CleanRecords(logging.Filter):
    """Masks secrets and escapes control characters in a record, before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_cachebolt_clean", False):
            return True  # a record re-emitted through a cachebolt logger is cleaned once
        setattr(record, "_cachebolt_clean", True)  # noqa: B010
        record.msg = _clean(str(record.msg))
        args = record.args
        if isinstance(args, Mapping):
            record.args = {name: _clean_arg(value) for name, value in args.items()}
        elif args:
            record.args = tuple(_clean_arg(value) for value in args)
        exc_type, exc, tb = record.exc_info or (None, None, None)
        if exc_type is not None and exc is not None and record.exc_text is None:
            record.exc_text = _clean_traceback(exc_type, exc, tb)
        return True


_FILTER = _CleanRecords()


def get_logger(child: str | None = None) -> logging.Logger:
    """cachebolt's logger (or its `child`), with the filter that cleans every record.

    A logger's filter does not see its children's records, so every module takes its logger here.

    Args:
        child: a name under "cachebolt" ("fastapi" gives "cachebolt.fastapi"); None for the
            package's own logger.
    """
    logger = logging.getLogger(LOGGER_NAME if child is None else f"{LOGGER_NAME}.{child}")
    logger.addFilter(_FILTER)  # a no-op when it is there already
    return logger
