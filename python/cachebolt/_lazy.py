"""Module attributes imported on first access (PEP 562), for names that many programs never use.

So a blocking-only program never imports asyncio (nor ssl, which asyncio loads). The importing
module lists its lazy names in a table and hands each miss to `load`; under `TYPE_CHECKING` it
imports them as usual, so type checkers and IDEs see them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["load"]


def load(namespace: dict[str, Any], lazy: Mapping[str, str], name: str) -> Any:
    """The attribute `name` of the module whose globals are `namespace`, imported on first use.

    Args:
        namespace: the module's `globals()`; the value is stored there, so the next access is a
            plain attribute lookup.
        lazy: attribute name -> the module (relative to the package) that defines it.
        name: the attribute asked for.

    Raises:
        AttributeError: `name` is not a lazy attribute either.
    """
    source = lazy.get(name)
    module_name = namespace["__name__"]
    if source is None:
        raise AttributeError(
            f"module {module_name!r} has no attribute {name!r}",
            name=name,
            obj=sys.modules[module_name],
        )
    value = getattr(importlib.import_module(source, namespace["__package__"]), name)
    namespace[name] = value
    return value
