"""Key templates (`"search:{tenant}:{query}"`) of the decorators and the FastAPI dependencies.

Each value is escaped by `escape_key_part`, so it can neither start another part of the key nor
act as a glob wildcard.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any, Final

from ._validate import key_arg

__all__ = ["KeyTemplate", "escape_key_part"]

# `%` first: it is the escape itself, so escaped text reads back to exactly one value.
_ESCAPED: Final = "%:\\*?[]" + "".join(map(chr, [*range(0x20), *range(0x7F, 0xA0)]))
_TABLE: Final = {ord(ch): f"%{ord(ch):02X}" for ch in _ESCAPED}
_formatter = string.Formatter()


def escape_key_part(value: str) -> str:
    """`value` as one part of a key: `%`, `:`, `\\`, `* ? [ ]` and control characters as `%XX`.

    `escape_key_part("acme:q3")` is `"acme%3Aq3"`; `"alice@example.com"` is unchanged.

    Args:
        value: any text.

    Returns:
        The escaped text; `value` itself when it holds none of those characters.

    Raises:
        TypeError: `value` is not a str.
    """
    if not isinstance(value, str):
        raise TypeError(f"value must be a str, not {type(value).__name__}")
    return value.translate(_TABLE)


class KeyTemplate:
    """A `str.format` template whose every field is escaped with `escape_key_part` once formatted.

    Fields are formatted as `str.format` would (`{page:03d}`, `{user.id}`, `{ids[0]}`, `{x!r}`),
    then escaped; the literal text between them is kept as written.
    """

    __slots__ = ("_parts", "names", "text")

    def __init__(self, text: str, what: str) -> None:
        key_arg(text, what)
        try:
            parsed = list(_formatter.parse(text))
        except ValueError as exc:
            raise ValueError(f"{what} {text!r} is not a valid format string: {exc}") from None
        self.text = text
        # (literal text, a one-field template or None), formatted in order.
        self._parts: list[tuple[str, str | None]] = []
        names: list[str] = []
        for literal, field, conversion, spec in parsed:
            if field is None:
                self._parts.append((literal, None))
                continue
            # "{user.id}" and "{ids[0]}" name the value before the first "." or "[".
            names.append(field.split(".", 1)[0].split("[", 1)[0])
            one = "{" + field + (f"!{conversion}" if conversion else "") + f":{spec or ''}}}"
            self._parts.append((literal, one))
        #: The names of the values it needs, in order (a positional field's is "" or digits).
        self.names = tuple(names)

    def format(self, values: Mapping[str, Any]) -> str:
        """The key: the template filled from `values`, each field escaped.

        Raises:
            KeyError, IndexError, AttributeError, ValueError: as `str.format_map` does.
        """
        return "".join(
            literal if one is None else literal + escape_key_part(one.format_map(values))
            for literal, one in self._parts
        )
