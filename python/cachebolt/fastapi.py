"""FastAPI integration: `RateLimit` and `WithLock` dependencies, and the `admin_router`.

Install with `pip install "cachebolt[fastapi]"` (FastAPI >= 0.121); `import cachebolt` never imports
this module. Every dependency takes `cache=`, else uses `request.app.state.cachebolt`. The asyncio
service is awaited; the blocking one is called inline in memory mode (one Rust call, ~5 us) and in a
worker thread in Redis mode. Keys, identities, headers and the admin routes: README, "FastAPI".
"""

from __future__ import annotations

import hmac
import inspect
import ipaddress
import math
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator
from functools import partial
from typing import Any, TypeAlias, TypeVar

try:
    import anyio
    import anyio.to_thread
    from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
    from fastapi.dependencies.utils import request_params_to_args
    from fastapi.exceptions import RequestValidationError
    from starlette.routing import Host, Mount
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError("cachebolt.fastapi needs FastAPI: pip install 'cachebolt[fastapi]'") from exc

from ._async.service import AsyncCacheService
from ._constants import (
    DEFAULT_RATE_LIMIT_ALGORITHM,
    LOCK_FALLBACK_POLICIES,
    ON_LOST_POLICIES,
    ON_LOST_RAISE,
    ON_LOST_WARN,
    PROBE_MAX_SECONDS,
    RATE_LIMIT_FALLBACK_POLICIES,
)
from ._redact import get_logger
from ._results import RateLimitResult
from ._sync.service import CacheService
from ._templates import KeyTemplate, escape_key_part
from ._validate import (
    algorithm_arg,
    choice_arg,
    count_arg,
    key_arg,
    ms_arg,
    positive_arg,
    seconds_arg,
)
from .exceptions import BackendUnavailable, CapacityError
from .patterns import MAX_PATTERN_LENGTH, MAX_SCAN_COUNT

__all__ = [
    "STATE_ATTRIBUTE",
    "RateLimit",
    "WithLock",
    "admin_router",
    "check_key_templates",
    "client_address",
]

AnyService: TypeAlias = CacheService | AsyncCacheService
Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
_T = TypeVar("_T")

#: `request.app.state.<STATE_ATTRIBUTE>` is the service of dependencies built without `cache=`.
STATE_ATTRIBUTE = "cachebolt"
#: Shortest admin token accepted (characters): 16 random bytes in hex or base64 pass.
MIN_TOKEN_LENGTH = 16
#: Most keys one `GET /cache/keys` page may ask for: one `scan` step's bound.
MAX_PAGE_COUNT = MAX_SCAN_COUNT
# SCAN steps one page may take to fill itself: a sparse pattern answers in bounded time, possibly
# with fewer keys than asked and a cursor to go on with.
_MAX_PAGE_STEPS = 8
_ANONYMOUS = "unknown"

_logger = get_logger("fastapi")


# --- the service and how to call it ----------------------------------------------------------


def _service(request: Request, explicit: AnyService | None) -> AnyService:
    if explicit is not None:
        return explicit
    service = getattr(request.app.state, STATE_ATTRIBUTE, None)
    if not isinstance(service, (CacheService, AsyncCacheService)):
        raise RuntimeError(
            f"no cache service: pass cache=... to the dependency or set "
            f"app.state.{STATE_ATTRIBUTE} to a CacheService or AsyncCacheService"
        )
    return service


def _check_service(cache: object) -> None:
    if cache is not None and not isinstance(cache, (CacheService, AsyncCacheService)):
        raise TypeError(
            f"cache must be a CacheService or AsyncCacheService, not {type(cache).__name__}"
        )


async def _call(
    service: AnyService, method: str, *args: Any, inline: bool = True, **kwargs: Any
) -> Any:
    """`service.<method>(*args)`: awaited, called inline (blocking memory mode, when `inline`),
    or run in a worker thread (blocking Redis mode, or a call that may walk the keyspace)."""
    fn = getattr(service, method)
    if isinstance(service, AsyncCacheService):
        return await fn(*args, **kwargs)
    if inline and not service.config.enabled:
        return fn(*args, **kwargs)
    return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))


# --- identity ----------------------------------------------------------------------------------


def _networks(trusted_proxies: Iterable[str]) -> tuple[Network, ...]:
    if isinstance(trusted_proxies, str):
        raise TypeError("trusted_proxies must be an iterable of addresses, not a str")
    networks = []
    for entry in trusted_proxies:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"trusted_proxies: {entry!r} is not an address or network") from exc
    return tuple(networks)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:443"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: tuple[Network, ...]
) -> bool:
    return any(address in net for net in nets)


def _group(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    # One IPv6 subscriber usually holds a whole /64: counting per address would let it rotate.
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _client_address(request: Request, nets: tuple[Network, ...], group: bool = True) -> str:
    client = request.client
    if client is None or not client.host:
        return _ANONYMOUS
    peer = _parse_ip(client.host)
    if peer is None:  # a non-IP transport name (a Unix socket, a test client)
        return client.host[:64]
    if not nets or not _trusted(peer, nets):
        return _group(peer) if group else str(peer)
    # The peer is our proxy: each trusted hop appended the address it saw, so the right-most
    # address that is not a trusted proxy is the client; anything left of it is client-written.
    hops = ",".join(request.headers.getlist("x-forwarded-for")).split(",")
    found = peer
    for hop in reversed(hops):
        if not hop.strip():
            continue
        address = _parse_ip(hop)
        if address is None:  # garbage written by a trusted hop: the last hop we trust is it
            break
        found = address
        if not _trusted(address, nets):
            break
    return _group(found) if group else str(found)


def client_address(
    request: Request, trusted_proxies: Iterable[str] = (), *, group_ipv6: bool = True
) -> str:
    """The client's address as the limiters see it.

    The direct peer, unless it is one of `trusted_proxies` (addresses or networks); then the
    right-most `X-Forwarded-For` entry that is not a trusted proxy (entries further left are
    written by the client and never believed). IPv4-mapped IPv6 addresses count as IPv4, IPv6
    addresses are grouped by /64 (`2001:db8::/64`).

    Args:
        request: the request.
        trusted_proxies: addresses or networks of the proxies whose `X-Forwarded-For` is believed.
        group_ipv6: False gives an IPv6 client's own address instead of its /64, for a consumer
            that takes addresses and groups them itself (`EnhancedRateLimitService.check_otp`).

    Raises:
        ValueError: an entry of `trusted_proxies` is not an address or network.
    """
    return _client_address(request, _networks(trusted_proxies), group_ipv6)


def _caller(identity: object, request: Request, nets: tuple[Network, ...]) -> str:
    """`user:<identity>` when `by` named someone, else `ip:<client address>`.

    The identity is escaped (`escape_key_part`): it holds no `:`, so no user is ever the
    anonymous `ip:` caller, nor reaches the parts of the key that follow it.
    """
    if identity is None or identity == "":
        return "ip:" + _client_address(request, nets)
    return "user:" + escape_key_part(str(identity))


def _with_identity(
    instance: object, call: Callable[..., Any], by: Callable[..., Any] | None
) -> None:
    """Give `instance` the signature FastAPI resolves: `call`'s, plus `identity=Depends(by)`."""
    # Annotations evaluated: FastAPI cannot resolve strings without the function's globals.
    signature = inspect.signature(call, eval_str=True)
    parameters = [p for p in signature.parameters.values() if p.name != "identity"]
    if by is not None:
        parameters.append(
            inspect.Parameter(
                "identity", inspect.Parameter.KEYWORD_ONLY, default=Depends(by), annotation=Any
            )
        )
    instance.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]


class _Template:
    """A key template over the route's path parameters (`"{order_id}"`), filled per request.

    The values are the path parameters as FastAPI validates them for the route (the objects
    its functions receive: `order_id: int` makes `/orders/01` and `/orders/1` one key), by the
    route's own field of that name: the endpoint's first, then its dependencies'. A parameter
    no function declares is its text. A value that fails validation raises the
    `RequestValidationError` FastAPI would (422), before any key is made.
    """

    __slots__ = ("_template",)

    def __init__(self, text: str, what: str) -> None:
        self._template = KeyTemplate(text, what)
        bad = [name for name in self._template.names if not name.isidentifier()]
        if bad:
            raise ValueError(f"{what} {text!r}: fields must name path parameters, not {{{bad[0]}}}")

    def _fields(self, route: Any) -> dict[str, Any]:
        """Template name -> the route's field that validates it (None: no function declares it)."""
        if not self._template.names:
            return {}
        declared: dict[str, Any] = {}
        # Breadth first: the endpoint's own parameters win.
        for dependant in _dependants(getattr(route, "dependant", None)):
            for field in dependant.path_params:
                declared.setdefault(field.alias, field)
        return {name: declared.get(name) for name in self._template.names}

    def check(self, path_params: Collection[str], path: str) -> None:
        """Raise ValueError when the template names a parameter that `path_params` lacks.

        Args:
            path_params: the names of the route's path parameters.
            path: the route's path, for the message.
        """
        for name in self._template.names:
            if name not in path_params:
                raise ValueError(
                    f"key template {self._template.text!r} names {{{name}}}, which is not a "
                    f"path parameter of {path}"
                )

    def format(self, request: Request) -> str:
        raw = request.path_params
        self.check(raw, _route_path(request))
        route = request.scope.get("route")
        values: dict[str, Any] = {}
        for name, field in self._fields(route).items():
            if field is None:
                values[name] = raw[name]
                continue
            validated, errors = request_params_to_args([field], raw)
            if errors:
                raise RequestValidationError(errors)
            values[name] = validated[field.name]
        try:
            return self._template.format(values)
        except (KeyError, IndexError, AttributeError, ValueError) as exc:
            raise RuntimeError(
                f"key template {self._template.text!r} cannot be filled from the path "
                f"parameters of {_route_path(request)}: {exc!r}"
            ) from None


def _route_path(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    # The template, never the URL: /orders/1 and /orders/2 must share one counter.
    return path if isinstance(path, str) else "*"


def check_key_templates(app: Any) -> None:
    """Check the `key=` template of every `RateLimit` and `WithLock` on `app`'s routes.

    Call it once the app is built, e.g. first thing in its lifespan: a template naming a
    parameter that its route's path lacks then stops the start-up, where otherwise every
    request of that route fails (500). A route's path is final only once every router is
    included (an `include_router` or `Mount` prefix may supply the parameter), and FastAPI calls
    no dependency when it builds a route, so the check cannot run earlier by itself.

    Args:
        app: the FastAPI application (or a router); mounted apps and routers are checked too.

    Raises:
        ValueError: naming the template, the missing parameter and the route's path.
    """
    for route, path_params, path in _dependant_routes(getattr(app, "routes", ()), set(), ""):
        for dependant in _dependants(route.dependant):
            if isinstance(dependant.call, (RateLimit, WithLock)) and dependant.call._key:
                dependant.call._key.check(path_params, path)


def _dependants(root: Any) -> Iterator[Any]:
    """`root` (a route's FastAPI dependant; None: none) and every dependant below it, breadth
    first."""
    queue = [] if root is None else [root]
    for dependant in queue:
        yield dependant
        queue.extend(dependant.dependencies)


def _dependant_routes(
    routes: Iterable[Any], outer: set[str], prefix: str
) -> Iterator[tuple[Any, set[str], str]]:
    """(route, names of its path parameters, its full path) of every route with dependencies,
    through mounts, hosts and included routers."""
    for route in routes:
        own = set(getattr(route, "param_convertors", ()))
        if getattr(route, "dependant", None) is not None:
            yield route, outer | own, prefix + route.path
        elif isinstance(route, Mount):
            # `{path}` is the mount's own remainder, never a path parameter of its routes.
            yield from _dependant_routes(route.routes, outer | own - {"path"}, prefix + route.path)
        elif isinstance(route, Host):
            yield from _dependant_routes(route.routes, outer | own, prefix)
        elif callable(contexts := getattr(route, "effective_route_contexts", None)):
            # Recent FastAPI keeps an included router as one route whose routes, with the
            # include's prefix and dependencies, it builds on demand (older ones copy them).
            yield from _dependant_routes(contexts(), outer, prefix)


# --- RateLimit ---------------------------------------------------------------------------------


def _rate_limit_headers(result: RateLimitResult, now: float) -> dict[str, str]:
    reset = math.ceil(result.reset_after)
    return {
        "RateLimit-Limit": str(result.limit),
        "RateLimit-Remaining": str(result.remaining),
        "RateLimit-Reset": str(reset),
        "X-RateLimit-Limit": str(result.limit),
        "X-RateLimit-Remaining": str(result.remaining),
        "X-RateLimit-Reset": str(math.ceil(now + result.reset_after)),
    }


class RateLimit:
    """A FastAPI dependency: at most `limit` requests per `window_seconds` for each caller.

    The counter is `ratelimit:<caller>:<METHOD>:<route template>`, or `ratelimit:<caller>:<key>`
    with `key=` (a template over path parameters). A denied request gets 429 with `Retry-After`
    and consumes nothing; allowed ones get the `RateLimit-*` headers. Several limits on one route
    each need their own `key=`, and each records its hit on its own (`hit_rate_limits` checks
    several together). README, "FastAPI", has the keys and headers in full.

    Args:
        limit: requests allowed per window, >= 1.
        window_seconds: the window, seconds > 0.
        key: the name of the limit (default: the route's method and path template).
        by: a FastAPI dependency returning who calls (None: anonymous, counted by address).
        algorithm: "sliding_log" (exact, the default), "fixed_window", "sliding_counter" or
            "gcra".
        cost: hits each request counts for, 1..limit.
        cache: the service (default: `app.state.cachebolt`).
        trusted_proxies: addresses or networks of the proxies whose `X-Forwarded-For` is believed.
        fallback: what a request does while Redis is down, instead of
            `CACHE_RATE_LIMIT_FALLBACK`: "memory", "fail_closed" (429) or "fail_open".

    Raises:
        ValueError: a bad limit, window, cost (also above `limit`: never allowed), algorithm,
            key, trusted proxy or fallback.
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        key: str | None = None,
        by: Callable[..., Any] | None = None,
        algorithm: str = DEFAULT_RATE_LIMIT_ALGORITHM,
        cost: int = 1,
        cache: AnyService | None = None,
        trusted_proxies: Iterable[str] = (),
        fallback: str | None = None,
    ) -> None:
        positive_arg(limit, "limit")
        seconds_arg(window_seconds, "window_seconds")
        count_arg(cost, "cost")
        algorithm_arg(algorithm)
        if cost < 1 or cost > limit:
            raise ValueError(f"cost must be in 1..limit ({limit}), got {cost}")
        if fallback is not None:
            choice_arg("fallback", fallback, RATE_LIMIT_FALLBACK_POLICIES)
        if by is not None and not callable(by):
            raise TypeError(f"by must be callable, not {type(by).__name__}")
        _check_service(cache)
        self.limit = limit
        self.window_seconds = window_seconds
        self.algorithm = algorithm
        self.cost = cost
        self.fallback = fallback
        self._key = None if key is None else _Template(key, "key")
        self._cache = cache
        self._proxies = _networks(trusted_proxies)
        _with_identity(self, self.__call__, by)

    def scope_key(self, request: Request, identity: object = None) -> str:
        """The rate-limit key of this request (without the `ratelimit:` namespace)."""
        caller = _caller(identity, request, self._proxies)
        if self._key is not None:
            return f"{caller}:{self._key.format(request)}"
        return f"{caller}:{request.method}:{_route_path(request)}"

    async def __call__(
        self, request: Request, response: Response, identity: object = None
    ) -> RateLimitResult:
        service = _service(request, self._cache)
        key = self.scope_key(request, identity)
        counted = getattr(request.state, "cachebolt_rate_limit_keys", None)
        if counted is None:
            counted = request.state.cachebolt_rate_limit_keys = set()
        if key in counted:
            raise RuntimeError(
                f"two RateLimit dependencies of {_route_path(request)} count this request at "
                f"ratelimit:{key}: give each its own key="
            )
        counted.add(key)
        try:
            result: RateLimitResult = await _call(
                service,
                "hit_rate_limit",
                key,
                self.limit,
                self.window_seconds,
                cost=self.cost,
                algorithm=self.algorithm,
                fallback=self.fallback,
            )
        except CapacityError as exc:
            # No room to count the request: the in-memory backend's rate-limit state is at its
            # share of the bound (many distinct callers), or Redis is out of memory. It is
            # refused, not let through uncounted. State whose window has passed is freed first,
            # so one window is the longest wait.
            retry = max(math.ceil(self.window_seconds), 1)
            _logger.warning("rate limit cannot count %s (retry in %d s): %s", key, retry, exc)
            raise HTTPException(
                status_code=503,
                detail={"error": "rate_limit_state_full", "retry_after": retry},
                headers={"Retry-After": str(retry)},
            ) from None
        headers = _rate_limit_headers(result, time.time())
        if not result.allowed:
            retry = max(math.ceil(result.retry_after), 1)
            headers["Retry-After"] = str(retry)
            # Denials are routine (and an attacker's favourite): DEBUG, as in the service.
            _logger.debug("rate limit exceeded: %s (retry in %d s)", key, retry)
            raise HTTPException(
                status_code=429,
                detail={
                    "error": "rate_limited",
                    "message": "Too many requests",
                    "limit": result.limit,
                    "window_seconds": self.window_seconds,
                    "retry_after": retry,
                },
                headers=headers,
            )
        shown = response.headers.get("RateLimit-Remaining")
        if shown is None or int(shown) >= result.remaining:
            response.headers.update(headers)
        return result


# --- WithLock ----------------------------------------------------------------------------------


class WithLock:
    """A FastAPI dependency that holds a token lock while the request runs.

    The lock is `lock:<name>:<caller>`, or `lock:<name>:<key>` with `key=` (a template over path
    parameters). A held lock answers 409 at once; one refused because Redis is down under
    "fail_closed" answers 503 with `Retry-After`. The lock is released with its own token after
    the response has been sent (also when the handler raises), or before it with
    `Depends(WithLock(...), scope="function")`. The dependency's value is the lock token.

    Args:
        name: the lock's name (`order:create`).
        ttl_ms: the lock's lifetime in milliseconds: it ends by itself if the process dies.
        key: what the lock is per (a template over path parameters); default the caller.
        by: a FastAPI dependency returning who calls (None: anonymous, locked by address).
        cache: the service (default: `app.state.cachebolt`).
        trusted_proxies: addresses or networks of the proxies whose `X-Forwarded-For` is believed.
        fallback: what taking the lock does while Redis is down, instead of
            `CACHE_LOCK_FALLBACK`: "memory" or "fail_closed" (503).
        on_lost: "raise" (`LockLost` from the release: a 500 with `scope="function"`, else the
            server's error log after the response) or "warn", when the release finds the lock
            expired or taken by another holder.
    """

    def __init__(
        self,
        name: str,
        ttl_ms: int,
        *,
        key: str | None = None,
        by: Callable[..., Any] | None = None,
        cache: AnyService | None = None,
        trusted_proxies: Iterable[str] = (),
        fallback: str | None = None,
        on_lost: str = ON_LOST_RAISE,
    ) -> None:
        key_arg(name, "name")
        ms_arg(ttl_ms)
        if fallback is not None:
            choice_arg("fallback", fallback, LOCK_FALLBACK_POLICIES)
        choice_arg("on_lost", on_lost, ON_LOST_POLICIES)
        if by is not None and not callable(by):
            raise TypeError(f"by must be callable, not {type(by).__name__}")
        _check_service(cache)
        self.name = name
        self.ttl_ms = ttl_ms
        self.fallback = fallback
        self.on_lost = on_lost
        self._key = None if key is None else _Template(key, "key")
        self._cache = cache
        self._proxies = _networks(trusted_proxies)
        _with_identity(self, self.__call__, by)

    def lock_key(self, request: Request, identity: object = None) -> str:
        """The lock's key for this request (without the `lock:` namespace)."""
        if self._key is not None:
            return f"{self.name}:{self._key.format(request)}"
        caller = _caller(identity, request, self._proxies)
        # A user's lock is `<name>:<identity>` (escaped: never `ip:...`), an anonymous caller's
        # `<name>:ip:<address>`.
        if caller.startswith("user:"):
            caller = caller[len("user:") :]
        return f"{self.name}:{caller}"

    async def __call__(self, request: Request, identity: object = None) -> AsyncIterator[str]:
        service = _service(request, self._cache)
        key = self.lock_key(request, identity)
        try:
            held = await _call(service, "_take_lock", key, self.ttl_ms, self.fallback, False)
        except BackendUnavailable as exc:
            # Refused under "fail_closed": the breaker probes Redis again within this long.
            retry = math.ceil(PROBE_MAX_SECONDS)
            _logger.warning("lock %s refused while Redis is down: %s", key, exc)
            raise HTTPException(
                status_code=503,
                detail={"error": "lock_unavailable", "lock": self.name, "retry_after": retry},
                headers={"Retry-After": str(retry)},
            ) from None
        except CapacityError as exc:
            # Redis is out of memory (maxmemory under noeviction): nothing was taken.
            _logger.warning("lock %s cannot be taken: %s", key, exc)
            raise HTTPException(
                status_code=503,
                detail={"error": "lock_unavailable", "lock": self.name},
                headers={"Retry-After": "1"},
            ) from None
        if held is None:
            _logger.warning("failed to acquire lock: %s", key)
            raise HTTPException(
                status_code=409,
                detail={
                    "error": "locked",
                    "message": "Another operation is in progress",
                    "lock": self.name,
                },
            )
        token: str = held.token
        # Shielded: a cancelled request (client gone) still releases instead of waiting for the
        # TTL. A lost lock is only warned about beside the handler's own error.
        try:
            yield token
        except BaseException:
            with anyio.CancelScope(shield=True):
                await _call(service, "_release_held", key, self.ttl_ms, token, ON_LOST_WARN)
            raise
        with anyio.CancelScope(shield=True):
            await _call(service, "_release_held", key, self.ttl_ms, token, self.on_lost)


# --- the admin router --------------------------------------------------------------------------


def _bearer(request: Request) -> bytes | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip().encode("utf-8", "surrogateescape")


def _parse_cursor(cursor: str) -> int:
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 20:
        raise HTTPException(status_code=400, detail={"error": "bad_cursor", "cursor": cursor[:32]})
    return int(cursor)


def _admin_secret(token: object) -> bytes:
    """The admin token as compared: stripped of surrounding whitespace (a token read from a
    file ends with a newline), then checked so that a client can send it in a header."""
    if token is None:
        raise ValueError("admin_router needs a token: the admin API is never open")
    if not isinstance(token, str):
        raise TypeError(f"token must be a str, not {type(token).__name__}")
    token = token.strip()
    if not token:
        raise ValueError("admin_router token is empty (or only whitespace)")
    for position, char in enumerate(token):
        # Printable ASCII only: a header carries nothing else intact, and a token that no
        # request can present would refuse every request without saying why.
        if not "!" <= char <= "~":
            raise ValueError(
                f"admin_router token has {char!r} at position {position}: it must be printable "
                "ASCII without whitespace or control characters"
            )
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"admin_router token has {len(token)} characters: at least {MIN_TOKEN_LENGTH} "
            "are needed"
        )
    return token.encode("ascii")


def admin_router(
    cache: AnyService,
    *,
    token: str,
    prefix: str = "/cache",
    trusted_proxies: Iterable[str] = (),
    include_in_schema: bool = False,
) -> APIRouter:
    """The admin API of a service, behind a bearer token: include it in your app.

    Routes under `prefix`: `GET /stats`, `GET /keys?pattern=&cursor=&count=`, `DELETE
    /keys?pattern=` (this service's key prefix only), `POST /clear-locks`, `GET /health`.
    `Authorization: Bearer <token>` is compared in constant time (401 without it, 403 with a
    wrong one, both logged); mutations are logged at WARNING with the caller's address. The
    routes stay out of the OpenAPI schema unless `include_in_schema=True`.

    Args:
        cache: the service to administer.
        token: the secret: surrounding whitespace (a file's final newline) is stripped, the
            rest must be at least 16 characters of printable ASCII without whitespace.
        prefix: where the routes live.
        trusted_proxies: proxies whose `X-Forwarded-For` names the caller in the logs.
        include_in_schema: list the routes in the OpenAPI schema.

    Raises:
        ValueError: no token (None), an empty one, one shorter than 16 characters, or one with
            whitespace, control or non-ASCII characters inside.
        TypeError: `cache` is not a service, `token` not a str.
    """
    if cache is None:
        raise TypeError("admin_router needs a cache service")
    _check_service(cache)
    secret = _admin_secret(token)
    nets = _networks(trusted_proxies)

    def caller(request: Request) -> str:
        return _client_address(request, nets)

    async def authorize(request: Request) -> None:
        given = _bearer(request)
        if given is None:
            _logger.warning("admin API: no bearer token from %s", caller(request))
            raise HTTPException(
                status_code=401,
                detail={"error": "unauthorized"},
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(given, secret):
            _logger.warning("admin API: wrong bearer token from %s", caller(request))
            raise HTTPException(status_code=403, detail={"error": "forbidden"})

    router = APIRouter(
        prefix=prefix,
        dependencies=[Depends(authorize)],
        tags=["cache admin"],
        include_in_schema=include_in_schema,
    )

    @router.get("/stats")
    async def stats() -> dict[str, Any]:
        return dict(await _call(cache, "stats", inline=False))

    @router.get("/keys")
    async def list_keys(
        pattern: str = Query("*", min_length=1, max_length=MAX_PATTERN_LENGTH),
        cursor: str = Query("0", max_length=32),
        count: int = Query(100, ge=1, le=MAX_PAGE_COUNT),
    ) -> dict[str, Any]:
        position = _parse_cursor(cursor)
        keys: list[str] = []
        for _ in range(_MAX_PAGE_STEPS):
            try:
                position, found = await _call(
                    cache, "scan", position, pattern, count - len(keys), inline=False
                )
            except ValueError as exc:
                raise HTTPException(status_code=400, detail={"error": str(exc)}) from None
            keys.extend(found)
            if position == 0 or len(keys) >= count:
                break
        return {"keys": keys, "cursor": str(position)}

    @router.delete("/keys")
    async def delete_keys(
        request: Request, pattern: str = Query(..., min_length=1, max_length=MAX_PATTERN_LENGTH)
    ) -> dict[str, Any]:
        deleted = await _call(cache, "del_pattern", pattern, inline=False)
        _logger.warning(
            "admin API: %s deleted %d keys matching %r", caller(request), deleted, pattern
        )
        return {"deleted": deleted, "pattern": pattern}

    @router.post("/clear-locks")
    async def clear_locks(request: Request) -> dict[str, Any]:
        deleted = await _call(cache, "del_pattern", "lock:*", inline=False)
        _logger.warning("admin API: %s cleared %d locks", caller(request), deleted)
        return {"deleted": deleted}

    @router.get("/health")
    async def health() -> dict[str, Any]:
        ping = await _call(cache, "ping", inline=False)
        stats = await _call(cache, "stats", inline=False)
        return {
            "backend": stats["backend"],
            "redis_available": cache.is_redis_available(),
            "redis_ping_ms": None if ping is None else round(ping * 1000, 3),
            "breaker_state": str(stats.get("breaker_state", "disabled")),
            "redis_maxmemory_policy": str(stats.get("redis_maxmemory_policy", "disabled")),
        }

    return router
