"""What `import cachebolt` loads: a blocking-only program gets neither asyncio, ssl nor redis-py.

Each check runs in a fresh interpreter (pytest itself has imported asyncio). The time it takes
is measured by scripts/import_cost.py, not asserted here.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import cachebolt
import pytest

# The memory backend with the default config: no variable of the environment may select Redis.
_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("VALKEY_", "CACHE_"))}


def _run(code: str) -> object:
    """The value printed (as a Python literal) by `code` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", code], env=_ENV, capture_output=True, text=True, check=True
    )
    return ast.literal_eval(done.stdout)


def test_blocking_use_imports_neither_asyncio_ssl_nor_redis() -> None:
    loaded = _run(
        "import sys, cachebolt; cachebolt.CacheService(); "
        "print(sorted(m for m in ('asyncio', 'ssl', 'redis') if m in sys.modules))"
    )
    assert loaded == []


def test_orjson_is_imported_by_the_first_value_and_then_called_directly() -> None:
    loaded = _run(
        "import sys, cachebolt, cachebolt._sync.service as s\n"
        "cache = cachebolt.CacheService()\n"
        "before = 'orjson' in sys.modules\n"
        "cache.set('k', {'a': [1, 2.5, None]})\n"
        "import orjson\n"
        "print((before, cache.get('k'), s._dumps is orjson.dumps, s._loads is orjson.loads))"
    )
    assert loaded == (False, {"a": [1, 2.5, None]}, True, True)


def test_the_codec_options_are_orjsons() -> None:
    import orjson
    from cachebolt import _codec

    assert (_codec.OPTIONS, _codec.SORT_KEYS) == (orjson.OPT_NON_STR_KEYS, orjson.OPT_SORT_KEYS)


def test_the_domain_limiter_of_the_blocking_service_does_not_import_asyncio() -> None:
    loaded = _run(
        "import sys, cachebolt\n"
        "from cachebolt.rate_limits import EnhancedRateLimitService\n"
        "EnhancedRateLimitService(cachebolt.CacheService()).check_otp('+15550100', '203.0.113.7')\n"
        "print(sorted(m for m in ('asyncio', 'ssl', 'redis') if m in sys.modules))"
    )
    assert loaded == []


def test_every_public_name_resolves_and_dir_lists_it() -> None:
    unresolved, undirected = _run(
        "import cachebolt, cachebolt.rate_limits as r\n"
        "print(([n for n in cachebolt.__all__ if getattr(cachebolt, n, None) is None]\n"
        "       + [n for n in r.__all__ if getattr(r, n, None) is None],\n"
        "       sorted(set(cachebolt.__all__) - set(dir(cachebolt)))\n"
        "       + sorted(set(r.__all__) - set(dir(r)))))"
    )
    assert unresolved == []
    assert undirected == []


def test_the_asyncio_names_are_the_classes_of_their_modules() -> None:
    same = _run(
        "import sys, cachebolt\n"
        "before = 'asyncio' in sys.modules\n"
        "from cachebolt import AsyncCacheService, AsyncEnhancedRateLimitService\n"
        "from cachebolt._async.rate_limits import AsyncEnhancedRateLimitService as R\n"
        "from cachebolt._async.service import AsyncCacheService as S\n"
        "import cachebolt.rate_limits as r\n"
        "print((before, AsyncCacheService is S, AsyncEnhancedRateLimitService is R,\n"
        "       r.AsyncEnhancedRateLimitService is R, 'asyncio' in sys.modules))"
    )
    assert same == (False, True, True, True, True)


def test_star_import_gives_every_name() -> None:
    missing = _run(
        "import cachebolt\n"
        "namespace = {}\n"
        "exec('from cachebolt import *', namespace)\n"
        "print(sorted(set(cachebolt.__all__) - set(namespace)))"
    )
    assert missing == []


@pytest.mark.parametrize("name", ["AsyncCacheServic", "_LAZY_MISSING"])
def test_an_unknown_name_is_an_attribute_error(name: str) -> None:
    with pytest.raises(AttributeError, match=f"^module 'cachebolt' has no attribute '{name}'$"):
        getattr(cachebolt, name)
